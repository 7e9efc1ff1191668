//! Bundles: what the publisher hands a client for a group of chunks, and
//! what each cache checks before serving and before releasing a key.
//!
//! # Contents
//!
//! - the **remainder** ([`BundleRemainder`]): escrow id, object id and
//!   layout, client key, bundle sequence, puzzle parameters and goal;
//! - per chunk (position `i`, at most 16): the **ticket request**
//!   ([`TicketRequest`]: object chunk index, chunk id, cache account, chunk
//!   size) and the **L1** (a MicroCash [`SignedTicket`] naming the escrow,
//!   the cache, the client, the chunk id, the ticket number and the puzzle
//!   secret's commitment);
//! - the sealed **L2** ([`crate::l2`]);
//! - the **batch authentication** ([`BatchAuth`]).
//!
//! # Digest
//!
//! ```text
//! d_rem   = SHA-256("cachecash/bundle-remainder/v1" ‖ SCALE(remainder))
//! d_l2    = SHA-256("cachecash/bundle-l2/v1" ‖ SCALE(sealed L2))
//! sub_i   = SHA-256("cachecash/bundle-chunk/v1" ‖ u8(i) ‖ SCALE(request_i) ‖ Ticket::hash(L1_i))
//! digest  = SHA-256("cachecash/bundle/v1" ‖ d_rem ‖ d_l2 ‖ LE32(n) ‖ sub_0 ‖ … ‖ sub_{n−1})
//! ```
//!
//! Every field a signature should bind is in it: escrow, object, object
//! size and chunk size, client, sequence, puzzle parameters and goal (in
//! `d_rem`); each chunk's index, id, size and cache, the position, and the
//! whole L1 ticket including its number and secret commitment (in `sub_i`);
//! the sealed L2 (in `d_l2`). The prototype covered none of escrow, object,
//! client, sequence, chunk ids or sizes.
//!
//! Per-cache subdigests let cache `i` check the signature knowing only its
//! own part: a client sends it a [`CacheRequest`] (remainder, its request,
//! the hash of its L1, the list of subdigests, `d_l2` and the batch
//! authentication). The cache recomputes `sub_i` from its request and L1
//! hash, checks it against the list, recomputes the digest and verifies the
//! batch. The L1 itself comes later, after the data: the client withholds
//! payment until it is served, and the cache checks that the L1 hashes to
//! the signed hash before releasing the outer key.
//!
//! # Batch signature
//!
//! The escrow's ticket signer signs many bundles at once:
//!
//! ```text
//! root      = RFC 6962 Merkle root (ct-merkle) over leaves "cachecash/bundle-batch-leaf/v1" ‖ digest_j
//! signature = ed25519(ticket signer, "cachecash/bundle-batch/v1" ‖ root ‖ LE32(batch size))
//! ```
//!
//! Each bundle carries the root, the batch size, its index and its inclusion
//! path. The signer is an input to every verification (from the escrow on
//! chain), never a key carried in the message: the prototype checked
//! signatures against the key they carried.

use cachecash_runtime::microcash::{
    EscrowId, MAX_PROOF_DEPTH, SignedTicket, Ticket, TicketAuth, sign_tickets_batch,
};
use cachecash_runtime::{AccountId, Hash, Signature};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{InclusionProof, RootHash};
use ed25519_dalek::{Signer, SigningKey};
use parity_scale_codec::{Decode, Encode};
use sha2::{Digest, Sha256};

use crate::codec::{WireMessage, decode_bounded};
use crate::error::{BundleError, DecodeError, L2Error, ManifestError};
use crate::keys::{CacheKeys, EscrowSecret, Layer, PuzzleSecret, SessionKey};
use crate::l2::{L2Keys, SealedL2, open, seal};
use crate::manifest::{ChunkLayout, Manifest, ObjectId, TaggedLeaf};
use crate::puzzle::{
    BlockSource, MAX_BUNDLE_CHUNKS, PuzzleChunk, PuzzleParams, Solution, generate, generate_at,
    solve_parallel,
};
use crate::tags;

/// Most bundles under one batch signature.
pub const MAX_BATCH: usize = 1 << 16;
/// Longest inclusion path accepted on the wire.
pub const MAX_BATCH_PATH: usize = 32;

/// The bundle fields every cache sees.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct BundleRemainder {
    /// The escrow paying for the bundle.
    pub escrow: EscrowId,
    /// The object.
    pub object: ObjectId,
    /// Object size in bytes.
    pub object_size: u64,
    /// Object chunk size in bytes.
    pub chunk_size: u32,
    /// The client's account (public key).
    pub client: AccountId,
    /// Bundle sequence, never reused for this client in this escrow.
    pub sequence: u64,
    /// Puzzle parameters.
    pub puzzle: PuzzleParams,
    /// Puzzle goal.
    pub goal: Hash,
}

impl BundleRemainder {
    /// `d_rem`; also the context the L2 is sealed under.
    pub fn digest(&self) -> Hash {
        Hash::of_parts(&[tags::BUNDLE_REMAINDER, &self.encode()])
    }

    fn layout(&self) -> Result<ChunkLayout, BundleError> {
        ChunkLayout::new(self.object_size, self.chunk_size).map_err(BundleError::from)
    }
}

/// What one cache is asked to serve.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct TicketRequest {
    /// Object chunk index.
    pub chunk_index: u64,
    /// Chunk id (its manifest digest).
    pub chunk_id: Hash,
    /// The cache serving it.
    pub cache: AccountId,
    /// Chunk size in bytes.
    pub size: u32,
}

impl TicketRequest {
    /// Where the requested chunk sits in `object` (what its IVs bind).
    pub fn at(&self, object: &ObjectId) -> crate::keys::ChunkAt {
        crate::keys::ChunkAt::new(*object, self.chunk_id, self.chunk_index)
    }
}

/// `sub_i` for position `position`.
pub fn chunk_subdigest(position: u8, request: &TicketRequest, l1_hash: &Hash) -> Hash {
    Hash::of_parts(&[
        tags::BUNDLE_CHUNK,
        &[position],
        &request.encode(),
        l1_hash.as_bytes(),
    ])
}

/// The bundle digest from its parts.
pub fn bundle_digest(remainder: &Hash, l2: &Hash, subdigests: &[Hash]) -> Hash {
    let n = u32::try_from(subdigests.len()).unwrap_or(u32::MAX);
    let mut h = Sha256::new_with_prefix(tags::BUNDLE);
    h.update(remainder.as_bytes());
    h.update(l2.as_bytes());
    h.update(n.to_le_bytes());
    for s in subdigests {
        h.update(s.as_bytes());
    }
    Hash(h.finalize().into())
}

fn position_u8(position: usize) -> u8 {
    u8::try_from(position).unwrap_or(u8::MAX)
}

/// The bytes the ticket signer signs for a batch.
pub fn batch_payload(root: &Hash, batch_size: u32) -> Vec<u8> {
    let mut out = tags::BATCH.to_vec();
    out.extend_from_slice(root.as_bytes());
    out.extend_from_slice(&batch_size.to_le_bytes());
    out
}

/// One signature over a batch of bundles, with this bundle's inclusion path.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct BatchAuth {
    /// Merkle root of the batch's bundle digests.
    pub root: Hash,
    /// Bundles in the batch.
    pub batch_size: u32,
    /// This bundle's index in the batch.
    pub index: u32,
    /// RFC 6962 inclusion path of this bundle's digest.
    pub path: Vec<Hash>,
    /// ed25519 signature by the escrow's ticket signer over [`batch_payload`].
    pub signature: Signature,
}

impl BatchAuth {
    fn check_bounds(&self) -> Result<(), String> {
        if self.path.len() > MAX_BATCH_PATH {
            return Err(format!(
                "inclusion path of {} hashes, over the limit of {MAX_BATCH_PATH}",
                self.path.len()
            ));
        }
        Ok(())
    }

    /// Checks that `digest` is in the batch and the batch is signed by `signer`.
    pub fn verify(&self, digest: &Hash, signer: &AccountId) -> Result<(), BundleError> {
        let size = usize::try_from(self.batch_size).unwrap_or(usize::MAX);
        if self.batch_size == 0 || size > MAX_BATCH || self.index >= self.batch_size {
            return Err(BundleError::BadBatch {
                reason: format!(
                    "index {} in a batch of {} (batches hold 1 to {MAX_BATCH})",
                    self.index, self.batch_size
                ),
            });
        }
        self.check_bounds()
            .map_err(|reason| BundleError::BadBatch { reason })?;
        let proof_bytes: Vec<u8> = self.path.iter().flat_map(|h| h.0).collect();
        let proof = InclusionProof::<Sha256>::try_from_bytes(proof_bytes).map_err(|e| {
            BundleError::BadBatch {
                reason: e.to_string(),
            }
        })?;
        let root = RootHash::<Sha256>::new(self.root.0.into(), u64::from(self.batch_size));
        let leaf = TaggedLeaf {
            tag: tags::BATCH_LEAF,
            value: digest.0,
        };
        root.verify_inclusion(&leaf, u64::from(self.index), &proof)
            .map_err(|e| BundleError::NotInBatch {
                reason: e.to_string(),
            })?;
        let bad = |reason: String| BundleError::BadSignature {
            signer: *signer,
            reason,
        };
        let key = signer.verifying_key().map_err(|e| bad(e.to_string()))?;
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        key.verify_strict(&batch_payload(&self.root, self.batch_size), &signature)
            .map_err(|e| bad(e.to_string()))
    }
}

/// One chunk of a bundle: its request and its L1.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct BundleChunk {
    /// The ticket request.
    pub request: TicketRequest,
    /// The L1 ticket, signed by the escrow's ticket signer.
    pub l1: SignedTicket,
}

/// A signed bundle, as the publisher sends it to the client.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Bundle {
    /// The remainder.
    pub remainder: BundleRemainder,
    /// The chunks, in position order (1 to 16).
    pub chunks: Vec<BundleChunk>,
    /// The sealed L2.
    pub l2: SealedL2,
    /// The batch signature.
    pub auth: BatchAuth,
}

/// Checks one request's size against the object layout.
fn check_request(
    layout: &ChunkLayout,
    position: usize,
    request: &TicketRequest,
) -> Result<(), BundleError> {
    let expected = layout
        .chunk_len(request.chunk_index)
        .ok_or(ManifestError::NoSuchChunk {
            index: request.chunk_index,
            count: layout.count(),
        })?;
    if request.size != expected {
        return Err(BundleError::ChunkSize {
            position,
            index: request.chunk_index,
            got: request.size,
            expected,
        });
    }
    Ok(())
}

/// Checks every request's size and that no chunk appears twice.
fn check_requests(layout: &ChunkLayout, requests: &[TicketRequest]) -> Result<(), BundleError> {
    let mut seen: Vec<u64> = Vec::with_capacity(MAX_BUNDLE_CHUNKS);
    for (position, request) in requests.iter().enumerate() {
        check_request(layout, position, request)?;
        if seen.contains(&request.chunk_index) {
            return Err(BundleError::DuplicateChunk {
                index: request.chunk_index,
            });
        }
        seen.push(request.chunk_index);
    }
    Ok(())
}

/// Checks that an L1 agrees with the bundle and is signed by `signer`.
fn check_l1(
    position: usize,
    remainder: &BundleRemainder,
    request: &TicketRequest,
    l1: &SignedTicket,
    signer: &AccountId,
) -> Result<(), BundleError> {
    let t = &l1.ticket;
    let mismatch = |field: &'static str| Err(BundleError::L1Mismatch { position, field });
    if t.escrow != remainder.escrow {
        return mismatch("escrow");
    }
    if t.client != remainder.client {
        return mismatch("client");
    }
    if t.cache != request.cache {
        return mismatch("cache");
    }
    if t.chunk != request.chunk_id {
        return mismatch("chunk id");
    }
    l1.verify(signer).map_err(|e| BundleError::BadL1 {
        position,
        reason: e.to_string(),
    })
}

impl Bundle {
    /// The per-position subdigests.
    pub fn subdigests(&self) -> Vec<Hash> {
        self.chunks
            .iter()
            .enumerate()
            .map(|(i, c)| chunk_subdigest(position_u8(i), &c.request, &c.l1.ticket.hash()))
            .collect()
    }

    /// The bundle digest.
    pub fn digest(&self) -> Hash {
        bundle_digest(
            &self.remainder.digest(),
            &self.l2.digest(),
            &self.subdigests(),
        )
    }

    /// What the client sends to the cache at `position`.
    pub fn cache_request(&self, position: usize) -> Option<CacheRequest> {
        let chunk = self.chunks.get(position)?;
        Some(CacheRequest {
            remainder: self.remainder,
            position: u8::try_from(position).ok()?,
            request: chunk.request,
            l1_hash: chunk.l1.ticket.hash(),
            subdigests: self.subdigests(),
            l2_digest: self.l2.digest(),
            auth: self.auth.clone(),
        })
    }

    /// The client's check: addressed to `client`, consistent, every L1
    /// valid, and the batch signed by the escrow's `ticket_signer`.
    pub fn verify_for_client(
        &self,
        client: &AccountId,
        ticket_signer: &AccountId,
    ) -> Result<(), BundleError> {
        if self.remainder.client != *client {
            return Err(BundleError::WrongClient {
                expected: *client,
                got: self.remainder.client,
            });
        }
        self.remainder.puzzle.check(self.chunks.len())?;
        let layout = self.remainder.layout()?;
        let requests: Vec<TicketRequest> = self.chunks.iter().map(|c| c.request).collect();
        check_requests(&layout, &requests)?;
        self.l2.check_bounds().map_err(|_| L2Error::TooLarge {
            got: self.l2.ciphertext.len(),
            max: crate::l2::MAX_L2_CIPHERTEXT,
        })?;
        for (position, c) in self.chunks.iter().enumerate() {
            check_l1(position, &self.remainder, &c.request, &c.l1, ticket_signer)?;
        }
        self.auth.verify(&self.digest(), ticket_signer)
    }

    /// Checks the bundle against the object's (verified) manifest: same
    /// object and layout, and every chunk id is the manifest's digest.
    pub fn check_manifest(&self, manifest: &Manifest) -> Result<(), BundleError> {
        if self.remainder.object != manifest.object {
            return Err(BundleError::ObjectMismatch {
                expected: manifest.object,
                got: self.remainder.object,
            });
        }
        if self.remainder.object_size != manifest.size
            || self.remainder.chunk_size != manifest.chunk_size
        {
            return Err(BundleError::LayoutMismatch {
                size: self.remainder.object_size,
                chunk_size: self.remainder.chunk_size,
            });
        }
        for (position, c) in self.chunks.iter().enumerate() {
            if manifest.chunk_id(c.request.chunk_index) != Some(&c.request.chunk_id) {
                return Err(BundleError::ChunkIdMismatch {
                    position,
                    index: c.request.chunk_index,
                });
            }
        }
        Ok(())
    }

    /// Solves the puzzle over the covered chunks' inner-encrypted bytes
    /// (outer layer removed), given in bundle order.
    pub fn solve(&self, covered: &[&[u8]], threads: usize) -> Result<Solution, BundleError> {
        let positions = self.remainder.puzzle.covered_positions();
        for (data, &position) in covered.iter().zip(&positions) {
            let chunk = self.chunks.get(position).ok_or(BundleError::BadPosition {
                position,
                chunks: self.chunks.len(),
            })?;
            if u64::try_from(data.len()).ok() != Some(u64::from(chunk.request.size)) {
                return Err(BundleError::ChunkData {
                    position,
                    got: data.len(),
                    expected: chunk.request.size,
                });
            }
        }
        solve_parallel(
            &self.remainder.puzzle,
            covered,
            &self.remainder.goal,
            threads,
        )
        .map_err(BundleError::from)
    }

    /// Opens the L2 with the puzzle secret: the inner key of every position.
    /// Also checks that every L1 commits to this secret (else no cache can
    /// redeem, and the publisher is at fault).
    pub fn open_l2(&self, secret: &PuzzleSecret) -> Result<L2Keys, BundleError> {
        let commitment = secret.commitment();
        if self
            .chunks
            .iter()
            .any(|c| c.l1.ticket.secret_hash != commitment)
        {
            return Err(BundleError::SecretMismatch);
        }
        let keys = open(secret, &self.remainder.digest(), &self.l2)?;
        if keys.inner.len() != self.chunks.len() {
            return Err(BundleError::KeyCount {
                got: keys.inner.len(),
                expected: self.chunks.len(),
            });
        }
        Ok(keys)
    }

    /// Decodes a bundle from the wire (see [`crate::codec`]).
    pub fn decode_bounded(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_bounded(bytes)
    }
}

impl WireMessage for Bundle {
    const NAME: &'static str = "Bundle";
    const MAX_BYTES: usize = 128 * 1024;

    fn check_bounds(&self) -> Result<(), String> {
        if self.chunks.is_empty() || self.chunks.len() > MAX_BUNDLE_CHUNKS {
            return Err(format!(
                "{} chunks; a bundle holds 1 to {MAX_BUNDLE_CHUNKS}",
                self.chunks.len()
            ));
        }
        self.l2.check_bounds()?;
        self.auth.check_bounds()
    }
}

/// The L1 a client hands cache `i` after the data is a MicroCash
/// [`SignedTicket`]; on the wire it is bounded like every other message.
impl WireMessage for SignedTicket {
    const NAME: &'static str = "L1 ticket";
    /// A ticket (172 bytes) with a batch proof of the deepest allowed path
    /// (32 hashes) and its signature is under 1.3 KiB.
    const MAX_BYTES: usize = 2048;

    fn check_bounds(&self) -> Result<(), String> {
        match &self.auth {
            TicketAuth::Batch { proof, .. } if proof.path.len() > MAX_PROOF_DEPTH => Err(format!(
                "batch proof of {} hashes; at most {MAX_PROOF_DEPTH}",
                proof.path.len()
            )),
            _ => Ok(()),
        }
    }
}

/// Decodes the L1 a client hands a cache (see [`crate::codec`]).
pub fn decode_l1(bytes: &[u8]) -> Result<SignedTicket, DecodeError> {
    decode_bounded(bytes)
}

/// A [`CacheRequest`] whose batch signature, subdigest and layout the cache
/// has checked ([`CacheRequest::verify`]). Its remainder (client, sequence)
/// is therefore the publisher's, so the outer key derived from it may be
/// released once the matching L1 arrives.
#[derive(Clone, Copy, Debug)]
pub struct VerifiedRequest<'a> {
    request: &'a CacheRequest,
    digest: Hash,
}

impl VerifiedRequest<'_> {
    /// The bundle digest the batch signature covers.
    pub fn digest(&self) -> Hash {
        self.digest
    }

    /// The request.
    pub fn request(&self) -> &CacheRequest {
        self.request
    }

    /// Checks the L1 and returns the outer session key to release for it.
    pub fn release_outer_key(
        &self,
        l1: &SignedTicket,
        ticket_signer: &AccountId,
        keys: &CacheKeys,
    ) -> Result<SessionKey, BundleError> {
        self.request.verify_l1(l1, ticket_signer)?;
        let remainder = &self.request.remainder;
        Ok(keys.outer_session(&remainder.client, remainder.sequence))
    }
}

/// What a client sends cache `position` to get its chunk (GetChunk).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct CacheRequest {
    /// The bundle remainder.
    pub remainder: BundleRemainder,
    /// This cache's position in the bundle.
    pub position: u8,
    /// This cache's request.
    pub request: TicketRequest,
    /// `Ticket::hash` of this cache's L1 (the L1 follows after the data).
    pub l1_hash: Hash,
    /// Every position's subdigest.
    pub subdigests: Vec<Hash>,
    /// Digest of the sealed L2.
    pub l2_digest: Hash,
    /// The batch signature.
    pub auth: BatchAuth,
}

impl CacheRequest {
    /// The bundle digest.
    pub fn digest(&self) -> Hash {
        bundle_digest(&self.remainder.digest(), &self.l2_digest, &self.subdigests)
    }

    /// The cache's check before serving: addressed to `cache`, its own
    /// subdigest matches, sizes fit the layout, the batch is signed by the
    /// escrow's `ticket_signer`. Returns the verified request, through which
    /// alone the outer key can be released.
    pub fn verify(
        &self,
        cache: &AccountId,
        ticket_signer: &AccountId,
    ) -> Result<VerifiedRequest<'_>, BundleError> {
        if self.request.cache != *cache {
            return Err(BundleError::WrongCache {
                expected: *cache,
                got: self.request.cache,
            });
        }
        let chunks = self.subdigests.len();
        let position = usize::from(self.position);
        self.remainder.puzzle.check(chunks)?;
        let own = self
            .subdigests
            .get(position)
            .ok_or(BundleError::BadPosition { position, chunks })?;
        if chunk_subdigest(self.position, &self.request, &self.l1_hash) != *own {
            return Err(BundleError::SubdigestMismatch { position });
        }
        check_request(&self.remainder.layout()?, position, &self.request)?;
        let digest = self.digest();
        self.auth.verify(&digest, ticket_signer)?;
        Ok(VerifiedRequest {
            request: self,
            digest,
        })
    }

    /// The cache's check of the L1 the client hands over after the data.
    pub fn verify_l1(
        &self,
        l1: &SignedTicket,
        ticket_signer: &AccountId,
    ) -> Result<(), BundleError> {
        let position = usize::from(self.position);
        if l1.ticket.hash() != self.l1_hash {
            return Err(BundleError::L1Mismatch {
                position,
                field: "hash",
            });
        }
        check_l1(position, &self.remainder, &self.request, l1, ticket_signer)
    }

    /// The cache's check of an L2 claim (the sealed L2 and the puzzle
    /// secret): it is this bundle's L2, the secret matches the L1's
    /// commitment, the L2 opens and holds this cache's inner key.
    /// A cache holding a valid L1 and a valid claim can redeem.
    pub fn verify_l2_claim(
        &self,
        l1: &Ticket,
        claim: &L2Claim,
        inner_key: &SessionKey,
    ) -> Result<(), BundleError> {
        let position = usize::from(self.position);
        if l1.hash() != self.l1_hash {
            return Err(BundleError::L1Mismatch {
                position,
                field: "hash",
            });
        }
        if claim.sealed.digest() != self.l2_digest {
            return Err(BundleError::L2DigestMismatch);
        }
        if claim.secret.commitment() != l1.secret_hash {
            return Err(BundleError::SecretMismatch);
        }
        let keys = open(&claim.secret, &self.remainder.digest(), &claim.sealed)?;
        if keys.inner.len() != self.subdigests.len() {
            return Err(BundleError::KeyCount {
                got: keys.inner.len(),
                expected: self.subdigests.len(),
            });
        }
        match keys.inner.get(position) {
            Some(key) if key == inner_key => Ok(()),
            _ => Err(BundleError::InnerKeyMismatch { position }),
        }
    }

    /// Decodes a cache request from the wire (see [`crate::codec`]).
    pub fn decode_bounded(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_bounded(bytes)
    }
}

impl WireMessage for CacheRequest {
    const NAME: &'static str = "CacheRequest";
    const MAX_BYTES: usize = 4096;

    fn check_bounds(&self) -> Result<(), String> {
        let n = self.subdigests.len();
        if n == 0 || n > MAX_BUNDLE_CHUNKS {
            return Err(format!(
                "{n} subdigests; a bundle holds 1 to {MAX_BUNDLE_CHUNKS}"
            ));
        }
        if usize::from(self.position) >= n {
            return Err(format!("position {} in a bundle of {n}", self.position));
        }
        self.auth.check_bounds()
    }
}

/// What a client sends every cache once it has solved the puzzle
/// (ExchangeTicketL2): the sealed L2 and the secret that opens it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct L2Claim {
    /// The bundle's sealed L2.
    pub sealed: SealedL2,
    /// The puzzle secret.
    pub secret: PuzzleSecret,
}

impl L2Claim {
    /// Decodes an L2 claim from the wire (see [`crate::codec`]).
    pub fn decode_bounded(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_bounded(bytes)
    }
}

impl WireMessage for L2Claim {
    const NAME: &'static str = "L2Claim";
    const MAX_BYTES: usize = 512;

    fn check_bounds(&self) -> Result<(), String> {
        self.sealed.check_bounds()
    }
}

mod issue;
pub use issue::{
    BundleOrder, ChunkOrder, PreparedBundle, prepare_bundle, prepare_bundle_at, sign_bundles,
};

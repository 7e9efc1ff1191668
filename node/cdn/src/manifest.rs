//! Objects, chunks and signed manifests.
//!
//! # Chunk layout
//!
//! An object of `size` bytes is cut into chunks of `chunk_size` bytes
//! (128 KiB by default, set per object; a multiple of 16 between 16 B and
//! 16 MiB). Every chunk has exactly `chunk_size` bytes except the last, which
//! has `1..=chunk_size` bytes. So:
//!
//! - an empty object has zero chunks;
//! - an object of `n · chunk_size` bytes has `n` full chunks;
//! - otherwise the last chunk is shorter, possibly shorter than one 16-byte
//!   block (a 1-byte last chunk is valid).
//!
//! The number of chunks is `ceil(size / chunk_size)` and at most 2²⁰.
//!
//! # Digests and root
//!
//! ```text
//! chunk digest = SHA-256("cachecash/chunk/v1" ‖ chunk bytes)
//! root         = RFC 6962 Merkle tree hash (ct-merkle) over leaves
//!                "cachecash/chunk-leaf/v1" ‖ chunk digest, in chunk order
//!                (leaf hash SHA-256(0x00 ‖ leaf), node hash SHA-256(0x01 ‖ l ‖ r))
//! empty object: no digests, root = SHA-256("") (RFC 6962's empty tree)
//! ```
//!
//! The chunk digest is also the chunk id that tickets name. A digest is
//! computed incrementally ([`ChunkHasher`]), so neither the publisher nor the
//! client needs a whole chunk, let alone a whole object, in memory:
//! [`ManifestBuilder`] consumes an object as a stream of arbitrary pieces.
//!
//! # Signature
//!
//! The publisher signs (ed25519, strict verification)
//!
//! ```text
//! "cachecash/manifest/v1" ‖ object id (32) ‖ LE64(size) ‖ LE32(chunk size) ‖ LE64(chunk count) ‖ root (32)
//! ```
//!
//! The digest list is bound through the root: [`SignedManifest::verify`]
//! recomputes the root from the listed digests, so a verified manifest's
//! every digest is signed. Clients then check every plaintext chunk with
//! [`Manifest::verify_chunk`] (or [`ChunkHasher`] and
//! [`Manifest::verify_chunk_digest`] while streaming).

use cachecash_runtime::{AccountId, Hash, Signature};
use core::fmt;
use ct_merkle::HashableLeaf;
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ed25519_dalek::{Signer, SigningKey};
use parity_scale_codec::{Decode, Encode};
use sha2::{Digest, Sha256};

use crate::codec::{WireMessage, decode_bounded};
use crate::error::{DecodeError, ManifestError};
use crate::tags;

/// Identifies an object (chosen by the publisher, e.g. a hash of its path).
pub type ObjectId = Hash;

/// The default chunk size: 128 KiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 128 * 1024;
/// The smallest chunk size.
pub const MIN_CHUNK_SIZE: u32 = 16;
/// The largest chunk size: 16 MiB.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// The most chunks an object may have.
pub const MAX_CHUNKS: u64 = 1 << 20;

/// A Merkle leaf: a tag followed by a 32-byte value, hashed without copying.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaggedLeaf {
    pub(crate) tag: &'static [u8],
    pub(crate) value: [u8; 32],
}

impl HashableLeaf for TaggedLeaf {
    fn hash<H: ct_merkle::digest::Update>(&self, hasher: &mut H) {
        hasher.update(self.tag);
        hasher.update(&self.value);
    }
}

/// RFC 6962 root over `values`, each leaf tagged with `tag`.
pub(crate) fn tagged_root(tag: &'static [u8], values: &[Hash]) -> Hash {
    let mut tree = MemoryBackedTree::<Sha256, TaggedLeaf>::new();
    for v in values {
        tree.push(TaggedLeaf { tag, value: v.0 });
    }
    Hash((*tree.root().as_bytes()).into())
}

/// The Merkle root of a list of chunk digests.
pub fn chunk_root(digests: &[Hash]) -> Hash {
    tagged_root(tags::CHUNK_LEAF, digests)
}

/// How an object of a given size splits into chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLayout {
    size: u64,
    chunk_size: u32,
    count: u64,
}

impl ChunkLayout {
    /// The layout of `size` bytes in `chunk_size`-byte chunks.
    pub fn new(size: u64, chunk_size: u32) -> Result<Self, ManifestError> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size)
            || !chunk_size.is_multiple_of(16)
        {
            return Err(ManifestError::BadChunkSize {
                chunk_size,
                min: MIN_CHUNK_SIZE,
                max: MAX_CHUNK_SIZE,
            });
        }
        let count = size.div_ceil(u64::from(chunk_size));
        if count > MAX_CHUNKS {
            return Err(ManifestError::TooManyChunks {
                size,
                chunk_size,
                chunks: count,
                max: MAX_CHUNKS,
            });
        }
        Ok(Self {
            size,
            chunk_size,
            count,
        })
    }

    /// Object size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Nominal chunk size in bytes.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Number of chunks.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Length of chunk `index` (1..=chunk size), or `None` past the end.
    pub fn chunk_len(&self, index: u64) -> Option<u32> {
        let start = self.chunk_offset(index)?;
        let rest = self.size.checked_sub(start)?;
        u32::try_from(rest.min(u64::from(self.chunk_size))).ok()
    }

    /// Byte offset of chunk `index` in the object, or `None` past the end.
    pub fn chunk_offset(&self, index: u64) -> Option<u64> {
        if index >= self.count {
            return None;
        }
        index.checked_mul(u64::from(self.chunk_size))
    }

    /// The chunk holding byte `offset`, or `None` past the end.
    pub fn chunk_of(&self, offset: u64) -> Option<u64> {
        if offset >= self.size {
            return None;
        }
        offset.checked_div(u64::from(self.chunk_size))
    }
}

/// Incremental chunk digest: `SHA-256("cachecash/chunk/v1" ‖ bytes)`.
#[derive(Clone)]
pub struct ChunkHasher(Sha256);

impl ChunkHasher {
    /// A hasher with no bytes yet.
    pub fn new() -> Self {
        Self(Sha256::new_with_prefix(tags::CHUNK))
    }

    /// Feeds the next bytes of the chunk.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The chunk digest.
    pub fn finalize(self) -> Hash {
        Hash(self.0.finalize().into())
    }
}

impl Default for ChunkHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ChunkHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkHasher")
    }
}

/// The digest (and id) of one chunk.
pub fn chunk_digest(data: &[u8]) -> Hash {
    let mut h = ChunkHasher::new();
    h.update(data);
    h.finalize()
}

/// An object's manifest: layout, chunk digests and their Merkle root.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Manifest {
    /// The object.
    pub object: ObjectId,
    /// Object size in bytes.
    pub size: u64,
    /// Nominal chunk size in bytes.
    pub chunk_size: u32,
    /// Digest of each chunk, in order.
    pub chunks: Vec<Hash>,
    /// Merkle root of `chunks`.
    pub root: Hash,
}

impl Manifest {
    /// A manifest from the chunk digests (computes the root, checks the count).
    pub fn new(
        object: ObjectId,
        size: u64,
        chunk_size: u32,
        chunks: Vec<Hash>,
    ) -> Result<Self, ManifestError> {
        let root = chunk_root(&chunks);
        let manifest = Self {
            object,
            size,
            chunk_size,
            chunks,
            root,
        };
        manifest.check_count()?;
        Ok(manifest)
    }

    /// The manifest of an object held in memory (tests and small objects).
    pub fn from_object(
        object: ObjectId,
        chunk_size: u32,
        data: &[u8],
    ) -> Result<Self, ManifestError> {
        let mut b = ManifestBuilder::new(object, chunk_size)?;
        b.update(data)?;
        b.finish()
    }

    /// The object's chunk layout.
    pub fn layout(&self) -> Result<ChunkLayout, ManifestError> {
        ChunkLayout::new(self.size, self.chunk_size)
    }

    fn check_count(&self) -> Result<ChunkLayout, ManifestError> {
        let layout = self.layout()?;
        let got = u64::try_from(self.chunks.len()).unwrap_or(u64::MAX);
        if got != layout.count() {
            return Err(ManifestError::ChunkCount {
                got,
                expected: layout.count(),
                size: self.size,
                chunk_size: self.chunk_size,
            });
        }
        Ok(layout)
    }

    /// Checks the digest count against the layout and the root against the digests.
    pub fn check(&self) -> Result<ChunkLayout, ManifestError> {
        let layout = self.check_count()?;
        let computed = chunk_root(&self.chunks);
        if computed != self.root {
            return Err(ManifestError::RootMismatch {
                claimed: self.root,
                computed,
            });
        }
        Ok(layout)
    }

    /// Digest of chunk `index`.
    pub fn chunk_id(&self, index: u64) -> Option<&Hash> {
        usize::try_from(index).ok().and_then(|i| self.chunks.get(i))
    }

    /// Checks a chunk's length and digest, computed while streaming it.
    pub fn verify_chunk_digest(
        &self,
        index: u64,
        len: u64,
        digest: &Hash,
    ) -> Result<(), ManifestError> {
        let layout = self.layout()?;
        let (Some(expected_len), Some(expected)) = (layout.chunk_len(index), self.chunk_id(index))
        else {
            return Err(ManifestError::NoSuchChunk {
                index,
                count: layout.count(),
            });
        };
        if len != u64::from(expected_len) {
            return Err(ManifestError::ChunkLength {
                index,
                got: len,
                expected: u64::from(expected_len),
            });
        }
        if digest != expected {
            return Err(ManifestError::ChunkDigest { index });
        }
        Ok(())
    }

    /// Checks a whole plaintext chunk against the manifest.
    pub fn verify_chunk(&self, index: u64, data: &[u8]) -> Result<(), ManifestError> {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.verify_chunk_digest(index, len, &chunk_digest(data))
    }

    /// The bytes the publisher signs.
    pub fn signing_payload(&self) -> Vec<u8> {
        let count = u64::try_from(self.chunks.len()).unwrap_or(u64::MAX);
        let mut out = tags::MANIFEST.to_vec();
        (self.object, self.size, self.chunk_size, count, self.root).encode_to(&mut out);
        out
    }

    /// Signs the manifest with the publisher's key.
    pub fn sign(self, key: &SigningKey) -> SignedManifest {
        let signature = Signature(key.sign(&self.signing_payload()).to_bytes());
        SignedManifest {
            manifest: self,
            signature,
        }
    }
}

/// A manifest with the publisher's signature.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct SignedManifest {
    /// The manifest.
    pub manifest: Manifest,
    /// ed25519 signature over [`Manifest::signing_payload`].
    pub signature: Signature,
}

impl SignedManifest {
    /// Checks the structure, the root and the signature by `publisher`.
    pub fn verify(&self, publisher: &AccountId) -> Result<ChunkLayout, ManifestError> {
        let layout = self.manifest.check()?;
        let bad = |reason: String| ManifestError::BadSignature {
            publisher: *publisher,
            reason,
        };
        let key = publisher.verifying_key().map_err(|e| bad(e.to_string()))?;
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        key.verify_strict(&self.manifest.signing_payload(), &signature)
            .map_err(|e| bad(e.to_string()))?;
        Ok(layout)
    }

    /// Decodes a signed manifest from the wire (see [`crate::codec`]).
    pub fn decode_bounded(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_bounded(bytes)
    }
}

impl WireMessage for SignedManifest {
    const NAME: &'static str = "SignedManifest";
    // Header, up to MAX_CHUNKS digests with a 5-byte compact length, root, signature.
    const MAX_BYTES: usize = 32 + 8 + 4 + 5 + 32 * (MAX_CHUNKS as usize) + 32 + 64;

    fn check_bounds(&self) -> Result<(), String> {
        if self.manifest.chunks.len() as u64 > MAX_CHUNKS {
            return Err(format!(
                "{} chunk digests, over the limit of {MAX_CHUNKS}",
                self.manifest.chunks.len()
            ));
        }
        Ok(())
    }
}

/// Builds a manifest from an object streamed in pieces of any size.
#[derive(Debug)]
pub struct ManifestBuilder {
    object: ObjectId,
    chunk_size: u32,
    size: u64,
    current: ChunkHasher,
    current_len: u32,
    digests: Vec<Hash>,
}

impl ManifestBuilder {
    /// A builder for `object` in `chunk_size`-byte chunks.
    pub fn new(object: ObjectId, chunk_size: u32) -> Result<Self, ManifestError> {
        ChunkLayout::new(0, chunk_size)?;
        Ok(Self {
            object,
            chunk_size,
            size: 0,
            current: ChunkHasher::new(),
            current_len: 0,
            digests: Vec::new(),
        })
    }

    /// Feeds the next bytes of the object.
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), ManifestError> {
        while !data.is_empty() {
            let room = usize::try_from(self.chunk_size.saturating_sub(self.current_len))
                .unwrap_or(usize::MAX);
            let take = room.min(data.len());
            let Some((head, rest)) = data.split_at_checked(take) else {
                break;
            };
            let new_size = self.size.saturating_add(head.len() as u64);
            ChunkLayout::new(new_size, self.chunk_size)?;
            self.current.update(head);
            self.current_len = self
                .current_len
                .saturating_add(u32::try_from(take).unwrap_or(u32::MAX));
            self.size = new_size;
            if self.current_len >= self.chunk_size {
                let full = core::mem::take(&mut self.current);
                self.digests.push(full.finalize());
                self.current_len = 0;
            }
            data = rest;
        }
        Ok(())
    }

    /// The manifest of everything fed so far.
    pub fn finish(mut self) -> Result<Manifest, ManifestError> {
        if self.current_len > 0 {
            self.digests.push(self.current.finalize());
        }
        Manifest::new(self.object, self.size, self.chunk_size, self.digests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_defines_every_edge() {
        let l = ChunkLayout::new(0, 32).unwrap();
        assert_eq!(l.count(), 0);
        assert_eq!(l.chunk_len(0), None);

        let l = ChunkLayout::new(64, 32).unwrap();
        assert_eq!(
            (l.count(), l.chunk_len(0), l.chunk_len(1), l.chunk_len(2)),
            (2, Some(32), Some(32), None)
        );

        let l = ChunkLayout::new(65, 32).unwrap();
        assert_eq!((l.count(), l.chunk_len(2)), (3, Some(1)));
        assert_eq!(l.chunk_offset(2), Some(64));
        assert_eq!(l.chunk_of(64), Some(2));
        assert_eq!(l.chunk_of(65), None);

        assert!(ChunkLayout::new(10, 24).is_err(), "not a multiple of 16");
        assert!(ChunkLayout::new(10, 0).is_err());
        assert!(ChunkLayout::new(10, MAX_CHUNK_SIZE + 16).is_err());
        assert!(
            ChunkLayout::new(u64::from(MIN_CHUNK_SIZE) * MAX_CHUNKS + 1, MIN_CHUNK_SIZE).is_err()
        );
    }

    #[test]
    fn empty_object_has_no_chunks_and_the_rfc6962_empty_root() {
        let m = Manifest::from_object(Hash([1; 32]), 32, &[]).unwrap();
        assert!(m.chunks.is_empty());
        assert_eq!(m.root, Hash::of(b""));
        m.check().unwrap();
    }

    #[test]
    fn streaming_builder_matches_one_shot_for_any_split() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let whole = Manifest::from_object(Hash([2; 32]), 64, &data).unwrap();
        assert_eq!(whole.chunks.len(), 16);
        for piece in [1usize, 3, 16, 63, 64, 65, 999] {
            let mut b = ManifestBuilder::new(Hash([2; 32]), 64).unwrap();
            for p in data.chunks(piece) {
                b.update(p).unwrap();
            }
            assert_eq!(b.finish().unwrap(), whole, "piece size {piece}");
        }
        for (i, c) in data.chunks(64).enumerate() {
            whole.verify_chunk(i as u64, c).unwrap();
        }
        assert_eq!(
            whole.verify_chunk(15, &data[960..999]),
            Err(ManifestError::ChunkLength {
                index: 15,
                got: 39,
                expected: 40
            })
        );
        let mut bad = data[960..].to_vec();
        bad[0] ^= 1;
        assert_eq!(
            whole.verify_chunk(15, &bad),
            Err(ManifestError::ChunkDigest { index: 15 })
        );
    }

    #[test]
    fn signature_binds_everything_and_root_binds_digests() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let publisher = AccountId::from_signing_key(&key);
        let m = Manifest::from_object(Hash([3; 32]), 32, &[9u8; 100]).unwrap();
        let signed = m.sign(&key);
        signed.verify(&publisher).unwrap();

        let mut t = signed.clone();
        t.manifest.size = 99;
        assert!(t.verify(&publisher).is_err());
        let mut t = signed.clone();
        t.manifest.chunks[1].0[0] ^= 1;
        assert!(matches!(
            t.verify(&publisher),
            Err(ManifestError::RootMismatch { .. })
        ));
        let mut t = signed.clone();
        t.manifest.object.0[0] ^= 1;
        assert!(matches!(
            t.verify(&publisher),
            Err(ManifestError::BadSignature { .. })
        ));
        let other = AccountId::from_signing_key(&SigningKey::from_bytes(&[6; 32]));
        assert!(signed.verify(&other).is_err());

        let bytes = signed.encode();
        assert_eq!(SignedManifest::decode_bounded(&bytes).unwrap(), signed);
        let mut trailing = bytes;
        trailing.push(0);
        assert!(SignedManifest::decode_bounded(&trailing).is_err());
    }
}

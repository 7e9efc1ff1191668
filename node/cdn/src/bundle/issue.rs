//! The publisher's side of bundles: preparing each bundle (tickets, puzzle,
//! sealed L2) from an order, and signing a batch of them.

use super::*;

/// One chunk of a bundle to issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkOrder {
    /// Object chunk index.
    pub chunk_index: u64,
    /// Chunk id (its manifest digest).
    pub chunk_id: Hash,
    /// Chunk size in bytes.
    pub size: u32,
    /// The cache that serves it.
    pub cache: AccountId,
    /// The L1 ticket number (unique per escrow; the publisher's counter).
    pub ticket_number: u32,
}

/// Everything the publisher decides for one bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleOrder {
    /// The escrow paying.
    pub escrow: EscrowId,
    /// The lottery round the L1 tickets are for.
    pub round: u64,
    /// The object.
    pub object: ObjectId,
    /// Object size in bytes.
    pub object_size: u64,
    /// Object chunk size in bytes.
    pub chunk_size: u32,
    /// The client.
    pub client: AccountId,
    /// Bundle sequence, never reused for this client in this escrow.
    pub sequence: u64,
    /// Puzzle parameters.
    pub puzzle: PuzzleParams,
    /// The chunks, in position order (1 to 16).
    pub chunks: Vec<ChunkOrder>,
}

/// A bundle with its puzzle, tickets and L2, waiting for the batch signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedBundle {
    remainder: BundleRemainder,
    requests: Vec<TicketRequest>,
    tickets: Vec<Ticket>,
    l2: SealedL2,
    digest: Hash,
    secret: PuzzleSecret,
}

impl PreparedBundle {
    /// The puzzle secret. The publisher keeps it to check the client's
    /// answer and to relay the L2 claim to the bundle's caches if the client
    /// withholds it.
    pub fn secret(&self) -> &PuzzleSecret {
        &self.secret
    }

    /// The bundle digest that will be signed.
    pub fn digest(&self) -> &Hash {
        &self.digest
    }

    /// The remainder (with the puzzle goal).
    pub fn remainder(&self) -> &BundleRemainder {
        &self.remainder
    }
}

/// Prepares a bundle: derives the caches' inner session keys, generates
/// the puzzle (random start, reading only the visited plaintext blocks from
/// `source`), builds the L1 tickets, seals the L2 and computes the digest.
pub fn prepare_bundle<S: BlockSource + ?Sized>(
    order: &BundleOrder,
    escrow_secret: &EscrowSecret,
    source: &mut S,
) -> Result<PreparedBundle, BundleError> {
    prepare(order, escrow_secret, source, None)
}

/// [`prepare_bundle`] with a fixed puzzle start offset (tests and golden vectors).
pub fn prepare_bundle_at<S: BlockSource + ?Sized>(
    order: &BundleOrder,
    escrow_secret: &EscrowSecret,
    source: &mut S,
    start: u64,
) -> Result<PreparedBundle, BundleError> {
    prepare(order, escrow_secret, source, Some(start))
}

fn prepare<S: BlockSource + ?Sized>(
    order: &BundleOrder,
    escrow_secret: &EscrowSecret,
    source: &mut S,
    start: Option<u64>,
) -> Result<PreparedBundle, BundleError> {
    order.puzzle.check(order.chunks.len())?;
    let layout = ChunkLayout::new(order.object_size, order.chunk_size)?;
    let requests: Vec<TicketRequest> = order
        .chunks
        .iter()
        .map(|c| TicketRequest {
            chunk_index: c.chunk_index,
            chunk_id: c.chunk_id,
            cache: c.cache,
            size: c.size,
        })
        .collect();
    check_requests(&layout, &requests)?;

    let inner: Vec<SessionKey> = order
        .chunks
        .iter()
        .map(|c| {
            escrow_secret
                .master_key(&order.escrow, &c.cache, Layer::Inner)
                .session_key(&order.client, order.sequence)
        })
        .collect();
    let covered: Vec<PuzzleChunk> = order
        .puzzle
        .covered_positions()
        .into_iter()
        .filter_map(|p| {
            let c = order.chunks.get(p)?;
            let key = inner.get(p)?.clone();
            let iv = key.chunk_iv(&crate::keys::ChunkAt::new(
                order.object,
                c.chunk_id,
                c.chunk_index,
            ));
            Some(PuzzleChunk {
                chunk: c.chunk_index,
                len: c.size,
                key,
                iv,
            })
        })
        .collect();
    let generated = match start {
        Some(s) => generate_at(&order.puzzle, &covered, source, s)?,
        None => generate(&order.puzzle, &covered, source)?,
    };

    let remainder = BundleRemainder {
        escrow: order.escrow,
        object: order.object,
        object_size: order.object_size,
        chunk_size: order.chunk_size,
        client: order.client,
        sequence: order.sequence,
        puzzle: order.puzzle,
        goal: generated.goal,
    };
    let commitment = generated.secret.commitment();
    let tickets: Vec<Ticket> = order
        .chunks
        .iter()
        .map(|c| Ticket {
            escrow: order.escrow,
            round: order.round,
            number: c.ticket_number,
            cache: c.cache,
            client: order.client,
            chunk: c.chunk_id,
            secret_hash: commitment,
        })
        .collect();
    let remainder_digest = remainder.digest();
    let l2 = seal(&generated.secret, &remainder_digest, &L2Keys { inner });
    let subdigests: Vec<Hash> = requests
        .iter()
        .zip(&tickets)
        .enumerate()
        .map(|(i, (r, t))| chunk_subdigest(position_u8(i), r, &t.hash()))
        .collect();
    let digest = bundle_digest(&remainder_digest, &l2.digest(), &subdigests);
    Ok(PreparedBundle {
        remainder,
        requests,
        tickets,
        l2,
        digest,
        secret: generated.secret,
    })
}

/// Signs a batch of prepared bundles: every L1 through the MicroCash batch
/// signer, and the bundle digests under one Merkle root and one signature.
/// `signer` is the escrow's ticket signer.
pub fn sign_bundles(
    signer: &SigningKey,
    prepared: Vec<PreparedBundle>,
) -> Result<Vec<Bundle>, BundleError> {
    if prepared.is_empty() {
        return Err(BundleError::EmptyBatch);
    }
    if prepared.len() > MAX_BATCH {
        return Err(BundleError::BatchTooLarge {
            got: prepared.len(),
            max: MAX_BATCH,
        });
    }
    let mut tree = MemoryBackedTree::<Sha256, TaggedLeaf>::new();
    for p in &prepared {
        tree.push(TaggedLeaf {
            tag: tags::BATCH_LEAF,
            value: p.digest.0,
        });
    }
    let root = Hash((*tree.root().as_bytes()).into());
    let batch_size = u32::try_from(prepared.len()).unwrap_or(u32::MAX);
    let signature = Signature(signer.sign(&batch_payload(&root, batch_size)).to_bytes());

    let all: Vec<Ticket> = prepared
        .iter()
        .flat_map(|p| p.tickets.iter().cloned())
        .collect();
    let expected = all.len();
    let signed = sign_tickets_batch(signer, all);
    if signed.len() != expected {
        return Err(BundleError::TicketSigner {
            got: signed.len(),
            expected,
        });
    }
    let mut signed = signed.into_iter();

    let mut out = Vec::with_capacity(prepared.len());
    for (index, p) in prepared.into_iter().enumerate() {
        let path: Vec<Hash> =
            cachecash_runtime::microcash::proof_path(tree.prove_inclusion(index).as_bytes());
        let mut chunks = Vec::with_capacity(p.requests.len());
        for (request, ticket) in p.requests.into_iter().zip(p.tickets) {
            match signed.next() {
                Some(l1) if l1.ticket == ticket => chunks.push(BundleChunk { request, l1 }),
                _ => {
                    return Err(BundleError::TicketSigner {
                        got: chunks.len(),
                        expected,
                    });
                }
            }
        }
        out.push(Bundle {
            remainder: p.remainder,
            chunks,
            l2: p.l2,
            auth: BatchAuth {
                root,
                batch_size,
                index: u32::try_from(index).unwrap_or(u32::MAX),
                path,
                signature,
            },
        });
    }
    Ok(out)
}

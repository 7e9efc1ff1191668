//! Error types. Each message says what was wrong and what to do about it.
//!
//! The errors are small (no variant carries more than two 32-byte values) so
//! that `Result`s stay cheap to return on hot paths, and all of them are
//! `Clone + PartialEq + Eq + Send + Sync` so services can log, count and
//! compare them.

use cachecash_runtime::{AccountId, Hash};

/// A wire message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message is larger than its type allows; it was not parsed.
    #[error(
        "{message} is {got} bytes, over its limit of {limit} bytes; drop it (the sender is broken or hostile)"
    )]
    TooLarge {
        /// Message type.
        message: &'static str,
        /// Bytes received.
        got: usize,
        /// The type's limit.
        limit: usize,
    },
    /// The bytes are not a valid SCALE encoding of the type, or bytes are left over.
    #[error(
        "{message} is not a valid SCALE encoding ({reason}); drop it and do not retry the same bytes"
    )]
    Malformed {
        /// Message type.
        message: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The message decoded but breaks a protocol bound (a vector too long, an index out of range).
    #[error("{message} breaks a protocol bound: {reason}; drop it")]
    OutOfBounds {
        /// Message type.
        message: &'static str,
        /// Which bound.
        reason: String,
    },
}

/// The operating system's random number generator failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the operating system's random number generator failed ({0}); retry later, and check the host if it persists"
)]
pub struct RngError(pub String);

/// Keystream positioning failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// The requested block is beyond the cipher's keystream.
    #[error(
        "cannot seek the keystream to block {block}: it is beyond the 128-bit counter; this is a bug in the caller"
    )]
    Seek {
        /// Requested block index.
        block: u64,
    },
}

/// An object layout or manifest is invalid, or a chunk does not match it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The chunk size is out of range or not a multiple of 16.
    #[error(
        "chunk size {chunk_size} is invalid: use a multiple of 16 between {min} and {max} bytes (default 131072)"
    )]
    BadChunkSize {
        /// Requested chunk size.
        chunk_size: u32,
        /// Smallest allowed.
        min: u32,
        /// Largest allowed.
        max: u32,
    },
    /// The object would have too many chunks.
    #[error(
        "an object of {size} bytes in {chunk_size}-byte chunks has {chunks} chunks, over the limit of {max}; use a larger chunk size"
    )]
    TooManyChunks {
        /// Object size.
        size: u64,
        /// Chunk size.
        chunk_size: u32,
        /// Chunks it would have.
        chunks: u64,
        /// Limit.
        max: u64,
    },
    /// The manifest's digest list does not fit its size and chunk size.
    #[error(
        "the manifest lists {got} chunk digests but {size} bytes in {chunk_size}-byte chunks make {expected}; the manifest is corrupt, fetch it again"
    )]
    ChunkCount {
        /// Digests listed.
        got: u64,
        /// Digests expected.
        expected: u64,
        /// Object size.
        size: u64,
        /// Chunk size.
        chunk_size: u32,
    },
    /// The manifest's root is not the Merkle root of its digests.
    #[error(
        "the manifest root {claimed} is not the Merkle root {computed} of its chunk digests; the manifest is corrupt or tampered, fetch it again"
    )]
    RootMismatch {
        /// Root in the manifest.
        claimed: Hash,
        /// Root of the listed digests.
        computed: Hash,
    },
    /// A chunk index is beyond the object.
    #[error("chunk {index} does not exist: the object has {count} chunks")]
    NoSuchChunk {
        /// Requested index.
        index: u64,
        /// Chunks in the object.
        count: u64,
    },
    /// A chunk has the wrong length.
    #[error(
        "chunk {index} is {got} bytes but the manifest says {expected}; discard it and fetch it from another cache"
    )]
    ChunkLength {
        /// Chunk index.
        index: u64,
        /// Bytes received.
        got: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// A chunk's bytes do not hash to its manifest digest.
    #[error(
        "chunk {index} does not match its manifest digest; discard it and fetch it from another cache"
    )]
    ChunkDigest {
        /// Chunk index.
        index: u64,
    },
    /// The manifest signature does not verify.
    #[error(
        "the manifest signature does not verify against publisher {publisher} ({reason}); do not use this manifest"
    )]
    BadSignature {
        /// Expected publisher.
        publisher: AccountId,
        /// Why.
        reason: String,
    },
}

/// Invalid puzzle parameters or inputs, or a failed solve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PuzzleError {
    /// A bundle must hold 1..=16 chunks.
    #[error("a bundle has {got} chunks; it must have between 1 and {max}")]
    BundleSize {
        /// Chunks in the bundle.
        got: usize,
        /// Limit.
        max: usize,
    },
    /// The cover mask is empty.
    #[error("the puzzle covers no chunk (cover mask 0); cover at least one chunk")]
    NothingCovered,
    /// The cover mask names positions past the end of the bundle.
    #[error(
        "cover mask {mask:#06x} names chunks beyond the bundle's {chunks}; use only bits 0..{chunks}"
    )]
    CoverOutOfRange {
        /// The mask.
        mask: u16,
        /// Chunks in the bundle.
        chunks: usize,
    },
    /// R·k < 3: the walk has at most one step, so its secret is the public initial state.
    #[error(
        "R·k = {product} is degenerate: the walk needs R·k ≥ 3 or its secret is a public constant; raise the rounds or cover more chunks"
    )]
    Degenerate {
        /// Rounds times covered chunks.
        product: usize,
    },
    /// R < 2: the last covered chunk would never be visited.
    #[error(
        "{rounds} round(s) is too few: with fewer than 2 rounds the last covered chunk is never visited; use at least 2"
    )]
    TooFewRounds {
        /// Requested rounds.
        rounds: u8,
    },
    /// R above the limit.
    #[error("{rounds} rounds is over the limit of {max}; use fewer rounds")]
    TooManyRounds {
        /// Requested rounds.
        rounds: u8,
        /// Limit.
        max: u8,
    },
    /// The start range is empty.
    #[error("the start range is 0; use at least 1 (the deployed value is 8192)")]
    EmptyStartRange,
    /// A covered chunk is empty.
    #[error("covered chunk {chunk} is empty; empty chunks cannot be in a puzzle")]
    EmptyChunk {
        /// Index among the covered chunks.
        chunk: usize,
    },
    /// The number of chunks given does not match the cover mask.
    #[error(
        "the puzzle covers {expected} chunks but {got} were given; pass exactly the covered chunks, in bundle order"
    )]
    ChunkCount {
        /// Covered chunks.
        expected: usize,
        /// Chunks given.
        got: usize,
    },
    /// A start offset outside the effective start range.
    #[error("start offset {start} is outside the start range [0, {range})")]
    StartOutOfRange {
        /// Offset given.
        start: u64,
        /// Effective range.
        range: u64,
    },
    /// The plaintext block source failed.
    #[error(
        "reading plaintext block {block} of chunk {chunk} failed ({reason}); check the object store"
    )]
    Source {
        /// Object chunk index.
        chunk: u64,
        /// Block index within the chunk.
        block: u64,
        /// What the source said.
        reason: String,
    },
    /// The keystream could not be positioned.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// No random start offset could be drawn.
    #[error(transparent)]
    Rng(#[from] RngError),
    /// No start offset reaches the goal.
    #[error(
        "no start offset in [0, {tried}) reaches the goal: a covered chunk is missing or corrupt; fetch the bundle's chunks again and blame their caches"
    )]
    NoSolution {
        /// Offsets tried.
        tried: u64,
    },
    /// A claimed solution does not reach the goal.
    #[error(
        "the walk from start offset {start} does not reach the goal; the claimed solution is wrong"
    )]
    WrongGoal {
        /// Claimed start offset.
        start: u64,
    },
}

/// The L2 ticket could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum L2Error {
    /// The MAC does not verify.
    #[error(
        "the L2 does not authenticate: wrong puzzle secret, L2 of another bundle, or tampered ciphertext; do not trust it"
    )]
    BadTag,
    /// The ciphertext is larger than any valid L2.
    #[error("the L2 ciphertext is {got} bytes, over the limit of {max}; drop it")]
    TooLarge {
        /// Bytes received.
        got: usize,
        /// Limit.
        max: usize,
    },
    /// The decrypted plaintext is malformed (the publisher sealed garbage).
    #[error(
        "the authenticated L2 plaintext is malformed ({0}); the publisher is broken, report it"
    )]
    Malformed(#[from] DecodeError),
}

/// A bundle, a cache request or a ticket failed its checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Puzzle parameters or solving failed.
    #[error(transparent)]
    Puzzle(#[from] PuzzleError),
    /// The L2 could not be opened.
    #[error(transparent)]
    L2(#[from] L2Error),
    /// The object layout or manifest check failed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A ticket request's size is not the size of that chunk of the object.
    #[error(
        "chunk {index} at position {position} is declared as {got} bytes but the object layout makes it {expected}; the bundle is invalid"
    )]
    ChunkSize {
        /// Position in the bundle.
        position: usize,
        /// Object chunk index.
        index: u64,
        /// Declared size.
        got: u32,
        /// Size from the layout.
        expected: u32,
    },
    /// The same object chunk appears twice in one bundle.
    #[error("chunk {index} appears twice in one bundle; each chunk may appear once")]
    DuplicateChunk {
        /// Object chunk index.
        index: u64,
    },
    /// The request is addressed to another cache.
    #[error(
        "this request is for cache {got}, not for this cache {expected}; the client sent it to the wrong cache"
    )]
    WrongCache {
        /// This cache.
        expected: AccountId,
        /// Cache named in the request.
        got: AccountId,
    },
    /// The bundle is for another client.
    #[error("this bundle is for client {got}, not for {expected}; do not use it")]
    WrongClient {
        /// This client.
        expected: AccountId,
        /// Client named in the bundle.
        got: AccountId,
    },
    /// A position is outside the bundle.
    #[error("position {position} is outside a bundle of {chunks} chunks")]
    BadPosition {
        /// Position given.
        position: usize,
        /// Chunks in the bundle.
        chunks: usize,
    },
    /// A cache's own subdigest does not match the list it was given.
    #[error(
        "the subdigest of position {position} does not match the request and L1 hash; the request was tampered with, refuse it"
    )]
    SubdigestMismatch {
        /// Position.
        position: usize,
    },
    /// The batch proof is malformed or out of range.
    #[error("the batch authentication is malformed ({reason}); refuse the bundle")]
    BadBatch {
        /// Why.
        reason: String,
    },
    /// The bundle digest is not in the signed batch.
    #[error(
        "the bundle digest is not in the signed batch ({reason}); the bundle was tampered with, refuse it"
    )]
    NotInBatch {
        /// Why.
        reason: String,
    },
    /// The batch signature does not verify against the escrow's ticket signer.
    #[error(
        "the batch signature does not verify against the escrow's ticket signer {signer} ({reason}); refuse the bundle"
    )]
    BadSignature {
        /// Expected signer.
        signer: AccountId,
        /// Why.
        reason: String,
    },
    /// An L1 ticket disagrees with the bundle.
    #[error(
        "the L1 ticket at position {position} disagrees with the bundle on its {field}; refuse it"
    )]
    L1Mismatch {
        /// Position.
        position: usize,
        /// Which field.
        field: &'static str,
    },
    /// An L1 ticket's signature does not verify.
    #[error("the L1 ticket at position {position} does not verify ({reason}); refuse it")]
    BadL1 {
        /// Position.
        position: usize,
        /// What the ticket check said.
        reason: String,
    },
    /// A sealed L2 is not the one the bundle names.
    #[error("the sealed L2 is not the one this bundle was signed with; refuse the claim")]
    L2DigestMismatch,
    /// A puzzle secret does not match the L1's commitment.
    #[error(
        "the puzzle secret does not match the L1 ticket's secret commitment; the client did not solve this bundle's puzzle"
    )]
    SecretMismatch,
    /// The L2 holds the wrong number of keys.
    #[error(
        "the L2 holds {got} inner keys but the bundle has {expected} chunks; the publisher is broken, report it"
    )]
    KeyCount {
        /// Keys in the L2.
        got: usize,
        /// Chunks in the bundle.
        expected: usize,
    },
    /// The L2 holds another key than this cache's inner session key.
    #[error(
        "the L2 holds another inner key for position {position} than this cache's; the publisher is broken, report it"
    )]
    InnerKeyMismatch {
        /// Position.
        position: usize,
    },
    /// The bundle is for another object than the manifest.
    #[error("the bundle is for object {got}, not for object {expected} of this manifest")]
    ObjectMismatch {
        /// Manifest's object.
        expected: Hash,
        /// Bundle's object.
        got: Hash,
    },
    /// The bundle's layout disagrees with the manifest.
    #[error(
        "the bundle declares object size {size} and chunk size {chunk_size}, which differ from the manifest; refuse it"
    )]
    LayoutMismatch {
        /// Declared size.
        size: u64,
        /// Declared chunk size.
        chunk_size: u32,
    },
    /// A chunk id disagrees with the manifest.
    #[error(
        "chunk {index} at position {position} has another id than the manifest's digest; refuse the bundle"
    )]
    ChunkIdMismatch {
        /// Position.
        position: usize,
        /// Object chunk index.
        index: u64,
    },
    /// Chunk data given to the solver has the wrong length.
    #[error(
        "the data for position {position} is {got} bytes but the bundle says {expected}; fetch that chunk again"
    )]
    ChunkData {
        /// Position.
        position: usize,
        /// Bytes given.
        got: usize,
        /// Declared size.
        expected: u32,
    },
    /// Nothing to sign.
    #[error("no bundles to sign; pass at least one")]
    EmptyBatch,
    /// Too many bundles for one batch signature.
    #[error(
        "{got} bundles are too many for one batch signature; split them into batches of at most {max}"
    )]
    BatchTooLarge {
        /// Bundles given.
        got: usize,
        /// Limit.
        max: usize,
    },
    /// The ticket signer returned another number of tickets than it was given.
    #[error(
        "the ticket signer returned {got} signed tickets for {expected} tickets; this is a bug in the ticket module"
    )]
    TicketSigner {
        /// Signed tickets returned.
        got: usize,
        /// Tickets given.
        expected: usize,
    },
}

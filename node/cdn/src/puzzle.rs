//! The colocation puzzle (CAPnet): a client must hold every covered chunk of
//! a bundle, inner-encrypted under its own session keys, to find the secret
//! that opens the L2 and with it the inner keys.
//!
//! # The walk
//!
//! The puzzle covers `k` chunks of a bundle (a bit mask over the bundle's
//! positions; the "3 of 4" variant covers three), taken in bundle order.
//! Each chunk is seen as `n_c = ceil(len_c / 16)` blocks of 16 bytes; a
//! trailing partial block is zero-padded to 16 bytes (the padding is added
//! to the inner-encrypted bytes, it is never encrypted). Empty chunks cannot
//! be covered.
//!
//! ```text
//! state  = SHA-256("cachecash/puzzle/v1")              initial chain value
//! f      = first covered chunk with the most blocks    where the walk starts
//! offset = s                                           start offset, s < min(start_range, n_f)
//! for t in 0 .. R·k − 1:                               R·k − 1 steps
//!     c      = (f + t) mod k                           round-robin from chunk f
//!     prev   = state
//!     state  = SHA-256(state ‖ block(c, offset))       48-byte message, ONE compression
//!     offset = LE64(state[24..32]) mod n_{(c+1) mod k}  next chunk's block
//! goal = state, secret = prev
//! ```
//!
//! `SHA-256` of a 48-byte message is exactly one compression: the 64-byte
//! block is `state (32) ‖ block (16) ‖ 0x80 ‖ 0x00 × 7 ‖ BE64(384)`, the
//! standard padding serving as the 16 fixed bytes. The implementation calls
//! `sha2::block_api::compress256` on that block from the standard IV, and a
//! test checks it against `Sha256::digest`, so any SHA-256 library can
//! recompute a walk. Domain separation comes from the tagged initial state.
//!
//! # Why SHA-256 and not the prototype's SHA-384
//!
//! - Cost: SHA-384 runs the SHA-512 compression (80 rounds on 64-bit words,
//!   128-byte blocks); a 64-byte step still costs one of those. One SHA-256
//!   compression is cheaper in software and much cheaper with the SHA-NI /
//!   ARMv8 SHA-2 instructions, which accelerate SHA-256 only. The puzzle is
//!   meant to cost bandwidth (moving the chunks), not hashing, so a cheaper
//!   step only helps honest clients.
//! - Size: a 32-byte chain value is exactly a 256-bit HKDF input for the L2
//!   keys and fits AES-128 key ‖ IV; the prototype truncated 48 bytes.
//! - Security: the walk relies on preimage resistance (secret from goal) and
//!   unpredictable offsets; SHA-256 gives 256-bit preimage and 128-bit
//!   collision resistance, matching the AES-128 layers around it.
//!
//! # Parameters
//!
//! The parameters ([`PuzzleParams`]) are the rounds `R`, the start range
//! and the cover mask. Rejected:
//! `R·k < 3` (one step: the secret would be the public initial state; this
//! includes the `R·k ≤ 1` case), `R < 2` (the last covered chunk would never
//! be visited, so a client could skip it), `R > 32`, an empty or
//! out-of-bundle mask and a zero start range. The effective start range is
//! `min(start_range, n_f)`; its size is the solver's work factor.
//!
//! The walk starts in the largest covered chunk (the first of them in
//! bundle order; with equal chunks, chunk 0) so that an object's short last
//! chunk placed first cannot shrink the start range. A tiny range would
//! let a colluding client solve from the few blocks a cache hands it one at
//! a time, instead of having to hold the chunks.
//!
//! # Generating, solving, verifying
//!
//! - [`generate`] draws `s` from the OS CSPRNG and walks the blocks it
//!   visits only: for each it reads those plaintext bytes through a
//!   [`BlockSource`] and encrypts them by seeking the inner AES-CTR stream
//!   to that block. It costs `R·k − 1` compressions and as many one-block AES
//!   operations, and never needs a chunk in memory.
//! - [`solve`] tries every start offset of the range until the goal
//!   matches (early exit); [`solve_parallel`] splits the range over scoped
//!   threads that stop as soon as one finds it. Expected cost: half the range
//!   times `R·k − 1` compressions (R = 2, k = 4, 128 KiB chunks: up to
//!   8192 × 7 = 57,344).
//! - [`verify`] re-runs one walk from a claimed start.
//!
//! # Security intuition
//!
//! Every step reads a block chosen by the previous hash, so a client missing
//! (part of) a covered chunk cannot know in advance which blocks it needs and
//! fails the walks that touch what it lacks; a single wrong bit in a visited
//! block changes every later state. The bytes walked are inner-encrypted
//! under per-client, per-cache session keys, so a solution helps nobody else.

use core::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use cachecash_runtime::Hash;
use parity_scale_codec::{Decode, Encode};
use sha2::block_api::compress256;
use sha2::{Digest, Sha256};

use crate::error::{PuzzleError, RngError};
use crate::keys::{ChunkIv, PuzzleSecret, SessionKey};
use crate::layers::BLOCK_SIZE;
use crate::tags;
use aes::cipher::{BlockCipherEncrypt, KeyInit};

/// Most chunks in a bundle (and so in a puzzle).
pub const MAX_BUNDLE_CHUNKS: usize = 16;
/// Most rounds.
pub const MAX_ROUNDS: u8 = 32;
/// The deployed number of rounds.
pub const DEFAULT_ROUNDS: u8 = 2;
/// The deployed start range: every block of a 128 KiB chunk.
pub const DEFAULT_START_RANGE: u32 = 8192;

/// Per-request puzzle parameters, carried in the bundle remainder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub struct PuzzleParams {
    /// Rounds `R` over the covered chunks.
    pub rounds: u8,
    /// Start offsets are drawn from `[0, min(start_range, n_0))`.
    pub start_range: u32,
    /// Bit `i` set = bundle position `i` is covered.
    pub covered: u16,
}

impl PuzzleParams {
    /// Parameters covering the first `chunks` positions (all of a bundle of that size).
    pub fn covering_all(rounds: u8, start_range: u32, chunks: usize) -> Self {
        let mask = (1u32 << chunks.min(MAX_BUNDLE_CHUNKS)).wrapping_sub(1);
        Self {
            rounds,
            start_range,
            covered: u16::try_from(mask).unwrap_or(u16::MAX),
        }
    }

    /// Number of covered chunks `k`.
    pub fn covered_count(&self) -> usize {
        self.covered.count_ones() as usize
    }

    /// Whether bundle position `position` is covered.
    pub fn covers(&self, position: usize) -> bool {
        position < MAX_BUNDLE_CHUNKS && (self.covered >> position) & 1 == 1
    }

    /// The covered positions, in bundle order.
    pub fn covered_positions(&self) -> Vec<usize> {
        (0..MAX_BUNDLE_CHUNKS).filter(|&p| self.covers(p)).collect()
    }

    /// Checks the parameters for a bundle of `bundle_chunks` chunks; returns `k`.
    pub fn check(&self, bundle_chunks: usize) -> Result<usize, PuzzleError> {
        if bundle_chunks == 0 || bundle_chunks > MAX_BUNDLE_CHUNKS {
            return Err(PuzzleError::BundleSize {
                got: bundle_chunks,
                max: MAX_BUNDLE_CHUNKS,
            });
        }
        if self.covered == 0 {
            return Err(PuzzleError::NothingCovered);
        }
        if bundle_chunks < MAX_BUNDLE_CHUNKS && self.covered >> bundle_chunks != 0 {
            return Err(PuzzleError::CoverOutOfRange {
                mask: self.covered,
                chunks: bundle_chunks,
            });
        }
        let k = self.covered_count();
        self.check_walk(k)?;
        Ok(k)
    }

    /// Checks rounds and start range for a walk over `k` chunks.
    pub fn check_walk(&self, k: usize) -> Result<(), PuzzleError> {
        let product = usize::from(self.rounds).saturating_mul(k);
        if product < 3 {
            return Err(PuzzleError::Degenerate { product });
        }
        if self.rounds < 2 {
            return Err(PuzzleError::TooFewRounds {
                rounds: self.rounds,
            });
        }
        if self.rounds > MAX_ROUNDS {
            return Err(PuzzleError::TooManyRounds {
                rounds: self.rounds,
                max: MAX_ROUNDS,
            });
        }
        if self.start_range == 0 {
            return Err(PuzzleError::EmptyStartRange);
        }
        Ok(())
    }

    /// The effective start range when the largest covered chunk (where the
    /// walk starts) is `largest_len` bytes long.
    pub fn effective_start_range(&self, largest_len: u64) -> u64 {
        block_count(largest_len).min(u64::from(self.start_range))
    }
}

/// Number of 16-byte blocks in a chunk of `len` bytes (a partial block counts).
pub fn block_count(len: u64) -> u64 {
    len.div_ceil(BLOCK_SIZE as u64)
}

/// The error a [`BlockSource`] returns.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Random access to plaintext blocks of an object, for puzzle generation.
///
/// `read_block(chunk, block, out)` fills `out` with bytes
/// `16·block .. 16·block + out.len()` of object chunk `chunk`. `out` is 16
/// bytes long, except for a chunk's trailing partial block, where it is
/// exactly the bytes that exist. Closures
/// `FnMut(u64, u64, &mut [u8]) -> Result<(), SourceError>` implement it
/// (annotate the closure's `&mut [u8]` parameter).
pub trait BlockSource {
    /// Reads one plaintext block (see the trait documentation).
    fn read_block(&mut self, chunk: u64, block: u64, out: &mut [u8]) -> Result<(), SourceError>;
}

impl<F> BlockSource for F
where
    F: FnMut(u64, u64, &mut [u8]) -> Result<(), SourceError>,
{
    fn read_block(&mut self, chunk: u64, block: u64, out: &mut [u8]) -> Result<(), SourceError> {
        self(chunk, block, out)
    }
}

/// A [`BlockSource`] over an object held in memory.
#[derive(Clone, Copy, Debug)]
pub struct MemorySource<'a> {
    data: &'a [u8],
    chunk_size: u32,
}

impl<'a> MemorySource<'a> {
    /// The object `data`, cut into `chunk_size`-byte chunks.
    pub fn new(data: &'a [u8], chunk_size: u32) -> Self {
        Self { data, chunk_size }
    }
}

impl BlockSource for MemorySource<'_> {
    fn read_block(&mut self, chunk: u64, block: u64, out: &mut [u8]) -> Result<(), SourceError> {
        let chunk_start = chunk.checked_mul(u64::from(self.chunk_size));
        let block_start = block.checked_mul(BLOCK_SIZE as u64);
        let start = chunk_start
            .zip(block_start)
            .and_then(|(c, b)| c.checked_add(b))
            .and_then(|s| usize::try_from(s).ok());
        let end = start.and_then(|s| s.checked_add(out.len()));
        let src = start
            .zip(end)
            .and_then(|(s, e)| self.data.get(s..e))
            .ok_or_else(|| {
                SourceError::from(format!(
                    "block {block} of chunk {chunk} is outside the object"
                ))
            })?;
        out.copy_from_slice(src);
        Ok(())
    }
}

/// One covered chunk, as the publisher knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PuzzleChunk {
    /// Object chunk index (passed to the [`BlockSource`]).
    pub chunk: u64,
    /// Chunk length in bytes.
    pub len: u32,
    /// The chunk's inner session key.
    pub key: SessionKey,
    /// The chunk's inner IV.
    pub iv: ChunkIv,
}

/// A generated puzzle: the goal goes to the client, the secret seals the L2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// Last chain value of the walk.
    pub goal: Hash,
    /// Second-to-last chain value.
    pub secret: PuzzleSecret,
    /// The start offset (the publisher should forget it).
    pub start: u64,
}

/// A solved puzzle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Solution {
    /// The start offset that reaches the goal.
    pub start: u64,
    /// The secret.
    pub secret: PuzzleSecret,
}

const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256 padding of a 48-byte message: 0x80, seven zeros, BE64(384).
const STEP_PADDING: [u8; 16] = [0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x80];

/// A chain value as the eight big-endian words SHA-256 works on.
type Words = [u32; 8];

fn to_words(bytes: &[u8; 32]) -> Words {
    core::array::from_fn(|i| {
        let mut word = [0u8; 4];
        word.copy_from_slice(&bytes[4 * i..4 * i + 4]);
        u32::from_be_bytes(word)
    })
}

fn to_bytes(words: &Words) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (dst, word) in out.chunks_exact_mut(4).zip(words) {
        dst.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// A walk before its first step, from the tagged initial chain value;
/// built once, copied for every walk.
fn initial_lane(start: u64) -> Lane {
    static INIT: std::sync::OnceLock<Lane> = std::sync::OnceLock::new();
    let init = INIT.get_or_init(|| Lane::new(&to_words(&Sha256::digest(tags::PUZZLE).into()), 0));
    Lane {
        offset: start,
        ..*init
    }
}

/// One walk in progress.
///
/// The 64-byte compression input is kept between steps: its first 32 bytes
/// are the chain value, the last 16 the fixed padding, so a step only
/// writes the visited block and, after compressing, the new chain value.
/// The chain value also stays in words, so the next offset and the goal
/// comparison need no byte conversion.
#[derive(Clone, Copy)]
struct Lane {
    message: [u8; 64],
    state: Words,
    prev: Words,
    offset: u64,
}

impl Lane {
    fn new(init: &Words, start: u64) -> Self {
        let mut message = [0u8; 64];
        message[..32].copy_from_slice(&to_bytes(init));
        message[48..].copy_from_slice(&STEP_PADDING);
        Self {
            message,
            state: *init,
            prev: *init,
            offset: start,
        }
    }

    /// `state = SHA-256(state ‖ block)` as one compression from the IV.
    /// After the `last` step the compression input is not needed again.
    #[inline(always)]
    fn step(&mut self, block: &[u8; 16], last: bool) {
        self.message[32..48].copy_from_slice(block);
        let mut h = SHA256_IV;
        compress256(&mut h, core::slice::from_ref(&self.message));
        self.prev = self.state;
        self.state = h;
        if !last {
            for (dst, word) in self.message[..32].chunks_exact_mut(4).zip(h) {
                dst.copy_from_slice(&word.to_be_bytes());
            }
        }
    }

    /// `LE64(state[24..32])`: the bytes of words 6 and 7, read little-endian.
    #[inline(always)]
    fn tail(&self) -> u64 {
        u64::from(self.state[6].swap_bytes()) | (u64::from(self.state[7].swap_bytes()) << 32)
    }
}

/// Reduction of a 64-bit value modulo a chunk's block count: a mask when
/// the count is a power of two (every full-size chunk), a division otherwise.
#[derive(Clone, Copy, Debug)]
struct Modulus {
    count: u64,
    mask: Option<u64>,
}

impl Modulus {
    fn new(count: u64) -> Self {
        let count = count.max(1);
        Self {
            count,
            mask: count.is_power_of_two().then(|| count - 1),
        }
    }

    #[inline(always)]
    fn reduce(self, value: u64) -> u64 {
        match self.mask {
            Some(mask) => value & mask,
            None => value % self.count,
        }
    }
}

impl Default for Modulus {
    fn default() -> Self {
        Self::new(1)
    }
}

/// A checked walk: steps, covered chunks, their block counts and the
/// effective start range. Fixed-size, so generating allocates nothing.
#[derive(Clone, Copy, Debug)]
struct Shape {
    steps: usize,
    k: usize,
    /// The covered chunk the walk starts in: the first with the most blocks.
    first: usize,
    moduli: [Modulus; MAX_BUNDLE_CHUNKS],
    range: u64,
}

impl Shape {
    /// Validates the parameters for covered chunks of lengths `lens`.
    fn new(
        params: &PuzzleParams,
        lens: impl ExactSizeIterator<Item = u64>,
    ) -> Result<Self, PuzzleError> {
        let k = params.covered_count();
        if lens.len() != k {
            return Err(PuzzleError::ChunkCount {
                expected: k,
                got: lens.len(),
            });
        }
        params.check_walk(k)?;
        let mut moduli = [Modulus::default(); MAX_BUNDLE_CHUNKS];
        let (mut first, mut most, mut largest_len) = (0, 0, 0);
        for (chunk, (len, slot)) in lens.zip(moduli.iter_mut()).enumerate() {
            let count = block_count(len);
            if count == 0 {
                return Err(PuzzleError::EmptyChunk { chunk });
            }
            if count > most {
                (first, most, largest_len) = (chunk, count, len);
            }
            *slot = Modulus::new(count);
        }
        Ok(Self {
            steps: usize::from(params.rounds)
                .saturating_mul(k)
                .saturating_sub(1),
            k,
            first,
            moduli,
            range: params.effective_start_range(largest_len),
        })
    }

    fn modulus(&self, chunk: usize) -> Modulus {
        self.moduli.get(chunk).copied().unwrap_or_default()
    }
}

/// Runs `N` walks from `starts` in lockstep; `fetch(lane, c, o)` returns
/// block `o` of covered chunk `c` for that lane. Returns each lane's final
/// state and the one before it (goal and secret).
///
/// One SHA-256 compression is latency-bound (~45 ns with SHA-NI here); the
/// lanes' chains are independent, so the CPU overlaps their compressions.
#[inline(always)]
fn run_walks<const N: usize>(
    shape: &Shape,
    starts: [u64; N],
    mut fetch: impl FnMut(usize, usize, u64) -> [u8; 16],
) -> [(Words, Words); N] {
    let mut lanes: [Lane; N] = starts.map(initial_lane);
    let mut chunk = shape.first;
    for t in 0..shape.steps {
        let last = t + 1 == shape.steps;
        let next = if chunk + 1 >= shape.k { 0 } else { chunk + 1 };
        // All lanes' compressions first, then all next offsets: the
        // compressions are issued back to back, so they overlap.
        for (i, lane) in lanes.iter_mut().enumerate() {
            let block = fetch(i, chunk, lane.offset);
            lane.step(&block, last);
        }
        let modulus = shape.modulus(next);
        for lane in &mut lanes {
            lane.offset = modulus.reduce(lane.tail());
        }
        chunk = next;
    }
    lanes.map(|lane| (lane.state, lane.prev))
}

/// A covered chunk as the solver reads it: its whole 16-byte blocks, and
/// the trailing partial block zero-padded (zeros if there is none).
#[derive(Clone, Copy)]
struct ChunkBlocks<'a> {
    whole: &'a [[u8; 16]],
    tail: [u8; 16],
}

impl<'a> ChunkBlocks<'a> {
    fn new(chunk: &'a [u8]) -> Self {
        let (whole, rest) = chunk.as_chunks::<16>();
        let mut tail = [0u8; 16];
        for (d, s) in tail.iter_mut().zip(rest) {
            *d = *s;
        }
        Self { whole, tail }
    }

    /// Block `block`, zero-padded; blocks past the end read as the padded tail.
    #[inline(always)]
    fn block(&self, block: u64) -> [u8; 16] {
        usize::try_from(block)
            .ok()
            .and_then(|b| self.whole.get(b))
            .copied()
            .unwrap_or(self.tail)
    }
}

fn chunk_tables<'a>(chunks: &[&'a [u8]]) -> Vec<ChunkBlocks<'a>> {
    chunks.iter().map(|c| ChunkBlocks::new(c)).collect()
}

/// Block `block` of covered chunk `c` of `tables` (the solver's and
/// verifier's `fetch`).
#[inline(always)]
fn table_block(tables: &[ChunkBlocks<'_>], c: usize, block: u64) -> [u8; 16] {
    tables.get(c).map_or([0u8; 16], |t| t.block(block))
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

fn solver_shape(params: &PuzzleParams, chunks: &[&[u8]]) -> Result<Shape, PuzzleError> {
    Shape::new(params, chunks.iter().map(|c| len_u64(c.len())))
}

/// OS CSPRNG output fetched 4 KiB at a time: one system call serves 256
/// puzzles. Every byte is used once and never leaves the thread.
struct RandomPool {
    bytes: [u8; 4096],
    used: usize,
}

thread_local! {
    static POOL: std::cell::RefCell<RandomPool> = const {
        std::cell::RefCell::new(RandomPool { bytes: [0; 4096], used: 4096 })
    };
}

/// A uniform value in `[0, range)` from the OS CSPRNG (bias below 2⁻⁶⁴).
fn random_below(range: u64) -> Result<u64, RngError> {
    let mut bytes = [0u8; 16];
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.used + bytes.len() > pool.bytes.len() {
            getrandom::fill(&mut pool.bytes).map_err(|e| RngError(e.to_string()))?;
            pool.used = 0;
        }
        let used = pool.used;
        bytes.copy_from_slice(&pool.bytes[used..used + 16]);
        // Erase what was handed out, so the pool never holds a used value.
        pool.bytes[used..used + 16].fill(0);
        pool.used += 16;
        Ok::<(), RngError>(())
    })?;
    let wide = u128::from_le_bytes(bytes) % u128::from(range.max(1));
    Ok(u64::try_from(wide).unwrap_or(0))
}

fn publisher_shape(params: &PuzzleParams, chunks: &[PuzzleChunk]) -> Result<Shape, PuzzleError> {
    Shape::new(params, chunks.iter().map(|c| u64::from(c.len)))
}

/// Generates a puzzle with a start offset from the OS CSPRNG.
///
/// `chunks` are the covered chunks in bundle order. Only the `R·k − 1`
/// visited blocks are read from `source`.
pub fn generate<S: BlockSource + ?Sized>(
    params: &PuzzleParams,
    chunks: &[PuzzleChunk],
    source: &mut S,
) -> Result<Generated, PuzzleError> {
    let shape = publisher_shape(params, chunks)?;
    let start = random_below(shape.range)?;
    generate_shaped(&shape, chunks, source, start)
}

/// Generates a puzzle from a given start offset (tests and golden vectors).
pub fn generate_at<S: BlockSource + ?Sized>(
    params: &PuzzleParams,
    chunks: &[PuzzleChunk],
    source: &mut S,
    start: u64,
) -> Result<Generated, PuzzleError> {
    let shape = publisher_shape(params, chunks)?;
    if start >= shape.range {
        return Err(PuzzleError::StartOutOfRange {
            start,
            range: shape.range,
        });
    }
    generate_shaped(&shape, chunks, source, start)
}

/// The walk of [`generate`] once the parameters are checked.
fn generate_shaped<S: BlockSource + ?Sized>(
    shape: &Shape,
    chunks: &[PuzzleChunk],
    source: &mut S,
    start: u64,
) -> Result<Generated, PuzzleError> {
    // One AES key schedule per chunk, made at its first visit (R ≥ 2, so
    // every chunk is visited); each visited block is encrypted alone as
    // counter block IV + j (CTR mode at block j, see `crate::layers`).
    let mut ciphers: [Option<aes::Aes128Enc>; MAX_BUNDLE_CHUNKS] = Default::default();
    let mut failure: Option<PuzzleError> = None;
    let [(goal, secret)] = run_walks(shape, [start], |_, c, block| {
        // After a failed read the walk is void: finish it without reading.
        if failure.is_some() {
            return [0u8; 16];
        }
        encrypted_block(chunks, &mut ciphers, source, c, block).unwrap_or_else(|e| {
            failure = Some(e);
            [0u8; 16]
        })
    });
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Generated {
        goal: Hash(to_bytes(&goal)),
        secret: PuzzleSecret::from_bytes(to_bytes(&secret)),
        start,
    })
}

/// Reads plaintext block `block` of covered chunk `c` and inner-encrypts it
/// alone (by seeking); a partial block is zero-padded after encryption.
#[inline(always)]
fn encrypted_block<S: BlockSource + ?Sized>(
    chunks: &[PuzzleChunk],
    ciphers: &mut [Option<aes::Aes128Enc>],
    source: &mut S,
    c: usize,
    block: u64,
) -> Result<[u8; 16], PuzzleError> {
    let (Some(chunk), Some(cipher)) = (chunks.get(c), ciphers.get_mut(c)) else {
        return Err(PuzzleError::ChunkCount {
            expected: c.saturating_add(1),
            got: chunks.len(),
        });
    };
    let cipher = cipher.get_or_insert_with(|| aes::Aes128Enc::new(&(*chunk.key.as_bytes()).into()));
    let remaining = u64::from(chunk.len).saturating_sub(block.saturating_mul(BLOCK_SIZE as u64));
    let n = usize::try_from(remaining.min(BLOCK_SIZE as u64)).unwrap_or(BLOCK_SIZE);
    let mut out = [0u8; BLOCK_SIZE];
    let bytes = &mut out[..n];
    source
        .read_block(chunk.chunk, block, bytes)
        .map_err(|e| PuzzleError::Source {
            chunk: chunk.chunk,
            block,
            reason: e.to_string(),
        })?;
    let counter = u128::from_be_bytes(*chunk.iv.as_bytes()).wrapping_add(u128::from(block));
    let mut keystream: aes::Block = counter.to_be_bytes().into();
    cipher.encrypt_block(&mut keystream);
    for (b, k) in bytes.iter_mut().zip(keystream.iter()) {
        *b ^= k;
    }
    Ok(out)
}

/// Walks the solver runs in lockstep. Two overlap the compressions best on
/// the machines measured (`docs/performance.md`): one `compress256` call is
/// about 150 micro-ops, so the out-of-order window holds about two, and
/// more lanes only add loop overhead.
const SOLVE_LANES: usize = 2;

/// Shared read-only state of a solve.
struct Solver<'a> {
    shape: Shape,
    chunks: Vec<ChunkBlocks<'a>>,
    goal: Words,
}

impl Solver<'_> {
    fn run(&self, range: Range<u64>, stop: &AtomicBool) -> Option<Solution> {
        let chunks = &self.chunks;
        let fetch = |_: usize, c: usize, off: u64| table_block(chunks, c, off);
        let found = |start: u64, secret: &Words| {
            stop.store(true, Ordering::Relaxed);
            Some(Solution {
                start,
                secret: PuzzleSecret::from_bytes(to_bytes(secret)),
            })
        };
        // SOLVE_LANES walks at a time, lowest start first, so the answer is
        // the same as a one-by-one scan.
        let mut start = range.start;
        while start.saturating_add(SOLVE_LANES as u64) <= range.end {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let starts: [u64; SOLVE_LANES] = core::array::from_fn(|i| start + i as u64);
            let walks = run_walks(&self.shape, starts, fetch);
            for (s, (goal, secret)) in starts.into_iter().zip(&walks) {
                if *goal == self.goal {
                    return found(s, secret);
                }
            }
            start += SOLVE_LANES as u64;
        }
        while start < range.end && !stop.load(Ordering::Relaxed) {
            let [(goal, secret)] = run_walks(&self.shape, [start], fetch);
            if goal == self.goal {
                return found(start, &secret);
            }
            start += 1;
        }
        None
    }
}

/// Solves on the calling thread: tries start offsets from 0 up, stops at the first match.
///
/// `chunks` are the covered chunks' inner-encrypted bytes, in bundle order.
pub fn solve(
    params: &PuzzleParams,
    chunks: &[&[u8]],
    goal: &Hash,
) -> Result<Solution, PuzzleError> {
    solve_parallel(params, chunks, goal, 1)
}

/// Solves with up to `threads` scoped threads, each scanning a contiguous
/// part of the start range; all stop as soon as one finds the goal. If the
/// OS refuses a thread, its part runs on the calling thread.
pub fn solve_parallel(
    params: &PuzzleParams,
    chunks: &[&[u8]],
    goal: &Hash,
    threads: usize,
) -> Result<Solution, PuzzleError> {
    let shape = solver_shape(params, chunks)?;
    let range = shape.range;
    let solver = Solver {
        shape,
        chunks: chunk_tables(chunks),
        goal: to_words(&goal.0),
    };
    let stop = AtomicBool::new(false);
    let threads = u64::try_from(threads).unwrap_or(1).max(1).min(range.max(1));
    let found = if threads == 1 {
        solver.run(0..range, &stop)
    } else {
        let per = range.div_ceil(threads);
        let (solver, stop) = (&solver, &stop);
        std::thread::scope(|scope| {
            let mut handles = Vec::new();
            let mut unspawned = Vec::new();
            for t in 0..threads {
                let lo = t.saturating_mul(per);
                let hi = lo.saturating_add(per).min(range);
                if lo >= hi {
                    continue;
                }
                match std::thread::Builder::new()
                    .spawn_scoped(scope, move || solver.run(lo..hi, stop))
                {
                    Ok(handle) => handles.push(handle),
                    Err(_) => unspawned.push(lo..hi),
                }
            }
            let mut found = None;
            for part in unspawned {
                if found.is_none() {
                    found = solver.run(part, stop);
                }
            }
            for handle in handles {
                let result = handle.join().ok().flatten();
                if found.is_none() {
                    found = result;
                }
            }
            found
        })
    };
    found.ok_or(PuzzleError::NoSolution { tried: range })
}

/// Runs the walk from `start` over the covered chunks; returns (goal, secret).
pub fn walk(
    params: &PuzzleParams,
    chunks: &[&[u8]],
    start: u64,
) -> Result<(Hash, PuzzleSecret), PuzzleError> {
    let shape = solver_shape(params, chunks)?;
    if start >= shape.range {
        return Err(PuzzleError::StartOutOfRange {
            start,
            range: shape.range,
        });
    }
    let tables = chunk_tables(chunks);
    let [(goal, secret)] = run_walks(&shape, [start], |_, c, off| table_block(&tables, c, off));
    Ok((
        Hash(to_bytes(&goal)),
        PuzzleSecret::from_bytes(to_bytes(&secret)),
    ))
}

/// Checks a claimed solution by re-running one walk; returns the secret.
pub fn verify(
    params: &PuzzleParams,
    chunks: &[&[u8]],
    start: u64,
    goal: &Hash,
) -> Result<PuzzleSecret, PuzzleError> {
    let (reached, secret) = walk(params, chunks, start)?;
    if reached != *goal {
        return Err(PuzzleError::WrongGoal { start });
    }
    Ok(secret)
}

/// The number of threads [`solve_parallel`] should use on this machine.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::LayerCipher;

    #[test]
    fn one_compression_step_is_sha256_of_48_bytes() {
        let state: [u8; 32] = core::array::from_fn(|i| i as u8);
        let block: [u8; 16] = core::array::from_fn(|i| 0xf0 ^ i as u8);
        let mut lane = Lane::new(&to_words(&state), 0);
        let mut expected = state;
        for round in 0..3u8 {
            let mut message = expected.to_vec();
            message.extend_from_slice(&block.map(|b| b ^ round));
            let prev = expected;
            expected = Sha256::digest(message.as_slice()).into();
            lane.step(&block.map(|b| b ^ round), false);
            assert_eq!(to_bytes(&lane.state), expected);
            assert_eq!(to_bytes(&lane.prev), prev);
            // The next compression input starts with the new chain value.
            assert_eq!(lane.message[..32], expected);
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&expected[24..]);
            assert_eq!(lane.tail(), u64::from_le_bytes(tail));
        }
    }

    #[test]
    fn masks_and_divisions_reduce_alike() {
        for count in [1u64, 2, 3, 7, 8, 8192, 8193, 1 << 40] {
            let m = Modulus::new(count);
            assert_eq!(m.mask.is_some(), count.is_power_of_two());
            for v in [0u64, 1, count - 1, count, u64::MAX, 0x0123_4567_89ab_cdef] {
                assert_eq!(m.reduce(v), v % count, "{v} mod {count}");
            }
        }
        assert_eq!(Modulus::new(0).reduce(5), 0);
    }

    #[test]
    fn degenerate_parameters_are_rejected() {
        let p = |rounds, covered| PuzzleParams {
            rounds,
            start_range: 8,
            covered,
        };
        assert_eq!(
            p(1, 0b1).check(1),
            Err(PuzzleError::Degenerate { product: 1 })
        );
        assert_eq!(
            p(0, 0b1111).check(4),
            Err(PuzzleError::Degenerate { product: 0 })
        );
        assert_eq!(
            p(2, 0b1).check(1),
            Err(PuzzleError::Degenerate { product: 2 })
        );
        assert_eq!(
            p(1, 0b1111).check(4),
            Err(PuzzleError::TooFewRounds { rounds: 1 })
        );
        assert_eq!(
            p(33, 0b1).check(1),
            Err(PuzzleError::TooManyRounds {
                rounds: 33,
                max: MAX_ROUNDS
            })
        );
        assert_eq!(p(2, 0).check(4), Err(PuzzleError::NothingCovered));
        assert!(matches!(
            p(2, 0b10000).check(4),
            Err(PuzzleError::CoverOutOfRange { .. })
        ));
        assert!(matches!(
            p(2, 1).check(17),
            Err(PuzzleError::BundleSize { .. })
        ));
        assert_eq!(
            PuzzleParams {
                rounds: 2,
                start_range: 0,
                covered: 0b11
            }
            .check(2),
            Err(PuzzleError::EmptyStartRange)
        );
        assert_eq!(p(2, 0b1011).check(4), Ok(3));
        assert_eq!(p(3, 0b1).check(1), Ok(1));
        assert_eq!(PuzzleParams::covering_all(2, 8, 16).covered, u16::MAX);
        assert_eq!(
            PuzzleParams::covering_all(2, 8, 4).covered_positions(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn padded_blocks_zero_fill_the_tail() {
        let chunk = [7u8; 20];
        let blocks = ChunkBlocks::new(&chunk);
        assert_eq!(blocks.block(0), [7u8; 16]);
        let mut tail = [0u8; 16];
        tail[..4].copy_from_slice(&[7; 4]);
        assert_eq!(blocks.block(1), tail);
        // Offsets are reduced below the block count; anything past it reads
        // as the padded tail rather than panicking.
        assert_eq!(blocks.block(u64::MAX), tail);
        let exact = ChunkBlocks::new(&[9u8; 32]);
        assert_eq!(exact.block(1), [9u8; 16]);
        assert_eq!(exact.block(2), [0u8; 16]);
    }

    #[test]
    fn generate_then_solve_in_every_shape() {
        // Chunk lengths with a full, a ragged and a sub-block last chunk.
        for lens in [[64u32, 64, 64, 64], [64, 64, 64, 5], [33, 16, 1, 48]] {
            let chunk_size = 64u32;
            let data: Vec<u8> = (0..(chunk_size * 3 + lens[3]))
                .map(|i| (i * 31 + 7) as u8)
                .collect();
            let keys: Vec<SessionKey> = (0..4u8)
                .map(|i| SessionKey::from_bytes([i + 1; 16]))
                .collect();
            // Inner-encrypted copies of the chunks, as a client holds them.
            let mut encrypted = Vec::new();
            let mut pchunks = Vec::new();
            for (i, len) in lens.iter().enumerate() {
                let start = i * chunk_size as usize;
                let key = keys[i].clone();
                let iv = key.chunk_iv(i as u64);
                let mut bytes = data[start..start + *len as usize].to_vec();
                LayerCipher::new(&key, &iv).apply(&mut bytes);
                encrypted.push(bytes);
                pchunks.push(PuzzleChunk {
                    chunk: i as u64,
                    len: *len,
                    key,
                    iv,
                });
            }
            // The source serves each chunk's first `len` bytes of its slot.
            let mut source = |c: u64, b: u64, out: &mut [u8]| -> Result<(), SourceError> {
                let s = (c * u64::from(chunk_size) + b * 16) as usize;
                out.copy_from_slice(&data[s..s + out.len()]);
                Ok(())
            };
            let params = PuzzleParams::covering_all(2, 8192, 4);
            let generated = generate(&params, &pchunks, &mut source).unwrap();
            let views: Vec<&[u8]> = encrypted.iter().map(Vec::as_slice).collect();
            let solved = solve(&params, &views, &generated.goal).unwrap();
            assert_eq!(solved.secret, generated.secret, "lens {lens:?}");
            let parallel = solve_parallel(&params, &views, &generated.goal, 3).unwrap();
            assert_eq!(parallel.secret, generated.secret);
            assert_eq!(
                verify(&params, &views, solved.start, &generated.goal).unwrap(),
                generated.secret
            );
        }
    }

    /// Chunks of `lens` bytes in 64-byte slots, their publisher view and the
    /// client's inner-encrypted copies.
    fn shaped(lens: &[u32]) -> (Vec<u8>, Vec<PuzzleChunk>, Vec<Vec<u8>>) {
        let data: Vec<u8> = (0..64 * lens.len() as u32)
            .map(|i| (i * 29 + 3) as u8)
            .collect();
        let mut publisher = Vec::new();
        let mut client = Vec::new();
        for (i, len) in lens.iter().enumerate() {
            let key = SessionKey::from_bytes([0x70 ^ i as u8; 16]);
            let iv = key.chunk_iv(i as u64);
            let mut bytes = data[i * 64..i * 64 + *len as usize].to_vec();
            LayerCipher::new(&key, &iv).apply(&mut bytes);
            client.push(bytes);
            publisher.push(PuzzleChunk {
                chunk: i as u64,
                len: *len,
                key,
                iv,
            });
        }
        (data, publisher, client)
    }

    #[test]
    fn generation_reads_only_the_visited_blocks_and_stops_at_a_failed_read() {
        let lens = [64u32, 40, 64, 7];
        let (data, publisher, _) = shaped(&lens);
        let params = PuzzleParams::covering_all(3, 8192, 4);
        let mut reads = Vec::new();
        let mut source = |c: u64, b: u64, out: &mut [u8]| -> Result<(), SourceError> {
            reads.push((c, b, out.len()));
            let at = (c * 64 + b * 16) as usize;
            out.copy_from_slice(&data[at..at + out.len()]);
            Ok(())
        };
        generate(&params, &publisher, &mut source).unwrap();
        // R·k − 1 reads, round-robin from chunk 0, each one block (or the
        // bytes of a partial last block) inside its chunk.
        assert_eq!(reads.len(), 3 * 4 - 1);
        for (t, (c, b, n)) in reads.iter().enumerate() {
            assert_eq!(*c, t as u64 % 4);
            let len = u64::from(lens[*c as usize]);
            assert!(*b < block_count(len));
            assert_eq!(*n as u64, (len - b * 16).min(16));
        }

        let mut calls = 0;
        let mut failing = |_: u64, _: u64, _: &mut [u8]| -> Result<(), SourceError> {
            calls += 1;
            if calls == 2 {
                Err("disk gone".into())
            } else {
                Ok(())
            }
        };
        let err = generate(&params, &publisher, &mut failing).unwrap_err();
        assert!(matches!(err, PuzzleError::Source { chunk: 1, .. }), "{err}");
        assert_eq!(calls, 2, "no read after the failed one");
    }

    #[test]
    fn start_offsets_are_drawn_across_the_whole_range() {
        // 64 KiB chunks: 4096 blocks, start range 4096.
        let lens = [65_536u32; 2];
        let publisher: Vec<PuzzleChunk> = lens
            .iter()
            .enumerate()
            .map(|(i, len)| {
                let key = SessionKey::from_bytes([i as u8 + 1; 16]);
                PuzzleChunk {
                    chunk: i as u64,
                    len: *len,
                    iv: key.chunk_iv(i as u64),
                    key,
                }
            })
            .collect();
        let params = PuzzleParams::covering_all(2, 4096, 2);
        let mut zeros = |_: u64, _: u64, out: &mut [u8]| -> Result<(), SourceError> {
            out.fill(0);
            Ok(())
        };
        let starts: Vec<u64> = (0..64)
            .map(|_| generate(&params, &publisher, &mut zeros).unwrap().start)
            .collect();
        assert!(starts.iter().all(|&s| s < 4096));
        let mut distinct = starts.clone();
        distinct.sort_unstable();
        distinct.dedup();
        // 64 uniform draws from 4096 repeat about once; 9 repeats would
        // happen about once in 10⁹ runs.
        assert!(distinct.len() >= 56, "{} distinct of 64", distinct.len());
        assert!(starts.iter().any(|&s| s < 1024) && starts.iter().any(|&s| s >= 3072));
    }

    #[test]
    fn the_walk_starts_in_the_largest_chunk_and_verification_checks_the_goal() {
        // The 1-byte chunk first must not shrink the range to one start:
        // the walk starts in the 64-byte chunk (4 blocks).
        let (data, publisher, client) = shaped(&[1, 16, 33, 64]);
        let views: Vec<&[u8]> = client.iter().map(Vec::as_slice).collect();
        let params = PuzzleParams::covering_all(2, 8192, 4);
        assert_eq!(
            walk(&params, &views, 4),
            Err(PuzzleError::StartOutOfRange { start: 4, range: 4 })
        );
        let mut source = MemorySource::new(&data, 64);
        for start in 0..4 {
            let generated = generate_at(&params, &publisher, &mut source, start).unwrap();
            let (goal, secret) = walk(&params, &views, start).unwrap();
            assert_eq!((goal, &secret), (generated.goal, &generated.secret));
            assert_eq!(solve(&params, &views, &goal).unwrap().start, start);
            assert_eq!(verify(&params, &views, start, &goal), Ok(secret));
            let other = (start + 1) % 4;
            assert_eq!(
                verify(&params, &views, other, &goal),
                Err(PuzzleError::WrongGoal { start: other })
            );
        }
        assert!(matches!(
            generate_at(&params, &publisher, &mut source, 4),
            Err(PuzzleError::StartOutOfRange { start: 4, range: 4 })
        ));
    }

    #[test]
    fn memory_source_reads_chunk_relative_blocks() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut src = MemorySource::new(&data, 32);
        let mut out = [0u8; 16];
        src.read_block(1, 1, &mut out).unwrap();
        assert_eq!(out[0], 48);
        let mut short = [0u8; 4];
        src.read_block(3, 0, &mut short).unwrap();
        assert_eq!(short, [96, 97, 98, 99]);
        assert!(src.read_block(3, 1, &mut out).is_err());
    }

    #[test]
    fn empty_chunks_and_wrong_counts_are_rejected() {
        let params = PuzzleParams::covering_all(2, 8, 2);
        let a = [1u8; 16];
        assert_eq!(
            solve(&params, &[&a, &[]], &Hash([0; 32])),
            Err(PuzzleError::EmptyChunk { chunk: 1 })
        );
        assert_eq!(
            solve(&params, &[&a], &Hash([0; 32])),
            Err(PuzzleError::ChunkCount {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            solve(&params, &[&a, &a], &Hash([0; 32])),
            Err(PuzzleError::NoSolution { tried: 1 })
        );
    }
}

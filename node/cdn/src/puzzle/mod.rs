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
use sha2::block_api::compress256;
use sha2::{Digest, Sha256};

use crate::error::{PuzzleError, RngError};
use crate::keys::{ChunkIv, PuzzleSecret, SessionKey};
use crate::layers::BLOCK_SIZE;
use crate::tags;
use aes::cipher::{BlockCipherEncrypt, KeyInit};

mod params;
pub use params::{
    DEFAULT_ROUNDS, DEFAULT_START_RANGE, MAX_BUNDLE_CHUNKS, MAX_ROUNDS, PuzzleParams, block_count,
};

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
mod tests;

//! Crypto benchmarks shared by `cachecash benchmark crypto --json` and the
//! criterion benches in `benches/crypto.rs`. They report rates as plain
//! numbers; no test asserts on time.
//!
//! Each figure of [`run`] is the median of [`ROUNDS`] measured rounds after
//! one unmeasured warm-up round, with the lowest and highest round kept:
//! on a shared machine a single short round swings by tens of percent.
//!
//! The fixtures use the deployed shape: bundles of 4 chunks of 128 KiB,
//! R = 2, the full start range (8192 blocks), one core unless stated.

use std::time::Instant;

use cachecash_runtime::{AccountId, Hash};
use ed25519_dalek::SigningKey;

use crate::bundle::{Bundle, BundleOrder, ChunkOrder, prepare_bundle, sign_bundles};
use crate::keys::{EscrowSecret, SessionKey};
use crate::layers::{LayerCipher, TwoLayerCipher};
use crate::manifest::{DEFAULT_CHUNK_SIZE, Manifest};
use crate::puzzle::{
    DEFAULT_ROUNDS, DEFAULT_START_RANGE, Generated, MemorySource, PuzzleChunk, PuzzleParams,
    default_threads, generate, generate_at, solve_parallel,
};

/// Chunks per bundle in the fixtures.
pub const BENCH_CHUNKS: usize = 4;
/// The chunk place the layer benchmarks encrypt at.
pub const BENCH_CHUNK: crate::keys::ChunkAt = crate::keys::ChunkAt {
    object: Hash([1; 32]),
    chunk_id: Hash([2; 32]),
    index: 3,
};

/// Measured rounds per figure (after one warm-up round).
pub const ROUNDS: usize = 5;

/// A rate over [`ROUNDS`] rounds: the median round, the slowest and the fastest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The median round's rate.
    pub median: f64,
    /// The slowest round's rate.
    pub low: f64,
    /// The fastest round's rate.
    pub high: f64,
}

impl Spread {
    /// Milliseconds per call at the median rate.
    pub fn median_ms(&self) -> f64 {
        1000.0 / self.median.max(1e-9)
    }

    /// The same spread with every rate mapped by `f` (monotone increasing).
    pub fn map(self, f: impl Fn(f64) -> f64) -> Self {
        Self {
            median: f(self.median),
            low: f(self.low),
            high: f(self.high),
        }
    }
}

/// Rates measured by [`run`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CryptoRates {
    /// Latency of one dependent SHA-256 compression, in nanoseconds.
    pub compression_ns: f64,
    /// Puzzle solves per second on one core (R = 2, k = 4, 128 KiB, starts
    /// spread evenly over the range).
    pub puzzle_solves: Spread,
    /// The same solves per second with [`default_threads`] threads.
    pub puzzle_solves_per_sec_parallel: f64,
    /// Threads used for the parallel figure.
    pub threads: usize,
    /// Puzzle generations per second (random start, 7 seeks and compressions).
    pub puzzle_generations: Spread,
    /// Two-layer encryption throughput of 128 KiB chunks, bytes per second.
    pub two_layer_bytes: Spread,
    /// Bundles prepared and batch-signed per second (batches of 16).
    pub bundle_issues_per_sec: f64,
    /// Full client-side bundle verifications per second.
    pub bundle_client_verifies_per_sec: f64,
    /// Cache-side request verifications per second.
    pub bundle_cache_verifies_per_sec: f64,
}

/// Deterministic pseudo-random bytes (an AES-CTR keystream seeded by `seed`).
pub fn bench_bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut v = vec![0u8; len];
    LayerCipher::for_chunk(&SessionKey::from_bytes([seed; 16]), &BENCH_CHUNK).apply(&mut v);
    v
}

/// A deterministic signing key.
pub fn bench_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Four 128 KiB chunks, their inner keys and inner-encrypted copies.
#[derive(Debug)]
pub struct PuzzleFixture {
    /// R = 2, full start range, all four chunks covered.
    pub params: PuzzleParams,
    /// The plaintext object (the four chunks back to back).
    pub plaintext: Vec<u8>,
    /// What the publisher knows of each chunk.
    pub chunks: Vec<PuzzleChunk>,
    /// The inner-encrypted chunks, as the client holds them.
    pub encrypted: Vec<Vec<u8>>,
}

impl PuzzleFixture {
    /// The deployed shape: 4 × 128 KiB, R = 2, start range 8192.
    pub fn deployed() -> Self {
        let chunk_size = DEFAULT_CHUNK_SIZE;
        let len = chunk_size as usize;
        let plaintext = bench_bytes(len * BENCH_CHUNKS, 1);
        let mut chunks = Vec::with_capacity(BENCH_CHUNKS);
        let mut encrypted = Vec::with_capacity(BENCH_CHUNKS);
        for (i, data) in plaintext.chunks(len).enumerate() {
            let key = SessionKey::from_bytes([0x40 ^ (i as u8); 16]);
            let iv = key.chunk_iv(&crate::keys::ChunkAt::new(
                Hash([1; 32]),
                Hash([2; 32]),
                i as u64,
            ));
            let mut bytes = data.to_vec();
            LayerCipher::new(&key, &iv).apply(&mut bytes);
            encrypted.push(bytes);
            chunks.push(PuzzleChunk {
                chunk: i as u64,
                len: chunk_size,
                key,
                iv,
            });
        }
        Self {
            params: PuzzleParams::covering_all(DEFAULT_ROUNDS, DEFAULT_START_RANGE, BENCH_CHUNKS),
            plaintext,
            chunks,
            encrypted,
        }
    }

    /// The inner-encrypted chunks as slices.
    pub fn views(&self) -> Vec<&[u8]> {
        self.encrypted.iter().map(Vec::as_slice).collect()
    }

    /// The plaintext as a block source.
    pub fn source(&self) -> MemorySource<'_> {
        MemorySource::new(&self.plaintext, DEFAULT_CHUNK_SIZE)
    }

    /// A puzzle starting at `start`.
    pub fn puzzle_at(&self, start: u64) -> Result<Generated, String> {
        generate_at(&self.params, &self.chunks, &mut self.source(), start)
            .map_err(|e| e.to_string())
    }

    /// `n` puzzles whose starts are spread evenly over the start range, so
    /// their mean solve cost is the expected cost of a random puzzle.
    pub fn spread_puzzles(&self, n: usize) -> Result<Vec<Generated>, String> {
        let range = u64::from(DEFAULT_START_RANGE);
        let n64 = u64::try_from(n.max(1)).unwrap_or(1);
        (0..n64)
            .map(|i| self.puzzle_at((2 * i + 1) * range / (2 * n64)))
            .collect()
    }
}

/// Keys, an object and a manifest for issuing and verifying bundles.
#[derive(Debug)]
pub struct BundleFixture {
    /// The escrow's ticket signer.
    pub signer: SigningKey,
    /// Its account.
    pub ticket_signer: AccountId,
    /// The escrow secret.
    pub escrow_secret: EscrowSecret,
    /// The escrow id.
    pub escrow: Hash,
    /// The client.
    pub client: AccountId,
    /// One cache per position.
    pub caches: Vec<AccountId>,
    /// The object.
    pub object: Vec<u8>,
    /// Its manifest.
    pub manifest: Manifest,
}

impl BundleFixture {
    /// `chunks` chunks of `chunk_size` bytes, one cache each.
    pub fn new(chunks: usize, chunk_size: u32) -> Result<Self, String> {
        let signer = bench_key(1);
        let object = bench_bytes(chunks.saturating_mul(chunk_size as usize), 2);
        let manifest = Manifest::from_object(Hash([0x0b; 32]), chunk_size, &object)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            ticket_signer: AccountId::from_signing_key(&signer),
            signer,
            escrow_secret: EscrowSecret::from_bytes([3; 32]),
            escrow: Hash([0xe5; 32]),
            client: AccountId::from_signing_key(&bench_key(4)),
            caches: (0..chunks)
                .map(|i| AccountId::from_signing_key(&bench_key(0x10 ^ (i as u8))))
                .collect(),
            object,
            manifest,
        })
    }

    /// The order for bundle `sequence` over every chunk of the object.
    pub fn order(&self, sequence: u64) -> BundleOrder {
        let n = self.manifest.chunks.len();
        BundleOrder {
            escrow: self.escrow,
            round: 1,
            object: self.manifest.object,
            object_size: self.manifest.size,
            chunk_size: self.manifest.chunk_size,
            client: self.client,
            sequence,
            puzzle: PuzzleParams::covering_all(DEFAULT_ROUNDS, DEFAULT_START_RANGE, n),
            chunks: self
                .manifest
                .chunks
                .iter()
                .zip(&self.caches)
                .enumerate()
                .map(|(i, (id, cache))| ChunkOrder {
                    chunk_index: i as u64,
                    chunk_id: *id,
                    size: self.manifest.chunk_size,
                    cache: *cache,
                    ticket_number: u32::try_from(
                        sequence.saturating_mul(n as u64).saturating_add(i as u64),
                    )
                    .unwrap_or(u32::MAX),
                })
                .collect(),
        }
    }

    /// Prepares and signs `count` bundles (sequences 0..count) in one batch.
    pub fn issue(&self, count: usize) -> Result<Vec<Bundle>, String> {
        let mut source = MemorySource::new(&self.object, self.manifest.chunk_size);
        let prepared = (0..count as u64)
            .map(|s| prepare_bundle(&self.order(s), &self.escrow_secret, &mut source))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        sign_bundles(&self.signer, prepared).map_err(|e| e.to_string())
    }
}

/// Calls `f` `iterations` times; returns calls per second.
fn rate(iterations: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let started = Instant::now();
    for _ in 0..iterations {
        f()?;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    Ok(iterations as f64 / secs)
}

/// One warm-up round of `iterations` calls, then [`ROUNDS`] measured rounds.
fn rounds(iterations: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<Spread, String> {
    rate(iterations, &mut f)?;
    let mut rates = [0f64; ROUNDS];
    for r in &mut rates {
        *r = rate(iterations, &mut f)?;
    }
    rates.sort_by(f64::total_cmp);
    Ok(Spread {
        median: rates[ROUNDS / 2],
        low: rates[0],
        high: rates[ROUNDS - 1],
    })
}

/// Solves per second over `puzzles` evenly spread puzzles with `threads`
/// threads (each round solves every puzzle once).
pub fn puzzle_solve_rate(
    fixture: &PuzzleFixture,
    puzzles: &[Generated],
    threads: usize,
) -> Result<Spread, String> {
    let views = fixture.views();
    let mut next = puzzles.iter().cycle();
    rounds(puzzles.len(), || {
        let p = next.next().ok_or("no puzzles")?;
        let s =
            solve_parallel(&fixture.params, &views, &p.goal, threads).map_err(|e| e.to_string())?;
        if s.secret != p.secret {
            return Err("solver found another secret".into());
        }
        Ok(())
    })
}

/// Puzzle generations per second (random starts).
pub fn puzzle_generation_rate(
    fixture: &PuzzleFixture,
    iterations: usize,
) -> Result<Spread, String> {
    let mut source = fixture.source();
    rounds(iterations, || {
        generate(&fixture.params, &fixture.chunks, &mut source)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// Two-layer encryption throughput of one 128 KiB chunk, bytes per second.
pub fn two_layer_rate(iterations: usize) -> Result<Spread, String> {
    let inner = SessionKey::from_bytes([5; 16]);
    let outer = SessionKey::from_bytes([6; 16]);
    let mut chunk = bench_bytes(DEFAULT_CHUNK_SIZE as usize, 7);
    let per_sec = rounds(iterations, || {
        TwoLayerCipher::for_chunk(&inner, &outer, &BENCH_CHUNK).apply(&mut chunk);
        Ok(())
    })?;
    Ok(per_sec.map(|r| r * f64::from(DEFAULT_CHUNK_SIZE)))
}

/// The machine's reference speed: nanoseconds per SHA-256 compression when
/// each depends on the last (the latency the puzzle walk is built on), the
/// median of [`ROUNDS`] rounds. Lets figures from different runs of a
/// shared machine be compared.
pub fn compression_latency_ns(iterations: usize) -> Result<f64, String> {
    let mut state = [0u32; 8];
    let block = [[0x5a; 64]];
    let per_sec = rounds(1, || {
        for _ in 0..iterations {
            sha2::block_api::compress256(&mut state, &block);
        }
        std::hint::black_box(&state);
        Ok(())
    })?;
    Ok(1e9 / (per_sec.median * iterations.max(1) as f64))
}

/// Runs every measurement; `scale` multiplies the iteration counts (1 takes about a second).
pub fn run(scale: usize) -> Result<CryptoRates, String> {
    let scale = scale.max(1);
    let fixture = PuzzleFixture::deployed();
    let puzzles = fixture.spread_puzzles(16usize.saturating_mul(scale))?;
    let compression_ns = compression_latency_ns(200_000)?;
    let puzzle_solve_spread = puzzle_solve_rate(&fixture, &puzzles, 1)?;
    let threads = default_threads();
    let puzzle_solves_per_sec_parallel = puzzle_solve_rate(&fixture, &puzzles, threads)?.median;
    let puzzle_generation_spread =
        puzzle_generation_rate(&fixture, 10_000usize.saturating_mul(scale))?;
    let two_layer_spread = two_layer_rate(2_000usize.saturating_mul(scale))?;

    let bundles = BundleFixture::new(BENCH_CHUNKS, DEFAULT_CHUNK_SIZE)?;
    let batch = 16usize;
    let bundle_issues_per_sec = rounds(4usize.saturating_mul(scale), || {
        bundles.issue(batch).map(|_| ())
    })?
    .median
        * batch as f64;
    let issued = bundles.issue(batch)?;
    let mut next = issued.iter().cycle();
    let bundle_client_verifies_per_sec = rounds(100usize.saturating_mul(scale), || {
        let b = next.next().ok_or("no bundles")?;
        b.verify_for_client(&bundles.client, &bundles.ticket_signer)
            .map_err(|e| e.to_string())
    })?
    .median;
    let requests: Vec<_> = issued
        .iter()
        .flat_map(|b| (0..b.chunks.len()).filter_map(move |i| b.cache_request(i)))
        .collect();
    let mut next = requests.iter().cycle();
    let bundle_cache_verifies_per_sec = rounds(200usize.saturating_mul(scale), || {
        let r = next.next().ok_or("no requests")?;
        r.verify(&r.request.cache, &bundles.ticket_signer)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?
    .median;

    Ok(CryptoRates {
        compression_ns,
        puzzle_solves: puzzle_solve_spread,
        puzzle_solves_per_sec_parallel,
        threads,
        puzzle_generations: puzzle_generation_spread,
        two_layer_bytes: two_layer_spread,
        bundle_issues_per_sec,
        bundle_client_verifies_per_sec,
        bundle_cache_verifies_per_sec,
    })
}

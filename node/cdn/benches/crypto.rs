//! Criterion benches of the CDN data plane's crypto, on one core unless
//! stated, in the deployed shape (bundles of 4 chunks of 128 KiB, R = 2,
//! start range 8192):
//! - `puzzle/solve_*`: solving; the mean case starts mid-range (4096), the
//!   worst case at the last offset; the threaded case uses every core over
//!   starts spread evenly across the range.
//! - `puzzle/generate`: generation with a CSPRNG start (7 block reads, seeks
//!   and compressions).
//! - `layers/*`: one and two AES-128-CTR layers over a 128 KiB chunk. Goal
//!   for two layers ≥ 1.5 GB/s per core with AES-NI.
//! - `bundle/*`: issuing a batch of 16 bundles (puzzles, tickets, L2s, one
//!   batch signature and the MicroCash L1 batch), the client's full check of
//!   one bundle and a cache's check of one request.
//!
//! `cachecash benchmark crypto --json` measures the same paths through
//! `cachecash_cdn::bench::run`.

use cachecash_cdn::bench::{BENCH_CHUNK, BENCH_CHUNKS, BundleFixture, PuzzleFixture, bench_bytes};
use cachecash_cdn::keys::SessionKey;
use cachecash_cdn::layers::{LayerCipher, TwoLayerCipher};
use cachecash_cdn::manifest::DEFAULT_CHUNK_SIZE;
use cachecash_cdn::puzzle::{default_threads, generate, solve, solve_parallel};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn puzzle(c: &mut Criterion) {
    let fixture = PuzzleFixture::deployed();
    let views = fixture.views();
    let mean = fixture.puzzle_at(4096).expect("mid-range puzzle");
    let worst = fixture.puzzle_at(8191).expect("last-offset puzzle");
    let threads = default_threads();

    let mut g = c.benchmark_group("puzzle");
    g.sample_size(20);
    g.bench_function("solve_r2_k4_128k_mean", |b| {
        b.iter(|| {
            solve(
                black_box(&fixture.params),
                black_box(&views),
                black_box(&mean.goal),
            )
            .expect("solves")
        })
    });
    g.bench_function("solve_r2_k4_128k_worst", |b| {
        b.iter(|| {
            solve(
                black_box(&fixture.params),
                black_box(&views),
                black_box(&worst.goal),
            )
            .expect("solves")
        })
    });
    // Threads scan contiguous parts of the range, so one mid-range start
    // would be found at once by the second thread: cycle through starts
    // spread evenly over the range instead.
    let spread = fixture.spread_puzzles(16).expect("spread puzzles");
    let mut next = spread.iter().cycle();
    g.bench_function(format!("solve_r2_k4_128k_mean_{threads}_threads"), |b| {
        b.iter(|| {
            let p = next.next().expect("cycle never ends");
            solve_parallel(
                black_box(&fixture.params),
                black_box(&views),
                black_box(&p.goal),
                threads,
            )
            .expect("solves")
        })
    });
    g.bench_function("generate_r2_k4_128k", |b| {
        let mut source = fixture.source();
        b.iter(|| {
            generate(black_box(&fixture.params), &fixture.chunks, &mut source).expect("generates")
        })
    });
    g.finish();
}

fn layers(c: &mut Criterion) {
    let inner = SessionKey::from_bytes([5; 16]);
    let outer = SessionKey::from_bytes([6; 16]);
    let mut chunk = bench_bytes(DEFAULT_CHUNK_SIZE as usize, 7);

    let mut g = c.benchmark_group("layers");
    g.throughput(Throughput::Bytes(u64::from(DEFAULT_CHUNK_SIZE)));
    g.bench_function("two_layers_128k", |b| {
        b.iter(|| {
            TwoLayerCipher::for_chunk(&inner, &outer, &BENCH_CHUNK).apply(black_box(&mut chunk))
        })
    });
    g.bench_function("one_layer_128k", |b| {
        b.iter(|| LayerCipher::for_chunk(&inner, &BENCH_CHUNK).apply(black_box(&mut chunk)))
    });
    g.finish();
}

fn bundles(c: &mut Criterion) {
    let f = BundleFixture::new(BENCH_CHUNKS, DEFAULT_CHUNK_SIZE).expect("bundle fixture");
    let batch = 16usize;
    let issued = f.issue(batch).expect("issues");
    let request = issued[0].cache_request(0).expect("position 0 exists");

    let mut g = c.benchmark_group("bundle");
    g.sample_size(20);
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function("issue_batch_of_16", |b| {
        b.iter(|| f.issue(batch).expect("issues"))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_client", |b| {
        b.iter(|| {
            black_box(&issued[0])
                .verify_for_client(&f.client, &f.ticket_signer)
                .expect("valid bundle")
        })
    });
    g.bench_function("verify_cache", |b| {
        b.iter(|| {
            black_box(&request)
                .verify(&f.caches[0], &f.ticket_signer)
                .expect("valid request")
        })
    });
    g.finish();
}

criterion_group!(benches, puzzle, layers, bundles);
criterion_main!(benches);

//! Criterion benches of the ledger's hot paths, on one core:
//! - `import/block_2000_transfers`: a full block of transfers through every
//!   verification stage into the memory store (batch signatures, execution,
//!   state-root update, commit). Goal ≥ 10,000 transfers/s.
//! - `signatures/batch_2000`: the stateless stage's ed25519 batch alone.
//! - `state_root/2000_changed_over_100k`: the authenticated-tree update of a
//!   1,000-transfer block's worth of accounts. Goal ≤ 50 ms, flat in N.
//!
//! `cachecash benchmark ledger --json` measures the same paths at larger
//! sizes; docs/performance.md records both.

use cachecash_bench::{bench_genesis, bench_keys, bench_params, build_transfer_blocks};
use cachecash_node::chain::{BlockOrigin, Chain};
use cachecash_node::metrics::Metrics;
use cachecash_node::storage::{MemoryStore, Store};
use cachecash_runtime::commitment::{MemoryTree, compute_update};
use cachecash_runtime::transaction::verify_signatures_batch;
use cachecash_runtime::{Account, AccountId};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

const PER_BLOCK: usize = 2000;

fn import(c: &mut Criterion) {
    let params = bench_params();
    let keys = bench_keys(PER_BLOCK);
    let genesis = bench_genesis(&params, &keys);
    let blocks = build_transfer_blocks(&params, &keys, &genesis, 1, PER_BLOCK);
    let block = blocks.into_iter().next().expect("one block built");

    let mut g = c.benchmark_group("import");
    g.sample_size(10);
    g.throughput(Throughput::Elements(PER_BLOCK as u64));
    g.bench_function("block_2000_transfers", |b| {
        b.iter_batched(
            || {
                let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
                let chain = Chain::open(store, params.clone(), &genesis, Arc::new(Metrics::new()))
                    .expect("memory chain opens");
                (chain, block.clone())
            },
            |(chain, block)| {
                chain
                    .import_block(block, BlockOrigin::File)
                    .expect("benchmark block imports")
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("signatures");
    g.sample_size(10);
    g.throughput(Throughput::Elements(PER_BLOCK as u64));
    g.bench_function("batch_2000", |b| {
        b.iter(|| {
            verify_signatures_batch(black_box(&block.transactions), &genesis.hash)
                .expect("valid batch")
        })
    });
    g.finish();
}

fn state_root(c: &mut Criterion) {
    const ACCOUNTS: u64 = 100_000;
    const CHANGED: u64 = 2_000;
    let id = |i: u64| {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&i.to_le_bytes());
        AccountId(*cachecash_runtime::Hash::of(&b).as_bytes())
    };
    let mut tree = MemoryTree::new();
    let all: BTreeMap<AccountId, Account> = (0..ACCOUNTS)
        .map(|i| {
            (
                id(i),
                Account {
                    nonce: 0,
                    balance: 1,
                },
            )
        })
        .collect();
    let update = compute_update(&tree, &all, 0).expect("populate");
    tree.apply(&update.batch);
    let changes: BTreeMap<AccountId, Account> = (0..CHANGED)
        .map(|i| {
            (
                id(i * 37 % ACCOUNTS),
                Account {
                    nonce: 1,
                    balance: 2,
                },
            )
        })
        .collect();

    let mut g = c.benchmark_group("state_root");
    g.sample_size(10);
    g.throughput(Throughput::Elements(CHANGED));
    g.bench_function("2000_changed_over_100k", |b| {
        b.iter(|| compute_update(&tree, black_box(&changes), 1).expect("update"))
    });
    g.finish();
}

criterion_group!(benches, import, state_root);
criterion_main!(benches);

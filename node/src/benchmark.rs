//! Ledger benchmarks shared by `cachecash benchmark ledger` and the
//! criterion benches. They report rates; no test asserts on time.

use crate::chain::{BlockOrigin, Chain};
use crate::metrics::Metrics;
use crate::storage::{MemoryStore, RocksStore, Store, TreeView};
use cachecash_runtime::builder::{TemplateInput, build_template};
use cachecash_runtime::commitment::{MemoryTree, compute_update};
use cachecash_runtime::consensus::ConsensusParams;
use cachecash_runtime::genesis::{Genesis, GenesisConfig, build_genesis};
use cachecash_runtime::{Account, AccountId, Block, Call, SignedTransaction, Target, Transaction};
use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Parameters for benchmark chains: minimal target, large blocks.
pub fn bench_params() -> ConsensusParams {
    ConsensusParams {
        target_block_time_ms: 1000,
        initial_target: Target::MAX,
        pow_limit: Target::MAX,
        retarget_window: 0,
        block_reward: 1_000_000,
        minimum_fee: 1,
        max_future_drift_ms: u64::MAX / 4,
        max_block_transactions: 20_000,
        max_block_bytes: 16 * 1024 * 1024,
        duplicate_reporter_share_percent: 50,
    }
}

/// Deterministic benchmark keys.
pub fn bench_keys(n: usize) -> Vec<SigningKey> {
    (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            seed[31] = 0xbe;
            SigningKey::from_bytes(&seed)
        })
        .collect()
}

/// A genesis funding every key.
pub fn bench_genesis(params: &ConsensusParams, keys: &[SigningKey]) -> Genesis {
    let balances = keys
        .iter()
        .map(|k| (AccountId::from_signing_key(k), 1u128 << 100))
        .collect();
    build_genesis(
        params,
        &GenesisConfig {
            timestamp: 1_000,
            balances,
        },
    )
    .unwrap_or_else(|e| panic!("benchmark genesis is valid: {e}"))
}

/// Builds `blocks` blocks of `per_block` transfers each on top of genesis.
pub fn build_transfer_blocks(
    params: &ConsensusParams,
    keys: &[SigningKey],
    genesis: &Genesis,
    blocks: usize,
    per_block: usize,
) -> Vec<Block> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let chain = Chain::open(store, params.clone(), genesis, Arc::new(Metrics::new()))
        .unwrap_or_else(|e| panic!("memory chain opens: {e}"));
    let ids: Vec<AccountId> = keys.iter().map(AccountId::from_signing_key).collect();
    let mut nonces = vec![0u64; keys.len()];
    let mut out = Vec::with_capacity(blocks);
    let mut sender = 0usize;
    for b in 0..blocks {
        let mut txs: Vec<SignedTransaction> = Vec::with_capacity(per_block);
        for _ in 0..per_block {
            let s = sender % keys.len();
            let dest = ids[(s + 1 + b) % ids.len()];
            txs.push(
                Transaction {
                    signer: ids[s],
                    nonce: nonces[s],
                    fee: 1,
                    call: Call::Transfer { dest, amount: 1 },
                }
                .sign(&keys[s], &genesis.hash),
            );
            nonces[s] += 1;
            sender += 1;
        }
        let head = chain.head();
        let template = build_template(
            &TreeView(chain.store().as_ref()),
            &TreeView(chain.store().as_ref()),
            TemplateInput {
                parent: head.header.clone(),
                timestamp: head.header.timestamp + 1000,
                target: Target::MAX,
                miner: ids[0],
            },
            txs,
            params,
        )
        .unwrap_or_else(|e| panic!("template builds: {e}"));
        assert!(
            template.rejected.is_empty(),
            "benchmark transactions are valid"
        );
        chain
            .import_block(template.block.clone(), BlockOrigin::Mined)
            .unwrap_or_else(|e| panic!("benchmark block imports: {e}"));
        out.push(template.block);
    }
    out
}

/// Result of the import benchmark.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Storage backend.
    pub backend: String,
    /// Blocks imported.
    pub blocks: usize,
    /// Transfers imported.
    pub transfers: usize,
    /// Wall time.
    pub seconds: f64,
    /// Transfers per second.
    pub transfers_per_second: f64,
    /// Accounts in the state.
    pub accounts: usize,
}

/// Imports pre-built blocks into a fresh chain (RocksDB in a temporary
/// directory, or memory) on the current thread and reports the rate.
pub fn import_benchmark(
    accounts: usize,
    blocks: usize,
    per_block: usize,
    rocks: bool,
) -> Result<ImportReport, String> {
    let params = bench_params();
    let keys = bench_keys(accounts);
    let genesis = bench_genesis(&params, &keys);
    let prepared = build_transfer_blocks(&params, &keys, &genesis, blocks, per_block);
    let dir = tempfile_dir()?;
    let store: Arc<dyn Store> = if rocks {
        Arc::new(RocksStore::open(dir.path()).map_err(|e| e.to_string())?)
    } else {
        Arc::new(MemoryStore::new())
    };
    let chain = Chain::open(store, params, &genesis, Arc::new(Metrics::new()))
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    for b in prepared {
        chain
            .import_block(b, BlockOrigin::File)
            .map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let transfers = blocks * per_block;
    Ok(ImportReport {
        backend: if rocks { "rocksdb" } else { "memory" }.into(),
        blocks,
        transfers,
        seconds,
        transfers_per_second: transfers as f64 / seconds.max(1e-9),
        accounts,
    })
}

fn tempfile_dir() -> Result<TempDir, String> {
    let base = std::env::temp_dir().join(format!(
        "cachecash-bench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    Ok(TempDir(base))
}

/// A directory removed on drop.
#[derive(Debug)]
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Result of the state-root benchmark at one state size.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRootReport {
    /// Accounts in the tree.
    pub accounts: usize,
    /// Accounts changed per update.
    pub changed: usize,
    /// Median time per update, milliseconds.
    pub median_ms: f64,
    /// Updates measured.
    pub samples: usize,
}

/// Deterministic pseudo-random account ids (SplitMix64).
fn account_ids(n: usize, seed: u64) -> Vec<AccountId> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            let mut b = [0u8; 32];
            for chunk in b.chunks_mut(8) {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                chunk.copy_from_slice(&z.to_le_bytes());
            }
            AccountId(b)
        })
        .collect()
}

/// Measures the state-root update of `changed` accounts (half existing,
/// half new) over a tree of `accounts` accounts, `samples` times.
pub fn state_root_benchmark(
    accounts: usize,
    changed: usize,
    samples: usize,
) -> Result<StateRootReport, String> {
    let mut tree = MemoryTree::new();
    let ids = account_ids(accounts, 7);
    // Populate in chunks so no single batch holds the whole state.
    let mut version = 0u64;
    for chunk in ids.chunks(100_000) {
        let changes: BTreeMap<AccountId, Account> = chunk
            .iter()
            .map(|id| {
                (
                    *id,
                    Account {
                        nonce: 0,
                        balance: 1,
                    },
                )
            })
            .collect();
        let update = compute_update(&tree, &changes, version).map_err(|e| e.to_string())?;
        tree.apply(&update.batch);
        version += 1;
    }
    let mut times = Vec::with_capacity(samples);
    let fresh = account_ids(changed * samples, 99);
    for s in 0..samples {
        let mut changes = BTreeMap::new();
        for i in 0..changed / 2 {
            let id = ids[(s * 7919 + i * 104_729) % ids.len()];
            changes.insert(
                id,
                Account {
                    nonce: 1,
                    balance: 2 + s as u128,
                },
            );
        }
        for id in fresh.iter().skip(s * changed).take(changed - changed / 2) {
            changes.insert(
                *id,
                Account {
                    nonce: 0,
                    balance: 5,
                },
            );
        }
        let started = Instant::now();
        let update = compute_update(&tree, &changes, version).map_err(|e| e.to_string())?;
        times.push(started.elapsed());
        tree.apply(&update.batch);
        version += 1;
    }
    times.sort();
    let median = times
        .get(times.len() / 2)
        .copied()
        .unwrap_or(Duration::ZERO);
    Ok(StateRootReport {
        accounts,
        changed,
        median_ms: median.as_secs_f64() * 1000.0,
        samples,
    })
}

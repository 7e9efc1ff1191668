//! Ledger and network benchmarks shared by `cachecash benchmark` and the
//! criterion benches. They report rates; no test asserts on time. They
//! live in their own crate, outside the node's production library, and
//! reach the node only through its public interface.

use cachecash_node::chain::{BlockOrigin, Chain};
use cachecash_node::metrics::Metrics;
use cachecash_node::storage::{MemoryStore, RocksStore, Store};
use cachecash_runtime::builder::TemplateInput;
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
        fee_per_byte: 0,
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
        let template = chain
            .build_template(
                TemplateInput {
                    parent: head.header.clone(),
                    timestamp: head.header.timestamp + 1000,
                    target: Target::MAX,
                    miner: ids[0],
                },
                txs,
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
    /// State pruning mode (`window` or `archive`).
    pub state_pruning: String,
    /// Reorganisation window (blocks of state kept by `window`).
    pub reorg_depth: u64,
    /// Bytes of the database directory after a full compaction (RocksDB
    /// only).
    pub db_bytes: Option<u64>,
}

/// Imports pre-built blocks into a fresh chain (RocksDB in a temporary
/// directory, or memory) on the current thread and reports the rate.
pub fn import_benchmark(
    accounts: usize,
    blocks: usize,
    per_block: usize,
    rocks: bool,
    state_pruning: cachecash_node::chain::StatePruning,
    reorg_depth: u64,
) -> Result<ImportReport, String> {
    let params = bench_params();
    let keys = bench_keys(accounts);
    let genesis = bench_genesis(&params, &keys);
    let prepared = build_transfer_blocks(&params, &keys, &genesis, blocks, per_block);
    let dir = tempfile_dir()?;
    let rocks_store = if rocks {
        Some(Arc::new(
            RocksStore::open(dir.path()).map_err(|e| e.to_string())?,
        ))
    } else {
        None
    };
    let store: Arc<dyn Store> = match &rocks_store {
        Some(r) => r.clone(),
        None => Arc::new(MemoryStore::new()),
    };
    let chain = Chain::open(store, params, &genesis, Arc::new(Metrics::new()))
        .map_err(|e| e.to_string())?
        .with_max_reorg_depth(reorg_depth)
        .with_state_pruning(state_pruning);
    let started = Instant::now();
    for b in prepared {
        chain
            .import_block(b, BlockOrigin::File)
            .map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(chain);
    let db_bytes = match rocks_store {
        Some(r) => {
            r.compact().map_err(|e| e.to_string())?;
            drop(r);
            Some(directory_bytes(dir.path()))
        }
        None => None,
    };
    let transfers = blocks * per_block;
    Ok(ImportReport {
        backend: if rocks { "rocksdb" } else { "memory" }.into(),
        blocks,
        transfers,
        seconds,
        transfers_per_second: transfers as f64 / seconds.max(1e-9),
        accounts,
        state_pruning: match state_pruning {
            cachecash_node::chain::StatePruning::Window => "window",
            cachecash_node::chain::StatePruning::Archive => "archive",
        }
        .into(),
        reorg_depth,
        db_bytes,
    })
}

/// Total size of the files under `dir`.
fn directory_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => directory_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn tempfile_dir() -> Result<TempDir, String> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let base = std::env::temp_dir().join(format!(
        "cachecash-bench-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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

/// Result of the MicroCash benchmark.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MicrocashReport {
    /// Tickets signed as one batch.
    pub tickets_issued: usize,
    /// Batch issuance rate on one core (hash, Merkle tree, one signature, proofs).
    pub tickets_issued_per_second: f64,
    /// Claimed tickets validated and paid.
    pub claims: usize,
    /// Stateful claim validation rate on one core (escrow, window, draw,
    /// claimant, preimage, batch proof + signature, replay, payment).
    pub claims_per_second: f64,
    /// The same including the claim transactions' own signatures (one
    /// ed25519 batch), i.e. both import stages.
    pub claims_per_second_with_tx_signatures: f64,
}

/// Measures ticket issuance and claim validation, on the current thread.
///
/// Claims run through the runtime's block execution over an in-memory tree
/// with a synthetic canonical history; `claims` winners are spread over
/// rounds of 1,024 winners, claimed by 32-ticket transactions from
/// `claims / 32` caches.
pub fn microcash_benchmark(issue: usize, claims: usize) -> Result<MicrocashReport, String> {
    use cachecash_runtime::microcash::{
        EscrowTerms, Ticket, escrow_id, secret_commitment, sign_tickets_batch, winners,
    };
    use cachecash_runtime::state::{BlockEnv, MemoryState};
    use cachecash_runtime::transaction::{TicketClaimItem, verify_signatures_batch};

    // Issuance: one batch of `issue` tickets.
    let publisher = bench_keys(1).remove(0);
    let secret = [9u8; 32];
    let template = |i: usize| Ticket {
        escrow: cachecash_runtime::Hash([1; 32]),
        round: 1,
        number: u32::try_from(i).unwrap_or(u32::MAX),
        cache: AccountId([2; 32]),
        client: AccountId([3; 32]),
        chunk: cachecash_runtime::Hash([4; 32]),
        secret_hash: secret_commitment(&secret),
    };
    let tickets: Vec<Ticket> = (0..issue).map(template).collect();
    let started = Instant::now();
    let signed = sign_tickets_batch(&publisher, tickets);
    let issue_seconds = started.elapsed().as_secs_f64();
    if signed.len() != issue {
        return Err("batch signing returned the wrong number of tickets".into());
    }

    // Claims.
    const PER_TX: usize = 32;
    const W: u32 = 1024;
    let caches = bench_keys(claims.div_ceil(PER_TX).max(1) + 1).split_off(1);
    let rounds = u64::try_from(claims.div_ceil(W as usize).max(1)).unwrap_or(1);
    let params = bench_params();
    let publisher_id = AccountId::from_signing_key(&publisher);
    let terms = EscrowTerms {
        signer: publisher_id,
        face_value: 1_000,
        tickets_per_round: 1 << 20,
        winners_per_round: W,
        round_length: 1,
        first_round: 2,
        last_round: 1 + rounds,
        draw_delay: 1,
        claim_window: 1_000_000,
    };
    let mut state = MemoryState::default();
    state.accounts.insert(
        publisher_id,
        Account {
            nonce: 0,
            balance: 1u128 << 100,
        },
    );
    for k in &caches {
        state.accounts.insert(
            AccountId::from_signing_key(k),
            Account {
                nonce: 0,
                balance: 1u128 << 60,
            },
        );
    }
    let history: BTreeMap<u64, cachecash_runtime::Hash> = (0..rounds + 10)
        .map(|n| (n, cachecash_runtime::Hash::of(&n.to_le_bytes())))
        .collect();
    let open = Transaction {
        signer: publisher_id,
        nonce: 0,
        fee: params.minimum_fee,
        call: Call::EscrowOpen {
            payment: terms.payment_required(rounds).map_err(|e| e.to_string())?,
            terms: terms.clone(),
            penalty: 0,
        },
    };
    let genesis_hash = cachecash_runtime::Hash([0; 32]);
    let opened = cachecash_runtime::execution::execute_block(
        &state,
        &AccountId([0; 32]),
        &[open.sign(&publisher, &genesis_hash)],
        &params,
        BlockEnv {
            number: 1,
            history: &history,
        },
    )
    .map_err(|e| e.to_string())?;
    state.apply(&opened.changes);
    let escrow = escrow_id(&history[&0], &publisher_id, 0);
    let mut to_claim: Vec<Ticket> = Vec::with_capacity(claims);
    'rounds: for round in 2..=1 + rounds {
        let seed = history
            .get(&terms.draw_height(round).map_err(|e| e.to_string())?)
            .copied()
            .ok_or("draw block missing from the synthetic history")?;
        for number in winners(&seed, &escrow, round, terms.tickets_per_round, W) {
            if to_claim.len() == claims {
                break 'rounds;
            }
            let cache = &caches[to_claim.len() / PER_TX];
            to_claim.push(Ticket {
                escrow,
                round,
                number,
                cache: AccountId::from_signing_key(cache),
                client: AccountId([3; 32]),
                chunk: cachecash_runtime::Hash([4; 32]),
                secret_hash: secret_commitment(&secret),
            });
        }
    }
    let signed = sign_tickets_batch(&publisher, to_claim);
    let txs: Vec<SignedTransaction> = signed
        .chunks(PER_TX)
        .zip(&caches)
        .map(|(chunk, key)| {
            Transaction {
                signer: AccountId::from_signing_key(key),
                nonce: 0,
                fee: params.minimum_fee,
                call: Call::TicketClaim {
                    claims: chunk
                        .iter()
                        .map(|t| TicketClaimItem {
                            ticket: t.clone(),
                            preimage: secret,
                        })
                        .collect(),
                },
            }
            .sign(key, &genesis_hash)
        })
        .collect();
    let height = terms
        .draw_height(1 + rounds)
        .map_err(|e| e.to_string())?
        .saturating_add(1);
    let started = Instant::now();
    verify_signatures_batch(&txs, &genesis_hash).map_err(|(i, e)| format!("tx {i}: {e}"))?;
    let sig_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let executed = cachecash_runtime::execution::execute_block(
        &state,
        &AccountId([0; 32]),
        &txs,
        &params,
        BlockEnv {
            number: height,
            history: &history,
        },
    )
    .map_err(|e| e.to_string())?;
    let claim_seconds = started.elapsed().as_secs_f64();
    let paid = executed
        .changes
        .escrows
        .get(&escrow)
        .and_then(|e| e.as_ref())
        .map(|e| e.claimed.iter().map(|r| r.numbers.len()).sum::<usize>())
        .unwrap_or(0);
    if paid != signed.len() {
        return Err(format!("{paid} of {} claims were recorded", signed.len()));
    }
    Ok(MicrocashReport {
        tickets_issued: issue,
        tickets_issued_per_second: issue as f64 / issue_seconds.max(1e-9),
        claims: signed.len(),
        claims_per_second: signed.len() as f64 / claim_seconds.max(1e-9),
        claims_per_second_with_tx_signatures: signed.len() as f64
            / (claim_seconds + sig_seconds).max(1e-9),
    })
}

/// Result of the network benchmark.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkReport {
    /// Blocks synced by the joining node.
    pub sync_blocks: usize,
    /// Transfers in them.
    pub sync_transfers: usize,
    /// Wall time from the joiner's start to its last import.
    pub sync_seconds: f64,
    /// Transfers imported per second by the joiner (goal ≥ 5,000).
    pub sync_transfers_per_second: f64,
    /// Blocks per second.
    pub sync_blocks_per_second: f64,
    /// Hops between the miner and the measured node.
    pub propagation_hops: usize,
    /// Transfers per propagated block.
    pub propagation_block_transfers: usize,
    /// Blocks timed.
    pub propagation_samples: usize,
    /// Median milliseconds from the miner's import to the last hop's (goal ≤ 100).
    pub propagation_p50_ms: f64,
    /// 90th percentile.
    pub propagation_p90_ms: f64,
}

struct BenchNode {
    chain: Arc<Chain>,
    handle: cachecash_node::network::NetworkHandle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: TempDir,
}

impl BenchNode {
    async fn start(
        params: &ConsensusParams,
        genesis: &Genesis,
        rocks: bool,
        bootnodes: Vec<cachecash_node::network::Multiaddr>,
        discovery: bool,
    ) -> Result<BenchNode, String> {
        let dir = tempfile_dir()?;
        let store: Arc<dyn Store> = if rocks {
            Arc::new(RocksStore::open(&dir.path().join("db")).map_err(|e| e.to_string())?)
        } else {
            Arc::new(MemoryStore::new())
        };
        let chain = Arc::new(
            Chain::open(store, params.clone(), genesis, Arc::new(Metrics::new()))
                .map_err(|e| e.to_string())?,
        );
        let pool = Arc::new(cachecash_node::Mempool::new(
            chain.clone(),
            Default::default(),
        ));
        let mut config =
            cachecash_node::network::NetworkConfig::loopback(dir.path().join("node_key"));
        config.bootnodes = bootnodes;
        config.discovery = discovery;
        let (handle, tasks) = cachecash_node::network::start(config, chain.clone(), pool)
            .await
            .map_err(|e| e.to_string())?;
        Ok(BenchNode {
            chain,
            handle,
            tasks,
            _dir: dir,
        })
    }

    fn addr(&self) -> Result<cachecash_node::network::Multiaddr, String> {
        self.handle
            .listen_addresses()
            .into_iter()
            .next()
            .ok_or_else(|| "the node has no listen address".to_string())
    }

    async fn stop(self) {
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Waits until `chain` holds block `hash` on its canonical chain.
async fn wait_for_block(
    chain: &Chain,
    hash: cachecash_runtime::Hash,
    deadline: Duration,
) -> Result<(), String> {
    let mut events = chain.subscribe();
    let wait = async {
        loop {
            if chain.head().hash == hash {
                return;
            }
            let _ = events.recv().await;
        }
    };
    tokio::time::timeout(deadline, wait)
        .await
        .map_err(|_| format!("block {hash} did not arrive within {deadline:?}"))
}

/// Sync and propagation over real libp2p connections on loopback.
///
/// - **Sync:** a node holding `blocks` blocks of `per_block` transfers
///   serves a fresh node (RocksDB) that joins with it as bootnode; the rate
///   is the joiner's transfers imported per second of wall time.
/// - **Propagation:** four nodes in a line (discovery off, so every block
///   crosses three hops); the first imports a mined block of
///   `prop_transfers` transfers and announces it; the time until the
///   fourth has imported it is measured `samples` times.
pub async fn network_benchmark(
    blocks: usize,
    per_block: usize,
    samples: usize,
    prop_transfers: usize,
) -> Result<NetworkReport, String> {
    let params = bench_params();
    let keys = bench_keys(per_block.max(prop_transfers).max(1));
    let genesis = bench_genesis(&params, &keys);
    let (p, k, g) = (params.clone(), keys.clone(), genesis.clone());
    let prepared =
        tokio::task::spawn_blocking(move || build_transfer_blocks(&p, &k, &g, blocks, per_block))
            .await
            .map_err(|e| e.to_string())?;

    // Sync.
    let server = BenchNode::start(&params, &genesis, false, Vec::new(), true).await?;
    let tip = prepared.last().map(Block::hash);
    {
        let chain = server.chain.clone();
        tokio::task::spawn_blocking(move || {
            for b in prepared {
                chain
                    .import_block(b, BlockOrigin::File)
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })
        .await
        .map_err(|e| e.to_string())??;
    }
    let started = Instant::now();
    let joiner = BenchNode::start(&params, &genesis, true, vec![server.addr()?], true).await?;
    if let Some(tip) = tip {
        wait_for_block(&joiner.chain, tip, Duration::from_secs(1800)).await?;
    }
    let sync_seconds = started.elapsed().as_secs_f64();
    joiner.stop().await;
    server.stop().await;

    // Propagation across three hops.
    let warmup = 3usize;
    let (p, k, g) = (params.clone(), keys.clone(), genesis.clone());
    let total = samples.saturating_add(warmup);
    let chain_blocks = tokio::task::spawn_blocking(move || {
        build_transfer_blocks(&p, &k, &g, total, prop_transfers)
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut line: Vec<BenchNode> = Vec::new();
    for i in 0..4 {
        let boot = match line.last() {
            Some(prev) => vec![prev.addr()?],
            None => Vec::new(),
        };
        line.push(BenchNode::start(&params, &genesis, false, boot, false).await?);
        let _ = i;
    }
    // Wait for the line to be connected.
    let end = Instant::now() + Duration::from_secs(30);
    while !(line[1].handle.peer_count() >= 2
        && line[2].handle.peer_count() >= 2
        && line[3].handle.peer_count() >= 1)
    {
        if Instant::now() > end {
            return Err("the four benchmark nodes did not connect within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut times = Vec::with_capacity(samples);
    for (i, block) in chain_blocks.into_iter().enumerate() {
        let hash = block.hash();
        let first = line[0].chain.clone();
        let t0 = Instant::now();
        tokio::task::spawn_blocking(move || {
            first
                .import_block(block, BlockOrigin::Mined)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let imported = t0.elapsed();
        wait_for_block(&line[3].chain, hash, Duration::from_secs(30)).await?;
        let total = t0.elapsed().saturating_sub(imported);
        if i >= warmup {
            times.push(total.as_secs_f64() * 1000.0);
        }
    }
    for n in line {
        n.stop().await;
    }
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| -> f64 {
        if times.is_empty() {
            return 0.0;
        }
        let i = ((times.len() - 1) as f64 * q).round() as usize;
        times[i.min(times.len() - 1)]
    };
    let transfers = blocks * per_block;
    Ok(NetworkReport {
        sync_blocks: blocks,
        sync_transfers: transfers,
        sync_seconds,
        sync_transfers_per_second: transfers as f64 / sync_seconds.max(1e-9),
        sync_blocks_per_second: blocks as f64 / sync_seconds.max(1e-9),
        propagation_hops: 3,
        propagation_block_transfers: prop_transfers,
        propagation_samples: times.len(),
        propagation_p50_ms: pct(0.5),
        propagation_p90_ms: pct(0.9),
    })
}

//! The proof-of-work miner.
//!
//! Mining runs on its own OS thread, never on the async executor. The loop:
//! 1. wait until a block is due (with a fixed target — the `dev` chain —
//!    one block per target block time, idling in between; with
//!    retargeting, immediately);
//! 2. build a template on the head from the mempool's ready transactions;
//! 3. grind nonces from a precomputed SHA-256 prefix, checking every
//!    [`CHECK_INTERVAL`] attempts whether the head or the mempool changed
//!    (restart with a new template), whether the template is older than a
//!    second (refresh the timestamp), or whether to stop;
//! 4. import the found block through the same pipeline as any other block.
//!
//! While the network reports that the node is catching up with its peers
//! (the `syncing` flag), the miner waits: a block on a stale head would
//! only be an orphan.

use crate::chain::{BlockOrigin, Chain, ImportOutcome, now_ms};
use crate::mempool::Mempool;
use cachecash_runtime::builder::TemplateInput;
use cachecash_runtime::{AccountId, Block, Header};
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Nonces tried between checks for a new head, new transactions or stop.
pub const CHECK_INTERVAL: u64 = 16 * 1024;

/// Most transactions taken from the pool per template.
const MAX_TEMPLATE_CANDIDATES: usize = 20_000;

/// A running miner; stops when dropped or with [`Miner::stop`].
#[derive(Debug)]
pub struct Miner {
    signal: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    fn is_stopped(&self) -> bool {
        *self.stopped.lock()
    }

    /// Sleeps up to `d`; true if stopped meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let mut s = self.stopped.lock();
        if !*s {
            self.cv.wait_for(&mut s, d);
        }
        *s
    }
}

impl Miner {
    /// Starts mining for `account`.
    pub fn start(
        chain: Arc<Chain>,
        pool: Arc<Mempool>,
        account: AccountId,
        syncing: Arc<AtomicBool>,
    ) -> std::io::Result<Miner> {
        let signal = Arc::new(StopSignal::default());
        let s = signal.clone();
        let thread = std::thread::Builder::new()
            .name("cachecash-miner".into())
            .spawn(move || run(&chain, &pool, account, &s, &syncing))?;
        Ok(Miner {
            signal,
            thread: Some(thread),
        })
    }

    /// Stops the miner and waits for its thread.
    pub fn stop(&mut self) {
        *self.signal.stopped.lock() = true;
        self.signal.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(chain: &Chain, pool: &Mempool, account: AccountId, stop: &StopSignal, syncing: &AtomicBool) {
    tracing::info!(target: "cachecash::miner", %account, "miner started");
    let fixed_target = chain.params().retarget_window == 0;
    let block_time = chain.params().target_block_time_ms;
    let mut nonce_base: u64 = u64::from(std::process::id()).wrapping_shl(40);
    while !stop.is_stopped() {
        if syncing.load(Ordering::Acquire) {
            if stop.sleep(Duration::from_millis(200)) {
                break;
            }
            continue;
        }
        let head = chain.head();
        if fixed_target {
            let due = head.header.timestamp.saturating_add(block_time);
            let now = now_ms();
            if now < due {
                if stop.sleep(Duration::from_millis(due.saturating_sub(now))) {
                    break;
                }
                continue;
            }
        }
        match mine_one(chain, pool, account, stop, &head.header, nonce_base) {
            Ok(Some(block)) => {
                let number = block.header.number;
                let hash = block.hash();
                let txs = block.transactions.len();
                match chain.import_block(block, BlockOrigin::Mined) {
                    Ok(ImportOutcome::Imported(_)) => {
                        chain.metrics().blocks_mined.inc();
                        tracing::info!(target: "cachecash::miner", number, %hash, txs, "mined block");
                    }
                    Ok(ImportOutcome::AlreadyKnown(_)) => {}
                    Ok(ImportOutcome::SideChain { .. }) => {
                        tracing::debug!(target: "cachecash::miner", number, %hash, "mined block landed on a side chain");
                    }
                    Err(e) => {
                        tracing::warn!(target: "cachecash::miner", "mined block {hash} was not imported: {e}");
                        if stop.sleep(Duration::from_millis(200)) {
                            break;
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(target: "cachecash::miner", "could not build a block template: {e}; retrying in 1 s");
                if stop.sleep(Duration::from_secs(1)) {
                    break;
                }
            }
        }
        nonce_base = nonce_base.wrapping_add(1 << 32);
    }
    tracing::info!(target: "cachecash::miner", "miner stopped");
}

/// Builds a template on `parent` and grinds it. `None` when interrupted
/// (new head, new transactions, stale timestamp, stop).
fn mine_one(
    chain: &Chain,
    pool: &Mempool,
    account: AccountId,
    stop: &StopSignal,
    parent: &Header,
    nonce_base: u64,
) -> Result<Option<Block>, String> {
    let started = Instant::now();
    let generation = pool.generation();
    let parent_hash = parent.hash();
    let ctx = chain
        .context_for(parent, now_ms())
        .map_err(|e| e.to_string())?;
    let timestamp = now_ms().max(ctx.median_time_past.saturating_add(1));
    let candidates = pool.ready(MAX_TEMPLATE_CANDIDATES);
    let template = chain
        .build_template(
            TemplateInput {
                parent: parent.clone(),
                timestamp,
                target: ctx.expected_target,
                miner: account,
            },
            candidates,
        )
        .map_err(|e| e.to_string())?;
    for (hash, why) in &template.rejected {
        tracing::debug!(target: "cachecash::miner", %hash, "left out of template: {why}");
    }
    let mut block = template.block;
    let prefix = block.header.mining_prefix();
    let target = block.header.target;
    let mut nonce = nonce_base;
    loop {
        for _ in 0..CHECK_INTERVAL {
            if target.is_met_by(&Header::hash_with_nonce(&prefix, nonce)) {
                block.header.nonce = nonce;
                return Ok(Some(block));
            }
            nonce = nonce.wrapping_add(1);
        }
        if stop.is_stopped()
            || chain.head().hash != parent_hash
            || pool.generation() != generation
            || started.elapsed() > Duration::from_secs(1)
        {
            return Ok(None);
        }
    }
}

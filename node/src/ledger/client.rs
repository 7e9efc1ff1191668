//! [`LedgerClient`]: the async ledger interface of hosted modules.
//!
//! # Design
//!
//! - **Nothing blocks the async runtime.** Every call that reads storage
//!   runs on Tokio's blocking pool; only the in-memory best block is read
//!   inline.
//! - **Reads are checkable.** Accounts and escrows come as [`Proven`]
//!   values: the value, the block it was read at, that block's state root
//!   and the Merkle path. `Proven::verify` recomputes the root, so a module
//!   that forwards a value to a peer can forward the proof with it.
//! - **Watches are derived from state, not from events.** A watch
//!   recomputes what it reports after every chain event and at least once a
//!   second, and sends only changes. Chain events only wake it, so a watch
//!   that falls behind the event channel (a burst of blocks during sync)
//!   loses nothing: it reads the state as it now is. Each watch is one task
//!   and a bounded channel of [`WATCH_CAPACITY`]; it ends when its receiver
//!   is dropped or the chain shuts down.
//! - **Reorganisations are explicit.** [`HeadEvents`] reports a branch
//!   switch as a [`HeadEvent::Reorg`] naming every block that left the
//!   canonical chain, then the new blocks; a block is [`HeadEvent::Final`]
//!   once it is `confirmations` deep. Proof of work has no absolute
//!   finality: a reorganisation deeper than the depth retracts "final"
//!   blocks too, and the events say so.

use super::{ChainLedger, Ledger, LedgerError};
use async_trait::async_trait;
use cachecash_runtime::commitment::{AccountProof, ProofError, verify_escrow_proof, verify_proof};
use cachecash_runtime::microcash::{Escrow, EscrowId};
use cachecash_runtime::{Account, AccountId, Balance, Hash, Header, SignedTransaction};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Items a watch may queue before it waits for its reader.
pub const WATCH_CAPACITY: usize = 64;

/// How often a watch re-reads state when no chain event woke it (pool
/// changes are not chain events).
pub const WATCH_RECHECK: Duration = Duration::from_secs(1);

/// Canonical blocks a [`HeadEvents`] stream remembers to detect
/// reorganisations; a switch deeper than this is reported from the oldest
/// remembered block.
pub const HEAD_WINDOW: u64 = 1024;

/// A block of the canonical chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Height.
    pub number: u64,
    /// Hash.
    pub hash: Hash,
}

/// A state read with the Merkle proof that makes it checkable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proven<T> {
    /// The value (`None`: absent at that block).
    pub value: T,
    /// The Merkle path from the value's leaf to the state root.
    pub proof: AccountProof,
    /// The block the value was read at.
    pub block: BlockRef,
    /// That block's state root.
    pub state_root: Hash,
}

impl<T> Proven<T> {
    fn new(value: T, proof: AccountProof, hash: Hash, header: &Header) -> Self {
        Proven {
            value,
            proof,
            block: BlockRef {
                number: header.number,
                hash,
            },
            state_root: header.state_root,
        }
    }
}

impl Proven<Option<Account>> {
    /// Checks the proof of account `id` against the state root.
    pub fn verify(&self, id: &AccountId) -> Result<(), ProofError> {
        verify_proof(&self.state_root, id, self.value.as_ref(), &self.proof)
    }
}

impl Proven<Option<Escrow>> {
    /// Checks the proof of escrow `id` against the state root.
    pub fn verify(&self, id: &EscrowId) -> Result<(), ProofError> {
        verify_escrow_proof(&self.state_root, id, self.value.as_ref(), &self.proof)
    }
}

/// Where a transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Waiting in the pool.
    Pending,
    /// In a canonical block, not yet as deep as asked.
    InBlock {
        /// The block.
        block: BlockRef,
        /// Its depth: 1 when it is the best block.
        confirmations: u64,
    },
    /// In a canonical block at least as deep as asked.
    Final {
        /// The block.
        block: BlockRef,
    },
    /// Neither in the pool nor in the canonical chain: never seen, evicted,
    /// or made invalid by a reorganisation. Re-submit it if it still
    /// should land.
    Unknown,
}

/// A change of an escrow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscrowUpdate {
    /// The best block it was read at.
    pub block: BlockRef,
    /// The escrow (`None`: not open, never opened or closed).
    pub escrow: Option<Escrow>,
}

/// What happened to the canonical chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadEvent {
    /// A block joined the canonical chain (one event per block, in order).
    NewBest(BlockRef),
    /// The chain switched branches: `retracted` (newest first) left it;
    /// `common` is the last block both branches share. `NewBest` events for
    /// the new branch follow.
    Reorg {
        /// The newest block kept.
        common: BlockRef,
        /// Blocks no longer canonical, newest first.
        retracted: Vec<BlockRef>,
    },
    /// The block is now as deep as the stream's confirmation depth.
    Final(BlockRef),
}

/// The ledger as hosted modules on the async runtime see it.
#[async_trait]
pub trait LedgerClient: Send + Sync + std::fmt::Debug + 'static {
    /// The genesis hash.
    fn genesis(&self) -> Hash;
    /// The best block (in memory; no I/O).
    fn best(&self) -> BlockRef;
    /// An account (absent: `None`) with its proof, at `at` or the best block.
    async fn account(
        &self,
        id: AccountId,
        at: Option<Hash>,
    ) -> Result<Proven<Option<Account>>, LedgerError>;
    /// An escrow with its proof, at `at` or the best block.
    async fn escrow(
        &self,
        id: EscrowId,
        at: Option<Hash>,
    ) -> Result<Proven<Option<Escrow>>, LedgerError>;
    /// Up to `limit` escrows funded by `funder` (still on chain, closed ones
    /// holding their penalty included) from index slot `start` on, at the
    /// best block.
    async fn escrows_funded_by(
        &self,
        funder: AccountId,
        start: u64,
        limit: u64,
    ) -> Result<Vec<EscrowId>, LedgerError>;
    /// The nonce `id`'s next transaction must carry (pool included).
    async fn next_nonce(&self, id: AccountId) -> Result<u64, LedgerError>;
    /// A fee likely to include a transaction of `size` signed bytes soon.
    async fn fee_estimate(&self, size: usize) -> Result<Balance, LedgerError>;
    /// Submits a transaction to the pool; its hash.
    async fn submit(&self, tx: SignedTransaction) -> Result<Hash, LedgerError>;
    /// Where transaction `tx` stands, `Final` at `confirmations` deep.
    async fn transaction_status(
        &self,
        tx: Hash,
        confirmations: u64,
    ) -> Result<TxStatus, LedgerError>;
    /// Every change of [`LedgerClient::transaction_status`], starting with
    /// the current one. Call within a Tokio runtime.
    fn watch_transaction(&self, tx: Hash, confirmations: u64) -> TxWatch;
    /// Every change of an escrow, starting with its current value. Call
    /// within a Tokio runtime.
    fn watch_escrow(&self, id: EscrowId) -> EscrowWatch;
    /// Head events, starting with the best block (and the block that is
    /// `confirmations` deep, as `Final`). Call within a Tokio runtime.
    fn head_events(&self, confirmations: u64) -> HeadEvents;
}

/// A stream of values from a watch task; dropping it stops the task.
#[derive(Debug)]
pub struct Watch<T> {
    rx: mpsc::Receiver<T>,
    task: tokio::task::JoinHandle<()>,
}

/// Changes of a transaction's status.
pub type TxWatch = Watch<TxStatus>;
/// Changes of an escrow.
pub type EscrowWatch = Watch<EscrowUpdate>;
/// Changes of the canonical chain.
pub type HeadEvents = Watch<HeadEvent>;

impl<T> Watch<T> {
    /// The next item; `None` once the chain shut down.
    pub async fn next(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    /// An item already queued, without waiting.
    pub fn try_next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> Drop for Watch<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T> futures::Stream for Watch<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, LedgerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| LedgerError::ShuttingDown)?
}

/// Waits for a chain event or the recheck interval; `false` once the chain
/// is gone.
async fn wake(events: &mut broadcast::Receiver<crate::chain::ChainEvent>) -> bool {
    tokio::select! {
        r = events.recv() => !matches!(r, Err(broadcast::error::RecvError::Closed)),
        () = tokio::time::sleep(WATCH_RECHECK) => true,
    }
}

/// Spawns a watch that sends `compute`'s value whenever it changes.
fn spawn_state_watch<T>(
    ledger: &ChainLedger,
    what: &'static str,
    compute: impl Fn(&ChainLedger) -> Result<T, LedgerError> + Send + Sync + 'static,
) -> Watch<T>
where
    T: Clone + PartialEq + Send + 'static,
{
    let (tx, rx) = mpsc::channel(WATCH_CAPACITY);
    let mut events = ledger.chain.subscribe();
    let ledger = ledger.clone();
    let compute = std::sync::Arc::new(compute);
    let task = tokio::spawn(async move {
        let mut last: Option<T> = None;
        loop {
            let (l, c) = (ledger.clone(), compute.clone());
            match blocking(move || c(&l)).await {
                Ok(v) if last.as_ref() != Some(&v) => {
                    if tx.send(v.clone()).await.is_err() {
                        return;
                    }
                    last = Some(v);
                }
                Ok(_) => {}
                Err(LedgerError::ShuttingDown) => return,
                Err(e) => {
                    tracing::warn!(target: "cachecash::ledger", "{what} watch: {e}; retrying")
                }
            }
            if !wake(&mut events).await {
                return;
            }
        }
    });
    Watch { rx, task }
}

impl ChainLedger {
    fn status_of(&self, tx: &Hash, confirmations: u64) -> Result<TxStatus, LedgerError> {
        let head = self.chain.head().header.number;
        if let Some((number, hash)) = self.transaction_block(tx)? {
            let depth = head.saturating_sub(number).saturating_add(1);
            let block = BlockRef { number, hash };
            return Ok(if depth >= confirmations {
                TxStatus::Final { block }
            } else {
                TxStatus::InBlock {
                    block,
                    confirmations: depth,
                }
            });
        }
        Ok(if self.pool.contains(tx) {
            TxStatus::Pending
        } else {
            TxStatus::Unknown
        })
    }
}

#[async_trait]
impl LedgerClient for ChainLedger {
    fn genesis(&self) -> Hash {
        self.chain.genesis_hash()
    }

    fn best(&self) -> BlockRef {
        let h = self.chain.head();
        BlockRef {
            number: h.header.number,
            hash: h.hash,
        }
    }

    async fn account(
        &self,
        id: AccountId,
        at: Option<Hash>,
    ) -> Result<Proven<Option<Account>>, LedgerError> {
        let chain = self.chain.clone();
        blocking(move || {
            let (value, proof, hash, header) = chain.account_proof(&id, at)?;
            Ok(Proven::new(value, proof, hash, &header))
        })
        .await
    }

    async fn escrow(
        &self,
        id: EscrowId,
        at: Option<Hash>,
    ) -> Result<Proven<Option<Escrow>>, LedgerError> {
        let chain = self.chain.clone();
        blocking(move || {
            let (value, proof, hash, header) = chain.escrow_proof(&id, at)?;
            Ok(Proven::new(value, proof, hash, &header))
        })
        .await
    }

    async fn escrows_funded_by(
        &self,
        funder: AccountId,
        start: u64,
        limit: u64,
    ) -> Result<Vec<EscrowId>, LedgerError> {
        let chain = self.chain.clone();
        blocking(move || Ok(chain.funder_escrows(&funder, None, start, limit)?)).await
    }

    async fn next_nonce(&self, id: AccountId) -> Result<u64, LedgerError> {
        let l = self.clone();
        blocking(move || Ledger::next_nonce(&l, &id)).await
    }

    async fn fee_estimate(&self, size: usize) -> Result<Balance, LedgerError> {
        let l = self.clone();
        blocking(move || Ok(Ledger::fee_estimate(&l, size))).await
    }

    async fn submit(&self, tx: SignedTransaction) -> Result<Hash, LedgerError> {
        let l = self.clone();
        blocking(move || Ledger::submit(&l, tx)).await
    }

    async fn transaction_status(
        &self,
        tx: Hash,
        confirmations: u64,
    ) -> Result<TxStatus, LedgerError> {
        let l = self.clone();
        blocking(move || l.status_of(&tx, confirmations)).await
    }

    fn watch_transaction(&self, tx: Hash, confirmations: u64) -> TxWatch {
        spawn_state_watch(self, "transaction", move |l| {
            l.status_of(&tx, confirmations)
        })
    }

    fn watch_escrow(&self, id: EscrowId) -> EscrowWatch {
        spawn_state_watch(self, "escrow", move |l| {
            let (escrow, hash, header) = l.chain.escrow(&id, None)?;
            Ok(EscrowUpdate {
                block: BlockRef {
                    number: header.number,
                    hash,
                },
                escrow,
            })
        })
    }

    fn head_events(&self, confirmations: u64) -> HeadEvents {
        let (tx, rx) = mpsc::channel(WATCH_CAPACITY);
        let mut events = self.chain.subscribe();
        let ledger = self.clone();
        let task = tokio::spawn(async move {
            let mut tracker = HeadTracker::new(confirmations);
            loop {
                let l = ledger.clone();
                let step = blocking(move || {
                    let out = tracker.step(&l)?;
                    Ok((tracker, out))
                })
                .await;
                match step {
                    Ok((t, out)) => {
                        tracker = t;
                        for e in out {
                            if tx.send(e).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(LedgerError::ShuttingDown) => return,
                    Err(e) => {
                        // The tracker was consumed by the failed step:
                        // start over from the best block.
                        tracing::warn!(target: "cachecash::ledger", "head events: {e}; resuming from the best block");
                        tracker = HeadTracker::new(confirmations);
                    }
                }
                if !wake(&mut events).await {
                    return;
                }
            }
        });
        Watch { rx, task }
    }
}

/// The state behind [`HeadEvents`]: the canonical blocks announced so far
/// (the last [`HEAD_WINDOW`]) and the highest block reported final.
#[derive(Debug)]
struct HeadTracker {
    confirmations: u64,
    announced: BTreeMap<u64, Hash>,
    final_upto: Option<u64>,
}

impl HeadTracker {
    fn new(confirmations: u64) -> Self {
        HeadTracker {
            confirmations: confirmations.max(1),
            announced: BTreeMap::new(),
            final_upto: None,
        }
    }

    fn canonical(l: &ChainLedger, number: u64) -> Result<Hash, LedgerError> {
        l.chain
            .canonical_hash(number)?
            .ok_or_else(|| LedgerError::UnknownBlock(format!("#{number}")))
    }

    /// The events that bring a reader from what was announced to the
    /// chain as it is now.
    fn step(&mut self, l: &ChainLedger) -> Result<Vec<HeadEvent>, LedgerError> {
        let head = l.chain.head();
        let best = head.header.number;
        let mut out = Vec::new();
        // A branch switch: drop announced blocks no longer canonical.
        let mut retracted = Vec::new();
        let mut resume_after = None;
        while let Some((&n, &h)) = self.announced.last_key_value() {
            if n <= best && l.chain.canonical_hash(n)? == Some(h) {
                break;
            }
            retracted.push(BlockRef { number: n, hash: h });
            self.announced.remove(&n);
        }
        if !retracted.is_empty() {
            let common = match self.announced.last_key_value() {
                Some((&number, &hash)) => BlockRef { number, hash },
                None => {
                    // Deeper than the window: the block below the oldest
                    // retracted one is the newest we can name.
                    let number = retracted.last().map_or(0, |b| b.number).saturating_sub(1);
                    BlockRef {
                        number,
                        hash: Self::canonical(l, number)?,
                    }
                }
            };
            if self.final_upto.is_some_and(|f| f > common.number) {
                self.final_upto = Some(common.number);
            }
            resume_after = Some(common.number);
            out.push(HeadEvent::Reorg { common, retracted });
        }
        // New canonical blocks (the best alone on the first step), at most
        // a window of them.
        let from = match (self.announced.last_key_value(), resume_after) {
            (Some((&n, _)), _) | (None, Some(n)) => n.saturating_add(1),
            (None, None) => best,
        }
        .max(best.saturating_sub(HEAD_WINDOW.saturating_sub(1)));
        for number in from..=best {
            let hash = if number == best {
                head.hash
            } else {
                Self::canonical(l, number)?
            };
            self.announced.insert(number, hash);
            out.push(HeadEvent::NewBest(BlockRef { number, hash }));
            self.finalize(l, number, &mut out)?;
        }
        while self.announced.len() > usize::try_from(HEAD_WINDOW).unwrap_or(usize::MAX) {
            self.announced.pop_first();
        }
        // After a reorganisation to a shorter or equal branch, blocks
        // final on the new branch may still be owed.
        self.finalize(l, best, &mut out)?;
        Ok(out)
    }

    /// Reports as final every block not yet reported that is
    /// `confirmations` deep when `best` is the best block.
    fn finalize(
        &mut self,
        l: &ChainLedger,
        best: u64,
        out: &mut Vec<HeadEvent>,
    ) -> Result<(), LedgerError> {
        let Some(deep) = best.checked_sub(self.confirmations.saturating_sub(1)) else {
            return Ok(());
        };
        let start = match self.final_upto {
            Some(f) => f.saturating_add(1),
            None => deep,
        }
        .max(deep.saturating_sub(HEAD_WINDOW.saturating_sub(1)));
        for number in start..=deep {
            let hash = match self.announced.get(&number) {
                Some(h) => *h,
                None => Self::canonical(l, number)?,
            };
            out.push(HeadEvent::Final(BlockRef { number, hash }));
        }
        if start <= deep {
            self.final_upto = Some(deep);
        }
        Ok(())
    }
}

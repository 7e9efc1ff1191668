//! The transaction pool.
//!
//! # Admission
//!
//! A transaction is admitted only after every check a block would apply,
//! evaluated against the head state plus the sender's pending transactions:
//! size and decoding, signature (strict ed25519), fee ≥ chain minimum, not
//! already pending or included, nonce = the next one after the sender's
//! state nonce and pending transactions (or equal to a pending one, to
//! replace it with a fee at least [`REPLACE_BUMP_PERCENT`]% higher), and a
//! balance covering this and every earlier pending transaction of the
//! sender. Each rejection is a [`PoolError`] that says why and what to do.
//!
//! # Bounds and eviction
//!
//! At most [`PoolLimits::max_transactions`] transactions and
//! [`PoolLimits::max_bytes`] encoded bytes in total, and
//! [`PoolLimits::max_per_account`] per sender. When full, a new transaction
//! evicts the lowest-fee transaction that is the last of its sender's
//! sequence (so no sender is left with a nonce gap), and only if it pays
//! more; otherwise it is rejected.
//!
//! # Ordering
//!
//! [`Mempool::ready`] yields transactions by fee, highest first, while
//! keeping each sender's nonce order: a sender's next transaction becomes
//! eligible once the previous one is taken.
//!
//! # Re-validation
//!
//! After every new head, included transactions leave the pool and every
//! sender's sequence is re-checked against the new state; transactions that
//! became invalid (stale nonce, insufficient balance) are dropped with the
//! reason logged. After a revert, transactions of removed blocks are offered
//! again.
//!
//! # Announcements
//!
//! Transactions submitted locally ([`Mempool::submit`], the RPC path), and
//! transactions of abandoned blocks that are re-admitted after a
//! reorganisation, are announced on a bounded broadcast channel
//! ([`Mempool::subscribe_local`]) for the network to gossip. Transactions that arrived from peers
//! ([`Mempool::submit_from_network`]) are not: gossip forwards them itself
//! once they are accepted.

use crate::chain::{Chain, ChainEvent};
use crate::storage::TreeView;
use cachecash_runtime::commitment::TreeState;
use cachecash_runtime::execution::apply_transaction;
use cachecash_runtime::microcash::{Escrow, EscrowId};
use cachecash_runtime::state::{BlockEnv, Overlay, StateError, StateReader};
use cachecash_runtime::transaction::TransactionDecodeError;
use cachecash_runtime::{Account, AccountId, Balance, Hash, Nonce, SignedTransaction, TxError};
use parity_scale_codec::Encode;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Minimum fee increase, in percent, to replace a pending transaction.
pub const REPLACE_BUMP_PERCENT: u128 = 10;

/// Pool size limits.
#[derive(Clone, Copy, Debug)]
pub struct PoolLimits {
    /// Most transactions.
    pub max_transactions: usize,
    /// Most encoded bytes in total.
    pub max_bytes: usize,
    /// Most pending transactions of one sender.
    pub max_per_account: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_transactions: 8192,
            max_bytes: 16 * 1024 * 1024,
            max_per_account: 64,
        }
    }
}

/// Why the pool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Not a transaction.
    #[error(transparent)]
    Decode(#[from] TransactionDecodeError),
    /// A rule of the chain.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// Already pending.
    #[error("transaction {0} is already pending")]
    AlreadyPending(Hash),
    /// Already in a block.
    #[error("transaction {hash} is already included in block {block}")]
    AlreadyIncluded {
        /// Transaction.
        hash: Hash,
        /// Including block.
        block: Hash,
    },
    /// Replacement fee too low.
    #[error(
        "a transaction with nonce {nonce} from {signer} is already pending with fee {pending_fee}; to replace it pay a fee of at least {required}"
    )]
    ReplacementUnderpriced {
        /// Sender.
        signer: AccountId,
        /// Nonce.
        nonce: Nonce,
        /// Pending fee.
        pending_fee: Balance,
        /// Required fee.
        required: Balance,
    },
    /// Too many pending for this sender.
    #[error(
        "account {signer} already has {limit} pending transactions, the per-account limit; wait for some to be included"
    )]
    AccountLimit {
        /// Sender.
        signer: AccountId,
        /// Limit.
        limit: usize,
    },
    /// Pool full.
    #[error(
        "the transaction pool is full and a fee of {rate} per KiB does not beat the lowest evictable {lowest} per KiB; pay more or retry later"
    )]
    PoolFull {
        /// Offered fee per KiB.
        rate: Balance,
        /// Lowest evictable fee per KiB.
        lowest: Balance,
    },
    /// State backend failure.
    #[error("could not validate the transaction: {0}")]
    Backend(String),
}

#[derive(Debug, Clone)]
struct Entry {
    tx: SignedTransaction,
    hash: Hash,
    size: usize,
}

/// Fee per KiB of `size` encoded bytes: how the pool orders, evicts and
/// prices transactions, since block space is what a fee buys.
pub fn fee_rate(fee: Balance, size: usize) -> Balance {
    let size = Balance::try_from(size.max(1)).unwrap_or(Balance::MAX);
    fee.saturating_mul(1024) / size
}

impl Entry {
    fn fee_rate(&self) -> Balance {
        fee_rate(self.tx.tx.fee, self.size)
    }
}

#[derive(Debug, Default)]
struct Inner {
    by_hash: HashMap<Hash, (AccountId, Nonce)>,
    by_account: BTreeMap<AccountId, BTreeMap<Nonce, Entry>>,
    bytes: usize,
}

impl Inner {
    fn len(&self) -> usize {
        self.by_hash.len()
    }

    fn remove(&mut self, signer: &AccountId, nonce: Nonce) -> Option<Entry> {
        let seq = self.by_account.get_mut(signer)?;
        let e = seq.remove(&nonce)?;
        if seq.is_empty() {
            self.by_account.remove(signer);
        }
        self.by_hash.remove(&e.hash);
        self.bytes = self.bytes.saturating_sub(e.size);
        Some(e)
    }

    fn insert(&mut self, e: Entry) {
        let signer = e.tx.tx.signer;
        let nonce = e.tx.tx.nonce;
        self.bytes = self.bytes.saturating_add(e.size);
        self.by_hash.insert(e.hash, (signer, nonce));
        self.by_account.entry(signer).or_default().insert(nonce, e);
    }

    /// The lowest-fee transaction that ends its sender's sequence.
    /// The last transaction of the sender whose last transaction pays the
    /// least per byte, with that fee rate.
    fn eviction_candidate(&self) -> Option<(AccountId, Nonce, Balance)> {
        self.by_account
            .iter()
            .filter_map(|(a, seq)| seq.iter().next_back().map(|(n, e)| (*a, *n, e.fee_rate())))
            .min_by_key(|(_, _, rate)| *rate)
    }
}

/// The transaction pool.
#[derive(Debug)]
pub struct Mempool {
    chain: Arc<Chain>,
    limits: PoolLimits,
    inner: Mutex<Inner>,
    generation: AtomicU64,
    local: tokio::sync::broadcast::Sender<SignedTransaction>,
}

/// Capacity of the local-submission announcement channel.
pub const ANNOUNCE_CAPACITY: usize = 4096;

impl Mempool {
    /// An empty pool over `chain`.
    pub fn new(chain: Arc<Chain>, limits: PoolLimits) -> Mempool {
        let (local, _) = tokio::sync::broadcast::channel(ANNOUNCE_CAPACITY);
        Mempool {
            chain,
            limits,
            inner: Mutex::new(Inner::default()),
            generation: AtomicU64::new(0),
            local,
        }
    }

    /// Transactions admitted by [`Mempool::submit`] (local submissions),
    /// for the network to announce. A slow subscriber sees `Lagged`.
    pub fn subscribe_local(&self) -> tokio::sync::broadcast::Receiver<SignedTransaction> {
        self.local.subscribe()
    }

    /// Validates and admits a transaction received from a peer; unlike
    /// [`Mempool::submit`] it is not announced (gossip forwards it).
    pub fn submit_from_network(&self, tx: SignedTransaction) -> Result<Hash, PoolError> {
        let result = self.admit(tx);
        if result.is_err() {
            self.chain.metrics().mempool_rejected.inc();
        }
        result
    }

    /// Increments on every change; the miner rebuilds its template when it moves.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `hash` is pending.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.inner.lock().by_hash.contains_key(hash)
    }

    /// Decodes and submits an encoded transaction.
    pub fn submit_encoded(&self, bytes: &[u8]) -> Result<Hash, PoolError> {
        let tx = SignedTransaction::decode_bounded(bytes)?;
        self.submit(tx)
    }

    /// Validates and admits a locally submitted transaction, announces it
    /// to [`Mempool::subscribe_local`] subscribers, and returns its hash.
    pub fn submit(&self, tx: SignedTransaction) -> Result<Hash, PoolError> {
        let result = self.admit(tx.clone());
        match &result {
            Ok(_) => {
                // Nobody listening (no network) is fine.
                let _ = self.local.send(tx);
            }
            Err(_) => {
                self.chain.metrics().mempool_rejected.inc();
            }
        }
        result
    }

    fn admit(&self, tx: SignedTransaction) -> Result<Hash, PoolError> {
        let params = self.chain.params().clone();
        let hash = tx.hash();
        let size = tx.encoded_size();
        let minimum = params.minimum_fee_for(size);
        if tx.tx.fee < minimum {
            return Err(TxError::FeeTooLow {
                fee: tx.tx.fee,
                minimum,
            }
            .into());
        }
        tx.verify_signature(&self.chain.genesis_hash())?;
        if let Some(loc) = self
            .chain
            .store()
            .tx_location(&hash)
            .map_err(|e| PoolError::Backend(e.to_string()))?
        {
            return Err(PoolError::AlreadyIncluded {
                hash,
                block: loc.block,
            });
        }
        // One head for every read below: the account, the escrows and the
        // draw history are all taken at this block's state version.
        // A reorganisation between taking the head and reading it makes the
        // block unknown: take the new head and read again.
        let mut attempts = 0;
        let (head, state_account) = loop {
            let head = self.chain.head();
            match self.chain.account(&tx.tx.signer, Some(head.hash)) {
                Ok((account, _, _)) => break (head, account),
                Err(crate::chain::ReadError::UnknownBlock(_)) if attempts < 3 => attempts += 1,
                Err(e) => return Err(PoolError::Backend(e.to_string())),
            }
        };

        // The sender's pending sequence is copied out and replayed without
        // the pool's lock (the replay reads escrows from storage); the lock
        // is taken again to insert, and if the sequence changed meanwhile
        // (a concurrent admission for the same sender), the check runs
        // again on the new one.
        let signer = tx.tx.signer;
        let mut attempts = 0u32;
        loop {
            let pending: Vec<Entry> = {
                let inner = self.inner.lock();
                if inner.by_hash.contains_key(&hash) {
                    return Err(PoolError::AlreadyPending(hash));
                }
                inner
                    .by_account
                    .get(&signer)
                    .map(|s| s.values().cloned().collect())
                    .unwrap_or_default()
            };
            self.check_sequence(&tx, &pending, &head, state_account, &params)?;
            let mut inner = self.inner.lock();
            let unchanged = inner
                .by_account
                .get(&signer)
                .map(|s| s.values().map(|e| e.hash).collect::<Vec<_>>())
                .unwrap_or_default()
                == pending.iter().map(|e| e.hash).collect::<Vec<_>>();
            if !unchanged && attempts < 8 {
                attempts = attempts.saturating_add(1);
                continue;
            }
            if !unchanged {
                return Err(PoolError::Backend(format!(
                    "the pending transactions of {signer} kept changing during admission; submit again"
                )));
            }
            if inner.by_hash.contains_key(&hash) {
                return Err(PoolError::AlreadyPending(hash));
            }
            let replacing = pending
                .iter()
                .find(|e| e.tx.tx.nonce == tx.tx.nonce)
                .cloned();
            return self.insert_checked(&mut inner, tx, hash, size, replacing);
        }
    }

    /// Checks `tx` against the sender's `pending` sequence on the head
    /// state: nonce order, the per-account limit, replacement fees, and a
    /// replay of the sequence with `tx` in place (balance and nonce checked
    /// exactly as a block would). Reads storage; no lock is held.
    fn check_sequence(
        &self,
        tx: &SignedTransaction,
        pending: &[Entry],
        head: &crate::chain::HeadInfo,
        state_account: Account,
        params: &cachecash_runtime::ConsensusParams,
    ) -> Result<(), PoolError> {
        let signer = tx.tx.signer;
        let next_nonce = state_account
            .nonce
            .saturating_add(u64::try_from(pending.len()).unwrap_or(u64::MAX));
        let replacing = pending
            .iter()
            .find(|e| e.tx.tx.nonce == tx.tx.nonce)
            .cloned();
        if let Some(old) = &replacing {
            let required = old
                .tx
                .tx
                .fee
                .saturating_mul(100 + REPLACE_BUMP_PERCENT)
                .div_ceil(100)
                .max(old.tx.tx.fee.saturating_add(1));
            if tx.tx.fee < required {
                return Err(PoolError::ReplacementUnderpriced {
                    signer,
                    nonce: tx.tx.nonce,
                    pending_fee: old.tx.tx.fee,
                    required,
                });
            }
        } else if tx.tx.nonce > next_nonce {
            return Err(TxError::FutureNonce {
                signer,
                expected: next_nonce,
                got: tx.tx.nonce,
            }
            .into());
        } else if pending.len() >= self.limits.max_per_account {
            return Err(PoolError::AccountLimit {
                signer,
                limit: self.limits.max_per_account,
            });
        }
        // Replay the sender's sequence with this transaction in place, so
        // balance and nonce are checked exactly as a block would.
        let view = TreeView(self.chain.store().as_ref());
        let head_state = TreeState::new(&view, head.header.number);
        let base = SingleAccount {
            id: signer,
            account: state_account,
            head: &head_state,
        };
        let env = BlockEnv {
            number: head.header.number.saturating_add(1),
            history: &view,
        };
        let mut overlay = Overlay::with_env(&base, env);
        let mut sequence: Vec<&SignedTransaction> = pending
            .iter()
            .filter(|e| e.tx.tx.nonce != tx.tx.nonce)
            .map(|e| &e.tx)
            .collect();
        sequence.push(tx);
        sequence.sort_by_key(|t| t.tx.nonce);
        for t in sequence.iter().filter(|t| t.tx.nonce <= tx.tx.nonce) {
            apply_transaction(&mut overlay, &t.tx, params)?;
        }
        Ok(())
    }

    /// Makes room (evicting lower-fee transactions of other senders) and
    /// inserts a checked transaction, under the pool's lock.
    fn insert_checked(
        &self,
        inner: &mut Inner,
        tx: SignedTransaction,
        hash: Hash,
        size: usize,
        replacing: Option<Entry>,
    ) -> Result<Hash, PoolError> {
        let signer = tx.tx.signer;
        // Room: evict if full (never this sender's own sequence).
        let freed = replacing.as_ref().map(|e| e.size).unwrap_or(0);
        let extra_count = usize::from(replacing.is_none());
        let mut evicted = Vec::new();
        while inner.len().saturating_add(extra_count) > self.limits.max_transactions
            || inner.bytes.saturating_add(size).saturating_sub(freed) > self.limits.max_bytes
        {
            let Some((a, n, lowest)) = inner.eviction_candidate() else {
                break;
            };
            let rate = fee_rate(tx.tx.fee, size);
            if a == signer || lowest >= rate {
                // Undo evictions made for this attempt.
                for e in evicted {
                    inner.insert(e);
                }
                return Err(PoolError::PoolFull { rate, lowest });
            }
            if let Some(e) = inner.remove(&a, n) {
                evicted.push(e);
            }
        }
        for e in &evicted {
            tracing::debug!(target: "cachecash::mempool", hash = %e.hash, "evicted for a higher-fee transaction");
        }
        if let Some(old) = replacing {
            inner.remove(&signer, old.tx.tx.nonce);
            // Later transactions of the sender stay; they are re-checked on the next block.
        }
        inner.insert(Entry { tx, hash, size });
        self.chain
            .metrics()
            .mempool_size
            .set(i64::try_from(inner.len()).unwrap_or(i64::MAX));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(hash)
    }

    /// Up to `max` transactions in inclusion order: highest fee first,
    /// each sender's nonces in order.
    pub fn ready(&self, max: usize) -> Vec<SignedTransaction> {
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        struct Head {
            /// Fee per KiB.
            rate: Balance,
            // Lower nonce first among equal fees; older senders first.
            rev_nonce: std::cmp::Reverse<Nonce>,
            signer: AccountId,
        }
        /// A heap entry ordered by its head alone (signers are unique in
        /// the heap, so heads never tie).
        struct Item<'a> {
            head: Head,
            tx: &'a SignedTransaction,
        }
        impl PartialEq for Item<'_> {
            fn eq(&self, other: &Self) -> bool {
                self.head == other.head
            }
        }
        impl Eq for Item<'_> {}
        impl PartialOrd for Item<'_> {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for Item<'_> {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.head.cmp(&other.head)
            }
        }
        fn item(e: &Entry) -> Item<'_> {
            Item {
                head: Head {
                    rate: e.fee_rate(),
                    rev_nonce: std::cmp::Reverse(e.tx.tx.nonce),
                    signer: e.tx.tx.signer,
                },
                tx: &e.tx,
            }
        }
        let inner = self.inner.lock();
        let mut iters: HashMap<AccountId, std::collections::btree_map::Values<'_, Nonce, Entry>> =
            HashMap::new();
        let mut heap = BinaryHeap::new();
        for (a, seq) in &inner.by_account {
            let mut it = seq.values();
            if let Some(e) = it.next() {
                heap.push(item(e));
                iters.insert(*a, it);
            }
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(top) = heap.pop() else { break };
            out.push(top.tx.clone());
            if let Some(e) = iters.get_mut(&top.head.signer).and_then(|it| it.next()) {
                heap.push(item(e));
            }
        }
        out
    }

    /// Every pending transaction with its hash, by sender and nonce.
    pub fn pending(&self) -> Vec<(Hash, SignedTransaction)> {
        let inner = self.inner.lock();
        inner
            .by_account
            .values()
            .flat_map(|seq| seq.values().map(|e| (e.hash, e.tx.clone())))
            .collect()
    }

    /// Removes a pending transaction by hash.
    pub fn remove(&self, hash: &Hash) -> bool {
        let mut inner = self.inner.lock();
        let Some((a, n)) = inner.by_hash.get(hash).copied() else {
            return false;
        };
        // Later nonces of the sender can no longer be included; drop them too.
        let later: Vec<Nonce> = inner
            .by_account
            .get(&a)
            .map(|s| s.range(n..).map(|(k, _)| *k).collect())
            .unwrap_or_default();
        for k in later {
            inner.remove(&a, k);
        }
        self.chain
            .metrics()
            .mempool_size
            .set(i64::try_from(inner.len()).unwrap_or(i64::MAX));
        drop(inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Applies a chain event: drops included transactions, re-validates
    /// the rest, re-offers retracted ones.
    pub fn on_chain_event(&self, event: &ChainEvent) {
        match event {
            ChainEvent::NewHead { tx_hashes, .. } => {
                {
                    let mut inner = self.inner.lock();
                    for h in tx_hashes {
                        if let Some((a, n)) = inner.by_hash.get(h).copied() {
                            inner.remove(&a, n);
                        }
                    }
                }
                self.revalidate();
            }
            ChainEvent::Reverted { .. } => {
                self.revalidate();
                self.readmit_retracted();
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Re-admits the transactions of reverted blocks still valid, and
    /// announces them: peers on the winning branch may never have seen
    /// them. They come from [`Chain::take_retracted`], so none is lost when
    /// this pool's event subscription lagged.
    pub fn readmit_retracted(&self) {
        let retracted = self.chain.take_retracted();
        if retracted.is_empty() {
            return;
        }
        for tx in retracted {
            match self.admit(tx.clone()) {
                Ok(_) => {
                    let _ = self.local.send(tx);
                }
                Err(e) => {
                    tracing::debug!(target: "cachecash::mempool", "retracted transaction not re-admitted: {e}");
                }
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Re-checks every sender's sequence against the head state. Storage
    /// is read without the pool's lock held: each sender's transactions
    /// are copied out and replayed on the head state in nonce order, and
    /// each one that no longer applies is removed (a stale nonce that a
    /// block used already; or one that cannot pay, after which every later
    /// one fails on the nonce gap). Call it off the async runtime: it reads
    /// storage.
    pub fn revalidate(&self) {
        let params = self.chain.params().clone();
        let view = TreeView(self.chain.store().as_ref());
        let head = self.chain.head();
        let head_state = TreeState::new(&view, head.header.number);
        let env = BlockEnv {
            number: head.header.number.saturating_add(1),
            history: &view,
        };
        let senders: Vec<AccountId> = self.inner.lock().by_account.keys().copied().collect();
        for signer in senders {
            let sequence: Vec<(Nonce, Entry)> = match self.inner.lock().by_account.get(&signer) {
                Some(seq) => seq.iter().map(|(n, e)| (*n, e.clone())).collect(),
                None => continue,
            };
            let account = match self.chain.account(&signer, None) {
                Ok((a, _, _)) => a,
                Err(e) => {
                    tracing::warn!(target: "cachecash::mempool", "re-validation skipped for {signer}: {e}");
                    continue;
                }
            };
            let base = SingleAccount {
                id: signer,
                account,
                head: &head_state,
            };
            let mut overlay = Overlay::with_env(&base, env);
            let mut failing: Vec<(Nonce, Hash)> = Vec::new();
            for (i, (n, e)) in sequence.iter().enumerate() {
                match apply_transaction(&mut overlay, &e.tx.tx, &params) {
                    Ok(_) => {}
                    // Refused before touching the overlay: the rest of the
                    // sequence may still apply.
                    Err(err @ TxError::StaleNonce { .. }) => {
                        tracing::debug!(target: "cachecash::mempool", hash = %e.hash, "dropped after new block: {err}");
                        failing.push((*n, e.hash));
                    }
                    // Anything else may have left a partial write on the
                    // overlay, and every later transaction builds on this
                    // one: drop it and the rest.
                    Err(err) => {
                        tracing::debug!(target: "cachecash::mempool", hash = %e.hash, "dropped after new block, with the {} after it: {err}", sequence.len() - i - 1);
                        failing.extend(sequence.iter().skip(i).map(|(n, e)| (*n, e.hash)));
                        break;
                    }
                }
            }
            if !failing.is_empty() {
                let mut inner = self.inner.lock();
                for (n, hash) in failing {
                    // Only the entry that was checked: a replacement that
                    // arrived meanwhile was checked on its own admission.
                    if inner
                        .by_account
                        .get(&signer)
                        .and_then(|seq| seq.get(&n))
                        .is_some_and(|e| e.hash == hash)
                    {
                        inner.remove(&signer, n);
                    }
                }
            }
        }
        let size = self.inner.lock().len();
        self.chain
            .metrics()
            .mempool_size
            .set(i64::try_from(size).unwrap_or(i64::MAX));
    }
}

/// The state of one account over the head's escrows; every other account
/// reads as empty, which is exact for replaying one sender's transactions:
/// credits to others do not affect the sender, and every MicroCash credit
/// (claim, refund, reporter share) goes to the sender itself.
struct SingleAccount<'a> {
    id: AccountId,
    account: Account,
    head: &'a dyn StateReader,
}

impl StateReader for SingleAccount<'_> {
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError> {
        Ok((id == &self.id).then_some(self.account))
    }
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, StateError> {
        self.head.escrow(id)
    }
    fn funder_escrow_count(&self, funder: &AccountId) -> Result<u64, StateError> {
        self.head.funder_escrow_count(funder)
    }
    fn funder_escrow_at(
        &self,
        funder: &AccountId,
        slot: u64,
    ) -> Result<Option<EscrowId>, StateError> {
        self.head.funder_escrow_at(funder, slot)
    }
    fn escrow_slot(&self, id: &EscrowId) -> Result<Option<u64>, StateError> {
        self.head.escrow_slot(id)
    }
}

/// Keeps the pool in step with the chain until the chain's event channel closes.
pub async fn maintain(
    pool: Arc<Mempool>,
    mut events: tokio::sync::broadcast::Receiver<ChainEvent>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        // Re-validation reads storage: it runs on the blocking pool, one
        // event at a time, never on the async runtime.
        let pool = pool.clone();
        let step = match events.recv().await {
            Ok(ev) => tokio::task::spawn_blocking(move || pool.on_chain_event(&ev)),
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(target: "cachecash::mempool", "missed {n} chain events; re-validating the whole pool");
                tokio::task::spawn_blocking(move || {
                    pool.revalidate();
                    pool.readmit_retracted();
                })
            }
            Err(RecvError::Closed) => break,
        };
        if let Err(e) = step.await {
            tracing::error!(target: "cachecash::mempool", "pool upkeep failed: {e}");
        }
    }
}

//! The chain: the import pipeline, the canonical head, reverts and reads.
//!
//! # Import pipeline
//!
//! ```text
//! bytes ─▶ UncheckedBlock ─▶ cheap checks ─────────▶ StatelessBlock ─▶ ExecutedBlock ─▶ Store::commit_block ─▶ ChainEvent::NewHead
//!          decode,           known? parent known,     signatures,      state root        one atomic batch
//!          size limit        PoW and target, MTP,     tx root          checked
//!                            drift, expected target
//! ```
//!
//! The cheap checks (the parent is known and not invalid, proof of work,
//! every contextual header rule) come before any signature is verified, so
//! a block that fails on its header costs one hash. Stateless checks run
//! without the write lock; stateful checks and the commit run under it, so
//! imports and reverts are serialized and the state tree always holds
//! exactly the canonical chain.
//!
//! # The block index, fork choice and reorganisations
//!
//! Fork choice is "most cumulative work": every stored header carries the
//! total work of its chain. Every block that passed the cheap and stateless
//! checks is stored on disk in the block index (see [`crate::storage`]),
//! canonical or not; the state tree holds the canonical chain only. A block
//! that does not extend the head is stored as a side block with status
//! `Checked` ([`ImportOutcome::SideChain`]). When a side block's work
//! exceeds the head's, it is recorded as the best tip in the same write,
//! and the chain reorganises under the write lock:
//! 1. walk back through the index to the canonical common ancestor (one
//!    read per block: linear in the branch length); refuse if more than the
//!    chain spec's `maxReorgDepth` blocks would be reverted, or if a branch
//!    block is known invalid;
//! 2. revert to the ancestor, one atomic step per block (reverted blocks
//!    stay in the index as side blocks), and announce
//!    [`ChainEvent::Reverted`] with their transactions, bounded in count and
//!    bytes (the mempool re-admits those still valid);
//! 3. apply the branch block by block from the index, each through the
//!    stateful checks (signatures are not verified again: they were when the
//!    block was stored) and one atomic commit, announcing
//!    [`ChainEvent::NewHead`] for each;
//! 4. if a branch block breaks a rule, mark it invalid in the index, revert
//!    to the ancestor again and re-apply the old blocks, so the node ends
//!    where it started. A transient failure (the clock, a store error)
//!    marks nothing: the branch is tried again later.
//!
//! Every step is an atomic commit, so a crash mid-reorganisation leaves a
//! consistent head (the ancestor, or part of either branch). Nothing is
//! lost: both branches are in the index, and [`Chain::open`] resumes the
//! switch to the recorded best tip. Side blocks more than `maxReorgDepth`
//! below the head can never be adopted and are pruned after each commit.

// Import errors carry the block hash and both cumulative works so a log
// line explains a rejection on its own; they are rare, so their size does
// not matter on the hot path.
#![allow(clippy::result_large_err)]

use crate::metrics::Metrics;
use crate::storage::{BlockStatus, Head, Store, StoreError, TreeView};
use cachecash_runtime::commitment::{self, AccountProof};
use cachecash_runtime::consensus::{self, MEDIAN_TIME_SPAN, RetargetInput};
use cachecash_runtime::genesis::Genesis;
use cachecash_runtime::microcash::{Escrow, EscrowId};
use cachecash_runtime::verify::{ChainContext, ExecutedBlock, StatelessBlock, UncheckedBlock};
use cachecash_runtime::{
    Account, AccountId, Block, BlockError, BlockNumber, ConsensusParams, Hash, Header, Target,
    Timestamp,
};
use parity_scale_codec::Encode;
use parking_lot::{Mutex, RwLock};
use primitive_types::U256;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

mod context;
mod reads;
mod reorg;
mod state_pruning;
pub use state_pruning::StatePruning;
use std::time::Instant;
use tokio::sync::broadcast;

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The canonical head, cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadInfo {
    /// Head hash.
    pub hash: Hash,
    /// Head header.
    pub header: Header,
    /// Cumulative work up to and including the head.
    pub total_work: U256,
}

/// Where a block came from (for logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOrigin {
    /// Mined by this node.
    Mined,
    /// Read from a file by `import-blocks`.
    File,
    /// Received from a peer.
    Network,
}

/// What happened to an imported block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The block is the new head.
    Imported(Head),
    /// The block was already in the block index.
    AlreadyKnown(Hash),
    /// The block is valid as far as can be checked off the canonical chain
    /// and is stored in the block index as a side block: its branch has no
    /// more work than the head.
    SideChain {
        /// Block hash.
        hash: Hash,
        /// Its cumulative work.
        total_work: U256,
    },
}

/// Chain events, broadcast to subscribers (mempool, RPC, miner).
#[derive(Clone, Debug)]
pub enum ChainEvent {
    /// A block was appended to the canonical chain.
    NewHead {
        /// Its header.
        header: Header,
        /// Its hash.
        hash: Hash,
        /// Hashes of its transactions.
        tx_hashes: Vec<Hash>,
        /// Where the block came from; the network announces mined blocks.
        origin: BlockOrigin,
    },
    /// The head was reverted to an earlier block.
    Reverted {
        /// The new head.
        head: Head,
        /// Transactions of the removed blocks, in order.
        retracted: Vec<cachecash_runtime::SignedTransaction>,
    },
}

/// Why an import or read failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The block breaks a rule.
    #[error("invalid block {hash}: {source}")]
    Invalid {
        /// Block hash.
        hash: Hash,
        /// The rule broken.
        #[source]
        source: Box<BlockError>,
    },
    /// The block was found invalid before.
    #[error("block {0} was found invalid before and is refused")]
    KnownInvalid(Hash),
    /// The block builds on a block that broke a rule.
    #[error(
        "block {hash} builds on block {ancestor}, which was found invalid; no block built on it is ever adopted"
    )]
    InvalidAncestor {
        /// Block hash.
        hash: Hash,
        /// The invalid ancestor.
        ancestor: Hash,
    },
    /// A side block forks too far below the head to ever be adopted.
    #[error(
        "block {hash} builds on block #{parent_number}, more than {limit} blocks below the head #{head_number}; such a fork is never adopted"
    )]
    ForkTooOld {
        /// Block hash.
        hash: Hash,
        /// Its parent's height.
        parent_number: u64,
        /// The head's height.
        head_number: u64,
        /// The reorganisation limit.
        limit: u64,
    },
    /// A heavier branch forks too deep below the head.
    #[error(
        "block {hash} heads a heavier branch forking {depth} blocks below the head, deeper than the limit of {limit}; revert with `cachecash revert` and re-import if this is intended"
    )]
    ReorgTooDeep {
        /// The branch tip.
        hash: Hash,
        /// Blocks that would be reverted.
        depth: u64,
        /// The limit.
        limit: u64,
    },
    /// The parent is unknown.
    #[error("block {hash} builds on unknown parent {parent}; import its ancestors first")]
    UnknownParent {
        /// Block hash.
        hash: Hash,
        /// Unknown parent.
        parent: Hash,
    },
    /// The block is on a fork.
    #[error(
        "block {hash} at height {number} builds on {parent}, which is not the head {head}; fork blocks are not kept (total work of its chain {fork_work}, of the head {head_work})"
    )]
    NotOnHead {
        /// Block hash.
        hash: Hash,
        /// Its number.
        number: BlockNumber,
        /// Its parent.
        parent: Hash,
        /// Current head.
        head: Hash,
        /// Work of the fork including this block.
        fork_work: U256,
        /// Work of the canonical chain.
        head_work: U256,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors of reads by block id.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such block.
    #[error("unknown block {0}: it is not in this node's canonical chain")]
    UnknownBlock(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Tree failed.
    #[error("state read failed: {0}")]
    State(String),
}

/// The chain of one node.
#[derive(Debug)]
pub struct Chain {
    store: Arc<dyn Store>,
    params: ConsensusParams,
    genesis_hash: Hash,
    write_lock: Mutex<()>,
    head: RwLock<HeadInfo>,
    invalid: Mutex<KnownInvalid>,
    anchors: Mutex<HashMap<Hash, Timestamp>>,
    events: broadcast::Sender<ChainEvent>,
    metrics: Arc<Metrics>,
    max_reorg_depth: u64,
    state_pruning: StatePruning,
    retracted: Mutex<VecDeque<cachecash_runtime::SignedTransaction>>,
}

/// Capacity of the chain event channel; slow subscribers see `Lagged`.
pub const EVENT_CAPACITY: usize = 1024;

/// Most transactions of reverted blocks kept for the mempool
/// ([`Chain::take_retracted`]), oldest dropped first.
pub const MAX_RETRACTED: usize = 65_536;

/// Default deepest reorganisation a node performs (the chain spec's
/// `maxReorgDepth`): a heavier branch forking more than this many blocks
/// below the head is refused (an operator can still `cachecash revert` and
/// re-import). Deep reorganisations on a proof-of-work chain mean an attack
/// or a partition long enough to need a person's attention.
pub const MAX_REORG_DEPTH: u64 = 1000;

/// Most encoded bytes of retracted transactions handed to the mempool per
/// reorganisation (and kept for [`Chain::take_retracted`]), oldest first:
/// a deep reorganisation of full blocks must not hold every body in memory.
pub const MAX_RETRACTED_BYTES: usize = 64 * 1024 * 1024;

/// Hashes of blocks refused for a header rule (never stored), remembered
/// so a resent block is refused before any work (bounded, oldest forgotten
/// first). Blocks that fail execution are marked in the block index.
pub const MAX_KNOWN_INVALID: usize = 4096;

/// Most cached ASERT anchors of off-canonical blocks (see
/// [`Chain::anchor_timestamp`]); the cache is cleared when full.
const MAX_CACHED_ANCHORS: usize = 4096;

/// Hashes of blocks refused for a header rule, in arrival order.
#[derive(Debug, Default)]
struct KnownInvalid {
    set: HashSet<Hash>,
    order: VecDeque<Hash>,
}

impl KnownInvalid {
    fn insert(&mut self, hash: Hash) {
        if self.set.insert(hash) {
            self.order.push_back(hash);
        }
        while self.order.len() > MAX_KNOWN_INVALID {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, hash: &Hash) -> bool {
        self.set.contains(hash)
    }
}

impl Chain {
    /// Opens the chain on `store`, writing genesis into an empty store.
    pub fn open(
        store: Arc<dyn Store>,
        params: ConsensusParams,
        genesis: &Genesis,
        metrics: Arc<Metrics>,
    ) -> Result<Chain, StoreError> {
        let head = store.initialize(genesis)?;
        let stored = store.header(&head.hash)?.ok_or(StoreError::Corrupt {
            what: format!("header of head {}", head.hash),
            message: "missing".into(),
        })?;
        let info = HeadInfo {
            hash: head.hash,
            header: stored.header,
            total_work: U256::from_big_endian(&stored.total_work),
        };
        metrics
            .best_block
            .set(i64::try_from(head.number).unwrap_or(i64::MAX));
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Ok(Chain {
            store,
            params,
            genesis_hash: genesis.hash,
            write_lock: Mutex::new(()),
            head: RwLock::new(info),
            invalid: Mutex::new(KnownInvalid::default()),
            anchors: Mutex::new(HashMap::new()),
            events,
            metrics,
            max_reorg_depth: MAX_REORG_DEPTH,
            state_pruning: StatePruning::Window,
            retracted: Mutex::new(VecDeque::new()),
        })
    }

    /// Finishes a reorganisation that a crash interrupted: if the block
    /// index records a best tip with more work than the head, and it is not
    /// known invalid, the chain switches to it. Called once at startup,
    /// after [`Chain::with_max_reorg_depth`]; returns the new head if it
    /// moved.
    pub fn resume_best_tip(&self) -> Result<Option<Head>, ImportError> {
        let Some(tip) = self.store.best_tip()? else {
            return Ok(None);
        };
        let _guard = self.write_lock.lock();
        let head = self.head();
        if tip == head.hash
            || matches!(
                self.store.block_status(&tip)?,
                None | Some(BlockStatus::Invalid)
            )
        {
            return Ok(None);
        }
        let Some(stored) = self.store.header(&tip)? else {
            return Ok(None);
        };
        if U256::from_big_endian(&stored.total_work) <= head.total_work {
            return Ok(None);
        }
        tracing::info!(target: "cachecash::import", %tip, number = stored.header.number, "resuming the switch to the heavier branch recorded before the last shutdown");
        self.reorganize(tip, &head, BlockOrigin::Network).map(Some)
    }

    /// Takes the transactions of blocks reverted since the last call, in
    /// order. The node's mempool drains this queue (rather than relying on
    /// [`ChainEvent::Reverted`] alone), so a subscriber that lagged behind a
    /// long reorganisation still gets every retracted transaction back.
    pub fn take_retracted(&self) -> Vec<cachecash_runtime::SignedTransaction> {
        self.retracted.lock().drain(..).collect()
    }

    /// Sets the deepest reorganisation this chain performs (the chain
    /// spec's `maxReorgDepth`; [`MAX_REORG_DEPTH`] by default).
    pub fn with_max_reorg_depth(mut self, depth: u64) -> Chain {
        self.max_reorg_depth = depth;
        self
    }

    /// Sets how much state history the chain keeps ([`StatePruning::Window`]
    /// by default).
    pub fn with_state_pruning(mut self, mode: StatePruning) -> Chain {
        self.state_pruning = mode;
        self
    }

    /// The deepest reorganisation this chain performs.
    pub fn max_reorg_depth(&self) -> u64 {
        self.max_reorg_depth
    }

    /// The consensus parameters.
    pub fn params(&self) -> &ConsensusParams {
        &self.params
    }

    /// The genesis hash.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The canonical head.
    pub fn head(&self) -> HeadInfo {
        self.head.read().clone()
    }

    /// Subscribes to chain events.
    pub fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    /// A block template on `input.parent` (which must be canonical: its
    /// state is read) from `candidates`, under this chain's rules.
    pub fn build_template(
        &self,
        input: cachecash_runtime::builder::TemplateInput,
        candidates: impl IntoIterator<Item = cachecash_runtime::SignedTransaction>,
    ) -> Result<cachecash_runtime::builder::Template, BlockError> {
        let view = TreeView(self.store.as_ref());
        cachecash_runtime::builder::build_template(&view, &view, input, candidates, &self.params)
    }

    /// Decodes and imports a block.
    pub fn import_encoded(
        &self,
        bytes: &[u8],
        origin: BlockOrigin,
    ) -> Result<ImportOutcome, ImportError> {
        let unchecked =
            UncheckedBlock::decode(bytes, &self.params).map_err(|source| ImportError::Invalid {
                hash: Hash::default(),
                source: Box::new(source),
            })?;
        self.import_unchecked(unchecked, origin)
    }

    /// Imports a block through every stage.
    pub fn import_block(
        &self,
        block: Block,
        origin: BlockOrigin,
    ) -> Result<ImportOutcome, ImportError> {
        let hash = block.hash();
        let unchecked =
            UncheckedBlock::new(block, &self.params).map_err(|source| ImportError::Invalid {
                hash,
                source: Box::new(source),
            })?;
        self.import_unchecked(unchecked, origin)
    }

    /// Imports through every stage; a storage failure (a full or read-only
    /// disk) is counted and logged with what to do, once per failed import.
    /// Nothing of such a block was committed: the node keeps running on
    /// its last committed head and imports the block when it is offered
    /// again and storage accepts writes.
    fn import_unchecked(
        &self,
        unchecked: UncheckedBlock,
        origin: BlockOrigin,
    ) -> Result<ImportOutcome, ImportError> {
        let hash = unchecked.block().hash();
        let result = self.import_stages(unchecked, origin);
        if let Err(ImportError::Store(e)) = &result {
            self.metrics.storage_errors.inc();
            tracing::error!(target: "cachecash::chain", %hash, "storage failed while importing a block: {e}. Nothing of the block was committed; the node stays on its head and imports it when it is offered again. Free disk space, or make the data directory writable");
        }
        result
    }

    fn import_stages(
        &self,
        unchecked: UncheckedBlock,
        origin: BlockOrigin,
    ) -> Result<ImportOutcome, ImportError> {
        let started = Instant::now();
        let hash = unchecked.block().hash();
        if self.invalid.lock().contains(&hash) {
            return Err(ImportError::KnownInvalid(hash));
        }
        match self.store.block_status(&hash)? {
            Some(BlockStatus::Invalid) => return Err(ImportError::KnownInvalid(hash)),
            Some(BlockStatus::Checked) => return self.adopt_stored(hash, origin),
            Some(BlockStatus::Valid) => return Ok(ImportOutcome::AlreadyKnown(hash)),
            None => {}
        }
        // Cheap checks first: the parent, proof of work and every header
        // rule cost a few reads and one hash; signatures come after.
        let header = unchecked.block().header.clone();
        let parent = self
            .store
            .header(&header.parent_hash)?
            .ok_or(ImportError::UnknownParent {
                hash,
                parent: header.parent_hash,
            })?;
        if self.store.block_status(&header.parent_hash)? == Some(BlockStatus::Invalid) {
            self.invalid.lock().insert(hash);
            return Err(ImportError::InvalidAncestor {
                hash,
                ancestor: header.parent_hash,
            });
        }
        let (parent_header, parent_work) =
            (parent.header, U256::from_big_endian(&parent.total_work));
        let invalid = |source: BlockError| ImportError::Invalid {
            hash,
            source: Box::new(source),
        };
        if header.target > self.params.pow_limit {
            return Err(invalid(BlockError::WrongTarget {
                expected: self.params.pow_limit,
                got: header.target,
            }));
        }
        if !header.target.is_met_by(&hash) {
            return Err(invalid(BlockError::InsufficientWork {
                hash,
                target: header.target,
            }));
        }
        // Only forks that could ever be adopted are stored: a block whose
        // parent lies deeper than the reorganisation limit is refused.
        let head = self.head();
        if header.parent_hash != head.hash
            && parent_header.number.saturating_add(self.max_reorg_depth) < head.header.number
        {
            return Err(ImportError::ForkTooOld {
                hash,
                parent_number: parent_header.number,
                head_number: head.header.number,
                limit: self.max_reorg_depth,
            });
        }
        // Every contextual header rule (number, median-time-past, the
        // future-drift limit, the target), on every block, before it is
        // stored or relayed: a far-future timestamp would otherwise drive
        // ASERT to the proof-of-work limit for every child on a fork,
        // making near-free blocks that every node verifies and stores.
        let ctx = self.context_for(&parent_header, now_ms())?;
        if let Err(e) = cachecash_runtime::verify::check_header_context(&header, &ctx, &self.params)
        {
            // Clock skew is not a rule violation: the block may be offered
            // again once our clock allows it.
            if !matches!(e, BlockError::TimestampInFuture { .. }) {
                self.invalid.lock().insert(hash);
            }
            return Err(invalid(e));
        }
        let stateless = unchecked
            .check_stateless(&self.genesis_hash, &self.params)
            .map_err(invalid)?;
        let total_work = parent_work.saturating_add(header.target.work());

        let _guard = self.write_lock.lock();
        // Another import may have stored it while we checked signatures.
        if self.store.block_status(&hash)?.is_some() {
            return Ok(ImportOutcome::AlreadyKnown(hash));
        }
        let head = self.head();
        let outcome = if header.parent_hash == head.hash {
            ImportOutcome::Imported(self.commit_stateless(stateless, total_work, origin)?)
        } else {
            let heavier = total_work > head.total_work;
            self.store
                .store_block(stateless.block(), total_work.to_big_endian(), heavier)?;
            if !heavier {
                tracing::debug!(target: "cachecash::import", %hash, number = header.number, "stored a side-chain block");
                return Ok(ImportOutcome::SideChain { hash, total_work });
            }
            ImportOutcome::Imported(self.reorganize(hash, &head, origin)?)
        };
        let elapsed = started.elapsed();
        self.metrics.import_seconds.observe(elapsed.as_secs_f64());
        tracing::debug!(
            target: "cachecash::import",
            %hash,
            ?origin,
            ms = elapsed.as_secs_f64() * 1000.0,
            "imported block"
        );
        Ok(outcome)
    }

    /// The stateful stage against the head, then the commit. The write lock
    /// must be held.
    fn commit_stateless(
        &self,
        stateless: StatelessBlock,
        total_work: U256,
        origin: BlockOrigin,
    ) -> Result<Head, ImportError> {
        let hash = stateless.hash();
        let parent = self.head();
        if stateless.block().header.parent_hash != parent.hash {
            return Err(ImportError::NotOnHead {
                hash,
                number: stateless.block().header.number,
                parent: stateless.block().header.parent_hash,
                head: parent.hash,
                fork_work: total_work,
                head_work: parent.total_work,
            });
        }
        let ctx = self.context_for(&parent.header, now_ms())?;
        let view = TreeView(self.store.as_ref());
        let executed = stateless
            .check_stateful(&ctx, &view, &view, &self.params)
            .map_err(|source| ImportError::Invalid {
                hash,
                source: Box::new(source),
            })?;
        Ok(self.commit(executed, total_work, origin)?)
    }

    fn commit(
        &self,
        executed: ExecutedBlock,
        total_work: U256,
        origin: BlockOrigin,
    ) -> Result<Head, StoreError> {
        let new_head = self
            .store
            .commit_block(&executed, total_work.to_big_endian())?;
        {
            let mut head = self.head.write();
            *head = HeadInfo {
                hash: executed.hash,
                header: executed.block.header.clone(),
                total_work,
            };
        }
        self.metrics
            .best_block
            .set(i64::try_from(new_head.number).unwrap_or(i64::MAX));
        self.metrics
            .transactions_imported
            .inc_by(u64::try_from(executed.tx_hashes.len()).unwrap_or(0));
        // Side blocks this far below the head can never be adopted.
        let below = new_head.number.saturating_sub(self.max_reorg_depth);
        match self.store.prune_side_blocks(below) {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(target: "cachecash::import", pruned = n, below, "pruned side blocks out of the reorganisation window")
            }
            // Pruning is housekeeping: the commit stands, the next one retries.
            Err(e) => {
                tracing::warn!(target: "cachecash::import", "could not prune side blocks below #{below}: {e}")
            }
        }
        if self.state_pruning == StatePruning::Window
            && let Err(e) = self.store.prune_state(below)
        {
            tracing::warn!(target: "cachecash::import", "could not prune state below #{below}: {e}")
        }
        // Nobody listening is fine.
        let _ = self.events.send(ChainEvent::NewHead {
            header: executed.block.header,
            hash: executed.hash,
            tx_hashes: executed.tx_hashes,
            origin,
        });
        Ok(new_head)
    }
}

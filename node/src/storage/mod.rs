//! Block and state storage behind one small trait, with a RocksDB backend
//! for nodes and an in-memory backend for tests.
//!
//! # What is stored
//!
//! | table (RocksDB column family) | key | value |
//! |---|---|---|
//! | `headers` | block hash | SCALE [`StoredHeader`] (header + cumulative work) |
//! | `bodies` | block hash | SCALE `Vec<SignedTransaction>` |
//! | `canonical` | number (u64 BE) | block hash |
//! | `tx_index` | transaction hash | SCALE [`TxLocation`] |
//! | `history` | subject (account or escrow) ‖ number (u64 BE) ‖ index (u32 BE) | transaction hash, or empty for the miner's entry ([`history`]) |
//! | `state_nodes` | version (u64 BE) ‖ borsh(NodeKey) | borsh(Node) |
//! | `state_values` | key hash ‖ version (u64 BE) | SCALE `Option<Vec<u8>>` |
//! | `undo` | number (u64 BE) | SCALE `Vec<[u8; 32]>`: key hashes written at that version |
//! | `block_status` | block hash | SCALE [`BlockStatus`] |
//! | `side_blocks` | number (u64 BE) ‖ block hash | empty: the stored blocks off the canonical chain |
//! | `stale_nodes` | version (u64 BE) ‖ `state_nodes` key | empty: the nodes that version replaced |
//! | `meta` | `format_version`, `genesis`, `head`, `best_tip`, `pruned_below`, `archive` | u32 LE, hash, SCALE [`Head`], hash, u64 BE, one byte |
//!
//! # The block index
//!
//! `headers` and `bodies` hold every block this node has checked, not
//! only the canonical chain: a block with valid proof of work that passed
//! the header rules against its parent and the stateless checks is stored
//! by [`Store::store_block`] before it is ever executed, and a reverted
//! block stays where it was. `block_status` says what is known of each
//! ([`BlockStatus`]); a stored header with no status record reads as
//! [`BlockStatus::Valid`] (only canonical blocks are ever written without
//! one).
//! `side_blocks` lists the stored blocks that are off the canonical chain
//! by height, so [`Store::prune_side_blocks`] can drop those that fell out
//! of the reorganisation window: the index never grows with history beyond
//! the canonical chain itself. Headers are never stored without their
//! body (both go in one batch), so "data missing" never arises.
//!
//! `best_tip` names the block of most work this node has stored. The chain
//! writes it with the block that starts a reorganisation, so a node killed
//! in the middle of one finds the heavier branch again when it reopens and
//! finishes the switch.
//!
//! # Correctness
//!
//! - Every block is committed by [`Store::commit_block`] in **one atomic
//!   write** (one RocksDB `WriteBatch`, synced to the WAL) that includes the
//!   new head pointer. A crash at any instant (kill -9, power loss) leaves
//!   the database at the previous head or at the new one, never between.
//!   A block is acknowledged only after its commit returned.
//! - [`Store::revert_head`] removes the head block, its state version, its
//!   canonical and transaction-index entries, and moves the head to the
//!   parent, again in one atomic write. Reverting N blocks is N such steps,
//!   so a crash mid-revert leaves a consistent, shorter chain.
//! - The state tree is versioned by block number; versions above the head
//!   never exist on disk after a commit or revert returns.
//!
//! # State pruning
//!
//! Every commit records the tree nodes it made stale (`stale_nodes`) and,
//! in its undo record, the keys it wrote. [`Store::prune_state`] deletes,
//! version by version up to a horizon, the nodes that became stale there and
//! the value each written key had before, then the version's undo record:
//! the state of every version at or above the horizon stays whole (and
//! readable, and revertible), and nothing older is kept. The chain prunes
//! to `maxReorgDepth` below the head after each commit unless the node is an
//! archive node. Records written before this existed are never pruned.
//! - The format version is written when the database is created and checked
//!   at every open. Version 1 (canonical blocks only, reverted blocks
//!   deleted) is a subset of version 2 and is upgraded in place.

pub mod history;
pub mod memory;
pub mod rocks;

use cachecash_runtime::genesis::Genesis;
use cachecash_runtime::verify::ExecutedBlock;
use cachecash_runtime::{Block, BlockNumber, Hash, Header, SignedTransaction};
use jmt::storage::{Node, NodeKey};
use jmt::{KeyHash, OwnedValue, Version};
use parity_scale_codec::{Decode, Encode};

pub use memory::MemoryStore;
pub use rocks::RocksStore;

/// On-disk format version this build reads and writes.
///
/// Version 3 changed the state layout (the funder index became one entry
/// per escrow), so the state roots of older databases cannot be carried
/// over: they are refused, and the operator resyncs (`purge-chain`, or
/// `export-blocks` with the old release and `import-blocks` with this one).
/// Version 4 added the `closed` flag to escrow records (the penalty's grace
/// period after close): older state cannot be decoded, so it is refused too.
/// Version 5 added the `history` table; a version 4 database is upgraded
/// in place when it opens (the index is built from its canonical blocks,
/// then the version is written).
pub const FORMAT_VERSION: u32 = 5;

/// What the block index knows about a stored block (SCALE: one byte,
/// `0` checked, `1` valid, `2` invalid).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum BlockStatus {
    /// Its proof of work, header rules and stateless checks (signatures,
    /// transaction root) passed; it has never been executed.
    Checked,
    /// It was executed and committed to the canonical chain at least once.
    Valid,
    /// Executing it broke a rule: it, and every block built on it, is
    /// never adopted.
    Invalid,
}

/// The canonical head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Head {
    /// Head block hash.
    pub hash: Hash,
    /// Head block number.
    pub number: BlockNumber,
}

/// A header with the cumulative proof of work of its chain (big-endian U256).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredHeader {
    /// The header.
    pub header: Header,
    /// Sum of the work of every block from genesis to this one, inclusive.
    pub total_work: [u8; 32],
}

/// Where a transaction was included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TxLocation {
    /// The including block.
    pub block: Hash,
    /// Index in the block body.
    pub index: u32,
}

/// Storage failures. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database engine failed.
    #[error("database error at {path}: {message}")]
    Backend {
        /// Database path (or "memory").
        path: String,
        /// Engine message.
        message: String,
    },
    /// A record does not decode.
    #[error(
        "database record {what} is corrupt: {message}; the database must be rebuilt (`cachecash purge-chain`, then resync or `import-blocks`)"
    )]
    Corrupt {
        /// Which record.
        what: String,
        /// Decoder message.
        message: String,
    },
    /// Wrong format version.
    #[error(
        "database at {path} has format version {found}, but this build of cachecash reads version {expected}; run a matching release, or purge it with `cachecash purge-chain` and resync"
    )]
    FormatVersion {
        /// Path.
        path: String,
        /// On disk.
        found: u32,
        /// This build's.
        expected: u32,
    },
    /// Database of another chain.
    #[error(
        "database at {path} belongs to the chain with genesis {found}, but the chain spec has genesis {expected}; use another --base-path, or `cachecash purge-chain` to delete it"
    )]
    GenesisMismatch {
        /// Path.
        path: String,
        /// On disk.
        found: Hash,
        /// Chain spec's.
        expected: Hash,
    },
    /// Commit that does not extend the head.
    #[error("block {number} ({hash}) does not extend the head {head_number} ({head_hash})")]
    NotOnHead {
        /// Block hash.
        hash: Hash,
        /// Block number.
        number: BlockNumber,
        /// Head hash.
        head_hash: Hash,
        /// Head number.
        head_number: BlockNumber,
    },
    /// Revert below genesis.
    #[error("cannot revert the genesis block")]
    RevertGenesis,
    /// The state of that block was pruned.
    #[error(
        "the state of block #{number} was pruned (this node keeps the state of block #{oldest} onwards); an archive node (`--state-pruning archive`) keeps every state"
    )]
    StatePruned {
        /// The block asked for.
        number: BlockNumber,
        /// The oldest block whose state is kept.
        oldest: BlockNumber,
    },
    /// Not initialized.
    #[error("database is not initialized with a genesis block")]
    Uninitialized,
}

/// Result alias.
pub type StoreResult<T> = Result<T, StoreError>;

/// Storage of blocks, the canonical chain and the versioned state tree.
/// Implementations are internally synchronized: reads may run concurrently
/// with one writer.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Writes genesis into an empty store, or checks that a non-empty store
    /// holds the same genesis and a supported format. Returns the head.
    fn initialize(&self, genesis: &Genesis) -> StoreResult<Head>;

    /// The canonical head, if initialized.
    fn head(&self) -> StoreResult<Option<Head>>;

    /// A header with its cumulative work.
    fn header(&self, hash: &Hash) -> StoreResult<Option<StoredHeader>>;

    /// A block body.
    fn body(&self, hash: &Hash) -> StoreResult<Option<Vec<SignedTransaction>>>;

    /// The canonical block hash at `number`.
    fn canonical_hash(&self, number: BlockNumber) -> StoreResult<Option<Hash>>;

    /// Where a canonical transaction was included.
    fn tx_location(&self, tx: &Hash) -> StoreResult<Option<TxLocation>>;

    /// A page of `subject`'s history (an account or an escrow), newest
    /// first: at most `limit` entries strictly before `before`, or from
    /// the newest when `before` is `None`.
    fn history(
        &self,
        subject: &[u8; 32],
        before: Option<history::HistoryPosition>,
        limit: usize,
    ) -> StoreResult<Vec<history::HistoryRecord>>;

    /// A state-tree node.
    fn tree_node(&self, key: &NodeKey) -> StoreResult<Option<Node>>;

    /// The newest value of `key` at a version ≤ `max_version`.
    fn tree_value(&self, max_version: Version, key: KeyHash) -> StoreResult<Option<OwnedValue>>;

    /// Appends an executed block on the head, atomically (see module docs).
    /// `total_work` is the block's cumulative work.
    fn commit_block(&self, block: &ExecutedBlock, total_work: [u8; 32]) -> StoreResult<Head>;

    /// Removes the head block from the canonical chain atomically and
    /// returns the new head. The block stays in the block index, listed
    /// among the side blocks.
    fn revert_head(&self) -> StoreResult<Head>;

    /// Stores a checked block off the canonical chain (header, body,
    /// [`BlockStatus::Checked`] unless a status is known, side-block
    /// entry) in one atomic write; with `best_tip`, also records it as the
    /// block of most work. Storing a block twice changes nothing.
    fn store_block(&self, block: &Block, total_work: [u8; 32], best_tip: bool) -> StoreResult<()>;

    /// What the index knows of a block: `None` if it is not stored.
    fn block_status(&self, hash: &Hash) -> StoreResult<Option<BlockStatus>>;

    /// Records that a stored block broke a rule when executed (and forgets
    /// it as the best tip).
    fn mark_invalid(&self, hash: &Hash) -> StoreResult<()>;

    /// The block of most work recorded by [`Store::store_block`], if any.
    fn best_tip(&self) -> StoreResult<Option<Hash>>;

    /// Forgets the best tip (an operator's revert must not be undone by
    /// the next start resuming a switch to it).
    fn clear_best_tip(&self) -> StoreResult<()>;

    /// Deletes the side blocks below height `below` (header, body, status),
    /// returning how many were removed. Canonical blocks are never touched.
    fn prune_side_blocks(&self, below: BlockNumber) -> StoreResult<usize>;

    /// Deletes the state-tree nodes and values that no state at version
    /// `below` or later reads (never past the head), a bounded number of
    /// versions per call, and their undo records; returns how many records
    /// went. States below the new horizon can no longer be read or reverted
    /// to.
    fn prune_state(&self, below: BlockNumber) -> StoreResult<usize>;

    /// The oldest version whose state is whole: 0 unless pruned.
    fn pruned_below(&self) -> StoreResult<BlockNumber>;

    /// Whether the database keeps every state (`Some(true)`), prunes
    /// (`Some(false)`), or has not been told yet (`None`).
    fn archive_mode(&self) -> StoreResult<Option<bool>>;

    /// Records the state pruning mode.
    fn set_archive_mode(&self, archive: bool) -> StoreResult<()>;

    /// What the database holds in memory now, for the metrics; `None` for a
    /// backend that does not report it (the in-memory store).
    fn memory(&self) -> Option<DbMemory> {
        None
    }
}

/// Memory a RocksDB database holds (its own properties), in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbMemory {
    /// Mutable and immutable memtables over every column family
    /// (`rocksdb.cur-size-all-mem-tables`).
    pub memtables: u64,
    /// Block cache in use (`rocksdb.block-cache-usage`), data, index and
    /// filter blocks.
    pub block_cache: u64,
    /// Table readers outside the block cache
    /// (`rocksdb.estimate-table-readers-mem`).
    pub table_readers: u64,
}

/// The store's canonical index answers the lottery's draw-block lookups:
/// blocks are executed only on top of the head, so the canonical chain is
/// the executing block's own ancestry.
impl cachecash_runtime::state::BlockHashes for TreeView<'_> {
    fn canonical_hash(
        &self,
        number: cachecash_runtime::BlockNumber,
    ) -> Result<Option<Hash>, cachecash_runtime::state::StateError> {
        self.0
            .canonical_hash(number)
            .map_err(|e| cachecash_runtime::state::StateError(e.to_string()))
    }
}

/// Adapts a [`Store`] to the state tree's reader trait.
#[derive(Debug, Clone, Copy)]
pub struct TreeView<'a>(pub &'a dyn Store);

impl jmt::storage::TreeReader for TreeView<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.0.tree_node(node_key)?)
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.0.tree_value(max_version, key_hash)?)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, jmt::storage::LeafNode)>> {
        // Only used when restoring a tree from a snapshot, which this node
        // never does.
        anyhow::bail!("state snapshot restore is not supported")
    }
}

#[cfg(test)]
mod tests;

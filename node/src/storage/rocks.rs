//! The RocksDB backend.
//!
//! # Key encodings
//!
//! One column family per table of the [module table](super):
//!
//! - `headers`, `bodies`, `tx_index`: the 32-byte hash as key.
//! - `history`: subject ‖ number (u64 big-endian) ‖ index (u32
//!   big-endian), see [`crate::storage::history`].
//! - `canonical`, `undo`: the block number as 8 bytes big-endian, so keys
//!   sort numerically.
//! - `state_nodes`: tree version (u64 big-endian) ‖ borsh(`NodeKey`). The
//!   borsh encoding already starts with the version (little-endian); the
//!   big-endian prefix duplicates it so that every node of one version lies
//!   in the contiguous key range `[v, v + 1)` and a whole version is removed
//!   with one range deletion.
//! - `state_values`: key hash (32 bytes) ‖ version (u64 big-endian). All
//!   versions of one key are adjacent and sorted by version, so "the newest
//!   value at a version ≤ v" is a single `seek_for_prev(key hash ‖ v)`
//!   followed by a check that the entry found has the same 32-byte prefix.
//! - `undo`: the key hashes a version wrote to `state_values`, which are
//!   not otherwise findable by version; reverting the version deletes
//!   exactly those `key hash ‖ version` entries.
//! - `block_status`: the 32-byte block hash as key, SCALE
//!   [`BlockStatus`](super::BlockStatus) as value.
//! - `side_blocks`: block number (u64 big-endian) ‖ block hash, empty
//!   value, so the side blocks below a height are one prefix scan.
//! - `stale_nodes`: the version a node became stale at (u64 big-endian) ‖
//!   the node's `state_nodes` key, empty value: what
//!   [`Store::prune_state`] deletes, one version's range at a time.
//! - `meta`: the ASCII keys `format_version` (u32 little-endian), `genesis`
//!   (32-byte hash), `head` (SCALE [`Head`]), `best_tip` (32-byte hash) and
//!   `pruned_below` (u64 big-endian).
//!
//! # Crash safety
//!
//! RocksDB applies a `WriteBatch` atomically across column families: the
//! batch is one record in the write-ahead log, and recovery replays whole
//! records only. Genesis initialization, every [`Store::commit_block`] and
//! every [`Store::revert_head`] is exactly one batch that also moves the
//! `head` pointer, written with `sync = true` so the WAL is fsynced before
//! the call returns. After a crash at any instant the database therefore
//! holds either the state before the call or the state after it, and an
//! acknowledged block is durable. Range deletions are part of the same
//! batch and carry the same guarantee.
//!
//! The head checks ("does this block extend the head?", "is the head
//! genesis?") and the batch they guard run under one write mutex, so two
//! concurrent writers can never both pass a check against the same head.
//! Readers take no lock; each read sees some committed state.

use super::{
    BlockStatus, FORMAT_VERSION, Head, Store, StoreError, StoreResult, StoredHeader, TxLocation,
};
use cachecash_runtime::genesis::Genesis;
use cachecash_runtime::verify::ExecutedBlock;
use cachecash_runtime::{Block, BlockNumber, Hash, SignedTransaction};
use jmt::storage::{Node, NodeKey, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Version};
use parity_scale_codec::{Decode, DecodeAll, Encode};
use parking_lot::Mutex;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Options,
    WriteBatch, WriteOptions,
};
use std::path::Path;

mod format;
mod history;
mod index;
pub mod usage;
use index::side_key;

const CF_HEADERS: &str = "headers";
const CF_BODIES: &str = "bodies";
const CF_CANONICAL: &str = "canonical";
const CF_TX_INDEX: &str = "tx_index";
const CF_STATE_NODES: &str = "state_nodes";
const CF_STATE_VALUES: &str = "state_values";
const CF_UNDO: &str = "undo";
const CF_BLOCK_STATUS: &str = "block_status";
const CF_SIDE_BLOCKS: &str = "side_blocks";
const CF_STALE_NODES: &str = "stale_nodes";
const CF_META: &str = "meta";
const CF_HISTORY: &str = "history";

/// Every column family this build uses.
const COLUMN_FAMILIES: [&str; 12] = [
    CF_HEADERS,
    CF_BODIES,
    CF_CANONICAL,
    CF_TX_INDEX,
    CF_STATE_NODES,
    CF_STATE_VALUES,
    CF_UNDO,
    CF_BLOCK_STATUS,
    CF_SIDE_BLOCKS,
    CF_STALE_NODES,
    CF_META,
    CF_HISTORY,
];

const META_FORMAT_VERSION: &[u8] = b"format_version";
const META_GENESIS: &[u8] = b"genesis";
const META_HEAD: &[u8] = b"head";
const META_BEST_TIP: &[u8] = b"best_tip";
const META_PRUNED_BELOW: &[u8] = b"pruned_below";
const META_ARCHIVE: &[u8] = b"archive";

/// Versions whose stale state one [`Store::prune_state`] call removes, at
/// most: a node that turns pruning on over a long history catches up a
/// bounded batch at a time.
const MAX_VERSIONS_PER_PRUNE: u64 = 64;

/// Size of the block cache shared by all column families.
const BLOCK_CACHE_BYTES: usize = 64 << 20;

/// The memtables of every column family together (`db_write_buffer_size`).
const MEMTABLE_BUDGET_BYTES: usize = 32 << 20;

/// Block and state storage in a RocksDB database.
pub struct RocksStore {
    db: DB,
    path: String,
    /// Serializes writers; see the module docs.
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Opens the database at `path`, creating it (and its directory) if
    /// missing. A new database gets this build's [`FORMAT_VERSION`]; an
    /// existing one must carry it.
    pub fn open(path: &Path) -> StoreResult<RocksStore> {
        let path_str = path.display().to_string();
        let backend = |e: rocksdb::Error| StoreError::Backend {
            path: path_str.clone(),
            message: e.into_string(),
        };

        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);

        let mut cf_opts = Options::default();
        cf_opts.set_compression_type(DBCompressionType::Lz4);
        cf_opts.set_bottommost_compression_type(DBCompressionType::Zstd);
        cf_opts.set_level_compaction_dynamic_level_bytes(true);
        cf_opts.set_block_based_table_factory(&table);

        let mut db_opts = cf_opts.clone();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_keep_log_file_num(8);
        db_opts.set_max_total_wal_size(256 << 20);
        // One budget for the memtables of all twelve column families:
        // each defaults to 64 MiB (two while one flushes), so a node that
        // runs for hours held ever more of the chain's recent writes in
        // memory; past the budget RocksDB flushes the largest.
        db_opts.set_db_write_buffer_size(MEMTABLE_BUDGET_BYTES);

        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_opts.clone()));
        let db = DB::open_cf_descriptors(&db_opts, path, descriptors).map_err(backend)?;
        let store = RocksStore {
            db,
            path: path_str,
            write_lock: Mutex::new(()),
        };
        store.check_format_version()?;
        Ok(store)
    }

    /// The database path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Flushes every column family and compacts it fully, so that the
    /// files on disk hold live data only (deletions applied). For
    /// measurements and maintenance; a running node leaves this to
    /// RocksDB's background compaction.
    pub fn compact(&self) -> StoreResult<()> {
        for name in COLUMN_FAMILIES {
            let cf = self.cf(name)?;
            self.db.flush_cf(cf).map_err(|e| self.backend(e))?;
            self.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    fn backend(&self, e: rocksdb::Error) -> StoreError {
        StoreError::Backend {
            path: self.path.clone(),
            message: e.into_string(),
        }
    }

    fn cf(&self, name: &str) -> StoreResult<&ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| StoreError::Backend {
            path: self.path.clone(),
            message: format!("column family `{name}` is not open"),
        })
    }

    fn get(&self, cf: &ColumnFamily, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .db
            .get_pinned_cf(cf, key)
            .map_err(|e| self.backend(e))?
            .map(|v| v.to_vec()))
    }

    fn get_decoded<T: Decode>(
        &self,
        cf_name: &str,
        key: &[u8],
        what: impl FnOnce() -> String,
    ) -> StoreResult<Option<T>> {
        let cf = self.cf(cf_name)?;
        match self
            .db
            .get_pinned_cf(cf, key)
            .map_err(|e| self.backend(e))?
        {
            None => Ok(None),
            Some(bytes) => decode_exact(&bytes, what).map(Some),
        }
    }

    fn write(&self, batch: WriteBatch) -> StoreResult<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts).map_err(|e| self.backend(e))
    }

    fn read_head(&self) -> StoreResult<Option<Head>> {
        self.get_decoded(CF_META, META_HEAD, || "meta head".into())
    }

    fn read_genesis(&self) -> StoreResult<Option<Hash>> {
        let meta = self.cf(CF_META)?;
        match self.get(meta, META_GENESIS)? {
            None => Ok(None),
            Some(bytes) => hash_from_slice(&bytes, || "meta genesis".into()).map(Some),
        }
    }

    /// Adds the nodes and values of `update` and its undo record to `batch`.
    fn put_state(
        &self,
        batch: &mut WriteBatch,
        number: BlockNumber,
        update: &TreeUpdateBatch,
    ) -> StoreResult<()> {
        let nodes_cf = self.cf(CF_STATE_NODES)?;
        let values_cf = self.cf(CF_STATE_VALUES)?;
        for (key, node) in update.node_batch.nodes() {
            let value = borsh::to_vec(node).map_err(|e| StoreError::Backend {
                path: self.path.clone(),
                message: format!("cannot encode state-tree node: {e}"),
            })?;
            batch.put_cf(nodes_cf, self.node_db_key(key)?, value);
        }
        let stale_cf = self.cf(CF_STALE_NODES)?;
        for stale in &update.stale_node_index_batch {
            let mut key = stale.stale_since_version.to_be_bytes().to_vec();
            key.extend_from_slice(&self.node_db_key(&stale.node_key)?);
            batch.put_cf(stale_cf, key, []);
        }
        let mut undo: Vec<[u8; 32]> = Vec::with_capacity(update.node_batch.values().len());
        for ((version, key_hash), value) in update.node_batch.values() {
            batch.put_cf(values_cf, value_db_key(key_hash, *version), value.encode());
            undo.push(key_hash.0);
        }
        batch.put_cf(self.cf(CF_UNDO)?, number.to_be_bytes(), undo.encode());
        Ok(())
    }

    fn node_db_key(&self, key: &NodeKey) -> StoreResult<Vec<u8>> {
        let encoded = borsh::to_vec(key).map_err(|e| StoreError::Backend {
            path: self.path.clone(),
            message: format!("cannot encode state-tree node key: {e}"),
        })?;
        let mut out = Vec::with_capacity(8 + encoded.len());
        out.extend_from_slice(&key.version().to_be_bytes());
        out.extend_from_slice(&encoded);
        Ok(out)
    }

    /// Adds the deletion of every `state_nodes` entry of `version` to `batch`.
    fn delete_nodes_of_version(&self, batch: &mut WriteBatch, version: Version) -> StoreResult<()> {
        let cf = self.cf(CF_STATE_NODES)?;
        let start = version.to_be_bytes();
        match version.checked_add(1) {
            Some(next) => batch.delete_range_cf(cf, start, next.to_be_bytes()),
            None => {
                // The last possible version has no upper bound key of the
                // same width: delete its entries one by one.
                let mut it = self.db.raw_iterator_cf(cf);
                it.seek(start);
                while let Some(key) = it.key() {
                    if !key.starts_with(&start) {
                        break;
                    }
                    batch.delete_cf(cf, key);
                    it.next();
                }
                it.status().map_err(|e| self.backend(e))?;
            }
        }
        Ok(())
    }
}

impl Store for RocksStore {
    fn initialize(&self, genesis: &Genesis) -> StoreResult<Head> {
        let _guard = self.write_lock.lock();
        if let Some(found) = self.read_genesis()? {
            if found != genesis.hash {
                return Err(StoreError::GenesisMismatch {
                    path: self.path.clone(),
                    found,
                    expected: genesis.hash,
                });
            }
            return self.read_head()?.ok_or_else(|| StoreError::Corrupt {
                what: "meta head".into(),
                message: "missing although genesis is recorded".into(),
            });
        }
        if self.read_head()?.is_some() {
            return Err(StoreError::Corrupt {
                what: "meta genesis".into(),
                message: "missing although a head is recorded".into(),
            });
        }
        check_update_version(&self.path, 0, &genesis.update.batch)?;

        let head = Head {
            hash: genesis.hash,
            number: 0,
        };
        let stored = StoredHeader {
            header: genesis.block.header.clone(),
            total_work: genesis.block.header.target.work().to_big_endian(),
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_HEADERS)?, genesis.hash.0, stored.encode());
        batch.put_cf(
            self.cf(CF_BODIES)?,
            genesis.hash.0,
            genesis.block.transactions.encode(),
        );
        batch.put_cf(self.cf(CF_CANONICAL)?, 0u64.to_be_bytes(), genesis.hash.0);
        batch.put_cf(
            self.cf(CF_BLOCK_STATUS)?,
            genesis.hash.0,
            BlockStatus::Valid.encode(),
        );
        let tx_cf = self.cf(CF_TX_INDEX)?;
        for (index, tx) in genesis.block.transactions.iter().enumerate() {
            let location = TxLocation {
                block: genesis.hash,
                index: tx_index_u32(index)?,
            };
            batch.put_cf(tx_cf, tx.hash().0, location.encode());
        }
        let hashes: Vec<Hash> = genesis
            .block
            .transactions
            .iter()
            .map(|t| t.hash())
            .collect();
        self.put_history(
            &mut batch,
            &genesis.hash,
            &genesis.block.header,
            &genesis.block.transactions,
            &hashes,
        )?;
        self.put_state(&mut batch, 0, &genesis.update.batch)?;
        let meta = self.cf(CF_META)?;
        batch.put_cf(meta, META_GENESIS, genesis.hash.0);
        batch.put_cf(meta, META_HEAD, head.encode());
        self.write(batch)?;
        Ok(head)
    }

    fn head(&self) -> StoreResult<Option<Head>> {
        self.read_head()
    }

    fn header(&self, hash: &Hash) -> StoreResult<Option<StoredHeader>> {
        self.get_decoded(CF_HEADERS, &hash.0, || format!("header {hash}"))
    }

    fn body(&self, hash: &Hash) -> StoreResult<Option<Vec<SignedTransaction>>> {
        self.get_decoded(CF_BODIES, &hash.0, || format!("body {hash}"))
    }

    fn canonical_hash(&self, number: BlockNumber) -> StoreResult<Option<Hash>> {
        let cf = self.cf(CF_CANONICAL)?;
        match self.get(cf, &number.to_be_bytes())? {
            None => Ok(None),
            Some(bytes) => hash_from_slice(&bytes, || format!("canonical {number}")).map(Some),
        }
    }

    fn tx_location(&self, tx: &Hash) -> StoreResult<Option<TxLocation>> {
        self.get_decoded(CF_TX_INDEX, &tx.0, || format!("tx_index {tx}"))
    }

    fn history(
        &self,
        subject: &[u8; 32],
        before: Option<crate::storage::history::HistoryPosition>,
        limit: usize,
    ) -> StoreResult<Vec<crate::storage::history::HistoryRecord>> {
        self.read_history(subject, before, limit)
    }

    fn tree_node(&self, key: &NodeKey) -> StoreResult<Option<Node>> {
        let cf = self.cf(CF_STATE_NODES)?;
        let db_key = self.node_db_key(key)?;
        match self
            .db
            .get_pinned_cf(cf, &db_key)
            .map_err(|e| self.backend(e))?
        {
            None => Ok(None),
            Some(bytes) => {
                borsh::from_slice::<Node>(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        what: format!("state node {}", hex::encode(&db_key)),
                        message: e.to_string(),
                    })
            }
        }
    }

    fn tree_value(&self, max_version: Version, key: KeyHash) -> StoreResult<Option<OwnedValue>> {
        let cf = self.cf(CF_STATE_VALUES)?;
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek_for_prev(value_db_key(&key, max_version));
        let Some((found_key, value)) = it.item() else {
            it.status().map_err(|e| self.backend(e))?;
            return Ok(None);
        };
        if found_key.len() != 40 || !found_key.starts_with(&key.0) {
            return Ok(None);
        }
        decode_exact::<Option<Vec<u8>>>(value, || format!("state value {}", hex::encode(found_key)))
    }

    fn commit_block(&self, block: &ExecutedBlock, total_work: [u8; 32]) -> StoreResult<Head> {
        let _guard = self.write_lock.lock();
        let head = self.read_head()?.ok_or(StoreError::Uninitialized)?;
        let new_head = check_extends(&head, block)?;
        check_update_version(&self.path, new_head.number, &block.update.batch)?;

        let hash = block.hash;
        let number = new_head.number;
        let stored = StoredHeader {
            header: block.block.header.clone(),
            total_work,
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_HEADERS)?, hash.0, stored.encode());
        batch.put_cf(
            self.cf(CF_BODIES)?,
            hash.0,
            block.block.transactions.encode(),
        );
        batch.put_cf(self.cf(CF_CANONICAL)?, number.to_be_bytes(), hash.0);
        batch.put_cf(
            self.cf(CF_BLOCK_STATUS)?,
            hash.0,
            BlockStatus::Valid.encode(),
        );
        batch.delete_cf(self.cf(CF_SIDE_BLOCKS)?, side_key(number, &hash));
        let tx_cf = self.cf(CF_TX_INDEX)?;
        for (index, tx_hash) in block.tx_hashes.iter().enumerate() {
            let location = TxLocation {
                block: hash,
                index: tx_index_u32(index)?,
            };
            batch.put_cf(tx_cf, tx_hash.0, location.encode());
        }
        let genesis = self.read_genesis()?.ok_or(StoreError::Uninitialized)?;
        self.put_history(
            &mut batch,
            &genesis,
            &block.block.header,
            &block.block.transactions,
            &block.tx_hashes,
        )?;
        self.put_state(&mut batch, number, &block.update.batch)?;
        batch.put_cf(self.cf(CF_META)?, META_HEAD, new_head.encode());
        self.write(batch)?;
        Ok(new_head)
    }

    fn revert_head(&self) -> StoreResult<Head> {
        let _guard = self.write_lock.lock();
        let head = self.read_head()?.ok_or(StoreError::Uninitialized)?;
        let Some(parent_number) = head.number.checked_sub(1) else {
            return Err(StoreError::RevertGenesis);
        };
        let pruned_below = self.pruned_below()?;
        if parent_number < pruned_below {
            return Err(StoreError::StatePruned {
                number: parent_number,
                oldest: pruned_below,
            });
        }
        let number = head.number;
        let header = self
            .header(&head.hash)?
            .ok_or_else(|| missing(format!("header {} of the head", head.hash)))?;
        let body = self
            .body(&head.hash)?
            .ok_or_else(|| missing(format!("body {} of the head", head.hash)))?;
        let undo: Vec<[u8; 32]> = self
            .get_decoded(CF_UNDO, &number.to_be_bytes(), || format!("undo {number}"))?
            .ok_or_else(|| missing(format!("undo {number}")))?;
        let parent = Head {
            hash: header.header.parent_hash,
            number: parent_number,
        };
        match self.canonical_hash(parent_number)? {
            Some(h) if h == parent.hash => {}
            other => {
                return Err(StoreError::Corrupt {
                    what: format!("canonical {parent_number}"),
                    message: format!("holds {other:?}, but the head's parent is {}", parent.hash),
                });
            }
        }

        let mut batch = WriteBatch::default();
        // The block itself stays in the index, now a side block.
        batch.put_cf(self.cf(CF_SIDE_BLOCKS)?, side_key(number, &head.hash), []);
        batch.delete_cf(self.cf(CF_CANONICAL)?, number.to_be_bytes());
        let tx_cf = self.cf(CF_TX_INDEX)?;
        for tx in &body {
            let tx_hash = tx.hash();
            // Only remove entries that point at this block, so the index of
            // another canonical block is never touched.
            if self
                .tx_location(&tx_hash)?
                .is_some_and(|loc| loc.block == head.hash)
            {
                batch.delete_cf(tx_cf, tx_hash.0);
            }
        }
        self.delete_history(&mut batch, &header.header, &body)?;
        self.delete_nodes_of_version(&mut batch, number)?;
        // The nodes this version made stale are live again.
        if let Some(next) = number.checked_add(1) {
            batch.delete_range_cf(
                self.cf(CF_STALE_NODES)?,
                number.to_be_bytes(),
                next.to_be_bytes(),
            );
        }
        let values_cf = self.cf(CF_STATE_VALUES)?;
        for key_hash in &undo {
            batch.delete_cf(values_cf, value_db_key(&KeyHash(*key_hash), number));
        }
        batch.delete_cf(self.cf(CF_UNDO)?, number.to_be_bytes());
        batch.put_cf(self.cf(CF_META)?, META_HEAD, parent.encode());
        self.write(batch)?;
        Ok(parent)
    }

    fn store_block(&self, block: &Block, total_work: [u8; 32], best_tip: bool) -> StoreResult<()> {
        let _guard = self.write_lock.lock();
        let hash = block.header.hash();
        let mut batch = WriteBatch::default();
        if self.header(&hash)?.is_none() {
            let stored = StoredHeader {
                header: block.header.clone(),
                total_work,
            };
            batch.put_cf(self.cf(CF_HEADERS)?, hash.0, stored.encode());
            batch.put_cf(self.cf(CF_BODIES)?, hash.0, block.transactions.encode());
            batch.put_cf(
                self.cf(CF_BLOCK_STATUS)?,
                hash.0,
                BlockStatus::Checked.encode(),
            );
            batch.put_cf(
                self.cf(CF_SIDE_BLOCKS)?,
                side_key(block.header.number, &hash),
                [],
            );
        }
        if best_tip {
            batch.put_cf(self.cf(CF_META)?, META_BEST_TIP, hash.0);
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.write(batch)
    }

    fn block_status(&self, hash: &Hash) -> StoreResult<Option<BlockStatus>> {
        let status: Option<BlockStatus> =
            self.get_decoded(CF_BLOCK_STATUS, &hash.0, || format!("block_status {hash}"))?;
        match status {
            Some(s) => Ok(Some(s)),
            // Canonical blocks written without a status record.
            None => Ok(self.header(hash)?.map(|_| BlockStatus::Valid)),
        }
    }

    fn mark_invalid(&self, hash: &Hash) -> StoreResult<()> {
        let _guard = self.write_lock.lock();
        if self.header(hash)?.is_none() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_BLOCK_STATUS)?,
            hash.0,
            BlockStatus::Invalid.encode(),
        );
        if self.best_tip()? == Some(*hash) {
            batch.delete_cf(self.cf(CF_META)?, META_BEST_TIP);
        }
        self.write(batch)
    }

    fn best_tip(&self) -> StoreResult<Option<Hash>> {
        match self.get(self.cf(CF_META)?, META_BEST_TIP)? {
            None => Ok(None),
            Some(bytes) => hash_from_slice(&bytes, || "meta best_tip".into()).map(Some),
        }
    }

    fn pruned_below(&self) -> StoreResult<BlockNumber> {
        match self.get(self.cf(CF_META)?, META_PRUNED_BELOW)? {
            None => Ok(0),
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    what: "meta pruned_below".into(),
                    message: format!("expected 8 bytes, found {}", bytes.len()),
                }),
        }
    }

    fn prune_state(&self, below: BlockNumber) -> StoreResult<usize> {
        self.prune_state_versions(below)
    }

    fn archive_mode(&self) -> StoreResult<Option<bool>> {
        match self.get(self.cf(CF_META)?, META_ARCHIVE)?.as_deref() {
            None => Ok(None),
            Some([0]) => Ok(Some(false)),
            Some([1]) => Ok(Some(true)),
            Some(other) => Err(StoreError::Corrupt {
                what: "meta archive".into(),
                message: format!("expected one byte 0 or 1, found {}", hex::encode(other)),
            }),
        }
    }

    fn set_archive_mode(&self, archive: bool) -> StoreResult<()> {
        let _guard = self.write_lock.lock();
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, META_ARCHIVE, [u8::from(archive)]);
        self.write(batch)
    }

    fn clear_best_tip(&self) -> StoreResult<()> {
        let _guard = self.write_lock.lock();
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(CF_META)?, META_BEST_TIP);
        self.write(batch)
    }

    fn prune_side_blocks(&self, below: BlockNumber) -> StoreResult<usize> {
        self.prune_side_entries(below)
    }

    fn memory(&self) -> Option<super::DbMemory> {
        let cfs: Vec<&ColumnFamily> = COLUMN_FAMILIES
            .iter()
            .filter_map(|n| self.db.cf_handle(n))
            .collect();
        Some(usage::db_memory(&self.db, &cfs))
    }
}

/// `key hash ‖ version (u64 BE)`.
fn value_db_key(key_hash: &KeyHash, version: Version) -> [u8; 40] {
    let mut out = [0u8; 40];
    let (hash_part, version_part) = out.split_at_mut(32);
    hash_part.copy_from_slice(&key_hash.0);
    version_part.copy_from_slice(&version.to_be_bytes());
    out
}

fn decode_exact<T: Decode>(bytes: &[u8], what: impl FnOnce() -> String) -> StoreResult<T> {
    T::decode_all(&mut &bytes[..]).map_err(|e| StoreError::Corrupt {
        what: what(),
        message: e.to_string(),
    })
}

fn hash_from_slice(bytes: &[u8], what: impl FnOnce() -> String) -> StoreResult<Hash> {
    <[u8; 32]>::try_from(bytes)
        .map(Hash)
        .map_err(|_| StoreError::Corrupt {
            what: what(),
            message: format!("expected a 32-byte hash, found {} bytes", bytes.len()),
        })
}

fn missing(what: String) -> StoreError {
    StoreError::Corrupt {
        what,
        message: "record is missing".into(),
    }
}

fn tx_index_u32(index: usize) -> StoreResult<u32> {
    u32::try_from(index).map_err(|_| StoreError::Corrupt {
        what: "transaction index".into(),
        message: format!("index {index} does not fit in 32 bits"),
    })
}

/// Checks that `block` extends `head` and returns the head after it.
/// Shared by both backends so their semantics cannot drift.
pub(super) fn check_extends(head: &Head, block: &ExecutedBlock) -> StoreResult<Head> {
    let header = &block.block.header;
    let next = head.number.checked_add(1);
    if header.parent_hash != head.hash || Some(header.number) != next {
        return Err(StoreError::NotOnHead {
            hash: block.hash,
            number: header.number,
            head_hash: head.hash,
            head_number: head.number,
        });
    }
    Ok(Head {
        hash: block.hash,
        number: header.number,
    })
}

/// Checks that every node and value of `update` belongs to tree version
/// `number`, which is what lets a revert find and delete them all. The
/// runtime always builds updates this way; a violation is a caller bug,
/// refused before anything is written.
pub(super) fn check_update_version(
    path: &str,
    number: BlockNumber,
    update: &TreeUpdateBatch,
) -> StoreResult<()> {
    let node_versions = update.node_batch.nodes().keys().map(NodeKey::version);
    let value_versions = update.node_batch.values().keys().map(|(v, _)| *v);
    match node_versions.chain(value_versions).find(|v| *v != number) {
        None => Ok(()),
        Some(v) => Err(StoreError::Backend {
            path: path.to_owned(),
            message: format!(
                "refusing to store block {number}: its state update writes tree version {v}, not {number}"
            ),
        }),
    }
}

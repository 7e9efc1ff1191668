//! The in-memory backend, for tests and ephemeral dev nodes.
//!
//! It has exactly the semantics of [`super::RocksStore`]: the same head
//! checks, the same errors, the same block index. Every
//! write runs under one write lock, so each commit or revert is atomic with
//! respect to readers. Nothing survives the process.

use super::rocks::{check_extends, check_update_version};
use super::{BlockStatus, Head, Store, StoreError, StoreResult, StoredHeader, TxLocation, history};
use cachecash_runtime::commitment::MemoryTree;
use cachecash_runtime::genesis::Genesis;
use cachecash_runtime::verify::ExecutedBlock;
use cachecash_runtime::{Block, BlockNumber, Hash, SignedTransaction};
use jmt::storage::{Node, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, Version};
use parking_lot::RwLock;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The path reported in errors.
const PATH: &str = "memory";

#[derive(Debug, Default)]
struct Inner {
    genesis: Option<Hash>,
    head: Option<Head>,
    headers: HashMap<Hash, StoredHeader>,
    bodies: HashMap<Hash, Vec<SignedTransaction>>,
    canonical: BTreeMap<BlockNumber, Hash>,
    tx_index: HashMap<Hash, TxLocation>,
    history: BTreeMap<[u8; history::KEY_BYTES], Vec<u8>>,
    tree: MemoryTree,
    status: HashMap<Hash, BlockStatus>,
    side: BTreeSet<(BlockNumber, Hash)>,
    best_tip: Option<Hash>,
    /// Nodes each version made stale, and keys each version wrote.
    stale: BTreeMap<BlockNumber, Vec<NodeKey>>,
    written: BTreeMap<BlockNumber, Vec<KeyHash>>,
    pruned_below: BlockNumber,
    archive: Option<bool>,
}

impl Inner {
    /// Stores a block (genesis or not) and moves the head to it.
    fn insert_block(
        &mut self,
        genesis: &Hash,
        header: StoredHeader,
        hash: Hash,
        transactions: Vec<SignedTransaction>,
        tx_hashes: &[Hash],
        update: &jmt::storage::TreeUpdateBatch,
    ) -> StoreResult<Head> {
        let number = header.header.number;
        let locations = tx_hashes
            .iter()
            .enumerate()
            .map(|(index, tx)| {
                let index = u32::try_from(index).map_err(|_| StoreError::Corrupt {
                    what: "transaction index".into(),
                    message: format!("index {index} does not fit in 32 bits"),
                })?;
                Ok((*tx, TxLocation { block: hash, index }))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let entries = history::entries(genesis, &header.header, &transactions, tx_hashes)?;
        // Nothing above can fail past this point, so the update is all or
        // nothing under the write lock.
        self.tx_index.extend(locations);
        self.history.extend(entries);
        self.headers.insert(hash, header);
        self.bodies.insert(hash, transactions);
        self.canonical.insert(number, hash);
        self.status.insert(hash, BlockStatus::Valid);
        self.side.remove(&(number, hash));
        self.stale.insert(
            number,
            update
                .stale_node_index_batch
                .iter()
                .map(|s| s.node_key.clone())
                .collect(),
        );
        self.written.insert(
            number,
            update.node_batch.values().keys().map(|(_, k)| *k).collect(),
        );
        self.tree.apply(update);
        let head = Head { hash, number };
        self.head = Some(head);
        Ok(head)
    }
}

/// Block and state storage in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn tree_error(e: anyhow::Error) -> StoreError {
    StoreError::Backend {
        path: PATH.into(),
        message: format!("{e:#}"),
    }
}

impl Store for MemoryStore {
    fn initialize(&self, genesis: &Genesis) -> StoreResult<Head> {
        let mut inner = self.inner.write();
        if let Some(found) = inner.genesis {
            if found != genesis.hash {
                return Err(StoreError::GenesisMismatch {
                    path: PATH.into(),
                    found,
                    expected: genesis.hash,
                });
            }
            return inner.head.ok_or_else(|| StoreError::Corrupt {
                what: "meta head".into(),
                message: "missing although genesis is recorded".into(),
            });
        }
        check_update_version(PATH, 0, &genesis.update.batch)?;
        let header = StoredHeader {
            header: genesis.block.header.clone(),
            total_work: genesis.block.header.target.work().to_big_endian(),
        };
        let tx_hashes: Vec<Hash> = genesis
            .block
            .transactions
            .iter()
            .map(|t| t.hash())
            .collect();
        let head = inner.insert_block(
            &genesis.hash,
            header,
            genesis.hash,
            genesis.block.transactions.clone(),
            &tx_hashes,
            &genesis.update.batch,
        )?;
        inner.genesis = Some(genesis.hash);
        Ok(head)
    }

    fn head(&self) -> StoreResult<Option<Head>> {
        Ok(self.inner.read().head)
    }

    fn header(&self, hash: &Hash) -> StoreResult<Option<StoredHeader>> {
        Ok(self.inner.read().headers.get(hash).cloned())
    }

    fn body(&self, hash: &Hash) -> StoreResult<Option<Vec<SignedTransaction>>> {
        Ok(self.inner.read().bodies.get(hash).cloned())
    }

    fn canonical_hash(&self, number: BlockNumber) -> StoreResult<Option<Hash>> {
        Ok(self.inner.read().canonical.get(&number).copied())
    }

    fn tx_location(&self, tx: &Hash) -> StoreResult<Option<TxLocation>> {
        Ok(self.inner.read().tx_index.get(tx).copied())
    }

    fn history(
        &self,
        subject: &[u8; 32],
        before: Option<history::HistoryPosition>,
        limit: usize,
    ) -> StoreResult<Vec<history::HistoryRecord>> {
        let Some(start) = history::scan_start(subject, before) else {
            return Ok(Vec::new());
        };
        let from = history::key(
            subject,
            history::HistoryPosition {
                number: 0,
                index: 0,
            },
        );
        let inner = self.inner.read();
        inner
            .history
            .range(from..=start)
            .rev()
            .take(limit)
            .map(|(k, v)| history::decode(k, v).map(|(_, r)| r))
            .collect()
    }

    fn tree_node(&self, key: &NodeKey) -> StoreResult<Option<Node>> {
        self.inner
            .read()
            .tree
            .get_node_option(key)
            .map_err(tree_error)
    }

    fn tree_value(&self, max_version: Version, key: KeyHash) -> StoreResult<Option<OwnedValue>> {
        self.inner
            .read()
            .tree
            .get_value_option(max_version, key)
            .map_err(tree_error)
    }

    fn commit_block(&self, block: &ExecutedBlock, total_work: [u8; 32]) -> StoreResult<Head> {
        let mut inner = self.inner.write();
        let head = inner.head.ok_or(StoreError::Uninitialized)?;
        let new_head = check_extends(&head, block)?;
        check_update_version(PATH, new_head.number, &block.update.batch)?;
        let header = StoredHeader {
            header: block.block.header.clone(),
            total_work,
        };
        let genesis = inner.genesis.ok_or(StoreError::Uninitialized)?;
        inner.insert_block(
            &genesis,
            header,
            block.hash,
            block.block.transactions.clone(),
            &block.tx_hashes,
            &block.update.batch,
        )
    }

    fn revert_head(&self) -> StoreResult<Head> {
        let mut inner = self.inner.write();
        let head = inner.head.ok_or(StoreError::Uninitialized)?;
        let Some(parent_number) = head.number.checked_sub(1) else {
            return Err(StoreError::RevertGenesis);
        };
        if parent_number < inner.pruned_below {
            return Err(StoreError::StatePruned {
                number: parent_number,
                oldest: inner.pruned_below,
            });
        }
        let parent_hash = inner
            .headers
            .get(&head.hash)
            .map(|h| h.header.parent_hash)
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("header {} of the head", head.hash),
                message: "record is missing".into(),
            })?;
        match inner.canonical.get(&parent_number) {
            Some(h) if *h == parent_hash => {}
            other => {
                return Err(StoreError::Corrupt {
                    what: format!("canonical {parent_number}"),
                    message: format!("holds {other:?}, but the head's parent is {parent_hash}"),
                });
            }
        }
        if !inner.bodies.contains_key(&head.hash) {
            return Err(StoreError::Corrupt {
                what: format!("body {} of the head", head.hash),
                message: "record is missing".into(),
            });
        }
        let body = inner.bodies.get(&head.hash).cloned().unwrap_or_default();
        let genesis = inner.genesis.ok_or(StoreError::Uninitialized)?;
        let hashes: Vec<Hash> = body.iter().map(|t| t.hash()).collect();
        let header = inner
            .headers
            .get(&head.hash)
            .map(|h| h.header.clone())
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("header {} of the head", head.hash),
                message: "record is missing".into(),
            })?;
        let entries = history::entries(&genesis, &header, &body, &hashes)?;
        // Nothing can fail past this point. The block stays in the index,
        // now a side block.
        for (k, _) in entries {
            inner.history.remove(&k);
        }
        inner.side.insert((head.number, head.hash));
        for tx in &body {
            let tx_hash = tx.hash();
            // Only remove entries that point at this block.
            if inner
                .tx_index
                .get(&tx_hash)
                .is_some_and(|loc| loc.block == head.hash)
            {
                inner.tx_index.remove(&tx_hash);
            }
        }
        inner.canonical.remove(&head.number);
        inner.stale.remove(&head.number);
        inner.written.remove(&head.number);
        inner.tree.revert_to(parent_number);
        let parent = Head {
            hash: parent_hash,
            number: parent_number,
        };
        inner.head = Some(parent);
        Ok(parent)
    }

    fn store_block(&self, block: &Block, total_work: [u8; 32], best_tip: bool) -> StoreResult<()> {
        let mut inner = self.inner.write();
        let hash = block.header.hash();
        if let std::collections::hash_map::Entry::Vacant(slot) = inner.headers.entry(hash) {
            slot.insert(StoredHeader {
                header: block.header.clone(),
                total_work,
            });
            inner.bodies.insert(hash, block.transactions.clone());
            inner.status.insert(hash, BlockStatus::Checked);
            inner.side.insert((block.header.number, hash));
        }
        if best_tip {
            inner.best_tip = Some(hash);
        }
        Ok(())
    }

    fn block_status(&self, hash: &Hash) -> StoreResult<Option<BlockStatus>> {
        let inner = self.inner.read();
        Ok(match inner.status.get(hash) {
            Some(s) => Some(*s),
            None => inner.headers.get(hash).map(|_| BlockStatus::Valid),
        })
    }

    fn mark_invalid(&self, hash: &Hash) -> StoreResult<()> {
        let mut inner = self.inner.write();
        if inner.headers.contains_key(hash) {
            inner.status.insert(*hash, BlockStatus::Invalid);
            if inner.best_tip == Some(*hash) {
                inner.best_tip = None;
            }
        }
        Ok(())
    }

    fn best_tip(&self) -> StoreResult<Option<Hash>> {
        Ok(self.inner.read().best_tip)
    }

    fn pruned_below(&self) -> StoreResult<BlockNumber> {
        Ok(self.inner.read().pruned_below)
    }

    fn prune_state(&self, below: BlockNumber) -> StoreResult<usize> {
        let mut inner = self.inner.write();
        let head = inner.head.ok_or(StoreError::Uninitialized)?;
        let done = inner.pruned_below;
        let target = below.min(head.number);
        let mut removed = 0usize;
        for version in done.saturating_add(1)..=target {
            for key in inner.stale.remove(&version).unwrap_or_default() {
                removed = removed.saturating_add(usize::from(inner.tree.remove_node(&key)));
            }
            let written = inner.written.remove(&version).unwrap_or_default();
            if let Some(before) = version.checked_sub(1) {
                for key in written {
                    removed = removed.saturating_add(usize::from(
                        inner.tree.remove_value_at_or_before(key, before),
                    ));
                }
            }
        }
        inner.pruned_below = inner.pruned_below.max(target);
        Ok(removed)
    }

    fn archive_mode(&self) -> StoreResult<Option<bool>> {
        Ok(self.inner.read().archive)
    }

    fn set_archive_mode(&self, archive: bool) -> StoreResult<()> {
        self.inner.write().archive = Some(archive);
        Ok(())
    }

    fn clear_best_tip(&self) -> StoreResult<()> {
        self.inner.write().best_tip = None;
        Ok(())
    }

    fn prune_side_blocks(&self, below: BlockNumber) -> StoreResult<usize> {
        let mut inner = self.inner.write();
        let old: Vec<(BlockNumber, Hash)> = inner
            .side
            .iter()
            .take_while(|(n, _)| *n < below)
            .copied()
            .collect();
        let mut removed = 0usize;
        for (number, hash) in old {
            inner.side.remove(&(number, hash));
            if inner.canonical.get(&number) != Some(&hash) {
                inner.headers.remove(&hash);
                inner.bodies.remove(&hash);
                inner.status.remove(&hash);
                if inner.best_tip == Some(hash) {
                    inner.best_tip = None;
                }
                removed = removed.saturating_add(1);
            }
        }
        Ok(removed)
    }
}

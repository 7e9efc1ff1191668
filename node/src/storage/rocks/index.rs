//! The RocksDB side of the block index's upkeep and of state pruning:
//! deleting side blocks that fell out of the reorganisation window, and
//! state versions below the pruning horizon (see the storage module docs).

use super::*;

impl RocksStore {
    /// [`Store::prune_state`]: see the storage module's "State pruning".
    pub(super) fn prune_state_versions(&self, below: BlockNumber) -> StoreResult<usize> {
        let _guard = self.write_lock.lock();
        let done = self.pruned_below()?;
        let head = self.read_head()?.ok_or(StoreError::Uninitialized)?;
        // Never past the head: its state must stay whole.
        let target = below
            .min(head.number)
            .min(done.saturating_add(MAX_VERSIONS_PER_PRUNE));
        if target <= done {
            return Ok(0);
        }
        let nodes_cf = self.cf(CF_STATE_NODES)?;
        let values_cf = self.cf(CF_STATE_VALUES)?;
        let stale_cf = self.cf(CF_STALE_NODES)?;
        let undo_cf = self.cf(CF_UNDO)?;
        let mut batch = WriteBatch::default();
        let mut removed = 0usize;
        for version in done.saturating_add(1)..=target {
            // Nodes that stopped being part of the tree at `version`.
            let prefix = version.to_be_bytes();
            let mut it = self.db.raw_iterator_cf(stale_cf);
            it.seek(prefix);
            while let Some(key) = it.key() {
                let Some(node_key) = key.strip_prefix(&prefix[..]) else {
                    break;
                };
                batch.delete_cf(nodes_cf, node_key);
                batch.delete_cf(stale_cf, key);
                removed = removed.saturating_add(1);
                it.next();
            }
            it.status().map_err(|e| self.backend(e))?;
            drop(it);
            // Values that `version` overwrote: the previous version of each
            // key it wrote is read by no state at or after `version`.
            let undo: Vec<[u8; 32]> = self
                .get_decoded(CF_UNDO, &version.to_be_bytes(), || {
                    format!("undo {version}")
                })?
                .unwrap_or_default();
            if let Some(before) = version.checked_sub(1) {
                let mut it = self.db.raw_iterator_cf(values_cf);
                for key_hash in &undo {
                    it.seek_for_prev(value_db_key(&KeyHash(*key_hash), before));
                    if let Some(found) = it.key()
                        && found.len() == 40
                        && found.starts_with(key_hash)
                    {
                        batch.delete_cf(values_cf, found);
                        removed = removed.saturating_add(1);
                    }
                }
                it.status().map_err(|e| self.backend(e))?;
            }
            // No revert reaches this version any more.
            batch.delete_cf(undo_cf, version.to_be_bytes());
        }
        batch.put_cf(self.cf(CF_META)?, META_PRUNED_BELOW, target.to_be_bytes());
        self.write(batch)?;
        Ok(removed)
    }

    /// [`Store::prune_side_blocks`].
    pub(super) fn prune_side_entries(&self, below: BlockNumber) -> StoreResult<usize> {
        let _guard = self.write_lock.lock();
        let side_cf = self.cf(CF_SIDE_BLOCKS)?;
        let best_tip = self.best_tip()?;
        let mut batch = WriteBatch::default();
        let mut removed = 0usize;
        let mut it = self.db.raw_iterator_cf(side_cf);
        it.seek_to_first();
        while let Some(key) = it.key() {
            let Some((number, hash)) = parse_side_key(key) else {
                return Err(StoreError::Corrupt {
                    what: format!("side_blocks key {}", hex::encode(key)),
                    message: "expected 40 bytes: number (u64 BE) and block hash".into(),
                });
            };
            if number >= below {
                break;
            }
            batch.delete_cf(side_cf, key);
            // A canonical block listed here would be a bug; never delete one.
            if self.canonical_hash(number)? != Some(hash) {
                batch.delete_cf(self.cf(CF_HEADERS)?, hash.0);
                batch.delete_cf(self.cf(CF_BODIES)?, hash.0);
                batch.delete_cf(self.cf(CF_BLOCK_STATUS)?, hash.0);
                if best_tip == Some(hash) {
                    batch.delete_cf(self.cf(CF_META)?, META_BEST_TIP);
                }
                removed = removed.saturating_add(1);
            }
            it.next();
        }
        it.status().map_err(|e| self.backend(e))?;
        drop(it);
        if !batch.is_empty() {
            self.write(batch)?;
        }
        Ok(removed)
    }
}

/// `number (u64 BE) ‖ block hash`: a `side_blocks` key.
pub(super) fn side_key(number: BlockNumber, hash: &Hash) -> [u8; 40] {
    let mut out = [0u8; 40];
    let (number_part, hash_part) = out.split_at_mut(8);
    number_part.copy_from_slice(&number.to_be_bytes());
    hash_part.copy_from_slice(&hash.0);
    out
}

fn parse_side_key(key: &[u8]) -> Option<(BlockNumber, Hash)> {
    let (number, hash) = key.split_at_checked(8)?;
    let number = BlockNumber::from_be_bytes(number.try_into().ok()?);
    Some((number, Hash(hash.try_into().ok()?)))
}

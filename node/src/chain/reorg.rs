//! Reorganisations to a heavier branch and reverts (see the module docs of
//! [`crate::chain`]).

use super::*;

impl Chain {
    /// Switches to the heavier branch ending at side block `tip` (see the
    /// module docs). The write lock must be held.
    pub(super) fn reorganize(
        &self,
        tip: Hash,
        old_head: &HeadInfo,
        origin: BlockOrigin,
    ) -> Result<Head, ImportError> {
        // 1. The branch, back to the canonical ancestor.
        let mut branch: Vec<SideBlock> = Vec::new();
        let mut cursor = tip;
        let ancestor = loop {
            if let Some(b) = self.side.lock().blocks.get(&cursor).cloned() {
                cursor = b.block.header.parent_hash;
                branch.push(b);
                if branch.len() > MAX_SIDE_BLOCKS {
                    // The pool never holds more; a cycle would be a bug.
                    return Err(ImportError::UnknownParent {
                        hash: tip,
                        parent: cursor,
                    });
                }
                continue;
            }
            let stored = self
                .store
                .header(&cursor)?
                .ok_or(ImportError::UnknownParent {
                    hash: tip,
                    parent: cursor,
                })?;
            if self.store.canonical_hash(stored.header.number)? != Some(cursor) {
                return Err(ImportError::UnknownParent {
                    hash: tip,
                    parent: cursor,
                });
            }
            break stored.header;
        };
        branch.reverse();
        let depth = old_head.header.number.saturating_sub(ancestor.number);
        if depth > self.max_reorg_depth {
            return Err(ImportError::ReorgTooDeep {
                hash: tip,
                depth,
                limit: self.max_reorg_depth,
            });
        }
        tracing::info!(
            target: "cachecash::import",
            from = %old_head.hash,
            to = %tip,
            ancestor = ancestor.number,
            reverted = depth,
            applied = branch.len(),
            "reorganising to a heavier branch"
        );

        // 2. Revert, keeping the old blocks.
        let old_blocks = self.revert_locked(ancestor.number)?;

        // 3. Apply the branch.
        let mut failure = None;
        for b in &branch {
            let hash = b.block.hash();
            match self.execute_and_commit(b.block.clone(), b.total_work, origin) {
                Ok(_) => self.side.lock().remove(&hash),
                Err(e) => {
                    failure = Some((hash, e));
                    break;
                }
            }
        }
        let Some((bad, error)) = failure else {
            let mut side = self.side.lock();
            for b in old_blocks {
                side.insert(b.block.hash(), b);
            }
            drop(side);
            self.metrics.reorgs.inc();
            return Ok(self.store.head()?.ok_or(StoreError::Uninitialized)?);
        };
        // 4. Back to where we were. The invalid block and its descendants
        // are forgotten (and the invalid one refused if sent again); the
        // valid part of the branch returns to the side pool.
        tracing::warn!(target: "cachecash::import", "heavier branch at {tip} is invalid at {bad}, staying on {}: {error}", old_head.hash);
        let applied = self.revert_locked(ancestor.number)?;
        {
            let mut side = self.side.lock();
            side.mark_invalid(bad);
            let mut past_bad = false;
            for b in &branch {
                let h = b.block.hash();
                past_bad |= h == bad;
                if past_bad {
                    side.remove(&h);
                }
            }
            for b in applied {
                side.insert(b.block.hash(), b);
            }
        }
        let mut old_blocks = old_blocks.into_iter();
        for b in old_blocks.by_ref() {
            if let Err(e) =
                self.execute_and_commit(b.block.clone(), b.total_work, BlockOrigin::Network)
            {
                tracing::error!(target: "cachecash::import", "could not restore block {} after a failed reorganisation: {e}", b.block.hash());
                let mut side = self.side.lock();
                side.insert(b.block.hash(), b);
                for rest in old_blocks {
                    side.insert(rest.block.hash(), rest);
                }
                break;
            }
        }
        Err(error)
    }

    /// Reverts the canonical chain to block `number`, one atomic step per
    /// block. Returns the new head.
    pub fn revert_to(&self, number: BlockNumber) -> Result<Head, StoreError> {
        let _guard = self.write_lock.lock();
        self.revert_locked(number)?;
        self.store.head()?.ok_or(StoreError::Uninitialized)
    }

    /// Reverts to block `number` (write lock held); returns the reverted
    /// blocks, oldest first, and announces them.
    pub(super) fn revert_locked(&self, number: BlockNumber) -> Result<Vec<SideBlock>, StoreError> {
        let mut reverted = Vec::new();
        let mut head = self.store.head()?.ok_or(StoreError::Uninitialized)?;
        let mut result = Ok(());
        while head.number > number {
            let stored = self.store.header(&head.hash)?;
            let body = self.store.body(&head.hash)?;
            match self.store.revert_head() {
                Ok(parent) => head = parent,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            if let (Some(stored), Some(body)) = (stored, body) {
                reverted.push(SideBlock {
                    block: Block {
                        header: stored.header,
                        transactions: body,
                    },
                    total_work: U256::from_big_endian(&stored.total_work),
                });
            }
        }
        reverted.reverse();
        // The in-memory head follows the store whatever happened above, so
        // a failed step never leaves readers on a deleted block.
        let stored = self.store.header(&head.hash)?.ok_or(StoreError::Corrupt {
            what: format!("header of head {}", head.hash),
            message: "missing".into(),
        })?;
        *self.head.write() = HeadInfo {
            hash: head.hash,
            header: stored.header,
            total_work: U256::from_big_endian(&stored.total_work),
        };
        self.metrics
            .best_block
            .set(i64::try_from(head.number).unwrap_or(i64::MAX));
        if !reverted.is_empty() {
            let retracted: Vec<_> = reverted
                .iter()
                .flat_map(|b| b.block.transactions.iter().cloned())
                .collect();
            {
                let mut queue = self.retracted.lock();
                queue.extend(retracted.iter().cloned());
                while queue.len() > MAX_RETRACTED {
                    queue.pop_front();
                }
            }
            let _ = self.events.send(ChainEvent::Reverted { head, retracted });
        }
        result.map(|()| reverted)
    }
}

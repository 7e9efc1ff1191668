//! Reorganisations to a heavier branch and reverts (see the module docs of
//! [`crate::chain`]).

use super::*;
use cachecash_runtime::verify::StatelessBlock;

/// Whether an import failure proves the block breaks a rule (as opposed to
/// our clock or our storage failing), so it may be marked invalid for good.
fn breaks_a_rule(error: &ImportError) -> bool {
    match error {
        ImportError::Invalid { source, .. } => {
            !matches!(**source, BlockError::TimestampInFuture { .. })
        }
        _ => false,
    }
}

impl Chain {
    /// A block already in the index but never executed, offered again:
    /// adopted if its branch is heavier than the head (a switch a transient
    /// failure such as a full disk interrupted is completed), else known.
    pub(super) fn adopt_stored(
        &self,
        hash: Hash,
        origin: BlockOrigin,
    ) -> Result<ImportOutcome, ImportError> {
        let Some(stored) = self.store.header(&hash)? else {
            return Ok(ImportOutcome::AlreadyKnown(hash));
        };
        let work = U256::from_big_endian(&stored.total_work);
        let _guard = self.write_lock.lock();
        let head = self.head();
        if work <= head.total_work || head.hash == hash {
            return Ok(ImportOutcome::AlreadyKnown(hash));
        }
        tracing::info!(target: "cachecash::import", %hash, number = stored.header.number, "adopting a stored heavier block whose switch did not complete");
        Ok(ImportOutcome::Imported(
            self.reorganize(hash, &head, origin)?,
        ))
    }

    /// Switches to the heavier branch ending at stored block `tip` (see the
    /// module docs). The write lock must be held.
    pub(super) fn reorganize(
        &self,
        tip: Hash,
        old_head: &HeadInfo,
        origin: BlockOrigin,
    ) -> Result<Head, ImportError> {
        // 1. The branch, back to the canonical ancestor: one index read per
        // block, stopping as soon as the fork is known to be too deep.
        let mut branch: Vec<(Hash, U256)> = Vec::new();
        let mut cursor = tip;
        let ancestor = loop {
            let stored = self
                .store
                .header(&cursor)?
                .ok_or(ImportError::UnknownParent {
                    hash: tip,
                    parent: cursor,
                })?;
            let number = stored.header.number;
            if self.store.canonical_hash(number)? == Some(cursor) {
                break stored.header;
            }
            if number.saturating_add(self.max_reorg_depth) < old_head.header.number {
                return Err(ImportError::ReorgTooDeep {
                    hash: tip,
                    depth: old_head.header.number.saturating_sub(number),
                    limit: self.max_reorg_depth,
                });
            }
            if self.store.block_status(&cursor)? == Some(BlockStatus::Invalid) {
                // Never the best tip again (a restart would retry it).
                if self.store.best_tip()? == Some(tip) {
                    self.store.clear_best_tip()?;
                }
                return Err(ImportError::InvalidAncestor {
                    hash: tip,
                    ancestor: cursor,
                });
            }
            branch.push((cursor, U256::from_big_endian(&stored.total_work)));
            cursor = stored.header.parent_hash;
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

        // 2. Revert; the old blocks stay in the index.
        let old_blocks = self.revert_locked(ancestor.number)?;

        // 3. Apply the branch from the index.
        let mut failure = None;
        for (hash, work) in &branch {
            if let Err(e) = self.apply_stored(*hash, *work, origin) {
                failure = Some((*hash, e));
                break;
            }
        }
        let Some((bad, error)) = failure else {
            self.metrics.reorgs.inc();
            return Ok(self.store.head()?.ok_or(StoreError::Uninitialized)?);
        };
        // 4. Back to where we were. A block that broke a rule is marked
        // invalid in the index (its descendants are refused through it); a
        // transient failure marks nothing, so the branch is tried again.
        tracing::warn!(target: "cachecash::import", "heavier branch at {tip} failed at {bad}, staying on {}: {error}", old_head.hash);
        if breaks_a_rule(&error) {
            self.store.mark_invalid(&bad)?;
            // The tip descends from the invalid block: forget it as the
            // best tip, or every restart would try the branch again.
            if self.store.best_tip()? == Some(tip) {
                self.store.clear_best_tip()?;
            }
        }
        self.revert_locked(ancestor.number)?;
        for (hash, work) in old_blocks {
            if let Err(e) = self.apply_stored(hash, work, BlockOrigin::Network) {
                tracing::error!(target: "cachecash::import", "could not restore block {hash} after a failed reorganisation: {e}");
                break;
            }
        }
        Err(error)
    }

    /// Reads a block of the index and applies it on the head (stateful
    /// checks, then the commit). The write lock must be held.
    fn apply_stored(
        &self,
        hash: Hash,
        total_work: U256,
        origin: BlockOrigin,
    ) -> Result<Head, ImportError> {
        let block = self.block(&hash)?.ok_or_else(|| StoreError::Corrupt {
            what: format!("block {hash} of the index"),
            message: "missing".into(),
        })?;
        self.commit_stateless(
            StatelessBlock::from_trusted_store(block),
            total_work,
            origin,
        )
    }

    /// Reverts the canonical chain to block `number`, one atomic step per
    /// block, and forgets the best tip so the next start stays here.
    /// Returns the new head.
    pub fn revert_to(&self, number: BlockNumber) -> Result<Head, StoreError> {
        let _guard = self.write_lock.lock();
        self.store.clear_best_tip()?;
        self.revert_locked(number)?;
        self.store.head()?.ok_or(StoreError::Uninitialized)
    }

    /// Reverts to block `number` (write lock held); returns the reverted
    /// blocks' hashes and cumulative works, oldest first, and announces
    /// their transactions (the oldest, up to [`MAX_RETRACTED`] and
    /// [`MAX_RETRACTED_BYTES`]).
    pub(super) fn revert_locked(
        &self,
        number: BlockNumber,
    ) -> Result<Vec<(Hash, U256)>, StoreError> {
        let mut reverted = Vec::new();
        let mut bodies = Vec::new();
        let mut head = self.store.head()?.ok_or(StoreError::Uninitialized)?;
        let mut result = Ok(());
        while head.number > number {
            let stored = self.store.header(&head.hash)?;
            let reverting = head.hash;
            match self.store.revert_head() {
                Ok(parent) => head = parent,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            if let Some(stored) = stored {
                reverted.push((reverting, U256::from_big_endian(&stored.total_work)));
            }
            bodies.push(reverting);
        }
        reverted.reverse();
        bodies.reverse();
        // The in-memory head follows the store whatever happened above, so
        // a failed step never leaves readers on a reverted block.
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
        if !bodies.is_empty() {
            let retracted = self.retracted_transactions(&bodies)?;
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

    /// The transactions of the reverted blocks `hashes` (oldest first),
    /// read back from the index, bounded in count and bytes.
    fn retracted_transactions(
        &self,
        hashes: &[Hash],
    ) -> Result<Vec<cachecash_runtime::SignedTransaction>, StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for hash in hashes {
            for tx in self.store.body(hash)?.unwrap_or_default() {
                bytes = bytes.saturating_add(tx.encoded_size());
                if out.len() >= MAX_RETRACTED || bytes > MAX_RETRACTED_BYTES {
                    tracing::warn!(target: "cachecash::import", "a deep reorganisation retracted more transactions than the mempool takes back at once; the rest are dropped");
                    return Ok(out);
                }
                out.push(tx);
            }
        }
        Ok(out)
    }
}

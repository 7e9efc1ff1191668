//! The RocksDB side of the history index (see [`crate::storage::history`]):
//! entries written and removed in the batches that commit and revert
//! blocks, the newest-first page scan, and the in-place upgrade of a
//! version 4 database, which had no index.

use super::*;
use crate::storage::history::{self, HistoryPosition, HistoryRecord};

/// Canonical blocks indexed per write batch while upgrading.
const UPGRADE_BATCH_BLOCKS: u64 = 512;

impl RocksStore {
    /// Adds the history entries of a canonical block to `batch`.
    pub(super) fn put_history(
        &self,
        batch: &mut WriteBatch,
        genesis: &Hash,
        header: &cachecash_runtime::Header,
        transactions: &[SignedTransaction],
        tx_hashes: &[Hash],
    ) -> StoreResult<()> {
        let cf = self.cf(CF_HISTORY)?;
        for (k, v) in history::entries(genesis, header, transactions, tx_hashes)? {
            batch.put_cf(cf, k, v);
        }
        Ok(())
    }

    /// Adds the removal of a reverted block's history entries to `batch`.
    pub(super) fn delete_history(
        &self,
        batch: &mut WriteBatch,
        header: &cachecash_runtime::Header,
        transactions: &[SignedTransaction],
    ) -> StoreResult<()> {
        let genesis = self.read_genesis()?.ok_or(StoreError::Uninitialized)?;
        let hashes: Vec<Hash> = transactions.iter().map(|t| t.hash()).collect();
        let cf = self.cf(CF_HISTORY)?;
        for (k, _) in history::entries(&genesis, header, transactions, &hashes)? {
            batch.delete_cf(cf, k);
        }
        Ok(())
    }

    /// [`Store::history`].
    pub(super) fn read_history(
        &self,
        subject: &[u8; 32],
        before: Option<HistoryPosition>,
        limit: usize,
    ) -> StoreResult<Vec<HistoryRecord>> {
        let Some(start) = history::scan_start(subject, before) else {
            return Ok(Vec::new());
        };
        let mut it = self.db.raw_iterator_cf(self.cf(CF_HISTORY)?);
        it.seek_for_prev(start);
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((k, v)) = it.item() else { break };
            if !k.starts_with(subject) {
                break;
            }
            out.push(history::decode(k, v)?.1);
            it.prev();
        }
        it.status().map_err(|e| self.backend(e))?;
        Ok(out)
    }

    /// Builds the history index of a version 4 database from its canonical
    /// blocks, a bounded batch at a time; the caller writes the new format
    /// version afterwards. Killed midway, the version is still 4 and the
    /// next open starts again (the writes are idempotent).
    pub(super) fn build_history(&self) -> StoreResult<()> {
        let Some(head) = self.read_head()? else {
            return Ok(());
        };
        let genesis = self.read_genesis()?.ok_or(StoreError::Uninitialized)?;
        tracing::info!(target: "cachecash::storage", blocks = head.number + 1, path = %self.path, "upgrading the database to format 5: indexing account and escrow history");
        let mut from = 0u64;
        while from <= head.number {
            let to = from
                .saturating_add(UPGRADE_BATCH_BLOCKS - 1)
                .min(head.number);
            let mut batch = WriteBatch::default();
            for number in from..=to {
                let missing = |what: &str| StoreError::Corrupt {
                    what: format!("{what} of canonical block #{number}"),
                    message: "record is missing".into(),
                };
                let hash = self
                    .canonical_hash(number)?
                    .ok_or_else(|| missing("hash"))?;
                let header = self.header(&hash)?.ok_or_else(|| missing("header"))?;
                let body = self.body(&hash)?.ok_or_else(|| missing("body"))?;
                let hashes: Vec<Hash> = body.iter().map(|t| t.hash()).collect();
                self.put_history(&mut batch, &genesis, &header.header, &body, &hashes)?;
            }
            self.write(batch)?;
            from = to.saturating_add(1);
        }
        Ok(())
    }
}

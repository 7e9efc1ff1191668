//! The context a block is checked in: ancestors' timestamps (median time
//! past), ASERT's anchor and the required target, read through the store
//! or the side pool for a fork's own ancestry.

use super::*;

impl Chain {
    /// A stored header with its cumulative work.
    pub fn header_with_work(&self, hash: &Hash) -> Result<Option<(Header, U256)>, StoreError> {
        Ok(self
            .store
            .header(hash)?
            .map(|s| (s.header, U256::from_big_endian(&s.total_work))))
    }

    /// Timestamps of `parent` and up to ten of its ancestors, oldest first
    /// (the median-time-past window of a child of `parent`).
    pub fn recent_timestamps(&self, parent: &Header) -> Result<Vec<Timestamp>, StoreError> {
        let mut timestamps = Vec::with_capacity(MEDIAN_TIME_SPAN);
        timestamps.push(parent.timestamp);
        let mut cursor = parent.clone();
        while timestamps.len() < MEDIAN_TIME_SPAN && cursor.number > 0 {
            // A fork's ancestors may wait in the side pool, not the store.
            let prev = self
                .ancestor(&cursor.parent_hash)?
                .ok_or_else(|| StoreError::Corrupt {
                    what: format!("ancestor {} of {}", cursor.parent_hash, parent.hash()),
                    message: "missing".into(),
                })?;
            timestamps.push(prev.timestamp);
            cursor = prev;
        }
        timestamps.reverse();
        Ok(timestamps)
    }

    /// The context a child of `parent` is checked in, at clock `now`.
    pub fn context_for(&self, parent: &Header, now: Timestamp) -> Result<ChainContext, StoreError> {
        let timestamps = self.recent_timestamps(parent)?;
        let median = consensus::median_time_past(&timestamps);
        Ok(ChainContext {
            parent: parent.clone(),
            median_time_past: median,
            expected_target: self.next_target(parent)?,
            now,
        })
    }

    /// A stored header, or a side-pool block's header.
    pub(super) fn ancestor(&self, hash: &Hash) -> Result<Option<Header>, StoreError> {
        if let Some(b) = self.side.lock().blocks.get(hash) {
            return Ok(Some(b.block.header.clone()));
        }
        Ok(self.store.header(hash)?.map(|s| s.header))
    }

    /// The timestamp of block 1 on `parent`'s own branch: ASERT's anchor.
    /// A branch that forks at genesis has its own block 1, so the walk goes
    /// back through off-canonical ancestors (the side pool, at most
    /// [`MAX_SIDE_BLOCKS`] steps) until it meets the canonical chain.
    pub fn anchor_timestamp(&self, parent: &Header) -> Result<Timestamp, StoreError> {
        let mut cursor = parent.clone();
        for _ in 0..=MAX_SIDE_BLOCKS {
            if cursor.number <= 1 {
                return Ok(cursor.timestamp);
            }
            if self.store.canonical_hash(cursor.number)? == Some(cursor.hash()) {
                break;
            }
            let prev = self
                .side
                .lock()
                .blocks
                .get(&cursor.parent_hash)
                .map(|b| b.block.header.clone());
            cursor = match prev {
                Some(h) => h,
                None => match self.store.header(&cursor.parent_hash)? {
                    Some(stored) => stored.header,
                    None => break,
                },
            };
        }
        Ok(self
            .header_by_number(1)?
            .map(|h| h.timestamp)
            .unwrap_or(parent.timestamp))
    }

    /// The target required of a child of `parent`.
    pub fn next_target(&self, parent: &Header) -> Result<Target, StoreError> {
        let anchor_timestamp = if parent.number >= 1 {
            self.anchor_timestamp(parent)?
        } else {
            parent.timestamp
        };
        Ok(consensus::next_target(
            &self.params,
            RetargetInput {
                parent_number: parent.number,
                parent_timestamp: parent.timestamp,
                anchor_timestamp,
            },
        ))
    }
}

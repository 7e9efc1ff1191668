//! The context a block is checked in: ancestors' timestamps (median time
//! past), ASERT's anchor and the required target, read through the block
//! index, which holds a fork's own ancestry as well as the canonical chain.

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

    /// A header of the block index, canonical or not.
    pub(super) fn ancestor(&self, hash: &Hash) -> Result<Option<Header>, StoreError> {
        Ok(self.store.header(hash)?.map(|s| s.header))
    }

    /// The timestamp of block 1 on `parent`'s own branch: ASERT's anchor.
    /// A branch that forks at genesis has its own block 1, so the walk goes
    /// back through off-canonical ancestors until it meets the canonical
    /// chain. Every block of a branch has its parent's anchor, so the
    /// answer is cached per off-canonical block and the walk stops at the
    /// first cached ancestor: importing a branch of n blocks costs O(n)
    /// reads in all, not O(n²).
    pub fn anchor_timestamp(&self, parent: &Header) -> Result<Timestamp, StoreError> {
        let mut cursor = parent.clone();
        let mut walked = Vec::new();
        let anchor = loop {
            if cursor.number <= 1 {
                break cursor.timestamp;
            }
            let hash = cursor.hash();
            if self.store.canonical_hash(cursor.number)? == Some(hash) {
                break self
                    .header_by_number(1)?
                    .map(|h| h.timestamp)
                    .unwrap_or(parent.timestamp);
            }
            if let Some(anchor) = self.anchors.lock().get(&hash).copied() {
                break anchor;
            }
            walked.push(hash);
            cursor = match self.store.header(&cursor.parent_hash)? {
                Some(stored) => stored.header,
                None => {
                    return Err(StoreError::Corrupt {
                        what: format!("ancestor {} of {}", cursor.parent_hash, hash),
                        message: "missing from the block index".into(),
                    });
                }
            };
        };
        if !walked.is_empty() {
            let mut anchors = self.anchors.lock();
            if anchors.len().saturating_add(walked.len()) > MAX_CACHED_ANCHORS {
                anchors.clear();
            }
            for hash in walked.into_iter().take(MAX_CACHED_ANCHORS) {
                anchors.insert(hash, anchor);
            }
        }
        Ok(anchor)
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

//! The format version check at open, and the in-place upgrade of a
//! version 4 database (see [`FORMAT_VERSION`]).

use super::*;

impl RocksStore {
    pub(super) fn check_format_version(&self) -> StoreResult<()> {
        let _guard = self.write_lock.lock();
        let meta = self.cf(CF_META)?;
        match self.get(meta, META_FORMAT_VERSION)? {
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_le_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        what: "meta format_version".into(),
                        message: format!("expected 4 bytes, found {}", bytes.len()),
                    })?;
                if found == FORMAT_VERSION {
                    return Ok(());
                }
                if found == 4 {
                    // Version 5 only added the history index.
                    self.build_history()?;
                    let mut batch = WriteBatch::default();
                    batch.put_cf(meta, META_FORMAT_VERSION, FORMAT_VERSION.to_le_bytes());
                    return self.write(batch);
                }
                Err(StoreError::FormatVersion {
                    path: self.path.clone(),
                    found,
                    expected: FORMAT_VERSION,
                })
            }
            None => {
                if let Some(name) = self.first_non_empty_cf()? {
                    return Err(StoreError::Corrupt {
                        what: "meta format_version".into(),
                        message: format!(
                            "the record is missing although column family `{name}` holds data"
                        ),
                    });
                }
                let mut batch = WriteBatch::default();
                batch.put_cf(meta, META_FORMAT_VERSION, FORMAT_VERSION.to_le_bytes());
                self.write(batch)
            }
        }
    }

    fn first_non_empty_cf(&self) -> StoreResult<Option<&'static str>> {
        for name in COLUMN_FAMILIES {
            let mut it = self.db.raw_iterator_cf(self.cf(name)?);
            it.seek_to_first();
            if it.valid() {
                return Ok(Some(name));
            }
            it.status().map_err(|e| self.backend(e))?;
        }
        Ok(None)
    }
}

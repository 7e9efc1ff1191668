//! A small durable key-value store for the CDN services (RocksDB): the
//! publisher's catalog, counters and escrow secrets; the cache's hires and
//! tickets. Values are SCALE; every write that moves money or reserves a
//! number is synced before the caller acts on it.

use parity_scale_codec::{Decode, Encode};
use rocksdb::{BlockBasedOptions, Cache, DB, IteratorMode, Options, WriteBatch, WriteOptions};
use std::path::{Path, PathBuf};

/// The block cache of a CDN database (tables' data, index and filter
/// blocks).
const KV_BLOCK_CACHE_BYTES: usize = 16 << 20;

/// A failed store operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CDN database at {path}: {message}")]
pub struct KvError {
    /// The database directory.
    pub path: String,
    /// What failed.
    pub message: String,
}

/// A RocksDB database of SCALE values.
#[derive(Debug)]
pub struct Kv {
    db: DB,
    path: PathBuf,
}

impl Kv {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Kv, KvError> {
        std::fs::create_dir_all(path).map_err(|e| KvError {
            path: path.display().to_string(),
            message: format!("cannot create the directory: {e}"),
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_max_open_files(256);
        // Bounded memory: RocksDB's default memtable is 64 MiB (and up to
        // two of them); a cache writes a ticket record per chunk served, so
        // its memtable alone would take 64–128 MiB before a flush. 8 MiB
        // memtables flush often enough and keep a role's RSS flat.
        opts.set_write_buffer_size(8 << 20);
        opts.set_max_write_buffer_number(2);
        // Index and filter blocks live in one bounded block cache instead
        // of beside every open table file, where they grow with the number
        // of tables, that is with the history of tickets served.
        let cache = Cache::new_lru_cache(KV_BLOCK_CACHE_BYTES);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        opts.set_block_based_table_factory(&table);
        let db = DB::open(&opts, path).map_err(|e| KvError {
            path: path.display().to_string(),
            message: format!(
                "cannot open ({e}); is another cachecash process using this directory?"
            ),
        })?;
        Ok(Kv {
            db,
            path: path.to_path_buf(),
        })
    }

    /// What the database holds in memory now (memtables, block cache,
    /// table readers), for the metrics.
    pub fn memory(&self) -> crate::storage::DbMemory {
        crate::storage::rocks::usage::db_memory(&self.db, &[])
    }

    fn err(&self, message: String) -> KvError {
        KvError {
            path: self.path.display().to_string(),
            message,
        }
    }

    /// Reads and decodes a value.
    pub fn get<T: Decode>(&self, key: &[u8]) -> Result<Option<T>, KvError> {
        match self
            .db
            .get_pinned(key)
            .map_err(|e| self.err(e.to_string()))?
        {
            None => Ok(None),
            Some(bytes) => T::decode(&mut &bytes[..])
                .map(Some)
                .map_err(|e| self.err(format!("corrupt value under {}: {e}", hex::encode(key)))),
        }
    }

    /// Whether a key exists.
    pub fn contains(&self, key: &[u8]) -> Result<bool, KvError> {
        Ok(self
            .db
            .get_pinned(key)
            .map_err(|e| self.err(e.to_string()))?
            .is_some())
    }

    /// Writes values atomically; `sync` waits for the write-ahead log to
    /// reach the disk.
    pub fn put_all(&self, items: &[(&[u8], Vec<u8>)], sync: bool) -> Result<(), KvError> {
        let mut batch = WriteBatch::default();
        for (k, v) in items {
            batch.put(k, v);
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db
            .write_opt(batch, &opts)
            .map_err(|e| self.err(e.to_string()))
    }

    /// Writes `puts` and removes `deletes` in one atomic batch.
    pub fn write(
        &self,
        puts: &[(&[u8], Vec<u8>)],
        deletes: &[&[u8]],
        sync: bool,
    ) -> Result<(), KvError> {
        let mut batch = WriteBatch::default();
        for (k, v) in puts {
            batch.put(k, v);
        }
        for k in deletes {
            batch.delete(k);
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db
            .write_opt(batch, &opts)
            .map_err(|e| self.err(e.to_string()))
    }

    /// The first key at or after `from` that starts with `prefix`.
    pub fn first_key(&self, prefix: &[u8], from: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let mut iter = self
            .db
            .iterator(IteratorMode::From(from, rocksdb::Direction::Forward));
        match iter.next() {
            Some(item) => {
                let (k, _) = item.map_err(|e| self.err(e.to_string()))?;
                Ok(k.starts_with(prefix).then(|| k.to_vec()))
            }
            None => Ok(None),
        }
    }

    /// Up to `limit` (key, value) pairs under `prefix` whose keys come after
    /// `after` (from the start when `None`), in key order.
    pub fn page<T: Decode>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, KvError> {
        let mut out = Vec::new();
        let from = after.unwrap_or(prefix);
        let iter = self
            .db
            .iterator(IteratorMode::From(from, rocksdb::Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(|e| self.err(e.to_string()))?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            if after.is_some_and(|a| &k[..] == a) {
                continue;
            }
            let value = T::decode(&mut &v[..])
                .map_err(|e| self.err(format!("corrupt value under {}: {e}", hex::encode(&k))))?;
            out.push((k.to_vec(), value));
        }
        Ok(out)
    }

    /// Writes one value.
    pub fn put<T: Encode>(&self, key: &[u8], value: &T, sync: bool) -> Result<(), KvError> {
        self.put_all(&[(key, value.encode())], sync)
    }

    /// Syncs the write-ahead log to disk: writes made with `sync = false`
    /// survive a process crash at once (they are in the OS's buffers) and a
    /// power loss from here on.
    pub fn sync_wal(&self) -> Result<(), KvError> {
        self.db.flush_wal(true).map_err(|e| self.err(e.to_string()))
    }

    /// Deletes a key.
    pub fn delete(&self, key: &[u8]) -> Result<(), KvError> {
        self.db.delete(key).map_err(|e| self.err(e.to_string()))
    }

    /// Every (key, value) whose key starts with `prefix`, in key order.
    pub fn scan<T: Decode>(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>, KvError> {
        let mut out = Vec::new();
        self.for_each(prefix, |k, v: T| out.push((k.to_vec(), v)))?;
        Ok(out)
    }

    /// Calls `f` on every record under `prefix`, in key order, without
    /// collecting them: memory stays flat however many there are.
    pub fn for_each<T: Decode>(
        &self,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], T),
    ) -> Result<(), KvError> {
        let iter = self
            .db
            .iterator(IteratorMode::From(prefix, rocksdb::Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(|e| self.err(e.to_string()))?;
            if !k.starts_with(prefix) {
                break;
            }
            let value = T::decode(&mut &v[..])
                .map_err(|e| self.err(format!("corrupt value under {}: {e}", hex::encode(&k))))?;
            f(&k, value);
        }
        Ok(())
    }

    /// Counts the keys under `prefix`.
    pub fn count(&self, prefix: &[u8]) -> Result<u64, KvError> {
        let mut n = 0u64;
        let iter = self
            .db
            .iterator(IteratorMode::From(prefix, rocksdb::Direction::Forward));
        for item in iter {
            let (k, _) = item.map_err(|e| self.err(e.to_string()))?;
            if !k.starts_with(prefix) {
                break;
            }
            n = n.saturating_add(1);
        }
        Ok(n)
    }
}

/// Concatenates key parts.
pub fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

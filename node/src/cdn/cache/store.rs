//! The cache's chunk store: plaintext chunks on disk, addressed by chunk id
//! (their manifest digest), under a byte quota with least-recently-used
//! eviction.
//!
//! # Invariants
//!
//! - The bytes on disk never exceed the quota: room is made (evicting the
//!   least recently used chunks) before a chunk is written, and a chunk
//!   larger than the quota is served but not kept.
//! - A chunk is written to a temporary file and renamed into place, so a
//!   crash leaves either the whole chunk or none; leftovers are removed at
//!   open.
//! - Only chunks whose bytes hash to their id are inserted (the caller
//!   checks against the manifest digest before [`ChunkStore::insert`]).
//! - The index lives in memory and is rebuilt from the directory at open,
//!   oldest modification first, so the store survives restarts; recency
//!   within a run is exact.

use cachecash_runtime::Hash;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<Hash, (u64, u64)>,
    order: BTreeMap<u64, Hash>,
    tick: u64,
    used: u64,
}

impl Index {
    fn touch(&mut self, id: &Hash) -> bool {
        let Some((size, tick)) = self.entries.get(id).copied() else {
            return false;
        };
        self.order.remove(&tick);
        self.tick = self.tick.saturating_add(1);
        self.order.insert(self.tick, *id);
        self.entries.insert(*id, (size, self.tick));
        true
    }

    fn add(&mut self, id: Hash, size: u64) {
        self.tick = self.tick.saturating_add(1);
        self.order.insert(self.tick, id);
        self.entries.insert(id, (size, self.tick));
        self.used = self.used.saturating_add(size);
    }

    fn remove_oldest(&mut self) -> Option<Hash> {
        let (_, id) = self.order.pop_first()?;
        if let Some((size, _)) = self.entries.remove(&id) {
            self.used = self.used.saturating_sub(size);
        }
        Some(id)
    }
}

/// What the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreUsage {
    /// Chunks held.
    pub chunks: u64,
    /// Bytes held.
    pub bytes: u64,
    /// The quota.
    pub quota: u64,
    /// Chunks evicted since start.
    pub evictions: u64,
}

/// Chunks on disk under a quota.
#[derive(Debug)]
pub struct ChunkStore {
    dir: PathBuf,
    quota: u64,
    index: Mutex<Index>,
    evictions: std::sync::atomic::AtomicU64,
}

fn parse_id(name: &str) -> Option<Hash> {
    let bytes = hex::decode(name).ok()?;
    Some(Hash(bytes.try_into().ok()?))
}

impl ChunkStore {
    /// Opens the store in `dir`, indexing what is there and evicting down
    /// to `quota` bytes.
    pub fn open(dir: &Path, quota: u64) -> std::io::Result<ChunkStore> {
        std::fs::create_dir_all(dir)?;
        let mut found: Vec<(std::time::SystemTime, Hash, u64)> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            let meta = entry.metadata()?;
            match parse_id(&name) {
                Some(id) if meta.is_file() => {
                    let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                    found.push((modified, id, meta.len()));
                }
                // Temporary files of interrupted writes.
                _ if name.ends_with(".tmp") => std::fs::remove_file(entry.path())?,
                _ => {}
            }
        }
        found.sort_by_key(|(t, _, _)| *t);
        let store = ChunkStore {
            dir: dir.to_path_buf(),
            quota,
            index: Mutex::new(Index::default()),
            evictions: Default::default(),
        };
        {
            let mut index = store.index.lock();
            for (_, id, size) in found {
                index.add(id, size);
            }
        }
        store.make_room(0)?;
        Ok(store)
    }

    fn path(&self, id: &Hash) -> PathBuf {
        self.dir.join(hex::encode(id.0))
    }

    /// Evicts least recently used chunks until `incoming` more bytes fit.
    fn make_room(&self, incoming: u64) -> std::io::Result<()> {
        loop {
            let victim = {
                let mut index = self.index.lock();
                if index.used.saturating_add(incoming) <= self.quota {
                    return Ok(());
                }
                index.remove_oldest()
            };
            let Some(id) = victim else { return Ok(()) };
            self.evictions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match std::fs::remove_file(self.path(&id)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads a chunk, marking it recently used; `None` on a miss.
    pub fn get(&self, id: &Hash) -> std::io::Result<Option<Vec<u8>>> {
        if !self.index.lock().touch(id) {
            return Ok(None);
        }
        match std::fs::read(self.path(id)) {
            Ok(data) => Ok(Some(data)),
            // Evicted meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores a chunk already checked against its id. Returns false when it
    /// is larger than the whole quota (it is then not kept).
    pub fn insert(&self, id: &Hash, data: &[u8]) -> std::io::Result<bool> {
        let size = data.len() as u64;
        if size > self.quota {
            return Ok(false);
        }
        if self.index.lock().touch(id) {
            return Ok(true);
        }
        self.make_room(size)?;
        let tmp = self.dir.join(format!("{}.tmp", hex::encode(id.0)));
        std::fs::write(&tmp, data)?;
        std::fs::rename(&tmp, self.path(id))?;
        let mut index = self.index.lock();
        if index.entries.contains_key(id) {
            return Ok(true);
        }
        index.add(*id, size);
        // Concurrent inserts may have raced past the quota: settle now.
        let over = index.used > self.quota;
        drop(index);
        if over {
            self.make_room(0)?;
        }
        Ok(true)
    }

    /// Usage figures.
    pub fn usage(&self) -> StoreUsage {
        let index = self.index.lock();
        StoreUsage {
            chunks: index.entries.len() as u64,
            bytes: index.used,
            quota: self.quota,
            evictions: self.evictions.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Whether a chunk is held (without touching it).
    pub fn contains(&self, id: &Hash) -> bool {
        self.index.lock().entries.contains_key(id)
    }

    /// Bytes actually on disk in the store directory (for tests and checks).
    pub fn disk_bytes(&self) -> std::io::Result<u64> {
        let mut total = 0u64;
        for entry in std::fs::read_dir(&self.dir)? {
            let meta = entry?.metadata()?;
            if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Hash {
        Hash([n; 32])
    }

    #[test]
    fn filling_past_the_quota_evicts_the_least_recently_used_and_never_exceeds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 300).unwrap();
        for n in 0..3 {
            assert!(store.insert(&id(n), &[n; 100]).unwrap());
        }
        // Touch 0, so 1 is now the oldest.
        assert_eq!(store.get(&id(0)).unwrap().unwrap(), vec![0; 100]);
        store.insert(&id(3), &[3; 100]).unwrap();
        assert!(!store.contains(&id(1)));
        assert!(store.contains(&id(0)) && store.contains(&id(2)) && store.contains(&id(3)));
        for n in 4..20 {
            store.insert(&id(n), &[n; 100]).unwrap();
            assert!(store.usage().bytes <= 300);
            assert!(store.disk_bytes().unwrap() <= 300);
        }
        assert!(!store.insert(&id(99), &[0; 301]).unwrap());
        assert_eq!(store.usage().evictions, 17);
    }

    #[test]
    fn the_store_survives_a_restart_and_drops_torn_writes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = ChunkStore::open(dir.path(), 1000).unwrap();
            store.insert(&id(1), b"hello").unwrap();
        }
        std::fs::write(dir.path().join("ab.tmp"), b"torn").unwrap();
        let store = ChunkStore::open(dir.path(), 1000).unwrap();
        assert_eq!(store.get(&id(1)).unwrap().unwrap(), b"hello");
        assert!(!dir.path().join("ab.tmp").exists());
        // A smaller quota at restart evicts down to it.
        drop(store);
        let store = ChunkStore::open(dir.path(), 2).unwrap();
        assert_eq!(store.usage().chunks, 0);
    }
}

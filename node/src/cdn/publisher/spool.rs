//! The publisher's spool: the files an HTTP origin's objects are pulled
//! into, bounded by a quota.
//!
//! Each object pulled from an HTTP origin is written to one file named by
//! its object id (a directory origin is read in place and never spooled).
//! Without a bound the spool would grow to the size of everything the
//! origin ever served. The spool keeps, per file, its size and when it was
//! last used (a session opened on the object, or a cache filled a chunk of
//! it); after every pull it deletes the least recently used files until the
//! total is back under the quota.
//!
//! A file in use must not vanish under a running session, so only files
//! idle for at least `min_idle` are evicted. If every file is busier than
//! that, the spool stays over its quota for a while (logged) rather than
//! break fetches in progress. An evicted object keeps its catalog entry;
//! the next session for it finds the file gone and pulls it again in full.
//!
//! Invariant: `used` is the sum of the sizes in `files`, and every file in
//! the map exists on disk unless something outside the node removed it.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Files {
    files: HashMap<PathBuf, (u64, Instant)>,
    used: u64,
}

/// The spool directory and its bookkeeping.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    quota: u64,
    min_idle: Duration,
    state: Mutex<Files>,
}

impl Spool {
    /// Opens (creating) the spool in `dir`, bounded by `quota` bytes, never
    /// evicting a file used within `min_idle`. Partial files left by a
    /// crash mid-pull are removed; the others are taken as just used.
    pub fn open(dir: &Path, quota: u64, min_idle: Duration) -> Result<Spool, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the spool directory {}: {e}", dir.display()))?;
        let now = Instant::now();
        let mut files = HashMap::new();
        let mut used = 0u64;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the spool directory {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if let Ok(meta) = entry.metadata()
                && meta.is_file()
            {
                used = used.saturating_add(meta.len());
                files.insert(path, (meta.len(), now));
            }
        }
        let spool = Spool {
            dir: dir.to_path_buf(),
            quota,
            min_idle,
            state: Mutex::new(Files { files, used }),
        };
        spool.enforce();
        Ok(spool)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.state.lock().used
    }

    /// Marks `path` used now (no effect on files the spool does not hold).
    pub fn touch(&self, path: &Path) {
        if let Some(f) = self.state.lock().files.get_mut(path) {
            f.1 = Instant::now();
        }
    }

    /// Moves a finished pull from `tmp` to `path` (`size` bytes) and
    /// records it, then evicts down to the quota. The rename happens under
    /// the spool's lock, so no eviction can pick the old file at `path` and
    /// delete the new one.
    pub fn commit(&self, tmp: &Path, path: &Path, size: u64) -> std::io::Result<()> {
        {
            let mut s = self.state.lock();
            std::fs::rename(tmp, path)?;
            if let Some((old, _)) = s.files.insert(path.to_path_buf(), (size, Instant::now())) {
                s.used = s.used.saturating_sub(old);
            }
            s.used = s.used.saturating_add(size);
        }
        self.enforce();
        Ok(())
    }

    /// Deletes the least recently used idle files until the quota holds.
    fn enforce(&self) {
        let mut s = self.state.lock();
        while s.used > self.quota {
            let now = Instant::now();
            let victim = s
                .files
                .iter()
                .filter(|(_, (_, used))| now.duration_since(*used) >= self.min_idle)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(p, (size, _))| (p.clone(), *size));
            let Some((path, size)) = victim else {
                tracing::warn!(target: "cachecash::cdn", used = s.used, quota = self.quota, "the spool is over its quota, but every file was used within {:?}; evicting later", self.min_idle);
                return;
            };
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(target: "cachecash::cdn", path = %path.display(), "cannot evict a spool file: {e}");
                return;
            }
            s.files.remove(&path);
            s.used = s.used.saturating_sub(size);
            tracing::debug!(target: "cachecash::cdn", path = %path.display(), size, "evicted from the spool");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, size: usize) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, vec![7u8; size]).unwrap();
        p
    }

    /// Pulls `name` (`size` bytes) into the spool, as the origin client does.
    fn pull(spool: &Spool, name: &str, size: usize) -> PathBuf {
        let tmp = write(spool.dir(), &format!("{name}.1.tmp"), size);
        let path = spool.dir().join(name);
        spool.commit(&tmp, &path, size as u64).unwrap();
        path
    }

    #[test]
    fn the_least_recently_used_files_go_first_and_the_quota_holds() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 100, Duration::ZERO).unwrap();
        let a = pull(&spool, "a", 40);
        let b = pull(&spool, "b", 40);
        // a is used again: b is now the least recently used.
        spool.touch(&a);
        let c = pull(&spool, "c", 40);
        assert!(a.exists() && !b.exists() && c.exists());
        assert_eq!(spool.used(), 80);
        // A new pull of c replaces the old size.
        pull(&spool, "c", 50);
        assert_eq!(spool.used(), 90);
    }

    #[test]
    fn files_in_use_are_kept_even_over_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 50, Duration::from_secs(3600)).unwrap();
        let a = pull(&spool, "a", 40);
        let b = pull(&spool, "b", 40);
        assert!(a.exists() && b.exists(), "both used within min_idle");
        assert_eq!(spool.used(), 80);
    }

    #[test]
    fn reopening_drops_partial_pulls_and_enforces_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x.123.tmp", 10);
        write(dir.path(), "a", 60);
        write(dir.path(), "b", 60);
        let spool = Spool::open(dir.path(), 100, Duration::ZERO).unwrap();
        assert!(!dir.path().join("x.123.tmp").exists());
        assert!(spool.used() <= 100, "{}", spool.used());
    }
}

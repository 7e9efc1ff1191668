//! The publisher's catalog: object id → path, version, signed manifest,
//! validators, freshness and the file holding the bytes. Persisted in the
//! publisher's database, so fills and sessions work across restarts.
//!
//! Resolving a path returns a fresh entry, pulling or revalidating at the
//! origin when needed. Concurrent resolutions of one path share one pull:
//! each path has a lock, taken around the freshness check and the pull.

use super::super::kv::{Kv, KvError, key};
use super::super::unix_now;
use super::origin::{
    OriginClient, OriginError, Pulled, Validators, check_path, freshness, object_id,
};
use cachecash_cdn::manifest::{ObjectId, SignedManifest};
use cachecash_cdn::messages::ErrorKind;
use ed25519_dalek::SigningKey;
use parity_scale_codec::{Decode, Encode};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// One object in the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CatalogEntry {
    /// Its path at the origin.
    pub path: String,
    /// Version, counted from 1; bumped whenever the content changes.
    pub version: u64,
    /// The manifest, signed by the publisher.
    pub manifest: SignedManifest,
    /// Origin `ETag`.
    pub etag: String,
    /// Origin `Last-Modified`.
    pub last_modified: String,
    /// Origin `Content-Type`.
    pub content_type: String,
    /// Origin `Cache-Control`.
    pub cache_control: String,
    /// When it was last pulled or revalidated (Unix seconds).
    pub checked_at: u64,
    /// The file holding the bytes.
    pub file: String,
}

impl CatalogEntry {
    /// The object id.
    pub fn object(&self) -> ObjectId {
        self.manifest.manifest.object
    }

    fn validators(&self) -> Validators {
        Validators {
            etag: self.etag.clone(),
            last_modified: self.last_modified.clone(),
            content_type: self.content_type.clone(),
            cache_control: self.cache_control.clone(),
        }
    }

    /// Where the bytes are.
    pub fn file(&self) -> PathBuf {
        PathBuf::from(&self.file)
    }
}

/// The catalog.
#[derive(Debug)]
pub struct Catalog {
    kv: Arc<Kv>,
    origin: OriginClient,
    key: Arc<SigningKey>,
    default_max_age: u64,
    pulls: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn entry_key(object: &ObjectId) -> Vec<u8> {
    key(&[b"obj/", &object.0])
}

impl Catalog {
    /// A catalog over `kv`, pulling from `origin`, signing manifests with `key`.
    pub fn new(
        kv: Arc<Kv>,
        origin: OriginClient,
        key: Arc<SigningKey>,
        default_max_age: u64,
    ) -> Catalog {
        Catalog {
            kv,
            origin,
            key,
            default_max_age,
            pulls: Default::default(),
        }
    }

    /// The entry of an object id, as stored.
    pub fn get(&self, object: &ObjectId) -> Result<Option<CatalogEntry>, KvError> {
        self.kv.get(&entry_key(object))
    }

    /// Every entry.
    pub fn entries(&self) -> Result<Vec<CatalogEntry>, KvError> {
        Ok(self
            .kv
            .scan::<CatalogEntry>(b"obj/")?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }

    /// Marks the entry's spool file used (no effect for a directory origin).
    pub fn touch(&self, e: &CatalogEntry) {
        self.origin.spool().touch(&e.file());
    }

    fn is_fresh(&self, e: &CatalogEntry) -> bool {
        if matches!(self.origin.origin(), super::origin::Origin::Dir(_)) {
            // A stat per request is cheap: directory objects are always checked.
            return false;
        }
        let f = freshness(&e.cache_control, self.default_max_age);
        if f.immutable {
            return true;
        }
        !f.no_store && unix_now() < e.checked_at.saturating_add(f.max_age)
    }

    /// A fresh entry for `path`, pulling or revalidating as needed.
    pub async fn resolve(&self, path: &str) -> Result<CatalogEntry, OriginError> {
        check_path(path)?;
        let object = object_id(path);
        let lock = self
            .pulls
            .lock()
            .entry(path.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        let result = async {
            let _guard = lock.lock().await;
            let held = self.get(&object).map_err(internal)?;
            if let Some(e) = &held
                && self.is_fresh(e)
                && e.file().exists()
            {
                self.touch(e);
                return Ok(e.clone());
            }
            let validators = held
                .as_ref()
                .filter(|e| e.file().exists())
                .map(|e| e.validators());
            match self.origin.pull(path, validators.as_ref()).await? {
                Pulled::NotModified => {
                    let mut e = held.ok_or_else(|| internal("304 without a held entry"))?;
                    self.touch(&e);
                    e.checked_at = unix_now();
                    self.kv.put(&entry_key(&object), &e, false).map_err(internal)?;
                    Ok(e)
                }
                Pulled::Fresh {
                    manifest,
                    validators,
                    file,
                } => {
                    let version = match &held {
                        Some(h) if h.manifest.manifest == *manifest => h.version,
                        Some(h) => h.version.saturating_add(1),
                        None => 1,
                    };
                    let e = CatalogEntry {
                        path: path.to_string(),
                        version,
                        manifest: (*manifest).sign(&self.key),
                        etag: validators.etag,
                        last_modified: validators.last_modified,
                        content_type: validators.content_type,
                        cache_control: validators.cache_control,
                        checked_at: unix_now(),
                        file: file.display().to_string(),
                    };
                    self.kv.put(&entry_key(&object), &e, true).map_err(internal)?;
                    tracing::debug!(target: "cachecash::cdn", path, version, size = e.manifest.manifest.size, "catalogued");
                    Ok(e)
                }
            }
        }
        .await;
        let mut pulls = self.pulls.lock();
        if pulls.get(path).is_some_and(|l| Arc::strong_count(l) <= 2) {
            pulls.remove(path);
        }
        result
    }
}

fn internal(e: impl std::fmt::Display) -> OriginError {
    OriginError {
        kind: ErrorKind::Unavailable,
        message: format!("publisher database: {e}"),
    }
}

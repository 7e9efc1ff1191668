//! The publisher's origin: a directory or an HTTP(S) server.
//!
//! Objects are pulled **streamed**: the body is hashed into a manifest
//! piece by piece and spooled to a file on disk, never held in memory, so
//! RAM stays flat in object size. Later reads (puzzle blocks, fills) are
//! positioned reads of the spool file (or of the origin file itself for a
//! directory origin).
//!
//! # Not an open proxy
//!
//! A path must start with `/`, hold only URL path characters, and have no
//! `.` or `..` segment, no empty segment, no backslash, and no encoded
//! `.`, `/` or `\`. It is appended to the configured base; it can never
//! name another host or escape the base directory.

use super::super::unix_now;
use cachecash_cdn::manifest::{ManifestBuilder, ObjectId};
use cachecash_cdn::messages::ErrorKind;
use futures::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where objects come from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Files under a directory.
    Dir(PathBuf),
    /// An HTTP(S) base URL (no trailing slash needed).
    Http(String),
}

impl Origin {
    /// Parses `--origin`: an `http://` or `https://` URL, else a directory.
    pub fn parse(s: &str) -> Result<Origin, String> {
        if s.starts_with("http://") || s.starts_with("https://") {
            let url = reqwest::Url::parse(s).map_err(|e| format!("--origin {s}: {e}"))?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(format!("--origin {s}: a base URL has no query or fragment"));
            }
            Ok(Origin::Http(s.trim_end_matches('/').to_string()))
        } else {
            let p = PathBuf::from(s);
            if !p.is_dir() {
                return Err(format!(
                    "--origin {s} is neither an http(s):// URL nor an existing directory"
                ));
            }
            Ok(Origin::Dir(p))
        }
    }
}

/// A failed pull.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OriginError {
    /// How the client should see it.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
}

fn bad(message: String) -> OriginError {
    OriginError {
        kind: ErrorKind::BadRequest,
        message,
    }
}

fn upstream(message: String) -> OriginError {
    OriginError {
        kind: ErrorKind::Upstream,
        message,
    }
}

/// Checks that `path` is a safe object path (see the module docs).
pub fn check_path(path: &str) -> Result<(), OriginError> {
    if !path.starts_with('/') || path.len() < 2 {
        return Err(bad(format!(
            "object path '{path}' must start with '/' and name a file"
        )));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~/!$&'()*+,;=:@%".contains(c);
    if let Some(c) = path.chars().find(|c| !allowed(*c)) {
        return Err(bad(format!(
            "object path '{}' holds the character {c:?}; paths use URL path characters only",
            path.escape_debug()
        )));
    }
    let lower = path.to_ascii_lowercase();
    for enc in ["%2e", "%2f", "%5c", "%00"] {
        if lower.contains(enc) {
            return Err(bad(format!(
                "object path '{path}' encodes a separator or dot ({enc}); refused"
            )));
        }
    }
    for seg in path[1..].split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(bad(format!(
                "object path '{path}' has an empty, '.' or '..' segment; refused"
            )));
        }
    }
    Ok(())
}

/// An object's id: SHA-256 over a tag and its path.
pub fn object_id(path: &str) -> ObjectId {
    cachecash_runtime::Hash::of_parts(&[b"cachecash/object/v1", path.as_bytes()])
}

/// The validators and freshness an origin gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// `ETag`.
    pub etag: String,
    /// `Last-Modified`.
    pub last_modified: String,
    /// `Content-Type`.
    pub content_type: String,
    /// `Cache-Control`.
    pub cache_control: String,
}

/// Freshness from a `Cache-Control` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Seconds the object stays fresh.
    pub max_age: u64,
    /// Never changes.
    pub immutable: bool,
    /// Must be revalidated on every request.
    pub no_store: bool,
}

/// Parses `Cache-Control` (`max-age`, `immutable`, `no-store`, `no-cache`);
/// `default_max_age` applies when none is given.
pub fn freshness(cache_control: &str, default_max_age: u64) -> Freshness {
    let mut f = Freshness {
        max_age: default_max_age,
        immutable: false,
        no_store: false,
    };
    for d in cache_control
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
    {
        if let Some(v) = d.strip_prefix("max-age=") {
            if let Ok(n) = v.trim_matches('"').parse::<u64>() {
                f.max_age = n;
            }
        } else if d == "immutable" {
            f.immutable = true;
        } else if d == "no-store" || d == "no-cache" {
            f.no_store = true;
            f.max_age = 0;
        }
    }
    f
}

/// The result of a pull.
#[derive(Debug)]
pub enum Pulled {
    /// New content: its manifest (unsigned), validators, and where it is.
    Fresh {
        /// Manifest.
        manifest: Box<cachecash_cdn::Manifest>,
        /// Validators.
        validators: Validators,
        /// Readable copy of the bytes.
        file: PathBuf,
    },
    /// The origin says the held version is current.
    NotModified,
}

/// Pulls objects and reads their bytes.
#[derive(Debug, Clone)]
pub struct OriginClient {
    origin: Origin,
    http: reqwest::Client,
    spool: Arc<super::spool::Spool>,
    chunk_size: u32,
}

impl OriginClient {
    /// A client for `origin`, spooling into `spool`.
    pub fn new(
        origin: Origin,
        spool: Arc<super::spool::Spool>,
        chunk_size: u32,
        timeout: Duration,
    ) -> Result<OriginClient, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(OriginClient {
            origin,
            http,
            spool,
            chunk_size,
        })
    }

    /// The spool.
    pub fn spool(&self) -> &super::spool::Spool {
        &self.spool
    }

    /// The origin.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Pulls `path` (already checked), revalidating against `held` when
    /// given.
    pub async fn pull(&self, path: &str, held: Option<&Validators>) -> Result<Pulled, OriginError> {
        match &self.origin {
            Origin::Dir(root) => self.pull_file(root, path, held).await,
            Origin::Http(base) => self.pull_http(base, path, held).await,
        }
    }

    async fn pull_file(
        &self,
        root: &Path,
        path: &str,
        held: Option<&Validators>,
    ) -> Result<Pulled, OriginError> {
        let file = root.join(&path[1..]);
        let meta = match tokio::fs::metadata(&file).await {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                return Err(OriginError {
                    kind: ErrorKind::NotFound,
                    message: format!("{path} is not a file at the origin"),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OriginError {
                    kind: ErrorKind::NotFound,
                    message: format!("{path} does not exist at the origin"),
                });
            }
            Err(e) => return Err(upstream(format!("origin file {path}: {e}"))),
        };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let etag = format!("\"{:x}-{:x}\"", meta.len(), mtime);
        if held.is_some_and(|h| h.etag == etag) {
            return Ok(Pulled::NotModified);
        }
        let chunk_size = self.chunk_size;
        let object = object_id(path);
        let f = file.clone();
        let manifest = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let mut r = std::fs::File::open(&f).map_err(|e| e.to_string())?;
            let mut b = ManifestBuilder::new(object, chunk_size).map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut r, &mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                b.update(buf.get(..n).unwrap_or_default())
                    .map_err(|e| e.to_string())?;
            }
            b.finish().map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| upstream(e.to_string()))?
        .map_err(|e| upstream(format!("reading {path} at the origin: {e}")))?;
        Ok(Pulled::Fresh {
            manifest: Box::new(manifest),
            validators: Validators {
                etag,
                last_modified: meta
                    .modified()
                    .map(httpdate::fmt_http_date)
                    .unwrap_or_default(),
                content_type: guess_type(path).to_string(),
                cache_control: String::new(),
            },
            file,
        })
    }

    async fn pull_http(
        &self,
        base: &str,
        path: &str,
        held: Option<&Validators>,
    ) -> Result<Pulled, OriginError> {
        let url = format!("{base}{path}");
        let mut req = self.http.get(&url);
        if let Some(h) = held {
            if !h.etag.is_empty() {
                req = req.header(reqwest::header::IF_NONE_MATCH, &h.etag);
            }
            if !h.last_modified.is_empty() {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, &h.last_modified);
            }
        }
        let resp = req.send().await.map_err(|e| {
            upstream(if e.is_timeout() {
                format!("the origin timed out for {path}")
            } else {
                format!("the origin failed for {path}: {e}")
            })
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED && held.is_some() {
            return Ok(Pulled::NotModified);
        }
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(OriginError {
                kind: ErrorKind::NotFound,
                message: format!("{path} does not exist at the origin ({status})"),
            });
        }
        if !status.is_success() {
            return Err(upstream(format!("the origin answered {status} for {path}")));
        }
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.chars()
                        .take(cachecash_cdn::messages::MAX_HEADER)
                        .collect()
                })
                .unwrap_or_default()
        };
        let validators = Validators {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
            content_type: header(reqwest::header::CONTENT_TYPE),
            cache_control: header(reqwest::header::CACHE_CONTROL),
        };
        let object = object_id(path);
        let tmp = self
            .spool
            .dir()
            .join(format!("{}.{}.tmp", hex::encode(object.0), unix_now()));
        let mut out = std::fs::File::create(&tmp)
            .map_err(|e| upstream(format!("cannot spool {path}: {e}")))?;
        let mut builder =
            ManifestBuilder::new(object, self.chunk_size).map_err(|e| upstream(e.to_string()))?;
        let mut body = resp.bytes_stream();
        let result: Result<(), OriginError> = async {
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(|e| {
                    upstream(if e.is_timeout() {
                        format!("the origin timed out while sending {path}")
                    } else {
                        format!("the origin's body for {path} failed: {e}")
                    })
                })?;
                builder
                    .update(&piece)
                    .map_err(|e| upstream(format!("{path}: {e}")))?;
                out.write_all(&piece)
                    .map_err(|e| upstream(format!("cannot spool {path}: {e}")))?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let manifest = builder
            .finish()
            .map_err(|e| upstream(format!("{path}: {e}")))?;
        let file = self.spool.dir().join(hex::encode(object.0));
        out.sync_all()
            .and_then(|()| self.spool.commit(&tmp, &file, manifest.size))
            .map_err(|e| upstream(format!("cannot spool {path}: {e}")))?;
        Ok(Pulled::Fresh {
            manifest: Box::new(manifest),
            validators,
            file,
        })
    }
}

fn guess_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "txt" => "text/plain",
        "json" => "application/json",
        "whl" | "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// Reads `out.len()` bytes at `offset` of `file`.
pub fn read_at(file: &Path, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(file)?;
    f.read_exact_at(out, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_escape_the_origin_are_refused() {
        for p in [
            "",
            "/",
            "x",
            "/../etc/passwd",
            "/a/../../b",
            "/a//b",
            "/./a",
            "/a/%2e%2e/b",
            "/a%2Fb",
            "/a%5cb",
            "/a\\b",
            "/a b",
            "/a?x=1",
            "/a#f",
            "//evil.example/x",
            "/http://x",
            "/a/.",
        ] {
            // "/http://x" has an empty segment after "http:".
            assert!(check_path(p).is_err(), "{p} accepted");
        }
        for p in ["/a", "/dir/file.whl", "/simple/pkg/", "/v1.2/x~y"] {
            if p.ends_with('/') {
                assert!(check_path(p).is_err(), "{p}: a directory is not an object");
            } else {
                assert!(check_path(p).is_ok(), "{p} refused");
            }
        }
    }

    #[test]
    fn cache_control_sets_freshness() {
        assert_eq!(freshness("", 300).max_age, 300);
        let f = freshness("public, max-age=60, immutable", 300);
        assert_eq!((f.max_age, f.immutable, f.no_store), (60, true, false));
        let f = freshness("no-store", 300);
        assert!(f.no_store && f.max_age == 0);
    }
}

//! The client role: fetches an object from a publisher through its caches.
//!
//! # Flow
//!
//! 1. Open a session at the publisher (by peer id). The first answer is the
//!    manifest, checked against the publisher's key: the key in the URL
//!    pins the publisher.
//! 2. Read the paying escrow from this node's own chain: its ticket signer
//!    is the key every bundle must be signed by.
//! 3. For each bundle, concurrently up to the window: check it (addressed to
//!    this client, every L1 and the batch signed by the escrow's signer,
//!    consistent with the manifest, puzzle within this client's work
//!    limits); fetch every chunk from its cache in parallel; remove the
//!    outer layers; solve the puzzle on the blocking pool; open the L2;
//!    remove the inner layers; check every chunk against the manifest; pay
//!    with the secret.
//! 4. Write chunks in order as they complete: memory is bounded by the
//!    window, not the object.
//!
//! # Failover
//!
//! A cache that refuses, stalls past the deadline or sends bytes that fail
//! the puzzle or the manifest is blamed to the publisher (with the hashes of
//! the inner ciphertexts as evidence for corruption); the publisher re-issues
//! the chunks on other caches, and the fetch completes byte-exact.

pub mod bundle;
pub mod conn;

use super::framing::{FrameError, read_msg, write_msg};
use super::ledger::Ledger;
use crate::network::NetworkHandle;
use cachecash_cdn::manifest::Manifest;
use cachecash_cdn::messages::{ErrorKind, OpenRequest, SessionReply, SessionRequest, text};
use cachecash_runtime::AccountId;
use futures::AsyncReadExt;
use libp2p::PeerId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// A client's limits and deadlines.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Bundles in flight.
    pub window: u8,
    /// Deadline for one chunk from one cache.
    pub chunk_timeout: Duration,
    /// Deadline for any answer from the publisher.
    pub session_timeout: Duration,
    /// How long to wait for the escrow to reach this node's chain.
    pub escrow_wait: Duration,
    /// Most puzzle rounds accepted.
    pub max_rounds: u8,
    /// Largest puzzle start range accepted.
    pub max_start_range: u32,
    /// Puzzle solver threads.
    pub solver_threads: usize,
    /// Where to record fetch and puzzle durations (the fetching node's metrics).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Cache links to share across sessions (a gateway); each fetch opens
    /// its own when `None`.
    pub links: Option<Arc<conn::Links>>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            window: 2,
            chunk_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(60),
            escrow_wait: Duration::from_secs(30),
            max_rounds: 8,
            max_start_range: 1 << 16,
            solver_threads: cachecash_cdn::puzzle::default_threads().min(2),
            metrics: None,
            links: None,
        }
    }
}

/// What to fetch.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// The publisher.
    pub publisher: PeerId,
    /// The object's path at the publisher.
    pub path: String,
    /// Byte range `[start, end)`.
    pub range: Option<(u64, u64)>,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The publisher refused or failed.
    #[error("the publisher answered: {message} ({kind:?})")]
    Publisher {
        /// Kind.
        kind: ErrorKind,
        /// Its message.
        message: String,
    },
    /// The publisher could not be reached or went away.
    #[error("publisher link: {0}")]
    Link(String),
    /// The publisher or its caches stopped answering within the deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The publisher sent something invalid.
    #[error("the publisher broke the protocol: {0}")]
    Protocol(String),
    /// The escrow could not be read or is unacceptable.
    #[error("escrow: {0}")]
    Escrow(String),
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// One bundle's timings, in milliseconds (the 2021 experiment's phases).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleTrace {
    /// Bundle sequence.
    pub sequence: u64,
    /// First chunk index.
    pub first_chunk: u64,
    /// Chunks.
    pub chunks: usize,
    /// Since the session opened, when the bundle arrived.
    pub publisher_ms: f64,
    /// Time to first byte, per position.
    pub ttfb_ms: Vec<f64>,
    /// Transfer time, per position.
    pub transfer_ms: Vec<f64>,
    /// Outer decryption.
    pub outer_ms: f64,
    /// Puzzle solve.
    pub puzzle_ms: f64,
    /// Inner decryption.
    pub inner_ms: f64,
    /// Manifest verification.
    pub verify_ms: f64,
}

/// What a fetch did.
#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    /// Object size.
    pub object_size: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Bundles completed.
    pub bundles: u64,
    /// Chunks served per cache.
    pub per_cache: HashMap<AccountId, u64>,
    /// Blames sent, as text.
    pub blames: Vec<String>,
    /// Origin `Content-Type`.
    pub content_type: String,
    /// Origin `ETag`.
    pub etag: String,
    /// Time to the first byte written.
    pub first_byte: Option<Duration>,
    /// Whole fetch.
    pub elapsed: Duration,
    /// Per-bundle phases.
    pub traces: Vec<BundleTrace>,
}

/// Progress a caller can watch (bytes written, object size).
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes written so far.
    pub written: AtomicU64,
    /// Bytes to write (known once the manifest arrives).
    pub total: AtomicU64,
}

/// Waits for an escrow to appear on this node's chain.
async fn wait_escrow(
    ledger: &dyn Ledger,
    id: &cachecash_runtime::microcash::EscrowId,
    wait: Duration,
) -> Result<cachecash_runtime::microcash::Escrow, FetchError> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(e) = ledger
            .escrow(id)
            .map_err(|e| FetchError::Escrow(e.to_string()))?
        {
            return Ok(e);
        }
        if Instant::now() >= deadline {
            return Err(FetchError::Escrow(format!(
                "escrow {id} is not on this node's chain after {wait:?}; let the node sync, or check the publisher"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the publisher said about the object, before any byte moves: enough
/// to answer an HTTP request's headers (the gateway) or to decide not to
/// fetch at all (a conditional request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Whole object size.
    pub size: u64,
    /// The byte range `[start, end)` this session delivers.
    pub range: (u64, u64),
    /// Origin `Content-Type` (may be empty).
    pub content_type: String,
    /// Origin `ETag` (may be empty).
    pub etag: String,
    /// Origin `Last-Modified` (may be empty).
    pub last_modified: String,
    /// Origin `Cache-Control` (may be empty).
    pub cache_control: String,
}

/// A session opened at the publisher: the object is known and the manifest
/// verified; no bundle has been processed yet. Dropping it abandons the
/// session (the publisher sees the stream close).
pub struct Opened {
    rd: futures::io::ReadHalf<libp2p::Stream>,
    wr: futures::io::WriteHalf<libp2p::Stream>,
    info: cachecash_cdn::messages::ObjectInfo,
    layout: cachecash_cdn::manifest::ChunkLayout,
    meta: ObjectMeta,
    publisher: PeerId,
    started: Instant,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("publisher", &self.publisher)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl Opened {
    /// The object's metadata and the range this session delivers.
    pub fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    /// The escrow that pays for this session's bundles.
    pub fn escrow(&self) -> &cachecash_runtime::Hash {
        &self.info.escrow
    }
}

/// Fetches an object into `out`: [`open`], then [`deliver`].
pub async fn fetch<W: tokio::io::AsyncWrite + Unpin>(
    network: &NetworkHandle,
    ledger: Arc<dyn Ledger>,
    request: &FetchRequest,
    out: &mut W,
    options: &FetchOptions,
    progress: Option<Arc<Progress>>,
) -> Result<FetchReport, FetchError> {
    let opened = open(network, ledger.genesis(), request, options).await?;
    deliver(network, ledger, opened, out, options, progress).await
}

/// Opens a session for `request` at its publisher and verifies the
/// manifest against the publisher's key. A request whose range is empty
/// (`start == end`) asks for the metadata only: the publisher issues no
/// bundle.
pub async fn open(
    network: &NetworkHandle,
    genesis: cachecash_runtime::Hash,
    request: &FetchRequest,
    options: &FetchOptions,
) -> Result<Opened, FetchError> {
    let started = Instant::now();
    let t = options.session_timeout;
    let publisher_account = crate::cdn::account_of(&request.publisher).ok_or_else(|| {
        FetchError::Link(format!(
            "{} is not an ed25519 peer id, so it cannot be a cachecash publisher",
            request.publisher
        ))
    })?;
    let open = OpenRequest {
        path: request.path.as_bytes().to_vec(),
        range: request.range,
        window: options.window,
    };
    // A stream dropped by the publisher (its accept queue, or this peer's
    // share of streams, is full) fails at once, and a publisher at its
    // session limit or this peer's request rate answers "unavailable":
    // retry the opening exchange a few times after a back-off.
    let mut attempt = 0u32;
    let (rd, wr, info) = loop {
        match open_session(network, request, &genesis, &open, t).await {
            Ok(v) => break v,
            Err(FetchError::Publisher {
                kind: cachecash_cdn::messages::ErrorKind::Unavailable,
                message,
            }) if attempt < 5 => {
                attempt += 1;
                tracing::debug!(target: "cachecash::cdn", attempt, "publisher unavailable, retrying: {message}");
                tokio::time::sleep(crate::cdn::retry_backoff(attempt + 2)).await;
            }
            Err(FetchError::Link(e)) if attempt < 5 => {
                attempt += 1;
                // Maybe its address is not known yet: look it up.
                network.find_peer(request.publisher);
                tracing::debug!(target: "cachecash::cdn", attempt, "session open failed, retrying: {e}");
                tokio::time::sleep(crate::cdn::retry_backoff(attempt + 2)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let layout = info.manifest.verify(&publisher_account).map_err(|e| {
        FetchError::Protocol(format!("the manifest is not signed by the publisher: {e}"))
    })?;
    let size = info.manifest.manifest.size;
    let range = request.range.unwrap_or((0, size));
    let end_chunk = info.first_chunk.saturating_add(info.chunk_count);
    if info.chunk_count > 0 && end_chunk > layout.count() {
        return Err(FetchError::Protocol("chunk range beyond the object".into()));
    }
    let meta = ObjectMeta {
        size,
        range,
        content_type: text(&info.content_type),
        etag: text(&info.etag),
        last_modified: text(&info.last_modified),
        cache_control: text(&info.cache_control),
    };
    Ok(Opened {
        rd,
        wr,
        info,
        layout,
        meta,
        publisher: request.publisher,
        started,
    })
}

/// Runs an opened session to its end, writing the range in order to `out`.
pub async fn deliver<W: tokio::io::AsyncWrite + Unpin>(
    network: &NetworkHandle,
    ledger: Arc<dyn Ledger>,
    opened: Opened,
    out: &mut W,
    options: &FetchOptions,
    progress: Option<Arc<Progress>>,
) -> Result<FetchReport, FetchError> {
    let Opened {
        mut rd,
        mut wr,
        info,
        layout,
        meta,
        publisher,
        started,
    } = opened;
    let t = options.session_timeout;
    let me = AccountId(network.signing_key().verifying_key().to_bytes());
    let genesis = ledger.genesis();
    let link = |e: FrameError| FetchError::Link(e.to_string());
    let manifest: Arc<Manifest> = Arc::new(info.manifest.manifest.clone());
    let (start, end) = meta.range;
    let end_chunk = info.first_chunk.saturating_add(info.chunk_count);
    let mut report = FetchReport {
        object_size: meta.size,
        content_type: meta.content_type.clone(),
        etag: meta.etag.clone(),
        ..Default::default()
    };
    if let Some(p) = &progress {
        p.total.store(end.saturating_sub(start), Ordering::Relaxed);
    }
    let escrow = wait_escrow(ledger.as_ref(), &info.escrow, options.escrow_wait).await?;
    let ctx = Arc::new(bundle::Context {
        me,
        signer: escrow.terms.signer,
        manifest: manifest.clone(),
        options: options.clone(),
        links: match &options.links {
            Some(l) => l.clone(),
            None => Arc::new(conn::Links::new(
                network.clone(),
                crate::cdn::chunk_protocol(&genesis),
                options.chunk_timeout,
            )),
        },
        network: network.clone(),
        started,
    });

    // Publisher messages arrive on their own task.
    let (replies_tx, mut replies) = mpsc::channel::<Result<SessionReply, FrameError>>(16);
    let reader = tokio::spawn(async move {
        loop {
            let r = read_msg::<_, SessionReply>(&mut rd, Duration::from_secs(24 * 3600)).await;
            let stop = r.is_err();
            if replies_tx.send(r).await.is_err() || stop {
                return;
            }
        }
    });
    let _abort_reader = AbortOnDrop(reader);
    let (outcomes_tx, mut outcomes) = mpsc::channel::<bundle::Outcome>(16);

    let mut next = info.first_chunk;
    let mut ready: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut done = false;
    let mut last_progress = Instant::now();
    let mut stalls = 0usize;
    while !(done && next >= end_chunk) {
        let idle = options
            .session_timeout
            .saturating_sub(last_progress.elapsed());
        tokio::select! {
            msg = replies.recv() => match msg {
                Some(Ok(SessionReply::Bundle(issued))) => {
                    last_progress = Instant::now();
                    let ctx = ctx.clone();
                    let tx = outcomes_tx.clone();
                    tokio::spawn(async move {
                        let outcome = bundle::process(&ctx, *issued).await;
                        let _ = tx.send(outcome).await;
                    });
                }
                Some(Ok(SessionReply::Done)) => done = true,
                Some(Ok(SessionReply::Error { kind, message })) => {
                    if stalls > 0 && stalls == report.blames.len() {
                        // Every blame was a cache that did not answer: the
                        // caches timed out, whatever the publisher concluded.
                        return Err(FetchError::Timeout(format!(
                            "no cache answered in time ({stalls} stalled or unreachable); the publisher gave up: {}",
                            text(&message)
                        )));
                    }
                    return Err(FetchError::Publisher { kind, message: text(&message) });
                }
                Some(Ok(SessionReply::Object(_))) => {
                    return Err(FetchError::Protocol("a second object in one session".into()));
                }
                Some(Err(e)) => {
                    if e.is_violation() {
                        network.ban_peer(publisher, "cdn_malformed", e.to_string());
                    }
                    return Err(FetchError::Link(format!("the publisher's session ended: {e}")));
                }
                None => return Err(FetchError::Link("the publisher's session ended".into())),
            },
            outcome = outcomes.recv() => {
                let Some(outcome) = outcome else { continue };
                last_progress = Instant::now();
                match outcome {
                    bundle::Outcome::Done { sequence, secret, chunks, per_cache, trace } => {
                        write_msg(&mut wr, &SessionRequest::Secret { sequence, secret }, t)
                            .await
                            .map_err(link)?;
                        for c in per_cache {
                            *report.per_cache.entry(c).or_insert(0) += 1;
                        }
                        report.bundles += 1;
                        if let Some(m) = &options.metrics {
                            m.cdn_puzzle_seconds.observe(trace.puzzle_ms / 1000.0);
                        }
                        report.traces.push(*trace);
                        for (index, data) in chunks {
                            ready.insert(index, data);
                        }
                        while let Some(data) = ready.remove(&next) {
                            let offset = layout.chunk_offset(next).unwrap_or(0);
                            let lo = start.saturating_sub(offset).min(data.len() as u64) as usize;
                            let hi = end.saturating_sub(offset).min(data.len() as u64) as usize;
                            let piece = data.get(lo..hi).unwrap_or_default();
                            out.write_all(piece).await?;
                            if report.first_byte.is_none() && !piece.is_empty() {
                                report.first_byte = Some(started.elapsed());
                            }
                            report.bytes += piece.len() as u64;
                            if let Some(p) = &progress {
                                p.written.fetch_add(piece.len() as u64, Ordering::Relaxed);
                            }
                            next += 1;
                        }
                    }
                    bundle::Outcome::Failed { sequence, position, fault, reason } => {
                        if matches!(fault, cachecash_cdn::messages::Fault::Stalled) {
                            stalls += 1;
                        }
                        tracing::info!(target: "cachecash::cdn", sequence, position, "blaming a cache: {reason}");
                        report.blames.push(reason);
                        write_msg(&mut wr, &SessionRequest::Blame { sequence, position, fault }, t)
                            .await
                            .map_err(link)?;
                    }
                    bundle::Outcome::Fatal(e) => return Err(e),
                }
            }
            _ = tokio::time::sleep(idle) => {
                return Err(FetchError::Timeout(format!(
                    "no progress for {:?}; the publisher or its caches stopped answering",
                    options.session_timeout
                )));
            }
        }
    }
    out.flush().await?;
    report.elapsed = started.elapsed();
    if let Some(m) = &options.metrics {
        m.cdn_fetch_seconds.observe(report.elapsed.as_secs_f64());
    }
    Ok(report)
}

type Halves = (
    futures::io::ReadHalf<libp2p::Stream>,
    futures::io::WriteHalf<libp2p::Stream>,
    cachecash_cdn::messages::ObjectInfo,
);

async fn open_session(
    network: &NetworkHandle,
    request: &FetchRequest,
    genesis: &cachecash_runtime::Hash,
    open: &OpenRequest,
    t: Duration,
) -> Result<Halves, FetchError> {
    let link = |e: FrameError| FetchError::Link(e.to_string());
    let mut control = network.stream_control();
    let stream = tokio::time::timeout(
        t,
        control.open_stream(request.publisher, crate::cdn::publisher_protocol(genesis)),
    )
    .await
    .map_err(|_| FetchError::Timeout(format!("no answer from {} within {t:?}", request.publisher)))?
    .map_err(|e| {
        FetchError::Link(format!(
            "cannot reach the publisher {}: {e}; check the peer id and that the node can find it (--bootnodes)",
            request.publisher
        ))
    })?;
    let (mut rd, mut wr) = stream.split();
    write_msg(
        &mut wr,
        &cachecash_cdn::messages::ControlRequest::Open(open.clone()),
        t,
    )
    .await
    .map_err(link)?;
    match read_msg::<_, SessionReply>(&mut rd, t)
        .await
        .map_err(link)?
    {
        SessionReply::Object(info) => Ok((rd, wr, *info)),
        SessionReply::Error { kind, message } => Err(FetchError::Publisher {
            kind,
            message: text(&message),
        }),
        other => Err(FetchError::Protocol(format!(
            "expected the object first, got {other:?}"
        ))),
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

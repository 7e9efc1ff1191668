//! The HTTP gateway: plain HTTP/1.1 and HTTP/2 in front of the client
//! role, so that curl, pip or a TUF client fetch through the CDN without
//! knowing it exists.
//!
//! # Requests
//!
//! `GET|HEAD /PUBLISHER/PATH` (PUBLISHER a peer id or an alias), or
//! `/PATH` at the default publisher ([`http::resolve`]). Each request is a
//! client session: the publisher issues bundles, the gateway's node key
//! pays the caches with puzzle solutions, and every chunk is checked
//! against the publisher's signed manifest before a byte of it is sent.
//!
//! # Streaming and bounds
//!
//! The session writes into a bounded in-memory pipe
//! ([`GatewayConfig::pipe_bytes`]) that the response body reads: a slow
//! HTTP client slows the fetch instead of growing memory, and a client that
//! disconnects drops the pipe, which ends the session at the publisher.
//! Headers wait for the first verified bytes, so a fetch that fails before
//! any byte (no cache answers, the origin fails) still gets its own status;
//! a failure after that aborts the body (the client sees a truncated
//! transfer, never a short "complete" one). At most
//! [`GatewayConfig::max_requests`] requests run at once; more get 503.
//!
//! # Freshness
//!
//! The gateway keeps no copy of any object: every request is resolved at
//! the publisher, which revalidates with the origin once the origin's
//! freshness ends (directory origins on every request). So nothing is
//! served past the origin's freshness, which TUF's `timestamp.json`
//! depends on. Validators and `Cache-Control` are the origin's.
//!
//! HEAD, `Range` and conditional requests first open a metadata-only
//! session (an empty range: the publisher issues no bundle) to learn the
//! size and validators; a `304`, a `416` or a HEAD ends there.

pub mod http;

use crate::cdn::client::{self, FetchError, FetchOptions, FetchRequest, ObjectMeta};
use crate::cdn::ledger::{ChainLedger, Ledger};
use crate::network::NetworkHandle;
use crate::service::{ModuleContext, ModuleError, NodeModule, stop_tasks};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{RangeRequest, Target};
use libp2p::PeerId;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The publisher of `/PATH` URLs.
    pub default_publisher: Option<PeerId>,
    /// Names for publishers: `/NAME/PATH`.
    pub aliases: HashMap<String, PeerId>,
    /// The client role's limits and deadlines.
    pub fetch: FetchOptions,
    /// Requests served at once; more get 503.
    pub max_requests: usize,
    /// Bytes buffered between a session and its HTTP response.
    pub pipe_bytes: usize,
    /// Chunk streams to each cache, shared by all sessions.
    pub streams_per_cache: usize,
}

impl GatewayConfig {
    /// Defaults for `listen`: a 10 s chunk deadline and a 30 s session
    /// deadline, so that a stalled fetch answers 504 while a tool still
    /// waits.
    pub fn new(listen: SocketAddr) -> GatewayConfig {
        GatewayConfig {
            listen,
            default_publisher: None,
            aliases: HashMap::new(),
            fetch: FetchOptions {
                window: 4,
                session_timeout: Duration::from_secs(30),
                ..Default::default()
            },
            max_requests: 256,
            pipe_bytes: 1 << 20,
            streams_per_cache: 4,
        }
    }
}

/// The gateway's metrics (`cachecash_gateway_*`).
#[derive(Debug)]
pub struct GatewayCounters {
    /// Requests answered, by `status`.
    pub requests: Family<Vec<(&'static str, String)>, Counter>,
    /// Body bytes sent.
    pub bytes: Counter,
    /// Requests in progress (including bodies still streaming).
    pub active: Gauge,
    /// Seconds from the request to its response headers (the first byte).
    pub first_byte_seconds: Histogram,
    /// Seconds from the request to the end of its body.
    pub request_seconds: Histogram,
}

impl GatewayCounters {
    fn new() -> GatewayCounters {
        GatewayCounters {
            first_byte_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 18)),
            request_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 20)),
            requests: Family::default(),
            bytes: Counter::default(),
            active: Gauge::default(),
        }
    }

    fn register(&self, m: &crate::metrics::Metrics) {
        m.register(
            "gateway_requests",
            "HTTP gateway requests by status",
            self.requests.clone(),
        );
        m.register(
            "gateway_bytes",
            "HTTP gateway body bytes sent",
            self.bytes.clone(),
        );
        m.register(
            "gateway_active_requests",
            "HTTP gateway requests in progress",
            self.active.clone(),
        );
        m.register(
            "gateway_first_byte_seconds",
            "HTTP gateway time to response headers",
            self.first_byte_seconds.clone(),
        );
        m.register(
            "gateway_request_seconds",
            "HTTP gateway time to the end of the body",
            self.request_seconds.clone(),
        );
    }
}

struct Gateway {
    config: GatewayConfig,
    network: NetworkHandle,
    ledger: Arc<dyn Ledger>,
    slots: Arc<tokio::sync::Semaphore>,
    counters: Arc<GatewayCounters>,
}

/// The gateway as a node module.
#[derive(Debug)]
pub struct GatewayModule {
    config: GatewayConfig,
    listener: Option<std::net::TcpListener>,
    addr: SocketAddr,
    counters: Arc<GatewayCounters>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl GatewayModule {
    /// Binds the listening socket now, so that a port 0 is known before the
    /// node starts ([`GatewayModule::local_addr`]).
    pub fn bind(config: GatewayConfig) -> Result<GatewayModule, String> {
        let listener = std::net::TcpListener::bind(config.listen)
            .map_err(|e| format!("cannot listen on {} for the gateway: {e}", config.listen))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("gateway socket: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("gateway socket: {e}"))?;
        Ok(GatewayModule {
            config,
            listener: Some(listener),
            addr,
            counters: Arc::new(GatewayCounters::new()),
            task: None,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters (tests, dashboards).
    pub fn counters(&self) -> Arc<GatewayCounters> {
        self.counters.clone()
    }
}

#[async_trait::async_trait]
impl NodeModule for GatewayModule {
    fn name(&self) -> &'static str {
        "gateway"
    }

    async fn start(&mut self, ctx: &ModuleContext) -> Result<(), ModuleError> {
        let network = ctx.network_for("the gateway")?;
        let listener = self
            .listener
            .take()
            .ok_or("the gateway was already started")?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("gateway socket: {e}"))?;
        let mut fetch = self.config.fetch.clone();
        fetch.metrics = Some(ctx.chain.metrics().clone());
        // Every session shares one pool of chunk streams per cache, within
        // a cache's per-peer stream limit (8 by default).
        fetch.links = Some(Arc::new(crate::cdn::client::conn::Links::with_streams(
            network.clone(),
            crate::cdn::chunk_protocol(&ctx.chain.genesis_hash()),
            fetch.chunk_timeout,
            self.config.streams_per_cache,
        )));
        let config = GatewayConfig {
            fetch,
            ..self.config.clone()
        };
        let gateway = Arc::new(Gateway {
            slots: Arc::new(tokio::sync::Semaphore::new(config.max_requests.max(1))),
            config,
            network,
            ledger: Arc::new(ChainLedger::new(ctx.chain.clone(), ctx.pool.clone())),
            counters: self.counters.clone(),
        });
        self.counters.register(ctx.chain.metrics());
        let app = axum::Router::new().fallback(handle).with_state(gateway);
        tracing::info!(target: "cachecash::gateway", addr = %self.addr, "HTTP gateway listening");
        self.task = Some(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(target: "cachecash::gateway", "the gateway stopped: {e}");
            }
        }));
        Ok(())
    }

    async fn stop(&mut self) {
        stop_tasks(self.task.take()).await;
    }
}

/// A short plain-text answer.
fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let mut m = message.into();
    m.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        m,
    )
        .into_response()
}

async fn handle(
    State(g): State<Arc<Gateway>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    g.counters.active.inc();
    let path = uri.path().to_string();
    let response = match g.slots.clone().try_acquire_owned() {
        Err(_) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the gateway is serving {} requests already; retry shortly",
                g.config.max_requests
            ),
        ),
        Ok(slot) => serve(&g, &method, &path, &headers, started, slot).await,
    };
    let status = response.status();
    g.counters
        .requests
        .get_or_create(&vec![("status", status.as_u16().to_string())])
        .inc();
    g.counters
        .first_byte_seconds
        .observe(started.elapsed().as_secs_f64());
    // A streamed body logs and counts itself when it ends.
    if response.extensions().get::<Streaming>().is_none() {
        g.counters.active.dec();
        g.counters
            .request_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(target: "cachecash::gateway", %method, path, status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    }
    response
}

/// Marks a response whose body reports its own end.
#[derive(Debug, Clone, Copy)]
struct Streaming;

async fn serve(
    g: &Arc<Gateway>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    started: Instant,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not supported; the gateway serves GET and HEAD"),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let target = match http::resolve(path, &g.config.aliases, g.config.default_publisher) {
        Ok(t) => t,
        Err(e) => return plain(StatusCode::NOT_FOUND, e),
    };
    let range = if method == Method::GET {
        http::parse_range(headers)
    } else {
        RangeRequest::Whole
    };
    let needs_meta = method == Method::HEAD
        || http::is_conditional(headers)
        || matches!(range, RangeRequest::One(_));
    let mut fetch_range = None;
    if needs_meta {
        let meta = match g.open(&target, Some((0, 0))).await {
            Ok(o) => o.meta().clone(),
            Err(e) => return fail(&target, &e),
        };
        if http::not_modified(headers, &meta.etag, &meta.last_modified) {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            validators(r.headers_mut(), &meta);
            return r;
        }
        if method == Method::HEAD {
            let mut r = StatusCode::OK.into_response();
            entity_headers(r.headers_mut(), &meta, meta.size);
            return r;
        }
        if let RangeRequest::One(spec) = range
            && http::if_range_holds(headers, &meta.etag, &meta.last_modified)
        {
            match http::satisfy(spec, meta.size) {
                Ok(r) => fetch_range = Some(r),
                Err(()) => return unsatisfiable(meta.size),
            }
        }
    }
    let opened = match g.open(&target, fetch_range).await {
        Ok(o) => o,
        Err(FetchError::Publisher {
            kind: cachecash_cdn::messages::ErrorKind::BadRequest,
            ..
        }) if fetch_range.is_some() => {
            // The object shrank between the two sessions.
            return plain(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "the range is no longer within the object; retry",
            );
        }
        Err(e) => return fail(&target, &e),
    };
    let meta = opened.meta().clone();
    let (start, end) = meta.range;
    let len = end.saturating_sub(start);
    // The session writes into a bounded pipe that the body reads.
    let (mut rx, mut tx) = tokio::io::duplex(g.config.pipe_bytes.max(4096));
    let session = {
        let g = g.clone();
        tokio::spawn(async move {
            client::deliver(
                &g.network,
                g.ledger.clone(),
                opened,
                &mut tx,
                &g.config.fetch,
                None,
            )
            .await
        })
    };
    // Headers wait for the first verified bytes (or the end).
    let mut first = vec![0u8; 64 * 1024];
    let n = match rx.read(&mut first).await {
        Ok(n) => n,
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("gateway pipe: {e}"),
            );
        }
    };
    let status = if fetch_range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    if n == 0 {
        // The session ended before any byte: an empty object, or a failure.
        return match session.await {
            Ok(Ok(_)) => {
                let mut r = status.into_response();
                entity_headers(r.headers_mut(), &meta, 0);
                r
            }
            Ok(Err(e)) => fail(&target, &e),
            Err(e) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the fetch task failed: {e}"),
            ),
        };
    }
    first.truncate(n);
    let body = body_stream(
        g.clone(),
        Bytes::from(first),
        rx,
        session,
        slot,
        started,
        format!(
            "{} {}{}",
            target.publisher,
            target.path,
            range_text(fetch_range)
        ),
    );
    let mut r = Response::new(Body::from_stream(body));
    *r.status_mut() = status;
    entity_headers(r.headers_mut(), &meta, len);
    if let Some((s, e)) = fetch_range
        && let Ok(v) =
            HeaderValue::from_str(&format!("bytes {s}-{}/{}", e.saturating_sub(1), meta.size))
    {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r.extensions_mut().insert(Streaming);
    r
}

fn range_text(r: Option<(u64, u64)>) -> String {
    r.map(|(s, e)| format!(" [{s}, {e})")).unwrap_or_default()
}

/// The body: the first bytes, the rest of the pipe, then the session's
/// verdict (an error aborts the body). Counts and logs itself at the end.
fn body_stream(
    g: Arc<Gateway>,
    first: Bytes,
    rx: tokio::io::DuplexStream,
    session: tokio::task::JoinHandle<Result<client::FetchReport, FetchError>>,
    slot: tokio::sync::OwnedSemaphorePermit,
    started: Instant,
    what: String,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct Finish {
        g: Arc<Gateway>,
        started: Instant,
        what: String,
        bytes: u64,
        ok: bool,
        _slot: tokio::sync::OwnedSemaphorePermit,
        session: tokio::task::JoinHandle<Result<client::FetchReport, FetchError>>,
    }
    impl Drop for Finish {
        fn drop(&mut self) {
            // Runs when the body ends or the client goes away.
            self.session.abort();
            self.g.counters.active.dec();
            self.g.counters.bytes.inc_by(self.bytes);
            self.g
                .counters
                .request_seconds
                .observe(self.started.elapsed().as_secs_f64());
            let ms = self.started.elapsed().as_millis() as u64;
            if self.ok {
                tracing::info!(target: "cachecash::gateway", what = %self.what, bytes = self.bytes, ms, "served");
            } else {
                tracing::info!(target: "cachecash::gateway", what = %self.what, bytes = self.bytes, ms, "body aborted");
            }
        }
    }
    let finish = Finish {
        g,
        started,
        what,
        bytes: first.len() as u64,
        ok: false,
        _slot: slot,
        session,
    };
    let head = futures::stream::iter((!first.is_empty()).then_some(Ok(first)));
    let rest = tokio_util::io::ReaderStream::with_capacity(rx, 64 * 1024);
    let state = (Some(finish), head.chain(rest).boxed());
    futures::stream::unfold(state, |(finish, mut inner)| async move {
        let mut finish = finish?;
        match inner.next().await {
            Some(Ok(b)) => {
                finish.bytes += b.len() as u64;
                Some((Ok(b), (Some(finish), inner)))
            }
            Some(Err(e)) => Some((Err(e), (None, inner))),
            None => match (&mut finish.session).await {
                Ok(Ok(_)) => {
                    finish.ok = true;
                    None
                }
                Ok(Err(e)) => Some((
                    Err(std::io::Error::other(format!(
                        "the fetch failed midway: {e}"
                    ))),
                    (None, inner),
                )),
                Err(e) => Some((
                    Err(std::io::Error::other(format!("the fetch task failed: {e}"))),
                    (None, inner),
                )),
            },
        }
    })
}

impl Gateway {
    async fn open(
        &self,
        target: &Target,
        range: Option<(u64, u64)>,
    ) -> Result<client::Opened, FetchError> {
        let request = FetchRequest {
            publisher: target.publisher,
            path: target.path.clone(),
            range,
        };
        client::open(
            &self.network,
            self.ledger.genesis(),
            &request,
            &self.config.fetch,
        )
        .await
    }
}

fn fail(target: &Target, e: &FetchError) -> Response {
    let status = http::status_of(e);
    plain(
        status,
        format!("{} at {}: {e}", target.path, target.publisher),
    )
}

fn unsatisfiable(size: u64) -> Response {
    let mut r = plain(
        StatusCode::RANGE_NOT_SATISFIABLE,
        format!("the range is not within the object's {size} bytes"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if value.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// ETag, Last-Modified and Cache-Control (what a 304 repeats).
fn validators(h: &mut HeaderMap, meta: &ObjectMeta) {
    set(h, header::ETAG, &meta.etag);
    set(h, header::LAST_MODIFIED, &meta.last_modified);
    set(h, header::CACHE_CONTROL, &meta.cache_control);
}

fn entity_headers(h: &mut HeaderMap, meta: &ObjectMeta, len: u64) {
    validators(h, meta);
    let ct = if meta.content_type.is_empty() {
        "application/octet-stream"
    } else {
        meta.content_type.as_str()
    };
    set(h, header::CONTENT_TYPE, ct);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
}

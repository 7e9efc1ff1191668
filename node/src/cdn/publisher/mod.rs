//! The publisher role: it owns the catalog, the escrow that pays, and the
//! caches it hires; it answers client sessions with bundles and caches'
//! fills with plaintext.
//!
//! # Flow
//!
//! 1. **Escrow** ([`escrow`]): opened on chain from the funder key with the
//!    operator's terms (or adopted); this node's key is its ticket signer.
//! 2. **Hiring** ([`hire`]): each configured cache gets its own master keys
//!    over the authenticated cache protocol; it checks the escrow on chain
//!    before accepting. Unhired caches are retried; a departed cache is
//!    replaced in placement without touching the escrow.
//! 3. **Sessions** ([`session`]): a client opens one per object; the
//!    publisher answers with the signed manifest, then bundles placed by
//!    keyed Maglev ([`placement`]), at most a window ahead of the secrets the
//!    client has paid.
//! 4. **Fills**: only caches hired for the escrow get plaintext, checked
//!    against the manifest before it leaves.

pub mod catalog;
pub mod escrow;
pub mod funding;
pub mod hire;
pub mod origin;
pub mod placement;
pub mod relay;
pub mod session;
pub mod spool;

use super::framing::{FrameError, read_msg, write_body, write_msg};
use super::kv::Kv;
use super::ledger::{ChainLedger, Ledger};
use crate::network::NetworkHandle;
use crate::service::{ModuleContext, ModuleError, NodeModule, stop_tasks};
use cachecash_cdn::manifest::chunk_digest;
use cachecash_cdn::messages::{ControlRequest, FillReply, FillRequest, wire_text};
use cachecash_cdn::puzzle::{DEFAULT_ROUNDS, DEFAULT_START_RANGE};
use cachecash_runtime::AccountId;
use futures::StreamExt;
use libp2p::{Multiaddr, PeerId, Stream};
use prometheus_client::metrics::counter::Counter;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A publisher's configuration.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Directory for the catalog database and the spool.
    pub dir: PathBuf,
    /// Where objects come from.
    pub origin: origin::Origin,
    /// The escrow.
    pub escrow: escrow::EscrowSource,
    /// Caches to hire (`/…/p2p/PEER_ID`).
    pub caches: Vec<Multiaddr>,
    /// Also hire caches found in the DHT (their provider records), up to
    /// this many in all; 0 hires only the configured ones.
    pub discover: usize,
    /// Most caches found by discovery hired at one network address (an
    /// IPv4 address, or an IPv6 /64): many keys behind one address are one
    /// operator, and each hired cache gets an equal share of the bundles,
    /// so this caps what a Sybil gains by minting keys. Configured caches
    /// (`caches`) are the operator's choice and are exempt.
    pub discover_per_address: usize,
    /// Chunk size of new manifests.
    pub chunk_size: u32,
    /// Chunks per bundle (each on a distinct cache).
    pub bundle_chunks: usize,
    /// Puzzle rounds R.
    pub puzzle_rounds: u8,
    /// Puzzle start range.
    pub puzzle_start_range: u32,
    /// Chunks of a bundle the puzzle covers, the first ones in bundle
    /// order; 0 covers all (the "3 of 4" variant is 3 with 4-chunk bundles).
    pub puzzle_covered: usize,
    /// Most bundles in flight per session beyond the paid ones.
    pub max_window: u8,
    /// Blocks of slack between issuing a ticket and its round's draw.
    pub issue_margin: u64,
    /// Freshness of origin objects without `Cache-Control`.
    pub default_max_age: u64,
    /// Origin time-out.
    pub origin_timeout: Duration,
    /// Deadline of stream reads and writes.
    pub io_timeout: Duration,
    /// How long a session may wait for the client.
    pub session_idle: Duration,
    /// Front-end instance number and count on this escrow.
    pub instance: (u8, u8),
    /// Most concurrent sessions.
    pub max_sessions: usize,
    /// Most concurrent control streams (sessions and fills) of one peer. A
    /// gateway is one peer with many users: keep it well above their
    /// concurrent fetches.
    pub max_streams_per_peer: usize,
    /// Control requests (session opens, fills) per second per peer.
    pub request_rate: u32,
    /// Bytes the spool of an HTTP origin's objects may hold.
    pub spool_quota: u64,
    /// A spool file used within this long is not evicted.
    pub spool_min_idle: Duration,
}

impl PublisherConfig {
    /// Defaults for a publisher in `dir` serving `origin` from `escrow`.
    pub fn new(dir: PathBuf, origin: origin::Origin, escrow: escrow::EscrowSource) -> Self {
        PublisherConfig {
            dir,
            origin,
            escrow,
            caches: Vec::new(),
            discover: 0,
            discover_per_address: 1,
            chunk_size: cachecash_cdn::manifest::DEFAULT_CHUNK_SIZE,
            bundle_chunks: 4,
            puzzle_rounds: DEFAULT_ROUNDS,
            puzzle_start_range: DEFAULT_START_RANGE,
            puzzle_covered: 0,
            max_window: 2,
            issue_margin: 10,
            default_max_age: 300,
            origin_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(10),
            session_idle: Duration::from_secs(60),
            instance: (0, 1),
            max_sessions: 1024,
            max_streams_per_peer: 512,
            request_rate: 1_000,
            spool_quota: 16 << 30,
            spool_min_idle: Duration::from_secs(600),
        }
    }
}

/// Counters of a running publisher, exported as `cachecash_cdn_publisher_*`.
#[derive(Debug, Default)]
pub struct PublisherCounters {
    /// Sessions opened.
    pub sessions: Counter,
    /// Bundles issued.
    pub bundles: Counter,
    /// Bundles re-issued after a blame.
    pub reissued: Counter,
    /// Secrets received from clients.
    pub secrets: Counter,
    /// L2 claims relayed to caches.
    pub relayed: Counter,
    /// L2 relays dropped (refused, or the cache unreachable).
    pub relays_failed: Counter,
    /// Fills served.
    pub fills: Counter,
    /// Fills refused.
    pub fills_refused: Counter,
    /// Discovered caches not hired because their address already had
    /// `discover_per_address` hired.
    pub hires_declined: Counter,
    /// Streams dropped because their peer held `max_streams_per_peer`.
    pub streams_refused: Counter,
    /// Requests refused for their peer's rate.
    pub rate_limited: Counter,
}

impl PublisherCounters {
    fn register(&self, metrics: &crate::metrics::Metrics) {
        let c = |name: &str, help: &str, m: &Counter| metrics.register(name, help, m.clone());
        c(
            "cdn_publisher_sessions",
            "Client sessions opened",
            &self.sessions,
        );
        c("cdn_publisher_bundles", "Bundles issued", &self.bundles);
        c(
            "cdn_publisher_reissued",
            "Bundles re-issued after a blame",
            &self.reissued,
        );
        c(
            "cdn_publisher_secrets",
            "Puzzle secrets received from clients",
            &self.secrets,
        );
        c(
            "cdn_publisher_relayed",
            "L2 claims relayed to caches",
            &self.relayed,
        );
        c(
            "cdn_publisher_relays_failed",
            "L2 relays refused by caches or dropped after retries",
            &self.relays_failed,
        );
        c("cdn_publisher_fills", "Fills served to caches", &self.fills);
        c(
            "cdn_publisher_fills_refused",
            "Fills refused",
            &self.fills_refused,
        );
        c(
            "cdn_publisher_streams_refused",
            "Streams dropped because their peer held max_streams_per_peer",
            &self.streams_refused,
        );
        c(
            "cdn_publisher_rate_limited",
            "Requests refused for their peer's rate",
            &self.rate_limited,
        );
        c(
            "cdn_publisher_hires_declined",
            "Discovered caches not hired: their network address had its share of hires",
            &self.hires_declined,
        );
    }
}

/// The publisher's state, shared by its tasks.
#[derive(Debug)]
pub struct PublisherState {
    /// Configuration.
    pub config: PublisherConfig,
    /// The database.
    pub kv: Arc<Kv>,
    /// The catalog.
    pub catalog: catalog::Catalog,
    /// Hired caches and their health.
    pub caches: hire::Roster,
    /// Counters.
    pub counters: PublisherCounters,
    escrow: parking_lot::RwLock<Option<Arc<escrow::ActiveEscrow>>>,
    /// Escrows issued from before the current one, newest first (at most
    /// [`RETIRED_KEPT`]): fills for their bundles are still served.
    retired: parking_lot::RwLock<Vec<cachecash_runtime::microcash::EscrowId>>,
    sessions: tokio::sync::Semaphore,
    /// Live control streams per peer.
    pub streams: Arc<super::limits::PeerSlots>,
    /// Request rate per peer.
    pub request_rate: super::limits::RateLimits,
    /// L2 relays to caches, queued per cache.
    pub relays: relay::Relays,
    /// "Close this escrow now" requests, answered by the escrow manager
    /// (only when the publisher opens its own escrows).
    pub close_now: super::actions::Requests<
        cachecash_runtime::microcash::EscrowId,
        Result<cachecash_runtime::Hash, String>,
    >,
}

/// Retired escrows whose fills are still served.
pub const RETIRED_KEPT: usize = 4;

impl PublisherState {
    /// The escrow new sessions issue from, once established.
    pub fn escrow(&self) -> Option<Arc<escrow::ActiveEscrow>> {
        self.escrow.read().clone()
    }

    /// Makes `next` the escrow new sessions issue from; sessions already
    /// open finish on the one they started with.
    pub(crate) fn set_escrow(&self, next: Arc<escrow::ActiveEscrow>) {
        let old = self.escrow.write().replace(next);
        if let Some(old) = old {
            let mut retired = self.retired.write();
            retired.insert(0, old.id);
            retired.truncate(RETIRED_KEPT);
        }
    }

    /// Whether bundles of `id` may still be in flight: it is the current
    /// escrow or a recently retired one.
    pub fn issues_from(&self, id: &cachecash_runtime::microcash::EscrowId) -> bool {
        self.escrow().is_some_and(|e| e.id == *id) || self.retired.read().contains(id)
    }
}

/// The publisher module.
#[derive(Debug)]
pub struct PublisherModule {
    config: PublisherConfig,
    state: Arc<std::sync::OnceLock<Arc<PublisherState>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PublisherModule {
    /// A publisher with `config`; it opens its database when started.
    pub fn new(config: PublisherConfig) -> PublisherModule {
        PublisherModule {
            config,
            state: Default::default(),
            tasks: Vec::new(),
        }
    }

    /// A handle on the shared state, filled when the module starts (take it
    /// before handing the module to the node).
    pub fn handle(&self) -> Arc<std::sync::OnceLock<Arc<PublisherState>>> {
        self.state.clone()
    }
}

#[async_trait::async_trait]
impl NodeModule for PublisherModule {
    fn name(&self) -> &'static str {
        "publisher"
    }

    async fn start(&mut self, ctx: &ModuleContext) -> Result<(), ModuleError> {
        let network = ctx.network_for("the publisher")?;
        if self.config.bundle_chunks == 0
            || self.config.bundle_chunks > cachecash_cdn::puzzle::MAX_BUNDLE_CHUNKS
        {
            return Err(format!(
                "bundle size {} is out of range: 1 to {} chunks",
                self.config.bundle_chunks,
                cachecash_cdn::puzzle::MAX_BUNDLE_CHUNKS
            )
            .into());
        }
        if self.config.puzzle_covered > self.config.bundle_chunks {
            return Err(format!(
                "the puzzle cannot cover {} chunks of a {}-chunk bundle; set puzzle_covered to at most bundle_chunks (0 covers all)",
                self.config.puzzle_covered, self.config.bundle_chunks
            )
            .into());
        }
        let ledger: Arc<dyn Ledger> =
            Arc::new(ChainLedger::new(ctx.chain.clone(), ctx.pool.clone()));
        let kv = Arc::new(Kv::open(&self.config.dir.join("db")).map_err(|e| e.to_string())?);
        let spool = spool::Spool::open(
            &self.config.dir.join("spool"),
            self.config.spool_quota,
            self.config.spool_min_idle,
        )?;
        let origin = origin::OriginClient::new(
            self.config.origin.clone(),
            Arc::new(spool),
            self.config.chunk_size,
            self.config.origin_timeout,
        )?;
        let key = network.signing_key();
        let state = Arc::new(PublisherState {
            catalog: catalog::Catalog::new(
                kv.clone(),
                origin,
                key.clone(),
                self.config.default_max_age,
            ),
            kv,
            caches: hire::Roster::default(),
            counters: PublisherCounters::default(),
            escrow: Default::default(),
            retired: Default::default(),
            sessions: tokio::sync::Semaphore::new(self.config.max_sessions),
            streams: super::limits::PeerSlots::new(self.config.max_streams_per_peer),
            request_rate: super::limits::RateLimits::new(self.config.request_rate),
            relays: relay::Relays::default(),
            close_now: super::actions::Requests::new("the escrow manager"),
            config: self.config.clone(),
        });
        let weak = Arc::downgrade(&state.kv);
        ctx.chain.metrics().memory().add_db(
            "cdn_publisher",
            Arc::new(move || weak.upgrade().map(|kv| kv.memory()).unwrap_or_default()),
        );
        let svc = Publisher {
            state: state.clone(),
            ledger,
            client: ctx.ledger(),
            network: network.clone(),
            me: AccountId(key.verifying_key().to_bytes()),
        };
        let (_, incoming) = ctx.register_stream_protocol(
            "the publisher",
            super::publisher_protocol(&svc.ledger.genesis()),
        )?;
        self.tasks.push(tokio::spawn(svc.clone().accept(incoming)));
        self.tasks.push(tokio::spawn(svc.run_escrow()));
        tracing::info!(target: "cachecash::cdn", publisher = %network.local_peer_id(), dir = %self.config.dir.display(), "publisher started");
        let _ = ctx.cdn.publisher.set(state.clone());
        state.counters.register(ctx.chain.metrics());
        let _ = self.state.set(state);
        Ok(())
    }

    async fn stop(&mut self) {
        stop_tasks(self.tasks.drain(..)).await;
    }
}

/// Everything a publisher handler needs.
#[derive(Debug, Clone)]
pub struct Publisher {
    pub(crate) state: Arc<PublisherState>,
    pub(crate) ledger: Arc<dyn Ledger>,
    /// The async ledger (watches, head events) for code on the runtime.
    pub(crate) client: Arc<dyn crate::ledger::LedgerClient>,
    pub(crate) network: NetworkHandle,
    pub(crate) me: AccountId,
}

impl Publisher {
    /// Establishes the escrow, then keeps the configured caches hired.
    async fn run_escrow(self) {
        self.wait_for_sync(Duration::from_secs(60)).await;
        let est = loop {
            match escrow::establish(
                &self.state.kv,
                self.ledger.as_ref(),
                &self.state.config.escrow,
                &self.me,
                Duration::from_secs(120),
                self.state.config.instance,
            )
            .await
            {
                Ok(e) => break Arc::new(e),
                Err(e) => {
                    tracing::error!(target: "cachecash::cdn", "publisher escrow: {e}; retrying in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        };
        tracing::info!(target: "cachecash::cdn", escrow = %est.id, first_round = est.terms().first_round, last_round = est.terms().last_round, "publisher escrow ready");
        self.state.set_escrow(est);
        // Both run for the module's life (aborted with this task at stop).
        let funding = match self.state.config.escrow.clone() {
            escrow::EscrowSource::Open { funder, plan } => {
                futures::future::Either::Left(funding::keep_funded(self.clone(), funder, plan))
            }
            escrow::EscrowSource::Existing(_) => {
                futures::future::Either::Right(std::future::pending::<()>())
            }
        };
        tokio::join!(hire::keep_hired(self), funding);
    }

    /// Waits (up to `limit`) until this node has caught up with the best
    /// block its peers report, so an escrow is opened with terms (first
    /// round, nonce) computed from the real head rather than a stale one.
    /// A node without peers after the limit goes on alone.
    async fn wait_for_sync(&self, limit: Duration) {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let best = self
                .network
                .peers()
                .iter()
                .filter_map(|p| p.best_number)
                .max();
            let head = self.ledger.head_number();
            match best {
                Some(b) if !self.network.is_syncing() && head.saturating_add(2) >= b => return,
                _ if tokio::time::Instant::now() >= end => {
                    tracing::warn!(target: "cachecash::cdn", head, best_peer = ?best, "publisher: not caught up with peers after {limit:?}; going on with the local head");
                    return;
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn accept(self, mut incoming: libp2p_stream::IncomingStreams) {
        while let Some((peer, stream)) = incoming.next().await {
            let Some(slot) = self.state.streams.try_enter(peer) else {
                self.state.counters.streams_refused.inc();
                continue;
            };
            let svc = self.clone();
            tokio::spawn(async move {
                svc.control_stream(peer, stream).await;
                drop(slot);
            });
        }
    }

    fn punish(&self, peer: PeerId, e: &FrameError) {
        if e.is_violation() {
            self.network.ban_peer(peer, "cdn_malformed", e.to_string());
        }
    }

    async fn control_stream(&self, peer: PeerId, mut stream: Stream) {
        let t = self.state.config.io_timeout;
        let request: ControlRequest = match read_msg(&mut stream, t).await {
            Ok(r) => r,
            Err(e) => return self.punish(peer, &e),
        };
        let limited = match self.state.request_rate.check(peer) {
            super::limits::Verdict::Allowed => None,
            super::limits::Verdict::Limited => Some(format!(
                "{} at most {} requests per second per peer; retry shortly",
                super::limits::RATE_LIMITED,
                self.state.request_rate.rate()
            )),
            super::limits::Verdict::Flooding => {
                self.state.counters.rate_limited.inc();
                return self.network.ban_peer(
                    peer,
                    "cdn_rate_limit",
                    "kept sending publisher requests past its rate".into(),
                );
            }
        };
        if let Some(why) = limited {
            self.state.counters.rate_limited.inc();
            let _ = match request {
                ControlRequest::Fill(_) => {
                    write_msg(&mut stream, &FillReply::Refused(wire_text(&why)), t).await
                }
                _ => {
                    write_msg(
                        &mut stream,
                        &cachecash_cdn::messages::SessionReply::Error {
                            kind: cachecash_cdn::messages::ErrorKind::Unavailable,
                            message: wire_text(&why),
                        },
                        t,
                    )
                    .await
                }
            };
            return;
        }
        match request {
            ControlRequest::Fill(fill) => {
                if let Err(e) = self.on_fill(peer, &mut stream, fill).await {
                    self.punish(peer, &e);
                }
            }
            ControlRequest::Open(open) => {
                let Ok(_permit) = self.state.sessions.try_acquire() else {
                    let _ = write_msg(
                        &mut stream,
                        &cachecash_cdn::messages::SessionReply::Error {
                            kind: cachecash_cdn::messages::ErrorKind::Unavailable,
                            message: wire_text(
                                "the publisher is at its session limit; retry shortly",
                            ),
                        },
                        t,
                    )
                    .await;
                    return;
                };
                session::run(self, peer, stream, open).await;
            }
            ControlRequest::Offer(_) | ControlRequest::Relay(_) => self.network.ban_peer(
                peer,
                "cdn_protocol",
                "sent a cache request on the publisher protocol".into(),
            ),
        }
    }

    async fn on_fill(
        &self,
        peer: PeerId,
        stream: &mut Stream,
        fill: FillRequest,
    ) -> Result<(), FrameError> {
        let t = self.state.config.io_timeout;
        match self.fill_data(peer, &fill).await {
            Ok(data) => {
                let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                write_msg(stream, &FillReply::Data { len }, t).await?;
                write_body(stream, &data, t).await?;
                let _ = futures::AsyncWriteExt::close(stream).await;
                self.state.counters.fills.inc();
            }
            Err(reason) => {
                self.state.counters.fills_refused.inc();
                tracing::info!(target: "cachecash::cdn", %peer, "fill refused: {reason}");
                write_msg(stream, &FillReply::Refused(wire_text(&reason)), t).await?;
            }
        }
        Ok(())
    }

    /// The plaintext of a fill, for hired caches only.
    async fn fill_data(&self, peer: PeerId, fill: &FillRequest) -> Result<Vec<u8>, String> {
        let account = super::account_of(&peer).ok_or("the peer has no ed25519 key")?;
        if !self.state.issues_from(&fill.escrow)
            || !self.state.caches.is_hired_for(&account, &fill.escrow)
        {
            return Err(format!(
                "peer {peer} is not a cache hired for escrow {}; plaintext goes to hired caches only",
                fill.escrow
            ));
        }
        let entry = self
            .state
            .catalog
            .get(&fill.object)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("object {} is not in the catalog", fill.object))?;
        let entry = if entry.file().exists() {
            entry
        } else {
            // Evicted from the spool since the session began: pulled again
            // as a session would (a changed object fails the checks below).
            self.state
                .catalog
                .resolve(&entry.path)
                .await
                .map_err(|e| format!("pulling {} from the origin again: {e}", entry.path))?
        };
        let manifest = &entry.manifest.manifest;
        if manifest.chunk_id(fill.chunk_index) != Some(&fill.chunk_id) {
            return Err(format!(
                "chunk {} of {} is not {} in the current version; ask the client for a fresh bundle",
                fill.chunk_index, entry.path, fill.chunk_id
            ));
        }
        let layout = manifest.layout().map_err(|e| e.to_string())?;
        let len = layout.chunk_len(fill.chunk_index).unwrap_or(0) as usize;
        let offset = layout.chunk_offset(fill.chunk_index).unwrap_or(0);
        self.state.catalog.touch(&entry);
        let file = entry.file();
        let data = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            origin::read_at(&file, offset, &mut buf).map(|()| buf)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading {}: {e}", entry.path))?;
        if chunk_digest(&data) != fill.chunk_id {
            return Err(format!(
                "{} changed at the origin since its manifest; the next session re-pulls it",
                entry.path
            ));
        }
        Ok(data)
    }
}

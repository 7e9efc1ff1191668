//! The CDN harness: a mining node, a publisher with a real HTTP (or
//! directory) origin, caches and a client, each its own libp2p node in
//! process on loopback.

use crate::*;
use cachecash_node::Node;
use cachecash_node::cdn::cache::claimer::ClaimerConfig;
use cachecash_node::cdn::cache::tickets::TicketState;
use cachecash_node::cdn::cache::{CacheConfig, CacheModule, CacheState};
use cachecash_node::cdn::client::{FetchError, FetchOptions, FetchReport, FetchRequest, fetch};
use cachecash_node::cdn::ledger::ChainLedger;
use cachecash_node::cdn::publisher::escrow::{EscrowPlan, EscrowSource};
use cachecash_node::cdn::publisher::origin::Origin;
use cachecash_node::cdn::publisher::{PublisherConfig, PublisherModule, PublisherState};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const UNIT: u128 = 1_000_000_000_000;
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).unwrap();
    v
}

/// A real HTTP origin: serves `files`, with ETag and Cache-Control; the
/// paths `/status/404`, `/status/500` and `/slow` misbehave on purpose.
pub async fn http_origin(files: HashMap<String, Vec<u8>>) -> String {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    let files = Arc::new(files);
    async fn serve(
        State(files): State<Arc<HashMap<String, Vec<u8>>>>,
        UrlPath(path): UrlPath<String>,
        headers: HeaderMap,
    ) -> axum::response::Response {
        match path.as_str() {
            "status/404" => return StatusCode::NOT_FOUND.into_response(),
            "status/500" => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return StatusCode::OK.into_response();
            }
            _ => {}
        }
        let Some(body) = files.get(&path) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(body)[..8]));
        if headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.to_str().ok() == Some(etag.as_str()))
        {
            return StatusCode::NOT_MODIFIED.into_response();
        }
        (
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, "max-age=60".to_string()),
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            ],
            body.clone(),
        )
            .into_response()
    }
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::get(serve))
        .with_state(files);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A running CDN: chain, caches, publisher and client.
#[allow(missing_debug_implementations)] // nodes and handles, not values
pub struct Net {
    pub dir: tempfile::TempDir,
    pub spec: cachecash_chain_spec::ChainSpec,
    pub chain: Node,
    pub caches: Vec<(Node, Arc<CacheState>, PathBuf)>,
    pub publisher: Option<Node>,
    pub state: Option<Arc<PublisherState>>,
    pub client: Node,
    pub origin: Origin,
}

pub fn plan() -> EscrowPlan {
    EscrowPlan {
        face_value: UNIT,
        tickets_per_round: 100_000,
        winners_per_round: 2,
        round_length: 200,
        rounds: 20,
        draw_delay: 2,
        claim_window: 100,
        // The safe penalty of these terms at the presets' 50 % reporter
        // share, which caches require: w·β·(⌈c/L⌉ + ⌈d/L⌉ + 1)/(1 − s).
        penalty: 2 * 3 * UNIT * 2,
        fee: 1_000_000,
        top_up_rounds: 0,
        budget: 0,
        rotate_rounds: 0,
    }
}

pub async fn start_cache(
    net_spec: &cachecash_chain_spec::ChainSpec,
    base: &Path,
    boot: Vec<libp2p::Multiaddr>,
    quota: u64,
    listen: Option<libp2p::Multiaddr>,
) -> (Node, Arc<CacheState>) {
    let config = CacheConfig::new(base.join("cache"), quota);
    start_cache_with(net_spec, base, boot, config, listen).await
}

/// Starts a cache with `config` (its directory under `base`).
pub async fn start_cache_with(
    net_spec: &cachecash_chain_spec::ChainSpec,
    base: &Path,
    boot: Vec<libp2p::Multiaddr>,
    config: CacheConfig,
    listen: Option<libp2p::Multiaddr>,
) -> (Node, Arc<CacheState>) {
    let module = CacheModule::open(config).unwrap();
    let state = module.state();
    let node =
        start_with_modules_on(net_spec, base, None, boot, vec![Box::new(module)], listen).await;
    (node, state)
}

pub async fn start_publisher(
    spec: &cachecash_chain_spec::ChainSpec,
    base: &Path,
    boot: Vec<libp2p::Multiaddr>,
    origin: Origin,
    caches: Vec<libp2p::Multiaddr>,
    plan: EscrowPlan,
) -> (Node, Arc<PublisherState>) {
    start_publisher_tuned(spec, base, boot, origin, caches, plan, |_| {}).await
}

/// Like [`start_publisher`], with `tune` applied to its configuration.
pub async fn start_publisher_tuned(
    spec: &cachecash_chain_spec::ChainSpec,
    base: &Path,
    boot: Vec<libp2p::Multiaddr>,
    origin: Origin,
    caches: Vec<libp2p::Multiaddr>,
    plan: EscrowPlan,
    tune: impl FnOnce(&mut PublisherConfig),
) -> (Node, Arc<PublisherState>) {
    start_publisher_with_modules(spec, base, boot, origin, caches, plan, tune, vec![]).await
}

/// Like [`start_publisher_tuned`], with more modules on the publisher's
/// node (a dashboard, say).
#[allow(clippy::too_many_arguments)]
pub async fn start_publisher_with_modules(
    spec: &cachecash_chain_spec::ChainSpec,
    base: &Path,
    boot: Vec<libp2p::Multiaddr>,
    origin: Origin,
    caches: Vec<libp2p::Multiaddr>,
    plan: EscrowPlan,
    tune: impl FnOnce(&mut PublisherConfig),
    extra: Vec<Box<dyn cachecash_node::NodeModule>>,
) -> (Node, Arc<PublisherState>) {
    let alice = cachecash_chain_spec::dev_accounts::dev_signing_key("alice").unwrap();
    let mut config = PublisherConfig::new(
        base.join("publisher"),
        origin,
        EscrowSource::Open {
            funder: Arc::new(alice),
            plan,
        },
    );
    config.caches = caches;
    config.origin_timeout = Duration::from_secs(2);
    tune(&mut config);
    let module = PublisherModule::new(config);
    let handle = module.handle();
    let mut modules: Vec<Box<dyn cachecash_node::NodeModule>> = vec![Box::new(module)];
    modules.extend(extra);
    let node = start_with_modules(spec, base, None, boot, modules).await;
    let state = handle.get().cloned().expect("the publisher started");
    (node, state)
}

/// Starts the mining node of a scenario (rewards to ferdie).
pub async fn start_miner(spec: &cachecash_chain_spec::ChainSpec, base: &Path) -> Node {
    start_with_modules(spec, base, Some(dev("ferdie")), vec![], vec![]).await
}

/// Tells `node` where `publisher` listens, as a bootnode would.
pub async fn learn_publisher(node: &Node, publisher: &Node) {
    let mut addr = p2p_addr(publisher);
    addr.pop();
    let id = publisher.network().unwrap().local_peer_id();
    node.network().unwrap().add_addresses(id, vec![addr]).await;
}

/// A chain, `caches` caches, a publisher on `origin` and a client, with the
/// default escrow plan.
pub async fn setup(origin: Origin, caches: usize) -> Net {
    setup_with(origin, caches, plan(), ClaimerConfig::default()).await
}

/// Like [`setup`], with the publisher's escrow opened on `escrow_plan`.
/// Caches settle with `claimer`.
pub async fn setup_with(
    origin: Origin,
    caches: usize,
    escrow_plan: EscrowPlan,
    claimer: ClaimerConfig,
) -> Net {
    setup_tuned(
        origin,
        caches,
        escrow_plan,
        |c| c.claimer = claimer.clone(),
        |_| {},
    )
    .await
}

/// Like [`setup_with`], with `cache` applied to every cache's configuration
/// and `publisher` to the publisher's.
pub async fn setup_tuned(
    origin: Origin,
    caches: usize,
    escrow_plan: EscrowPlan,
    cache: impl Fn(&mut CacheConfig),
    publisher: impl FnOnce(&mut PublisherConfig),
) -> Net {
    // Logs for debugging with RUST_LOG=cachecash=debug.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let spec = fast_dev_spec(100);
    let dir = tempfile::tempdir().unwrap();
    let chain = start_miner(&spec, &dir.path().join("chain")).await;
    let boot = vec![p2p_addr(&chain)];
    let mut cs = Vec::new();
    for i in 0..caches {
        let base = dir.path().join(format!("cache{i}"));
        let mut config = CacheConfig::new(base.join("cache"), 1 << 30);
        cache(&mut config);
        let (node, state) = start_cache_with(&spec, &base, boot.clone(), config, None).await;
        cs.push((node, state, base));
    }
    let hire: Vec<_> = cs.iter().map(|(n, _, _)| p2p_addr(n)).collect();
    let (publisher, state) = start_publisher_tuned(
        &spec,
        &dir.path().join("publisher"),
        boot.clone(),
        origin.clone(),
        hire,
        escrow_plan,
        publisher,
    )
    .await;
    let client = start_with_modules(&spec, &dir.path().join("client"), None, boot, vec![]).await;
    learn_publisher(&client, &publisher).await;
    let s = state.clone();
    let end = tokio::time::Instant::now() + DEADLINE;
    while !(s.escrow().is_some() && s.caches.len() == caches) {
        assert!(
            tokio::time::Instant::now() < end,
            "escrow open and every cache hired: not reached within {DEADLINE:?} (escrow open: {}, caches hired: {} of {caches}, chain head #{})",
            s.escrow().is_some(),
            s.caches.len(),
            chain.chain().head().header.number,
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Net {
        dir,
        spec,
        chain,
        caches: cs,
        publisher: Some(publisher),
        state: Some(state),
        client,
        origin,
    }
}

impl Net {
    pub fn state(&self) -> &Arc<PublisherState> {
        self.state.as_ref().expect("the publisher runs")
    }

    /// Stops the publisher (if still running) and starts it again on the
    /// same base path, key and database once the old one released it,
    /// hiring every cache of the net; returns when it has its escrow and
    /// every cache. The client learns the new address.
    pub async fn restart_publisher(&mut self) -> Arc<PublisherState> {
        if let Some(p) = self.publisher.take() {
            p.stop().await;
        }
        let old = self.state.take().expect("a publisher ran");
        wait_until("the old publisher released its database", DEADLINE, || {
            Arc::strong_count(&old) == 1
        })
        .await;
        drop(old);
        let hire: Vec<_> = self.caches.iter().map(|(n, _, _)| p2p_addr(n)).collect();
        let (p, state) = start_publisher(
            &self.spec,
            &self.dir.path().join("publisher"),
            vec![p2p_addr(&self.chain)],
            self.origin.clone(),
            hire,
            plan(),
        )
        .await;
        learn_publisher(&self.client, &p).await;
        self.publisher = Some(p);
        self.state = Some(state.clone());
        let caches = self.caches.len();
        wait_until("publisher back", DEADLINE, || {
            state.escrow().is_some() && state.caches.len() == caches
        })
        .await;
        state
    }

    pub fn publisher_peer(&self) -> libp2p::PeerId {
        self.publisher
            .as_ref()
            .unwrap()
            .network()
            .unwrap()
            .local_peer_id()
    }

    /// Opens a session for `path` at the publisher by hand, as the client
    /// node (raw messages, for tests that act as a client): the stream,
    /// after the publisher's `Object` reply.
    pub async fn open_session_by_hand(
        &self,
        path: &str,
        window: u8,
    ) -> (libp2p::Stream, cachecash_cdn::messages::ObjectInfo) {
        use cachecash_cdn::messages::{ControlRequest, OpenRequest, SessionReply};
        use cachecash_node::cdn::framing::{read_msg, write_msg};
        let t = Duration::from_secs(10);
        let genesis = self.spec.genesis_hash().unwrap();
        let mut control = self.client.network().unwrap().stream_control();
        let mut s = control
            .open_stream(
                self.publisher_peer(),
                cachecash_node::cdn::publisher_protocol(&genesis),
            )
            .await
            .unwrap();
        let open = OpenRequest {
            path: path.as_bytes().to_vec(),
            range: None,
            window,
        };
        write_msg(&mut s, &ControlRequest::Open(open), t)
            .await
            .unwrap();
        match read_msg::<_, SessionReply>(&mut s, t).await.unwrap() {
            SessionReply::Object(info) => (s, *info),
            other => panic!("expected the object first, got {other:?}"),
        }
    }

    pub async fn fetch_with(
        &self,
        path: &str,
        range: Option<(u64, u64)>,
        options: &FetchOptions,
    ) -> Result<(Vec<u8>, FetchReport), FetchError> {
        let ledger = Arc::new(ChainLedger::new(
            self.client.chain().clone(),
            self.client.pool().clone(),
        ));
        let mut out = Vec::new();
        let report = fetch(
            self.client.network().unwrap(),
            ledger,
            &FetchRequest {
                publisher: self.publisher_peer(),
                path: path.to_string(),
                range,
            },
            &mut out,
            options,
            None,
        )
        .await?;
        Ok((out, report))
    }

    pub async fn fetch(
        &self,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> Result<(Vec<u8>, FetchReport), FetchError> {
        self.fetch_with(path, range, &FetchOptions::default()).await
    }

    pub async fn stop(mut self) {
        self.client.stop().await;
        if let Some(p) = self.publisher.take() {
            p.stop().await;
        }
        for (n, _, _) in self.caches.drain(..) {
            n.stop().await;
        }
        self.chain.stop().await;
    }
}

pub fn held(state: &CacheState) -> u64 {
    state
        .tickets
        .all()
        .unwrap()
        .iter()
        .filter(|t| t.state != TicketState::Serving)
        .count() as u64
}

/// A node running the HTTP gateway in front of a [`Net`].
#[allow(missing_debug_implementations)]
pub struct GatewayNode {
    pub node: Node,
    pub addr: std::net::SocketAddr,
    pub counters: Arc<cachecash_node::cdn::gateway::GatewayCounters>,
}

impl GatewayNode {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Net {
    /// Starts a gateway node that knows the publisher's address; `tune`
    /// adjusts its config (default publisher, aliases, deadlines).
    pub async fn start_gateway(
        &self,
        tune: impl FnOnce(&mut cachecash_node::cdn::gateway::GatewayConfig),
    ) -> GatewayNode {
        use cachecash_node::cdn::gateway::{GatewayConfig, GatewayModule};
        let mut config = GatewayConfig::new("127.0.0.1:0".parse().unwrap());
        tune(&mut config);
        let module = GatewayModule::bind(config).unwrap();
        let addr = module.local_addr();
        let counters = module.counters();
        let node = start_with_modules(
            &self.spec,
            &self.dir.path().join(format!("gateway-{}", addr.port())),
            None,
            vec![p2p_addr(&self.chain)],
            vec![Box::new(module)],
        )
        .await;
        learn_publisher(&node, self.publisher.as_ref().unwrap()).await;
        GatewayNode {
            node,
            addr,
            counters,
        }
    }
}

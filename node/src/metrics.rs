//! Prometheus metrics, served as text on `--prometheus-port` at `/metrics`.
//!
//! Names are prefixed `cachecash_`. The registry is per node, so several
//! in-process nodes (tests) never share counters.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;

mod memory;
pub use memory::{AllocatorProbe, AllocatorStats, DbProbe, MemoryCollector, set_allocator_probe};

/// The reasons a peer is banned for (`cachecash_peer_bans_total{reason}`).
pub const BAN_REASONS: &[&str] = &[
    "invalid block",
    "invalid headers",
    "claimed work not delivered",
    "malformed sync request",
    "malformed sync response",
    "wrong sync response",
    "wrong block",
    "too many violations",
    "malformed transaction",
    "badly signed transaction",
    "cdn_malformed",
];

/// Label set of the labelled metrics.
pub type Labels = Vec<(&'static str, &'static str)>;

/// The node's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Height of the canonical head.
    pub best_block: Gauge,
    /// Seconds to import a block (all stages and the commit).
    pub import_seconds: Histogram,
    /// Seconds per whole CDN fetch (client role).
    pub cdn_fetch_seconds: Histogram,
    /// Seconds per puzzle solve (client role).
    pub cdn_puzzle_seconds: Histogram,
    /// Transactions in the mempool.
    pub mempool_size: Gauge,
    /// Transactions rejected by the mempool.
    pub mempool_rejected: Counter,
    /// Blocks mined by this node.
    pub blocks_mined: Counter,
    /// Imports that failed because storage refused a read or write (a full
    /// or read-only disk): nothing of those blocks was committed.
    pub storage_errors: Counter,
    /// Transactions in imported blocks.
    pub transactions_imported: Counter,
    /// Reorganisations to a heavier branch.
    pub reorgs: Counter,
    /// Connected peers.
    pub peers: Gauge,
    /// Network bytes by `protocol` (sync, gossip_blocks, gossip_transactions)
    /// and `direction` (in, out).
    pub network_bytes: Family<Labels, Counter>,
    /// Peers banned, by `reason`.
    pub peer_bans: Family<Labels, Counter>,
    /// Gossip messages validated, by `topic` and `verdict`.
    pub gossip_messages: Family<Labels, Counter>,
    /// Connections the node closed on arrival, by `reason`.
    pub peers_refused: Family<Labels, Counter>,
    /// Height of the best block any peer reports (sync target).
    pub sync_highest_block: Gauge,
    memory: MemoryCollector,
    registry: parking_lot::Mutex<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers a metric of a hosted module (the CDN roles) in this node's
    /// registry, under `cachecash_<name>`.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry.lock().register(name, help, metric);
    }

    /// The memory gauges (allocator and databases); a database joins them
    /// with [`MemoryCollector::add_db`].
    pub fn memory(&self) -> &MemoryCollector {
        &self.memory
    }

    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cachecash");
        let best_block = Gauge::default();
        let import_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let cdn_fetch_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        let cdn_puzzle_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "cdn_fetch_seconds",
            "Seconds per whole fetch through the CDN (client role)",
            cdn_fetch_seconds.clone(),
        );
        registry.register(
            "cdn_puzzle_seconds",
            "Seconds per colocation puzzle solve (client role)",
            cdn_puzzle_seconds.clone(),
        );
        let mempool_size = Gauge::default();
        let mempool_rejected = Counter::default();
        let blocks_mined = Counter::default();
        let storage_errors = Counter::default();
        let transactions_imported = Counter::default();
        let reorgs = Counter::default();
        registry.register(
            "reorgs",
            "Reorganisations to a heavier branch",
            reorgs.clone(),
        );
        registry.register(
            "best_block",
            "Height of the canonical head",
            best_block.clone(),
        );
        registry.register(
            "block_import_seconds",
            "Time to verify and commit a block",
            import_seconds.clone(),
        );
        registry.register(
            "mempool_size",
            "Transactions waiting in the mempool",
            mempool_size.clone(),
        );
        registry.register(
            "mempool_rejected",
            "Transactions the mempool refused",
            mempool_rejected.clone(),
        );
        registry.register(
            "blocks_mined",
            "Blocks mined by this node",
            blocks_mined.clone(),
        );
        registry.register(
            "storage_errors",
            "Block imports that failed in storage (full or read-only disk); nothing of them was committed",
            storage_errors.clone(),
        );
        registry.register(
            "transactions_imported",
            "Transactions in blocks imported into the canonical chain",
            transactions_imported.clone(),
        );
        let peers = Gauge::default();
        let network_bytes = Family::<Labels, Counter>::default();
        let peer_bans = Family::<Labels, Counter>::default();
        let gossip_messages = Family::<Labels, Counter>::default();
        let peers_refused = Family::<Labels, Counter>::default();
        let sync_highest_block = Gauge::default();
        registry.register("peers", "Connected peers", peers.clone());
        registry.register(
            "network_bytes",
            "Network payload bytes by protocol and direction",
            network_bytes.clone(),
        );
        registry.register("peer_bans", "Peers banned, by reason", peer_bans.clone());
        // Known reasons start at zero, so a dashboard's rate() has a series
        // before the first ban; any other reason appears when it happens.
        for reason in BAN_REASONS {
            peer_bans
                .get_or_create(&vec![("reason", *reason)])
                .inc_by(0);
        }
        registry.register(
            "gossip_messages",
            "Gossip messages validated, by topic and verdict",
            gossip_messages.clone(),
        );
        registry.register(
            "peers_refused",
            "Connections closed on arrival, by reason",
            peers_refused.clone(),
        );
        peers_refused
            .get_or_create(&vec![("reason", "per_ip_limit")])
            .inc_by(0);
        registry.register(
            "sync_highest_block",
            "Height of the best block reported by any peer",
            sync_highest_block.clone(),
        );
        let memory = MemoryCollector::default();
        registry.register_collector(Box::new(memory.clone()));
        Metrics {
            peers,
            network_bytes,
            peer_bans,
            gossip_messages,
            peers_refused,
            sync_highest_block,
            reorgs,
            best_block,
            import_seconds,
            cdn_fetch_seconds,
            cdn_puzzle_seconds,
            mempool_size,
            mempool_rejected,
            blocks_mined,
            storage_errors,
            transactions_imported,
            memory,
            registry: parking_lot::Mutex::new(registry),
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `/metrics` on `addr` until the task is dropped; returns the bound address.
pub async fn serve(
    metrics: Arc<Metrics>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.encode(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics server stopped: {e}");
        }
    });
    Ok((bound, handle))
}

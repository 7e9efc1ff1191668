//! The `cdn_*` JSON-RPC namespace: what the CDN roles of this node are doing.
//!
//! The roles start after the RPC server, so the server reads them through a
//! [`CdnRegistry`] the roles fill in when they start. A method for a role the
//! node does not run answers error [`NO_ROLE`] with the flag that starts it.

use super::cache::CacheState;
use super::publisher::PublisherState;
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::{ErrorObject, ErrorObjectOwned};
use serde::Serialize;
use std::sync::{Arc, OnceLock};

/// Error code: the node does not run the role.
pub const NO_ROLE: i32 = 1015;

/// The running roles of a node.
#[derive(Debug, Default)]
pub struct CdnRegistry {
    /// The cache role, once started.
    pub cache: OnceLock<Arc<CacheState>>,
    /// The publisher role, once started.
    pub publisher: OnceLock<Arc<PublisherState>>,
}

/// A hire, as shown.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HireView {
    /// Escrow id.
    pub escrow: String,
    /// The publisher (ticket signer).
    pub signer: String,
    /// Hired since (Unix seconds).
    pub since: u64,
}

/// `cdn_cacheStatus`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheStatus {
    /// Chunks held.
    pub chunks: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Byte quota.
    pub quota: u64,
    /// Evictions since start.
    pub evictions: u64,
    /// Hits / (hits + misses) since start.
    pub hit_ratio: f64,
    /// Chunk requests served from the store since start.
    #[serde(default)]
    pub hits: u64,
    /// Chunk requests that needed a fill since start.
    #[serde(default)]
    pub misses: u64,
    /// Chunks served since start.
    pub chunks_served: u64,
    /// Bytes served since start.
    pub bytes_served: u64,
    /// Fills from publishers since start.
    pub fills: u64,
    /// Requests refused since start.
    pub refused: u64,
    /// Tickets by state: chunk sent without L1 yet.
    pub tickets_serving: u64,
    /// Tickets with an L1 held.
    pub tickets_held: u64,
    /// Redeemable tickets (L1, L2 and secret).
    pub tickets_proven: u64,
    /// Escrows this cache serves.
    pub hires: Vec<HireView>,
}

/// A hired cache, as the publisher sees it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheView {
    /// Its account.
    pub account: String,
    /// Its peer id.
    pub peer_id: String,
    /// Where it was reached.
    pub addresses: Vec<String>,
    /// Whether placement uses it now.
    pub healthy: bool,
    /// Blames against it.
    pub blames: u64,
}

/// A catalog entry, as shown.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectView {
    /// Path at the origin.
    pub path: String,
    /// Object id.
    pub object: String,
    /// Version.
    pub version: u64,
    /// Size in bytes.
    pub size: u64,
    /// Chunks.
    pub chunks: u64,
    /// `ETag`.
    pub etag: String,
    /// `Content-Type`.
    pub content_type: String,
}

/// `cdn_publisherStatus`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublisherStatus {
    /// The escrow, once established.
    pub escrow: Option<String>,
    /// Its first and last round.
    pub rounds: Option<(u64, u64)>,
    /// Hired caches.
    pub caches: Vec<CacheView>,
    /// The catalog.
    pub catalog: Vec<ObjectView>,
    /// Sessions opened since start.
    pub sessions: u64,
    /// Bundles issued since start.
    pub bundles: u64,
    /// Bundles re-issued after blames.
    pub reissued: u64,
    /// Secrets received.
    pub secrets: u64,
    /// L2 claims relayed to caches.
    pub relayed: u64,
    /// Fills served.
    pub fills: u64,
}

/// The `cdn` namespace.
#[rpc(server, client, namespace = "cdn")]
pub trait CdnApi {
    /// The cache role: store use, hit ratio, tickets by state, hires.
    #[method(name = "cacheStatus")]
    fn cache_status(&self) -> RpcResult<CacheStatus>;

    /// The publisher role: escrow, hired caches and their health, catalog.
    #[method(name = "publisherStatus")]
    fn publisher_status(&self) -> RpcResult<PublisherStatus>;
}

/// The server side of the namespace.
#[derive(Debug, Clone)]
pub struct CdnRpc {
    registry: Arc<CdnRegistry>,
}

impl CdnRpc {
    /// Over a node's registry.
    pub fn new(registry: Arc<CdnRegistry>) -> CdnRpc {
        CdnRpc { registry }
    }
}

fn no_role(flag: &str) -> ErrorObjectOwned {
    ErrorObject::owned(
        NO_ROLE,
        format!("this node does not run that role; start it with {flag}"),
        None::<()>,
    )
}

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObject::owned(-32603, format!("internal error: {e}"), None::<()>)
}

impl CdnApiServer for CdnRpc {
    fn cache_status(&self) -> RpcResult<CacheStatus> {
        let s = self
            .registry
            .cache
            .get()
            .ok_or_else(|| no_role("--cache"))?;
        let usage = s.store.usage();
        let tickets = s.tickets.counts().map_err(internal)?;
        let c = &s.counters;
        Ok(CacheStatus {
            chunks: usage.chunks,
            bytes: usage.bytes,
            quota: usage.quota,
            evictions: usage.evictions,
            hit_ratio: s.hit_ratio(),
            hits: c.hits.get(),
            misses: c.misses.get(),
            chunks_served: c.chunks_served.get(),
            bytes_served: c.bytes_served.get(),
            fills: c.fills.get(),
            refused: c.refused.get(),
            tickets_serving: tickets.serving,
            tickets_held: tickets.held,
            tickets_proven: tickets.proven,
            hires: s
                .tickets
                .hires()
                .map_err(internal)?
                .into_iter()
                .map(|h| HireView {
                    escrow: h.escrow.to_string(),
                    signer: h.signer.to_string(),
                    since: h.since,
                })
                .collect(),
        })
    }

    fn publisher_status(&self) -> RpcResult<PublisherStatus> {
        let s = self
            .registry
            .publisher
            .get()
            .ok_or_else(|| no_role("--publisher"))?;
        let escrow = s.escrow();
        let c = &s.counters;
        Ok(PublisherStatus {
            escrow: escrow.as_ref().map(|e| e.id.to_string()),
            rounds: escrow
                .as_ref()
                .map(|e| (e.terms().first_round, e.terms().last_round)),
            caches: s
                .caches
                .hired()
                .into_iter()
                .map(|(a, h)| CacheView {
                    account: a.to_string(),
                    peer_id: h.peer.to_string(),
                    addresses: h.addrs.iter().map(|a| a.to_string()).collect(),
                    healthy: s.caches.is_healthy(&a),
                    blames: h.blames,
                })
                .collect(),
            catalog: s
                .catalog
                .entries()
                .map_err(internal)?
                .into_iter()
                .map(|e| ObjectView {
                    object: e.object().to_string(),
                    version: e.version,
                    size: e.manifest.manifest.size,
                    chunks: e.manifest.manifest.chunks.len() as u64,
                    etag: e.etag.clone(),
                    content_type: e.content_type.clone(),
                    path: e.path,
                })
                .collect(),
            sessions: c.sessions.get(),
            bundles: c.bundles.get(),
            reissued: c.reissued.get(),
            secrets: c.secrets.get(),
            relayed: c.relayed.get(),
            fills: c.fills.get(),
        })
    }
}

//! The JSON-RPC server: limits, the access checks of [`crate::rpc_access`],
//! `GET /health` and `GET /health/ready`, and the methods of [`crate::rpc`]
//! plus the modules' own.
//!
//! - `GET /health` (liveness) answers `system_health` with 200 whenever the
//!   RPC server answers at all.
//! - `GET /health/ready` (readiness) answers 200 when the node can serve:
//!   it has peers that told it their chain status (or expects none: a lone
//!   dev node) and is not catching up with them; otherwise 503 with the
//!   reason. Both read the state `system_health` reports (`peers`,
//!   `isSyncing`, `shouldHavePeers`).

use crate::network::NetworkHandle;
use crate::rpc::{RpcContext, module};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse, Server, ServerConfig, ServerHandle};
use std::net::SocketAddr;

/// The readiness path.
pub const READY_PATH: &str = "/health/ready";

/// RPC server limits and access policy.
#[derive(Clone, Debug)]
pub struct RpcLimits {
    /// Concurrent connections.
    pub max_connections: u32,
    /// Largest request body.
    pub max_request_bytes: u32,
    /// Largest response body.
    pub max_response_bytes: u32,
    /// Subscriptions per connection.
    pub max_subscriptions_per_connection: u32,
    /// Calls in one batch request.
    pub max_batch: u32,
    /// Origins allowed (`crate::rpc_access`).
    pub cors: crate::rpc_access::RpcCors,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            max_connections: 100,
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            max_subscriptions_per_connection: 64,
            max_batch: 64,
            cors: Default::default(),
        }
    }
}

/// Starts the server on `addr`; returns the bound address and the handle.
pub async fn start(
    addr: SocketAddr,
    ctx: RpcContext,
    limits: RpcLimits,
    extra: jsonrpsee::Methods,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let network = ctx.network.clone();
    let mut module = module(ctx).map_err(std::io::Error::other)?;
    module.merge(extra).map_err(std::io::Error::other)?;
    let module = crate::rpc::with_rpc_methods(module).map_err(std::io::Error::other)?;
    let config = ServerConfig::builder()
        .max_connections(limits.max_connections)
        .max_request_body_size(limits.max_request_bytes)
        .max_response_body_size(limits.max_response_bytes)
        .max_subscriptions_per_connection(limits.max_subscriptions_per_connection)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(
            limits.max_batch,
        ))
        .build();
    // Host names a DNS-rebinding page could use are refused on loopback;
    // foreign browser origins everywhere (`crate::rpc_access`).
    let hosts = if addr.ip().is_loopback() {
        jsonrpsee::server::middleware::http::HostFilterLayer::new(
            crate::rpc_access::LOCAL_HOSTS.iter().copied(),
        )
        .map_err(std::io::Error::other)?
    } else {
        jsonrpsee::server::middleware::http::HostFilterLayer::disable()
    };
    // `GET /health` answers `system_health` (probes, load balancers).
    let health = jsonrpsee::server::middleware::http::ProxyGetRequestLayer::new([(
        "/health",
        "system_health",
    )])
    .map_err(std::io::Error::other)?;
    let middleware = tower::ServiceBuilder::new()
        .layer(hosts)
        .layer(
            tower_http::validate_request::ValidateRequestHeaderLayer::custom(
                limits.cors.validator(),
            ),
        )
        .layer(
            tower_http::validate_request::ValidateRequestHeaderLayer::custom(ready_answer(network)),
        )
        .layer(health);
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(middleware)
        .build(addr)
        .await?;
    let bound = server.local_addr()?;
    Ok((bound, server.start(module)))
}

/// What `GET /health/ready` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Connected peers.
    pub peers: usize,
    /// Connected peers whose chain status (best block, work) is known: until
    /// one is, the node cannot tell whether it is behind.
    pub peers_with_status: usize,
    /// Whether the node is catching up (`isSyncing` of `system_health`).
    pub is_syncing: bool,
    /// Whether the node expects peers (`shouldHavePeers`).
    pub should_have_peers: bool,
    /// Our best block, as the network last published it.
    pub current_block: u64,
    /// The best block any peer reports.
    pub highest_block: u64,
}

impl Readiness {
    /// The state of `network`; a node without networking is ready.
    pub fn of(network: Option<&NetworkHandle>) -> Self {
        match network {
            None => Readiness {
                peers: 0,
                peers_with_status: 0,
                is_syncing: false,
                should_have_peers: false,
                current_block: 0,
                highest_block: 0,
            },
            Some(n) => {
                let sync = n.sync_progress();
                let peers = n.peers();
                Readiness {
                    peers: peers.len(),
                    peers_with_status: peers.iter().filter(|p| p.best_number.is_some()).count(),
                    is_syncing: n.is_syncing(),
                    should_have_peers: n.should_have_peers(),
                    current_block: sync.current_block,
                    highest_block: sync.highest_block,
                }
            }
        }
    }

    /// Why the node is not ready to serve, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.should_have_peers && self.peers == 0 {
            return Some(
                "no peers, though this node expects them: check --bootnodes (peer id and port) \
                 and that its peers run the same chain spec"
                    .into(),
            );
        }
        if self.should_have_peers && self.peers_with_status == 0 {
            return Some(format!(
                "{} peers connected, none has told its chain status yet: waiting to learn whether this node is behind",
                self.peers
            ));
        }
        if self.is_syncing {
            return Some(format!(
                "syncing: at block {} of {} that its peers report; ready once caught up",
                self.current_block, self.highest_block
            ));
        }
        None
    }
}

/// Answers `GET /health/ready` (200 or 503 with a JSON body naming the
/// reason) and lets every other request through; a request validator for
/// the server's HTTP middleware, whose signature returns the answer as
/// the error.
#[allow(clippy::result_large_err)]
fn ready_answer(
    network: Option<NetworkHandle>,
) -> impl FnMut(&mut HttpRequest) -> Result<(), HttpResponse> + Clone + Send + 'static {
    move |req: &mut HttpRequest| {
        if req.method() != axum::http::Method::GET || req.uri().path() != READY_PATH {
            return Ok(());
        }
        let state = Readiness::of(network.as_ref());
        let reason = state.not_ready_reason();
        let body = serde_json::json!({
            "ready": reason.is_none(),
            "reason": reason,
            "peers": state.peers,
            "peersWithStatus": state.peers_with_status,
            "currentBlock": state.current_block,
            "highestBlock": state.highest_block,
            "isSyncing": state.is_syncing,
            "shouldHavePeers": state.should_have_peers,
        });
        let mut r = HttpResponse::new(HttpBody::from(format!("{body}\n")));
        *r.status_mut() = if reason.is_none() {
            axum::http::StatusCode::OK
        } else {
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        };
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        Err(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(peers: usize, is_syncing: bool, should_have_peers: bool) -> Readiness {
        Readiness {
            peers,
            peers_with_status: peers,
            is_syncing,
            should_have_peers,
            current_block: 10,
            highest_block: if is_syncing { 900 } else { 10 },
        }
    }

    #[test]
    fn a_node_with_peers_in_step_with_them_is_ready() {
        assert_eq!(state(3, false, true).not_ready_reason(), None);
    }

    #[test]
    fn a_lone_dev_node_without_peers_is_ready() {
        assert_eq!(state(0, false, false).not_ready_reason(), None);
        assert_eq!(Readiness::of(None).not_ready_reason(), None);
    }

    #[test]
    fn a_node_that_expects_peers_and_has_none_is_not_ready() {
        let reason = state(0, false, true).not_ready_reason().unwrap();
        assert!(reason.starts_with("no peers"), "{reason}");
    }

    #[test]
    fn a_node_whose_peers_have_not_told_their_chain_status_is_not_ready() {
        let s = Readiness {
            peers_with_status: 0,
            ..state(2, false, true)
        };
        let reason = s.not_ready_reason().unwrap();
        assert!(
            reason.contains("none has told its chain status"),
            "{reason}"
        );
    }

    #[test]
    fn a_node_catching_up_is_not_ready_and_says_how_far_behind() {
        let reason = state(2, true, true).not_ready_reason().unwrap();
        assert!(
            reason.starts_with("syncing: at block 10 of 900"),
            "{reason}"
        );
    }
}

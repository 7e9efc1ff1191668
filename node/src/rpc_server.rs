//! The JSON-RPC server: limits, the access checks of [`crate::rpc_access`],
//! `GET /health`, and the methods of [`crate::rpc`] plus the modules' own.

use crate::rpc::{RpcContext, module};
use jsonrpsee::server::{Server, ServerConfig, ServerHandle};
use std::net::SocketAddr;

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
        .layer(health);
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(middleware)
        .build(addr)
        .await?;
    let bound = server.local_addr()?;
    Ok((bound, server.start(module)))
}

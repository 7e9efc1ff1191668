//! The operator's web dashboard: a single page served by the node
//! (`--dashboard ADDR`, loopback unless told otherwise), read-only unless
//! actions are turned on (`--dashboard-actions`).
//!
//! # Design
//!
//! The page is static (HTML, CSS and a small script, built into the binary
//! with `include_str!`: no front-end toolchain at build or run time). It
//! reads everything over the node's own JSON-RPC WebSocket, which the
//! server names in `/config.json`: it subscribes to new heads
//! (`chain_subscribeNewHeads`) and refreshes its views when a head
//! arrives, so an idle chain costs nothing and there is no polling loop.
//! Pages (hash routes): chain (its difficulty is the expected number of
//! hashes per block, `2^256 / (target + 1)`, as `Target::work`), cache,
//! publisher, and an explorer (a block by number or hash, a transaction by
//! its hash from `chain_getTransaction`, an account or an escrow with its
//! history from `chain_getHistory`, paged newest first). On a new head the
//! explorer redraws only its result, so its search box keeps what is being
//! typed.
//!
//! # Safety
//!
//! Everything from the chain or the node (object paths, chain names,
//! messages) is inserted as text (`textContent`), never parsed as markup.
//! By default the page calls only safe methods and shows no action. With
//! actions on, the cache page offers "claim now" (`cache_claimNow`) and the
//! publisher page "close" on each escrow (`publisher_closeEscrow`): each
//! asks the operator to confirm, and both are unsafe RPC methods, served
//! only under the node's unsafe-method policy (loopback RPC by default),
//! so turning actions on in the page grants nothing the RPC does not
//! already allow. The dashboard's origin is
//! a local one, which the RPC's `--rpc-cors` default allows; served on
//! another interface, that origin must be added to `--rpc-cors`.

use crate::service::{ModuleContext, ModuleError, NodeModule, stop_tasks};
use axum::http::header;
use axum::response::IntoResponse;
use std::net::SocketAddr;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// The dashboard as a node module.
#[derive(Debug)]
pub struct DashboardModule {
    listener: Option<std::net::TcpListener>,
    addr: SocketAddr,
    actions: bool,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DashboardModule {
    /// Binds `addr` now (so a port 0 is known before the node starts).
    pub fn bind(addr: SocketAddr) -> Result<DashboardModule, String> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr} for the dashboard: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("dashboard socket: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("dashboard socket: {e}"))?;
        Ok(DashboardModule {
            listener: Some(listener),
            addr,
            actions: false,
            task: None,
        })
    }

    /// Offers the actions (claim now, close an escrow) when `on`.
    pub fn with_actions(mut self, on: bool) -> DashboardModule {
        self.actions = on;
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

fn asset(content_type: &'static str, body: &'static str) -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            // The page runs only its own script and talks only to the node.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:",
            ),
        ],
        body,
    )
        .into_response()
}

#[async_trait::async_trait]
impl NodeModule for DashboardModule {
    fn name(&self) -> &'static str {
        "dashboard"
    }

    async fn start(&mut self, ctx: &ModuleContext) -> Result<(), ModuleError> {
        let rpc = ctx
            .rpc_addr
            .ok_or("the dashboard reads the node over its JSON-RPC; do not use --no-rpc")?;
        let listener = self
            .listener
            .take()
            .ok_or("the dashboard was already started")?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("dashboard socket: {e}"))?;
        let config =
            serde_json::json!({ "rpcPort": rpc.port(), "actions": self.actions }).to_string();
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|| async { asset("text/html; charset=utf-8", INDEX) }),
            )
            .route(
                "/app.js",
                axum::routing::get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
            )
            .route(
                "/style.css",
                axum::routing::get(|| async { asset("text/css; charset=utf-8", STYLE) }),
            )
            .route(
                "/config.json",
                axum::routing::get(move || {
                    let c = config.clone();
                    async move { ([(header::CONTENT_TYPE, "application/json")], c) }
                }),
            );
        if !self.addr.ip().is_loopback() {
            tracing::warn!(target: "cachecash::dashboard", addr = %self.addr, "the dashboard listens beyond loopback; add its origin to --rpc-cors for the page to reach the RPC");
        }
        tracing::info!(target: "cachecash::dashboard", "dashboard on http://{}", self.addr);
        self.task = Some(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(target: "cachecash::dashboard", "the dashboard stopped: {e}");
            }
        }));
        Ok(())
    }

    async fn stop(&mut self) {
        stop_tasks(self.task.take()).await;
    }
}

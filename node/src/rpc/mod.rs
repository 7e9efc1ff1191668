//! JSON-RPC over HTTP and WebSocket on one port (jsonrpsee).
//!
//! Method names follow Substrate's legacy style; see `docs/rpc.md` for the
//! reference. Conventions: hashes, accounts and encoded data are `0x` hex;
//! balances are decimal strings; an omitted `at`/`hash` means the best
//! block. Errors are JSON-RPC errors whose message says what was wrong.
//!
//! The namespaces are typed `#[rpc(server, client)]` traits in [`api`]
//! (with their answer types), implemented in [`server`]; the CLI and the
//! tests call them through the generated clients. Methods that read
//! storage or check signatures (blocks, state, proofs, escrows,
//! transaction submission) run on the blocking pool, so a flood of them
//! cannot occupy the async workers that drive the network, sync and the
//! CDN services.
//!
//! Unsafe (node-changing) methods are served only when the policy allows:
//! `--rpc-methods auto` (default) allows them on a loopback listener only,
//! `safe` never, `unsafe` always. When denied they stay listed and answer
//! with an error explaining how to enable them.

pub mod api;
mod history;
pub mod server;

use crate::chain::Chain;
use crate::mempool::Mempool;
pub use crate::rpc_server::{RpcLimits, start};
use jsonrpsee::server::RpcModule;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;

/// Error code: a parameter is malformed (bad hex, wrong length, undecodable).
pub const INVALID_PARAMS: i32 = -32602;
/// Error code: internal failure (storage).
pub const INTERNAL: i32 = -32603;
/// Error code: the transaction is invalid or refused by the pool.
pub const INVALID_TRANSACTION: i32 = 1010;
/// Error code: unknown block.
pub const UNKNOWN_BLOCK: i32 = 1011;
/// Error code: unsafe method denied by policy.
pub const UNSAFE_DENIED: i32 = 1012;
/// Error code: the escrow does not exist.
pub const UNKNOWN_ESCROW: i32 = 1013;
/// Default page of `author_pendingTransactions`.
pub const PENDING_PAGE: u64 = 256;
/// Largest page of `author_pendingTransactions`.
pub const MAX_PENDING_PAGE: u64 = 1024;
/// Default page of `escrow_listByFunder`.
pub const FUNDER_PAGE: u64 = 256;
/// Largest page of `escrow_listByFunder`.
pub const MAX_FUNDER_PAGE: u64 = 1024;
/// Default page of `chain_getHistory`.
pub const HISTORY_PAGE: u64 = 50;
/// Largest page of `chain_getHistory`.
pub const MAX_HISTORY_PAGE: u64 = 256;
/// Error code: the node runs without networking.
pub const NO_NETWORK: i32 = 1014;

/// Which methods the server exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RpcMethods {
    /// Unsafe methods only on loopback listeners.
    #[default]
    Auto,
    /// Never unsafe methods.
    Safe,
    /// Always unsafe methods.
    Unsafe,
}

impl std::str::FromStr for RpcMethods {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(RpcMethods::Auto),
            "safe" => Ok(RpcMethods::Safe),
            "unsafe" => Ok(RpcMethods::Unsafe),
            other => Err(format!(
                "unknown --rpc-methods value '{other}'; use auto, safe or unsafe"
            )),
        }
    }
}

impl RpcMethods {
    /// Whether unsafe methods are served on `addr`.
    pub fn allows_unsafe(self, addr: &SocketAddr) -> bool {
        match self {
            RpcMethods::Auto => addr.ip().is_loopback(),
            RpcMethods::Safe => false,
            RpcMethods::Unsafe => true,
        }
    }
}

/// Static facts about the node served by `system_*`.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// Chain name from the chain spec.
    pub chain_name: String,
    /// Chain type from the chain spec (`Development`, `Local` or `Live`).
    pub chain_type: String,
    /// Chain spec `properties`.
    pub properties: Value,
    /// Node implementation version.
    pub version: String,
}

/// Shared state of the RPC handlers.
#[derive(Debug)]
pub struct RpcContext {
    /// The chain.
    pub chain: Arc<Chain>,
    /// The pool.
    pub pool: Arc<Mempool>,
    /// Static info.
    pub info: NodeInfo,
    /// Whether unsafe methods are allowed.
    pub allow_unsafe: bool,
    /// The network, if the node runs one.
    pub network: Option<crate::network::NetworkHandle>,
}

/// Builds the node's methods: every typed namespace, plus `rpc_methods`.
pub fn module(ctx: RpcContext) -> Result<RpcModule<()>, jsonrpsee::core::RegisterMethodError> {
    use api::{AuthorApiServer, ChainApiServer, EscrowApiServer, StateApiServer, SystemApiServer};
    let rpc = server::NodeRpc::new(ctx);
    let mut m = RpcModule::new(());
    m.merge(ChainApiServer::into_rpc(rpc.clone()))?;
    m.merge(StateApiServer::into_rpc(rpc.clone()))?;
    m.merge(AuthorApiServer::into_rpc(rpc.clone()))?;
    m.merge(SystemApiServer::into_rpc(rpc.clone()))?;
    m.merge(EscrowApiServer::into_rpc(rpc))?;
    Ok(m)
}

/// Adds `rpc_methods` (every method name, sorted) to `methods`.
pub fn with_rpc_methods(
    mut methods: RpcModule<()>,
) -> Result<RpcModule<()>, jsonrpsee::core::RegisterMethodError> {
    let mut names: Vec<String> = methods.method_names().map(String::from).collect();
    names.push("rpc_methods".into());
    names.sort_unstable();
    let answer = api::MethodsView { methods: names };
    methods.register_method("rpc_methods", move |_p, _c, _| {
        Ok::<api::MethodsView, jsonrpsee::types::ErrorObjectOwned>(answer.clone())
    })?;
    Ok(methods)
}

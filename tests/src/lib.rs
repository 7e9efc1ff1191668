//! Helpers for the scenario tests in `tests/`: in-process nodes on loopback
//! with ephemeral ports, RPC calls, and waiting on conditions with
//! deadlines (never blind sleeps).

use cachecash_chain_spec::ChainSpec;
use cachecash_node::PoolLimits;
use cachecash_node::chain::ChainEvent;
use cachecash_node::rpc::RpcMethods;
use cachecash_node::service::{Node, NodeConfig, Storage};
use cachecash_runtime::AccountId;
use jsonrpsee::core::client::ClientT;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The dev chain with a faster block time, for tests.
pub fn fast_dev_spec(block_time_ms: u64) -> ChainSpec {
    let mut v: Value =
        serde_json::from_str(&ChainSpec::dev().to_json(false).expect("dev spec exports"))
            .expect("dev spec is JSON");
    v["consensus"]["targetBlockTimeMs"] = Value::from(block_time_ms);
    v["name"] = Value::from("Cachecash Test");
    ChainSpec::from_json_str(&v.to_string()).expect("test spec is valid")
}

/// A dev account by name.
pub fn dev(name: &str) -> AccountId {
    cachecash_chain_spec::dev_accounts::dev_account(name).expect("known dev account")
}

/// Starts a node with RPC on an ephemeral loopback port.
pub async fn start_node(
    spec: &ChainSpec,
    base: &Path,
    storage: Storage,
    miner: Option<AccountId>,
) -> Node {
    start_node_with(spec, base, storage, miner, |_| {}).await
}

/// Like [`start_node`], with a last chance to adjust the configuration.
pub async fn start_node_with(
    spec: &ChainSpec,
    base: &Path,
    storage: Storage,
    miner: Option<AccountId>,
    adjust: impl FnOnce(&mut NodeConfig),
) -> Node {
    let mut config = NodeConfig {
        spec: spec.clone(),
        base_path: base.to_path_buf(),
        storage,
        rpc_addr: Some("127.0.0.1:0".parse().expect("address")),
        rpc_methods: RpcMethods::Auto,
        rpc_limits: Default::default(),
        prometheus_addr: Some("127.0.0.1:0".parse().expect("address")),
        mine: miner,
        pool_limits: PoolLimits::default(),
    };
    adjust(&mut config);
    Node::start(config, Vec::new()).await.expect("node starts")
}

/// Calls an RPC method over HTTP.
pub async fn rpc(addr: SocketAddr, method: &str, params: Vec<Value>) -> Result<Value, String> {
    let client = jsonrpsee::http_client::HttpClientBuilder::default()
        .build(format!("http://{addr}"))
        .map_err(|e| e.to_string())?;
    let mut p = jsonrpsee::core::params::ArrayParams::new();
    for v in params {
        p.insert(v).map_err(|e| e.to_string())?;
    }
    client
        .request::<Value, _>(method, p)
        .await
        .map_err(|e| match e {
            jsonrpsee::core::client::Error::Call(obj) => {
                format!("{}: {}", obj.code(), obj.message())
            }
            other => other.to_string(),
        })
}

/// Waits until the node's head is at least `number`, driven by chain events.
pub async fn wait_for_height(node: &Node, number: u64, deadline: Duration) {
    let mut events = node.chain().subscribe();
    let wait = async {
        loop {
            if node.chain().head().header.number >= number {
                return;
            }
            match events.recv().await {
                Ok(ChainEvent::NewHead { .. }) | Ok(ChainEvent::Reverted { .. }) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => panic!("chain closed"),
            }
        }
    };
    tokio::time::timeout(deadline, wait)
        .await
        .unwrap_or_else(|_| panic!("head did not reach #{number} within {deadline:?}"));
}

/// Waits until a transaction is in the canonical chain, driven by chain events.
pub async fn wait_for_inclusion(
    node: &Node,
    tx: cachecash_runtime::Hash,
    deadline: Duration,
) -> cachecash_runtime::Hash {
    let mut events = node.chain().subscribe();
    let wait = async {
        loop {
            if let Some(loc) = node
                .chain()
                .store()
                .tx_location(&tx)
                .expect("index readable")
            {
                return loc.block;
            }
            let _ = events.recv().await;
        }
    };
    tokio::time::timeout(deadline, wait)
        .await
        .unwrap_or_else(|_| panic!("transaction {tx} not included within {deadline:?}"))
}

//! Helpers for the scenario tests in `tests/`: in-process nodes on loopback
//! with ephemeral ports, RPC calls, and waiting on conditions with
//! deadlines (never blind sleeps).

pub mod cdn;
pub mod raw;

use cachecash_chain_spec::ChainSpec;
use cachecash_node::PoolLimits;
use cachecash_node::chain::{BlockOrigin, ChainEvent};
use cachecash_node::network::{Multiaddr, NetworkConfig};
use cachecash_node::rpc::RpcMethods;
use cachecash_node::service::{Node, NodeConfig, Storage};
use cachecash_runtime::AccountId;
use cachecash_runtime::builder::TemplateInput;
use cachecash_runtime::{Block, Call, Hash, Header, SignedTransaction, Transaction};
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
        network: None,
        state_pruning: Default::default(),
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
            // The reason a parameter was refused is in `data`.
            jsonrpsee::core::client::Error::Call(obj) => match obj.data() {
                Some(data) => format!("{}: {}: {}", obj.code(), obj.message(), data.get()),
                None => format!("{}: {}", obj.code(), obj.message()),
            },
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

/// Starts a node with networking on an ephemeral loopback port, dialling
/// `bootnodes`.
pub async fn start_networked(
    spec: &ChainSpec,
    base: &Path,
    storage: Storage,
    miner: Option<AccountId>,
    bootnodes: Vec<Multiaddr>,
) -> Node {
    start_node_with(spec, base, storage, miner, |c| {
        let mut net = NetworkConfig::loopback(base.join("network").join("secret_ed25519"));
        net.bootnodes = bootnodes;
        c.network = Some(net);
    })
    .await
}

/// Starts a networked node (memory storage, RPC on an ephemeral loopback
/// port) hosting `modules`:
/// the CDN roles in scenario tests.
pub async fn start_with_modules(
    spec: &ChainSpec,
    base: &Path,
    miner: Option<AccountId>,
    bootnodes: Vec<Multiaddr>,
    modules: Vec<Box<dyn cachecash_node::NodeModule>>,
) -> Node {
    start_with_modules_on(spec, base, miner, bootnodes, modules, None).await
}

/// [`start_with_modules`] listening on `listen` (a restart on the same
/// address) instead of an ephemeral port.
pub async fn start_with_modules_on(
    spec: &ChainSpec,
    base: &Path,
    miner: Option<AccountId>,
    bootnodes: Vec<Multiaddr>,
    modules: Vec<Box<dyn cachecash_node::NodeModule>>,
    listen: Option<Multiaddr>,
) -> Node {
    let mut net = NetworkConfig::loopback(base.join("network").join("secret_ed25519"));
    net.bootnodes = bootnodes;
    if let Some(l) = listen {
        net.listen_addrs = vec![l];
    }
    let config = NodeConfig {
        spec: spec.clone(),
        base_path: base.to_path_buf(),
        storage: Storage::Memory,
        rpc_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        rpc_methods: RpcMethods::Auto,
        rpc_limits: Default::default(),
        prometheus_addr: None,
        mine: miner,
        pool_limits: PoolLimits::default(),
        network: Some(net),
        state_pruning: Default::default(),
    };
    Node::start(config, modules).await.expect("node starts")
}

/// The node's first listen address, with its peer id.
pub fn p2p_addr(node: &Node) -> Multiaddr {
    node.network()
        .expect("networking is on")
        .listen_addresses()
        .into_iter()
        .next()
        .expect("the node listens")
}

/// Waits until `cond` holds, checking every 20 ms, or panics with `what`
/// after `deadline`.
pub async fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + deadline;
    while !cond() {
        if tokio::time::Instant::now() >= end {
            panic!("{what}: not reached within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Builds a block on `parent` with `transactions` and `timestamp`, and
/// grinds its nonce to the target the chain requires.
pub fn mine_on(
    node: &Node,
    parent: &Header,
    timestamp: u64,
    transactions: Vec<SignedTransaction>,
    miner: AccountId,
) -> Block {
    let chain = node.chain();
    let target = chain.next_target(parent).expect("target");
    let template = chain
        .build_template(
            TemplateInput {
                parent: parent.clone(),
                timestamp,
                target,
                miner,
            },
            transactions,
        )
        .expect("template builds");
    let mut block = template.block;
    grind(&mut block.header);
    block
}

/// A chain of `spec` in memory, without a node around it.
pub fn memory_chain(spec: &ChainSpec) -> cachecash_node::chain::Chain {
    cachecash_node::chain::Chain::open(
        std::sync::Arc::new(cachecash_node::storage::MemoryStore::new()),
        spec.consensus_params(),
        &spec.build_genesis().expect("valid genesis"),
        std::sync::Arc::new(cachecash_node::metrics::Metrics::new()),
    )
    .expect("a memory chain opens")
}

/// A transfer of `amount` from dev account `from` to `to` on `spec`'s
/// chain, paying the flat minimum fee.
pub fn spec_transfer(
    spec: &ChainSpec,
    from: &str,
    nonce: u64,
    to: AccountId,
    amount: u128,
) -> SignedTransaction {
    let key = cachecash_chain_spec::dev_accounts::dev_signing_key(from).expect("dev key");
    Transaction {
        signer: dev(from),
        nonce,
        fee: spec.consensus.minimum_fee,
        call: Call::Transfer { dest: to, amount },
    }
    .sign(&key, &spec.genesis_hash().expect("genesis hash"))
}

/// An `EscrowOpen` of `terms` by dev account `funder` at `nonce`, paying
/// for every round of the terms, with `penalty` and `fee`.
pub fn escrow_open_tx(
    spec: &ChainSpec,
    funder: &str,
    nonce: u64,
    terms: &cachecash_runtime::microcash::EscrowTerms,
    penalty: u128,
    fee: u128,
) -> SignedTransaction {
    let key = cachecash_chain_spec::dev_accounts::dev_signing_key(funder).expect("dev key");
    let rounds = terms.rounds().expect("valid terms");
    Transaction {
        signer: dev(funder),
        nonce,
        fee,
        call: Call::EscrowOpen {
            terms: terms.clone(),
            payment: terms.payment_required(rounds).expect("payment fits"),
            penalty,
        },
    }
    .sign(&key, &spec.genesis_hash().expect("genesis hash"))
}

/// Builds a valid block with `txs` on `chain`'s head, grinding the nonce
/// to the target; `salt` shifts the timestamp so siblings differ. Every
/// candidate must fit.
pub fn mine_chain_block(
    chain: &cachecash_node::chain::Chain,
    txs: Vec<SignedTransaction>,
    miner: AccountId,
    salt: u64,
) -> Block {
    let head = chain.head();
    let ctx = chain
        .context_for(&head.header, cachecash_node::chain::now_ms())
        .expect("context of the head");
    let template = chain
        .build_template(
            TemplateInput {
                parent: head.header.clone(),
                timestamp: ctx.median_time_past.max(head.header.timestamp) + 1 + salt,
                target: ctx.expected_target,
                miner,
            },
            txs,
        )
        .expect("template");
    assert!(template.rejected.is_empty(), "{:?}", template.rejected);
    let mut block = template.block;
    grind(&mut block.header);
    block
}

/// Finds a nonce meeting the header's own target.
pub fn grind(header: &mut Header) {
    let prefix = header.mining_prefix();
    let mut nonce = 0u64;
    while !header
        .target
        .is_met_by(&Header::hash_with_nonce(&prefix, nonce))
    {
        nonce += 1;
    }
    header.nonce = nonce;
}

/// Mines `count` empty blocks on the node's head, 1 ms apart from the
/// genesis time onwards, and imports them (for sync scenarios).
pub fn extend_chain(node: &Node, count: u64, miner: AccountId) {
    for _ in 0..count {
        let head = node.chain().head();
        let block = mine_on(
            node,
            &head.header,
            head.header.timestamp + 1,
            Vec::new(),
            miner,
        );
        node.chain()
            .import_block(block, BlockOrigin::File)
            .expect("block imports");
    }
}

/// A signed transfer of `amount` from dev account `from` to `to`.
pub fn transfer(
    node: &Node,
    from: &str,
    nonce: u64,
    to: AccountId,
    amount: u128,
) -> SignedTransaction {
    let key = cachecash_chain_spec::dev_accounts::dev_signing_key(from).expect("dev key");
    Transaction {
        signer: dev(from),
        nonce,
        fee: node.chain().params().minimum_fee,
        call: Call::Transfer { dest: to, amount },
    }
    .sign(&key, &node.chain().genesis_hash())
}

/// The hash of the head of `node`.
pub fn head_hash(node: &Node) -> Hash {
    node.chain().head().hash
}

/// Peers `node` banned, from its metrics: for one `reason` (the metric's
/// label), or for any when `None`.
pub fn bans(node: &Node, reason: Option<&str>) -> u64 {
    let label = reason.map(|r| format!("reason=\"{r}\""));
    node.chain()
        .metrics()
        .encode()
        .lines()
        .filter(|l| l.starts_with("cachecash_peer_bans_total"))
        .filter(|l| {
            label
                .as_ref()
                .is_none_or(|label| l.contains(label.as_str()))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The gossip messages `node` judged on `topic` (the metric's label,
/// `gossip_blocks` or `gossip_transactions`) with `verdict`, from its
/// metrics.
pub fn gossip_count(node: &Node, topic: &str, verdict: &str) -> u64 {
    let (t, v) = (
        format!("topic=\"{topic}\""),
        format!("verdict=\"{verdict}\""),
    );
    node.chain()
        .metrics()
        .encode()
        .lines()
        .filter(|l| {
            l.starts_with("cachecash_gossip_messages_total") && l.contains(&t) && l.contains(&v)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Small one-round escrow terms signed by dev account `signer`: 4 tickets,
/// 2 winners, rounds of 1,000 blocks (round 1 only).
pub fn one_round_terms(signer: &str) -> cachecash_runtime::microcash::EscrowTerms {
    cachecash_runtime::microcash::EscrowTerms {
        signer: dev(signer),
        face_value: 1_000,
        tickets_per_round: 4,
        winners_per_round: 2,
        round_length: 1_000,
        first_round: 1,
        last_round: 1,
        draw_delay: 1,
        claim_window: 10,
    }
}

/// Submits `tx` over `author_submitTransaction` at `addr`; panics if refused.
pub async fn submit_over_rpc(addr: SocketAddr, tx: &SignedTransaction) {
    use parity_scale_codec::Encode;
    rpc(
        addr,
        "author_submitTransaction",
        vec![Value::from(cachecash_runtime::primitives::encode_hex(
            &tx.encode(),
        ))],
    )
    .await
    .unwrap();
}

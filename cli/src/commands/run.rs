//! `cachecash [run]`: run a node.

use crate::shared;
use anyhow::Context;
use cachecash_node::PoolLimits;
use cachecash_node::network::{Multiaddr, NetworkConfig};
use cachecash_node::rpc::RpcMethods;
use cachecash_node::service::{Node, NodeConfig, Storage};
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Run a node: keep the ledger, serve JSON-RPC, optionally mine.
///
/// Examples:
///   cachecash --dev
///       dev chain, mining for alice every 2 s, temporary database, RPC on 127.0.0.1:9944
///   cachecash --chain local --base-path /tmp/node1 --mine --miner-account bob
///   cachecash --chain local --base-path /tmp/node2 --port 30334 --rpc-port 9945 \
///       --bootnodes /ip4/127.0.0.1/tcp/30333/p2p/PEER_ID_OF_NODE1
///   cachecash --chain ./my-spec.json --rpc-port 9955 --prometheus-port 9615
///   cachecash --chain local --base-path /tmp/c1 --port 30340 --no-rpc --cache --cache-quota 2GiB \
///       --bootnodes /ip4/127.0.0.1/tcp/30333/p2p/PEER_ID_OF_NODE1
///   cachecash --chain local --base-path /tmp/p1 --port 30350 --no-rpc --publisher \
///       --origin ./www --funder alice --hire /ip4/127.0.0.1/tcp/30340/p2p/PEER_ID_OF_CACHE \
///       --bootnodes /ip4/127.0.0.1/tcp/30333/p2p/PEER_ID_OF_NODE1
#[derive(Debug, Clone, Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// Development mode: the dev chain, mining on (rewards to alice unless
    /// --miner-account), in a temporary base path unless --base-path is given.
    #[arg(long)]
    pub dev: bool,
    /// Chain: `dev`, `local`, or a chain-spec JSON file [default: dev].
    #[arg(long, value_name = "CHAIN")]
    pub chain: Option<String>,
    /// Directory for databases [default: ~/.local/share/cachecash].
    #[arg(long, short = 'd', value_name = "PATH")]
    pub base_path: Option<PathBuf>,
    /// JSON-RPC port (HTTP and WebSocket).
    #[arg(long, default_value_t = 9944)]
    pub rpc_port: u16,
    /// Listen for RPC on all interfaces instead of 127.0.0.1.
    #[arg(long)]
    pub rpc_external: bool,
    /// Disable the RPC server.
    #[arg(long)]
    pub no_rpc: bool,
    /// Browser origins allowed to use the RPC: localhost (default), all, or
    /// a comma-separated list such as https://dash.example.org,http://localhost:*
    #[arg(
        long,
        default_value = "localhost",
        value_name = "localhost|all|ORIGINS"
    )]
    pub rpc_cors: cachecash_node::rpc_access::RpcCors,
    /// Which RPC methods to serve: auto (unsafe ones on localhost only), safe, unsafe.
    #[arg(long, default_value = "auto", value_name = "auto|safe|unsafe")]
    pub rpc_methods: RpcMethods,
    /// Mine blocks.
    #[arg(long)]
    pub mine: bool,
    /// Account that receives mining rewards: 0x account or a dev name (dev/local).
    #[arg(long, value_name = "ACCOUNT")]
    pub miner_account: Option<String>,
    /// Serve Prometheus metrics on 127.0.0.1:PORT/metrics.
    #[arg(long, value_name = "PORT")]
    pub prometheus_port: Option<u16>,
    /// Serve Prometheus metrics on all interfaces instead of 127.0.0.1
    /// (for a scraper on another host or pod; metrics hold no secrets).
    #[arg(long)]
    pub prometheus_external: bool,
    /// Most transactions in the mempool.
    #[arg(long, default_value_t = 8192)]
    pub pool_limit: usize,
    /// Peer-to-peer TCP port (on all interfaces), unless --listen-addr is given.
    #[arg(long, default_value_t = 30333)]
    pub port: u16,
    /// Peer-to-peer listen multiaddress, e.g. /ip4/0.0.0.0/tcp/30333 (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub listen_addr: Vec<String>,
    /// Address to announce to peers, e.g. /ip4/203.0.113.5/tcp/30333 (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub public_addr: Vec<String>,
    /// Nodes to connect to first, /ip4/ADDR/tcp/PORT/p2p/PEER_ID (repeatable or comma-separated); added to the chain spec's bootNodes.
    #[arg(long, value_name = "MULTIADDR", value_delimiter = ',')]
    pub bootnodes: Vec<String>,
    /// Nodes to stay connected to, /ip4/ADDR/tcp/PORT/p2p/PEER_ID (repeatable or comma-separated).
    #[arg(long, value_name = "MULTIADDR", value_delimiter = ',')]
    pub reserved_nodes: Vec<String>,
    /// Most connected peers.
    #[arg(long, default_value_t = 50)]
    pub max_peers: u32,
    /// State history to keep: `window` keeps the states of the last
    /// maxReorgDepth blocks (historical queries reach that far), `archive`
    /// keeps every state (e.g. `--state-pruning archive` for an explorer).
    /// Recorded in the database: without the flag a node keeps its
    /// database's mode (window for a new one); a window database cannot
    /// become an archive.
    #[arg(long, value_name = "MODE")]
    pub state_pruning: Option<cachecash_node::chain::StatePruning>,
    /// Node key file (64 hex characters); created if missing
    /// [default: BASE/chains/ID/network/secret_ed25519].
    #[arg(long, value_name = "PATH")]
    pub node_key_file: Option<PathBuf>,
    /// Serve the read-only web dashboard, on 127.0.0.1:9955 unless ADDR is
    /// given (keep it on loopback; it reads the node over its RPC).
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = "127.0.0.1:9955"
    )]
    pub dashboard: Option<SocketAddr>,
    /// Offer actions on the dashboard (a cache's "claim now", closing a
    /// publisher's escrow). Each asks for confirmation, and the RPC serves
    /// them only under the unsafe-method policy (`--rpc-methods`).
    #[arg(long, requires = "dashboard")]
    pub dashboard_actions: bool,
    /// CDN roles.
    #[command(flatten)]
    pub roles: crate::commands::roles::RoleArgs,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            dev: false,
            chain: None,
            base_path: None,
            rpc_port: 9944,
            rpc_external: false,
            no_rpc: false,
            rpc_methods: RpcMethods::Auto,
            rpc_cors: Default::default(),
            mine: false,
            miner_account: None,
            prometheus_port: None,
            prometheus_external: false,
            pool_limit: 8192,
            port: 30333,
            listen_addr: Vec::new(),
            public_addr: Vec::new(),
            bootnodes: Vec::new(),
            reserved_nodes: Vec::new(),
            max_peers: 50,
            state_pruning: Default::default(),
            node_key_file: None,
            dashboard: None,
            dashboard_actions: false,
            roles: Default::default(),
        }
    }
}

/// Runs the node until Ctrl-C or SIGTERM.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let chain = args.chain.clone().unwrap_or_else(|| "dev".to_string());
    let spec = cachecash_chain_spec::ChainSpec::load(&chain)
        .with_context(|| format!("cannot load chain '{chain}'"))?;
    let genesis = spec.genesis_hash()?;
    let mine = args.mine || args.dev;
    let miner = if mine {
        let name = match (&args.miner_account, args.dev) {
            (Some(a), _) => a.clone(),
            (None, true) => "alice".to_string(),
            (None, false) => anyhow::bail!(
                "--mine needs --miner-account ACCOUNT (a 0x account id, or a dev name such as alice on dev/local)"
            ),
        };
        Some(
            spec.resolve_account(&name)
                .with_context(|| format!("invalid --miner-account '{name}'"))?,
        )
    } else {
        if args.miner_account.is_some() {
            anyhow::bail!("--miner-account has no effect without --mine");
        }
        None
    };
    // --dev without --base-path uses a temporary directory removed on exit.
    let mut _temp = None;
    let base_path = match (&args.base_path, args.dev) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let t = tempfile::Builder::new()
                .prefix("cachecash-dev-")
                .tempdir()
                .context("cannot create a temporary base path")?;
            let p = t.path().to_path_buf();
            _temp = Some(t);
            p
        }
        (None, false) => shared::default_base_path()?,
    };
    let rpc_ip = if args.rpc_external {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let config = NodeConfig {
        spec: spec.clone(),
        base_path: base_path.clone(),
        storage: Storage::Rocks,
        rpc_addr: (!args.no_rpc).then_some(SocketAddr::new(rpc_ip, args.rpc_port)),
        rpc_methods: args.rpc_methods,
        rpc_limits: cachecash_node::rpc::RpcLimits {
            cors: args.rpc_cors.clone(),
            ..Default::default()
        },
        prometheus_addr: args.prometheus_port.map(|p| {
            let ip = if args.prometheus_external {
                Ipv4Addr::UNSPECIFIED
            } else {
                Ipv4Addr::LOCALHOST
            };
            SocketAddr::new(IpAddr::V4(ip), p)
        }),
        mine: miner,
        pool_limits: PoolLimits {
            max_transactions: args.pool_limit,
            ..PoolLimits::default()
        },
        network: Some(network_config(&args, &spec, &base_path)?),
        state_pruning: args.state_pruning,
    };
    let mut modules = crate::commands::roles::modules(&args.roles, &spec, &base_path)?;
    if let Some(addr) = args.dashboard {
        if args.no_rpc {
            anyhow::bail!("--dashboard reads the node over its RPC; drop --no-rpc");
        }
        let d = cachecash_node::dashboard::DashboardModule::bind(addr)
            .map_err(anyhow::Error::msg)?
            .with_actions(args.dashboard_actions);
        let mode = if args.dashboard_actions {
            "with actions, each confirmed, served under the unsafe-RPC policy"
        } else {
            "read-only; --dashboard-actions offers claim now and escrow close"
        };
        let addr = d.local_addr();
        eprintln!("dashboard: http://{addr} ({mode})");
        eprintln!("dashboard: {}", dashboard_reach(&args, addr));
        modules.push(Box::new(d));
    }
    let rt = shared::runtime()?;
    rt.block_on(async move {
        let node = Node::start(config, modules).await?;
        let head = node.chain().head();
        tracing::info!("cachecash {}", env!("CARGO_PKG_VERSION"));
        tracing::info!("chain:        {} ({})", spec.name, spec.id);
        tracing::info!("genesis hash: {genesis}");
        tracing::info!("base path:    {}", base_path.display());
        tracing::info!("best block:   #{} ({})", head.header.number, head.hash);
        match node.rpc_addr() {
            Some(a) => tracing::info!("JSON-RPC:     http://{a} and ws://{a}"),
            None => tracing::info!("JSON-RPC:     disabled"),
        }
        if let Some(a) = node.prometheus_addr() {
            tracing::info!("metrics:      http://{a}/metrics");
        }
        if let Some(n) = node.network() {
            tracing::info!("peer id:      {}", n.local_peer_id());
            for a in n.listen_addresses() {
                tracing::info!("p2p address:  {a}");
            }
        }
        match miner {
            Some(m) => tracing::info!("miner:        on, rewards to {m}"),
            None => tracing::info!("miner:        off"),
        }
        wait_for_shutdown().await;
        tracing::info!("shutting down");
        node.stop().await;
        anyhow::Ok(())
    })?;
    Ok(())
}

/// Who can open the dashboard at `addr`, and how to change it.
fn dashboard_reach(args: &RunArgs, addr: SocketAddr) -> String {
    let port = addr.port();
    if addr.ip().is_loopback() {
        // With --rpc-port 0 the RPC's port is known only once it listens.
        let (rpc, note) = match args.rpc_port {
            0 => (
                "RPC_PORT".to_string(),
                "; RPC_PORT: the JSON-RPC port logged below",
            ),
            p => (p.to_string(), ""),
        };
        return format!(
            "reachable only from this machine; to open it from another, forward ports {port} \
             and {rpc} over SSH (ssh -L {port}:127.0.0.1:{port} -L {rpc}:127.0.0.1:{rpc} HOST{note}), \
             or serve it on every interface with --dashboard 0.0.0.0:{port} --rpc-external \
             --rpc-cors http://HOST:{port} (the page reads this node's RPC)"
        );
    }
    let mut missing = Vec::new();
    if !args.rpc_external {
        missing
            .push("--rpc-external (the page reads this node's RPC, on 127.0.0.1 now)".to_string());
    }
    if args.rpc_cors == cachecash_node::rpc_access::RpcCors::Localhost {
        missing.push(format!(
            "the page's origin to --rpc-cors, e.g. --rpc-cors http://HOST:{port} (HOST as \
             typed in the browser)"
        ));
    }
    let mut text = format!(
        "warning: listening on {addr}, beyond this machine: whoever reaches it and the RPC \
         sees this node's state; keep it on loopback (--dashboard 127.0.0.1:{port}) unless \
         that is meant"
    );
    if !missing.is_empty() {
        text.push_str("; for the page to load from another machine, add ");
        text.push_str(&missing.join(" and "));
    }
    text
}

pub(crate) fn multiaddrs(flag: &str, values: &[String]) -> anyhow::Result<Vec<Multiaddr>> {
    values
        .iter()
        .map(|v| {
            v.trim().parse::<Multiaddr>().map_err(|e| {
                anyhow::anyhow!(
                    "{flag} '{v}' is not a multiaddress ({e}); write it like /ip4/127.0.0.1/tcp/30333/p2p/PEER_ID"
                )
            })
        })
        .collect()
}

/// The network configuration from the flags and the chain spec.
fn network_config(
    args: &RunArgs,
    spec: &cachecash_chain_spec::ChainSpec,
    base_path: &std::path::Path,
) -> anyhow::Result<NetworkConfig> {
    let mut listen_addrs = multiaddrs("--listen-addr", &args.listen_addr)?;
    if listen_addrs.is_empty() {
        listen_addrs.push(format!("/ip4/0.0.0.0/tcp/{}", args.port).parse()?);
    }
    let mut bootnodes = multiaddrs("bootNodes in the chain spec", &spec.boot_nodes)?;
    bootnodes.extend(multiaddrs("--bootnodes", &args.bootnodes)?);
    let reserved = multiaddrs("--reserved-nodes", &args.reserved_nodes)?;
    if args.max_peers == 0 {
        anyhow::bail!("--max-peers must be at least 1");
    }
    let node_key_file = args.node_key_file.clone().unwrap_or_else(|| {
        base_path
            .join("chains")
            .join(&spec.id)
            .join("network")
            .join("secret_ed25519")
    });
    let lone_dev = spec.chain_type == cachecash_chain_spec::ChainType::Development
        && bootnodes.is_empty()
        && reserved.is_empty();
    Ok(NetworkConfig {
        listen_addrs,
        public_addrs: multiaddrs("--public-addr", &args.public_addr)?,
        bootnodes,
        reserved,
        max_peers: args.max_peers,
        node_key_file,
        discovery: true,
        ban_duration: std::time::Duration::from_secs(600),
        should_have_peers: !lone_dev,
    })
}

async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

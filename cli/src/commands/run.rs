//! `cachecash [run]`: run a node.

use crate::shared;
use anyhow::Context;
use cachecash_node::PoolLimits;
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
///   cachecash --chain ./my-spec.json --rpc-port 9955 --prometheus-port 9615
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
    /// Most transactions in the mempool.
    #[arg(long, default_value_t = 8192)]
    pub pool_limit: usize,
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
            mine: false,
            miner_account: None,
            prometheus_port: None,
            pool_limit: 8192,
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
        rpc_limits: Default::default(),
        prometheus_addr: args
            .prometheus_port
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)),
        mine: miner,
        pool_limits: PoolLimits {
            max_transactions: args.pool_limit,
            ..PoolLimits::default()
        },
    };
    let rt = shared::runtime()?;
    rt.block_on(async move {
        let node = Node::start(config, Vec::new()).await?;
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

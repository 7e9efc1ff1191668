//! `cachecash fetch`: fetch an object through the CDN.
//!
//! The command runs a transient light-weight node (memory storage, no RPC,
//! no mining) that joins the network, syncs the chain to read the paying
//! escrow's terms itself, and runs the client role.

use crate::shared;
use anyhow::Context;
use cachecash_node::cdn::client::{FetchOptions, FetchRequest, Progress, fetch};
use cachecash_node::cdn::ledger::ChainLedger;
use cachecash_node::network::{NetworkConfig, PeerId};
use cachecash_node::service::{Node, NodeConfig, Storage};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Fetch an object through the CDN: bundles from the publisher, chunks from
/// its caches, verified byte by byte against the publisher's signed manifest.
///
/// Examples:
///   cachecash fetch cachecash://12D3KooW…/pkg/demo-1.0.tar.gz -o demo.tar.gz \
///       --chain local --bootnodes /ip4/127.0.0.1/tcp/30333/p2p/12D3KooW…
///   cachecash fetch cachecash://12D3KooW…/big.bin -o - --range 0-1048575 | sha256sum
///   cachecash fetch cachecash://12D3KooW…/big.bin -o big.bin --trace big.trace.jsonl
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct FetchArgs {
    /// cachecash://PUBLISHER_PEER_ID/path
    pub url: String,
    /// Output file, or - for stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: String,
    /// Byte range A-B (inclusive, as in HTTP), e.g. 0-1023.
    #[arg(long, value_name = "A-B")]
    pub range: Option<String>,
    /// Chain: dev, local, or a chain-spec JSON file [default: local].
    #[arg(long, value_name = "CHAIN")]
    pub chain: Option<String>,
    /// Nodes to join, /ip4/ADDR/tcp/PORT/p2p/PEER_ID (repeatable or comma-separated).
    #[arg(long, value_name = "MULTIADDR", value_delimiter = ',')]
    pub bootnodes: Vec<String>,
    /// Write per-bundle phase timings as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Bundles in flight.
    #[arg(long, default_value_t = 2)]
    pub window: u8,
    /// Seconds a cache has for one chunk before it is blamed.
    #[arg(long, default_value_t = 10)]
    pub chunk_timeout: u64,
    /// Most puzzle rounds accepted.
    #[arg(long, default_value_t = 8)]
    pub max_puzzle_rounds: u8,
    /// Largest puzzle start range accepted.
    #[arg(long, default_value_t = 65536)]
    pub max_puzzle_start_range: u32,
    /// Seconds to wait for the network and the chain.
    #[arg(long, default_value_t = 60)]
    pub connect_timeout: u64,
}

/// Parses `cachecash://PEER/path`.
pub fn parse_url(url: &str) -> anyhow::Result<(PeerId, String)> {
    let rest = url.strip_prefix("cachecash://").with_context(|| {
        format!("'{url}' is not a cachecash URL; write cachecash://PUBLISHER_PEER_ID/path")
    })?;
    let (peer, path) = rest
        .split_once('/')
        .with_context(|| format!("'{url}' has no object path after the publisher"))?;
    let peer: PeerId = peer
        .parse()
        .with_context(|| format!("'{peer}' is not a publisher peer id"))?;
    Ok((peer, format!("/{path}")))
}

/// Parses `A-B` (inclusive) into `[A, B+1)`.
pub fn parse_range(s: &str) -> anyhow::Result<(u64, u64)> {
    let (a, b) = s
        .split_once('-')
        .with_context(|| format!("--range '{s}' must be A-B, e.g. 0-1023"))?;
    let a: u64 = a.trim().parse().context("--range start is not a number")?;
    let b: u64 = b.trim().parse().context("--range end is not a number")?;
    if b < a {
        anyhow::bail!("--range {s}: the end is before the start");
    }
    Ok((a, b.saturating_add(1)))
}

/// Runs the fetch.
pub fn run(args: FetchArgs) -> anyhow::Result<()> {
    let (publisher, path) = parse_url(&args.url)?;
    let range = args.range.as_deref().map(parse_range).transpose()?;
    let chain = args.chain.clone().unwrap_or_else(|| "local".to_string());
    let spec = cachecash_chain_spec::ChainSpec::load(&chain)
        .with_context(|| format!("cannot load chain '{chain}'"))?;
    let dir = tempfile::Builder::new()
        .prefix("cachecash-fetch-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut bootnodes =
        crate::commands::run::multiaddrs("bootNodes in the chain spec", &spec.boot_nodes)?;
    bootnodes.extend(crate::commands::run::multiaddrs(
        "--bootnodes",
        &args.bootnodes,
    )?);
    if bootnodes.is_empty() {
        anyhow::bail!("no node to join: give --bootnodes /ip4/ADDR/tcp/PORT/p2p/PEER_ID");
    }
    let mut net = NetworkConfig::loopback(dir.path().join("node_key"));
    net.listen_addrs = vec!["/ip4/0.0.0.0/tcp/0".parse()?];
    net.bootnodes = bootnodes;
    let config = NodeConfig {
        spec,
        base_path: dir.path().to_path_buf(),
        storage: Storage::Memory,
        rpc_addr: None,
        rpc_methods: Default::default(),
        rpc_limits: Default::default(),
        prometheus_addr: None,
        mine: None,
        pool_limits: Default::default(),
        network: Some(net),
        state_pruning: Default::default(),
    };
    let options = FetchOptions {
        window: args.window.max(1),
        chunk_timeout: Duration::from_secs(args.chunk_timeout.max(1)),
        max_rounds: args.max_puzzle_rounds,
        max_start_range: args.max_puzzle_start_range,
        escrow_wait: Duration::from_secs(args.connect_timeout),
        ..Default::default()
    };
    let rt = shared::runtime()?;
    rt.block_on(async move {
        let node = Node::start(config, Vec::new()).await?;
        let result = async {
            let network = node
                .network()
                .cloned()
                .context("the fetch node has no network")?;
            // Join: a peer, then the chain caught up.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(args.connect_timeout);
            while network.peer_count() == 0 || network.is_syncing() {
                if tokio::time::Instant::now() >= deadline {
                    anyhow::bail!(
                        "could not join the network and sync within {} s; check --bootnodes and --chain",
                        args.connect_timeout
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let ledger = Arc::new(ChainLedger::new(node.chain().clone(), node.pool().clone()));
            let progress = Arc::new(Progress::default());
            let bar = show_progress(progress.clone(), args.output != "-");
            let request = FetchRequest {
                publisher,
                path: path.clone(),
                range,
            };
            let report = if args.output == "-" {
                let mut out = tokio::io::stdout();
                fetch(&network, ledger, &request, &mut out, &options, Some(progress)).await
            } else {
                let tmp = format!("{}.part", args.output);
                let mut out = tokio::fs::File::create(&tmp)
                    .await
                    .with_context(|| format!("cannot create {tmp}"))?;
                let r = fetch(&network, ledger, &request, &mut out, &options, Some(progress)).await;
                if r.is_ok() {
                    tokio::fs::rename(&tmp, &args.output)
                        .await
                        .with_context(|| format!("cannot move {tmp} to {}", args.output))?;
                } else {
                    let _ = tokio::fs::remove_file(&tmp).await;
                }
                r
            };
            if let Some(b) = bar {
                b.abort();
            }
            let report = report.with_context(|| format!("fetching {}", args.url))?;
            if let Some(t) = &args.trace {
                let mut lines = String::new();
                for tr in &report.traces {
                    lines.push_str(&serde_json::to_string(tr)?);
                    lines.push('\n');
                }
                std::fs::write(t, lines).with_context(|| format!("cannot write {}", t.display()))?;
            }
            let secs = report.elapsed.as_secs_f64().max(1e-9);
            eprintln!(
                "fetched {} bytes of {path} in {:.2} s ({:.1} MiB/s): {} bundles from {} caches{}",
                report.bytes,
                secs,
                report.bytes as f64 / secs / (1024.0 * 1024.0),
                report.bundles,
                report.per_cache.len(),
                if report.blames.is_empty() {
                    String::new()
                } else {
                    format!(", {} caches blamed and replaced", report.blames.len())
                }
            );
            anyhow::Ok(())
        }
        .await;
        node.stop().await;
        result
    })
}

/// A progress bar on stderr when it is a terminal.
fn show_progress(progress: Arc<Progress>, enabled: bool) -> Option<tokio::task::JoinHandle<()>> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(tokio::spawn(async move {
        loop {
            bar.set_length(progress.total.load(Ordering::Relaxed));
            bar.set_position(progress.written.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_ranges_parse_with_clear_errors() {
        let peer = PeerId::random();
        let (p, path) = parse_url(&format!("cachecash://{peer}/a/b.bin")).unwrap();
        assert_eq!((p, path.as_str()), (peer, "/a/b.bin"));
        assert!(parse_url("http://x/y").is_err());
        assert!(parse_url("cachecash://notapeer/x").is_err());
        assert_eq!(parse_range("0-1023").unwrap(), (0, 1024));
        assert!(parse_range("5-1").is_err());
        assert!(parse_range("abc").is_err());
    }
}

//! `cachecash benchmark cdn`: a whole CDN on loopback, each server role its
//! own process (a mining node, a publisher over a directory origin, N
//! caches), and the client in this process. One cold fetch fills the
//! caches; then warm fetches are timed.
//!
//! Measured: warm throughput, time to the first byte written, CPU seconds
//! per GiB of the server processes (from `/proc/PID/stat`) and of this
//! process (the client), and peak RSS (`VmHWM`) of the publisher and the
//! largest cache.

use crate::shared::{self, NodeClient};
use anyhow::Context;
use cachecash_node::cdn::client::{FetchOptions, FetchRequest, fetch};
use cachecash_node::cdn::ledger::ChainLedger;
use cachecash_node::network::{NetworkConfig, PeerId};
use cachecash_node::service::{Node, NodeConfig, Storage};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server role in its own process.
struct Proc {
    child: Child,
    p2p: String,
    rpc: Option<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cachecash ARGS` and reads its log until the p2p address (and the
/// RPC address, when `rpc`) appear.
fn spawn(args: &[String], rpc: bool) -> anyhow::Result<Proc> {
    let exe = std::env::current_exe().context("cannot find the cachecash binary")?;
    let mut child = Command::new(exe)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start a cachecash process")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                // Keep draining so the child never blocks on a full pipe.
                continue;
            }
        }
    });
    let mut p2p = None;
    let mut rpc_url = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while p2p.is_none() || (rpc && rpc_url.is_none()) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .with_context(|| format!("cachecash {} did not start", args.join(" ")))?;
        if let Some(a) = line.split("p2p address:").nth(1) {
            p2p = Some(a.trim().to_string());
        }
        if let Some(a) = line.split("JSON-RPC:").nth(1)
            && let Some(url) = a.split_whitespace().next()
            && url.starts_with("http")
        {
            rpc_url = Some(url.to_string());
        }
        if line.contains("ERROR") || line.starts_with("error:") {
            anyhow::bail!("cachecash {} failed: {line}", args.join(" "));
        }
    }
    Ok(Proc {
        child,
        p2p: p2p.unwrap_or_default(),
        rpc: rpc_url,
    })
}

/// (CPU seconds, peak RSS bytes) of a process.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ")".
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15: indexes 11 and 12 after ")".
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    (cpu, peak_rss(&format!("/proc/{pid}/status")))
}

fn peak_rss(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

fn self_cpu() -> f64 {
    usage(std::process::id()).0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the benchmark and returns its figures.
pub fn run(size_mib: u64, caches: usize, rounds: usize) -> anyhow::Result<Value> {
    let dir = tempfile::Builder::new()
        .prefix("cachecash-bench-cdn-")
        .tempdir()?;
    let origin = dir.path().join("origin");
    std::fs::create_dir_all(&origin)?;
    write_object(&origin.join("obj"), size_mib << 20)?;
    let base = |name: &str| dir.path().join(name).display().to_string();
    let local = "/ip4/127.0.0.1/tcp/0".to_string();
    let s = |v: &str| v.to_string();
    let chain = spawn(
        &[
            s("--chain"),
            s("dev"),
            s("--base-path"),
            base("chain"),
            s("--listen-addr"),
            local.clone(),
            s("--no-rpc"),
            s("--mine"),
            s("--miner-account"),
            s("ferdie"),
        ],
        false,
    )?;
    let mut cache_procs = Vec::new();
    for i in 0..caches {
        cache_procs.push(spawn(
            &[
                s("--chain"),
                s("dev"),
                s("--base-path"),
                base(&format!("cache{i}")),
                s("--listen-addr"),
                local.clone(),
                s("--no-rpc"),
                s("--cache"),
                s("--cache-quota"),
                s("4GiB"),
                s("--bootnodes"),
                chain.p2p.clone(),
            ],
            false,
        )?);
    }
    let hire: Vec<String> = cache_procs.iter().map(|c| c.p2p.clone()).collect();
    let publisher = spawn(
        &[
            s("--chain"),
            s("dev"),
            s("--base-path"),
            base("publisher"),
            s("--listen-addr"),
            local.clone(),
            s("--rpc-port"),
            s("0"),
            s("--publisher"),
            s("--origin"),
            origin.display().to_string(),
            s("--funder"),
            s("alice"),
            s("--hire"),
            hire.join(","),
            s("--bootnodes"),
            chain.p2p.clone(),
        ],
        true,
    )?;
    let publisher_peer: PeerId = publisher
        .p2p
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .parse()
        .context("the publisher printed no peer id")?;

    let rt = shared::runtime()?;
    rt.block_on(async {
        // Wait until the escrow is open and every cache hired.
        let rpc = NodeClient::new(publisher.rpc.as_deref().unwrap_or_default())?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(st) = rpc.call("cdn_publisherStatus", vec![]).await
                && st["escrow"].is_string()
                && st["caches"].as_array().map(Vec::len) == Some(caches)
            {
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the publisher did not open its escrow and hire {caches} caches within 120 s"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let client_dir = dir.path().join("client");
        let mut net = NetworkConfig::loopback(client_dir.join("node_key"));
        net.bootnodes = vec![chain.p2p.parse()?];
        let node = Node::start(
            NodeConfig {
                spec: cachecash_chain_spec::ChainSpec::load("dev")?,
                base_path: client_dir,
                storage: Storage::Memory,
                rpc_addr: None,
                rpc_methods: Default::default(),
                rpc_limits: Default::default(),
                prometheus_addr: None,
                mine: None,
                pool_limits: Default::default(),
                network: Some(net),
            },
            Vec::new(),
        )
        .await?;
        let result = async {
            let network = node.network().cloned().context("no network")?;
            let ledger = Arc::new(ChainLedger::new(node.chain().clone(), node.pool().clone()));
            let request = FetchRequest {
                publisher: publisher_peer,
                path: "/obj".into(),
                range: None,
            };
            let options = FetchOptions::default();
            let one = || async {
                let mut sink = tokio::io::sink();
                fetch(
                    &network,
                    ledger.clone(),
                    &request,
                    &mut sink,
                    &options,
                    None,
                )
                .await
            };
            let cold = one().await.context("cold fetch")?;
            let servers: Vec<u32> = std::iter::once(publisher.child.id())
                .chain(cache_procs.iter().map(|c| c.child.id()))
                .collect();
            let server_cpu = || servers.iter().map(|p| usage(*p).0).sum::<f64>();
            let (cpu0, self0) = (server_cpu(), self_cpu());
            let mut mibps = Vec::new();
            let mut ttfb = Vec::new();
            let mut bytes = 0u64;
            let mut blames = cold.blames.len();
            for _ in 0..rounds.max(1) {
                let r = one().await.context("warm fetch")?;
                bytes += r.bytes;
                blames += r.blames.len();
                mibps.push(r.bytes as f64 / r.elapsed.as_secs_f64() / (1 << 20) as f64);
                ttfb.push(r.first_byte.unwrap_or_default().as_secs_f64() * 1000.0);
            }
            let gib = bytes as f64 / (1u64 << 30) as f64;
            let (cpu1, self1) = (server_cpu(), self_cpu());
            let cache_rss = cache_procs
                .iter()
                .map(|c| usage(c.child.id()).1)
                .max()
                .unwrap_or(0);
            anyhow::Ok(json!({
                "objectMiB": size_mib,
                "caches": caches,
                "rounds": rounds,
                "coldMiBps": cold.bytes as f64 / cold.elapsed.as_secs_f64() / (1 << 20) as f64,
                "warmMiBps": median(&mut mibps),
                "warmMiBpsAll": mibps,
                "ttfbMs": median(&mut ttfb),
                "serverCpuSecondsPerGiB": (cpu1 - cpu0) / gib,
                "clientCpuSecondsPerGiB": (self1 - self0) / gib,
                "publisherPeakRssMiB": usage(publisher.child.id()).1 as f64 / (1 << 20) as f64,
                "cachePeakRssMiB": cache_rss as f64 / (1 << 20) as f64,
                "blames": blames,
            }))
        }
        .await;
        node.stop().await;
        result
    })
}

/// Writes `size` pseudo-random bytes (fast, not cryptographic).
fn write_object(path: &Path, size: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for b in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            b.copy_from_slice(&bytes[..b.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

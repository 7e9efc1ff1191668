//! The benchmark's client processes. Each runs a light node (memory
//! storage, no RPC) and a number of concurrent clients, each fetching
//! whole objects one after another, so that the clients' CPU and memory
//! are the OS's figures for processes of their own.
//!
//! The orchestrator talks to a driver over pipes, one JSON object per line:
//! the driver prints `{"event":"ready"}` once the publisher answers and its
//! escrow is on this node's chain, then runs each [`Pass`] read from stdin,
//! printing one [`FetchLine`] per fetch and `{"event":"done"}` at the end.
//! It exits at the end of stdin. Logs go to stderr.

use super::stats::{Phases, Zipf};
use crate::shared;
use anyhow::Context;
use cachecash_node::cdn::chunk_protocol;
use cachecash_node::cdn::client::conn::Links;
use cachecash_node::cdn::client::{FetchOptions, FetchReport, FetchRequest, fetch, open};
use cachecash_node::cdn::ledger::{ChainLedger, Ledger};
use cachecash_node::network::{NetworkConfig, NetworkHandle, PeerId};
use cachecash_node::service::{Node, NodeConfig, Storage};
use clap::Args;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// Internal: a client process of `cachecash benchmark cdn`.
#[derive(Debug, Args)]
pub struct DriverArgs {
    /// Chain.
    #[arg(long, default_value = "dev")]
    pub chain: String,
    /// Node to join.
    #[arg(long)]
    pub bootnode: String,
    /// The publisher's peer id.
    #[arg(long)]
    pub publisher: String,
    /// An object to probe for readiness.
    #[arg(long)]
    pub probe: String,
    /// Concurrent clients.
    #[arg(long)]
    pub clients: usize,
    /// Directory for the node key.
    #[arg(long)]
    pub base_path: PathBuf,
}

/// A pass: every client fetches `fetches` objects (or fetches until
/// `soak_secs` are over), each picked from `paths` by Zipf's law.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pass {
    /// Objects to pick from.
    pub paths: Vec<String>,
    /// Zipf exponent of their popularity.
    pub zipf: f64,
    /// Fetches per client.
    pub fetches: usize,
    /// Fetch until this many seconds passed instead.
    pub soak_secs: Option<u64>,
    /// Bundles in flight per fetch.
    pub window: u8,
    /// Seed of the clients' choices.
    pub seed: u64,
}

/// One fetch, as reported.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchLine {
    /// `fetch`, `ready` or `done`.
    pub event: String,
    /// The object.
    #[serde(default)]
    pub path: String,
    /// Whether it completed.
    #[serde(default)]
    pub ok: bool,
    /// Why not.
    #[serde(default)]
    pub error: Option<String>,
    /// Bytes delivered.
    #[serde(default)]
    pub bytes: u64,
    /// Whole fetch, ms.
    #[serde(default)]
    pub ms: f64,
    /// Time to the first byte, ms.
    #[serde(default)]
    pub ttfb_ms: f64,
    /// Phase times.
    #[serde(default)]
    pub phases: Phases,
    /// Blames sent.
    #[serde(default)]
    pub blames: usize,
    /// Bundles.
    #[serde(default)]
    pub bundles: u64,
    /// Seconds since the pass began, at the end of the fetch.
    #[serde(default)]
    pub at: f64,
}

fn emit(line: &FetchLine) {
    if let Ok(s) = serde_json::to_string(line) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }
}

fn event(name: &str) -> FetchLine {
    FetchLine {
        event: name.to_string(),
        ..Default::default()
    }
}

/// The phases of a finished fetch.
pub fn phases_of(r: &FetchReport) -> Phases {
    let mut p = Phases {
        publisher: r
            .traces
            .iter()
            .map(|t| t.publisher_ms)
            .fold(f64::INFINITY, f64::min),
        ..Default::default()
    };
    if !p.publisher.is_finite() {
        p.publisher = 0.0;
    }
    for t in &r.traces {
        p.transfer += t
            .ttfb_ms
            .iter()
            .zip(&t.transfer_ms)
            .map(|(a, b)| a + b)
            .fold(0.0, f64::max);
        p.decryption += t.outer_ms + t.inner_ms;
        p.puzzle += t.puzzle_ms;
        p.verification += t.verify_ms;
    }
    p
}

/// Runs a driver process until its stdin ends.
pub fn run(args: DriverArgs) -> anyhow::Result<()> {
    shared::runtime()?.block_on(async move {
        let publisher: PeerId = args.publisher.parse().context("bad --publisher")?;
        let mut net = NetworkConfig::loopback(args.base_path.join("node_key"));
        net.bootnodes = vec![args.bootnode.parse().context("bad --bootnode")?];
        let node = Node::start(
            NodeConfig {
                spec: cachecash_chain_spec::ChainSpec::load(&args.chain)?,
                base_path: args.base_path.clone(),
                storage: Storage::Memory,
                rpc_addr: None,
                rpc_methods: Default::default(),
                rpc_limits: Default::default(),
                prometheus_addr: None,
                mine: None,
                pool_limits: Default::default(),
                network: Some(net),
                state_pruning: Default::default(),
            },
            Vec::new(),
        )
        .await?;
        let result = async {
            let network = node.network().cloned().context("no network")?;
            let ledger: Arc<dyn Ledger> =
                Arc::new(ChainLedger::new(node.chain().clone(), node.pool().clone()));
            wait_ready(&network, ledger.as_ref(), publisher, &args.probe).await?;
            emit(&event("ready"));
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Some(line) = lines.next_line().await? {
                let pass: Pass = serde_json::from_str(&line).context("bad pass")?;
                run_pass(&network, &ledger, publisher, &pass, args.clients).await;
                emit(&event("done"));
            }
            anyhow::Ok(())
        }
        .await;
        node.stop().await;
        result
    })
}

/// Waits until the publisher answers for `probe` and its escrow is known.
async fn wait_ready(
    network: &NetworkHandle,
    ledger: &dyn Ledger,
    publisher: PeerId,
    probe: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let request = FetchRequest {
        publisher,
        path: probe.to_string(),
        range: Some((0, 0)),
    };
    let options = FetchOptions::default();
    loop {
        let last = match open(network, ledger.genesis(), &request, &options).await {
            Ok(o) => match ledger.escrow(o.escrow()) {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => "the escrow is not on this node's chain yet".to_string(),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            anyhow::bail!("the publisher was not ready within 120 s: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run_pass(
    network: &NetworkHandle,
    ledger: &Arc<dyn Ledger>,
    publisher: PeerId,
    pass: &Pass,
    clients: usize,
) {
    let zipf = Arc::new(Zipf::new(pass.paths.len(), pass.zipf));
    let began = Instant::now();
    let until = pass.soak_secs.map(|s| began + Duration::from_secs(s));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (network, ledger, zipf, pass) =
            (network.clone(), ledger.clone(), zipf.clone(), pass.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(pass.seed ^ ((c as u64) << 32));
            let mut options = FetchOptions {
                window: pass.window,
                ..Default::default()
            };
            // Each client is one peer of its own in a real deployment,
            // keeping its chunk stream to a cache from fetch to fetch. Here
            // a process hosts several clients under one peer id, and a
            // link per fetch made every client reopen its streams between
            // fetches: with eight clients at a cache's limit of eight
            // streams per peer, a new stream arriving before the old one's
            // slot was released was refused and retried with back-off.
            options.links = Some(Arc::new(Links::new(
                network.clone(),
                chunk_protocol(&ledger.genesis()),
                options.chunk_timeout,
            )));
            let mut done = 0usize;
            loop {
                let more = match until {
                    Some(t) => Instant::now() < t,
                    None => done < pass.fetches,
                };
                if !more {
                    break;
                }
                done += 1;
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let path = pass.paths.get(zipf.pick(u)).cloned().unwrap_or_default();
                let request = FetchRequest {
                    publisher,
                    path: path.clone(),
                    range: None,
                };
                let mut sink = tokio::io::sink();
                let t0 = Instant::now();
                let r = fetch(
                    &network,
                    ledger.clone(),
                    &request,
                    &mut sink,
                    &options,
                    None,
                )
                .await;
                let mut line = event("fetch");
                line.path = path;
                line.ms = t0.elapsed().as_secs_f64() * 1000.0;
                line.at = began.elapsed().as_secs_f64();
                match r {
                    Ok(r) => {
                        line.ok = r.bytes == r.object_size;
                        if !line.ok {
                            line.error =
                                Some(format!("delivered {} of {} bytes", r.bytes, r.object_size));
                        }
                        line.bytes = r.bytes;
                        line.ttfb_ms = r.first_byte.unwrap_or_default().as_secs_f64() * 1000.0;
                        line.phases = phases_of(&r);
                        line.blames = r.blames.len();
                        line.bundles = r.bundles;
                    }
                    Err(e) => line.error = Some(e.to_string()),
                }
                emit(&line);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// The orchestrator's handle on a driver process.
pub struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    /// The last line it wrote to stderr (its error, when it exits).
    last_err: Arc<std::sync::Mutex<String>>,
    /// Clients it runs.
    pub clients: usize,
}

impl Drop for Driver {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts a driver with `clients` clients.
    pub fn spawn(
        bootnode: &str,
        publisher: &PeerId,
        probe: &str,
        clients: usize,
        base_path: &std::path::Path,
    ) -> anyhow::Result<Driver> {
        let exe = std::env::current_exe().context("cannot find the cachecash binary")?;
        let mut child = Command::new(exe)
            .args(["benchmark", "cdn-client", "--bootnode", bootnode])
            .args(["--publisher", &publisher.to_string(), "--probe", probe])
            .args(["--clients", &clients.to_string()])
            .arg("--base-path")
            .arg(base_path)
            .env("RUST_LOG", super::procs::child_filter("warn"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start a client process")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut log = super::procs::log_file("client", child.id())?;
        let last_err = Arc::new(std::sync::Mutex::new(String::new()));
        let last = last_err.clone();
        std::thread::spawn(move || {
            // Drained always, so the client never blocks on a full pipe;
            // kept only with --log-dir; the last line says why it stopped.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = log.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if let Ok(mut l) = last.lock() {
                    *l = line.chars().take(1000).collect();
                }
            }
        });
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Driver {
            child,
            stdin,
            lines,
            last_err,
            clients,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for `ready`.
    pub fn wait_ready(&mut self) -> anyhow::Result<()> {
        let line = self.next(Duration::from_secs(150)).with_context(|| {
            format!(
                "client process {} did not become ready; its last words: {}",
                self.pid(),
                self.last_err.lock().map(|l| l.clone()).unwrap_or_default()
            )
        })?;
        anyhow::ensure!(
            line.event == "ready",
            "a client process said {line:?} before it was ready"
        );
        Ok(())
    }

    /// Sends a pass.
    pub fn start(&mut self, pass: &Pass) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the client process is closed")?;
        writeln!(stdin, "{}", serde_json::to_string(pass)?)?;
        stdin.flush()?;
        Ok(())
    }

    /// The next line, within `wait`.
    pub fn next(&mut self, wait: Duration) -> anyhow::Result<FetchLine> {
        let line = self
            .lines
            .recv_timeout(wait)
            .context("a client process stopped answering")?;
        serde_json::from_str(&line).with_context(|| format!("bad client line: {line}"))
    }
}

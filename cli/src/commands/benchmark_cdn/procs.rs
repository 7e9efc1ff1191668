//! The benchmark's processes: a CDN on loopback with every server role in
//! its own `cachecash` process (a mining node, N caches, a publisher over a
//! directory origin), and what the OS says each one used (`/proc`).

use crate::shared::NodeClient;
use anyhow::Context;
use cachecash_node::cdn::rpc::CdnApiClient;
use cachecash_node::network::PeerId;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server role in its own process; killed when dropped.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Its p2p address with `/p2p/PEER_ID`.
    pub p2p: String,
    /// Its JSON-RPC URL, when it serves one.
    pub rpc: Option<String>,
    /// Its Prometheus `/metrics` URL, when it serves one.
    pub metrics: Option<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client of its JSON-RPC server.
    pub fn rpc(&self) -> anyhow::Result<NodeClient> {
        NodeClient::new(
            self.rpc
                .as_deref()
                .context("this process was started without RPC")?,
        )
    }
}

/// Where processes' logs are kept (`--log-dir`); unset: discarded.
static LOG_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Keeps every process's log in `dir` from now on.
pub fn set_log_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the log directory {}", dir.display()))?;
    let _ = LOG_DIR.set(dir.to_path_buf());
    Ok(())
}

/// A new log file `NAME-PID.log` in the log directory, if one is set.
pub fn log_file(name: &str, pid: u32) -> anyhow::Result<Option<std::fs::File>> {
    let Some(dir) = LOG_DIR.get() else {
        return Ok(None);
    };
    let path = dir.join(format!("{name}-{pid}.log"));
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Some(file))
}

/// The log filter of a child process: `base` (the servers need `info` for
/// the addresses they print), refined by the harness's own `RUST_LOG` when
/// one is set, so `RUST_LOG=cachecash::network=debug cachecash benchmark
/// cdn --log-dir DIR` keeps every role's network log.
pub fn child_filter(base: &str) -> String {
    match std::env::var("RUST_LOG") {
        Ok(extra) if !extra.trim().is_empty() => format!("{base},{extra}"),
        _ => base.to_string(),
    }
}

/// The role a server's arguments give it, for its log's name.
fn role_of(args: &[String]) -> &'static str {
    let has = |f: &str| args.iter().any(|a| a == f);
    if has("--publisher") {
        "publisher"
    } else if has("--cache") {
        "cache"
    } else {
        "miner"
    }
}

/// Starts `cachecash ARGS` and reads its log until the p2p address (and the
/// RPC address, when `rpc`) appear.
pub fn spawn(args: &[String], rpc: bool) -> anyhow::Result<Proc> {
    let exe = std::env::current_exe().context("cannot find the cachecash binary")?;
    let mut child = Command::new(exe)
        .args(args)
        .env("RUST_LOG", child_filter("info"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start a cachecash process")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut log = log_file(role_of(args), child.id())?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::Write;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            // Keep draining after the reader is gone so the child never
            // blocks on a full pipe.
            let _ = tx.send(line);
        }
    });
    let mut p2p = None;
    let mut rpc_url = None;
    let mut metrics = None;
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
        if let Some(a) = line.split("metrics:").nth(1)
            && let Some(url) = a.split_whitespace().next()
            && url.starts_with("http")
        {
            metrics = Some(url.to_string());
        }
        if line.contains("ERROR") || line.starts_with("error:") {
            anyhow::bail!("cachecash {} failed: {line}", args.join(" "));
        }
    }
    Ok(Proc {
        child,
        p2p: p2p.unwrap_or_default(),
        rpc: rpc_url,
        metrics,
    })
}

/// What the OS says a process used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU seconds.
    pub cpu: f64,
    /// Peak resident set (`VmHWM`), bytes.
    pub peak_rss: u64,
    /// Resident set now (`VmRSS`), bytes.
    pub rss: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// Reads a process's usage; zeros for a process that is gone.
pub fn usage(pid: u32) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ")".
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15: indexes 11 and 12 after ")".
    // The kernel reports them in USER_HZ, 100 on Linux.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|k| k * 1024)
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Usage {
        cpu,
        peak_rss: kib("VmHWM:"),
        rss: kib("VmRSS:"),
        fds,
    }
}

/// Resets a process's peak RSS to its current RSS (`clear_refs` 5), so that
/// each measured pass reports its own peak. Best effort: on a kernel that
/// refuses, peaks are since the process started.
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// How to start the CDN.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Caches.
    pub caches: usize,
    /// Each cache's quota (e.g. `4GiB`).
    pub cache_quota: String,
    /// Settlement in seconds: rounds of 5 blocks, a 2-block draw delay, a
    /// 120-block claim window and claims final at depth 2, so tickets are
    /// drawn, claimed and final within a run.
    pub short_rounds: bool,
}

/// `[publisher.terms]` of the benchmark's escrow.
const TERMS: &str = "winners_per_round = 4\n";
/// `[publisher.terms]` and `[cache]` for [`ClusterOptions::short_rounds`]:
/// 1 % of the tickets win, so every round has claims.
const SHORT_TERMS: &str = "winners_per_round = 200\ntickets_per_round = 20000\nrounds = 40\nround_length = 5\ndraw_delay = 2\nclaim_window = 120\n";
const SHORT_CLAIMS: &str = "[cache]\nclaim_depth = 2\n";

/// The running CDN: a mining node, caches and a publisher, every one its
/// own process, under a temporary directory with the origin's files.
pub struct Cluster {
    /// The mining node (no RPC).
    pub miner: Proc,
    /// The caches (with RPC, for their counters).
    pub caches: Vec<Proc>,
    /// The publisher (with RPC).
    pub publisher: Proc,
    /// The publisher's peer id.
    pub publisher_peer: PeerId,
    /// The origin directory.
    pub origin: PathBuf,
    publisher_args: Vec<String>,
    cache_args: Vec<Vec<String>>,
    /// Extra `[publisher.terms]` lines.
    terms: &'static str,
    // Last, so the processes stop before their files go.
    dir: tempfile::TempDir,
}

/// Winners per round of the benchmark's escrow: the soak's bound on tickets
/// waiting for a claim.
pub const WINNERS_PER_ROUND: u32 = 4;
const _: () = assert!(WINNERS_PER_ROUND == 4, "TERMS names 4 winners per round");

fn s(v: &str) -> String {
    v.to_string()
}

/// `--max-peers` of the server roles: every client process connects to the
/// miner (its bootnode), the publisher and the caches, so the default 50
/// (of which 38 inbound) would refuse the later ones at 150 clients.
const SERVER_MAX_PEERS: &str = "256";

impl Cluster {
    /// Starts the miner and the caches, then the publisher hiring them.
    pub fn start(o: &ClusterOptions) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("cachecash-bench-cdn-")
            .tempdir()?;
        let origin = dir.path().join("origin");
        std::fs::create_dir_all(&origin)?;
        let base = |name: &str| dir.path().join(name).display().to_string();
        let local = s("/ip4/127.0.0.1/tcp/0");
        let miner = spawn(
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
                s("--max-peers"),
                s(SERVER_MAX_PEERS),
                s("--prometheus-port"),
                s("0"),
            ],
            false,
        )?;
        let mut caches = Vec::new();
        let mut cache_args = Vec::new();
        let cache_config = dir.path().join("cache.toml");
        std::fs::write(
            &cache_config,
            if o.short_rounds { SHORT_CLAIMS } else { "" },
        )?;
        for i in 0..o.caches {
            let args = vec![
                s("--chain"),
                s("dev"),
                s("--base-path"),
                base(&format!("cache{i}")),
                s("--listen-addr"),
                local.clone(),
                s("--rpc-port"),
                s("0"),
                s("--cache"),
                s("--cache-quota"),
                o.cache_quota.clone(),
                s("--bootnodes"),
                miner.p2p.clone(),
                s("--cdn-config"),
                cache_config.display().to_string(),
                s("--max-peers"),
                s(SERVER_MAX_PEERS),
                s("--prometheus-port"),
                s("0"),
            ];
            caches.push(spawn(&args, true)?);
            cache_args.push(args);
        }
        let hire: Vec<String> = caches.iter().map(|c| c.p2p.clone()).collect();
        let publisher_args = vec![
            s("--chain"),
            s("dev"),
            s("--base-path"),
            base("publisher"),
            s("--listen-addr"),
            local,
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
            miner.p2p.clone(),
            s("--max-peers"),
            s(SERVER_MAX_PEERS),
            s("--prometheus-port"),
            s("0"),
        ];
        let config = dir.path().join("cdn.toml");
        let terms = if o.short_rounds { SHORT_TERMS } else { TERMS };
        std::fs::write(
            &config,
            publisher_config(&PublisherParams::default(), terms),
        )?;
        let mut args = publisher_args.clone();
        args.extend([s("--cdn-config"), config.display().to_string()]);
        let publisher = spawn(&args, true)?;
        let publisher_peer = peer_of(&publisher)?;
        Ok(Cluster {
            miner,
            caches,
            publisher,
            publisher_peer,
            origin,
            publisher_args,
            cache_args,
            terms,
            dir,
        })
    }

    /// The working directory (origin, databases, client keys).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Restarts the publisher with new parameters. Its database, key and
    /// escrow stay; objects published before keep their manifests.
    pub fn restart_publisher(&mut self, p: &PublisherParams) -> anyhow::Result<()> {
        let config = self.dir.path().join("cdn.toml");
        std::fs::write(&config, publisher_config(p, self.terms))?;
        let _ = self.publisher.child.kill();
        let _ = self.publisher.child.wait();
        let mut args = self.publisher_args.clone();
        args.extend([s("--cdn-config"), config.display().to_string()]);
        self.publisher = spawn(&args, true)?;
        self.publisher_peer = peer_of(&self.publisher)?;
        Ok(())
    }

    /// Kills the publisher with SIGKILL and starts it again on the same
    /// address with the same database, key and configuration; returns how
    /// long the restart took (its escrow and hires come back afterwards:
    /// [`Cluster::wait_ready`]).
    pub fn kill_and_restart_publisher(&mut self) -> anyhow::Result<Duration> {
        let listen = self
            .publisher
            .p2p
            .split("/p2p/")
            .next()
            .context("the publisher has no p2p address")?
            .to_string();
        let mut args = self.publisher_args.clone();
        if let Some(pos) = args.iter().position(|a| a == "--listen-addr") {
            args[pos + 1] = listen;
        }
        let config = self.dir.path().join("cdn.toml");
        args.extend([s("--cdn-config"), config.display().to_string()]);
        let t0 = Instant::now();
        self.publisher
            .child
            .kill()
            .context("cannot kill the publisher")?;
        let _ = self.publisher.child.wait();
        let deadline = Instant::now() + Duration::from_secs(20);
        let restarted = loop {
            match spawn(&args, true) {
                Ok(p) => break p,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("publisher restart: {e:#}; retrying");
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e.context("the killed publisher did not restart")),
            }
        };
        self.publisher = restarted;
        Ok(t0.elapsed())
    }

    /// Kills cache `i` with SIGKILL and starts it again on the same address
    /// (so the publisher and the clients find it where they knew it) with
    /// the same database and key; returns how long the restart took.
    pub fn kill_and_restart_cache(&mut self, i: usize) -> anyhow::Result<Duration> {
        let cache = self.caches.get_mut(i).context("no such cache")?;
        // `/ip4/127.0.0.1/tcp/PORT/p2p/ID` → `/ip4/127.0.0.1/tcp/PORT`.
        let listen = cache
            .p2p
            .split("/p2p/")
            .next()
            .context("the cache has no p2p address")?
            .to_string();
        let mut args = self.cache_args.get(i).context("no such cache")?.clone();
        if let Some(pos) = args.iter().position(|a| a == "--listen-addr") {
            args[pos + 1] = listen;
        }
        let t0 = Instant::now();
        cache.child.kill().context("cannot kill the cache")?;
        let _ = cache.child.wait();
        // The port may linger for a moment after the kill.
        let deadline = Instant::now() + Duration::from_secs(20);
        let restarted = loop {
            match spawn(&args, true) {
                Ok(p) => break p,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("cache restart: {e:#}; retrying");
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e.context("the killed cache did not restart")),
            }
        };
        self.caches[i] = restarted;
        Ok(t0.elapsed())
    }

    /// Waits until the publisher has its escrow and has hired every cache.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let rpc = self.publisher.rpc()?;
        let want = self.caches.len();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(st) = rpc
                .run("cdn_publisherStatus", rpc.api().publisher_status())
                .await
                && st.escrow.is_some()
                && st.caches.len() == want
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the publisher did not open its escrow and hire {want} caches within 120 s"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every cache's `cdn_cacheStatus`.
    pub async fn cache_status(&self) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        for c in &self.caches {
            let rpc = c.rpc()?;
            let status = rpc.run("cdn_cacheStatus", rpc.api().cache_status()).await?;
            out.push(serde_json::to_value(status)?);
        }
        Ok(out)
    }
}

fn peer_of(p: &Proc) -> anyhow::Result<PeerId> {
    p.p2p
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .parse()
        .context("the publisher printed no peer id")
}

/// The publisher's crypto and pacing parameters (the sweep's knobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublisherParams {
    /// Puzzle rounds R.
    pub rounds: u8,
    /// Chunks per bundle k.
    pub bundle_chunks: usize,
    /// Covered chunks (k or k − 1).
    pub covered: usize,
    /// Puzzle start range.
    pub start_range: u32,
    /// Chunk size of new manifests, bytes.
    pub chunk_size: u32,
    /// Bundles issued ahead of the paid ones.
    pub window: u8,
}

impl Default for PublisherParams {
    fn default() -> Self {
        PublisherParams {
            rounds: cachecash_cdn::puzzle::DEFAULT_ROUNDS,
            bundle_chunks: 4,
            covered: 4,
            start_range: cachecash_cdn::puzzle::DEFAULT_START_RANGE,
            chunk_size: cachecash_cdn::manifest::DEFAULT_CHUNK_SIZE,
            window: 2,
        }
    }
}

/// The publisher's `--cdn-config` for these parameters.
fn publisher_config(p: &PublisherParams, terms: &str) -> String {
    format!(
        "[publisher]\nbundle_chunks = {}\nchunk_size = {}\npuzzle_rounds = {}\npuzzle_start_range = {}\npuzzle_covered = {}\nmax_window = {}\n\n[publisher.terms]\n{terms}",
        p.bundle_chunks, p.chunk_size, p.rounds, p.start_range, p.covered, p.window
    )
}

/// Writes `size` pseudo-random bytes (fast, not cryptographic; `seed`
/// makes objects differ).
pub fn write_object(path: &Path, size: u64, seed: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0xff51_afd7_ed55_8ccd);
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

//! `cachecash benchmark cdn`: the load harness. A whole CDN on loopback with
//! every role its own process: a mining node, a publisher over a directory
//! origin, N caches, and client processes each running many concurrent
//! clients ([`driver`]). CPU and peak RSS per role come from `/proc`.
//!
//! For each concurrency level it writes a fresh set of objects (so the
//! caches start empty for them), runs a **cold** pass (the first fetches
//! fill the caches) and a **warm** pass, and reports per pass: aggregate
//! MiB/s, fetch time and time to first byte (p50/p95/p99), CPU-seconds per
//! GiB and peak RSS per role, failures, the caches' hit ratio, and the share
//! of each phase of a fetch from the clients' traces. With several objects
//! the clients pick them by Zipf's law, which with a small `--cache-quota`
//! measures the hit ratio under eviction.
//!
//! `--sweep` varies the publisher's crypto parameters one at a time
//! ([`sweep`]); `--soak` keeps the clients fetching and fails on growth
//! ([`soak`]); `--kill-caches` (and `--kill-publisher`) SIGKILL roles under load and check that
//! nothing is lost ([`chaos`]); `--plot` draws the results ([`plot`]).

mod chaos;
pub mod driver;
mod plot;
pub mod procs;
mod soak;
mod stats;
mod sweep;

use anyhow::Context;
use clap::Args;
use driver::{Driver, FetchLine, Pass};
use procs::{Cluster, ClusterOptions, usage};
use serde_json::{Value, json};
use stats::{Phases, Quantiles};
use std::time::{Duration, Instant};

/// Flags of `cachecash benchmark cdn`.
#[derive(Debug, Args)]
pub struct CdnArgs {
    /// Object size in MiB.
    #[arg(long, default_value_t = 64)]
    pub size_mib: u64,
    /// Caches.
    #[arg(long, default_value_t = 5)]
    pub caches: usize,
    /// Concurrency levels: clients fetching at once, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub clients: Vec<usize>,
    /// Clients per client process. Clients of one process share its peer
    /// id, and a cache serves at most 8 streams per peer (each client holds
    /// one per cache), so more than 8 would see refusals.
    #[arg(long, default_value_t = 8)]
    pub clients_per_proc: usize,
    /// Warm fetches per client (and cold fetches per client when there are
    /// several objects).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Objects per level, picked by Zipf's law.
    #[arg(long, default_value_t = 1)]
    pub objects: usize,
    /// Zipf exponent of the objects' popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// Each cache's quota.
    #[arg(long, default_value = "4GiB")]
    pub cache_quota: String,
    /// Bundles in flight per fetch.
    #[arg(long, default_value_t = 2)]
    pub window: u8,
    /// Also sweep the crypto parameters (puzzle rounds, bundle size,
    /// covered chunks, start range, chunk size, bundles ahead).
    #[arg(long)]
    pub sweep: bool,
    /// Object size of the sweep, MiB.
    #[arg(long, default_value_t = 16)]
    pub sweep_size_mib: u64,
    /// Instead of the levels: keep the last level's clients fetching for
    /// this long (e.g. 10m, 90s) and fail if memory, file descriptors or
    /// unclaimed tickets grow without bound.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub soak: Option<Duration>,
    /// Instead of the levels: while the last level's clients keep
    /// fetching, SIGKILL a cache this many times (restarting it at once)
    /// and fail on a failed fetch, a lost ticket or a reused number.
    #[arg(long, value_name = "N")]
    pub kill_caches: Option<usize>,
    /// With `--kill-caches`: also SIGKILL the publisher this many times
    /// while it issues (after the cache kills), restarting it at once, and
    /// fail on a reused ticket number. Fetches cut by a publisher kill are
    /// counted apart, not as failures (a client holds one session).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub kill_publisher: usize,
    /// With `--kill-caches`: run the escrow on rounds of a few blocks, and
    /// after the kills wait until every ticket is final, lost or expired,
    /// then fail on a winner that expired unclaimed or a cache whose
    /// `cache_reconcile` does not balance (a kill lost or doubled a claim).
    #[arg(long)]
    pub check_settlement: bool,
    /// Seconds between soak samples.
    #[arg(long, default_value_t = 30)]
    pub sample_secs: u64,
    /// Draw throughput and p95 time to first byte against concurrency (and
    /// the sweep's trade-off) into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Keep every process's log in this directory (servers at info level
    /// as `ROLE-PID.log`, client processes at warn as `client-PID.log`),
    /// to see why a fetch failed. Without it the logs are discarded.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<std::path::PathBuf>,
}

/// Parses `90s`, `10m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}' is not a duration; write e.g. 90s, 10m or 1h"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("'{s}': unknown unit '{unit}'; use s, m or h")),
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;

/// Runs the benchmark and returns its result object.
pub fn run(a: &CdnArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(
        a.caches > 0 && a.size_mib > 0 && a.objects > 0,
        "--caches, --size-mib and --objects must be positive"
    );
    anyhow::ensure!(
        !a.clients.is_empty() && a.clients.iter().all(|&c| c > 0),
        "--clients needs positive levels, e.g. 1,10,50,150"
    );
    anyhow::ensure!(
        a.caches >= 4,
        "the publisher's bundles have 4 chunks on distinct caches: give --caches 4 or more"
    );
    anyhow::ensure!(a.zipf >= 0.0, "--zipf must not be negative");
    if let Some(dir) = &a.log_dir {
        procs::set_log_dir(dir)?;
    }
    let mut cluster = Cluster::start(&ClusterOptions {
        caches: a.caches,
        cache_quota: a.cache_quota.clone(),
        short_rounds: a.check_settlement,
    })?;
    let rt = crate::shared::runtime()?;
    rt.block_on(cluster.wait_ready())?;
    let scenario = json!({
        "objectMiB": a.size_mib,
        "caches": a.caches,
        "clientsPerProc": a.clients_per_proc,
        "rounds": a.rounds,
        "objects": a.objects,
        "zipf": a.zipf,
        "cacheQuota": a.cache_quota,
        "window": a.window,
    });
    if let Some(kills) = a.kill_caches {
        let clients = a.clients.last().copied().unwrap_or(1);
        let r = chaos::run(&mut cluster, &rt, a, clients, kills, a.kill_publisher)?;
        return Ok(json!({"scenario": scenario, "chaos": r}));
    }
    if let Some(d) = a.soak {
        let clients = a.clients.last().copied().unwrap_or(1);
        let r = soak::run(&cluster, &rt, a, clients, d)?;
        return Ok(json!({"scenario": scenario, "soak": r}));
    }
    let mut levels = Vec::new();
    for &c in &a.clients {
        levels.push(level(&cluster, &rt, a, c)?);
    }
    let sweep = if a.sweep {
        Some(sweep::run(&mut cluster, &rt, a)?)
    } else {
        None
    };
    let mut out = json!({"scenario": scenario, "levels": levels});
    if let Some(s) = sweep {
        out["sweep"] = s;
    }
    if let Some(p) = &a.plot {
        plot::draw(p, &out).with_context(|| format!("cannot draw {}", p.display()))?;
        out["plot"] = json!(p.display().to_string());
    }
    Ok(out)
}

/// One concurrency level: fresh objects, a cold pass, a warm pass.
fn level(
    cluster: &Cluster,
    rt: &tokio::runtime::Runtime,
    a: &CdnArgs,
    clients: usize,
) -> anyhow::Result<Value> {
    let paths = write_objects(cluster, &format!("c{clients}"), a.objects, a.size_mib)?;
    let mut drivers = spawn_drivers(cluster, &paths[0], clients, a.clients_per_proc, "c")?;
    let pass = |fetches: usize, seed: u64| Pass {
        paths: paths.clone(),
        zipf: a.zipf,
        fetches,
        soak_secs: None,
        window: a.window,
        seed,
    };
    let cold_fetches = if a.objects == 1 { 1 } else { a.rounds.max(1) };
    let cold = measure(cluster, rt, &mut drivers, &pass(cold_fetches, 1))?;
    let warm = measure(cluster, rt, &mut drivers, &pass(a.rounds.max(1), 2))?;
    Ok(json!({"clients": clients, "cold": cold, "warm": warm}))
}

/// Writes `n` objects of `size_mib` into the origin; returns their paths.
pub fn write_objects(
    cluster: &Cluster,
    prefix: &str,
    n: usize,
    size_mib: u64,
) -> anyhow::Result<Vec<String>> {
    (0..n)
        .map(|i| {
            let name = format!("{prefix}-{i}.bin");
            let seed = name
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
            procs::write_object(&cluster.origin.join(&name), size_mib << 20, seed)?;
            Ok(format!("/{name}"))
        })
        .collect()
}

/// Starts the client processes of a level (`per_proc` clients each, the
/// rest spread evenly) and waits until each is ready.
pub fn spawn_drivers(
    cluster: &Cluster,
    probe: &str,
    clients: usize,
    per_proc: usize,
    tag: &str,
) -> anyhow::Result<Vec<Driver>> {
    let n = clients.div_ceil(per_proc.max(1)).max(1);
    let mut drivers = Vec::new();
    for i in 0..n {
        let share = clients / n + usize::from(i < clients % n);
        let base = cluster.dir().join(format!("client-{tag}{clients}-{i}"));
        drivers.push(Driver::spawn(
            &cluster.miner.p2p,
            &cluster.publisher_peer,
            probe,
            share,
            &base,
        )?);
    }
    for d in &mut drivers {
        d.wait_ready()?;
    }
    Ok(drivers)
}

/// One fetch of every object by every client, so the caches hold them
/// before a soak or a chaos pass measures the steady state.
pub fn fill_caches(
    drivers: &mut [Driver],
    paths: &[String],
    window: u8,
) -> anyhow::Result<Vec<FetchLine>> {
    let warm = Pass {
        paths: paths.to_vec(),
        zipf: 0.0,
        fetches: 1,
        soak_secs: None,
        window,
        seed: 1,
    };
    for d in drivers.iter_mut() {
        d.start(&warm)?;
    }
    collect(drivers, &warm)
}

/// Every process of a run, by role.
fn roles<'a>(cluster: &'a Cluster, drivers: &'a [Driver]) -> Vec<(&'static str, u32)> {
    let mut v = vec![
        ("publisher", cluster.publisher.pid()),
        ("miner", cluster.miner.pid()),
    ];
    v.extend(cluster.caches.iter().map(|c| ("caches", c.pid())));
    v.extend(drivers.iter().map(|d| ("clients", d.pid())));
    v
}

/// Runs one pass on every driver and measures it.
pub fn measure(
    cluster: &Cluster,
    rt: &tokio::runtime::Runtime,
    drivers: &mut [Driver],
    pass: &Pass,
) -> anyhow::Result<Value> {
    let procs = roles(cluster, drivers);
    for (_, pid) in &procs {
        procs::reset_peak(*pid);
    }
    let before: Vec<f64> = procs.iter().map(|(_, p)| usage(*p).cpu).collect();
    let status0 = rt.block_on(cluster.cache_status())?;
    let t0 = Instant::now();
    for d in drivers.iter_mut() {
        d.start(pass)?;
    }
    let lines = collect(drivers, pass)?;
    let wall = t0.elapsed().as_secs_f64();
    let after: Vec<(f64, u64)> = procs
        .iter()
        .map(|(_, p)| {
            let u = usage(*p);
            (u.cpu, u.peak_rss)
        })
        .collect();
    let status1 = rt.block_on(cluster.cache_status())?;
    let clients: usize = drivers.iter().map(|d| d.clients).sum();
    Ok(summarise(
        &lines, wall, clients, &procs, &before, &after, &status0, &status1,
    ))
}

/// Reads every driver's lines until each says `done`.
pub fn collect(drivers: &mut [Driver], pass: &Pass) -> anyhow::Result<Vec<FetchLine>> {
    // A fetch that makes no progress fails within the session time-out
    // (60 s); a soak's drivers answer at its end.
    let wait = Duration::from_secs(pass.soak_secs.unwrap_or(0) + 300);
    let mut lines = Vec::new();
    for d in drivers.iter_mut() {
        loop {
            let l = d.next(wait)?;
            match l.event.as_str() {
                "done" => break,
                "fetch" => lines.push(l),
                other => anyhow::bail!("unexpected client event '{other}'"),
            }
        }
    }
    Ok(lines)
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    lines: &[FetchLine],
    wall: f64,
    clients: usize,
    procs: &[(&'static str, u32)],
    before: &[f64],
    after: &[(f64, u64)],
    status0: &[Value],
    status1: &[Value],
) -> Value {
    let ok: Vec<&FetchLine> = lines.iter().filter(|l| l.ok).collect();
    let bytes: u64 = ok.iter().map(|l| l.bytes).sum();
    let gib = (bytes as f64 / GIB).max(f64::MIN_POSITIVE);
    let ms: Vec<f64> = ok.iter().map(|l| l.ms).collect();
    let ttfb: Vec<f64> = ok.iter().map(|l| l.ttfb_ms).collect();
    let mut phases = Phases::default();
    for l in &ok {
        phases.add(&l.phases);
    }
    let mut errors: Vec<String> = lines.iter().filter_map(|l| l.error.clone()).collect();
    errors.sort();
    errors.dedup();
    errors.truncate(5);
    let role = |name: &str| -> (f64, u64) {
        let mut cpu = 0.0;
        let mut peak = 0;
        for (i, (r, _)) in procs.iter().enumerate() {
            if *r == name {
                let (c1, p) = after.get(i).copied().unwrap_or_default();
                cpu += c1 - before.get(i).copied().unwrap_or_default();
                peak = peak.max(p);
            }
        }
        (cpu, peak)
    };
    let (pc, pr) = role("publisher");
    let (cc, cr) = role("caches");
    let (kc, kr) = role("clients");
    let (mc, mr) = role("miner");
    let delta = |key: &str| -> u64 {
        let sum = |v: &[Value]| v.iter().map(|s| s[key].as_u64().unwrap_or(0)).sum::<u64>();
        sum(status1).saturating_sub(sum(status0))
    };
    let (hits, misses) = (delta("hits"), delta("misses"));
    json!({
        "clients": clients,
        "fetches": lines.len(),
        "failures": lines.len() - ok.len(),
        "errors": errors,
        "bytes": bytes,
        "wallSeconds": wall,
        "aggregateMiBps": bytes as f64 / MIB / wall.max(f64::MIN_POSITIVE),
        "fetchMs": Quantiles::of(&ms),
        "ttfbMs": Quantiles::of(&ttfb),
        "cpuSecondsPerGiB": {"publisher": pc / gib, "caches": cc / gib, "clients": kc / gib},
        "minerCpuSeconds": mc,
        "peakRssMiB": {
            "publisher": pr as f64 / MIB,
            "cache": cr as f64 / MIB,
            "client": kr as f64 / MIB,
            "miner": mr as f64 / MIB,
        },
        "phaseShare": phases.shares(),
        "cryptoShare": phases.crypto_share(),
        // The same crypto time against the fetches' wall time: bundles
        // overlap (a window ahead), so this is what crypto adds at most.
        "cryptoOfElapsed": (phases.decryption + phases.puzzle + phases.verification)
            / ms.iter().sum::<f64>().max(f64::MIN_POSITIVE),
        "hitRatio": if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 },
        "blames": ok.iter().map(|l| l.blames).sum::<usize>(),
    })
}

/// The human summary of a result object.
pub fn print(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    if let Some(s) = r.get("soak") {
        soak::print(s);
        return;
    }
    if let Some(c) = r.get("chaos") {
        chaos::print(c);
        return;
    }
    println!(
        "{:>7} {:>5} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>5}",
        "clients",
        "pass",
        "MiB/s",
        "fetch p50",
        "fetch p95",
        "ttfb p50",
        "ttfb p95",
        "pub RSS",
        "cacheRSS",
        "crypto",
        "pubCPU",
        "cchCPU",
        "cliCPU",
        "fail"
    );
    for l in r["levels"].as_array().into_iter().flatten() {
        for pass in ["cold", "warm"] {
            let p = &l[pass];
            println!(
                "{:>7} {:>5} {:>8.1} {:>7.0}ms {:>7.0}ms {:>7.1}ms {:>7.1}ms {:>5.1}Mi {:>6.1}Mi {:>6.1}% {:>6.2} {:>6.2} {:>6.2} {:>5}",
                l["clients"].as_u64().unwrap_or(0),
                pass,
                f(&p["aggregateMiBps"]),
                f(&p["fetchMs"]["p50"]),
                f(&p["fetchMs"]["p95"]),
                f(&p["ttfbMs"]["p50"]),
                f(&p["ttfbMs"]["p95"]),
                f(&p["peakRssMiB"]["publisher"]),
                f(&p["peakRssMiB"]["cache"]),
                f(&p["cryptoShare"]) * 100.0,
                f(&p["cpuSecondsPerGiB"]["publisher"]),
                f(&p["cpuSecondsPerGiB"]["caches"]),
                f(&p["cpuSecondsPerGiB"]["clients"]),
                p["failures"].as_u64().unwrap_or(0),
            );
        }
    }
    println!(
        "(CPU columns: CPU-seconds per GiB delivered; crypto: decryption + puzzle + verification share of a fetch's phases)"
    );
    if let Some(s) = r.get("sweep") {
        sweep::print(s);
    }
}

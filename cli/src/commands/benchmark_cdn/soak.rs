//! `--soak DURATION`: the clients keep fetching; every `--sample-secs` the
//! harness records each process's RSS and open file descriptors and the
//! tickets waiting for a claim over every cache (the claimers' own
//! `settle_tickets_pending` gauge, read from `/metrics`). It fails when a series
//! grows without bound: the least-squares line over the second half of the
//! soak, carried over the whole soak, adds more than 10 % of its mean (at
//! least 8 MiB of RSS or 16 descriptors); or when tickets waiting for a
//! claim exceed one round's winners in the second half (the claimer fell
//! behind). Each sample also scrapes the server roles' `/metrics`: their
//! allocator and database memory (what RSS is made of), the requests they
//! refused, and the caches' serving rate since the last sample. Each role's
//! CPU share since the last sample (`cpuPct`) and the caches' CPU-seconds
//! per served GiB show which role's cost rises if throughput falls.

use super::driver::Pass;
use super::procs::{Cluster, WINNERS_PER_ROUND, usage};
use super::stats::{Quantiles, grows};
use super::{CdnArgs, collect, fill_caches, spawn_drivers, write_objects};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Runs the soak.
pub fn run(
    cluster: &Cluster,
    rt: &tokio::runtime::Runtime,
    a: &CdnArgs,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Value> {
    let paths = write_objects(cluster, "soak", a.objects, a.size_mib)?;
    let mut drivers = spawn_drivers(cluster, &paths[0], clients, a.clients_per_proc, "soak")?;
    // Fill the caches first, so that the soak is the steady state.
    fill_caches(&mut drivers, &paths, a.window)?;

    let mut procs: Vec<(String, u32, Option<String>)> = vec![
        (
            "publisher".into(),
            cluster.publisher.pid(),
            cluster.publisher.metrics.clone(),
        ),
        (
            "miner".into(),
            cluster.miner.pid(),
            cluster.miner.metrics.clone(),
        ),
    ];
    procs.extend(
        cluster
            .caches
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("cache{i}"), c.pid(), c.metrics.clone())),
    );
    procs.extend(
        drivers
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("clients{i}"), d.pid(), None)),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let pass = Pass {
        paths,
        zipf: a.zipf,
        fetches: 0,
        soak_secs: Some(duration.as_secs().max(1)),
        window: a.window,
        seed: 3,
    };
    for d in drivers.iter_mut() {
        d.start(&pass)?;
    }
    let t0 = Instant::now();
    let every = Duration::from_secs(a.sample_secs.max(1));
    let mut samples: Vec<Value> = Vec::new();
    let mut rss: Vec<Vec<(f64, f64)>> = vec![Vec::new(); procs.len()];
    let mut fds: Vec<Vec<(f64, f64)>> = vec![Vec::new(); procs.len()];
    let mut allocated: Vec<Vec<(f64, f64)>> = vec![Vec::new(); procs.len()];
    let mut pending: Vec<(f64, u64)> = Vec::new();
    let mut served_before: Option<(f64, f64)> = None;
    // Each role's CPU seconds at the last sample.
    let mut cpu_before: Vec<Option<(f64, f64)>> = vec![None; procs.len()];
    let mut next = t0;
    while t0.elapsed() < duration {
        let t = t0.elapsed().as_secs_f64();
        let mut row = json!({"at": t});
        let mut served = 0.0;
        let mut pending_now = 0.0;
        let mut caches_cpu = 0.0;
        for (i, (name, pid, metrics)) in procs.iter().enumerate() {
            let u = usage(*pid);
            rss[i].push((t, u.rss as f64 / MIB));
            fds[i].push((t, u.fds as f64));
            row[name] = json!({"rssMiB": u.rss as f64 / MIB, "fds": u.fds});
            if let Some((t_prev, cpu_prev)) = cpu_before[i]
                && t > t_prev
            {
                row[name]["cpuPct"] = json!(100.0 * (u.cpu - cpu_prev) / (t - t_prev));
                if name.starts_with("cache") {
                    caches_cpu += u.cpu - cpu_prev;
                }
            }
            cpu_before[i] = Some((t, u.cpu));
            let Some(url) = metrics else { continue };
            let Some(m) = rt.block_on(scrape(&http, url)) else {
                continue;
            };
            let mem = Memory::of(&m);
            allocated[i].push((t, mem.allocated));
            row[name]["memory"] = serde_json::to_value(mem)?;
            // Requests the role turned away so far (per-peer stream slots
            // and rates): a throughput drop with these rising is the
            // limits, not the CPU.
            let refused: f64 = m
                .iter()
                .filter(|(k, _)| {
                    k.ends_with("_streams_refused_total") || k.ends_with("_rate_limited_total")
                })
                .map(|(_, v)| v)
                .sum();
            row[name]["refused"] = json!(refused);
            served += m
                .get("cachecash_cdn_cache_bytes_served_total")
                .copied()
                .unwrap_or(0.0);
            // Winners not yet final or expired, from the claimer's own
            // pass (reading the caches' earnings over RPC instead walked
            // every ticket each held, a cost that grew with the soak).
            pending_now += m
                .get("cachecash_settle_tickets_pending")
                .copied()
                .unwrap_or(0.0);
        }
        // The caches' serving rate since the last sample: whether
        // throughput holds over the soak.
        if let Some((t_prev, prev)) = served_before
            && t > t_prev
        {
            row["servedMiBps"] = json!((served - prev) / MIB / (t - t_prev));
            if served > prev {
                row["cacheCpuSecsPerGiB"] = json!(caches_cpu / ((served - prev) / MIB / 1024.0));
            }
        }
        served_before = Some((t, served));
        let p = pending_now.max(0.0) as u64;
        pending.push((t, p));
        row["pendingClaims"] = json!(p);
        eprintln!("soak {t:>6.0} s: {row}");
        samples.push(row);
        next += every;
        let left = duration.saturating_sub(t0.elapsed());
        std::thread::sleep(next.saturating_duration_since(Instant::now()).min(left));
    }
    let lines = collect(&mut drivers, &pass)?;
    let wall = t0.elapsed().as_secs_f64();

    let mut failures = Vec::new();
    let mut growth = serde_json::Map::new();
    for (i, (name, _, _)) in procs.iter().enumerate() {
        let (g_rss, bad_rss) = grows(&rss[i], 0.10, 8.0);
        // What the program holds (not a verdict: RSS is the measure, this
        // tells a leak from memory the allocator or a database keeps).
        let g_alloc = (allocated[i].len() > 1).then(|| grows(&allocated[i], 0.10, 8.0).0);
        let (g_fds, bad_fds) = grows(&fds[i], 0.10, 16.0);
        if bad_rss {
            failures.push(format!("{name}: RSS grows ({g_rss:+.1} MiB over the soak)"));
        }
        if bad_fds {
            failures.push(format!(
                "{name}: file descriptors grow ({g_fds:+.0} over the soak)"
            ));
        }
        growth.insert(
            name.clone(),
            json!({"rssMiB": g_rss, "allocatedMiB": g_alloc, "fds": g_fds, "peakRssMiB": rss[i].iter().map(|p| p.1).fold(0.0, f64::max)}),
        );
    }
    let late_pending = pending[pending.len() / 2..]
        .iter()
        .map(|p| p.1)
        .max()
        .unwrap_or(0);
    if late_pending > u64::from(WINNERS_PER_ROUND) {
        failures.push(format!(
            "the claimer fell behind: {late_pending} tickets waiting for a claim, more than one round's {WINNERS_PER_ROUND} winners"
        ));
    }
    let ok: Vec<_> = lines.iter().filter(|l| l.ok).collect();
    let bytes: u64 = ok.iter().map(|l| l.bytes).sum();
    let fetch_failures = lines.len() - ok.len();
    // Why, for the first few: a failure must be diagnosable from the report.
    let reasons: Vec<String> = lines
        .iter()
        .filter(|l| !l.ok)
        .take(3)
        .map(|l| {
            format!(
                "{}: {}",
                l.path,
                l.error.as_deref().unwrap_or("no reason given")
            )
        })
        .collect();
    if fetch_failures > 0 {
        failures.push(format!(
            "{fetch_failures} fetches failed (first: {})",
            reasons.join("; ")
        ));
    }
    let ttfb: Vec<f64> = ok.iter().map(|l| l.ttfb_ms).collect();
    Ok(json!({
        "clients": clients,
        "seconds": wall,
        "fetches": lines.len(),
        "failures": fetch_failures,
        "failureReasons": reasons,
        "aggregateMiBps": bytes as f64 / f64::from(1u32 << 20) / wall.max(1e-9),
        "ttfbMs": Quantiles::of(&ttfb),
        "growth": growth,
        "maxPendingClaimsLate": late_pending,
        "samples": samples,
        "verdict": if failures.is_empty() { "pass" } else { "fail" },
        "problems": failures,
    }))
}

/// Prints the soak's verdict.
pub fn print(s: &Value) {
    println!(
        "soak: {} clients for {:.0} s, {} fetches ({} failed), {:.1} MiB/s, ttfb p50 {:.1} ms",
        s["clients"],
        s["seconds"].as_f64().unwrap_or(0.0),
        s["fetches"],
        s["failures"],
        s["aggregateMiBps"].as_f64().unwrap_or(0.0),
        s["ttfbMs"]["p50"].as_f64().unwrap_or(0.0)
    );
    for (name, g) in s["growth"].as_object().into_iter().flatten() {
        let alloc = g["allocatedMiB"]
            .as_f64()
            .map(|a| format!(" (allocated {a:+.1} MiB)"))
            .unwrap_or_default();
        println!(
            "  {name:<10} peak RSS {:>6.1} MiB, fitted growth {:+.1} MiB{alloc}, {:+.0} fds",
            g["peakRssMiB"].as_f64().unwrap_or(0.0),
            g["rssMiB"].as_f64().unwrap_or(0.0),
            g["fds"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "  tickets waiting for a claim (second half, max): {}",
        s["maxPendingClaimsLate"]
    );
    println!("verdict: {}", s["verdict"].as_str().unwrap_or("?"));
    for p in s["problems"].as_array().into_iter().flatten() {
        println!("  {}", p.as_str().unwrap_or(""));
    }
}

const MIB: f64 = (1u64 << 20) as f64;

/// Reads a role's Prometheus text: `name{labels}` to value. `None` when
/// the role does not answer (the sample goes without it).
async fn scrape(http: &reqwest::Client, url: &str) -> Option<HashMap<String, f64>> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    Some(parse_metrics(&text))
}

/// Parses the text exposition's sample lines (comments skipped).
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Where a role's memory is, from its memory gauges, MiB.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Memory {
    /// Held by the program (Rust and RocksDB's C++).
    allocated: f64,
    /// The allocator's pages that hold allocations (`allocated` plus
    /// fragmentation).
    allocator_active: f64,
    /// The allocator's resident pages.
    allocator_resident: f64,
    /// The chain database's memtables.
    chain_memtables: f64,
    /// The chain database's block cache.
    chain_block_cache: f64,
    /// The CDN database's memtables, block cache and table readers.
    cdn_db: f64,
}

impl Memory {
    fn of(m: &HashMap<String, f64>) -> Memory {
        let get = |k: &str| m.get(k).copied().unwrap_or(0.0) / MIB;
        let cdn = |what: &str| {
            get(&format!(
                "cachecash_rocksdb_{what}_bytes{{db=\"cdn_cache\"}}"
            )) + get(&format!(
                "cachecash_rocksdb_{what}_bytes{{db=\"cdn_publisher\"}}"
            ))
        };
        Memory {
            allocated: get("cachecash_allocator_allocated_bytes"),
            allocator_active: get("cachecash_allocator_active_bytes"),
            allocator_resident: get("cachecash_allocator_resident_bytes"),
            chain_memtables: get("cachecash_rocksdb_memtable_bytes{db=\"chain\"}"),
            chain_block_cache: get("cachecash_rocksdb_block_cache_bytes{db=\"chain\"}"),
            cdn_db: cdn("memtable") + cdn("block_cache") + cdn("table_readers"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roles_memory_is_read_from_its_gauges() {
        let text = "# HELP x y\n\
            cachecash_allocator_allocated_bytes 1048576\n\
            cachecash_allocator_resident_bytes 2097152\n\
            cachecash_rocksdb_memtable_bytes{db=\"chain\"} 3145728\n\
            cachecash_rocksdb_memtable_bytes{db=\"cdn_cache\"} 1048576\n\
            cachecash_rocksdb_block_cache_bytes{db=\"chain\"} 4194304\n\
            cachecash_rocksdb_block_cache_bytes{db=\"cdn_cache\"} 1048576\n\
            cachecash_cdn_cache_bytes_served_total 42\n";
        let m = parse_metrics(text);
        assert_eq!(m["cachecash_cdn_cache_bytes_served_total"], 42.0);
        let mem = Memory::of(&m);
        assert_eq!(mem.allocated, 1.0);
        assert_eq!(mem.allocator_resident, 2.0);
        assert_eq!(mem.chain_memtables, 3.0);
        assert_eq!(mem.chain_block_cache, 4.0);
        assert_eq!(mem.cdn_db, 2.0);
    }
}

//! `--soak DURATION`: the clients keep fetching; every `--sample-secs` the
//! harness records each process's RSS and open file descriptors and the
//! tickets waiting for a claim over every cache. It fails when a series
//! grows without bound: the least-squares line over the second half of the
//! soak, carried over the whole soak, adds more than 10 % of its mean (at
//! least 8 MiB of RSS or 16 descriptors); or when tickets waiting for a
//! claim exceed one round's winners in the second half (the claimer fell
//! behind).

use super::driver::Pass;
use super::procs::{Cluster, WINNERS_PER_ROUND, usage};
use super::stats::{Quantiles, grows};
use super::{CdnArgs, collect, fill_caches, spawn_drivers, write_objects};
use serde_json::{Value, json};
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

    let mut procs: Vec<(String, u32)> = vec![
        ("publisher".into(), cluster.publisher.pid()),
        ("miner".into(), cluster.miner.pid()),
    ];
    procs.extend(
        cluster
            .caches
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("cache{i}"), c.pid())),
    );
    procs.extend(
        drivers
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("clients{i}"), d.pid())),
    );
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
    let mut pending: Vec<(f64, u64)> = Vec::new();
    let mut next = t0;
    while t0.elapsed() < duration {
        let t = t0.elapsed().as_secs_f64();
        let mut row = json!({"at": t});
        for (i, (name, pid)) in procs.iter().enumerate() {
            let u = usage(*pid);
            rss[i].push((t, u.rss as f64 / f64::from(1u32 << 20)));
            fds[i].push((t, u.fds as f64));
            row[name] = json!({"rssMiB": u.rss as f64 / f64::from(1u32 << 20), "fds": u.fds});
        }
        let p = rt.block_on(cluster.pending_claims()).unwrap_or(0);
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
    for (i, (name, _)) in procs.iter().enumerate() {
        let (g_rss, bad_rss) = grows(&rss[i], 0.10, 8.0);
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
            json!({"rssMiB": g_rss, "fds": g_fds, "peakRssMiB": rss[i].iter().map(|p| p.1).fold(0.0, f64::max)}),
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
    if fetch_failures > 0 {
        failures.push(format!("{fetch_failures} fetches failed"));
    }
    let ttfb: Vec<f64> = ok.iter().map(|l| l.ttfb_ms).collect();
    Ok(json!({
        "clients": clients,
        "seconds": wall,
        "fetches": lines.len(),
        "failures": fetch_failures,
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
        println!(
            "  {name:<10} peak RSS {:>6.1} MiB, fitted growth {:+.1} MiB, {:+.0} fds",
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

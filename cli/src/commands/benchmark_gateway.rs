//! `cachecash benchmark gateway`: the HTTP gateway against `cachecash
//! fetch`, on a `cachecash testnet` (every role its own process) over a
//! directory origin.
//!
//! Measured, all warm (one cold fetch fills the caches first):
//! - throughput of one large object through the gateway (HTTP GET, body
//!   read to the end) and through `cachecash fetch` (its own report, which
//!   excludes the fetch node's start and sync), median of `rounds`;
//! - time to first byte: request to response headers for a 64 KiB object
//!   (the gateway sends headers with the first verified bytes), median and
//!   p95 of 30;
//! - `clients` concurrent HTTP clients each fetching a 1 MiB object
//!   `per_client` times: aggregate throughput, p50/p95 latency, failures.

use anyhow::Context;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Testnet(Child);

impl Drop for Testnet {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.0.wait();
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// GETs `url` and reads the body: (bytes, seconds to headers, seconds in all).
async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<(u64, f64, f64)> {
    let t = Instant::now();
    let mut r = http.get(url).send().await?;
    let ttfb = t.elapsed().as_secs_f64();
    if !r.status().is_success() {
        anyhow::bail!("{url}: {}", r.status());
    }
    let mut n = 0u64;
    while let Some(c) = r.chunk().await? {
        n += c.len() as u64;
    }
    Ok((n, ttfb, t.elapsed().as_secs_f64()))
}

/// One `cachecash fetch` of `url`: its reported MiB/s.
fn fetch_once(url: &str, bootnodes: &str) -> anyhow::Result<f64> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args([
            "fetch",
            url,
            "-o",
            "-",
            "--chain",
            "dev",
            "--bootnodes",
            bootnodes,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run cachecash fetch")?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        anyhow::bail!("cachecash fetch failed: {err}");
    }
    // "fetched N bytes of PATH in X s (Y MiB/s): …"
    err.lines()
        .find_map(|l| {
            let rest = l.split(" s (").nth(1)?;
            rest.split(" MiB/s").next()?.trim().parse::<f64>().ok()
        })
        .with_context(|| format!("no throughput in cachecash fetch's output: {err}"))
}

/// Runs the benchmark.
pub fn run(
    size_mib: u64,
    caches: u16,
    rounds: usize,
    clients: usize,
    per_client: usize,
) -> anyhow::Result<Value> {
    let dir = tempfile::Builder::new()
        .prefix("cachecash-bench-gateway-")
        .tempdir()?;
    let origin = dir.path().join("origin");
    std::fs::create_dir_all(&origin)?;
    let size = usize::try_from(size_mib << 20)?;
    std::fs::write(
        origin.join("large.bin"),
        crate::commands::testnet::demo::bytes_for("large", size),
    )?;
    std::fs::write(
        origin.join("1MiB.bin"),
        crate::commands::testnet::demo::bytes_for("1MiB", 1 << 20),
    )?;
    std::fs::write(
        origin.join("64KiB.bin"),
        crate::commands::testnet::demo::bytes_for("64KiB", 64 << 10),
    )?;
    let net_dir = dir.path().join("net");
    let child = Command::new(std::env::current_exe()?)
        .args(["testnet", "--caches", &caches.to_string(), "--dir"])
        .arg(&net_dir)
        .arg("--origin")
        .arg(&origin)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start cachecash testnet")?;
    let _net = Testnet(child);
    let ready = wait_ready(&net_dir)?;
    let gateway = ready["gateway"].as_str().unwrap_or_default().to_string();
    let publisher = ready["publisher"].as_str().unwrap_or_default().to_string();
    let bootnodes = ready["bootnodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let rt = crate::shared::runtime()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .pool_max_idle_per_host(clients.max(1))
        .build()?;
    let large = format!("{gateway}/large.bin");

    // Cold: fills the caches.
    let (n, _, cold) = rt.block_on(get(&http, &large))?;
    if n != size as u64 {
        anyhow::bail!("the gateway sent {n} bytes of {size}");
    }
    for path in ["/1MiB.bin", "/64KiB.bin"] {
        rt.block_on(get(&http, &format!("{gateway}{path}")))?;
    }
    let mib = size_mib as f64;
    let mut gw = Vec::new();
    for _ in 0..rounds.max(1) {
        let (_, _, secs) = rt.block_on(get(&http, &large))?;
        gw.push(mib / secs);
    }
    let mut fetch = Vec::new();
    for _ in 0..rounds.max(1) {
        fetch.push(fetch_once(
            &format!("cachecash://{publisher}/large.bin"),
            &bootnodes,
        )?);
    }
    let mut ttfb = Vec::new();
    for _ in 0..30 {
        let (_, t, _) = rt.block_on(get(&http, &format!("{gateway}/64KiB.bin")))?;
        ttfb.push(t * 1e3);
    }
    // Concurrent clients, each its own connection.
    let small = format!("{gateway}/1MiB.bin");
    let started = Instant::now();
    let results: Vec<anyhow::Result<Vec<f64>>> = rt.block_on(async {
        let tasks: Vec<_> = (0..clients.max(1))
            .map(|_| {
                let small = small.clone();
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .timeout(Duration::from_secs(600))
                        .build()?;
                    let mut lat = Vec::new();
                    for _ in 0..per_client.max(1) {
                        let (n, _, secs) = get(&http, &small).await?;
                        if n != 1 << 20 {
                            anyhow::bail!("short body: {n}");
                        }
                        lat.push(secs * 1e3);
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(anyhow::Error::from).and_then(|r| r));
        }
        out
    });
    let wall = started.elapsed().as_secs_f64();
    let failures = results.iter().filter(|r| r.is_err()).count();
    let mut lat: Vec<f64> = results.into_iter().flatten().flatten().collect();
    let ok_mib = lat.len() as f64; // each request is 1 MiB
    let gw_median = percentile(&mut gw, 0.5);
    let fetch_median = percentile(&mut fetch, 0.5);
    Ok(json!({
        "objectMiB": size_mib,
        "caches": caches,
        "coldGatewayMiBps": mib / cold,
        "gatewayMiBps": gw_median,
        "gatewayRuns": gw,
        "fetchMiBps": fetch_median,
        "fetchRuns": fetch,
        "gatewayShareOfFetch": if fetch_median > 0.0 { gw_median / fetch_median } else { 0.0 },
        "ttfbMs": percentile(&mut ttfb.clone(), 0.5),
        "ttfbP95Ms": percentile(&mut ttfb, 0.95),
        "concurrentClients": clients,
        "requestsPerClient": per_client,
        "concurrentMiBps": ok_mib / wall,
        "latencyP50Ms": percentile(&mut lat.clone(), 0.5),
        "latencyP95Ms": percentile(&mut lat, 0.95),
        "failures": failures,
    }))
}

fn wait_ready(dir: &Path) -> anyhow::Result<Value> {
    let end = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(t) = std::fs::read_to_string(dir.join("ready.json"))
            && let Ok(v) = serde_json::from_str(&t)
        {
            return Ok(v);
        }
        if Instant::now() >= end {
            anyhow::bail!(
                "the testnet did not come up within 180 s; see {}",
                dir.join("logs").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

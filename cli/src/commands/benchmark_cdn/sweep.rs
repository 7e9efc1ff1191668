//! `--sweep`: the crypto-parameter study. From the deployed defaults
//! (R = 2, k = 4 chunks all covered, start range 8192, 128 KiB chunks, two
//! bundles ahead) each knob is varied alone, one publisher restart per
//! point, with one client fetching a fresh object: cold once, then warm.
//!
//! The security side is the puzzle's **work factor**: the compressions an
//! exhaustive solve costs, `effective start range × (R·k' − 1)` with `k'`
//! covered chunks. It is what a client pays per bundle in the worst case,
//! and a bound on how cheaply a colluder can test start offsets; what keeps
//! a client that lacks a covered chunk from the secret is that every walk
//! visits blocks of every covered chunk (R ≥ 2), which the "k − 1" variant
//! gives up for the uncovered one.

use super::driver::Pass;
use super::procs::{Cluster, PublisherParams};
use super::{CdnArgs, measure, spawn_drivers, write_objects};
use serde_json::{Value, json};

/// The points: a label and the publisher's parameters.
fn points() -> Vec<(String, PublisherParams)> {
    let d = PublisherParams::default();
    let mut v = vec![("defaults".to_string(), d)];
    for r in [3u8, 4, 8] {
        v.push((format!("R={r}"), PublisherParams { rounds: r, ..d }));
    }
    for k in [3usize, 5] {
        v.push((
            format!("k={k}"),
            PublisherParams {
                bundle_chunks: k,
                covered: k,
                ..d
            },
        ));
    }
    v.push((
        "covered 3 of 4".to_string(),
        PublisherParams { covered: 3, ..d },
    ));
    for s in [512u32, 2048] {
        v.push((
            format!("start range {s}"),
            PublisherParams {
                start_range: s,
                ..d
            },
        ));
    }
    for (label, c) in [
        ("64 KiB", 64u32 << 10),
        ("256 KiB", 256 << 10),
        ("1 MiB", 1 << 20),
    ] {
        v.push((
            format!("chunk {label}"),
            PublisherParams {
                chunk_size: c,
                start_range: d.start_range.max(c / 16),
                ..d
            },
        ));
    }
    for w in [1u8, 4] {
        v.push((format!("window {w}"), PublisherParams { window: w, ..d }));
    }
    v
}

/// Worst-case compressions of a solve.
pub fn work_factor(p: &PublisherParams) -> u64 {
    let blocks = u64::from(p.chunk_size).div_ceil(16);
    let range = blocks.min(u64::from(p.start_range));
    let covered = if p.covered == 0 {
        p.bundle_chunks
    } else {
        p.covered.min(p.bundle_chunks)
    };
    let steps = (u64::from(p.rounds) * covered as u64).saturating_sub(1);
    range * steps
}

/// Runs every point; restores the defaults at the end.
pub fn run(
    cluster: &mut Cluster,
    rt: &tokio::runtime::Runtime,
    a: &CdnArgs,
) -> anyhow::Result<Value> {
    let mut out = Vec::new();
    for (i, (label, params)) in points().into_iter().enumerate() {
        if params.bundle_chunks > cluster.caches.len() {
            continue;
        }
        cluster.restart_publisher(&params)?;
        rt.block_on(cluster.wait_ready())?;
        let paths = write_objects(cluster, &format!("sweep{i}"), 1, a.sweep_size_mib)?;
        let mut drivers = spawn_drivers(cluster, &paths[0], 1, 1, &format!("s{i}-"))?;
        let pass = |fetches: usize, seed: u64| Pass {
            paths: paths.clone(),
            zipf: 0.0,
            fetches,
            soak_secs: None,
            window: params.window,
            seed,
        };
        let cold = measure(cluster, rt, &mut drivers, &pass(1, 1))?;
        let warm = measure(cluster, rt, &mut drivers, &pass(a.rounds.max(1), 2))?;
        out.push(json!({
            "label": label,
            "params": params,
            "workFactor": work_factor(&params),
            "coldTtfbMs": cold["ttfbMs"]["p50"],
            "ttfbMs": warm["ttfbMs"]["p50"],
            "MiBps": warm["aggregateMiBps"],
            "clientCpuSecondsPerGiB": warm["cpuSecondsPerGiB"]["clients"],
            "cryptoShare": warm["cryptoShare"],
            "puzzleShare": warm["phaseShare"]["puzzle"],
            "failures": cold["failures"].as_u64().unwrap_or(0) + warm["failures"].as_u64().unwrap_or(0),
        }));
    }
    cluster.restart_publisher(&PublisherParams::default())?;
    rt.block_on(cluster.wait_ready())?;
    Ok(Value::Array(out))
}

/// Prints the sweep's table.
pub fn print(s: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!(
        "\n{:<16} {:>12} {:>9} {:>9} {:>10} {:>7} {:>7} {:>5}",
        "sweep point", "work factor", "ttfb", "MiB/s", "client CPU", "crypto", "puzzle", "fail"
    );
    for p in s.as_array().into_iter().flatten() {
        println!(
            "{:<16} {:>12} {:>7.1}ms {:>9.1} {:>10.2} {:>6.1}% {:>6.1}% {:>5}",
            p["label"].as_str().unwrap_or(""),
            p["workFactor"].as_u64().unwrap_or(0),
            f(&p["ttfbMs"]),
            f(&p["MiBps"]),
            f(&p["clientCpuSecondsPerGiB"]),
            f(&p["cryptoShare"]) * 100.0,
            f(&p["puzzleShare"]) * 100.0,
            p["failures"].as_u64().unwrap_or(0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_factor_of_the_defaults_and_the_three_of_four_variant() {
        let d = PublisherParams::default();
        // 128 KiB chunks: 8192 blocks, all in range; R·k − 1 = 7 steps.
        assert_eq!(work_factor(&d), 8192 * 7);
        assert_eq!(work_factor(&PublisherParams { covered: 3, ..d }), 8192 * 5);
        // A start range above the chunk's blocks is capped by them.
        assert_eq!(
            work_factor(&PublisherParams {
                chunk_size: 64 << 10,
                ..d
            }),
            4096 * 7
        );
        assert_eq!(
            work_factor(&PublisherParams {
                start_range: 512,
                ..d
            }),
            512 * 7
        );
    }

    #[test]
    fn every_sweep_point_changes_one_knob() {
        let d = PublisherParams::default();
        for (label, p) in points().into_iter().skip(1) {
            let changed = [
                p.rounds != d.rounds,
                p.bundle_chunks != d.bundle_chunks,
                p.covered != d.covered && p.covered != p.bundle_chunks,
                p.start_range != d.start_range && p.chunk_size == d.chunk_size,
                p.chunk_size != d.chunk_size,
                p.window != d.window,
            ]
            .iter()
            .filter(|c| **c)
            .count();
            assert_eq!(changed, 1, "{label}: {p:?}");
        }
    }
}

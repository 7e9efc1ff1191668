//! `--kill-caches N`: while the clients keep fetching, SIGKILL a cache N
//! times (each time the next one, after 1.5 to 3.5 s) and restart it at
//! once on the same address with the same database. After each restart
//! the cache's ticket store must hold at least every ticket it held just
//! before the kill, and at the end no fetch may have failed (the clients
//! fail over to the other caches) and no ticket number may appear twice
//! over every ticket the caches hold (the publisher never reuses one).
//! At the end every chunk in every cache's store must hash to its id.
//!
//! `--kill-publisher M` then SIGKILLs the publisher M times while it issues
//! and restarts it on the same address with the same database: its
//! durable number reservations must keep every ticket number unique over
//! every ticket the caches hold, across all the kills. A client's session
//! dies with the publisher, so fetches that fail after the first publisher
//! kill are counted as `interruptedFetches`, not as failures.
//!
//! The verdict is the result's `verdict` (`pass` or `fail`), with the
//! reasons; the command exits non-zero on `fail`.

use super::driver::Pass;
use super::procs::Cluster;
use super::{CdnArgs, collect, fill_caches, spawn_drivers, write_objects};
use crate::shared::NodeClient;
use cachecash_node::cdn::settle_rpc::CacheApiClient;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Every ticket a cache holds, as (escrow, round, number), read page by
/// page.
async fn tickets(c: &NodeClient) -> anyhow::Result<Vec<(String, u64, u32)>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = c
            .run(
                "cache_tickets",
                c.api().tickets(None, after.clone(), Some(1000)),
            )
            .await?;
        let done = page.next.is_none() || page.tickets.is_empty();
        out.extend(
            page.tickets
                .into_iter()
                .map(|t| (t.escrow, t.round, t.number)),
        );
        if done {
            return Ok(out);
        }
        after = page.next;
    }
}

/// A cache (trying `first` first) with a claim transaction submitted and
/// not yet in a block, polled for up to 30 s.
async fn a_cache_claiming(cluster: &Cluster, first: usize) -> anyhow::Result<Option<usize>> {
    let n = cluster.caches.len();
    let rpcs = cluster
        .caches
        .iter()
        .map(|c| c.rpc())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for j in 0..n {
            let i = (first + j) % n;
            let rpc = &rpcs[i];
            let page = rpc
                .run(
                    "cache_tickets",
                    rpc.api().tickets(Some("submitted".into()), None, Some(1)),
                )
                .await?;
            if !page.tickets.is_empty() {
                return Ok(Some(i));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(None)
}

/// States a ticket leaves only by settling (final, lost or expired).
const UNSETTLED: [&str; 5] = ["held", "proven", "won", "submitted", "claimed"];

/// Waits until every ticket of every cache has settled, then checks that no
/// winner expired unclaimed (one the client proved, so the cache could have
/// claimed it) and that each cache's claims reconcile with the chain.
async fn check_settlement(cluster: &Cluster, failures: &mut Vec<String>) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut rows = Vec::new();
    for (i, c) in cluster.caches.iter().enumerate() {
        let rpc = c.rpc()?;
        let earnings = loop {
            let e = rpc.run("cache_earnings", rpc.api().earnings()).await?;
            let open: u64 = UNSETTLED
                .iter()
                .filter_map(|s| e.totals.get(*s))
                .map(|t| t.tickets)
                .sum();
            if open == 0 {
                break e;
            }
            if Instant::now() >= deadline {
                failures.push(format!(
                    "cache {i}: {open} tickets still unsettled after 300 s"
                ));
                break e;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let count = |s: &str| earnings.totals.get(s).map_or(0, |t| t.tickets);
        let mut unclaimed = 0usize;
        let mut reasons: Vec<String> = Vec::new();
        let mut after = None;
        loop {
            let page = rpc
                .run(
                    "cache_tickets",
                    rpc.api()
                        .tickets(Some("expired".into()), after.clone(), Some(1000)),
                )
                .await?;
            for r in page.tickets.iter().filter_map(|t| t.reason.as_deref()) {
                if r.contains("no claim landed") || r.contains("did not land") {
                    unclaimed += 1;
                    if reasons.len() < 3 && !reasons.iter().any(|x| x == r) {
                        reasons.push(r.to_string());
                    }
                }
            }
            if page.next.is_none() || page.tickets.is_empty() {
                break;
            }
            after = page.next;
        }
        if unclaimed > 0 {
            failures.push(format!(
                "cache {i}: {unclaimed} proven winners expired without a claim, e.g. {reasons:?}"
            ));
        }
        let rec = rpc.run("cache_reconcile", rpc.api().reconcile()).await?;
        if !rec.balanced {
            failures.push(format!(
                "cache {i}: claims do not reconcile with the chain: {:?}",
                rec.discrepancies
            ));
        }
        rows.push(json!({
            "cache": i,
            "final": count("final"),
            "lost": count("lost"),
            "expired": count("expired"),
            "unclaimedWinners": unclaimed,
            "reconciled": rec.balanced,
            "net": earnings.net,
        }));
    }
    Ok(Value::Array(rows))
}

/// Runs the chaos pass with `clients` clients.
pub fn run(
    cluster: &mut Cluster,
    rt: &tokio::runtime::Runtime,
    a: &CdnArgs,
    clients: usize,
    kills: usize,
    publisher_kills: usize,
) -> anyhow::Result<Value> {
    let paths = write_objects(cluster, "chaos", a.objects, a.size_mib)?;
    let mut drivers = spawn_drivers(cluster, &paths[0], clients, a.clients_per_proc, "chaos")?;
    // Fill the caches first: the kills land in the steady state.
    let mut failures: Vec<String> = fill_caches(&mut drivers, &paths, a.window)?
        .iter()
        .filter(|l| l.event == "fetch" && !l.ok)
        .map(|l| format!("warm-up fetch of {} failed: {:?}", l.path, l.error))
        .collect();

    let gap = |k: usize| Duration::from_millis(1500 + (k as u64 * 7919) % 2000);
    let secs: u64 = (0..kills).map(|k| gap(k).as_secs() + 8).sum::<u64>()
        + (0..publisher_kills)
            .map(|k| gap(k).as_secs() + 15)
            .sum::<u64>()
        // Each kill may wait up to 30 s for a claim in flight.
        + if a.check_settlement { 30 * kills as u64 } else { 0 }
        + 5;
    let pass = Pass {
        paths,
        zipf: a.zipf,
        fetches: 0,
        soak_secs: Some(secs),
        window: a.window,
        seed: 5,
    };
    for d in drivers.iter_mut() {
        d.start(&pass)?;
    }
    let t0 = Instant::now();
    let mut events = Vec::new();
    for k in 0..kills {
        std::thread::sleep(gap(k));
        let mut i = k % cluster.caches.len();
        // Checking settlement: kill a cache between submitting a claim and
        // its inclusion, when one has a claim in flight within 30 s.
        let mut claiming = false;
        if a.check_settlement
            && let Some(c) = rt.block_on(a_cache_claiming(cluster, i))?
        {
            i = c;
            claiming = true;
        }
        let client = cluster.caches[i].rpc()?;
        let before = rt.block_on(tickets(&client))?;
        let restarted = cluster.kill_and_restart_cache(i)?;
        let client = cluster.caches[i].rpc()?;
        let after: HashSet<_> = rt.block_on(tickets(&client))?.into_iter().collect();
        let lost = before.iter().filter(|t| !after.contains(*t)).count();
        if lost > 0 {
            failures.push(format!(
                "cache {i} lost {lost} of the {} tickets it held before kill {k}",
                before.len()
            ));
        }
        let row = json!({
            "kill": k,
            "cache": i,
            "claimInFlight": claiming,
            "atS": t0.elapsed().as_secs_f64(),
            "ticketsBefore": before.len(),
            "ticketsAfter": after.len(),
            "lost": lost,
            "restartMs": restarted.as_secs_f64() * 1000.0,
        });
        eprintln!("chaos: {row}");
        events.push(row);
    }
    // The publisher: killed while it issues, back on the same address.
    let mut first_publisher_kill: Option<f64> = None;
    let mut last_ready: Option<Instant> = None;
    for k in 0..publisher_kills {
        std::thread::sleep(gap(k));
        let at = t0.elapsed().as_secs_f64();
        first_publisher_kill.get_or_insert(at);
        let restarted = cluster.kill_and_restart_publisher()?;
        let ready = Instant::now();
        rt.block_on(cluster.wait_ready())?;
        last_ready = Some(Instant::now());
        let row = json!({
            "kill": kills + k,
            "role": "publisher",
            "atS": at,
            "restartMs": restarted.as_secs_f64() * 1000.0,
            "readyMs": ready.elapsed().as_secs_f64() * 1000.0 + restarted.as_secs_f64() * 1000.0,
        });
        eprintln!("chaos: {row}");
        events.push(row);
    }
    let lines = collect(&mut drivers, &pass)?;
    let fetches = lines.iter().filter(|l| l.event == "fetch").count();
    let mut interrupted = 0usize;
    let last_ready = last_ready.map(|r: Instant| r.duration_since(t0).as_secs_f64());
    if let Some(r) = last_ready
        && !lines.iter().any(|l| l.event == "fetch" && l.ok && l.at > r)
    {
        failures.push(format!(
            "no fetch succeeded after the publisher came back from its last kill (at {r:.1} s)"
        ));
    }
    for l in lines.iter().filter(|l| l.event == "fetch" && !l.ok) {
        // A driver's clock starts before `t0`, so a fetch cut by a
        // publisher kill ends at `at` ≥ the kill's time.
        if first_publisher_kill.is_some_and(|p| l.at >= p) {
            interrupted += 1;
        } else {
            failures.push(format!("fetch of {} failed: {:?}", l.path, l.error));
        }
    }
    // No number twice, over every ticket every cache holds.
    let mut seen = HashSet::new();
    let mut held = 0usize;
    let mut duplicates = 0usize;
    for c in &cluster.caches {
        for t in rt.block_on(tickets(&c.rpc()?))? {
            held += 1;
            if !seen.insert(t) {
                duplicates += 1;
            }
        }
    }
    if duplicates > 0 {
        failures.push(format!(
            "{duplicates} ticket numbers appear twice over the caches' {held} tickets"
        ));
    }
    // The chunk stores hold only chunks whose bytes hash to their id: a
    // write cut by a kill leaves nothing under a chunk's name.
    let (mut chunks, mut bad_chunks) = (0usize, 0usize);
    for i in 0..cluster.caches.len() {
        let dir = cluster
            .dir()
            .join(format!("cache{i}"))
            .join("chains")
            .join("dev")
            .join("cdn")
            .join("cache")
            .join("chunks");
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                continue;
            }
            // Evicted meanwhile: nothing to check.
            let Ok(data) = std::fs::read(entry.path()) else {
                continue;
            };
            chunks += 1;
            if hex::encode(cachecash_cdn::manifest::chunk_digest(&data).0) != name {
                bad_chunks += 1;
            }
        }
    }
    if bad_chunks > 0 {
        failures.push(format!(
            "{bad_chunks} of {chunks} stored chunks do not hash to their id"
        ));
    }
    let settlement = if a.check_settlement {
        Some(rt.block_on(check_settlement(cluster, &mut failures))?)
    } else {
        None
    };
    Ok(json!({
        "kills": events,
        "fetches": fetches,
        "interruptedFetches": interrupted,
        "ticketsHeld": held,
        "duplicateNumbers": duplicates,
        "chunksChecked": chunks,
        "badChunks": bad_chunks,
        "settlement": settlement,
        "failures": failures,
        "verdict": if failures.is_empty() { "pass" } else { "fail" },
    }))
}

/// Prints the chaos result for people.
pub fn print(c: &Value) {
    for k in c["kills"].as_array().into_iter().flatten() {
        if k["role"] == "publisher" {
            println!(
                "kill {} (publisher) at {:.1} s: restarted in {:.0} ms, issuing again after {:.0} ms",
                k["kill"],
                k["atS"].as_f64().unwrap_or(0.0),
                k["restartMs"].as_f64().unwrap_or(0.0),
                k["readyMs"].as_f64().unwrap_or(0.0)
            );
            continue;
        }
        println!(
            "kill {} (cache {}) at {:.1} s: {} tickets before, {} after, {} lost, back in {:.0} ms",
            k["kill"],
            k["cache"],
            k["atS"].as_f64().unwrap_or(0.0),
            k["ticketsBefore"],
            k["ticketsAfter"],
            k["lost"],
            k["restartMs"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "{} fetches ({} cut by publisher kills), {} tickets held, {} duplicated numbers: {}",
        c["fetches"],
        c["interruptedFetches"],
        c["ticketsHeld"],
        c["duplicateNumbers"],
        c["verdict"]
    );
    for r in c["settlement"].as_array().into_iter().flatten() {
        println!(
            "cache {}: {} final, {} lost, {} expired ({} proven winners unclaimed), reconciled: {}, net {}",
            r["cache"],
            r["final"],
            r["lost"],
            r["expired"],
            r["unclaimedWinners"],
            r["reconciled"],
            r["net"]
        );
    }
    for f in c["failures"].as_array().into_iter().flatten() {
        println!("  {f}");
    }
}

//! Waiting for the testnet's nodes, and its live status line, over the
//! nodes' own JSON-RPC and the gateway's HTTP.

use super::Testnet;
use crate::shared::NodeClient;
use cachecash_node::cdn::rpc::CdnApiClient;
use cachecash_node::cdn::settle_rpc::{ByState, CacheApiClient};
use cachecash_node::rpc::api::ChainApiClient;
use cachecash_runtime::primitives::format_balance;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Waits until the node at `rpc` answers.
pub(super) async fn wait_rpc(
    rpc: &str,
    deadline: Instant,
    net: &mut Testnet,
) -> anyhow::Result<()> {
    let client = NodeClient::new(rpc)?;
    loop {
        if client
            .run("chain_getHeader", client.api().header(None))
            .await
            .is_ok()
        {
            return Ok(());
        }
        net.check_children()?;
        if Instant::now() >= deadline {
            anyhow::bail!("the node at {rpc} did not answer in time; see its log under logs/");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the gateway serves `probe` (or answers at all, without one).
pub(super) async fn wait_gateway(
    gateway: &str,
    probe: Option<&str>,
    deadline: Instant,
    net: &mut Testnet,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let url = format!("{gateway}{}", probe.unwrap_or("/"));
    let mut last;
    loop {
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() || (probe.is_none() && r.status().as_u16() == 404) => {
                return Ok(());
            }
            Ok(r) => {
                last = format!(
                    "{} {}",
                    r.status(),
                    r.text().await.unwrap_or_default().trim()
                )
            }
            Err(e) => last = e.to_string(),
        }
        net.check_children()?;
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the gateway did not serve {url} in time (last answer: {last}); see the logs under {}/logs",
                net.dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One reading of the testnet.
#[derive(Debug, Default)]
struct Reading {
    head: u64,
    served: u64,
    held: u64,
    won: u64,
    landed: u64,
    balances: Vec<u128>,
}

fn tickets(totals: &ByState, states: &[&str]) -> u64 {
    states
        .iter()
        .map(|s| totals.get(*s).map_or(0, |t| t.tickets))
        .sum()
}

async fn read(miner: &NodeClient, caches: &[NodeClient]) -> Reading {
    let mut r = Reading::default();
    if let Ok(Some(h)) = miner.run("chain_getHeader", miner.api().header(None)).await {
        r.head = h.header.number;
    }
    for c in caches {
        if let Ok(s) = c.run("cdn_cacheStatus", c.api().cache_status()).await {
            r.served += s.bytes_served;
            r.held += s.tickets_held + s.tickets_proven;
        }
        let mut balance = 0;
        if let Ok(e) = c.run("cache_earnings", c.api().earnings()).await {
            r.won += tickets(&e.totals, &["won", "submitted", "claimed", "final"]);
            r.landed += tickets(&e.totals, &["claimed", "final"]);
            balance = e.balance.parse().unwrap_or(0);
        }
        r.balances.push(balance);
    }
    r
}

fn line(r: &Reading) -> String {
    let cch = |b: u128| {
        let s = format_balance(b, 12);
        match s.split_once('.') {
            Some((i, f)) => format!("{i}.{}", &f[..f.len().min(2)]),
            None => s,
        }
    };
    let total: u128 = r.balances.iter().sum();
    let each: Vec<String> = r.balances.iter().map(|b| cch(*b)).collect();
    format!(
        "block #{} · served {:.1} MiB · tickets held {} · won {} · claims landed {} · caches hold {} CCH [{}]",
        r.head,
        r.served as f64 / (1024.0 * 1024.0),
        r.held,
        r.won,
        r.landed,
        cch(total),
        each.join(" "),
    )
}

/// Shows the status line until Ctrl-C or SIGTERM, or until a node exits.
pub(super) async fn watch(miner: &str, caches: &[String], net: &mut Testnet) -> anyhow::Result<()> {
    let miner = NodeClient::new(miner)?;
    let caches: Vec<NodeClient> = caches
        .iter()
        .map(|c| NodeClient::new(c))
        .collect::<Result<_, _>>()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let tty = std::io::stdout().is_terminal();
    let mut last = String::new();
    let mut last_print = Instant::now() - Duration::from_secs(3600);
    loop {
        net.check_children()?;
        let l = line(&read(&miner, &caches).await);
        // On a terminal the line is redrawn in place; in a log, a new line
        // when something changed, at most every 10 s.
        if tty {
            print!("\r\x1b[2K{l}");
            let _ = std::io::stdout().flush();
        } else if l != last && last_print.elapsed() >= Duration::from_secs(10) {
            println!("{l}");
            last_print = Instant::now();
        }
        last = l;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

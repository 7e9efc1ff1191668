//! `cachecash cache earnings|tickets|reconcile`: what a running cache node
//! earned, the fate of each ticket, and its books against the chain, over
//! JSON-RPC (`cache_*`).

use crate::shared::{self, NodeClient, RpcArgs};
use cachecash_node::cdn::settle_rpc::{CacheApiClient, Earnings, Reconciliation, TicketPage};
use cachecash_runtime::primitives::format_balance;
use clap::{Args, Subcommand};

/// Cache commands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Totals by ticket state (held, won, claimed, final, lost, expired…),
    /// the fees paid, and per-escrow, per-round breakdowns.
    ///
    /// Examples:
    ///   cachecash cache earnings
    ///   cachecash cache earnings --json --rpc http://10.0.0.5:9944
    #[command(verbatim_doc_comment)]
    Earnings(Output),
    /// Tickets, each with its state, claim transaction and block; paged.
    ///
    /// Examples:
    ///   cachecash cache tickets --state won          # winners not yet claimed, with why
    ///   cachecash cache tickets --state expired --json
    ///   cachecash cache tickets --after 0x… --limit 500
    #[command(verbatim_doc_comment)]
    Tickets {
        /// Only tickets in this state: held, proven, lost, won, submitted,
        /// claimed, final or expired.
        #[arg(long)]
        state: Option<String>,
        /// Continue after this cursor (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Tickets per page (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        out: Output,
    },
    /// Checks the claimer's records against the chain: claimed face values
    /// less claim fees must equal what the cache's claims moved on chain.
    /// Prints every difference and its cause; exits non-zero on any.
    ///
    /// Example:
    ///   cachecash cache reconcile
    #[command(verbatim_doc_comment)]
    Reconcile(Output),
}

/// Output and node options.
#[derive(Debug, Args)]
pub struct Output {
    /// Print the RPC result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub rpc: RpcArgs,
}

fn cch(v: &str) -> String {
    format!("{} CCH", format_balance(v.parse().unwrap_or(0), 12))
}

/// Runs a cache command.
pub fn run(cmd: CacheCommand) -> anyhow::Result<()> {
    shared::runtime()?.block_on(async move {
        match cmd {
            CacheCommand::Earnings(o) => {
                let c = NodeClient::new(&o.rpc.rpc)?;
                let e: Earnings = c.run("cache_earnings", c.api().earnings()).await?;
                if o.json {
                    println!("{}", serde_json::to_string_pretty(&e)?);
                    return Ok(());
                }
                println!("cache {}  balance {}", e.account, cch(&e.balance));
                for (state, t) in &e.totals {
                    println!("  {state:<10} {:>8} tickets  {}", t.tickets, cch(&t.value));
                }
                println!("  fees paid  {}", cch(&e.fees));
                println!("  net earned {}", cch(&e.net));
                for (escrow, rounds) in &e.escrows {
                    println!("escrow {escrow}");
                    for (round, states) in rounds {
                        let line: Vec<String> = states
                            .iter()
                            .map(|(s, t)| format!("{s} {}", t.tickets))
                            .collect();
                        println!("  round {round}: {}", line.join(", "));
                    }
                }
                Ok(())
            }
            CacheCommand::Tickets {
                state,
                after,
                limit,
                out,
            } => {
                let c = NodeClient::new(&out.rpc.rpc)?;
                let page: TicketPage = c
                    .run("cache_tickets", c.api().tickets(state, after, Some(limit)))
                    .await?;
                if out.json {
                    println!("{}", serde_json::to_string_pretty(&page)?);
                    return Ok(());
                }
                for t in &page.tickets {
                    let mut line = format!(
                        "{} r{} #{} {}",
                        &t.escrow[..t.escrow.len().min(12)],
                        t.round,
                        t.number,
                        t.state
                    );
                    if let Some(tx) = &t.tx {
                        line.push_str(&format!(" tx {tx}"));
                    }
                    if let Some((_, n)) = &t.block {
                        line.push_str(&format!(" in #{n}"));
                    }
                    if let Some(r) = &t.reason {
                        line.push_str(&format!(" ({r})"));
                    }
                    println!("{line}");
                }
                if let Some(n) = page.next.filter(|_| !page.tickets.is_empty()) {
                    eprintln!("next page: --after {n}");
                }
                Ok(())
            }
            CacheCommand::Reconcile(o) => {
                let c = NodeClient::new(&o.rpc.rpc)?;
                let r: Reconciliation = c.run("cache_reconcile", c.api().reconcile()).await?;
                if o.json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!(
                        "blocks #{}..#{}: recorded {} · on chain {}",
                        r.blocks.0,
                        r.blocks.1,
                        cch(&r.recorded),
                        cch(&r.on_chain)
                    );
                    for d in &r.discrepancies {
                        println!("  {}: {}", d.tx, d.cause);
                    }
                    if r.balanced {
                        println!("balanced");
                    }
                }
                if !r.balanced {
                    anyhow::bail!("the cache's records and the chain differ (see above)");
                }
                Ok(())
            }
        }
    })
}

//! `cachecash publisher escrows`: a running publisher's escrows over
//! JSON-RPC (`publisher_escrows`).

use crate::commands::cache::Output;
use crate::shared::{self, NodeClient};
use cachecash_node::cdn::settle_rpc::{EscrowView, PublisherApiClient};
use cachecash_runtime::primitives::format_balance;
use clap::Subcommand;

/// Publisher commands.
#[derive(Debug, Subcommand)]
pub enum PublisherCommand {
    /// The escrows the publisher issues from: terms, deposits, tickets
    /// issued by round, rounds left and unlock height.
    ///
    /// Examples:
    ///   cachecash publisher escrows
    ///   cachecash publisher escrows --json --rpc http://10.0.0.7:9944
    #[command(verbatim_doc_comment)]
    Escrows(Output),
}

/// Runs a publisher command.
pub fn run(cmd: PublisherCommand) -> anyhow::Result<()> {
    shared::runtime()?.block_on(async move {
        let PublisherCommand::Escrows(o) = cmd;
        let c = NodeClient::new(&o.rpc.rpc)?;
        let list: Vec<EscrowView> = c.run("publisher_escrows", c.api().escrows()).await?;
        if o.json {
            println!("{}", serde_json::to_string_pretty(&list)?);
            return Ok(());
        }
        if list.is_empty() {
            println!("no escrow yet (the publisher is still opening it)");
        }
        let cch = |s: &Option<String>| match s {
            Some(v) => format!("{} CCH", format_balance(v.parse().unwrap_or(0), 12)),
            None => "closed".to_string(),
        };
        for e in list {
            println!("escrow {}", e.escrow);
            println!(
                "  payment {}  penalty {}{}",
                cch(&e.payment),
                cch(&e.penalty),
                if e.penalised { "  PENALISED" } else { "" }
            );
            println!(
                "  rounds left {}  unlocks at #{}",
                e.rounds_left, e.unlock_height
            );
            for r in &e.rounds {
                println!(
                    "  round {}: {} numbers reserved, drawn at #{}",
                    r.round, r.reserved, r.draw_height
                );
            }
        }
        Ok(())
    })
}

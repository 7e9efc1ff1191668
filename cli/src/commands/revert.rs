//! `cachecash revert`.

use crate::shared::ChainArgs;
use cachecash_node::metrics::Metrics;
use cachecash_node::service::{Storage, open_chain};
use clap::Args;
use std::sync::Arc;

/// Revert the chain to block NUMBER, removing every later block and its
/// state. Stop the node first.
///
/// Examples:
///   cachecash revert 100 --chain local --base-path /tmp/node1
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RevertArgs {
    /// The block to keep as the new head.
    pub number: u64,
    #[command(flatten)]
    chain: ChainArgs,
}

/// Reverts.
pub fn run(args: RevertArgs) -> anyhow::Result<()> {
    let spec = args.chain.spec()?;
    let chain = open_chain(
        &args.chain.base_path()?,
        &spec,
        &Storage::Rocks,
        Arc::new(Metrics::new()),
    )?;
    let before = chain.head();
    if args.number >= before.header.number {
        println!(
            "head is #{} ({}); nothing to revert to #{}",
            before.header.number, before.hash, args.number
        );
        return Ok(());
    }
    let head = chain.revert_to(args.number)?;
    println!(
        "reverted from #{} ({}) to #{} ({})",
        before.header.number, before.hash, head.number, head.hash
    );
    Ok(())
}

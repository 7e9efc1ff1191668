//! `cachecash export-blocks`.

use crate::shared::ChainArgs;
use anyhow::Context;
use cachecash_node::blockfile::BlockFileWriter;
use cachecash_node::metrics::Metrics;
use cachecash_node::service::{Storage, open_chain};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

/// Export canonical blocks to a SCALE block file (format in docs/operator.md).
///
/// Examples:
///   cachecash export-blocks --chain local --base-path /tmp/node1 --output blocks.bin
///   cachecash export-blocks --from 1 --to 500 --output first500.bin
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ExportBlocksArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// First block [default: 1].
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Last block [default: the head].
    #[arg(long)]
    to: Option<u64>,
    /// Output file.
    #[arg(long, short)]
    output: PathBuf,
}

/// Exports.
pub fn run(args: ExportBlocksArgs) -> anyhow::Result<()> {
    let spec = args.chain.spec()?;
    let chain = open_chain(
        &args.chain.base_path()?,
        &spec,
        &Storage::Rocks,
        Arc::new(Metrics::new()),
    )?;
    let head = chain.head().header.number;
    let to = args.to.unwrap_or(head).min(head);
    if args.from == 0 {
        anyhow::bail!(
            "--from must be at least 1: genesis is defined by the chain spec and never exported"
        );
    }
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let mut w = BlockFileWriter::new(std::io::BufWriter::new(file), &chain.genesis_hash())?;
    let mut count = 0u64;
    for n in args.from..=to {
        let hash = chain
            .canonical_hash(n)?
            .with_context(|| format!("block #{n} is missing from the canonical index"))?;
        let block = chain
            .block(&hash)?
            .with_context(|| format!("block #{n} ({hash}) is missing"))?;
        w.write(&block)?;
        count += 1;
    }
    w.finish()?;
    println!(
        "exported {count} blocks (#{}..=#{to}) to {}",
        args.from,
        args.output.display()
    );
    Ok(())
}

//! `cachecash import-blocks`.

use crate::shared::ChainArgs;
use anyhow::Context;
use cachecash_node::blockfile::BlockFileReader;
use cachecash_node::chain::{BlockOrigin, ImportOutcome};
use cachecash_node::metrics::Metrics;
use cachecash_node::service::{Storage, open_chain};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Import blocks from a block file, verifying each fully. Blocks already
/// in the chain are skipped. Stop the node first.
///
/// Examples:
///   cachecash import-blocks --chain local --base-path /tmp/node2 blocks.bin
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ImportBlocksArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// The block file.
    input: PathBuf,
}

/// Imports.
pub fn run(args: ImportBlocksArgs) -> anyhow::Result<()> {
    let spec = args.chain.spec()?;
    let chain = open_chain(
        &args.chain.base_path()?,
        &spec,
        &Storage::Rocks,
        Arc::new(Metrics::new()),
    )?;
    let file = std::fs::File::open(&args.input)
        .with_context(|| format!("cannot open {}", args.input.display()))?;
    let limit = usize::try_from(chain.params().max_block_bytes).unwrap_or(usize::MAX);
    let mut reader =
        BlockFileReader::new(std::io::BufReader::new(file), &chain.genesis_hash(), limit)?;
    let started = Instant::now();
    let (mut imported, mut known, mut index) = (0u64, 0u64, 0u64);
    while let Some(bytes) = reader.next_encoded()? {
        match chain
            .import_encoded(&bytes, BlockOrigin::File)
            .with_context(|| format!("record {index} of {}", args.input.display()))?
        {
            ImportOutcome::Imported(_) => imported += 1,
            ImportOutcome::AlreadyKnown(_) | ImportOutcome::SideChain { .. } => known += 1,
        }
        index += 1;
    }
    let head = chain.head();
    println!(
        "imported {imported} blocks ({known} already known) in {:.1} s; head #{} ({})",
        started.elapsed().as_secs_f64(),
        head.header.number,
        head.hash
    );
    Ok(())
}

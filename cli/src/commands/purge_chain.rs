//! `cachecash purge-chain`.

use crate::shared::ChainArgs;
use anyhow::Context;
use clap::Args;
use std::io::BufRead;

/// Delete a chain's database (blocks and state).
///
/// Examples:
///   cachecash purge-chain --chain local --base-path /tmp/node1
///   cachecash purge-chain --chain dev -y
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PurgeChainArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    yes: bool,
}

/// Deletes the database directory.
pub fn run(args: PurgeChainArgs) -> anyhow::Result<()> {
    let spec = args.chain.spec()?;
    let path = cachecash_node::service::database_path(&args.chain.base_path()?, &spec);
    if !path.exists() {
        println!("{} does not exist; nothing to purge", path.display());
        return Ok(());
    }
    if !args.yes {
        eprint!("Delete the database at {}? [y/N] ", path.display());
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            println!("aborted");
            return Ok(());
        }
    }
    std::fs::remove_dir_all(&path).with_context(|| format!("cannot delete {}", path.display()))?;
    println!("{} removed", path.display());
    Ok(())
}

//! `cachecash export-chain-spec`.

use clap::Args;

/// Print a chain spec as JSON.
///
/// Examples:
///   cachecash export-chain-spec --chain local > local.json
///   cachecash export-chain-spec --chain local --raw > local-raw.json   # for long-lived networks
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ExportChainSpecArgs {
    /// Chain: `dev`, `local`, or a chain-spec JSON file.
    #[arg(long, default_value = "dev")]
    pub chain: String,
    /// Export the raw form: the exact genesis state and hash.
    #[arg(long)]
    pub raw: bool,
}

/// Prints the spec.
pub fn run(args: ExportChainSpecArgs) -> anyhow::Result<()> {
    let spec = cachecash_chain_spec::ChainSpec::load(&args.chain)?;
    println!("{}", spec.to_json(args.raw)?);
    Ok(())
}

//! `cachecash benchmark …`: performance measurements with optional JSON
//! output. Figures and the commands that produced them are recorded in
//! docs/performance.md.

use clap::Subcommand;
use serde_json::json;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchmarkCommand {
    /// Ledger: block import throughput and state-root update cost.
    ///
    /// Examples:
    ///   cachecash benchmark ledger
    ///   cachecash benchmark ledger --json --state-sizes 10000,100000,1000000
    #[command(verbatim_doc_comment)]
    Ledger {
        /// Funded accounts sending transfers.
        #[arg(long, default_value_t = 2000)]
        accounts: usize,
        /// Blocks to import.
        #[arg(long, default_value_t = 10)]
        blocks: usize,
        /// Transfers per block.
        #[arg(long, default_value_t = 2000)]
        per_block: usize,
        /// Import into memory instead of RocksDB.
        #[arg(long)]
        memory: bool,
        /// State sizes (accounts) for the state-root measurement.
        #[arg(long, value_delimiter = ',', default_values_t = vec![10_000usize, 100_000, 1_000_000])]
        state_sizes: Vec<usize>,
        /// Accounts changed per state-root update (a 1,000-transfer block changes 2,000).
        #[arg(long, default_value_t = 2000)]
        changed: usize,
        /// Updates measured per state size.
        #[arg(long, default_value_t = 15)]
        samples: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a benchmark.
pub fn run(cmd: BenchmarkCommand) -> anyhow::Result<()> {
    match cmd {
        BenchmarkCommand::Ledger {
            accounts,
            blocks,
            per_block,
            memory,
            state_sizes,
            changed,
            samples,
            json,
        } => {
            use cachecash_node::benchmark::{import_benchmark, state_root_benchmark};
            if accounts == 0 || per_block == 0 || blocks == 0 || changed < 2 || samples == 0 {
                anyhow::bail!(
                    "--accounts, --blocks, --per-block and --samples must be positive and --changed at least 2"
                );
            }
            let import = import_benchmark(accounts, blocks, per_block, !memory)
                .map_err(anyhow::Error::msg)?;
            if !json {
                println!(
                    "import: {} transfers in {} blocks into {} in {:.3} s = {:.0} transfers/s (one core; goal ≥ 10,000)",
                    import.transfers,
                    import.blocks,
                    import.backend,
                    import.seconds,
                    import.transfers_per_second
                );
            }
            let mut roots = Vec::new();
            for n in state_sizes {
                let r = state_root_benchmark(n, changed, samples).map_err(anyhow::Error::msg)?;
                if !json {
                    println!(
                        "state root: {} changed accounts over {} accounts: median {:.2} ms (goal ≤ 50 ms, flat in N)",
                        r.changed, r.accounts, r.median_ms
                    );
                }
                roots.push(r);
            }
            if json {
                println!(
                    "{}",
                    json!({
                        "benchmark": "ledger",
                        "version": env!("CARGO_PKG_VERSION"),
                        "import": import,
                        "stateRoot": roots,
                    })
                );
            }
            Ok(())
        }
    }
}

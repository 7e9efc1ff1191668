//! `cachecash benchmark …`: performance measurements with optional JSON
//! output. Figures and the commands that produced them are recorded in
//! docs/performance.md.

use clap::Subcommand;
use serde_json::json;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchmarkCommand {
    /// MicroCash: batch ticket issuance and claim validation, one core.
    ///
    /// Examples:
    ///   cachecash benchmark microcash
    ///   cachecash benchmark microcash --json --tickets 200000 --claims 20000
    #[command(verbatim_doc_comment)]
    Microcash {
        /// Tickets to batch-sign.
        #[arg(long, default_value_t = 100_000)]
        tickets: usize,
        /// Winning tickets to claim.
        #[arg(long, default_value_t = 10_240)]
        claims: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// CDN crypto: puzzle solve and generation, two-layer encryption,
    /// bundle issue and verification.
    ///
    /// Examples:
    ///   cachecash benchmark crypto
    ///   cachecash benchmark crypto --json --scale 4
    #[command(verbatim_doc_comment)]
    Crypto {
        /// Work multiplier (more samples, longer run).
        #[arg(long, default_value_t = 1)]
        scale: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Network: sync import rate from a peer, and block propagation
    /// latency across three hops, over libp2p on loopback.
    ///
    /// Examples:
    ///   cachecash benchmark network
    ///   cachecash benchmark network --json --blocks 200 --per-block 2000 --samples 50
    #[command(verbatim_doc_comment)]
    Network {
        /// Blocks the joining node syncs.
        #[arg(long, default_value_t = 100)]
        blocks: usize,
        /// Transfers per synced block.
        #[arg(long, default_value_t = 2000)]
        per_block: usize,
        /// Blocks timed for propagation.
        #[arg(long, default_value_t = 30)]
        samples: usize,
        /// Transfers per propagated block.
        #[arg(long, default_value_t = 100)]
        propagation_transfers: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// CDN load harness: a whole CDN on loopback, every role its own
    /// process (a mining node, a publisher, N caches, client processes).
    /// Per concurrency level, a cold and a warm pass over fresh objects:
    /// aggregate MiB/s, fetch time and time to first byte (p50/p95/p99),
    /// CPU-seconds per GiB and peak RSS per role, failures, hit ratio and
    /// the phases of a fetch. Also a crypto-parameter sweep, a soak and a plot.
    ///
    /// Examples:
    ///   cachecash benchmark cdn
    ///   cachecash benchmark cdn --json --size-mib 16 --clients 1,10,50,150 --rounds 2 --plot load.svg
    ///   cachecash benchmark cdn --objects 200 --size-mib 2 --zipf 1.0 --cache-quota 128MiB --clients 50
    ///   cachecash benchmark cdn --sweep --clients 1 --json
    ///   cachecash benchmark cdn --soak 10m --clients 150 --size-mib 4 --objects 20
    #[command(verbatim_doc_comment)]
    Cdn(crate::commands::benchmark_cdn::CdnArgs),
    /// Internal: a client process of `benchmark cdn`.
    #[command(hide = true)]
    CdnClient(crate::commands::benchmark_cdn::driver::DriverArgs),
    /// Transports: one-direction throughput of one libp2p stream on loopback
    /// over TCP + Noise + Yamux (what the node runs), TCP + TLS + Yamux and
    /// QUIC, the candidates for the chunk streams (docs/decisions.md D16).
    ///
    /// Examples:
    ///   cachecash benchmark transport
    ///   cachecash benchmark transport --json --size-mib 512 --rounds 5
    #[command(verbatim_doc_comment)]
    Transport {
        /// MiB sent per run.
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        /// Runs per transport; the best is reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// HTTP gateway: a `cachecash testnet` (every role its own process) over
    /// a directory origin; warm throughput of one object through the gateway
    /// and through `cachecash fetch`, time to first byte, and concurrent
    /// HTTP clients (aggregate throughput, p50/p95 latency, failures).
    ///
    /// Examples:
    ///   cachecash benchmark gateway
    ///   cachecash benchmark gateway --json --size-mib 64 --clients 50
    #[command(verbatim_doc_comment)]
    Gateway {
        /// Size of the large object in MiB.
        #[arg(long, default_value_t = 64)]
        size_mib: u64,
        /// Caches.
        #[arg(long, default_value_t = 5)]
        caches: u16,
        /// Warm fetches timed, each way.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Requests (1 MiB each) per concurrent client.
        #[arg(long, default_value_t = 4)]
        per_client: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Settlement: the cache's claimer over one round of held tickets, from
    /// before the draw until every ticket is final or lost (real RocksDB
    /// ticket store, in-memory chain, one pass per block). Reports the CPU
    /// it took and its share of one core at the given block time.
    ///
    /// Examples:
    ///   cachecash benchmark settle
    ///   cachecash benchmark settle --json --tickets 10000 --winners 100 --round-seconds 60
    #[command(verbatim_doc_comment)]
    Settle {
        /// Tickets held in the round.
        #[arg(long, default_value_t = 10_000)]
        tickets: u32,
        /// Winners drawn in the round.
        #[arg(long, default_value_t = 100)]
        winners: u32,
        /// Length of a round in seconds (its blocks × block time), for the
        /// share of one core.
        #[arg(long, default_value_t = 60.0)]
        round_seconds: f64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Ledger: block import throughput and state-root update cost.
    ///
    /// Examples:
    ///   cachecash benchmark ledger
    ///   cachecash benchmark ledger --json --state-sizes 10000,100000,1000000
    ///   cachecash benchmark ledger --blocks 2000 --per-block 50 --reorg-depth 100 --state-pruning archive
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
        /// State history kept during the import: `window` or `archive`
        /// (the database size after the import shows the difference).
        #[arg(long, value_name = "MODE", default_value = "window")]
        state_pruning: cachecash_node::chain::StatePruning,
        /// Reorganisation window of the imported chain (the state `window`
        /// keeps).
        #[arg(long, default_value_t = cachecash_node::chain::MAX_REORG_DEPTH)]
        reorg_depth: u64,
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
        BenchmarkCommand::Microcash {
            tickets,
            claims,
            json,
        } => {
            if tickets == 0 || claims == 0 {
                anyhow::bail!("--tickets and --claims must be positive");
            }
            let r = cachecash_bench::microcash_benchmark(tickets, claims)
                .map_err(anyhow::Error::msg)?;
            if json {
                println!(
                    "{}",
                    json!({"benchmark": "microcash", "version": env!("CARGO_PKG_VERSION"), "result": r})
                );
            } else {
                println!(
                    "ticket issuance: {} tickets batch-signed at {:.0} tickets/s (one core; goal ≥ 100,000)",
                    r.tickets_issued, r.tickets_issued_per_second
                );
                println!(
                    "claim validation: {} claims at {:.0} claims/s, {:.0} claims/s with transaction signatures (one core; goal ≥ 10,000)",
                    r.claims, r.claims_per_second, r.claims_per_second_with_tx_signatures
                );
            }
            Ok(())
        }
        BenchmarkCommand::Settle {
            tickets,
            winners,
            round_seconds,
            json,
        } => {
            anyhow::ensure!(
                tickets > 0 && winners > 0 && winners <= tickets && round_seconds > 0.0,
                "need 0 < --winners ≤ --tickets and a positive --round-seconds"
            );
            use cachecash_node::cdn::cache::claimer::memory;
            let dir = tempfile::tempdir()?;
            let mut rig =
                memory::rig(dir.path(), tickets, tickets, winners).map_err(anyhow::Error::msg)?;
            let r = memory::settle_round(&mut rig).map_err(anyhow::Error::msg)?;
            let share = r.cpu_seconds / round_seconds * 100.0;
            if json {
                println!(
                    "{}",
                    json!({"benchmark": "settle", "version": env!("CARGO_PKG_VERSION"), "roundSeconds": round_seconds, "coreSharePercent": share, "result": r})
                );
            } else {
                println!(
                    "settled {} tickets ({} winners) in {} passes: {:.3} s of passes (slowest {:.1} ms), {:.2} CPU s = {:.2} % of one core over a {round_seconds} s round",
                    r.tickets,
                    r.winners,
                    r.passes,
                    r.pass_seconds,
                    r.max_pass_seconds * 1e3,
                    r.cpu_seconds,
                    share
                );
            }
            Ok(())
        }
        BenchmarkCommand::Gateway {
            size_mib,
            caches,
            rounds,
            clients,
            per_client,
            json,
        } => {
            if caches == 0 || size_mib == 0 {
                anyhow::bail!("--caches and --size-mib must be positive");
            }
            let r = crate::commands::benchmark_gateway::run(
                size_mib, caches, rounds, clients, per_client,
            )?;
            if json {
                println!(
                    "{}",
                    json!({"benchmark": "gateway", "version": env!("CARGO_PKG_VERSION"), "result": r})
                );
            } else {
                let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
                println!(
                    "{} MiB through the gateway {:.0} MiB/s, cachecash fetch {:.0} MiB/s ({:.0} %, goal ≥ 80 %); \
                     time to first byte {:.1} ms (p95 {:.1}; goal ≤ 15); {} clients: {:.0} MiB/s, \
                     p50 {:.0} ms, p95 {:.0} ms, {} failures",
                    r["objectMiB"],
                    f("gatewayMiBps"),
                    f("fetchMiBps"),
                    100.0 * f("gatewayShareOfFetch"),
                    f("ttfbMs"),
                    f("ttfbP95Ms"),
                    r["concurrentClients"],
                    f("concurrentMiBps"),
                    f("latencyP50Ms"),
                    f("latencyP95Ms"),
                    r["failures"],
                );
            }
            Ok(())
        }
        BenchmarkCommand::Cdn(args) => {
            let r = crate::commands::benchmark_cdn::run(&args)?;
            let failed = r["soak"]["verdict"] == "fail";
            if args.json {
                println!(
                    "{}",
                    json!({"benchmark": "cdn", "version": env!("CARGO_PKG_VERSION"), "result": r})
                );
            } else {
                crate::commands::benchmark_cdn::print(&r);
            }
            if failed {
                anyhow::bail!("the soak failed: {}", r["soak"]["problems"]);
            }
            if r["chaos"]["verdict"] == "fail" {
                anyhow::bail!("the cache kill loop failed: {}", r["chaos"]["failures"]);
            }
            Ok(())
        }
        BenchmarkCommand::CdnClient(args) => crate::commands::benchmark_cdn::driver::run(args),
        BenchmarkCommand::Transport {
            size_mib,
            rounds,
            json: as_json,
        } => {
            anyhow::ensure!(size_mib >= 1, "--size-mib must be at least 1");
            let r = crate::commands::benchmark_transport::run(size_mib, rounds)?;
            if as_json {
                println!(
                    "{}",
                    json!({"benchmark": "transport", "version": env!("CARGO_PKG_VERSION"), "result": r})
                );
            } else {
                crate::commands::benchmark_transport::print(&r);
            }
            Ok(())
        }
        BenchmarkCommand::Crypto { scale, json } => {
            let r = cachecash_cdn::bench::run(scale).map_err(anyhow::Error::msg)?;
            let gbps = r.two_layer_bytes.median / 1e9;
            // Generation touches R·k − 1 blocks per bundle of k chunks of
            // 128 KiB; the "equivalent" rate is the bundle data it covers.
            let bundle_bits = 4.0 * 128.0 * 1024.0 * 8.0;
            let generation_tbps = r.puzzle_generations.median * bundle_bits / 1e12;
            // Fastest and slowest measured round (the figures are medians).
            let solve_ms = [
                1000.0 / r.puzzle_solves.high.max(1e-9),
                1000.0 / r.puzzle_solves.low.max(1e-9),
            ];
            let tbps = [
                r.puzzle_generations.low * bundle_bits / 1e12,
                r.puzzle_generations.high * bundle_bits / 1e12,
            ];
            let two_layer = [r.two_layer_bytes.low / 1e9, r.two_layer_bytes.high / 1e9];
            if json {
                println!(
                    "{}",
                    json!({
                        "benchmark": "crypto",
                        "version": env!("CARGO_PKG_VERSION"),
                        "rounds": cachecash_cdn::bench::ROUNDS,
                        "sha256CompressionNs": r.compression_ns,
                        "puzzleSolveMeanMs": r.puzzle_solves.median_ms(),
                        "puzzleSolveMeanMsRoundRange": solve_ms,
                        "puzzleSolvesPerSec": r.puzzle_solves.median,
                        "puzzleSolvesPerSecParallel": r.puzzle_solves_per_sec_parallel,
                        "threads": r.threads,
                        "puzzleGenerationsPerSec": r.puzzle_generations.median,
                        "puzzleGenerationTbpsEquivalent": generation_tbps,
                        "puzzleGenerationTbpsRoundRange": tbps,
                        "twoLayerGBytesPerSec": gbps,
                        "twoLayerGBytesPerSecRoundRange": two_layer,
                        "bundleIssuesPerSec": r.bundle_issues_per_sec,
                        "bundleClientVerifiesPerSec": r.bundle_client_verifies_per_sec,
                        "bundleCacheVerifiesPerSec": r.bundle_cache_verifies_per_sec,
                    })
                );
            } else {
                println!(
                    "medians of {} rounds after a warm-up; [fastest, slowest] round in brackets",
                    cachecash_cdn::bench::ROUNDS
                );
                println!(
                    "machine reference: {:.1} ns per dependent SHA-256 compression",
                    r.compression_ns
                );
                println!(
                    "puzzle solve (R=2, k=4, 128 KiB, one core): mean {:.3} ms [{:.3}, {:.3}] (goal ≤ 1.2 ms); {:.0} solves/s on {} threads",
                    r.puzzle_solves.median_ms(),
                    solve_ms[0],
                    solve_ms[1],
                    r.puzzle_solves_per_sec_parallel,
                    r.threads
                );
                println!(
                    "puzzle generation: {:.0} puzzles/s = {:.2} Tbps [{:.2}, {:.2}] of bundle data per core (goal ≥ 4.26)",
                    r.puzzle_generations.median, generation_tbps, tbps[1], tbps[0]
                );
                println!(
                    "two-layer AES-128-CTR: {gbps:.2} GB/s [{:.2}, {:.2}] per core (goal ≥ 1.5)",
                    two_layer[1], two_layer[0]
                );
                println!(
                    "bundles: {:.0} issued/s, {:.0} client verifies/s, {:.0} cache verifies/s",
                    r.bundle_issues_per_sec,
                    r.bundle_client_verifies_per_sec,
                    r.bundle_cache_verifies_per_sec
                );
            }
            Ok(())
        }
        BenchmarkCommand::Network {
            blocks,
            per_block,
            samples,
            propagation_transfers,
            json,
        } => {
            if blocks == 0 || per_block == 0 || samples == 0 {
                anyhow::bail!("--blocks, --per-block and --samples must be positive");
            }
            let rt = crate::shared::runtime()?;
            let r = rt
                .block_on(cachecash_bench::network_benchmark(
                    blocks,
                    per_block,
                    samples,
                    propagation_transfers,
                ))
                .map_err(anyhow::Error::msg)?;
            if json {
                println!(
                    "{}",
                    json!({"benchmark": "network", "version": env!("CARGO_PKG_VERSION"), "result": r})
                );
            } else {
                println!(
                    "sync: {} transfers in {} blocks from a peer in {:.2} s = {:.0} transfers/s, {:.0} blocks/s (goal ≥ 5,000 transfers/s)",
                    r.sync_transfers,
                    r.sync_blocks,
                    r.sync_seconds,
                    r.sync_transfers_per_second,
                    r.sync_blocks_per_second
                );
                println!(
                    "propagation: {}-transfer blocks across {} hops: p50 {:.1} ms, p90 {:.1} ms over {} blocks (goal ≤ 100 ms p50)",
                    r.propagation_block_transfers,
                    r.propagation_hops,
                    r.propagation_p50_ms,
                    r.propagation_p90_ms,
                    r.propagation_samples
                );
            }
            Ok(())
        }
        BenchmarkCommand::Ledger {
            accounts,
            blocks,
            per_block,
            memory,
            state_pruning,
            reorg_depth,
            state_sizes,
            changed,
            samples,
            json,
        } => {
            use cachecash_bench::{import_benchmark, state_root_benchmark};
            if accounts == 0 || per_block == 0 || blocks == 0 || changed < 2 || samples == 0 {
                anyhow::bail!(
                    "--accounts, --blocks, --per-block and --samples must be positive and --changed at least 2"
                );
            }
            let import = import_benchmark(
                accounts,
                blocks,
                per_block,
                !memory,
                state_pruning,
                reorg_depth,
            )
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
                if let Some(bytes) = import.db_bytes {
                    println!(
                        "database: {:.1} MiB after compaction (state pruning {}, window {} blocks)",
                        bytes as f64 / (1024.0 * 1024.0),
                        import.state_pruning,
                        import.reorg_depth
                    );
                }
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

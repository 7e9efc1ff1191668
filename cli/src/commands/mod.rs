//! Subcommands: one file each, each with its own arguments and `run()`.

pub mod benchmark;
pub mod benchmark_cdn;
pub mod benchmark_gateway;
pub mod benchmark_transport;
pub mod cache;
pub mod escrow;
pub mod export_blocks;
pub mod export_chain_spec;
pub mod fetch;
pub mod gateway;
pub mod import_blocks;
pub mod key;
pub mod publisher;
pub mod purge_chain;
pub mod revert;
pub mod roles;
pub mod run;
pub mod testnet;
pub mod ticket;
pub mod wallet;

use clap::{Parser, Subcommand};

/// cachecash: a decentralised CDN whose caches are paid in Cachecoin (CCH).
///
/// Without a subcommand, runs a node.
///
/// Examples:
///   cachecash testnet                     # a whole local CDN: miner, publisher, caches, gateway
///   cachecash --dev                       # dev chain, mining, temporary database
///   cachecash --chain local --mine --miner-account alice --base-path /tmp/n1
///   cachecash wallet balance alice
///   cachecash wallet transfer --from alice --to bob --amount 1.5CCH
///   cachecash fetch cachecash://PUBLISHER_PEER_ID/file.bin -o file.bin --chain local \
///       --bootnodes /ip4/127.0.0.1/tcp/30333/p2p/PEER_ID
#[derive(Debug, Parser)]
#[command(
    name = "cachecash",
    version,
    args_conflicts_with_subcommands = true,
    verbatim_doc_comment
)]
pub struct Cli {
    /// A subcommand; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Node options (when no subcommand is given).
    #[command(flatten)]
    pub run: run::RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    Run(run::RunArgs),
    /// Generate or inspect keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    ExportChainSpec(export_chain_spec::ExportChainSpecArgs),
    PurgeChain(purge_chain::PurgeChainArgs),
    Revert(revert::RevertArgs),
    ExportBlocks(export_blocks::ExportBlocksArgs),
    ImportBlocks(import_blocks::ImportBlocksArgs),
    /// Balances and transfers over RPC.
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// MicroCash escrows: open, show, top up, close.
    #[command(subcommand)]
    Escrow(escrow::EscrowCommand),
    /// MicroCash tickets: issue, check, claim.
    #[command(subcommand)]
    Ticket(ticket::TicketCommand),
    Testnet(testnet::TestnetArgs),
    Fetch(fetch::FetchArgs),
    Gateway(gateway::GatewayCommandArgs),
    /// A running cache's earnings, tickets and books (over RPC).
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// A running publisher's escrows (over RPC).
    #[command(subcommand)]
    Publisher(publisher::PublisherCommand),
    /// Measure performance.
    #[command(subcommand)]
    Benchmark(benchmark::BenchmarkCommand),
}

/// Runs the chosen command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => run::run(cli.run),
        Some(Command::Run(args)) => run::run(args),
        Some(Command::Key(c)) => key::run(c),
        Some(Command::ExportChainSpec(a)) => export_chain_spec::run(a),
        Some(Command::PurgeChain(a)) => purge_chain::run(a),
        Some(Command::Revert(a)) => revert::run(a),
        Some(Command::ExportBlocks(a)) => export_blocks::run(a),
        Some(Command::ImportBlocks(a)) => import_blocks::run(a),
        Some(Command::Wallet(c)) => wallet::run(c),
        Some(Command::Escrow(c)) => escrow::run(c),
        Some(Command::Ticket(c)) => ticket::run(c),
        Some(Command::Benchmark(c)) => benchmark::run(c),
        Some(Command::Testnet(a)) => testnet::run(a),
        Some(Command::Fetch(a)) => fetch::run(a),
        Some(Command::Gateway(a)) => gateway::run(a),
        Some(Command::Cache(c)) => cache::run(c),
        Some(Command::Publisher(c)) => publisher::run(c),
    }
}

//! `cachecash escrow open|show|top-up|close`: MicroCash escrows over JSON-RPC.

use crate::commands::wallet::parse_amount;
use crate::shared::{self, NodeClient, RpcArgs};
use anyhow::Context;
use cachecash_runtime::microcash::{EscrowId, EscrowTerms, escrow_id};
use cachecash_runtime::primitives::format_balance;
use cachecash_runtime::{Balance, Call, Hash};
use clap::{Args, Subcommand};

/// Escrow commands.
#[derive(Debug, Subcommand)]
pub enum EscrowCommand {
    /// Open an escrow: lock a payment deposit (w·β per round) and a penalty
    /// deposit, and declare the ticket schedule.
    ///
    /// Examples:
    ///   cachecash escrow open --from alice --face-value 10CCH --tickets-per-round 4 \
    ///       --winners-per-round 2 --round-length 5 --rounds 3 --draw-delay 2 \
    ///       --claim-window 20 --penalty 100CCH
    ///   cachecash escrow open --from ./publisher.key --signer 0x… --face-value 1CCH \
    ///       --tickets-per-round 10000 --winners-per-round 10 --round-length 30 --rounds 100
    #[command(verbatim_doc_comment)]
    Open(OpenArgs),
    /// Show an escrow: terms, deposits, claimed tickets, unlock height.
    ///
    /// Examples:
    ///   cachecash escrow show 0x…
    ///   cachecash escrow show --funder alice      # every open escrow of alice
    #[command(verbatim_doc_comment)]
    Show {
        /// The escrow id.
        id: Option<String>,
        /// List the open escrows of this funder instead.
        #[arg(long, conflicts_with = "id")]
        funder: Option<String>,
        #[command(flatten)]
        rpc: RpcArgs,
    },
    /// Add rounds (paying w·β each) or penalty deposit. Funder only, before
    /// the last round begins.
    ///
    /// Example:
    ///   cachecash escrow top-up --from alice 0x… --rounds 10 --penalty 50CCH
    #[command(verbatim_doc_comment)]
    TopUp {
        /// Funder key: dev name (dev/local), 0x secret seed, or key file.
        #[arg(long)]
        from: String,
        /// The escrow id.
        id: String,
        /// Rounds to append.
        #[arg(long, default_value_t = 0)]
        rounds: u64,
        /// Penalty deposit to add (units, or e.g. 5CCH).
        #[arg(long, default_value = "0")]
        penalty: String,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Return what remains of an escrow to its funder: the payment deposit
    /// once the last round's claim window has closed, the penalty deposit
    /// one claim window later (close again then; a close after that returns
    /// both at once).
    ///
    /// Example:
    ///   cachecash escrow close --from alice 0x…
    #[command(verbatim_doc_comment)]
    Close {
        /// Funder key: dev name (dev/local), 0x secret seed, or key file.
        #[arg(long)]
        from: String,
        /// The escrow id.
        id: String,
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

/// Options shared by commands that submit a transaction.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Fee [default: the chain minimum].
    #[arg(long)]
    pub fee: Option<String>,
    /// Give up waiting for inclusion after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    #[command(flatten)]
    pub rpc: RpcArgs,
}

/// `escrow open` options.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// Funder key: dev name (dev/local), 0x secret seed, or key file.
    #[arg(long)]
    from: String,
    /// Ticket-signer account [default: the funder]; may be a hot key.
    #[arg(long)]
    signer: Option<String>,
    /// Face value β of a winning ticket (units, or e.g. 10CCH).
    #[arg(long)]
    face_value: String,
    /// Tickets per round, n.
    #[arg(long)]
    tickets_per_round: u32,
    /// Winners per round, w (≤ n).
    #[arg(long)]
    winners_per_round: u32,
    /// Round length in blocks.
    #[arg(long)]
    round_length: u32,
    /// First round [default: the round after the one in progress, so the
    /// opening transaction has at least a round to be included].
    #[arg(long)]
    first_round: Option<u64>,
    /// Number of rounds.
    #[arg(long, default_value_t = 1)]
    rounds: u64,
    /// Blocks between a round's end and its draw block.
    #[arg(long, default_value_t = 2)]
    draw_delay: u32,
    /// Blocks after the draw during which winners may claim.
    #[arg(long, default_value_t = 100)]
    claim_window: u32,
    /// Payment deposit [default: exactly w·β·rounds].
    #[arg(long)]
    payment: Option<String>,
    /// Penalty deposit (units, or e.g. 100CCH) [default: the safe minimum
    /// for the terms, w·β·(⌈c/L⌉ + ⌈d/L⌉ + 1)/(1 − reporter share); see
    /// docs/microcash.md §9].
    #[arg(long)]
    penalty: Option<String>,
    #[command(flatten)]
    submit: SubmitArgs,
}

/// Runs an escrow command.
pub fn run(cmd: EscrowCommand) -> anyhow::Result<()> {
    shared::runtime()?.block_on(async move {
        match cmd {
            EscrowCommand::Open(a) => open(a).await,
            EscrowCommand::Show { id, funder, rpc } => show(id, funder, &rpc).await,
            EscrowCommand::TopUp {
                from,
                id,
                rounds,
                penalty,
                submit,
            } => {
                let client = NodeClient::new(&submit.rpc.rpc)?;
                let f = shared::facts(&client).await?;
                let escrow = parse_escrow_id(&id)?;
                let penalty = parse_amount(&penalty, f.decimals, &f.symbol)?;
                let call = Call::EscrowTopUp {
                    escrow,
                    extra_rounds: rounds,
                    penalty,
                };
                let found = send(&client, &f, &from, call, &submit).await?;
                println!(
                    "Topped up escrow {escrow}; {}",
                    shared::inclusion_line(&found)
                );
                Ok(())
            }
            EscrowCommand::Close { from, id, submit } => {
                let client = NodeClient::new(&submit.rpc.rpc)?;
                let f = shared::facts(&client).await?;
                let escrow = parse_escrow_id(&id)?;
                let found = send(&client, &f, &from, Call::EscrowClose { escrow }, &submit).await?;
                match shared::escrow(&client, &escrow).await? {
                    Some(held) if held.escrow.closed => println!(
                        "Returned the payment deposit of escrow {escrow}; its penalty deposit of {} {} \
                         stays locked until block #{} so that a late duplicate proof can still \
                         forfeit it: run `cachecash escrow close` again from then; {}",
                        format_balance(held.escrow.penalty, f.decimals),
                        f.symbol,
                        held.penalty_release_height.unwrap_or_default(),
                        shared::inclusion_line(&found)
                    ),
                    _ => println!("Closed escrow {escrow}; {}", shared::inclusion_line(&found)),
                }
                Ok(())
            }
        }
    })
}

/// Parses a 0x escrow id.
pub fn parse_escrow_id(s: &str) -> anyhow::Result<EscrowId> {
    Hash::from_hex(s)
        .with_context(|| format!("'{s}' is not an escrow id (0x followed by 64 hex digits)"))
}

/// Signs `call` with the key `from`, submits it and waits for inclusion.
pub async fn send(
    client: &NodeClient,
    f: &shared::ChainFacts,
    from: &str,
    call: Call,
    submit: &SubmitArgs,
) -> anyhow::Result<cachecash_node::rpc::api::TransactionLookup> {
    let key = shared::resolve_key(from, f)?;
    let fee = match &submit.fee {
        Some(x) => parse_amount(x, f.decimals, &f.symbol)?,
        None => shared::minimum_fee(client, &call).await?,
    };
    let s = shared::submit(client, f, &key, call, fee).await?;
    eprintln!(
        "Submitted {} (nonce {}); waiting for inclusion…",
        s.hash, s.nonce
    );
    shared::wait_included(client, &s.hash, submit.timeout).await
}

async fn open(a: OpenArgs) -> anyhow::Result<()> {
    let client = NodeClient::new(&a.submit.rpc.rpc)?;
    let f = shared::facts(&client).await?;
    let key = shared::resolve_key(&a.from, &f)?;
    let funder = cachecash_runtime::AccountId::from_signing_key(&key);
    let signer = match &a.signer {
        Some(s) => shared::resolve_account(s, &f)?,
        None => funder,
    };
    if a.rounds == 0 {
        anyhow::bail!("--rounds must be at least 1");
    }
    if a.round_length == 0 {
        anyhow::bail!("--round-length must be at least 1 block");
    }
    let head = {
        use cachecash_node::rpc::api::ChainApiClient;
        client
            .run("chain_getHeader", client.api().header(None))
            .await?
            .context("the node returned no best block")?
            .header
            .number
    };
    let first_round = match a.first_round {
        Some(r) => r,
        // The round after the one the next block falls in: the opening
        // transaction must be included before the first round starts.
        None => head
            .saturating_add(1)
            .div_ceil(u64::from(a.round_length))
            .saturating_add(1),
    };
    let terms = EscrowTerms {
        signer,
        face_value: parse_amount(&a.face_value, f.decimals, &f.symbol)?,
        tickets_per_round: a.tickets_per_round,
        winners_per_round: a.winners_per_round,
        round_length: a.round_length,
        first_round,
        last_round: first_round
            .checked_add(a.rounds - 1)
            .context("--first-round + --rounds overflows")?,
        draw_delay: a.draw_delay,
        claim_window: a.claim_window,
    };
    terms.validate().context("the escrow terms are invalid")?;
    let payment = match &a.payment {
        Some(p) => parse_amount(p, f.decimals, &f.symbol)?,
        None => terms.payment_required(a.rounds)?,
    };
    let penalty: Balance = match &a.penalty {
        Some(p) => parse_amount(p, f.decimals, &f.symbol)?,
        None => {
            let share = shared::consensus(&client)
                .await?
                .duplicate_reporter_share_percent;
            terms
                .safe_penalty(share)
                .context("cannot derive a safe penalty; pass --penalty")?
        }
    };
    let nonce = shared::next_nonce(&client, &funder).await?;
    let id = escrow_id(&f.genesis, &funder, nonce);
    let found = send(
        &client,
        &f,
        &a.from,
        Call::EscrowOpen {
            terms: terms.clone(),
            payment,
            penalty,
        },
        &a.submit,
    )
    .await?;
    println!("Escrow {id}");
    println!(
        "  funder {funder}, signer {signer}; payment {} {sym}, penalty {} {sym}",
        format_balance(payment, f.decimals),
        format_balance(penalty, f.decimals),
        sym = f.symbol
    );
    println!(
        "  rounds {}..={} of {} blocks; round {} draws at block #{}; unlocks at #{}",
        terms.first_round,
        terms.last_round,
        terms.round_length,
        terms.first_round,
        terms.draw_height(terms.first_round)?,
        terms.unlock_height()?
    );
    println!("  {}", shared::inclusion_line(&found));
    Ok(())
}

async fn show(id: Option<String>, funder: Option<String>, rpc: &RpcArgs) -> anyhow::Result<()> {
    let client = NodeClient::new(&rpc.rpc)?;
    if let Some(funder) = funder {
        let f = shared::facts(&client).await?;
        let account = shared::resolve_account(&funder, &f)?;
        // Page through the index at one block, so a concurrent open or
        // close cannot skip or repeat an escrow.
        use cachecash_node::rpc::api::{ChainApiClient, EscrowApiClient};
        const PAGE: u64 = 1024;
        let at = client
            .run("chain_getBlockHash", client.api().block_hash(None))
            .await?;
        let mut ids = Vec::new();
        loop {
            let page = client
                .run(
                    "escrow_listByFunder",
                    client
                        .api()
                        .list_by_funder(account, at, Some(ids.len() as u64), Some(PAGE)),
                )
                .await?;
            let last = (page.len() as u64) < PAGE;
            ids.extend(page);
            if last {
                break;
            }
        }
        println!("{}", serde_json::to_string_pretty(&ids)?);
        return Ok(());
    }
    let id = id.context("give an escrow id, or --funder ACCOUNT to list a funder's escrows")?;
    let escrow = parse_escrow_id(&id)?;
    let Some(v) = shared::escrow(&client, &escrow).await? else {
        anyhow::bail!(
            "escrow {escrow} does not exist at the best block (never opened, or already closed)"
        );
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

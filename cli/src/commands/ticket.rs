//! `cachecash ticket issue|check|claim`: MicroCash lottery tickets.
//!
//! Tickets travel as `0x` hex of their SCALE encoding (`SignedTicket`), one
//! per line in files.

use crate::commands::escrow::{SubmitArgs, parse_escrow_id, send};
use crate::shared::{self, NodeClient, RpcArgs};
use anyhow::Context;
use cachecash_runtime::microcash::{
    SignedTicket, Ticket, secret_commitment, sign_ticket, sign_tickets_batch,
};
use cachecash_runtime::primitives::{decode_hex, decode_hex_array, encode_hex};
use cachecash_runtime::transaction::TicketClaimItem;
use cachecash_runtime::{Call, Hash};
use clap::{Args, Subcommand};
use parity_scale_codec::{DecodeAll, Encode};

use std::path::PathBuf;

/// Largest ticket file read.
const MAX_TICKET_FILE: u64 = 16 * 1024 * 1024;

/// Ticket commands.
#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Sign tickets with an escrow's signer key, singly or as one batch.
    ///
    /// Examples:
    ///   cachecash ticket issue --signer alice --escrow 0x… --round 40 --numbers 0-3 \
    ///       --cache bob --client charlie --chunk 0x… --secret 0x… --batch --output t.txt
    ///   cachecash ticket issue --signer ./hot.key --escrow 0x… --round 41 --numbers 7,9 \
    ///       --cache 0x… --client 0x… --chunk 0x…
    #[command(verbatim_doc_comment)]
    Issue(IssueArgs),
    /// Say whether tickets are valid, winning, claimed or expired, and why.
    ///
    /// Example:
    ///   cachecash ticket check t.txt
    #[command(verbatim_doc_comment)]
    Check {
        /// Tickets: 0x hex, or files with one per line.
        tickets: Vec<String>,
        #[command(flatten)]
        rpc: RpcArgs,
    },
    /// Claim winning tickets for their cache (the signing key).
    ///
    /// Example:
    ///   cachecash ticket claim --from bob --secret 0x… t.txt
    ///   cachecash ticket claim --from bob --secret 0x…a,0x…b 0x…ticket1 0x…ticket2
    #[command(verbatim_doc_comment)]
    Claim {
        /// The cache's key: dev name (dev/local), 0x secret seed, or key file.
        #[arg(long)]
        from: String,
        /// The puzzle secret (32 bytes) the tickets commit to: once for
        /// all tickets, or once per ticket in their order.
        #[arg(long, required = true, value_delimiter = ',')]
        secret: Vec<String>,
        /// Tickets: 0x hex, or files with one per line.
        tickets: Vec<String>,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Prove that an escrow's signer signed two different tickets with the
    /// same escrow, round and number: its penalty deposit is forfeited and
    /// the reporter (the signing key) gets its share, less the fee. The
    /// reporter must be a cache named in one of the two tickets (so no one
    /// can copy a victim's proof from the pool and take its reward).
    ///
    /// Example:
    ///   cachecash ticket prove-duplicate --from bob 0x…first 0x…second
    #[command(verbatim_doc_comment)]
    ProveDuplicate {
        /// The reporter's key: dev name (dev/local), 0x secret seed, or key file.
        #[arg(long)]
        from: String,
        /// The first ticket: 0x hex, or a file holding it.
        first: String,
        /// The second ticket: 0x hex, or a file holding it.
        second: String,
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

/// `ticket issue` options.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The escrow's ticket-signer key.
    #[arg(long)]
    signer: String,
    /// The escrow id.
    #[arg(long)]
    escrow: String,
    /// The round.
    #[arg(long)]
    round: u64,
    /// Ticket numbers: a list and ranges, e.g. `0-3,7`.
    #[arg(long)]
    numbers: String,
    /// The cache paid by these tickets.
    #[arg(long)]
    cache: String,
    /// The client's key (account id or dev name).
    #[arg(long)]
    client: String,
    /// The chunk id bound to the tickets [default: 32 zero bytes].
    #[arg(long)]
    chunk: Option<String>,
    /// The puzzle secret (32 bytes hex) [default: fresh random, printed].
    #[arg(long)]
    secret: Option<String>,
    /// One signature over the batch's Merkle root instead of one per ticket.
    #[arg(long)]
    batch: bool,
    /// Write the tickets to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Runs a ticket command.
pub fn run(cmd: TicketCommand) -> anyhow::Result<()> {
    shared::runtime()?.block_on(async move {
        match cmd {
            TicketCommand::Issue(a) => issue(a).await,
            TicketCommand::Check { tickets, rpc } => check(&tickets, &rpc).await,
            TicketCommand::Claim {
                from,
                secret,
                tickets,
                submit,
            } => {
                let client = NodeClient::new(&submit.rpc.rpc)?;
                let f = shared::facts(&client).await?;
                let secrets = secret
                    .iter()
                    .map(|s| {
                        decode_hex_array::<32>(s)
                            .with_context(|| format!("--secret '{s}' must be 0x followed by 64 hex digits"))
                    })
                    .collect::<anyhow::Result<Vec<[u8; 32]>>>()?;
                let tickets = read_tickets(&tickets)?;
                if secrets.len() != 1 && secrets.len() != tickets.len() {
                    anyhow::bail!(
                        "{} secrets for {} tickets: give one --secret for all tickets, or one per ticket in their order",
                        secrets.len(),
                        tickets.len()
                    );
                }
                let claims: Vec<TicketClaimItem> = tickets
                    .into_iter()
                    .enumerate()
                    .map(|(i, ticket)| TicketClaimItem {
                        ticket,
                        preimage: secrets[if secrets.len() == 1 { 0 } else { i }],
                    })
                    .collect();
                let max = cachecash_runtime::microcash::MAX_CLAIMS_PER_TRANSACTION;
                if claims.is_empty() || claims.len() > max {
                    anyhow::bail!(
                        "a claim carries 1 to {max} tickets, not {}; split them",
                        claims.len()
                    );
                }
                let n = claims.len();
                let found = send(&client, &f, &from, Call::TicketClaim { claims }, &submit).await?;
                println!("Claimed {n} ticket(s); {}", shared::inclusion_line(&found));
                Ok(())
            }
            TicketCommand::ProveDuplicate {
                from,
                first,
                second,
                submit,
            } => {
                let one = |input: &str, which: &str| -> anyhow::Result<SignedTicket> {
                    let mut t = read_tickets(&[input.to_string()])?;
                    if t.len() != 1 {
                        anyhow::bail!("the {which} ticket: '{input}' holds {} tickets, not one", t.len());
                    }
                    Ok(t.remove(0))
                };
                let (a, b) = (one(&first, "first")?, one(&second, "second")?);
                let (x, y) = (&a.ticket, &b.ticket);
                if x.escrow != y.escrow || x.round != y.round || x.number != y.number {
                    anyhow::bail!(
                        "not a duplicate: the tickets differ in escrow, round or number ({} r{} #{} vs {} r{} #{})",
                        x.escrow, x.round, x.number, y.escrow, y.round, y.number
                    );
                }
                if x == y {
                    anyhow::bail!("not a duplicate: the two tickets are identical");
                }
                let client = NodeClient::new(&submit.rpc.rpc)?;
                let f = shared::facts(&client).await?;
                let call = Call::DuplicateTicketProof {
                    first: Box::new(a),
                    second: Box::new(b),
                };
                let found = send(&client, &f, &from, call, &submit).await?;
                println!("Duplicate proven; {}", shared::inclusion_line(&found));
                Ok(())
            }
        }
    })
}

/// Parses `0-3,7` into numbers (at most 1,000,000).
pub fn parse_numbers(s: &str) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: u32 = lo
            .parse()
            .with_context(|| format!("'{part}' is not a number or range"))?;
        let hi: u32 = hi
            .parse()
            .with_context(|| format!("'{part}' is not a number or range"))?;
        if hi < lo {
            anyhow::bail!("range '{part}' is empty: write it low-high");
        }
        if out.len() + (hi - lo) as usize >= 1_000_000 {
            anyhow::bail!("at most 1,000,000 tickets per command");
        }
        out.extend(lo..=hi);
    }
    if out.is_empty() {
        anyhow::bail!("--numbers names no ticket; write e.g. 0-3,7");
    }
    Ok(out)
}

async fn issue(a: IssueArgs) -> anyhow::Result<()> {
    let client = NodeClient::new(&a.rpc.rpc)?;
    let f = shared::facts(&client).await?;
    let key = shared::resolve_key(&a.signer, &f)?;
    let escrow = parse_escrow_id(&a.escrow)?;
    let cache = shared::resolve_account(&a.cache, &f)?;
    let client_key = shared::resolve_account(&a.client, &f)?;
    let chunk = match &a.chunk {
        Some(c) => Hash::from_hex(c).context("--chunk must be 0x followed by 64 hex digits")?,
        None => Hash::default(),
    };
    let secret: [u8; 32] = match &a.secret {
        Some(s) => decode_hex_array(s).context("--secret must be 0x followed by 64 hex digits")?,
        None => {
            let mut s = [0u8; 32];
            getrandom::fill(&mut s).map_err(|e| anyhow::anyhow!("OS random source failed: {e}"))?;
            eprintln!("Puzzle secret (keep it for the claim): {}", encode_hex(&s));
            s
        }
    };
    let secret_hash = secret_commitment(&secret);
    let tickets: Vec<Ticket> = parse_numbers(&a.numbers)?
        .into_iter()
        .map(|number| Ticket {
            escrow,
            round: a.round,
            number,
            cache,
            client: client_key,
            chunk,
            secret_hash,
        })
        .collect();
    // Refuse tickets the chain would refuse anyway, when the escrow is known.
    match shared::escrow(&client, &escrow).await? {
        None => eprintln!("warning: escrow {escrow} does not exist at the best block"),
        Some(e) => {
            let n = u64::from(e.escrow.terms.tickets_per_round);
            if let Some(t) = tickets.iter().find(|t| u64::from(t.number) >= n) {
                anyhow::bail!(
                    "ticket number {} is out of range: the escrow issues 0..{n}",
                    t.number
                );
            }
        }
    }
    let signed = if a.batch {
        sign_tickets_batch(&key, tickets)
    } else {
        tickets.into_iter().map(|t| sign_ticket(&key, t)).collect()
    };
    let text: String = signed
        .iter()
        .map(|t| format!("{}\n", encode_hex(&t.encode())))
        .collect();
    match &a.output {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("Wrote {} ticket(s) to {}", signed.len(), path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Reads tickets given as hex or as files of hex lines.
pub fn read_tickets(inputs: &[String]) -> anyhow::Result<Vec<SignedTicket>> {
    let mut out = Vec::new();
    for input in inputs {
        let lines: Vec<String> = if input.starts_with("0x") {
            vec![input.clone()]
        } else {
            let path = std::path::Path::new(input);
            let len = std::fs::metadata(path)
                .with_context(|| format!("'{input}' is neither 0x ticket hex nor a readable file"))?
                .len();
            if len > MAX_TICKET_FILE {
                anyhow::bail!(
                    "{input} is {len} bytes; ticket files are at most {MAX_TICKET_FILE} bytes"
                );
            }
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {input}"))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        };
        for (i, line) in lines.iter().enumerate() {
            let bytes =
                decode_hex(line).with_context(|| format!("{input}: line {} is not hex", i + 1))?;
            let t = SignedTicket::decode_all(&mut &bytes[..]).map_err(|e| {
                anyhow::anyhow!("{input}: line {} is not a signed ticket: {e}", i + 1)
            })?;
            out.push(t);
        }
    }
    if out.is_empty() {
        anyhow::bail!(
            "no tickets given: pass 0x ticket hex or files from `cachecash ticket issue`"
        );
    }
    Ok(out)
}

async fn check(inputs: &[String], rpc: &RpcArgs) -> anyhow::Result<()> {
    let client = NodeClient::new(&rpc.rpc)?;
    for st in read_tickets(inputs)? {
        let t = &st.ticket;
        let label = format!(
            "ticket {} of round {} of escrow {}",
            t.number, t.round, t.escrow
        );
        let Some(escrow) = shared::escrow(&client, &t.escrow).await? else {
            println!("{label}: INVALID — the escrow does not exist (never opened, or closed)");
            continue;
        };
        let escrow = escrow.escrow;
        if let Err(err) = escrow.terms.check_slot(t.round, t.number) {
            println!("{label}: INVALID — {err}");
            continue;
        }
        if let Err(err) = st.verify(&escrow.terms.signer) {
            println!("{label}: INVALID — {err}");
            continue;
        }
        let c = {
            use cachecash_node::rpc::api::EscrowApiClient;
            client
                .run(
                    "escrow_getClaim",
                    client.api().claim(t.escrow, t.round, t.number),
                )
                .await?
        };
        let (draw, deadline) = (c.draw_height, c.claim_deadline);
        use cachecash_node::rpc::api::ClaimStatus;
        let why = match c.status {
            ClaimStatus::NotDrawn => format!("valid, not drawn yet: the draw block is #{draw}"),
            ClaimStatus::Lost => "valid, not a winner of its round".to_string(),
            ClaimStatus::Claimable => format!(
                "valid and WINNING: claimable by cache {} until block #{deadline}",
                t.cache
            ),
            ClaimStatus::Claimed => "valid, winning, already claimed".to_string(),
            ClaimStatus::Expired => {
                format!("valid and winning, but EXPIRED: the claim window closed at #{deadline}")
            }
        };
        println!("{label}: {why}");
    }
    Ok(())
}

//! The claimer: turns the tickets a cache holds into Cachecoin, with no
//! operator action.
//!
//! On every new head (and every few seconds, to notice dropped pool
//! transactions) one pass walks the groups of followed tickets
//! ([`Tickets::active_groups`]), skipping groups whose draw block is not
//! mined, and for each drawn group:
//!
//! 1. recomputes the winners from the canonical draw block (the rule of
//!    `escrow_getWinners`; cached per draw block hash, so a reorganisation
//!    that moves the draw block re-evaluates every ticket of the round);
//! 2. moves each ticket along the states of [`super::settle`], following
//!    claims into the chain and back out of it on a reorganisation;
//! 3. gathers the redeemable winners (L2 and secret held) into claims of up
//!    to [`MAX_CLAIMS_PER_TRANSACTION`], earliest deadline first, and sends
//!    each one whose fee is worth it. A claim whose fee exceeds
//!    `max_fee_percent` of what it claims is held back with the reason
//!    shown, and still sent once its window is nearly over if it pays at
//!    all.
//!
//! The pass runs on a blocking thread: it reads RocksDB and signs.

use super::CacheState;
use super::settle::{ClaimRecord, Record, Settle, Slot, Update};
use crate::cdn::ledger::{HeadEvents, Ledger};
use cachecash_runtime::microcash::{self as mc, EscrowId, MAX_CLAIMS_PER_TRANSACTION};
use cachecash_runtime::transaction::TicketClaimItem;
use cachecash_runtime::{AccountId, Balance, Call, Hash, Transaction};
use std::collections::HashMap;
use std::sync::Arc;

/// Ticket transitions written per batch: a round of many thousand tickets
/// is settled in pieces, so a pass's memory does not grow with the round.
/// Each transition stands alone (it is stored before it acts), so a crash
/// between batches resumes where the last one ended.
const SETTLE_BATCH: usize = 1024;

/// The claimer's settings.
#[derive(Debug, Clone)]
pub struct ClaimerConfig {
    /// Confirmations after which a claim (or a losing draw) is final.
    pub depth: u64,
    /// Largest fee, in percent of the face value claimed, paid without
    /// waiting.
    pub max_fee_percent: u8,
    /// Blocks before a window closes from which a held-back claim is sent
    /// whenever it pays at all.
    pub urgent_blocks: u64,
}

impl Default for ClaimerConfig {
    fn default() -> Self {
        ClaimerConfig {
            depth: 6,
            max_fee_percent: 10,
            urgent_blocks: 10,
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassSummary {
    /// Ticket records written.
    pub updated: usize,
    /// Claim transactions sent (new or resubmitted).
    pub sent: usize,
    /// Winners held back by their fee.
    pub held_back: usize,
}

/// Whether a ticket in this settlement state still waits to be paid: a
/// winner not yet final, expired or lost (nothing yet counts as waiting).
fn still_pending(s: Option<&Settle>) -> bool {
    !matches!(
        s,
        None | Some(Settle::Final { .. })
            | Some(Settle::Expired { .. })
            | Some(Settle::Lost { .. })
    )
}

/// The claimer of one cache.
#[derive(Debug)]
pub struct Claimer {
    state: Arc<CacheState>,
    ledger: Arc<dyn Ledger>,
    key: Arc<ed25519_dalek::SigningKey>,
    me: AccountId,
    config: ClaimerConfig,
    /// Winners per (escrow, round), with the draw block they came from.
    draws: HashMap<(EscrowId, u64), (Hash, Vec<u32>)>,
}

struct Redeemable {
    slot: Slot,
    item: TicketClaimItem,
    face_value: Balance,
    draw: Hash,
    deadline: u64,
}

impl Claimer {
    /// The claimer of the cache whose account key is `key`.
    pub fn new(
        state: Arc<CacheState>,
        ledger: Arc<dyn Ledger>,
        key: Arc<ed25519_dalek::SigningKey>,
        config: ClaimerConfig,
    ) -> Claimer {
        let me = AccountId(key.verifying_key().to_bytes());
        Claimer {
            state,
            ledger,
            key,
            me,
            config,
            draws: HashMap::new(),
        }
    }

    fn winners(&mut self, escrow: &EscrowId, round: u64, seed: Hash, n: u32, w: u32) -> &[u32] {
        let e = self
            .draws
            .entry((*escrow, round))
            .or_insert_with(|| (Hash([0; 32]), Vec::new()));
        if e.0 != seed || e.1.is_empty() {
            let mut v = mc::winners(&seed, escrow, round, n, w);
            v.sort_unstable();
            *e = (seed, v);
        }
        &e.1
    }

    /// One pass over every followed ticket.
    pub fn pass(&mut self) -> Result<PassSummary, String> {
        let head = self.ledger.head_number();
        let state = self.state.clone();
        let tickets = &state.tickets;
        let mut updates: Vec<Update> = Vec::new();
        let mut redeemable: Vec<Redeemable> = Vec::new();
        let mut summary = PassSummary::default();
        let mut live = std::collections::HashSet::new();
        // Winners not yet final or expired (the `settle_tickets_pending`
        // gauge): counted here, where every followed ticket is visited
        // anyway, so that reading it costs nothing however many tickets
        // the cache has held.
        let mut pending: i64 = 0;
        for (escrow, round) in tickets.active_groups().map_err(|e| e.to_string())? {
            live.insert((escrow, round));
            let Some(e) = self.ledger.escrow(&escrow)? else {
                // Closed: every claim window had closed before a close was
                // allowed, so only claims already in the chain remain.
                for (number, _) in tickets
                    .active_in(&escrow, round)
                    .map_err(|e| e.to_string())?
                {
                    if updates.len() >= SETTLE_BATCH {
                        summary.updated += updates.len();
                        tickets.settle(&updates, None).map_err(|e| e.to_string())?;
                        updates.clear();
                    }
                    let slot = (escrow, round, number);
                    let old = tickets.settlement(&slot).map_err(|e| e.to_string())?;
                    let face = old.as_ref().map_or(0, |r| r.face_value);
                    let next = match old.as_ref().map(|r| &r.settle) {
                        Some(Settle::Claimed { .. }) | Some(Settle::Submitted { .. }) => {
                            self.follow(old.as_ref().map(|r| &r.settle), head, u64::MAX)?
                        }
                        Some(Settle::Lost { .. }) => None,
                        _ => Some(Settle::Expired {
                            reason: format!(
                                "escrow {escrow} was closed before this ticket was claimed"
                            ),
                        }),
                    };
                    if still_pending(next.as_ref().or(old.as_ref().map(|r| &r.settle))) {
                        pending += 1;
                    }
                    self.push(&mut updates, slot, old.as_ref(), next, face, head);
                }
                continue;
            };
            let terms = e.terms.clone();
            let (Ok(draw_h), Ok(deadline)) =
                (terms.draw_height(round), terms.claim_deadline(round))
            else {
                continue;
            };
            let Some(seed) = self.ledger.canonical_hash(draw_h)? else {
                continue; // not drawn yet
            };
            let winners = self
                .winners(
                    &escrow,
                    round,
                    seed,
                    terms.tickets_per_round,
                    terms.winners_per_round,
                )
                .to_vec();
            let face = terms.face_value;
            for (number, tkey) in tickets
                .active_in(&escrow, round)
                .map_err(|e| e.to_string())?
            {
                if updates.len() >= SETTLE_BATCH {
                    summary.updated += updates.len();
                    tickets.settle(&updates, None).map_err(|e| e.to_string())?;
                    updates.clear();
                }
                let slot = (escrow, round, number);
                let old = tickets.settlement(&slot).map_err(|e| e.to_string())?;
                let won = winners.binary_search(&number).is_ok();
                let cur = old.as_ref().map(|r| &r.settle);
                // A claim in flight or landed is followed; a moved draw that
                // makes it a loser ends it.
                let next = match cur {
                    Some(Settle::Submitted { draw, .. }) | Some(Settle::Claimed { draw, .. })
                        if *draw == seed || won =>
                    {
                        self.follow(cur, head, deadline)?
                    }
                    Some(Settle::Final { .. }) | Some(Settle::Expired { .. }) => None,
                    _ if !won => {
                        let lost = Settle::Lost { draw: seed };
                        let done = head >= draw_h.saturating_add(self.config.depth);
                        if done || cur != Some(&lost) {
                            self.count(cur, &lost, &slot, face);
                            updates.push(Update {
                                slot,
                                record: Record {
                                    settle: lost,
                                    face_value: face,
                                    updated: head,
                                },
                                done,
                            });
                        }
                        continue;
                    }
                    _ if head >= deadline => Some(Settle::Expired {
                        reason: format!(
                            "won round {round}, but {} before its claim window closed at #{deadline}{}",
                            match tickets.ticket_at(&tkey).map_err(|e| e.to_string())? {
                                Some(t) if t.claim.is_some() => "no claim landed",
                                _ => "the client never revealed the puzzle secret (no L2 arrived)",
                            },
                            // Why it last waited, so the operator sees the cause.
                            match cur {
                                Some(Settle::Won { waiting, .. }) if !waiting.is_empty() => {
                                    format!(" (last: {waiting})")
                                }
                                _ => String::new(),
                            }
                        ),
                    }),
                    _ => {
                        let held = tickets.ticket_at(&tkey).map_err(|e| e.to_string())?;
                        match held {
                            Some(t) if t.claim.is_some() && t.l1.is_some() => {
                                let (Some(l1), Some(c)) = (t.l1, t.claim) else { continue };
                                pending += 1; // claimed below, in this pass
                                redeemable.push(Redeemable {
                                    slot,
                                    item: TicketClaimItem {
                                        ticket: l1,
                                        preimage: *c.secret.as_bytes(),
                                    },
                                    face_value: face,
                                    draw: seed,
                                    deadline,
                                });
                                continue;
                            }
                            _ => Some(Settle::Won {
                                draw: seed,
                                waiting: "waiting for the puzzle secret (the L2 relayed by the publisher)".into(),
                            }),
                        }
                    }
                };
                if won && still_pending(next.as_ref().or(cur)) {
                    pending += 1;
                }
                self.push(&mut updates, slot, old.as_ref(), next, face, head);
            }
        }
        self.draws.retain(|k, _| live.contains(k));
        self.state.counters.tickets_pending.set(pending);
        summary.updated += updates.len();
        if !updates.is_empty() {
            tickets.settle(&updates, None).map_err(|e| e.to_string())?;
        }
        let (sent, held) = self.claim(redeemable, head)?;
        summary.sent += sent;
        summary.held_back = held;
        Ok(summary)
    }

    fn push(
        &self,
        updates: &mut Vec<Update>,
        slot: Slot,
        old: Option<&Record>,
        next: Option<Settle>,
        face: Balance,
        head: u64,
    ) {
        let Some(next) = next else { return };
        let done = matches!(
            next,
            Settle::Final { .. } | Settle::Expired { .. } | Settle::Lost { .. }
        );
        if old.map(|r| &r.settle) == Some(&next) && !done {
            return;
        }
        self.count(old.map(|r| &r.settle), &next, &slot, face);
        updates.push(Update {
            slot,
            record: Record {
                settle: next,
                face_value: face,
                updated: head,
            },
            done,
        });
    }

    /// Counts a transition in the Prometheus counters.
    fn count(&self, old: Option<&Settle>, next: &Settle, slot: &Slot, face: Balance) {
        if old.map(Settle::name) == Some(next.name()) {
            return;
        }
        let c = &self.state.counters;
        match next {
            Settle::Lost { .. } => {
                c.tickets_lost.inc();
            }
            Settle::Won { .. } if !matches!(old, Some(Settle::Submitted { .. })) => {
                c.tickets_won.inc();
            }
            Settle::Expired { .. } => {
                c.tickets_expired.inc();
            }
            Settle::Claimed { .. } => {
                c.claims_landed.inc();
            }
            Settle::Final { tx, .. } => {
                c.tickets_final.inc();
                c.earned.inc_by(u64::try_from(face).unwrap_or(u64::MAX));
                // The fee once per claim: with its first ticket.
                if let Ok(Some(r)) = self.state.tickets.claim(tx)
                    && r.slots.first() == Some(slot)
                {
                    c.fees_spent
                        .inc_by(u64::try_from(r.tx.tx.fee).unwrap_or(u64::MAX));
                }
            }
            _ => {}
        }
        if let Some(old) = old {
            tracing::debug!(target: "cachecash::settle", escrow = %slot.0, round = slot.1, number = slot.2, from = old.name(), to = next.name(), "ticket");
        }
    }

    /// Follows a submitted or landed claim.
    fn follow(
        &self,
        cur: Option<&Settle>,
        head: u64,
        deadline: u64,
    ) -> Result<Option<Settle>, String> {
        let (draw, tx) = match cur {
            Some(Settle::Submitted { draw, tx }) | Some(Settle::Claimed { draw, tx, .. }) => {
                (*draw, *tx)
            }
            _ => return Ok(None),
        };
        if let Some((number, block)) = self.ledger.transaction_block(&tx)? {
            if head >= number.saturating_add(self.config.depth) {
                return Ok(Some(Settle::Final { tx, block, number }));
            }
            return Ok(Some(Settle::Claimed {
                draw,
                tx,
                block,
                number,
            }));
        }
        // Not in the canonical chain (never landed, or reorganised out).
        if self.ledger.is_pending(&tx) {
            return Ok(Some(Settle::Submitted { draw, tx }));
        }
        if head >= deadline {
            return Ok(Some(Settle::Expired {
                reason: format!(
                    "claim transaction {tx} did not land before the claim window closed at #{deadline}"
                ),
            }));
        }
        // Resubmit the same bytes while their nonce is still unused; once
        // another transaction took the nonce, a new claim is built.
        let record = self.state.tickets.claim(&tx).map_err(|e| e.to_string())?;
        let nonce = self.ledger.state_nonce(&self.me)?;
        match record {
            Some(r) if r.tx.tx.nonce >= nonce => match self.ledger.submit(r.tx) {
                Ok(_) => Ok(Some(Settle::Submitted { draw, tx })),
                // Refused (a moved draw made another of its tickets lose,
                // its fee no longer suffices, …): build a new claim.
                Err(e) => {
                    tracing::debug!(target: "cachecash::settle", %tx, "claim resubmission refused: {e}");
                    Ok(Some(Settle::Won {
                        draw,
                        waiting: format!(
                            "claim {tx} was refused when resubmitted ({e}); a new claim is being built"
                        ),
                    }))
                }
            },
            _ => Ok(Some(Settle::Won {
                draw,
                waiting: format!("claim {tx} was dropped; a new claim is being built"),
            })),
        }
    }

    /// After a reorganisation that retracted blocks from `since` on, deeper
    /// than the claimer follows tickets: follows again every ticket whose
    /// final claim or losing draw lay in a retracted block (a partition
    /// that outlasted `depth`), so the next pass re-draws and re-claims
    /// them against the new chain. Scans every record: deep reorganisations
    /// are rare. Returns how many tickets it took back.
    pub fn rewind(&mut self, since: u64) -> Result<usize, String> {
        let ledger = self.ledger.clone();
        let mut terms = std::collections::HashMap::new();
        let canonical = |n: u64, h: &Hash| ledger.canonical_hash(n).ok().flatten() == Some(*h);
        self.state
            .tickets
            .reactivate(|slot, record| match &record.settle {
                Settle::Final { tx, block, number }
                    if *number >= since && !canonical(*number, block) =>
                {
                    Some(Record {
                        // An unknown draw: the next pass re-draws it.
                        settle: Settle::Claimed {
                            draw: Hash::default(),
                            tx: *tx,
                            block: *block,
                            number: *number,
                        },
                        ..record.clone()
                    })
                }
                Settle::Lost { draw } => {
                    let t = terms
                        .entry(slot.0)
                        .or_insert_with(|| ledger.escrow(&slot.0).ok().flatten().map(|e| e.terms));
                    let h = t.as_ref()?.draw_height(slot.1).ok()?;
                    (h >= since && !canonical(h, draw)).then(|| record.clone())
                }
                _ => None,
            })
            .map_err(|e| e.to_string())
    }

    /// Sends the redeemable winners as claims, or records why they wait.
    fn claim(&self, mut winners: Vec<Redeemable>, head: u64) -> Result<(usize, usize), String> {
        winners.sort_by_key(|r| r.deadline);
        let (mut sent, mut held) = (0, 0);
        let genesis = self.ledger.genesis();
        let mut chunks = Vec::new();
        while !winners.is_empty() {
            let rest = winners.split_off(winners.len().min(MAX_CLAIMS_PER_TRANSACTION));
            chunks.push(std::mem::replace(&mut winners, rest));
        }
        for batch in chunks {
            let value: Balance = batch
                .iter()
                .map(|r| r.face_value)
                .fold(0, Balance::saturating_add);
            let call = Call::TicketClaim {
                claims: batch.iter().map(|r| r.item.clone()).collect(),
            };
            let size = Transaction {
                signer: self.me,
                nonce: 0,
                fee: 0,
                call: call.clone(),
            }
            .signed_size();
            let fee = self.ledger.fee_estimate(size);
            let deadline = batch.iter().map(|r| r.deadline).min().unwrap_or(0);
            let urgent = deadline.saturating_sub(head) <= self.config.urgent_blocks;
            let cheap = fee.saturating_mul(100)
                <= value.saturating_mul(Balance::from(self.config.max_fee_percent));
            if !(cheap || (urgent && fee < value)) {
                held += batch.len();
                let waiting = if fee >= value {
                    format!(
                        "held back: the claim fee {fee} is not below the {value} it would claim"
                    )
                } else {
                    format!(
                        "held back: the claim fee {fee} is more than {}% of the {value} it would claim; it is sent by #{} at the latest",
                        self.config.max_fee_percent,
                        deadline.saturating_sub(self.config.urgent_blocks)
                    )
                };
                let updates: Vec<Update> = batch
                    .iter()
                    .map(|r| Update {
                        slot: r.slot,
                        record: Record {
                            settle: Settle::Won {
                                draw: r.draw,
                                waiting: waiting.clone(),
                            },
                            face_value: r.face_value,
                            updated: head,
                        },
                        done: false,
                    })
                    .collect();
                self.state
                    .tickets
                    .settle(&updates, None)
                    .map_err(|e| e.to_string())?;
                continue;
            }
            let nonce = self.ledger.next_nonce(&self.me)?;
            let tx = Transaction {
                signer: self.me,
                nonce,
                fee,
                call,
            }
            .sign(&self.key, &genesis);
            let hash = tx.hash();
            let record = ClaimRecord {
                tx: tx.clone(),
                slots: batch.iter().map(|r| r.slot).collect(),
                value,
                submitted_at: head,
            };
            let submitted: Vec<Update> = batch
                .iter()
                .map(|r| Update {
                    slot: r.slot,
                    record: Record {
                        settle: Settle::Submitted {
                            draw: r.draw,
                            tx: hash,
                        },
                        face_value: r.face_value,
                        updated: head,
                    },
                    done: false,
                })
                .collect();
            // On disk before the pool sees it.
            self.state
                .tickets
                .settle(&submitted, Some(&record))
                .map_err(|e| e.to_string())?;
            match self.ledger.submit(tx) {
                Ok(_) => {
                    sent += 1;
                    self.state.counters.claims_submitted.inc();
                    tracing::info!(target: "cachecash::settle", tx = %hash, tickets = batch.len(), %value, %fee, "claim submitted");
                }
                Err(e) => {
                    self.state.counters.claims_failed.inc();
                    tracing::warn!(target: "cachecash::settle", tx = %hash, "claim refused by the pool: {e}");
                    let back: Vec<Update> = batch
                        .iter()
                        .map(|r| Update {
                            slot: r.slot,
                            record: Record {
                                settle: Settle::Won {
                                    draw: r.draw,
                                    waiting: format!("the pool refused the claim: {e}; retrying"),
                                },
                                face_value: r.face_value,
                                updated: head,
                            },
                            done: false,
                        })
                        .collect();
                    self.state
                        .tickets
                        .settle(&back, None)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok((sent, held))
    }
}

/// Runs the claimer until the task is aborted or the chain shuts down: a
/// pass on the blocking pool after every change of the canonical chain
/// (`heads`: new blocks and reorganisations, several coalesced into one
/// pass), at least every `idle`, and at once on an operator's "claim now"
/// (`claim_now`), which gets the summary of that pass.
pub async fn run(
    claimer: Claimer,
    idle: std::time::Duration,
    mut heads: HeadEvents,
    mut claim_now: Option<crate::cdn::actions::Receiver<(), Result<PassSummary, String>>>,
) {
    let claimer = Arc::new(parking_lot::Mutex::new(claimer));
    loop {
        let mut asked = None;
        // The first block of the deepest reorganisation seen that may have
        // retracted settled tickets (one deeper than the follow depth).
        let mut rewind: Option<u64> = None;
        let depth = claimer.lock().config.depth;
        let mut note = |e: &crate::ledger::HeadEvent| {
            if let crate::ledger::HeadEvent::Reorg { common, retracted } = e
                && retracted.len() as u64 >= depth
            {
                let since = common.number.saturating_add(1);
                rewind = Some(rewind.map_or(since, |r: u64| r.min(since)));
            }
        };
        tokio::select! {
            e = heads.next() => {
                let Some(e) = e else {
                    return;
                };
                note(&e);
                // Coalesce a burst (a sync, a reorganisation) into one pass.
                while let Some(e) = heads.try_next() {
                    note(&e);
                }
            }
            () = tokio::time::sleep(idle) => {}
            ((), reply) = crate::cdn::actions::next(&mut claim_now) => {
                tracing::info!(target: "cachecash::settle", "claim pass asked by the operator");
                asked = Some(reply);
            }
        }
        if let Some(since) = rewind {
            let c = claimer.clone();
            match tokio::task::spawn_blocking(move || c.lock().rewind(since)).await {
                Ok(Ok(n)) if n > 0 => {
                    tracing::warn!(target: "cachecash::settle", since, tickets = n, "a deep reorganisation retracted settled tickets; following them again");
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(target: "cachecash::settle", "rewind after a reorganisation failed: {e}")
                }
                Err(e) => tracing::error!(target: "cachecash::settle", "rewind panicked: {e}"),
            }
        }
        let c = claimer.clone();
        let summary = match tokio::task::spawn_blocking(move || c.lock().pass()).await {
            Ok(Ok(s)) => {
                if s.sent > 0 || s.updated > 0 {
                    tracing::debug!(target: "cachecash::settle", updated = s.updated, sent = s.sent, held_back = s.held_back, "claimer pass");
                }
                Ok(s)
            }
            Ok(Err(e)) => {
                tracing::error!(target: "cachecash::settle", "claimer pass failed: {e}; retrying");
                Err(e)
            }
            Err(e) => {
                tracing::error!(target: "cachecash::settle", "claimer pass panicked: {e}");
                Err(e.to_string())
            }
        };
        if let Some(reply) = asked {
            let _ = reply.send(summary);
        }
    }
}

pub mod memory;
#[cfg(test)]
mod tests;

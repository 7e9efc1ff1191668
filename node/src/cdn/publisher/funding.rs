//! The escrow manager: keeps the publisher's escrow funded, rotates to a
//! fresh one when it cannot be, and closes the ones that are finished.
//!
//! It wakes on each new best block (the ledger's head events) and never
//! polls. Per block, in order:
//!
//! 1. **Close** ([`close_finished`]): every escrow of the funder whose
//!    funds may come back is closed: from its unlock height (the payment
//!    deposit) and again from its penalty release height (the penalty).
//! 2. **Top up** ([`top_up`]): when fewer than `top_up_rounds` rounds are
//!    left to issue in (draw ahead and ticket numbers left:
//!    [`super::escrow::Counters::issuable_rounds`]), `top_up_rounds` more are added, while the plan's
//!    budget allows and the chain still accepts a top-up.
//! 3. **Rotate** ([`Rotation`]): when at most `rotate_rounds` rounds are left
//!    and no top-up will come, a fresh escrow is opened on the plan's terms,
//!    offered to every hired cache, and made current once it is on chain.
//!    Sessions already open finish on the escrow they started with (it
//!    still has rounds left: that is what `rotate_rounds` is for); new ones
//!    use the fresh escrow, on the caches that accepted it. The old escrow
//!    is closed by step 1 when it unlocks.
//!
//! One transaction of each kind is in flight at a time; one that left the
//! pool without landing is retried three blocks later.

use super::Publisher;
use super::escrow::{ActiveEscrow, EscrowPlan, promote_next, rounds_left};
use crate::ledger::{HeadEvent, LedgerClient, TxStatus};
use cachecash_runtime::microcash::{Escrow, EscrowId};
use cachecash_runtime::{AccountId, Balance, Call, Hash, Transaction};
use ed25519_dalek::SigningKey;
use std::collections::HashMap;
use std::sync::Arc;

/// Most escrows of one funder examined per block by [`close_finished`].
const CLOSE_SCAN: u64 = 256;

/// Blocks after which a submitted transaction that left the pool without
/// landing is tried again.
const RETRY_BLOCKS: u64 = 3;

/// Whether a transaction submitted at block `at` may still land: it is in
/// the pool, or was sent less than [`RETRY_BLOCKS`] ago.
async fn in_flight(ledger: &dyn LedgerClient, tx: Hash, at: u64, next: u64) -> bool {
    matches!(
        ledger.transaction_status(tx, 1).await,
        Ok(TxStatus::Pending)
    ) || next < at.saturating_add(RETRY_BLOCKS)
}

/// Signs and submits `call` from the funder; its hash.
async fn send(
    ledger: &dyn LedgerClient,
    funder: &SigningKey,
    fee: Balance,
    call: Call,
) -> Result<Hash, String> {
    let me = AccountId::from_signing_key(funder);
    let nonce = ledger.next_nonce(me).await.map_err(|e| e.to_string())?;
    let tx = Transaction {
        signer: me,
        nonce,
        fee,
        call,
    }
    .sign(funder, &ledger.genesis());
    ledger.submit(tx).await.map_err(|e| e.to_string())
}

/// Runs the escrow manager for the publisher's funder until the module
/// stops.
pub async fn keep_funded(publisher: Publisher, funder: Arc<SigningKey>, plan: EscrowPlan) {
    let ledger = publisher.client.clone();
    let mut closing = HashMap::new();
    let mut top_ups = TopUps::default();
    let mut rotation: Option<Rotation> = None;
    let mut heads = ledger.head_events(1);
    let mut close_now = publisher.state.close_now.take_receiver();
    loop {
        tokio::select! {
            e = heads.next() => match e {
                None => return,
                Some(HeadEvent::NewBest(_)) => {}
                Some(_) => continue,
            },
            (id, reply) = crate::cdn::actions::next(&mut close_now) => {
                let r = close_one(ledger.as_ref(), &funder, plan.fee, id, &mut closing).await;
                let _ = reply.send(r);
                continue;
            }
        }
        close_finished(ledger.as_ref(), &funder, plan.fee, &mut closing).await;
        let Some(escrow) = publisher.state.escrow() else {
            continue;
        };
        let e = match ledger.escrow(escrow.id, None).await {
            Ok(p) => match p.value {
                Some(e) => e,
                None => continue,
            },
            Err(err) => {
                tracing::warn!(target: "cachecash::cdn", escrow = %escrow.id, "escrow manager: {err}");
                continue;
            }
        };
        if e.terms != escrow.terms() {
            tracing::info!(target: "cachecash::cdn", escrow = %escrow.id, last_round = e.terms.last_round, "escrow terms updated from the chain");
            escrow.set_terms(e.terms.clone());
            top_ups.pending = None;
        }
        // Rounds still able to issue: draw ahead and numbers left (an
        // issuance above ticketsPerRound spends later rounds' numbers).
        let enough = plan.top_up_rounds.max(plan.rotate_rounds).saturating_add(1);
        let head = ledger.best().number;
        let (kv, active, terms) = (publisher.state.kv.clone(), escrow.clone(), e.terms.clone());
        let left = match tokio::task::spawn_blocking(move || {
            active.numbers.issuable_rounds(&kv, &terms, head, enough)
        })
        .await
        {
            Ok(Ok(n)) => n,
            _ => rounds_left(&e.terms, head).min(enough),
        };
        let funded = top_up(
            ledger.as_ref(),
            &escrow,
            &e,
            left,
            &funder,
            &plan,
            &mut top_ups,
        )
        .await;
        if plan.rotate_rounds > 0 && left <= plan.rotate_rounds && !funded {
            let r = rotation.get_or_insert_with(Rotation::default);
            if r.step(&publisher, &funder, &plan, &escrow).await {
                rotation = None;
            }
        }
    }
}

/// The top-up state: the last submission, and whether the operator was
/// told why no more will come.
#[derive(Debug, Default)]
struct TopUps {
    pending: Option<(Hash, u64)>,
    warned: bool,
}

/// Tops `escrow` (on chain: `e`) up when it runs low. False when it is low
/// and no top-up will come (so a rotation should), true otherwise.
async fn top_up(
    ledger: &dyn LedgerClient,
    escrow: &ActiveEscrow,
    e: &Escrow,
    left: u64,
    funder: &SigningKey,
    plan: &EscrowPlan,
    state: &mut TopUps,
) -> bool {
    if e.penalised {
        // Caches refuse a penalised escrow: only a rotation helps.
        return false;
    }
    if plan.top_up_rounds == 0 {
        return false;
    }
    let head = ledger.best().number;
    if left >= plan.top_up_rounds {
        return true;
    }
    if let Some((tx, at)) = state.pending {
        if in_flight(ledger, tx, at, head.saturating_add(1)).await {
            return true;
        }
        state.pending = None;
    }
    let funded = e
        .terms
        .rounds()
        .ok()
        .and_then(|r| e.terms.payment_required(r).ok());
    let extra = e.terms.payment_required(plan.top_up_rounds).ok();
    let (Some(funded), Some(extra)) = (funded, extra) else {
        return false;
    };
    if funded.saturating_add(extra) > plan.budget {
        if !state.warned {
            tracing::warn!(target: "cachecash::cdn", escrow = %escrow.id, rounds_left = left, budget = %plan.budget, "escrow budget spent: no more top-ups (a rotation opens a fresh escrow if rotate_rounds is set)");
            state.warned = true;
        }
        return false;
    }
    let last_start = e.terms.round_start(e.terms.last_round).unwrap_or(0);
    if head.saturating_add(2) >= last_start {
        if !state.warned {
            tracing::warn!(target: "cachecash::cdn", escrow = %escrow.id, "the escrow's last round has begun; it can no longer be topped up");
            state.warned = true;
        }
        return false;
    }
    let call = Call::EscrowTopUp {
        escrow: escrow.id,
        extra_rounds: plan.top_up_rounds,
        penalty: 0,
    };
    match send(ledger, funder, plan.fee, call).await {
        Ok(hash) => {
            tracing::info!(target: "cachecash::cdn", escrow = %escrow.id, rounds_left = left, extra_rounds = plan.top_up_rounds, payment = %extra, tx = %hash, "topping up the escrow");
            state.pending = Some((hash, head.saturating_add(1)));
        }
        Err(err) => {
            tracing::warn!(target: "cachecash::cdn", escrow = %escrow.id, "escrow top-up refused: {err}")
        }
    }
    true
}

/// A rotation in progress: the fresh escrow, once its open was submitted.
#[derive(Debug, Default)]
struct Rotation {
    next: Option<(EscrowId, cachecash_cdn::keys::EscrowSecret)>,
}

impl Rotation {
    /// Advances the rotation by one block; true once the fresh escrow is
    /// current (or the rotation must start over).
    async fn step(
        &mut self,
        publisher: &Publisher,
        funder: &Arc<SigningKey>,
        plan: &EscrowPlan,
        current: &Arc<ActiveEscrow>,
    ) -> bool {
        let state = &publisher.state;
        let Some((id, secret)) = self.next.clone() else {
            let (kv, ledger) = (state.kv.clone(), publisher.ledger.clone());
            let (funder, plan, me, cur) = (funder.clone(), plan.clone(), publisher.me, current.id);
            let prepared = tokio::task::spawn_blocking(move || {
                super::escrow::prepare_next(&kv, ledger.as_ref(), &funder, &plan, &me, &cur)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            match prepared {
                Ok((id, secret)) => {
                    tracing::info!(target: "cachecash::cdn", from = %current.id, to = %id, "rotating to a fresh escrow");
                    self.next = Some((id, secret));
                }
                Err(e) => {
                    tracing::warn!(target: "cachecash::cdn", "escrow rotation: cannot open a fresh escrow: {e}")
                }
            }
            return false;
        };
        let on_chain = match publisher.client.escrow(id, None).await {
            Ok(p) => p.value,
            Err(e) => {
                tracing::warn!(target: "cachecash::cdn", escrow = %id, "escrow rotation: {e}");
                return false;
            }
        };
        let Some(e) = on_chain else {
            // Not landed yet; give up once its first round has begun (the
            // chain would refuse it), and start over.
            let gone = super::escrow::next_open_expired(&state.kv, publisher.client.best().number);
            if gone {
                tracing::warn!(target: "cachecash::cdn", escrow = %id, "escrow rotation: the fresh escrow's open did not land in time; opening another");
                self.next = None;
                return true;
            }
            return false;
        };
        if e.terms.signer != publisher.me {
            tracing::error!(target: "cachecash::cdn", escrow = %id, "escrow rotation: the fresh escrow names another ticket signer; abandoned");
            self.next = None;
            return true;
        }
        let next = Arc::new(ActiveEscrow::new(
            id,
            secret.clone(),
            e.terms,
            state.config.instance,
        ));
        // Every hired cache is offered the fresh escrow before it is used;
        // one that refuses or is unreachable keeps serving the old one and
        // is offered again by the hiring loop.
        let mut accepted = 0usize;
        for (account, hired) in state.caches.hired() {
            match super::hire::offer(publisher, &next, hired.peer, account, None).await {
                Ok(()) => {
                    state.caches.accepted(&account, id);
                    accepted += 1;
                }
                Err(err) => {
                    tracing::info!(target: "cachecash::cdn", cache = %hired.peer, escrow = %id, "cache has not accepted the fresh escrow yet: {err}")
                }
            }
        }
        if accepted == 0 {
            return false;
        }
        if let Err(err) = promote_next(&state.kv, &id, &secret) {
            tracing::warn!(target: "cachecash::cdn", escrow = %id, "escrow rotation: {err}");
            return false;
        }
        state.set_escrow(next);
        tracing::info!(target: "cachecash::cdn", from = %current.id, to = %id, caches = accepted, "rotated to the fresh escrow; the old one is closed when it unlocks");
        self.next = None;
        true
    }
}

/// Closes every escrow of `funder` whose funds may come back: from its
/// unlock height (the payment deposit; the penalty stays through its grace
/// period) and again from its penalty release height. One close per escrow
/// at a time: `closing` remembers the last submission and its block.
pub async fn close_finished(
    ledger: &dyn LedgerClient,
    funder: &SigningKey,
    fee: Balance,
    closing: &mut HashMap<EscrowId, (Hash, u64)>,
) {
    let me = AccountId::from_signing_key(funder);
    // The next block is the first that could include a close.
    let next = ledger.best().number.saturating_add(1);
    let ids = match ledger.escrows_funded_by(me, 0, CLOSE_SCAN).await {
        Ok(ids) => ids,
        Err(err) => {
            tracing::warn!(target: "cachecash::cdn", "listing escrows to close: {err}");
            return;
        }
    };
    closing.retain(|id, _| ids.contains(id));
    for id in ids {
        let Ok(Some(e)) = ledger.escrow(id, None).await.map(|p| p.value) else {
            continue;
        };
        let (due, what) = due(&e);
        if due.is_none_or(|h| next < h) {
            continue;
        }
        if let Some((tx, at)) = closing.get(&id)
            && in_flight(ledger, *tx, *at, next).await
        {
            continue;
        }
        match send(ledger, funder, fee, Call::EscrowClose { escrow: id }).await {
            Ok(hash) => {
                tracing::info!(target: "cachecash::cdn", escrow = %id, tx = %hash, "closing the escrow: its {what} returns to the funder");
                closing.insert(id, (hash, next));
            }
            Err(err) => {
                tracing::warn!(target: "cachecash::cdn", escrow = %id, "escrow close refused: {err}")
            }
        }
    }
}

/// The height from which `e` can be closed (`None` if it overflows), and
/// what the close returns: the payment deposit at the unlock height, then
/// the penalty deposit at its release height.
fn due(e: &Escrow) -> (Option<u64>, &'static str) {
    if e.closed {
        (e.terms.penalty_release_height().ok(), "penalty deposit")
    } else {
        (e.terms.unlock_height().ok(), "payment deposit")
    }
}

/// Closes escrow `id` at the operator's request (`publisher_closeEscrow`):
/// it must be funded by `funder`, due, and have no close in flight. The
/// close transaction's hash, or why not.
pub async fn close_one(
    ledger: &dyn LedgerClient,
    funder: &SigningKey,
    fee: Balance,
    id: EscrowId,
    closing: &mut HashMap<EscrowId, (Hash, u64)>,
) -> Result<Hash, String> {
    let me = AccountId::from_signing_key(funder);
    let e = ledger
        .escrow(id, None)
        .await
        .map_err(|e| format!("reading escrow {id}: {e}"))?
        .value
        .ok_or_else(|| format!("escrow {id} is not open on the chain; check the id"))?;
    if e.funder != me {
        return Err(format!(
            "escrow {id} is funded by {}, not by this publisher ({me}); only its funder can close it",
            e.funder
        ));
    }
    let next = ledger.best().number.saturating_add(1);
    let (due, what) = due(&e);
    let due = due.ok_or_else(|| format!("escrow {id} has terms that never unlock"))?;
    if next < due {
        return Err(format!(
            "escrow {id} cannot be closed before block #{due}: its {what} stays locked until the claim windows of its rounds close (the next block is #{next})"
        ));
    }
    if let Some((tx, at)) = closing.get(&id)
        && in_flight(ledger, *tx, *at, next).await
    {
        return Err(format!(
            "a close of escrow {id} is already on its way (transaction {tx}); wait for it to land"
        ));
    }
    let hash = send(ledger, funder, fee, Call::EscrowClose { escrow: id }).await?;
    tracing::info!(target: "cachecash::cdn", escrow = %id, tx = %hash, "closing the escrow at the operator's request: its {what} returns to the funder");
    closing.insert(id, (hash, next));
    Ok(hash)
}

//! Executing transactions and blocks against state.
//!
//! Rules, in the order they are checked for each transaction:
//! 1. fee ≥ the chain minimum;
//! 2. nonce = the signer's current nonce;
//! 3. balance ≥ amount + fee (checked addition);
//! 4. the signer is debited amount + fee and its nonce incremented, then the
//!    destination is credited (re-read, so a self-transfer nets to −fee and
//!    never overflows); a credit that would overflow u128 is rejected.
//!
//! MicroCash calls (escrows, claims, duplicate proofs) follow the rules in
//! [`crate::microcash`]; they move coins between accounts and escrow
//! deposits, and a duplicate proof burns the part of the penalty not paid
//! to the reporter.
//!
//! After the transactions the miner is credited the block reward plus all
//! fees. So: total supply (accounts + escrow deposits) = genesis total +
//! reward × blocks − burnt.

use crate::consensus::ConsensusParams;
use crate::error::{BlockError, TxError};
use crate::microcash::{self as mc, Escrow, MicrocashError};
use crate::primitives::{AccountId, Balance};
use crate::state::{BlockEnv, Overlay, StateChanges, StateReader};
use crate::transaction::{Call, SignedTransaction, TicketClaimItem, Transaction};

/// Checks a transaction against state without applying it, requiring its
/// nonce to be exactly the account's next.
pub fn check_transaction<S: StateReader + ?Sized>(
    state: &S,
    tx: &Transaction,
    params: &ConsensusParams,
    env: BlockEnv<'_>,
) -> Result<(), TxError> {
    let mut overlay = Overlay::with_env(state, env);
    apply_transaction(&mut overlay, tx, params).map(|_| ())
}

/// Debits `amount` from `account` (already nonce-checked and fee-debited).
fn debit<S: StateReader + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    account: &AccountId,
    amount: Balance,
) -> Result<(), TxError> {
    let mut a = overlay.get(account)?;
    a.balance = a
        .balance
        .checked_sub(amount)
        .ok_or(TxError::InsufficientBalance {
            signer: *account,
            balance: a.balance,
            needed: amount,
        })?;
    overlay.set(*account, a);
    Ok(())
}

/// Credits `amount` to `account`.
fn credit<S: StateReader + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    account: &AccountId,
    amount: Balance,
) -> Result<(), TxError> {
    let mut a = overlay.get(account)?;
    a.balance = a.balance.checked_add(amount).ok_or(TxError::Overflow(
        "the credited balance would exceed the largest balance",
    ))?;
    overlay.set(*account, a);
    Ok(())
}

fn env_of<'a, S: StateReader + ?Sized>(overlay: &Overlay<'a, S>) -> Result<BlockEnv<'a>, TxError> {
    overlay.env().ok_or(TxError::NoBlockEnv)
}

fn existing_escrow<S: StateReader + ?Sized>(
    overlay: &Overlay<'_, S>,
    id: &mc::EscrowId,
) -> Result<Escrow, TxError> {
    overlay
        .get_escrow(id)?
        .ok_or(TxError::Microcash(MicrocashError::UnknownEscrow(*id)))
}

fn apply_microcash<S: StateReader + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    tx: &Transaction,
    params: &ConsensusParams,
) -> Result<(), TxError> {
    let height = env_of(overlay)?.number;
    match &tx.call {
        Call::Transfer { .. } => Ok(()),
        Call::EscrowOpen {
            terms,
            payment,
            penalty,
        } => {
            terms.validate()?;
            let required = terms.payment_required(terms.rounds()?)?;
            if *payment < required {
                return Err(MicrocashError::PaymentTooSmall {
                    deposit: *payment,
                    required,
                }
                .into());
            }
            let starts = terms.round_start(terms.first_round)?;
            if starts < height {
                return Err(MicrocashError::RoundInPast {
                    first_round: terms.first_round,
                    starts,
                    height,
                }
                .into());
            }
            let genesis = env_of(overlay)?
                .history
                .canonical_hash(0)?
                .ok_or(MicrocashError::NoGenesis)?;
            let id = mc::escrow_id(&genesis, &tx.signer, tx.nonce);
            if overlay.get_escrow(&id)?.is_some() {
                return Err(MicrocashError::EscrowExists(id).into());
            }
            let total = payment
                .checked_add(*penalty)
                .ok_or(TxError::Overflow("payment + penalty deposits"))?;
            debit(overlay, &tx.signer, total)?;
            overlay.set_escrow(
                id,
                Some(Escrow {
                    funder: tx.signer,
                    terms: terms.clone(),
                    payment: *payment,
                    penalty: *penalty,
                    penalised: false,
                    claimed: Vec::new(),
                    closed: false,
                }),
            );
            overlay.index_escrow(tx.signer, id)?;
            Ok(())
        }
        Call::EscrowTopUp {
            escrow,
            extra_rounds,
            penalty,
        } => {
            let mut e = existing_escrow(overlay, escrow)?;
            if e.funder != tx.signer {
                return Err(MicrocashError::NotFunder {
                    funder: e.funder,
                    action: "top up the escrow",
                }
                .into());
            }
            if *extra_rounds == 0 && *penalty == 0 {
                return Err(MicrocashError::EmptyTopUp.into());
            }
            let mut added: Balance = *penalty;
            if *extra_rounds > 0 {
                if height >= e.terms.round_start(e.terms.last_round)? {
                    return Err(MicrocashError::TopUpTooLate(*escrow).into());
                }
                e.terms.last_round = e
                    .terms
                    .last_round
                    .checked_add(*extra_rounds)
                    .ok_or(MicrocashError::Overflow("last round"))?;
                e.terms.validate()?;
                let pay = e.terms.payment_required(*extra_rounds)?;
                e.payment = e
                    .payment
                    .checked_add(pay)
                    .ok_or(TxError::Overflow("payment deposit"))?;
                added = added
                    .checked_add(pay)
                    .ok_or(TxError::Overflow("top-up amount"))?;
            } else if height >= e.terms.unlock_height()? {
                return Err(MicrocashError::Unlocked(*escrow).into());
            }
            if *penalty > 0 && e.penalised {
                return Err(MicrocashError::PenaltyAfterPenalised(*escrow).into());
            }
            e.penalty = e
                .penalty
                .checked_add(*penalty)
                .ok_or(TxError::Overflow("penalty deposit"))?;
            debit(overlay, &tx.signer, added)?;
            e.prune(height);
            overlay.set_escrow(*escrow, Some(e));
            Ok(())
        }
        Call::EscrowClose { escrow } => {
            let mut e = existing_escrow(overlay, escrow)?;
            if e.funder != tx.signer {
                return Err(MicrocashError::NotFunder {
                    funder: e.funder,
                    action: "close the escrow",
                }
                .into());
            }
            let unlock = e.terms.unlock_height()?;
            if height < unlock {
                return Err(MicrocashError::Locked {
                    escrow: *escrow,
                    unlock,
                    height,
                }
                .into());
            }
            // The payment deposit returns at unlock; the penalty deposit
            // only after its grace period, so a late duplicate proof still
            // finds it. The record stays until then (claims are over: every
            // window has closed).
            let release = e.terms.penalty_release_height()?;
            let keep_penalty = e.penalty > 0 && height < release;
            if keep_penalty && e.closed {
                return Err(MicrocashError::PenaltyHeld {
                    escrow: *escrow,
                    release,
                    height,
                }
                .into());
            }
            let refund = if keep_penalty {
                e.payment
            } else {
                e.payment
                    .checked_add(e.penalty)
                    .ok_or(TxError::Overflow("escrow refund"))?
            };
            credit(overlay, &e.funder, refund)?;
            if keep_penalty {
                e.payment = 0;
                e.closed = true;
                e.prune(height);
                overlay.set_escrow(*escrow, Some(e));
            } else {
                overlay.set_escrow(*escrow, None);
                overlay.unindex_escrow(e.funder, *escrow)?;
            }
            Ok(())
        }
        Call::TicketClaim { claims } => {
            if claims.is_empty() || claims.len() > mc::MAX_CLAIMS_PER_TRANSACTION {
                return Err(MicrocashError::ClaimCount(claims.len()).into());
            }
            let mut seen = std::collections::BTreeSet::new();
            for item in claims {
                let t = &item.ticket.ticket;
                if !seen.insert((t.escrow, t.round, t.number)) {
                    return Err(MicrocashError::DuplicateInClaim {
                        round: t.round,
                        number: t.number,
                    }
                    .into());
                }
            }
            // Every ticket signature in one batch (ZIP-215: the batch passes
            // exactly when each would); if it fails, or cannot be formed,
            // each claim checks its own and the first offender is named.
            let checked = claims_batch_verified(overlay, claims)?;
            for item in claims {
                apply_claim(overlay, &tx.signer, item, checked)?;
            }
            Ok(())
        }
        Call::DuplicateTicketProof { first, second } => {
            let (a, b) = (&first.ticket, &second.ticket);
            if a.escrow != b.escrow || a.round != b.round || a.number != b.number {
                return Err(MicrocashError::NotDuplicate(
                    "the tickets differ in escrow, round or number",
                )
                .into());
            }
            if a == b {
                return Err(MicrocashError::NotDuplicate("the two tickets are identical").into());
            }
            // The reward goes to the sender, so only a cache the tickets
            // name may send it: a proof copied from the pool pays no one
            // but the victim.
            if tx.signer != a.cache && tx.signer != b.cache {
                return Err(MicrocashError::ReporterNotNamed {
                    reporter: tx.signer,
                }
                .into());
            }
            let mut e = existing_escrow(overlay, &a.escrow)?;
            e.terms.check_slot(a.round, a.number)?;
            if e.penalised {
                return Err(MicrocashError::AlreadyPenalised(a.escrow).into());
            }
            first
                .verify(&e.terms.signer)
                .map_err(MicrocashError::from)?;
            second
                .verify(&e.terms.signer)
                .map_err(MicrocashError::from)?;
            let share = e
                .penalty
                .checked_mul(Balance::from(params.duplicate_reporter_share_percent))
                .and_then(|x| x.checked_div(100))
                .ok_or(TxError::Overflow("reporter share"))?;
            let burnt = e
                .penalty
                .checked_sub(share)
                .ok_or(TxError::Overflow("burnt penalty"))?;
            credit(overlay, &tx.signer, share)?;
            overlay.burn(burnt)?;
            e.penalty = 0;
            e.penalised = true;
            e.prune(height);
            overlay.set_escrow(a.escrow, Some(e));
            Ok(())
        }
    }
}

/// Applies one claimed ticket. Checks run cheapest first, so a forged claim
/// is refused before any hashing of the draw or signature work: escrow,
/// range, claimant, preimage, draw and window, winner, signature, replay.
fn claims_batch_verified<S: StateReader + ?Sized>(
    overlay: &Overlay<'_, S>,
    claims: &[TicketClaimItem],
) -> Result<bool, TxError> {
    let mut items = Vec::with_capacity(claims.len());
    for item in claims {
        let Some(e) = overlay.get_escrow(&item.ticket.ticket.escrow)? else {
            return Ok(false);
        };
        if e.terms.signer.verifying_key().is_err() {
            return Ok(false);
        }
        let Ok((payload, sig)) = item.ticket.signed_payload() else {
            return Ok(false);
        };
        items.push((e.terms.signer, payload, sig));
    }
    Ok(crate::signature::verify_batch(
        items.iter().map(|(a, p, s)| (a, p.as_slice(), s)),
    ))
}

fn apply_claim<S: StateReader + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    claimant: &AccountId,
    item: &TicketClaimItem,
    signature_checked: bool,
) -> Result<(), TxError> {
    let env = env_of(overlay)?;
    let height = env.number;
    let t = &item.ticket.ticket;
    let mut e = existing_escrow(overlay, &t.escrow)?;
    e.terms.check_slot(t.round, t.number)?;
    if t.cache != *claimant {
        return Err(MicrocashError::WrongClaimant {
            cache: t.cache,
            claimant: *claimant,
        }
        .into());
    }
    if mc::secret_commitment(&item.preimage) != t.secret_hash {
        return Err(MicrocashError::WrongPreimage.into());
    }
    let draw = e.terms.draw_height(t.round)?;
    if draw >= height {
        return Err(MicrocashError::NotDrawn {
            round: t.round,
            draw,
            opens: draw.saturating_add(1),
            height,
        }
        .into());
    }
    let closed = e.terms.claim_deadline(t.round)?;
    if height > closed {
        return Err(MicrocashError::WindowClosed {
            round: t.round,
            closed,
            height,
        }
        .into());
    }
    let seed = env
        .history
        .canonical_hash(draw)?
        .ok_or(MicrocashError::MissingDrawBlock(draw))?;
    let (n, w) = (e.terms.tickets_per_round, e.terms.winners_per_round);
    let won = overlay
        .winners_with(t.escrow, t.round, || {
            mc::winners(&seed, &t.escrow, t.round, n, w)
        })
        .binary_search(&t.number)
        .is_ok();
    if !won {
        return Err(MicrocashError::NotAWinner {
            round: t.round,
            number: t.number,
        }
        .into());
    }
    if !signature_checked {
        item.ticket
            .verify(&e.terms.signer)
            .map_err(MicrocashError::from)?;
    }
    if e.is_claimed(t.round, t.number) {
        return Err(MicrocashError::AlreadyClaimed {
            escrow: t.escrow,
            round: t.round,
            number: t.number,
        }
        .into());
    }
    e.payment = e
        .payment
        .checked_sub(e.terms.face_value)
        .ok_or(TxError::Overflow("the payment deposit is exhausted"))?;
    e.record_claim(t.round, t.number);
    e.prune(height);
    let value = e.terms.face_value;
    overlay.set_escrow(t.escrow, Some(e));
    credit(overlay, claimant, value)
}

/// Applies one (signature-checked) transaction, returning its fee.
pub fn apply_transaction<S: StateReader + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    tx: &Transaction,
    params: &ConsensusParams,
) -> Result<Balance, TxError> {
    let minimum = params.minimum_fee_for(tx.signed_size());
    if tx.fee < minimum {
        return Err(TxError::FeeTooLow {
            fee: tx.fee,
            minimum,
        });
    }
    let mut sender = overlay.get(&tx.signer)?;
    if tx.nonce < sender.nonce {
        return Err(TxError::StaleNonce {
            signer: tx.signer,
            expected: sender.nonce,
            got: tx.nonce,
        });
    }
    if tx.nonce > sender.nonce {
        return Err(TxError::FutureNonce {
            signer: tx.signer,
            expected: sender.nonce,
            got: tx.nonce,
        });
    }
    let next_nonce = sender
        .nonce
        .checked_add(1)
        .ok_or(TxError::Overflow("the signer's nonce is exhausted"))?;
    match &tx.call {
        Call::Transfer { dest, amount } => {
            let needed = amount.checked_add(tx.fee).ok_or(TxError::Overflow(
                "amount + fee exceeds the largest balance",
            ))?;
            let remaining =
                sender
                    .balance
                    .checked_sub(needed)
                    .ok_or(TxError::InsufficientBalance {
                        signer: tx.signer,
                        balance: sender.balance,
                        needed,
                    })?;
            sender.balance = remaining;
            sender.nonce = next_nonce;
            overlay.set(tx.signer, sender);
            let mut receiver = overlay.get(dest)?;
            receiver.balance = receiver
                .balance
                .checked_add(*amount)
                .ok_or(TxError::Overflow(
                    "the destination's balance would exceed the largest balance",
                ))?;
            overlay.set(*dest, receiver);
        }
        Call::TicketClaim { .. } | Call::DuplicateTicketProof { .. } => {
            // A claim (or a duplicate proof) pays its fee out of what it
            // earns, so a cache with an empty account can still redeem its
            // first winners or report a cheating publisher. All on the
            // overlay: a failing call is rolled back by the caller.
            sender.nonce = next_nonce;
            overlay.set(tx.signer, sender);
            apply_microcash(overlay, tx, params)?;
            let mut paid = overlay.get(&tx.signer)?;
            paid.balance =
                paid.balance
                    .checked_sub(tx.fee)
                    .ok_or(TxError::InsufficientBalance {
                        signer: tx.signer,
                        balance: paid.balance,
                        needed: tx.fee,
                    })?;
            overlay.set(tx.signer, paid);
        }
        _ => {
            // The fee first, then the call's own movements, all on the
            // overlay: a failing call is rolled back by the caller.
            sender.balance =
                sender
                    .balance
                    .checked_sub(tx.fee)
                    .ok_or(TxError::InsufficientBalance {
                        signer: tx.signer,
                        balance: sender.balance,
                        needed: tx.fee,
                    })?;
            sender.nonce = next_nonce;
            overlay.set(tx.signer, sender);
            apply_microcash(overlay, tx, params)?;
        }
    }
    Ok(tx.fee)
}

/// Result of executing a block body.
#[derive(Debug, Clone)]
pub struct Execution {
    /// Every change, the miner's account always among them.
    pub changes: StateChanges,
    /// Sum of fees.
    pub fees: Balance,
}

/// Executes `txs` in order and pays the miner. Any invalid transaction
/// invalidates the block.
pub fn execute_block<S: StateReader + ?Sized>(
    state: &S,
    miner: &AccountId,
    txs: &[SignedTransaction],
    params: &ConsensusParams,
    env: BlockEnv<'_>,
) -> Result<Execution, BlockError> {
    let mut overlay = Overlay::with_env(state, env);
    let mut fees: Balance = 0;
    for (index, t) in txs.iter().enumerate() {
        let fee = apply_transaction(&mut overlay, &t.tx, params).map_err(|source| {
            BlockError::InvalidTransaction {
                index,
                hash: t.hash(),
                source,
            }
        })?;
        fees = fees.checked_add(fee).ok_or(BlockError::RewardOverflow)?;
    }
    credit_miner(&mut overlay, miner, params.block_reward, fees)?;
    Ok(Execution {
        changes: overlay.into_changes(),
        fees,
    })
}

/// Credits reward + fees to the miner. The miner's account is always
/// written, even when the credit is zero, so every block changes state.
pub fn credit_miner<S: StateReader + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    miner: &AccountId,
    reward: Balance,
    fees: Balance,
) -> Result<(), BlockError> {
    let credit = reward.checked_add(fees).ok_or(BlockError::RewardOverflow)?;
    let mut m = overlay.get(miner)?;
    m.balance = m
        .balance
        .checked_add(credit)
        .ok_or(BlockError::RewardOverflow)?;
    overlay.set(*miner, m);
    Ok(())
}

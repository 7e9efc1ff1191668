//! The publisher's escrow: opening it on chain (or adopting one), its
//! secret, and the durable counters that keep bundle sequences and ticket
//! numbers unique.
//!
//! # Never reuse a number
//!
//! Sequences (per escrow) and ticket numbers (per escrow and round) are
//! handed out from ranges reserved durably: the high-water mark is synced
//! to disk *before* any number of a new range is used. A crash loses at
//! most the unused rest of a range, never reissues a number. Since every
//! session key derives from (cache master key, client, sequence) and every
//! IV from (session key, chunk index), a unique sequence makes every
//! (key, IV) pair unique, across restarts too.
//!
//! Two publisher front-ends on one escrow must not share a database; give
//! each its own `instance` number: sequences then carry it in their top
//! byte and ticket numbers are split between instances by residue.

use super::super::kv::{Kv, KvError, key};
use super::super::ledger::Ledger;
use cachecash_cdn::keys::EscrowSecret;
use cachecash_runtime::microcash::{EscrowId, EscrowTerms, escrow_id};
use cachecash_runtime::{AccountId, Balance, Call, Transaction};
use ed25519_dalek::SigningKey;
use parity_scale_codec::{Decode, Encode};
use std::time::Duration;

/// Numbers reserved per durable write.
const RESERVE: u64 = 256;

/// What the operator sets for new escrows.
#[derive(Debug, Clone)]
pub struct EscrowPlan {
    /// Face value per winning ticket.
    pub face_value: Balance,
    /// Tickets per round.
    pub tickets_per_round: u32,
    /// Winners per round.
    pub winners_per_round: u32,
    /// Round length in blocks.
    pub round_length: u32,
    /// Rounds to fund.
    pub rounds: u64,
    /// Draw delay in blocks.
    pub draw_delay: u32,
    /// Claim window in blocks.
    pub claim_window: u32,
    /// Penalty deposit.
    pub penalty: Balance,
    /// Transaction fee for the open and the top-ups.
    pub fee: Balance,
    /// Rounds added by each top-up (0: never top up).
    pub top_up_rounds: u64,
    /// Most payment deposit (w·β per round funded, the open included) the
    /// publisher commits to this escrow; top-ups stop at it.
    pub budget: Balance,
    /// Rotate to a fresh escrow (the same terms from the next rounds) when
    /// no more than this many rounds are left to issue in and this one will
    /// not be topped up (its budget is spent, its last round has begun, or it
    /// was penalised). 0: never rotate.
    pub rotate_rounds: u64,
}

/// How the publisher gets its escrow.
#[derive(Debug, Clone)]
pub enum EscrowSource {
    /// Open one from a funder key with the plan's terms (or reuse the one
    /// it opened before, while it is active).
    Open {
        /// The funder.
        funder: std::sync::Arc<SigningKey>,
        /// Terms.
        plan: EscrowPlan,
    },
    /// Use an escrow opened elsewhere, whose ticket signer is this node's
    /// key. Its secret is generated on first use and kept.
    Existing(EscrowId),
}

#[derive(Clone, Debug, Encode, Decode)]
struct Stored {
    id: EscrowId,
    secret: [u8; 32],
}

/// An escrow the publisher issues from.
#[derive(Debug)]
pub struct ActiveEscrow {
    /// Its id.
    pub id: EscrowId,
    /// Its secret (derives every cache key).
    pub secret: EscrowSecret,
    /// Its terms as last read from the chain (top-ups extend them).
    terms: parking_lot::RwLock<EscrowTerms>,
    /// Its durable sequence and ticket-number counters.
    pub numbers: Counters,
}

impl ActiveEscrow {
    /// An escrow with `terms`, issued from by front-end `instance` of
    /// `instances`.
    pub fn new(
        id: EscrowId,
        secret: EscrowSecret,
        terms: EscrowTerms,
        (instance, instances): (u8, u8),
    ) -> ActiveEscrow {
        ActiveEscrow {
            id,
            secret,
            terms: parking_lot::RwLock::new(terms),
            numbers: Counters::new(id, instance, instances),
        }
    }

    /// Its current terms.
    pub fn terms(&self) -> EscrowTerms {
        self.terms.read().clone()
    }

    /// Takes the chain's newer terms (after a top-up).
    pub fn set_terms(&self, terms: EscrowTerms) {
        *self.terms.write() = terms;
    }
}

/// How many rounds of `terms` still have their draw block ahead of `head`.
pub fn rounds_left(terms: &EscrowTerms, head: u64) -> u64 {
    (terms.first_round..=terms.last_round)
        .rev()
        .take_while(|r| terms.draw_height(*r).is_ok_and(|h| h > head))
        .count() as u64
}

/// Opens or adopts the escrow, waiting (up to `wait`) for it on chain.
pub async fn establish(
    kv: &Kv,
    ledger: &dyn Ledger,
    source: &EscrowSource,
    signer: &AccountId,
    wait: Duration,
    instance: (u8, u8),
) -> Result<ActiveEscrow, String> {
    let current: Option<Stored> = kv.get(CURRENT).map_err(|e| e.to_string())?;
    let stored = match (source, current) {
        (EscrowSource::Existing(id), Some(s)) if s.id == *id => s,
        (EscrowSource::Existing(id), _) => {
            let secret = EscrowSecret::generate().map_err(|e| e.to_string())?;
            let s = Stored {
                id: *id,
                secret: *secret.as_bytes(),
            };
            kv.put(CURRENT, &s, true).map_err(|e| e.to_string())?;
            s
        }
        (EscrowSource::Open { .. }, Some(s)) if usable(kv, ledger, &s.id)? => s,
        (EscrowSource::Open { funder, plan }, _) => {
            open(kv, ledger, funder, plan, signer, CURRENT)?
        }
    };
    let deadline = tokio::time::Instant::now() + wait;
    let escrow = loop {
        if let Some(e) = ledger.escrow(&stored.id)? {
            break e;
        }
        if matches!(source, EscrowSource::Open { .. }) && !usable(kv, ledger, &stored.id)? {
            return Err(format!(
                "the open of escrow {} did not land before its first round began; opening a new one",
                stored.id
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "escrow {} is not on chain after {wait:?}; is the node synced and mining, and was the open transaction accepted?",
                stored.id
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if escrow.terms.signer != *signer {
        return Err(format!(
            "escrow {} names ticket signer {}, but this node's key is {signer}; open the escrow with --signer set to this node's account",
            stored.id, escrow.terms.signer
        ));
    }
    Ok(ActiveEscrow::new(
        stored.id,
        EscrowSecret::from_bytes(stored.secret),
        escrow.terms,
        instance,
    ))
}

fn usable(kv: &Kv, ledger: &dyn Ledger, id: &EscrowId) -> Result<bool, String> {
    usable_in(kv, ledger, id, CURRENT)
}

/// Whether `id`, stored under `slot`, can still be issued from: on chain,
/// neither penalised nor near its last draw; or not on chain yet while its
/// open may still land.
fn usable_in(kv: &Kv, ledger: &dyn Ledger, id: &EscrowId, slot: &[u8]) -> Result<bool, String> {
    // Not yet on chain counts as usable while the open may still land: until
    // its first round begins (after that the chain refuses it).
    Ok(match ledger.escrow(id)? {
        None => {
            let starts: Option<u64> = kv.get(starts_key(slot)).map_err(|e| e.to_string())?;
            starts.is_none_or(|h| ledger.head_number() < h)
        }
        Some(e) => {
            !e.penalised
                && e.terms
                    .draw_height(e.terms.last_round)
                    .is_ok_and(|h| h > ledger.head_number().saturating_add(2))
        }
    })
}

/// The key of the escrow issued from.
const CURRENT: &[u8] = b"escrow/current";
/// The key of the escrow a rotation is opening.
const NEXT: &[u8] = b"escrow/next";

/// Where the height at which `slot`'s escrow's first round starts is kept
/// while its open may still land.
fn starts_key(slot: &[u8]) -> &'static [u8] {
    if slot == NEXT {
        b"escrow/next-opening-start"
    } else {
        b"escrow/opening-start"
    }
}

/// Opens an escrow on the plan's terms: its secret is stored under `slot`
/// (with the height its first round starts) before the open is submitted.
fn open(
    kv: &Kv,
    ledger: &dyn Ledger,
    funder: &SigningKey,
    plan: &EscrowPlan,
    signer: &AccountId,
    slot: &[u8],
) -> Result<Stored, String> {
    let funder_account = AccountId::from_signing_key(funder);
    let genesis = ledger.genesis();
    let nonce = ledger.next_nonce(&funder_account)?;
    let round_length = u64::from(plan.round_length.max(1));
    // The first round starts a few blocks ahead, so the open lands before it.
    let first_round = ledger.head_number().saturating_add(8) / round_length + 1;
    let terms = EscrowTerms {
        signer: *signer,
        face_value: plan.face_value,
        tickets_per_round: plan.tickets_per_round,
        winners_per_round: plan.winners_per_round,
        round_length: plan.round_length,
        first_round,
        last_round: first_round.saturating_add(plan.rounds.saturating_sub(1)),
        draw_delay: plan.draw_delay,
        claim_window: plan.claim_window,
    };
    terms.validate().map_err(|e| format!("escrow terms: {e}"))?;
    let payment = terms
        .payment_required(terms.rounds().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let id = escrow_id(&genesis, &funder_account, nonce);
    let secret = EscrowSecret::generate().map_err(|e| e.to_string())?;
    let stored = Stored {
        id,
        secret: *secret.as_bytes(),
    };
    // The secret is on disk before the escrow exists.
    let starts = terms.round_start(first_round).map_err(|e| e.to_string())?;
    kv.put_all(
        &[(slot, stored.encode()), (starts_key(slot), starts.encode())],
        true,
    )
    .map_err(|e| e.to_string())?;
    let tx = Transaction {
        signer: funder_account,
        nonce,
        fee: plan.fee,
        call: Call::EscrowOpen {
            terms,
            payment,
            penalty: plan.penalty,
        },
    }
    .sign(funder, &genesis);
    ledger
        .submit(tx)
        .map_err(|e| format!("the escrow open was refused: {e}"))?;
    tracing::info!(target: "cachecash::cdn", escrow = %id, funder = %funder_account, "opening escrow");
    Ok(stored)
}

/// The escrow a rotation moves to: the one stored under the "next" slot
/// while it may still be used (a restart mid-rotation finds it), or a
/// freshly opened one. Blocking: call on the blocking pool.
pub fn prepare_next(
    kv: &Kv,
    ledger: &dyn Ledger,
    funder: &SigningKey,
    plan: &EscrowPlan,
    signer: &AccountId,
    current: &EscrowId,
) -> Result<(EscrowId, EscrowSecret), String> {
    let next: Option<Stored> = kv.get(NEXT).map_err(|e| e.to_string())?;
    let stored = match next {
        Some(s) if s.id != *current && usable_in(kv, ledger, &s.id, NEXT)? => s,
        _ => open(kv, ledger, funder, plan, signer, NEXT)?,
    };
    Ok((stored.id, EscrowSecret::from_bytes(stored.secret)))
}

/// Whether the rotation's escrow can no longer land: its first round began
/// at or before `head` (the chain refuses a late open).
pub fn next_open_expired(kv: &Kv, head: u64) -> bool {
    kv.get::<u64>(starts_key(NEXT))
        .ok()
        .flatten()
        .is_some_and(|h| head >= h)
}

/// Makes the rotation's escrow the one a restart issues from (atomically:
/// "next" becomes "current").
pub fn promote_next(kv: &Kv, id: &EscrowId, secret: &EscrowSecret) -> Result<(), String> {
    let stored = Stored {
        id: *id,
        secret: *secret.as_bytes(),
    };
    kv.write(
        &[(CURRENT, stored.encode())],
        &[NEXT, starts_key(NEXT)],
        true,
    )
    .map_err(|e| e.to_string())
}

/// Durable counters: bundle sequences and ticket numbers.
#[derive(Debug)]
pub struct Counters {
    escrow: EscrowId,
    instance: u8,
    instances: u8,
    sequence: parking_lot::Mutex<(u64, u64)>,
    numbers: parking_lot::Mutex<std::collections::HashMap<u64, (u64, u64)>>,
}

/// Why no ticket numbers are left.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// Every round's numbers are spent or drawn.
    #[error(
        "escrow {0} has no round left to issue tickets for (its rounds are drawn or their numbers spent); top it up or open a new escrow"
    )]
    Exhausted(EscrowId),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] KvError),
}

impl Counters {
    /// Counters of `escrow` for front-end `instance` of `instances`.
    pub fn new(escrow: EscrowId, instance: u8, instances: u8) -> Counters {
        Counters {
            escrow,
            instance,
            instances: instances.max(1),
            sequence: parking_lot::Mutex::new((0, 0)),
            numbers: Default::default(),
        }
    }

    /// A fresh bundle sequence, never handed out before.
    pub fn next_sequence(&self, kv: &Kv) -> Result<u64, KvError> {
        let k = key(&[b"seq/", &self.escrow.0]);
        let mut s = self.sequence.lock();
        if s.0 >= s.1 {
            let start: u64 = kv.get(&k)?.unwrap_or(0);
            let end = start.saturating_add(RESERVE);
            kv.put(&k, &end, true)?;
            *s = (start, end);
        }
        let n = s.0;
        s.0 += 1;
        Ok((u64::from(self.instance) << 56) | n)
    }

    /// How many rounds of `terms` can still issue tickets at `head`: their
    /// draw block is ahead and this instance has numbers of them left.
    /// Counts up to `up_to` (the caller compares against a threshold).
    pub fn issuable_rounds(
        &self,
        kv: &Kv,
        terms: &EscrowTerms,
        head: u64,
        up_to: u64,
    ) -> Result<u64, KvError> {
        let per_instance = u64::from(terms.tickets_per_round) / u64::from(self.instances);
        let reserved = self.numbers.lock().clone();
        let mut n = 0;
        for round in terms.first_round..=terms.last_round {
            if n >= up_to {
                break;
            }
            if !terms.draw_height(round).is_ok_and(|h| h > head) {
                continue;
            }
            // In memory: (next, end of the reserved range); on disk: the
            // high-water mark of reservations.
            let used = match reserved.get(&round) {
                Some((next, end)) if next < end => *next,
                _ => kv
                    .get::<u64>(&key(&[b"tn/", &self.escrow.0, &round.to_be_bytes()]))?
                    .unwrap_or(0),
            };
            if used < per_instance {
                n += 1;
            }
        }
        Ok(n)
    }

    /// `count` ticket numbers for the earliest round whose draw is more
    /// than `margin` blocks ahead, moving to later rounds when one is spent.
    pub fn take_numbers(
        &self,
        kv: &Kv,
        terms: &EscrowTerms,
        head: u64,
        margin: u64,
        count: usize,
    ) -> Result<(u64, Vec<u32>), IssueError> {
        let l = u64::from(terms.round_length.max(1));
        let mut round = head.saturating_add(margin) / l;
        round = round.max(terms.first_round);
        let per_instance = u64::from(terms.tickets_per_round) / u64::from(self.instances);
        let mut numbers = self.numbers.lock();
        while round <= terms.last_round {
            let draw = terms.draw_height(round).unwrap_or(0);
            if draw > head.saturating_add(margin) {
                let k = key(&[b"tn/", &self.escrow.0, &round.to_be_bytes()]);
                let slot = numbers.entry(round).or_insert((0, 0));
                let mut out = Vec::with_capacity(count);
                while out.len() < count {
                    if slot.0 >= slot.1 {
                        let start: u64 = kv.get(&k)?.unwrap_or(0);
                        if start >= per_instance {
                            break;
                        }
                        let end = start.saturating_add(RESERVE).min(per_instance);
                        kv.put(&k, &end, true)?;
                        *slot = (start, end);
                    }
                    // Instance i owns numbers ≡ i (mod instances).
                    let n = slot.0 * u64::from(self.instances) + u64::from(self.instance);
                    slot.0 += 1;
                    out.push(u32::try_from(n).unwrap_or(u32::MAX));
                }
                if out.len() == count {
                    return Ok((round, out));
                }
                tracing::info!(target: "cachecash::cdn", escrow = %self.escrow, round, "round's ticket numbers are spent; moving to the next round");
            }
            round += 1;
        }
        Err(IssueError::Exhausted(self.escrow))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(n: u32) -> EscrowTerms {
        EscrowTerms {
            signer: AccountId([1; 32]),
            face_value: 10,
            tickets_per_round: n,
            winners_per_round: 1,
            round_length: 10,
            first_round: 1,
            last_round: 3,
            draw_delay: 2,
            claim_window: 5,
        }
    }

    #[test]
    fn sequences_and_numbers_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen_seq = std::collections::HashSet::new();
        let mut seen_num = std::collections::HashSet::new();
        for _restart in 0..3 {
            let kv = Kv::open(dir.path()).unwrap();
            let c = Counters::new(cachecash_runtime::Hash([0; 32]), 0, 1);
            for _ in 0..10 {
                assert!(seen_seq.insert(c.next_sequence(&kv).unwrap()));
            }
            let (round, nums) = c.take_numbers(&kv, &terms(1000), 0, 2, 7).unwrap();
            for n in nums {
                assert!(n < 1000);
                assert!(seen_num.insert((round, n)), "number {n} reissued");
            }
        }
    }

    #[test]
    fn a_spent_round_moves_to_the_next_and_an_exhausted_escrow_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::open(dir.path()).unwrap();
        let c = Counters::new(cachecash_runtime::Hash([0; 32]), 0, 1);
        let t = terms(4);
        assert_eq!(
            c.take_numbers(&kv, &t, 0, 2, 4).unwrap(),
            (1, vec![0, 1, 2, 3])
        );
        assert_eq!(
            c.take_numbers(&kv, &t, 0, 2, 3).unwrap(),
            (2, vec![0, 1, 2])
        );
        // Round 2 has one number left; a bundle of 2 goes to round 3.
        assert_eq!(c.take_numbers(&kv, &t, 0, 2, 2).unwrap().0, 3);
        // Head past round 3's draw (3·10+9+2 = 41): nothing left.
        let err = c.take_numbers(&kv, &t, 41, 2, 1).unwrap_err();
        // Rounds 1 and 2 are spent (round 2's last number went unused when
        // the bundle moved on), round 3 has numbers left in memory: one
        // round can still issue at head 0, none past the last draw. After
        // a restart round 3's reserved range counts as used (a crash never
        // reissues a reserved number), so none is left.
        assert_eq!(c.issuable_rounds(&kv, &t, 0, 10).unwrap(), 1);
        assert_eq!(c.issuable_rounds(&kv, &t, 41, 10).unwrap(), 0);
        let fresh = Counters::new(cachecash_runtime::Hash([0; 32]), 0, 1);
        assert_eq!(fresh.issuable_rounds(&kv, &t, 0, 10).unwrap(), 0);
        assert!(err.to_string().contains("top it up"), "{err}");
    }

    #[test]
    fn instances_split_numbers_and_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let a = Counters::new(cachecash_runtime::Hash([0; 32]), 0, 2);
        let b = Counters::new(cachecash_runtime::Hash([0; 32]), 1, 2);
        let kva = Kv::open(&dir.path().join("a")).unwrap();
        let kvb = Kv::open(&dir.path().join("b")).unwrap();
        let (_, na) = a.take_numbers(&kva, &terms(100), 0, 2, 10).unwrap();
        let (_, nb) = b.take_numbers(&kvb, &terms(100), 0, 2, 10).unwrap();
        assert!(na.iter().all(|n| n % 2 == 0) && nb.iter().all(|n| n % 2 == 1));
        assert_ne!(
            a.next_sequence(&kva).unwrap(),
            b.next_sequence(&kvb).unwrap()
        );
    }
}

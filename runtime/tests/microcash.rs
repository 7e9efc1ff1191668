//! MicroCash rules: escrows, the lottery draw, claims, duplicate-ticket
//! penalties, bounded replay state, and golden vectors of the ticket and
//! escrow encodings.
//!
//! The harness is a [`MemoryState`] plus a map of canonical block hashes:
//! each call is applied with [`apply_transaction`] in an [`Overlay`] at a
//! chosen height and committed with [`MemoryState::apply`] when valid.
//! `apply_transaction` does not check transaction signatures (block
//! verification does); tickets are signed by the escrow's signer key.

// Test helpers return the runtime's own error type unchanged.
#![allow(clippy::result_large_err)]

mod common;

use cachecash_runtime::consensus::ConsensusParams;
use cachecash_runtime::execution::apply_transaction;
use cachecash_runtime::microcash::{
    BatchProof, Escrow, EscrowId, EscrowTerms, MAX_WINNERS_PER_ROUND, MicrocashError, RoundClaims,
    SignedTicket, Ticket, TicketAuth, TicketError, batch_root, escrow_id, secret_commitment,
    sign_ticket, sign_tickets_batch, winners,
};
use cachecash_runtime::state::{
    Account, BlockEnv, MemoryState, Overlay, StateChanges, total_balance,
};
use cachecash_runtime::transaction::TicketClaimItem;
use cachecash_runtime::{
    AccountId, Balance, BlockNumber, Call, Hash, Signature, Transaction, TxError,
};
use common::*;
use parity_scale_codec::{Decode, Encode};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// The publisher who funds escrows.
const FUNDER: u8 = 1;
/// The escrow's ticket-signing (hot) key; it holds no coins.
const SIGNER: u8 = 2;
/// Caches paid by tickets; ticket number `i` pays `CACHES[i % 3]`.
const CACHES: [u8; 3] = [3, 4, 5];
/// Submits duplicate-ticket proofs.
const REPORTER: u8 = 6;
/// An account with no business in the escrow.
const STRANGER: u8 = 7;
/// The client named in tickets.
const CLIENT: u8 = 8;
/// Starting balance of every funded account.
const RICH: Balance = 1_000_000_000_000;

/// The default canonical hash at height `h` of the test chain `salt`.
fn chain_hash(salt: u64, h: BlockNumber) -> Hash {
    Hash::of_parts(&[
        b"test-chain".as_slice(),
        &salt.to_le_bytes(),
        &h.to_le_bytes(),
    ])
}

/// A ledger in memory with a chain history, counting fees and burns so
/// that supply can be checked: fees are debited by `apply_transaction` and
/// credited to the miner only by `execute_block`, which is not run here.
#[derive(Clone, Debug)]
struct World {
    params: ConsensusParams,
    state: MemoryState,
    history: BTreeMap<BlockNumber, Hash>,
    salt: u64,
    /// `history` holds a hash for every height below this.
    filled: BlockNumber,
    genesis_supply: Balance,
    fees: Balance,
    burnt: Balance,
}

fn world() -> World {
    World::with(params(), 0)
}

impl World {
    fn with(params: ConsensusParams, salt: u64) -> World {
        let mut state = MemoryState::default();
        for i in [FUNDER, CACHES[0], CACHES[1], CACHES[2], REPORTER, STRANGER] {
            state.accounts.insert(
                account(i),
                Account {
                    nonce: 0,
                    balance: RICH,
                },
            );
        }
        let genesis_supply = total_balance(state.accounts.values()).expect("no overflow");
        World {
            params,
            state,
            history: BTreeMap::new(),
            salt,
            filled: 0,
            genesis_supply,
            fees: 0,
            burnt: 0,
        }
    }

    /// Gives every height below `below` a canonical hash, keeping hashes
    /// already set (a test may have replaced one to model a reorg).
    fn ensure_history(&mut self, below: BlockNumber) {
        while self.filled < below {
            let (salt, h) = (self.salt, self.filled);
            self.history.entry(h).or_insert_with(|| chain_hash(salt, h));
            self.filled += 1;
        }
    }

    fn hash_at(&mut self, height: BlockNumber) -> Hash {
        self.ensure_history(height + 1);
        self.history[&height]
    }

    /// The winning numbers of `round` under this world's history.
    fn winners_of(&mut self, id: &EscrowId, terms: &EscrowTerms, round: u64) -> Vec<u32> {
        let seed = self.hash_at(terms.draw_height(round).expect("draw height"));
        winners(
            &seed,
            id,
            round,
            terms.tickets_per_round,
            terms.winners_per_round,
        )
    }

    fn account(&self, who: u8) -> Account {
        self.state
            .accounts
            .get(&account(who))
            .copied()
            .unwrap_or_default()
    }

    fn balance(&self, who: u8) -> Balance {
        self.account(who).balance
    }

    fn escrow(&self, id: &EscrowId) -> Escrow {
        self.state.escrows.get(id).cloned().expect("escrow exists")
    }

    /// What `who` was credited since genesis, net of the fees it paid
    /// (every funded account starts with `RICH`).
    fn received(&self, who: u8) -> Balance {
        let a = self.account(who);
        a.balance + Balance::from(a.nonce) * self.params.minimum_fee - RICH
    }

    /// Accounts + escrow deposits + fees paid + coins burnt.
    fn supply(&self) -> Balance {
        let accounts = total_balance(self.state.accounts.values()).expect("no overflow");
        let escrows: Balance = self
            .state
            .escrows
            .values()
            .map(|e| e.payment + e.penalty)
            .sum();
        accounts + escrows + self.fees + self.burnt
    }

    /// Applies `call` from `signer` (next nonce, minimum fee) in a block at
    /// `number`; commits and returns the changes when valid, and leaves the
    /// state untouched otherwise.
    fn submit(
        &mut self,
        signer: u8,
        call: Call,
        number: BlockNumber,
    ) -> Result<StateChanges, TxError> {
        // Genesis (height 0) always exists: escrow ids commit to its hash.
        self.ensure_history(number.max(1));
        let tx = Transaction {
            signer: account(signer),
            nonce: self.account(signer).nonce,
            fee: self.params.minimum_fee,
            call,
        };
        let outcome = {
            let mut overlay = Overlay::with_env(
                &self.state,
                BlockEnv {
                    number,
                    history: &self.history,
                },
            );
            apply_transaction(&mut overlay, &tx, &self.params)
                .map(|fee| (fee, overlay.into_changes()))
        };
        let (fee, changes) = outcome?;
        assert_eq!(fee, tx.fee);
        self.state.apply(&changes);
        self.fees += fee;
        self.burnt += changes.burnt;
        Ok(changes)
    }

    /// Opens an escrow funded by `FUNDER`; returns its id.
    fn open(
        &mut self,
        terms: EscrowTerms,
        payment: Balance,
        penalty: Balance,
        number: BlockNumber,
    ) -> Result<EscrowId, TxError> {
        let genesis = self.hash_at(0);
        let id = escrow_id(&genesis, &account(FUNDER), self.account(FUNDER).nonce);
        self.submit(
            FUNDER,
            Call::EscrowOpen {
                terms,
                payment,
                penalty,
            },
            number,
        )?;
        Ok(id)
    }

    /// Opens an escrow whose payment deposit is exactly w·β·rounds.
    fn open_covered(
        &mut self,
        terms: EscrowTerms,
        penalty: Balance,
        number: BlockNumber,
    ) -> EscrowId {
        let payment = terms
            .payment_required(terms.rounds().expect("rounds"))
            .expect("payment");
        self.open(terms, payment, penalty, number)
            .expect("the escrow opens")
    }

    /// Claims every winner of `round` at `height`, one transaction per cache.
    fn claim_winners(
        &mut self,
        id: &EscrowId,
        terms: &EscrowTerms,
        round: u64,
        issued: &[SignedTicket],
        height: BlockNumber,
    ) -> Result<(), TxError> {
        let won = self.winners_of(id, terms, round);
        for cache in CACHES {
            let items: Vec<TicketClaimItem> = won
                .iter()
                .filter(|&&nr| cache_of(nr) == cache)
                .map(|&nr| item(issued[nr as usize].clone()))
                .collect();
            if !items.is_empty() {
                self.submit(cache, claim(items), height)?;
            }
        }
        Ok(())
    }
}

/// Terms with β = 1000, L = 4 blocks, draw delay 2, claim window 6.
fn terms(n: u32, w: u32, first_round: u64, last_round: u64) -> EscrowTerms {
    EscrowTerms {
        signer: account(SIGNER),
        face_value: 1_000,
        tickets_per_round: n,
        winners_per_round: w,
        round_length: 4,
        first_round,
        last_round,
        draw_delay: 2,
        claim_window: 6,
    }
}

fn cache_of(number: u32) -> u8 {
    CACHES[(number % 3) as usize]
}

/// The puzzle secret of a ticket (known to the cache after serving).
fn puzzle_secret(escrow: &EscrowId, round: u64, number: u32, cache: &AccountId) -> [u8; 32] {
    Hash::of_parts(&[
        b"puzzle".as_slice(),
        escrow.as_bytes(),
        &round.to_le_bytes(),
        &number.to_le_bytes(),
        cache.as_bytes(),
    ])
    .0
}

fn ticket_for(escrow: EscrowId, round: u64, number: u32, cache: AccountId) -> Ticket {
    Ticket {
        escrow,
        round,
        number,
        cache,
        client: account(CLIENT),
        chunk: Hash::of_parts(&[b"chunk".as_slice(), &number.to_le_bytes()]),
        secret_hash: secret_commitment(&puzzle_secret(&escrow, round, number, &cache)),
    }
}

/// A claim of `ticket` with the right preimage.
fn item(ticket: SignedTicket) -> TicketClaimItem {
    let t = &ticket.ticket;
    let preimage = puzzle_secret(&t.escrow, t.round, t.number, &t.cache);
    TicketClaimItem { ticket, preimage }
}

fn claim(items: Vec<TicketClaimItem>) -> Call {
    Call::TicketClaim { claims: items }
}

fn duplicate(first: SignedTicket, second: SignedTicket) -> Call {
    Call::DuplicateTicketProof {
        first: Box::new(first),
        second: Box::new(second),
    }
}

/// The `n` tickets of `round`, number `i` paying `cache_of(i)`, signed one
/// by one or as one batch.
fn issue_round(escrow: EscrowId, round: u64, n: u32, batch: bool) -> Vec<SignedTicket> {
    let k = key(SIGNER);
    let tickets: Vec<Ticket> = (0..n)
        .map(|i| ticket_for(escrow, round, i, account(cache_of(i))))
        .collect();
    if batch {
        sign_tickets_batch(&k, tickets)
    } else {
        tickets.into_iter().map(|t| sign_ticket(&k, t)).collect()
    }
}

// ---------------------------------------------------------------------------
// Payment: never more than the deposit
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Claiming every winner of every round pays exactly w·β per round, so
    /// never more than the payment deposit; a loser is never paid; supply
    /// (accounts + deposits + fees) is conserved; closing refunds the rest.
    #[test]
    fn claims_pay_exactly_w_beta_per_round_and_never_exceed_the_deposit(
        (n, w) in (1u32..24).prop_flat_map(|n| (Just(n), 1..=n)),
        rounds in 1u64..5,
        first in 0u64..3,
        face_value in 1u128..10_000,
        extra in 0u128..1_000,
        batch in any::<bool>(),
        salt in any::<u64>(),
    ) {
        let mut world = World::with(params(), salt);
        let t = EscrowTerms { face_value, ..terms(n, w, first, first + rounds - 1) };
        let required = t.payment_required(rounds).unwrap();
        prop_assert_eq!(required, face_value * Balance::from(w) * Balance::from(rounds));
        let deposit = required + extra;
        let id = world.open(t.clone(), deposit, 0, 0).unwrap();
        for r in t.first_round..=t.last_round {
            let issued = issue_round(id, r, n, batch);
            let opens = t.draw_height(r).unwrap() + 1;
            let won = world.winners_of(&id, &t, r);
            if let Some(loser) = (0..n).find(|x| !won.contains(x)) {
                let call = claim(vec![item(issued[loser as usize].clone())]);
                let err = world.submit(cache_of(loser), call, opens).unwrap_err();
                prop_assert!(
                    matches!(err, TxError::Microcash(MicrocashError::NotAWinner { .. })),
                    "{err}"
                );
            }
            world.claim_winners(&id, &t, r, &issued, opens).unwrap();
            prop_assert_eq!(world.supply(), world.genesis_supply);
        }
        let paid: Balance = CACHES.iter().map(|&c| world.received(c)).sum();
        prop_assert_eq!(paid, required);
        prop_assert!(paid <= deposit);
        prop_assert_eq!(world.escrow(&id).payment, extra);
        // The funder gets back exactly what no winner could claim.
        let before = world.balance(FUNDER);
        let unlock = t.unlock_height().unwrap();
        world.submit(FUNDER, Call::EscrowClose { escrow: id }, unlock).unwrap();
        prop_assert_eq!(world.balance(FUNDER), before + extra - world.params.minimum_fee);
        prop_assert_eq!(world.supply(), world.genesis_supply);
    }

    /// The draw names exactly w distinct numbers, all below n, and is a
    /// function of its inputs.
    #[test]
    fn the_draw_names_exactly_w_distinct_winners_below_n(
        seed in any::<[u8; 32]>(),
        escrow in any::<[u8; 32]>(),
        round in any::<u64>(),
        (n, w) in prop_oneof![1u32..64, 64u32..5_000, Just(u32::MAX)]
            .prop_flat_map(|n| (Just(n), 1..=n.min(MAX_WINNERS_PER_ROUND))),
    ) {
        let won = winners(&Hash(seed), &Hash(escrow), round, n, w);
        prop_assert_eq!(won.len(), w as usize);
        let distinct: BTreeSet<u32> = won.iter().copied().collect();
        prop_assert_eq!(distinct.len(), won.len());
        prop_assert!(won.iter().all(|&x| x < n));
        prop_assert_eq!(winners(&Hash(seed), &Hash(escrow), round, n, w), won);
    }

    /// The grinding bound: whatever the seed, a party holding k of the n
    /// numbers wins between max(0, k + w − n) and min(k, w) of them, so
    /// discarding a draw block and drawing again moves at most
    /// β·min(k, w, n − k, n − w): never more than β·min(k, w).
    /// Withholding pays only when that exceeds the block reward the
    /// discarding miner expects to lose, (1 − α)·R.
    #[test]
    fn a_redraw_moves_at_most_min_k_w_winners_for_any_holder(
        seeds in prop::collection::vec(any::<[u8; 32]>(), 2..6),
        escrow in any::<[u8; 32]>(),
        round in 0u64..1_000,
        (n, w) in (1u32..200).prop_flat_map(|n| (Just(n), 1..=n)),
        held in prop::collection::btree_set(0u32..200, 0..200),
    ) {
        let held: BTreeSet<u32> = held.into_iter().filter(|x| *x < n).collect();
        let k = held.len() as u32;
        let wins: Vec<u32> = seeds
            .iter()
            .map(|s| {
                winners(&Hash(*s), &Hash(escrow), round, n, w)
                    .iter()
                    .filter(|x| held.contains(x))
                    .count() as u32
            })
            .collect();
        let (lo, hi) = ((k + w).saturating_sub(n), k.min(w));
        for &x in &wins {
            prop_assert!(lo <= x && x <= hi, "{x} wins outside {lo}..={hi}");
        }
        let best = wins.iter().max().copied().unwrap_or(0);
        let worst = wins.iter().min().copied().unwrap_or(0);
        prop_assert!(best - worst <= k.min(w).min(n - k).min(n - w));
    }

    /// Changing any field of a ticket breaks its single signature and its
    /// batch proof; neither verifies under another key.
    #[test]
    fn changing_any_ticket_field_breaks_its_signature_and_its_batch_proof(
        field in 0usize..7,
        pos in any::<usize>(),
        bit in 0u8..8,
        size in 1u32..12,
        index in any::<prop::sample::Index>(),
        round in any::<u64>(),
        first_number in any::<u32>(),
    ) {
        let k = key(SIGNER);
        let signer = account(SIGNER);
        let tickets: Vec<Ticket> = (0..size)
            .map(|i| ticket_for(Hash([7; 32]), round, first_number.wrapping_add(i), account(cache_of(i))))
            .collect();
        let i = index.index(tickets.len());
        let single = sign_ticket(&k, tickets[i].clone());
        let batched = sign_tickets_batch(&k, tickets).swap_remove(i);
        for honest in [single, batched] {
            prop_assert!(honest.verify(&signer).is_ok());
            prop_assert!(honest.verify(&account(STRANGER)).is_err());
            let mut forged = honest.clone();
            tamper(&mut forged.ticket, field, pos, bit);
            prop_assert_ne!(&forged.ticket, &honest.ticket);
            prop_assert!(forged.verify(&signer).is_err(), "field {field} changed, still verifies");
        }
    }

    /// Flipping a bit of a batch proof's path or signature, or changing its
    /// index, size or path length, breaks it.
    #[test]
    fn changing_a_batch_proof_or_its_signature_breaks_it(
        size in 2u32..40,
        index in any::<prop::sample::Index>(),
        step in any::<prop::sample::Index>(),
        pos in 0usize..64,
        bit in 0u8..8,
        how in 0u8..6,
    ) {
        let tickets: Vec<Ticket> = (0..size)
            .map(|i| ticket_for(Hash([7; 32]), 1, i, account(cache_of(i))))
            .collect();
        let i = index.index(tickets.len());
        let mut st = sign_tickets_batch(&key(SIGNER), tickets).swap_remove(i);
        prop_assert!(st.verify(&account(SIGNER)).is_ok());
        let TicketAuth::Batch { signature, proof } = &mut st.auth else {
            panic!("a batch-signed ticket carries a batch proof");
        };
        prop_assert!(!proof.path.is_empty());
        match how {
            0 => {
                let j = step.index(proof.path.len());
                proof.path[j].0[pos % 32] ^= 1u8 << bit;
            }
            1 => proof.index = (proof.index + 1) % proof.size,
            2 => proof.size += 1,
            3 => {
                proof.path.pop();
            }
            4 => proof.path.push(Hash([0x5a; 32])),
            _ => signature.0[pos] ^= 1u8 << bit,
        }
        prop_assert!(st.verify(&account(SIGNER)).is_err(), "change {how} still verifies");
    }

    /// A claim is valid exactly in blocks `draw < H ≤ draw + claim_window`.
    #[test]
    fn claims_are_valid_only_after_the_draw_and_within_the_window(
        round_length in 1u32..6,
        draw_delay in 1u32..6,
        claim_window in 1u32..6,
        round in 0u64..4,
        early in any::<prop::sample::Index>(),
        late in 1u64..50,
        salt in any::<u64>(),
    ) {
        let mut world = World::with(params(), salt);
        let t = EscrowTerms { round_length, draw_delay, claim_window, ..terms(8, 3, 0, 3) };
        let id = world.open_covered(t.clone(), 0, 0);
        let issued = issue_round(id, round, 8, true);
        let draw = t.draw_height(round).unwrap();
        let deadline = t.claim_deadline(round).unwrap();
        prop_assert_eq!(draw, (round + 1) * u64::from(round_length) - 1 + u64::from(draw_delay));
        prop_assert_eq!(deadline, draw + u64::from(claim_window));
        let won = world.winners_of(&id, &t, round);
        let claim_of = |k: usize| {
            let nr = won[k];
            (cache_of(nr), claim(vec![item(issued[nr as usize].clone())]))
        };
        // Up to and including the draw block: not drawn yet.
        let before_draw = early.index(draw as usize + 1) as u64;
        for h in [before_draw, draw] {
            let (cache, call) = claim_of(0);
            let err = world.submit(cache, call, h).unwrap_err();
            prop_assert!(
                matches!(err, TxError::Microcash(MicrocashError::NotDrawn { draw: d, opens, height, .. })
                    if d == draw && opens == draw + 1 && height == h),
                "at #{h}: {err}"
            );
        }
        // The first block after the draw and the deadline both accept a claim.
        let (cache, call) = claim_of(0);
        world.submit(cache, call, draw + 1).unwrap();
        let (cache, call) = claim_of(1);
        world.submit(cache, call, deadline).unwrap();
        // After the deadline the window is closed, even for an unclaimed winner.
        let (cache, call) = claim_of(2);
        let err = world.submit(cache, call, deadline + late).unwrap_err();
        prop_assert!(
            matches!(err, TxError::Microcash(MicrocashError::WindowClosed { closed, .. }) if closed == deadline),
            "{err}"
        );
        let paid: Balance = CACHES.iter().map(|&c| world.received(c)).sum();
        prop_assert_eq!(paid, 2 * t.face_value);
    }

    /// A duplicate proof pays the reporter ⌊penalty·percent/100⌋ and burns
    /// the rest, whatever the penalty and the share.
    #[test]
    fn a_duplicate_proof_pays_the_reporter_share_and_burns_the_rest(
        penalty in prop_oneof![Just(0u128), 1u128..1_000, 0u128..RICH / 2],
        percent in 0u8..=100,
    ) {
        let mut p = params();
        p.duplicate_reporter_share_percent = percent;
        let mut world = World::with(p, 0);
        let id = world.open_covered(terms(8, 2, 1, 1), penalty, 0);
        let k = key(SIGNER);
        let a = sign_ticket(&k, ticket_for(id, 1, 0, account(CACHES[0])));
        let b = sign_ticket(&k, ticket_for(id, 1, 0, account(REPORTER)));
        let changes = world.submit(REPORTER, duplicate(a, b), 2).unwrap();
        let share = penalty * Balance::from(percent) / 100;
        prop_assert_eq!(world.received(REPORTER), share);
        prop_assert_eq!(changes.burnt, penalty - share);
        let e = world.escrow(&id);
        prop_assert!(e.penalised);
        prop_assert_eq!(e.penalty, 0);
        prop_assert_eq!(world.supply(), world.genesis_supply);
    }

    /// A publisher that issues each number at most once per round can never
    /// be penalised: every pair of its tickets with the same escrow, round
    /// and number is the same ticket (at most differently authenticated),
    /// and every proof built from them is rejected as no duplicate.
    #[test]
    fn no_duplicate_proof_can_be_formed_against_an_honest_publisher(
        numbers in prop::collection::vec(
            prop::sample::subsequence((0u32..16).collect::<Vec<_>>(), 0..=4),
            1..4,
        ),
        owners in prop::collection::vec(0usize..3, 16),
    ) {
        let mut world = world();
        let last = numbers.len() as u64;
        let id = world.open_covered(terms(16, 2, 1, last), 1_000, 0);
        let k = key(SIGNER);
        // Each ticket is sent signed alone and again in its round's batch.
        let mut sent: Vec<SignedTicket> = Vec::new();
        for (round, nums) in (1u64..).zip(&numbers) {
            let tickets: Vec<Ticket> = nums
                .iter()
                .map(|&nr| ticket_for(id, round, nr, account(CACHES[owners[nr as usize]])))
                .collect();
            sent.extend(tickets.iter().cloned().map(|x| sign_ticket(&k, x)));
            sent.extend(sign_tickets_batch(&k, tickets));
        }
        for x in &sent {
            for y in &sent {
                let (a, b) = (&x.ticket, &y.ticket);
                if (a.escrow, a.round, a.number) == (b.escrow, b.round, b.number) {
                    prop_assert_eq!(a, b);
                }
                let err = world.submit(REPORTER, duplicate(x.clone(), y.clone()), 5).unwrap_err();
                prop_assert!(
                    matches!(err, TxError::Microcash(MicrocashError::NotDuplicate(_))),
                    "{err}"
                );
            }
        }
        prop_assert!(!world.escrow(&id).penalised);
        prop_assert_eq!(world.balance(REPORTER), RICH);
    }

    /// Two histories that differ only at the draw block each determine
    /// their own winners; a claim follows the history it is checked against.
    #[test]
    fn a_reorg_of_the_draw_block_redraws_deterministically_and_claims_follow_it(
        salt in any::<u64>(),
        replacement in any::<[u8; 32]>(),
        round in 1u64..4,
    ) {
        let mut a = World::with(params(), salt);
        let t = terms(32, 4, 1, 3);
        let id = a.open_covered(t.clone(), 0, 0);
        let issued = issue_round(id, round, 32, true);
        let draw = t.draw_height(round).unwrap();
        let at = draw + 1;
        a.ensure_history(at + 1);
        let mut b = a.clone();
        b.history.insert(draw, Hash(replacement));
        prop_assume!(b.history[&draw] != a.history[&draw]);
        prop_assert!(a.history.keys().eq(b.history.keys()));
        prop_assert!(a.history.iter().all(|(h, x)| *h == draw || b.history[h] == *x));
        let wa = a.winners_of(&id, &t, round);
        let wb = b.winners_of(&id, &t, round);
        // Recomputing from the same history gives the same draw...
        prop_assert_eq!(&a.winners_of(&id, &t, round), &wa);
        prop_assert_eq!(&b.winners_of(&id, &t, round), &wb);
        // ...and replacing any block but the draw block changes nothing.
        let mut c = a.clone();
        c.history.insert(draw - 1, Hash(replacement));
        c.history.insert(draw + 1, Hash(replacement));
        prop_assert_eq!(&c.winners_of(&id, &t, round), &wa);
        let sa: BTreeSet<u32> = wa.iter().copied().collect();
        let sb: BTreeSet<u32> = wb.iter().copied().collect();
        // A number that won under one history only is paid under that one
        // and rejected as a loser under the other.
        for (yes, no, only) in [(&a, &b, &sa - &sb), (&b, &a, &sb - &sa)] {
            for nr in only {
                let call = claim(vec![item(issued[nr as usize].clone())]);
                let err = no.clone().submit(cache_of(nr), call.clone(), at).unwrap_err();
                prop_assert!(
                    matches!(err, TxError::Microcash(MicrocashError::NotAWinner { number, .. }) if number == nr),
                    "{err}"
                );
                prop_assert!(yes.clone().submit(cache_of(nr), call, at).is_ok());
            }
        }
        // A number that won under both is paid under both.
        for &nr in sa.intersection(&sb) {
            let call = claim(vec![item(issued[nr as usize].clone())]);
            prop_assert!(a.clone().submit(cache_of(nr), call.clone(), at).is_ok());
            prop_assert!(b.clone().submit(cache_of(nr), call, at).is_ok());
        }
    }

    /// Ticket numbers ≥ n and rounds outside the escrow are rejected, in
    /// claims and in duplicate proofs, even when validly signed.
    #[test]
    fn numbers_and_rounds_outside_the_escrow_are_rejected(
        bad_number in prop_oneof![8u32..100, Just(u32::MAX)],
        bad_round in prop_oneof![0u64..5, 9u64..1_000, Just(u64::MAX)],
        good_number in 0u32..8,
        good_round in 5u64..=8,
        height in 0u64..2_000,
    ) {
        let mut world = world();
        let id = world.open_covered(terms(8, 2, 5, 8), 1_000, 0);
        let k = key(SIGNER);
        let signed = |round: u64, number: u32, cache: u8| {
            sign_ticket(&k, ticket_for(id, round, number, account(cache)))
        };
        for (round, number) in [(good_round, bad_number), (bad_round, good_number)] {
            let expected = |err: &TxError| {
                if number >= 8 {
                    matches!(err, TxError::Microcash(MicrocashError::NumberOutOfRange { number: x, n: 8 }) if *x == number)
                } else {
                    matches!(err, TxError::Microcash(MicrocashError::RoundOutOfRange { round: x, first: 5, last: 8 }) if *x == round)
                }
            };
            let cache = cache_of(number);
            let call = claim(vec![item(signed(round, number, cache))]);
            let err = world.submit(cache, call, height).unwrap_err();
            prop_assert!(expected(&err), "claim of ({round}, {number}): {err}");
            let call = duplicate(signed(round, number, CACHES[0]), signed(round, number, CACHES[1]));
            let err = world.submit(CACHES[0], call, height).unwrap_err();
            prop_assert!(expected(&err), "duplicate of ({round}, {number}): {err}");
        }
        prop_assert!(!world.escrow(&id).penalised);
        prop_assert_eq!(world.supply(), world.genesis_supply);
    }
}

#[test]
fn when_every_ticket_wins_the_draw_is_a_permutation() {
    for n in 1u32..=40 {
        let mut won = winners(&Hash([1; 32]), &Hash([2; 32]), 3, n, n);
        won.sort_unstable();
        assert_eq!(won, (0..n).collect::<Vec<_>>());
    }
    // Asked for more winners than tickets, the draw names each ticket once.
    assert_eq!(winners(&Hash([1; 32]), &Hash([2; 32]), 3, 5, 9).len(), 5);
    assert!(winners(&Hash([1; 32]), &Hash([2; 32]), 3, 5, 0).is_empty());
}

// ---------------------------------------------------------------------------
// Replay, claimants, preimages
// ---------------------------------------------------------------------------

#[test]
fn a_winning_ticket_is_paid_at_most_once() {
    let mut world = world();
    let t = terms(8, 3, 1, 1);
    let id = world.open_covered(t.clone(), 0, 0);
    let issued = issue_round(id, 1, 8, false);
    let opens = t.draw_height(1).unwrap() + 1;
    let nr = world.winners_of(&id, &t, 1)[0];
    let cache = cache_of(nr);
    let once = item(issued[nr as usize].clone());
    // The same ticket re-authenticated: in a batch instead of alone.
    let rebatched = item(
        sign_tickets_batch(&key(SIGNER), vec![issued[nr as usize].ticket.clone()]).swap_remove(0),
    );
    // Twice in one claim, however authenticated: the whole transaction is
    // rejected and nothing is paid.
    let before = world.clone();
    for pair in [
        vec![once.clone(), once.clone()],
        vec![once.clone(), rebatched.clone()],
    ] {
        let err = world.submit(cache, claim(pair), opens).unwrap_err();
        assert!(
            matches!(err, TxError::Microcash(MicrocashError::DuplicateInClaim { round: 1, number })
                if number == nr),
            "{err}"
        );
    }
    assert_eq!(world.state.accounts, before.state.accounts);
    assert_eq!(world.state.escrows, before.state.escrows);
    // Once: paid.
    world
        .submit(cache, claim(vec![once.clone()]), opens)
        .unwrap();
    assert_eq!(world.received(cache), t.face_value);
    // Again in a later block, or re-authenticated in a batch: refused.
    for (again, at) in [(once, opens + 1), (rebatched, t.claim_deadline(1).unwrap())] {
        let err = world.submit(cache, claim(vec![again]), at).unwrap_err();
        assert!(
            matches!(err, TxError::Microcash(MicrocashError::AlreadyClaimed { escrow, round: 1, number })
                if escrow == id && number == nr),
            "{err}"
        );
    }
    assert_eq!(world.received(cache), t.face_value);
    assert_eq!(
        world.escrow(&id).payment,
        t.payment_required(1).unwrap() - t.face_value
    );
    assert_eq!(world.supply(), world.genesis_supply);
}

#[test]
fn a_winning_ticket_claimed_by_another_account_is_rejected() {
    let mut world = world();
    let t = terms(8, 2, 1, 1);
    let id = world.open_covered(t.clone(), 0, 0);
    let issued = issue_round(id, 1, 8, false);
    let opens = t.draw_height(1).unwrap() + 1;
    let nr = world.winners_of(&id, &t, 1)[0];
    let honest = issued[nr as usize].clone();
    let owner = cache_of(nr);
    let other_cache = CACHES.into_iter().find(|&c| c != owner).unwrap();
    for thief in [other_cache, STRANGER] {
        let err = world
            .submit(thief, claim(vec![item(honest.clone())]), opens)
            .unwrap_err();
        assert!(
            matches!(err, TxError::Microcash(MicrocashError::WrongClaimant { cache, claimant })
                if cache == account(owner) && claimant == account(thief)),
            "{err}"
        );
    }
    // Re-addressing the ticket to the thief breaks the signer's signature.
    let preimage = item(honest.clone()).preimage;
    let mut stolen = honest.clone();
    stolen.ticket.cache = account(STRANGER);
    let err = world
        .submit(
            STRANGER,
            claim(vec![TicketClaimItem {
                ticket: stolen,
                preimage,
            }]),
            opens,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            TxError::Microcash(MicrocashError::BadTicket(TicketError::BadSignature(_)))
        ),
        "{err}"
    );
    // The owner is still paid, and nobody else.
    world
        .submit(owner, claim(vec![item(honest)]), opens)
        .unwrap();
    assert_eq!(world.received(owner), t.face_value);
    assert_eq!(world.received(other_cache), 0);
    assert_eq!(world.received(STRANGER), 0);
}

#[test]
fn a_claim_with_a_wrong_preimage_is_rejected() {
    let mut world = world();
    let t = terms(8, 2, 1, 1);
    let id = world.open_covered(t.clone(), 0, 0);
    let issued = issue_round(id, 1, 8, true);
    let opens = t.draw_height(1).unwrap() + 1;
    let nr = world.winners_of(&id, &t, 1)[0];
    let cache = cache_of(nr);
    let honest = item(issued[nr as usize].clone());
    let mut flipped = honest.preimage;
    flipped[31] ^= 1;
    // Neither a wrong secret nor the commitment itself opens the commitment.
    for wrong in [[0u8; 32], flipped, honest.ticket.ticket.secret_hash.0] {
        let forged = TicketClaimItem {
            preimage: wrong,
            ..honest.clone()
        };
        let err = world.submit(cache, claim(vec![forged]), opens).unwrap_err();
        assert!(
            matches!(err, TxError::Microcash(MicrocashError::WrongPreimage)),
            "{err}"
        );
    }
    world.submit(cache, claim(vec![honest]), opens).unwrap();
    assert_eq!(world.received(cache), t.face_value);
}

// ---------------------------------------------------------------------------
// Duplicate-ticket proofs
// ---------------------------------------------------------------------------

#[test]
fn a_duplicate_proof_forfeits_the_penalty_once_and_spares_the_payment_deposit() {
    let mut world = world();
    let t = terms(8, 2, 1, 2);
    let penalty: Balance = 1_001;
    let id = world.open_covered(t.clone(), penalty, 0);
    let k = key(SIGNER);
    let a = sign_ticket(&k, ticket_for(id, 1, 5, account(CACHES[0])));
    let b = sign_ticket(&k, ticket_for(id, 1, 5, account(REPORTER)));
    // A "duplicate" not signed by the escrow's signer proves nothing.
    let forged = sign_ticket(&key(STRANGER), ticket_for(id, 1, 5, account(REPORTER)));
    let err = world
        .submit(REPORTER, duplicate(a.clone(), forged), 3)
        .unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::BadTicket(_))),
        "{err}"
    );
    // The same ticket under two authentications is no duplicate.
    let rebatched = sign_tickets_batch(&k, vec![a.ticket.clone()]).swap_remove(0);
    let err = world
        .submit(REPORTER, duplicate(a.clone(), rebatched), 3)
        .unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::NotDuplicate(_))),
        "{err}"
    );
    // Two different tickets for round 1, number 5: the penalty is forfeited.
    let changes = world
        .submit(REPORTER, duplicate(a.clone(), b.clone()), 3)
        .unwrap();
    assert_eq!(world.params.duplicate_reporter_share_percent, 50);
    let share = 500; // ⌊1001 · 50 / 100⌋
    assert_eq!(changes.burnt, penalty - share);
    assert_eq!(world.received(REPORTER), share);
    let e = world.escrow(&id);
    assert!(e.penalised);
    assert_eq!(e.penalty, 0);
    assert_eq!(e.payment, t.payment_required(2).unwrap());
    assert_eq!(world.supply(), world.genesis_supply);
    // Once only: the same proof, the reverse, or another pair.
    let c = sign_ticket(&k, ticket_for(id, 2, 0, account(CACHES[0])));
    let d = sign_ticket(&k, ticket_for(id, 2, 0, account(REPORTER)));
    for (x, y) in [(a.clone(), b.clone()), (b, a), (c, d)] {
        let err = world.submit(REPORTER, duplicate(x, y), 4).unwrap_err();
        assert!(
            matches!(err, TxError::Microcash(MicrocashError::AlreadyPenalised(x)) if x == id),
            "{err}"
        );
    }
    assert_eq!(world.received(REPORTER), share);
    // A new penalty deposit could never be forfeited, so it is refused;
    // rounds may still be added.
    let top_up = |extra_rounds: u64, penalty: Balance| Call::EscrowTopUp {
        escrow: id,
        extra_rounds,
        penalty,
    };
    let err = world.submit(FUNDER, top_up(0, 10), 4).unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::PenaltyAfterPenalised(x)) if x == id),
        "{err}"
    );
    world.submit(FUNDER, top_up(1, 0), 4).unwrap();
    assert_eq!(world.escrow(&id).terms.last_round, 3);
    // Honest caches are still paid in full.
    let issued = issue_round(id, 1, 8, true);
    let opens = t.draw_height(1).unwrap() + 1;
    world.claim_winners(&id, &t, 1, &issued, opens).unwrap();
    let paid: Balance = CACHES.iter().map(|&c| world.received(c)).sum();
    assert_eq!(paid, 2 * t.face_value);
    assert_eq!(world.supply(), world.genesis_supply);
}

// ---------------------------------------------------------------------------
// Opening, topping up and closing escrows
// ---------------------------------------------------------------------------

#[test]
fn an_escrow_closes_only_for_its_funder_and_only_after_the_last_window() {
    let mut world = world();
    let t = terms(8, 2, 1, 2);
    let id = world.open_covered(t.clone(), 500, 0);
    let issued = issue_round(id, 1, 8, false);
    let opens = t.draw_height(1).unwrap() + 1;
    world.claim_winners(&id, &t, 1, &issued, opens).unwrap();
    let unlock = t.unlock_height().unwrap();
    assert_eq!(unlock, t.claim_deadline(2).unwrap() + 1);
    let close = Call::EscrowClose { escrow: id };
    for h in [opens, t.draw_height(2).unwrap(), unlock - 1] {
        let err = world.submit(FUNDER, close.clone(), h).unwrap_err();
        assert!(
            matches!(err, TxError::Microcash(MicrocashError::Locked { unlock: u, height, .. })
                if u == unlock && height == h),
            "{err}"
        );
    }
    let err = world.submit(STRANGER, close.clone(), unlock).unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::NotFunder { funder, .. })
            if funder == account(FUNDER)),
        "{err}"
    );
    let e = world.escrow(&id);
    assert_eq!(e.payment, t.payment_required(2).unwrap() - 2 * t.face_value);
    let (payment, penalty) = (e.payment, e.penalty);
    let fee = world.params.minimum_fee;
    let before = world.balance(FUNDER);
    // At unlock the payment deposit returns; the penalty stays for its grace
    // period, and so does the record (closed: no claim can draw on it).
    world.submit(FUNDER, close.clone(), unlock).unwrap();
    assert_eq!(world.balance(FUNDER), before + payment - fee);
    let e = world.escrow(&id);
    assert!(e.closed);
    assert_eq!((e.payment, e.penalty), (0, penalty));
    assert!(world.state.funder_escrows(&account(FUNDER)).contains(&id));
    assert_eq!(world.supply(), world.genesis_supply);
    let release = t.penalty_release_height().unwrap();
    assert_eq!(release, unlock + u64::from(t.claim_window));
    for h in [unlock, release - 1] {
        let err = world.submit(FUNDER, close.clone(), h).unwrap_err();
        assert!(
            matches!(err, TxError::Microcash(MicrocashError::PenaltyHeld { release: r, height, .. })
                if r == release && height == h),
            "{err}"
        );
    }
    // No late claim on a closed escrow.
    let issued = issue_round(id, 2, 8, false);
    let nr = world.winners_of(&id, &t, 2)[0];
    let call = claim(vec![item(issued[nr as usize].clone())]);
    let err = world.submit(cache_of(nr), call, unlock).unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::WindowClosed { .. })),
        "{err}"
    );
    // From the release height the second close returns the penalty and the
    // record is gone: no third refund.
    let before = world.balance(FUNDER);
    world.submit(FUNDER, close.clone(), release).unwrap();
    assert_eq!(world.balance(FUNDER), before + penalty - fee);
    assert!(!world.state.escrows.contains_key(&id));
    assert!(!world.state.funder_escrows(&account(FUNDER)).contains(&id));
    assert_eq!(world.supply(), world.genesis_supply);
    let err = world.submit(FUNDER, close, release + 1).unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::UnknownEscrow(x)) if x == id),
        "{err}"
    );
}

#[test]
fn a_duplicate_found_in_the_grace_period_after_close_still_forfeits_the_penalty() {
    let mut world = world();
    let t = terms(8, 2, 1, 1);
    let penalty: Balance = 1_000;
    let id = world.open_covered(t.clone(), penalty, 0);
    let unlock = t.unlock_height().unwrap();
    let close = Call::EscrowClose { escrow: id };
    world.submit(FUNDER, close.clone(), unlock).unwrap();
    let k = key(SIGNER);
    let a = sign_ticket(&k, ticket_for(id, 1, 3, account(CACHES[0])));
    let b = sign_ticket(&k, ticket_for(id, 1, 3, account(REPORTER)));
    let release = t.penalty_release_height().unwrap();
    let changes = world
        .submit(REPORTER, duplicate(a, b), release - 1)
        .unwrap();
    assert_eq!(world.received(REPORTER), penalty / 2);
    assert_eq!(changes.burnt, penalty - penalty / 2);
    assert!(world.escrow(&id).penalised);
    // Nothing is left to hold: the next close deletes the record at once.
    let before = world.balance(FUNDER);
    world.submit(FUNDER, close, release - 1).unwrap();
    assert_eq!(world.balance(FUNDER), before - world.params.minimum_fee);
    assert!(!world.state.escrows.contains_key(&id));
    assert_eq!(world.supply(), world.genesis_supply);
}

#[test]
fn a_close_after_the_grace_period_returns_both_deposits_at_once() {
    let mut world = world();
    let t = terms(8, 2, 1, 1);
    let id = world.open_covered(t.clone(), 700, 0);
    let e = world.escrow(&id);
    let before = world.balance(FUNDER);
    let release = t.penalty_release_height().unwrap();
    world
        .submit(FUNDER, Call::EscrowClose { escrow: id }, release)
        .unwrap();
    assert_eq!(
        world.balance(FUNDER),
        before + e.payment + e.penalty - world.params.minimum_fee
    );
    assert!(!world.state.escrows.contains_key(&id));
    assert!(!world.state.funder_escrows(&account(FUNDER)).contains(&id));
}

#[test]
fn only_a_cache_named_in_the_tickets_may_report_a_duplicate() {
    let mut world = world();
    let t = terms(8, 2, 1, 1);
    let penalty: Balance = 800;
    let id = world.open_covered(t, penalty, 0);
    let k = key(SIGNER);
    let a = sign_ticket(&k, ticket_for(id, 1, 2, account(CACHES[0])));
    let b = sign_ticket(&k, ticket_for(id, 1, 2, account(CACHES[1])));
    // Someone who copied the proof from the pool gets nothing.
    let err = world
        .submit(STRANGER, duplicate(a.clone(), b.clone()), 3)
        .unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::ReporterNotNamed { reporter })
            if reporter == account(STRANGER)),
        "{err}"
    );
    assert!(!world.escrow(&id).penalised);
    // Either named cache may report, in either order.
    world.submit(CACHES[1], duplicate(a, b), 3).unwrap();
    assert_eq!(world.received(CACHES[1]), penalty / 2);
    assert!(world.escrow(&id).penalised);
}

#[test]
fn opening_an_escrow_requires_full_cover_valid_terms_and_a_future_first_round() {
    let mut world = world();
    let t = terms(8, 2, 3, 5);
    let required: Balance = 2 * 1_000 * 3;
    assert_eq!(t.payment_required(3).unwrap(), required);
    let err = world.open(t.clone(), required - 1, 0, 0).unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::PaymentTooSmall { deposit, required: r })
            if deposit == required - 1 && r == required),
        "{err}"
    );
    for bad in [
        EscrowTerms {
            winners_per_round: 9,
            ..t.clone()
        },
        EscrowTerms {
            winners_per_round: 0,
            ..t.clone()
        },
        EscrowTerms {
            last_round: 2,
            ..t.clone()
        },
        EscrowTerms {
            draw_delay: 0,
            ..t.clone()
        },
    ] {
        let err = world.open(bad, required * 10, 0, 0).unwrap_err();
        assert!(
            matches!(err, TxError::Microcash(MicrocashError::BadTerms(_))),
            "{err}"
        );
    }
    // Round 3 starts at block 12: an escrow may open in that very block.
    let nonce = world.account(FUNDER).nonce;
    let id = world.open(t.clone(), required + 5, 70, 12).unwrap();
    assert_eq!(id, escrow_id(&world.history[&0], &account(FUNDER), nonce));
    assert_eq!(
        world.escrow(&id),
        Escrow {
            funder: account(FUNDER),
            terms: t.clone(),
            payment: required + 5,
            penalty: 70,
            penalised: false,
            claimed: Vec::new(),
            closed: false,
        }
    );
    assert_eq!(world.state.funder_escrows(&account(FUNDER)), [id]);
    assert_eq!(
        world.balance(FUNDER),
        RICH - (required + 5) - 70 - world.params.minimum_fee
    );
    // One block later round 3 has begun.
    let err = world.open(t, required, 0, 13).unwrap_err();
    assert!(
        matches!(
            err,
            TxError::Microcash(MicrocashError::RoundInPast {
                first_round: 3,
                starts: 12,
                height: 13
            })
        ),
        "{err}"
    );
    let later = terms(8, 2, 4, 4);
    let payment = later.payment_required(1).unwrap();
    let id2 = world.open(later, payment, 0, 13).unwrap();
    assert_eq!(
        id2,
        escrow_id(&world.history[&0], &account(FUNDER), nonce + 1)
    );
    assert_ne!(id2, id);
    assert_eq!(world.state.funder_escrows(&account(FUNDER)), [id, id2]);
    assert_eq!(world.supply(), world.genesis_supply);
}

#[test]
fn a_top_up_adds_rounds_and_deposit_only_while_it_can_still_matter() {
    let mut world = world();
    let t = terms(8, 2, 1, 2); // L = 4: round r starts at block 4r
    let per_round = t.payment_required(1).unwrap();
    let fee = world.params.minimum_fee;
    let id = world.open_covered(t.clone(), 0, 0);
    let top_up = |extra_rounds: u64, penalty: Balance| Call::EscrowTopUp {
        escrow: id,
        extra_rounds,
        penalty,
    };
    let err = world.submit(STRANGER, top_up(1, 0), 1).unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::NotFunder { .. })),
        "{err}"
    );
    let err = world.submit(FUNDER, top_up(0, 0), 1).unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::EmptyTopUp)),
        "{err}"
    );
    let before = world.balance(FUNDER);
    world.submit(FUNDER, top_up(3, 50), 7).unwrap();
    let e = world.escrow(&id);
    assert_eq!(e.terms.last_round, 5);
    assert_eq!(e.payment, 5 * per_round);
    assert_eq!(e.penalty, 50);
    assert_eq!(world.balance(FUNDER), before - 3 * per_round - 50 - fee);
    // Round 5 starts at block 20: in block 19 rounds may still be added.
    world.submit(FUNDER, top_up(1, 0), 19).unwrap();
    let e = world.escrow(&id);
    assert_eq!(e.terms.last_round, 6);
    assert_eq!(e.payment, 6 * per_round);
    // Round 6 began in block 24: no more rounds, but penalty deposit may still be added.
    let err = world.submit(FUNDER, top_up(1, 0), 24).unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::TopUpTooLate(x)) if x == id),
        "{err}"
    );
    world.submit(FUNDER, top_up(0, 70), 24).unwrap();
    // The added round is claimable like any other.
    let extended = world.escrow(&id).terms;
    let issued = issue_round(id, 6, 8, true);
    let opens = extended.draw_height(6).unwrap() + 1;
    world
        .claim_winners(&id, &extended, 6, &issued, opens)
        .unwrap();
    let paid: Balance = CACHES.iter().map(|&c| world.received(c)).sum();
    assert_eq!(paid, 2 * t.face_value);
    // Once the escrow unlocks no top-up is accepted, not even penalty
    // deposit; closing returns everything left.
    let unlock = extended.unlock_height().unwrap();
    assert_eq!(unlock, 36);
    let err = world.submit(FUNDER, top_up(1, 0), unlock).unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::TopUpTooLate(x)) if x == id),
        "{err}"
    );
    let err = world.submit(FUNDER, top_up(0, 1), unlock).unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::Unlocked(x)) if x == id),
        "{err}"
    );
    let e = world.escrow(&id);
    assert_eq!(e.payment + e.penalty, 6 * per_round - paid + 120);
    let release = world.escrow(&id).terms.penalty_release_height().unwrap();
    world
        .submit(FUNDER, Call::EscrowClose { escrow: id }, release)
        .unwrap();
    let f = world.account(FUNDER);
    assert_eq!(f.balance + Balance::from(f.nonce) * fee, RICH - paid);
    assert_eq!(world.supply(), world.genesis_supply);
}

// ---------------------------------------------------------------------------
// Bounded replay state
// ---------------------------------------------------------------------------

/// Opens an escrow with `t` (first round 0), issues every round as one
/// batch and claims each round's winners at a height inside its window
/// (spread by `mix`), in height order. After every claim, checks that the
/// escrow record holds only rounds whose window is open, at most
/// `(claim_window + draw_delay) / round_length + 2` of them, and encodes
/// in at most the size that implies. Returns the most rounds held at once.
fn run_rounds_checking_replay_state(t: &EscrowTerms, mix: u64) -> usize {
    let mut world = world();
    let id = world.open_covered(t.clone(), 0, 0);
    let window = u64::from(t.claim_window);
    let mut schedule: BTreeMap<BlockNumber, Vec<u64>> = BTreeMap::new();
    for r in t.first_round..=t.last_round {
        let at = t.draw_height(r).unwrap() + 1 + r.wrapping_mul(mix) % window;
        schedule.entry(at).or_default().push(r);
    }
    let max_rounds = ((t.claim_window + t.draw_delay) / t.round_length + 2) as usize;
    let empty = Escrow {
        claimed: Vec::new(),
        ..world.escrow(&id)
    }
    .encoded_size();
    // Per round held: its number, a one-byte compact length, ≤ w numbers.
    let per_round = 8 + 1 + 4 * t.winners_per_round as usize;
    let max_bytes = empty + max_rounds * per_round;
    let mut most = 0;
    for (height, rounds) in schedule {
        for r in rounds {
            let issued = issue_round(id, r, t.tickets_per_round, true);
            world.claim_winners(&id, t, r, &issued, height).unwrap();
            let e = world.escrow(&id);
            let held = e.claimed.len();
            assert!(
                held <= max_rounds,
                "{held} rounds held at #{height}, bound {max_rounds}"
            );
            assert!(
                e.claimed
                    .iter()
                    .all(|c| t.claim_deadline(c.round).unwrap() >= height),
                "a closed round is still held at #{height}"
            );
            let size = e.encoded_size();
            assert!(
                size <= max_bytes,
                "escrow record is {size} bytes at #{height}, bound {max_bytes}"
            );
            most = most.max(held);
        }
    }
    // Every winner of every round was paid: the deposit is spent exactly.
    assert_eq!(world.escrow(&id).payment, 0);
    assert_eq!(world.supply(), world.genesis_supply);
    most
}

#[test]
fn replay_state_stays_bounded_over_thousands_of_rounds() {
    let t = EscrowTerms {
        round_length: 1,
        draw_delay: 2,
        claim_window: 5,
        ..terms(5, 2, 0, 2_999)
    };
    let most = run_rounds_checking_replay_state(&t, 7);
    // Windows overlap, so several rounds are held at once.
    assert!(most >= 2, "{most}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The replay-state bound holds for any schedule and claim timing.
    #[test]
    fn replay_state_is_bounded_by_the_terms_for_any_schedule(
        round_length in 1u32..5,
        draw_delay in 1u32..8,
        claim_window in 1u32..8,
        w in 1u32..4,
        rounds in 20u64..120,
        mix in any::<u64>(),
    ) {
        let t = EscrowTerms {
            round_length,
            draw_delay,
            claim_window,
            ..terms(w + 2, w, 0, rounds - 1)
        };
        run_rounds_checking_replay_state(&t, mix);
    }
}

// ---------------------------------------------------------------------------
// Reorgs
// ---------------------------------------------------------------------------

#[test]
fn replacing_the_draw_block_changes_the_winners() {
    let mut a = world();
    let t = terms(32, 4, 1, 1);
    let id = a.open_covered(t.clone(), 0, 0);
    let draw = t.draw_height(1).unwrap();
    let original: BTreeSet<u32> = a.winners_of(&id, &t, 1).into_iter().collect();
    let mut changed = 0;
    for i in 0u8..64 {
        let mut b = a.clone();
        b.history.insert(draw, Hash::of(&[i]));
        let redrawn: BTreeSet<u32> = b.winners_of(&id, &t, 1).into_iter().collect();
        if redrawn != original {
            changed += 1;
        }
    }
    // Two draws of 4 out of 32 coincide with probability 1/35960.
    assert!(
        changed >= 60,
        "only {changed} of 64 reorgs changed the winners"
    );
}

// ---------------------------------------------------------------------------
// Tampering helpers
// ---------------------------------------------------------------------------

fn flip(bytes: &mut [u8; 32], pos: usize, bit: u8) {
    bytes[pos % 32] ^= 1u8 << bit;
}

/// Changes field `field` (0..7, in declaration order) of `t`.
fn tamper(t: &mut Ticket, field: usize, pos: usize, bit: u8) {
    match field {
        0 => flip(&mut t.escrow.0, pos, bit),
        1 => t.round ^= 1u64 << (pos % 64),
        2 => t.number ^= 1u32 << (pos % 32),
        3 => flip(&mut t.cache.0, pos, bit),
        4 => flip(&mut t.client.0, pos, bit),
        5 => flip(&mut t.chunk.0, pos, bit),
        _ => flip(&mut t.secret_hash.0, pos, bit),
    }
}

// ---------------------------------------------------------------------------
// Golden vectors
//
// The encodings were written out by hand from the SCALE rules (fixed-width
// integers little-endian, 32-byte values raw, struct fields concatenated in
// declaration order, enums a one-byte index then the fields, Vec a compact
// length then the items). SHA-256 values were computed with Python's
// hashlib over those bytes with the domains of `microcash.rs`; ed25519
// values (the key(9) account, signatures) with Python's `cryptography`
// (RFC 8032, deterministic). A change here is a consensus change.
// ---------------------------------------------------------------------------

fn golden_ticket() -> Ticket {
    Ticket {
        escrow: Hash([0x11; 32]),
        round: 0x0102_0304_0506_0708,
        number: 0x0a0b_0c0d,
        cache: AccountId([0x22; 32]),
        client: AccountId([0x33; 32]),
        chunk: Hash([0x44; 32]),
        secret_hash: Hash([0x55; 32]),
    }
}

fn golden_terms() -> EscrowTerms {
    EscrowTerms {
        signer: AccountId([0x66; 32]),
        face_value: 1_000_000,
        tickets_per_round: 100,
        winners_per_round: 3,
        round_length: 10,
        first_round: 7,
        last_round: 256,
        draw_delay: 2,
        claim_window: 0x1234_5678,
    }
}

#[test]
fn ticket_encoding_is_stable() {
    let t = golden_ticket();
    let enc = t.encode();
    assert_eq!(enc.len(), 32 + 8 + 4 + 4 * 32);
    assert_eq!(hex::encode(&enc), GOLDEN_TICKET);
    assert_eq!(Ticket::decode(&mut &enc[..]).unwrap(), t);
}

#[test]
fn ticket_hash_is_sha256_of_the_domain_and_the_encoding() {
    assert_eq!(golden_ticket().hash().to_hex(), GOLDEN_TICKET_HASH);
}

#[test]
fn escrow_terms_encoding_is_stable() {
    let t = golden_terms();
    let enc = t.encode();
    assert_eq!(enc.len(), 32 + 16 + 4 * 3 + 8 * 2 + 4 * 2);
    assert_eq!(hex::encode(&enc), GOLDEN_TERMS);
    assert_eq!(EscrowTerms::decode(&mut &enc[..]).unwrap(), t);
}

#[test]
fn escrow_record_encoding_is_stable() {
    let e = Escrow {
        funder: AccountId([0xaa; 32]),
        terms: golden_terms(),
        payment: 5_000,
        penalty: 7,
        penalised: true,
        claimed: vec![RoundClaims {
            round: 9,
            numbers: vec![1, 7],
        }],
        closed: true,
    };
    let enc = e.encode();
    assert_eq!(hex::encode(&enc), GOLDEN_ESCROW);
    assert_eq!(Escrow::decode(&mut &enc[..]).unwrap(), e);
}

#[test]
fn batch_authentication_encoding_is_stable() {
    let auth = TicketAuth::Batch {
        signature: Signature([0x77; 64]),
        proof: BatchProof {
            index: 1,
            size: 3,
            path: vec![Hash([0x88; 32]), Hash([0x99; 32])],
        },
    };
    let enc = auth.encode();
    assert_eq!(hex::encode(&enc), GOLDEN_BATCH_AUTH);
    assert_eq!(TicketAuth::decode(&mut &enc[..]).unwrap(), auth);
}

#[test]
fn escrow_id_and_secret_commitment_are_stable() {
    assert_eq!(
        escrow_id(&Hash([0x11; 32]), &AccountId([0x66; 32]), 5).to_hex(),
        GOLDEN_ESCROW_ID
    );
    assert_eq!(
        secret_commitment(&[0x77; 32]).to_hex(),
        GOLDEN_SECRET_COMMITMENT
    );
}

#[test]
fn single_ticket_signature_is_stable() {
    assert_eq!(account(9).to_hex(), GOLDEN_KEY9_ACCOUNT);
    let st = sign_ticket(&key(9), golden_ticket());
    assert_eq!(hex::encode(st.encode()), GOLDEN_SIGNED_TICKET);
    assert!(st.verify(&account(9)).is_ok());
}

#[test]
fn batch_proofs_and_signature_follow_rfc_6962() {
    let tickets: Vec<Ticket> = (0..3)
        .map(|number| Ticket {
            number,
            ..golden_ticket()
        })
        .collect();
    let signed = sign_tickets_batch(&key(9), tickets);
    assert_eq!(signed.len(), 3);
    for (i, st) in signed.iter().enumerate() {
        let TicketAuth::Batch { signature, proof } = &st.auth else {
            panic!("a batch-signed ticket carries a batch proof");
        };
        assert_eq!(hex::encode(signature.0), GOLDEN_BATCH_SIGNATURE);
        assert_eq!(proof.index as usize, i);
        assert_eq!(proof.size, 3);
        let path: Vec<String> = proof.path.iter().map(|h| hex::encode(h.0)).collect();
        assert_eq!(path, GOLDEN_BATCH_PATHS[i]);
        assert_eq!(
            batch_root(&st.ticket.hash(), proof).unwrap().to_hex(),
            GOLDEN_BATCH_ROOT
        );
        assert!(st.verify(&account(9)).is_ok());
    }
}

const GOLDEN_TICKET: &str = "111111111111111111111111111111111111111111111111111111111111111108070605040302010d0c0b0a2222222222222222222222222222222222222222222222222222222222222222333333333333333333333333333333333333333333333333333333333333333344444444444444444444444444444444444444444444444444444444444444445555555555555555555555555555555555555555555555555555555555555555";
const GOLDEN_TICKET_HASH: &str =
    "0x8469583c10c0aee3e4b751095ec8ad92eb854aa2ce731cec190852fc1d15926b";
const GOLDEN_TERMS: &str = "666666666666666666666666666666666666666666666666666666666666666640420f0000000000000000000000000064000000030000000a000000070000000000000000010000000000000200000078563412";
const GOLDEN_ESCROW: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa666666666666666666666666666666666666666666666666666666666666666640420f0000000000000000000000000064000000030000000a00000007000000000000000001000000000000020000007856341288130000000000000000000000000000070000000000000000000000000000000104090000000000000008010000000700000001";
const GOLDEN_BATCH_AUTH: &str = "017777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777701000000030000000888888888888888888888888888888888888888888888888888888888888888889999999999999999999999999999999999999999999999999999999999999999";
const GOLDEN_ESCROW_ID: &str = "0xd58fe94ba4082714caeed7588dd0f66eb3bed798442fa05824ae922fb3b7f7d0";
const GOLDEN_SECRET_COMMITMENT: &str =
    "0x6470da5d93b746dbb9ab91b363e9877bbfd2b79491c069b605643d509baf4288";
const GOLDEN_KEY9_ACCOUNT: &str =
    "0xfd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f618";
const GOLDEN_SIGNED_TICKET: &str = "111111111111111111111111111111111111111111111111111111111111111108070605040302010d0c0b0a222222222222222222222222222222222222222222222222222222222222222233333333333333333333333333333333333333333333333333333333333333334444444444444444444444444444444444444444444444444444444444444444555555555555555555555555555555555555555555555555555555555555555500bd801bddaef50d2295d85761704304b7e5d3d2e4cb245f26f30445b9f5bbc076a14bef179d1811289bffc6c897c4fdcd6f05af9cadf5284ff2efa40310f90206";
const GOLDEN_BATCH_ROOT: &str =
    "0x18398454c93e4c89af6509fce875a5e82da3480d9914509a09312a024f34844c";
const GOLDEN_BATCH_SIGNATURE: &str = "6843f363c667ad2e658ac2a1fd50aa11dbf62cc04e060f8da6b25e4c1e2f95900f224b6f1196d75f216411762eae28da4f724a0401ebd24f8195aebd6f6e8e05";
const GOLDEN_BATCH_PATHS: [&[&str]; 3] = [
    &[
        "afec4a82c31da74c6734aa85e3d295625f19f4a4915585322e9f48c249874eec",
        "09df4ef926af59553806895285986298181a52e6b9fc97389109a310325a2233",
    ],
    &[
        "435232095c50c1f06dc23440ab9cdb484662965b5ba4e5a6329e2c475af7372b",
        "09df4ef926af59553806895285986298181a52e6b9fc97389109a310325a2233",
    ],
    &["b408d50534adb2967ce5ef4ac1caab853461f5fcfa9e33c41dd68b8fcf92fb63"],
];

// ---------------------------------------------------------------------------
// Claims pay their own fee
// ---------------------------------------------------------------------------

/// A cache with an empty account redeems a winner: the fee comes out of
/// the claim. A claim that fails (not a winner) costs the empty account
/// nothing and leaves its nonce unused.
#[test]
fn a_cache_with_an_empty_account_pays_its_claim_fee_out_of_the_claim() {
    let mut world = world();
    let t = terms(30, 3, 0, 0);
    let id = world.open_covered(t.clone(), 0, 0);
    let issued = issue_round(id, 0, 30, true);
    let draw = t.draw_height(0).unwrap();
    let won = world.winners_of(&id, &t, 0);
    let winner = won[0];
    let cache = cache_of(winner);
    world
        .state
        .accounts
        .insert(account(cache), Account::default());
    let supply = world.supply();
    let loser = (0..30u32)
        .find(|nr| cache_of(*nr) == cache && !won.contains(nr))
        .expect("each cache holds ten tickets and only three win");
    // A loser: refused, nothing charged, nonce unused.
    let err = world
        .submit(
            cache,
            claim(vec![item(issued[loser as usize].clone())]),
            draw + 1,
        )
        .unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::NotAWinner { .. })),
        "{err}"
    );
    assert_eq!(world.account(cache), Account::default());
    // The winner: paid β less the fee, from an empty account.
    world
        .submit(
            cache,
            claim(vec![item(issued[winner as usize].clone())]),
            draw + 1,
        )
        .expect("the claim pays its own fee");
    assert_eq!(
        world.balance(cache),
        t.face_value - world.params.minimum_fee
    );
    assert_eq!(world.account(cache).nonce, 1);
    assert_eq!(world.supply(), supply, "supply is conserved");
}

/// The safe penalty follows the rule of docs/microcash.md §9: with n =
/// 10,000, w = 10, β = 10 CCH, L = 60, d = 6, c = 720 and s = 50 %, the
/// rounds at risk are 12 + 1 + 1 and the penalty 2 × 14 × 100 CCH.
#[test]
fn the_safe_penalty_covers_every_round_in_flight_net_of_the_reporter_share() {
    let cch: Balance = 1_000_000_000_000;
    let t = EscrowTerms {
        face_value: 10 * cch,
        tickets_per_round: 10_000,
        winners_per_round: 10,
        round_length: 60,
        draw_delay: 6,
        claim_window: 720,
        ..terms(10_000, 10, 1, 100)
    };
    assert_eq!(t.safe_penalty(50).unwrap(), 2_800 * cch);
    assert_eq!(t.safe_penalty(0).unwrap(), 1_400 * cch);
    assert!(t.safe_penalty(100).is_err(), "a 100% share never deters");
}

// ---------------------------------------------------------------------------
// Replay across chains, escrows and rounds
// ---------------------------------------------------------------------------

/// A winning ticket is worth something only on the chain, in the escrow
/// and in the round it was issued for: the escrow id commits to the
/// genesis hash, and the ticket's signature covers its escrow and round, so
/// a cache (or anyone holding the ticket) cannot cash it again elsewhere.
#[test]
fn a_ticket_replayed_on_another_chain_escrow_or_round_is_refused() {
    // Every ticket wins every round, so the draw never refuses a moved
    // ticket: only the escrow id and the signature stand in the way.
    let t = terms(4, 4, 1, 2);
    let mut here = world();
    // Another network where the same funder opens the same escrow with the
    // same nonce: its escrow id differs, because the genesis does.
    let mut elsewhere = World::with(params(), 1);
    assert_ne!(here.hash_at(0), elsewhere.hash_at(0));
    let id = here.open_covered(t.clone(), 0, 0);
    let foreign_id = elsewhere.open_covered(t.clone(), 0, 0);
    assert_ne!(id, foreign_id);
    // A second escrow of the same funder and signer on this chain.
    let sibling = here.open_covered(t.clone(), 0, 0);
    assert_ne!(id, sibling);

    let issued = issue_round(id, 1, 4, false);
    let opens = t.draw_height(1).unwrap() + 1;
    let nr = here.winners_of(&id, &t, 1)[0];
    let winner = issued[nr as usize].clone();
    let owner = cache_of(nr);

    // On the other chain the escrow does not exist.
    elsewhere.ensure_history(opens + 1);
    let before = elsewhere.clone();
    let err = elsewhere
        .submit(owner, claim(vec![item(winner.clone())]), opens)
        .unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::UnknownEscrow(e)) if e == id),
        "{err}"
    );
    assert_eq!(elsewhere.state.accounts, before.state.accounts);
    assert_eq!(elsewhere.state.escrows, before.state.escrows);

    // Pointed at the sibling escrow, or at another round, the ticket no
    // longer carries the signer's signature, whatever the other escrow's
    // or round's draw says.
    let sibling_payment = here.escrow(&sibling).payment;
    for (label, moved) in [
        ("escrow", {
            let mut m = winner.clone();
            m.ticket.escrow = sibling;
            m
        }),
        ("round", {
            let mut m = winner.clone();
            m.ticket.round = 2;
            m
        }),
    ] {
        let err = here
            .submit(
                owner,
                claim(vec![TicketClaimItem {
                    preimage: item(winner.clone()).preimage,
                    ticket: moved,
                }]),
                t.draw_height(2).unwrap() + 1,
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                TxError::Microcash(MicrocashError::BadTicket(TicketError::BadSignature(_)))
            ),
            "moved to another {label}: {err}"
        );
    }
    assert_eq!(here.received(owner), 0);

    // Here, in its own round, it is paid once, from its own escrow only.
    here.submit(owner, claim(vec![item(winner.clone())]), opens)
        .unwrap();
    assert_eq!(here.received(owner), t.face_value);
    assert_eq!(here.escrow(&sibling).payment, sibling_payment);
    // After its round's claim window it is refused even if never claimed:
    // another winner of the same round, too late.
    let late = t.claim_deadline(1).unwrap() + 1;
    let other = here.winners_of(&id, &t, 1)[1];
    let err = here
        .submit(
            cache_of(other),
            claim(vec![item(issued[other as usize].clone())]),
            late,
        )
        .unwrap_err();
    assert!(
        matches!(err, TxError::Microcash(MicrocashError::WindowClosed { .. })),
        "{err}"
    );
    assert_eq!(here.supply(), here.genesis_supply);
}

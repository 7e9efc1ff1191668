//! The claimer against the in-memory chain of [`super::memory`].

use super::memory::*;
use crate::cdn::cache::settle::Settle;
use crate::cdn::ledger::Ledger;
use cachecash_runtime::Hash;
use cachecash_runtime::microcash as mc;

/// A rig in a temporary directory (kept alive by the returned guard).
fn rig(count: u32, n: u32, w: u32) -> (tempfile::TempDir, Rig) {
    let dir = tempfile::tempdir().unwrap();
    let r = super::memory::rig(dir.path(), count, n, w).unwrap();
    (dir, r)
}

fn settle_of(r: &Rig, number: u32) -> Option<Settle> {
    r.state
        .tickets
        .settlement(&(r.ledger.id, ROUND, number))
        .unwrap()
        .map(|r| r.settle)
}

fn winners_at(r: &Rig, seed: Hash) -> Vec<u32> {
    let t = &r.ledger.escrow.terms;
    mc::winners(
        &seed,
        &r.ledger.id,
        ROUND,
        t.tickets_per_round,
        t.winners_per_round,
    )
}

#[test]
fn nothing_happens_before_the_draw_block_is_mined() {
    let (_dir, mut r) = rig(4, 4, 2);
    r.ledger.mine_to(20);
    r.claimer.pass().unwrap();
    assert!((0..4).all(|n| settle_of(&r, n).is_none()));
}

#[test]
fn a_claim_dropped_by_a_reorganisation_is_resubmitted_and_lands() {
    let (_dir, mut r) = rig(4, 4, 2);
    r.ledger.mine_to(21);
    let won = winners_at(&r, block_hash(21, 0));
    r.claimer.pass().unwrap();
    let tx = match settle_of(&r, won[0]) {
        Some(Settle::Submitted { tx, .. }) => tx,
        other => panic!("expected a submitted claim, got {other:?}"),
    };
    r.ledger.mine(0); // block 22 holds the claim
    r.claimer.pass().unwrap();
    assert!(matches!(
        settle_of(&r, won[0]),
        Some(Settle::Claimed { number: 22, .. })
    ));
    // A heavier branch from block 22 drops it (and the pool forgot it).
    r.ledger.reorg(22, 1);
    r.claimer.pass().unwrap();
    assert_eq!(
        settle_of(&r, won[0]),
        Some(Settle::Submitted {
            draw: block_hash(21, 0),
            tx
        }),
        "resubmitted: the same transaction"
    );
    assert!(r.ledger.is_pending(&tx));
    r.ledger.mine(1);
    r.claimer.pass().unwrap();
    r.ledger.mine_to(30);
    r.claimer.pass().unwrap();
    for n in &won {
        assert!(
            matches!(settle_of(&r, *n), Some(Settle::Final { tx: t, .. }) if t == tx),
            "winner {n} final through the same claim"
        );
    }
    // Losers are lost; every ticket left the active set.
    for n in (0..4).filter(|n| !won.contains(n)) {
        assert!(matches!(settle_of(&r, n), Some(Settle::Lost { .. })));
    }
    assert!(r.state.tickets.active_groups().unwrap().is_empty());
}

#[test]
fn a_reorganisation_that_moves_the_draw_block_recomputes_the_winners() {
    let (_dir, mut r) = rig(8, 8, 1);
    r.ledger.mine_to(21);
    let first = winners_at(&r, block_hash(21, 0))[0];
    // Find a fork whose draw block makes another ticket the winner.
    let fork = (1..=255u8)
        .find(|f| winners_at(&r, block_hash(21, *f))[0] != first)
        .expect("some fork draws differently");
    let second = winners_at(&r, block_hash(21, fork))[0];
    r.claimer.pass().unwrap();
    assert!(matches!(
        settle_of(&r, first),
        Some(Settle::Submitted { .. })
    ));
    assert!(matches!(settle_of(&r, second), Some(Settle::Lost { .. })));
    r.ledger.reorg(21, fork);
    r.ledger.chain.lock().pool.clear();
    r.claimer.pass().unwrap();
    assert!(
        matches!(settle_of(&r, first), Some(Settle::Lost { draw }) if draw == block_hash(21, fork)),
        "the old winner lost the new draw"
    );
    assert!(
        matches!(settle_of(&r, second), Some(Settle::Submitted { draw, .. }) if draw == block_hash(21, fork)),
        "the new winner is claimed"
    );
}

#[test]
fn an_unclaimed_winner_expires_with_its_reason_when_the_window_closes() {
    let (_dir, mut r) = rig(2, 2, 2);
    r.claimer.config.max_fee_percent = 0;
    r.claimer.config.urgent_blocks = 0;
    // Fee 1 against β = 1000 at 0 %: held back until the last block,
    // where the window (21 + 20) has closed.
    r.ledger.mine_to(22);
    r.claimer.pass().unwrap();
    match settle_of(&r, 0) {
        Some(Settle::Won { waiting, .. }) => {
            assert!(waiting.contains("held back"), "{waiting}")
        }
        other => panic!("expected a held-back winner, got {other:?}"),
    }
    r.ledger.mine_to(41);
    r.claimer.pass().unwrap();
    match settle_of(&r, 0) {
        Some(Settle::Expired { reason }) => assert!(reason.contains("#41"), "{reason}"),
        other => panic!("expected an expired winner, got {other:?}"),
    }
    assert!(r.state.tickets.active_groups().unwrap().is_empty());
}

#[test]
fn a_round_of_tickets_settles_to_final_or_lost() {
    let (_dir, mut r) = rig(64, 64, 16);
    let report = settle_round(&mut r).unwrap();
    assert_eq!(report.tickets, 64);
    assert_eq!(report.winners, 16, "every winner final");
}

#[test]
fn a_reorganisation_deeper_than_the_follow_depth_redraws_and_reclaims_settled_tickets() {
    let (_dir, mut r) = rig(8, 8, 2);
    r.ledger.mine_to(21);
    r.claimer.pass().unwrap();
    r.ledger.mine_to(30); // the claim lands in block 22, final 6 deep
    r.claimer.pass().unwrap();
    let before = winners_at(&r, block_hash(21, 0));
    for n in 0..8 {
        let s = settle_of(&r, n);
        if before.contains(&n) {
            assert!(
                matches!(s, Some(Settle::Final { number: 22, .. })),
                "{n}: {s:?}"
            );
        } else {
            assert!(matches!(s, Some(Settle::Lost { .. })), "{n}: {s:?}");
        }
    }
    assert!(r.state.tickets.active_groups().unwrap().is_empty());
    // A heavier branch from block 21 on (a partition that outlasted the
    // depth): the draw block and the claim's block are both retracted. A
    // plain pass follows nothing any more; the rewind takes every ticket
    // back, the final ones and the lost ones alike.
    r.ledger.reorg(21, 1);
    assert_eq!(r.claimer.rewind(21).unwrap(), 8);
    let after = winners_at(&r, block_hash(21, 1));
    r.claimer.pass().unwrap();
    r.ledger.mine(1);
    r.claimer.pass().unwrap();
    r.ledger.mine_to(40);
    r.claimer.pass().unwrap();
    for n in 0..8 {
        let s = settle_of(&r, n);
        if after.contains(&n) {
            assert!(
                matches!(&s, Some(Settle::Final { number, .. }) if *number > 31),
                "winner {n} of the new draw is claimed on the new branch: {s:?}"
            );
        } else {
            assert_eq!(
                s,
                Some(Settle::Lost {
                    draw: block_hash(21, 1)
                }),
                "{n}"
            );
        }
    }
    assert!(r.state.tickets.active_groups().unwrap().is_empty());
    // A rewind after a shallow change finds nothing to take back.
    assert_eq!(r.claimer.rewind(35).unwrap(), 0);
}

#[test]
fn the_pending_gauge_counts_winners_until_their_claims_are_final() {
    let (_dir, mut r) = rig(4, 4, 2);
    let pending = |r: &Rig| r.state.counters.tickets_pending.get();
    r.ledger.mine_to(20);
    r.claimer.pass().unwrap();
    assert_eq!(pending(&r), 0, "nothing is drawn yet");
    r.ledger.mine_to(21);
    r.claimer.pass().unwrap();
    assert_eq!(pending(&r), 2, "both winners, their claim just submitted");
    r.ledger.mine(0);
    r.claimer.pass().unwrap();
    assert_eq!(pending(&r), 2, "the claim landed, not yet final");
    r.ledger.mine_to(30);
    r.claimer.pass().unwrap();
    assert!(r.state.tickets.active_groups().unwrap().is_empty());
    assert_eq!(pending(&r), 0, "every winner final, every loser lost");
}

//! Property tests of the ledger rules.

// Test closures return the runtime's own error type unchanged.
#![allow(clippy::result_large_err)]

mod common;

use cachecash_runtime::builder::{TemplateInput, build_template};
use cachecash_runtime::commitment::{MemoryTree, TreeState};
use cachecash_runtime::execution::{apply_transaction, execute_block};
use cachecash_runtime::state::{BlockEnv, GenesisOnly, Overlay, StateReader, total_balance};
use cachecash_runtime::transaction::SignedTransaction;
use cachecash_runtime::verify::{ChainContext, UncheckedBlock, check_header_context};
use cachecash_runtime::{Call, Transaction, TxError};
use common::*;
use parity_scale_codec::Encode;
use proptest::prelude::*;

fn env(number: u64) -> BlockEnv<'static> {
    BlockEnv {
        number,
        history: &GenesisOnly,
    }
}

fn transfer(
    from: u8,
    to: u8,
    nonce: u64,
    amount: u128,
    fee: u128,
    genesis: &cachecash_runtime::Hash,
) -> SignedTransaction {
    Transaction {
        signer: account(from),
        nonce,
        fee,
        call: Call::Transfer {
            dest: account(to),
            amount,
        },
    }
    .sign(&key(from), genesis)
}

fn all_accounts(tree: &MemoryTree, version: u64) -> Vec<cachecash_runtime::Account> {
    let state = TreeState::new(tree, version);
    (0u8..8)
        .filter_map(|i| state.account(&account(i)).unwrap())
        .chain(state.account(&account(200)).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Total supply = genesis + reward × blocks, whatever transfers (valid or not) are attempted.
    #[test]
    fn supply_is_conserved_across_blocks(
        ops in prop::collection::vec((0u8..6, 0u8..6, 0u128..5_000, 1u128..50), 1..40),
        per_block in 1usize..10,
    ) {
        let p = params();
        let (g, mut tree) = genesis_with(&p, &[(0, 10_000), (1, 10_000), (2, 10_000), (3, 1), (4, 0), (5, u128::MAX / 8)]);
        let genesis_total = total_balance(all_accounts(&tree, 0).iter()).unwrap();
        let mut nonces = [0u64; 8];
        let mut parent = g.block.header.clone();
        let mut blocks = 0u128;
        for chunk in ops.chunks(per_block) {
            let txs: Vec<_> = chunk.iter().map(|(f, t, a, fee)| {
                let tx = transfer(*f, *t, nonces[*f as usize], *a, *fee, &g.hash);
                nonces[*f as usize] += 1;
                tx
            }).collect();
            let template = build_template(&tree, &GenesisOnly, TemplateInput {
                parent: parent.clone(), timestamp: parent.timestamp + 1000, target: p.initial_target, miner: account(200),
            }, txs, &p).unwrap();
            tree.apply(&template.update.batch);
            parent = template.block.header.clone();
            blocks += 1;
            // Rejected transactions consume no nonce: continue from the state.
            let state = TreeState::new(&tree, parent.number);
            for i in 0..6u8 {
                nonces[i as usize] = state.account(&account(i)).unwrap().unwrap_or_default().nonce;
            }
        }
        let total = total_balance(all_accounts(&tree, parent.number).iter()).unwrap();
        prop_assert_eq!(total, genesis_total + blocks * p.block_reward);
    }

    /// Extreme amounts and fees never panic and never overflow silently.
    #[test]
    fn extreme_amounts_never_panic(amount in prop_oneof![Just(u128::MAX), Just(u128::MAX - 1), any::<u128>()],
                                   fee in prop_oneof![Just(u128::MAX), Just(1u128), any::<u128>()],
                                   to_self in any::<bool>()) {
        let p = params();
        let (g, tree) = genesis_with(&p, &[(0, u128::MAX - 10), (1, 10)]);
        let state = TreeState::new(&tree, 0);
        let mut overlay = Overlay::new(&state);
        let to = if to_self { 0 } else { 1 };
        let t = transfer(0, to, 0, amount, fee, &g.hash);
        let before = total_balance([overlay.get(&account(0)).unwrap(), overlay.get(&account(1)).unwrap()].iter());
        match apply_transaction(&mut overlay, &t.tx, &p) {
            Ok(f) => {
                prop_assert_eq!(f, fee);
                let after = total_balance([overlay.get(&account(0)).unwrap(), overlay.get(&account(1)).unwrap()].iter());
                prop_assert_eq!(after.unwrap() + fee, before.unwrap());
            }
            Err(TxError::InsufficientBalance { .. }) | Err(TxError::Overflow(_)) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    /// A nonce other than the next one is rejected, whether replayed or skipped.
    #[test]
    fn replayed_or_skipped_nonces_are_rejected(n in 0u64..5, offset in prop_oneof![Just(-1i64), 1i64..100]) {
        let p = params();
        let (g, tree) = genesis_with(&p, &[(0, 1_000_000)]);
        let state = TreeState::new(&tree, 0);
        let mut overlay = Overlay::new(&state);
        for i in 0..n {
            apply_transaction(&mut overlay, &transfer(0, 1, i, 1, 1, &g.hash).tx, &p).unwrap();
        }
        let bad = (n as i64 + offset).max(0) as u64;
        prop_assume!(bad != n);
        let r = apply_transaction(&mut overlay, &transfer(0, 1, bad, 1, 1, &g.hash).tx, &p);
        if bad < n {
            prop_assert!(matches!(r, Err(TxError::StaleNonce { .. })), "got {:?}", r);
        } else {
            prop_assert!(matches!(r, Err(TxError::FutureNonce { .. })), "got {:?}", r);
        }
    }

    /// Flipping any single byte of a signed transaction makes it undecodable or invalid.
    #[test]
    fn any_flipped_byte_is_rejected(pos in 0usize..512, bit in 0u8..8) {
        let p = params();
        let (g, tree) = genesis_with(&p, &[(0, 1_000_000)]);
        let t = transfer(0, 1, 0, 100, 5, &g.hash);
        let mut bytes = t.encode();
        let pos = pos % bytes.len();
        bytes[pos] ^= 1 << bit;
        let state = TreeState::new(&tree, 0);
        let verdict = SignedTransaction::decode_bounded(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|t2| t2.verify_signature(&g.hash).map_err(|e| e.to_string()).map(|_| t2))
            .and_then(|t2| cachecash_runtime::execution::check_transaction(&state, &t2.tx, &p, env(1)).map_err(|e| e.to_string()));
        prop_assert!(verdict.is_err());
    }
}

#[test]
fn a_transaction_signed_for_another_chain_is_rejected() {
    let p = params();
    let (g, _) = genesis_with(&p, &[(0, 1_000)]);
    let other = cachecash_runtime::Hash([7; 32]);
    let t = transfer(0, 1, 0, 1, 1, &other);
    assert!(matches!(
        t.verify_signature(&g.hash),
        Err(TxError::BadSignature { .. })
    ));
}

#[test]
fn a_fee_below_the_minimum_is_rejected() {
    let mut p = params();
    p.minimum_fee = 10;
    let (g, tree) = genesis_with(&p, &[(0, 1_000)]);
    let state = TreeState::new(&tree, 0);
    let r = cachecash_runtime::execution::check_transaction(
        &state,
        &transfer(0, 1, 0, 1, 9, &g.hash).tx,
        &p,
        env(1),
    );
    assert!(matches!(
        r,
        Err(TxError::FeeTooLow {
            fee: 9,
            minimum: 10
        })
    ));
}

#[test]
fn a_block_through_every_stage_matches_direct_execution() {
    let p = params();
    let (g, tree) = genesis_with(&p, &[(0, 1_000), (1, 1_000)]);
    let txs = vec![
        transfer(0, 1, 0, 10, 2, &g.hash),
        transfer(1, 0, 0, 5, 3, &g.hash),
    ];
    let template = build_template(
        &tree,
        &GenesisOnly,
        TemplateInput {
            parent: g.block.header.clone(),
            timestamp: 3_000,
            target: p.initial_target,
            miner: account(9),
        },
        txs.clone(),
        &p,
    )
    .unwrap();
    let ctx = ChainContext {
        parent: g.block.header.clone(),
        median_time_past: 1_000,
        expected_target: p.initial_target,
        now: 3_000,
    };
    let executed = UncheckedBlock::new(template.block.clone(), &p)
        .unwrap()
        .check_stateless(&g.hash, &p)
        .unwrap()
        .check_stateful(&ctx, &tree, &GenesisOnly, &p)
        .unwrap();
    let direct = execute_block(&TreeState::new(&tree, 0), &account(9), &txs, &p, env(1)).unwrap();
    assert_eq!(executed.changes, direct.changes);
    assert_eq!(executed.fees, 5);
    assert_eq!(direct.changes.accounts[&account(9)].balance, 55);
}

#[test]
fn stateful_checks_reject_bad_time_target_root_and_parent() {
    let p = params();
    let (g, tree) = genesis_with(&p, &[(0, 1_000)]);
    let template = build_template(
        &tree,
        &GenesisOnly,
        TemplateInput {
            parent: g.block.header.clone(),
            timestamp: 3_000,
            target: p.initial_target,
            miner: account(9),
        },
        vec![],
        &p,
    )
    .unwrap();
    let ctx = ChainContext {
        parent: g.block.header.clone(),
        median_time_past: 1_000,
        expected_target: p.initial_target,
        now: 3_000,
    };
    let check = |b: cachecash_runtime::Block, ctx: &ChainContext| {
        UncheckedBlock::new(b, &p)
            .unwrap()
            .check_stateless(&g.hash, &p)
            .and_then(|s| s.check_stateful(ctx, &tree, &GenesisOnly, &p))
    };
    let mut old = ctx.clone();
    old.median_time_past = 3_000;
    assert!(matches!(
        check(template.block.clone(), &old),
        Err(cachecash_runtime::BlockError::TimestampTooOld { .. })
    ));
    // A validator whose clock is more than the allowed drift behind the
    // block's timestamp (3,000 ms) refuses it.
    let mut strict = p.clone();
    strict.max_future_drift_ms = 1_000;
    let mut early_clock = ctx.clone();
    early_clock.now = 3_000 - strict.max_future_drift_ms - 1;
    assert!(matches!(
        check_header_context(&template.block.header, &early_clock, &strict),
        Err(cachecash_runtime::BlockError::TimestampInFuture { .. })
    ));
    // Within the drift, the same clock accepts the header.
    early_clock.now = 3_000 - strict.max_future_drift_ms;
    assert!(check_header_context(&template.block.header, &early_clock, &strict).is_ok());
    let mut bad_root = template.block.clone();
    bad_root.header.state_root = cachecash_runtime::Hash([1; 32]);
    assert!(matches!(
        check(bad_root, &ctx),
        Err(cachecash_runtime::BlockError::StateRootMismatch { .. })
    ));
    let mut wrong_parent = template.block.clone();
    wrong_parent.header.parent_hash = cachecash_runtime::Hash([2; 32]);
    assert!(matches!(
        check(wrong_parent, &ctx),
        Err(cachecash_runtime::BlockError::WrongParent { .. })
    ));
    let mut easier = ctx.clone();
    easier.expected_target = cachecash_runtime::Target([0x0f; 32]);
    assert!(matches!(
        check(template.block.clone(), &easier),
        Err(cachecash_runtime::BlockError::WrongTarget { .. })
    ));
    assert!(check(template.block, &ctx).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the order of opens and closes, the funder index committed
    /// to the state tree lists exactly the open escrows of each funder,
    /// every escrow's slot points back at it, and one open or close writes
    /// at most five index entries however many escrows the funder holds.
    #[test]
    fn the_funder_index_lists_exactly_the_open_escrows_at_constant_cost(
        ops in prop::collection::vec((any::<bool>(), 0u8..2, any::<prop::sample::Index>()), 1..80),
    ) {
        use cachecash_runtime::commitment::compute_state_update;
        use cachecash_runtime::state::funder_escrows_page;
        use std::collections::BTreeSet;
        let mut tree = MemoryTree::new();
        let funders = [account(1), account(2)];
        let mut open: [BTreeSet<cachecash_runtime::Hash>; 2] = Default::default();
        let mut next_id = 0u32;
        for (version, (opening, f, pick)) in (0u64..).zip(ops) {
            let who = usize::from(f);
            let funder = funders[who];
            let state = (version > 0).then(|| TreeState::new(&tree, version - 1));
            let empty = cachecash_runtime::state::MemoryState::default();
            let base: &dyn StateReader = match &state { Some(s) => s, None => &empty };
            let mut overlay = Overlay::new(base);
            if opening || open[who].is_empty() {
                next_id += 1;
                let id = cachecash_runtime::Hash::of(&next_id.to_le_bytes());
                overlay.index_escrow(funder, id).unwrap();
                open[who].insert(id);
            } else {
                let id = **pick.get(&open[who].iter().collect::<Vec<_>>());
                overlay.unindex_escrow(funder, id).unwrap();
                open[who].remove(&id);
            }
            let changes = overlay.into_changes();
            let written = changes.funder_counts.len() + changes.funder_slots.len() + changes.escrow_slots.len();
            prop_assert!(written <= 5, "{written} index entries written");
            let update = compute_state_update(&tree, &changes, version).unwrap();
            tree.apply(&update.batch);
            let state = TreeState::new(&tree, version);
            for (i, funder) in funders.iter().enumerate() {
                let listed = funder_escrows_page(&state, funder, 0, u64::MAX).unwrap();
                prop_assert_eq!(listed.len(), open[i].len());
                prop_assert_eq!(listed.iter().copied().collect::<BTreeSet<_>>(), open[i].clone());
                for (slot, id) in listed.iter().enumerate() {
                    prop_assert_eq!(state.escrow_slot(id).unwrap(), Some(slot as u64));
                }
                // Pages cover the list without gaps or repeats.
                let mut paged = Vec::new();
                let mut start = 0;
                loop {
                    let page = funder_escrows_page(&state, funder, start, 3).unwrap();
                    start += page.len() as u64;
                    let last = page.len() < 3;
                    paged.extend(page);
                    if last { break; }
                }
                prop_assert_eq!(&paged, &listed);
            }
        }
    }
}

#[test]
fn closing_an_escrow_missing_from_the_index_is_a_backend_error_not_a_panic() {
    let state = cachecash_runtime::state::MemoryState::default();
    let mut overlay = Overlay::new(&state);
    let err = overlay
        .unindex_escrow(account(1), cachecash_runtime::Hash::of(b"never opened"))
        .unwrap_err();
    assert!(err.to_string().contains("has no slot"), "{err}");
}

//! Settlement end to end: caches redeem their winning tickets with no
//! operator action, every ticket reaches a stated end, and the books
//! balance against the chain.

use cachecash_node::cdn::cache::CacheState;
use cachecash_node::cdn::cache::claimer::ClaimerConfig;
use cachecash_node::cdn::cache::settle::Settle;
use cachecash_node::cdn::ledger::{ChainLedger, Ledger};
use cachecash_node::cdn::publisher::escrow::EscrowPlan;
use cachecash_node::cdn::publisher::origin::Origin;
use cachecash_runtime::{AccountId, Balance};
use cachecash_tests::cdn::*;
use cachecash_tests::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Short rounds (2 s at 100 ms blocks) with half of the tickets
/// winning, so a few fetches produce winners in several rounds.
fn settlement_plan() -> EscrowPlan {
    EscrowPlan {
        face_value: UNIT,
        tickets_per_round: 64,
        winners_per_round: 32,
        round_length: 20,
        rounds: 40,
        draw_delay: 2,
        claim_window: 40,
        // Safe for these terms (caches require it): 32·β·(2 + 1 + 1)/(1 − ½).
        penalty: 256 * UNIT,
        fee: 1_000_000,
        top_up_rounds: 0,
        budget: 0,
        rotate_rounds: 0,
    }
}

/// Settlement per cache, read from its own records: (final tickets, their
/// face value, fees of landed claims, expired tickets with reasons).
fn books(state: &CacheState, ledger: &dyn Ledger) -> (u64, Balance, Balance, Vec<String>) {
    let mut finals = 0;
    let mut value: Balance = 0;
    let mut expired = Vec::new();
    for (_, _, _, r) in state.tickets.page(None, 100_000).unwrap() {
        match r.map(|r| (r.settle, r.face_value)) {
            Some((Settle::Final { .. }, v)) => {
                finals += 1;
                value += v;
            }
            Some((Settle::Expired { reason }, _)) => expired.push(reason),
            _ => {}
        }
    }
    let fees = state
        .tickets
        .claims()
        .unwrap()
        .iter()
        .filter(|c| ledger.transaction_block(&c.tx.hash()).unwrap().is_some())
        .map(|c| c.tx.tx.fee)
        .sum();
    (finals, value, fees, expired)
}

/// Whether every ticket of the cache has reached an end: no ticket left to
/// follow, and every held L1 drawn.
fn settled(state: &CacheState) -> bool {
    state.tickets.active_groups().unwrap().is_empty()
        && state
            .tickets
            .page(None, 100_000)
            .unwrap()
            .iter()
            .all(|(_, _, _, r)| r.is_some())
}

async fn fetch_over_rounds(net: &Net, objects: usize, round_length: u64) {
    for i in 0..objects {
        let (out, _) = net
            .fetch(&format!("/obj{i}"), None)
            .await
            .expect("fetch succeeds");
        assert_eq!(out.len(), 2 << 20);
        // Next fetch in a later round.
        let next = (net.chain.chain().head().header.number / round_length + 1) * round_length;
        wait_for_height(&net.chain, next, DEADLINE).await;
    }
}

fn directory_origin(dir: &std::path::Path, objects: usize) -> Origin {
    let origin = dir.join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    for i in 0..objects {
        std::fs::write(origin.join(format!("obj{i}")), random_bytes(2 << 20)).unwrap();
    }
    Origin::Dir(origin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn caches_are_paid_exactly_their_winners_less_fees_and_every_ticket_ends_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = directory_origin(tmp.path(), 3);
    let plan = settlement_plan();
    let net = setup_with(origin, 5, plan.clone(), ClaimerConfig::default()).await;
    let escrow = net.state().escrow().unwrap().id;
    let ledger = ChainLedger::new(net.chain.chain().clone(), net.chain.pool().clone());
    let before = ledger.escrow(&escrow).unwrap().unwrap().payment;
    fetch_over_rounds(&net, 3, u64::from(plan.round_length)).await;

    let caches: Vec<Arc<CacheState>> = net.caches.iter().map(|(_, s, _)| s.clone()).collect();
    wait_until("every ticket settled at every cache", DEADLINE, || {
        caches.iter().all(|s| settled(s))
    })
    .await;

    let mut paid_total: Balance = 0;
    let mut winners_total = 0;
    let mut rounds = std::collections::BTreeSet::new();
    for (node, s, _) in &net.caches {
        // Balances as the cache node itself sees them (it is synced).
        let me = AccountId(
            node.network()
                .unwrap()
                .signing_key()
                .verifying_key()
                .to_bytes(),
        );
        let (finals, value, fees, expired) = books(s, &ledger);
        assert!(
            expired.is_empty(),
            "no winner expires when every secret is relayed: {expired:?}"
        );
        assert_eq!(value, Balance::from(finals as u32) * plan.face_value);
        assert_eq!(
            ledger.balance(&me).unwrap(),
            value - fees,
            "the cache's balance is its winners × β less its claim fees"
        );
        // Every winner the chain's draw names among its tickets was paid.
        let mut chain_winners = 0;
        for (_, slot, t, _) in s.tickets.page(None, 100_000).unwrap() {
            if t.is_none() {
                continue;
            }
            rounds.insert(slot.1);
            let draw = plan_draw(&ledger, &slot.0, slot.1);
            if draw.binary_search(&slot.2).is_ok() {
                chain_winners += 1;
            }
        }
        assert_eq!(
            chain_winners, finals,
            "every winning ticket is claimed and final"
        );
        winners_total += finals;
        paid_total += value;
        // The RPC books balance against the chain.
        let rec = rpc(node.rpc_addr().unwrap(), "cache_reconcile", vec![])
            .await
            .unwrap();
        assert_eq!(rec["balanced"], true, "reconciliation: {rec}");
        // The operator's "claim now" runs a pass at once: nothing is left
        // to send.
        let pass = rpc(node.rpc_addr().unwrap(), "cache_claimNow", vec![])
            .await
            .unwrap();
        assert_eq!(pass["sent"], 0, "{pass}");
        assert!(
            pass["updated"].is_u64() && pass["heldBack"].is_u64(),
            "{pass}"
        );
        let earnings = rpc(node.rpc_addr().unwrap(), "cache_earnings", vec![])
            .await
            .unwrap();
        assert_eq!(
            earnings["net"].as_str().unwrap(),
            (value - fees).to_string(),
            "{earnings}"
        );
    }
    assert!(winners_total > 0, "some tickets won");
    assert!(rounds.len() >= 2, "tickets of several rounds: {rounds:?}");
    let after = ledger.escrow(&escrow).unwrap().unwrap().payment;
    assert_eq!(
        before - after,
        paid_total,
        "the escrow's payment deposit fell by exactly what was paid"
    );
    // The publisher's view of its escrow.
    let escrows = rpc(
        net.publisher.as_ref().unwrap().rpc_addr().unwrap(),
        "publisher_escrows",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(escrows[0]["escrow"], escrow.to_string(), "{escrows}");
    assert_eq!(escrows[0]["payment"], after.to_string());
    net.stop().await;
}

/// The winners of `round`, sorted, from the canonical draw block.
fn plan_draw(ledger: &ChainLedger, escrow: &cachecash_runtime::Hash, round: u64) -> Vec<u32> {
    let e = ledger.escrow(escrow).unwrap().unwrap();
    let seed = ledger
        .canonical_hash(e.terms.draw_height(round).unwrap())
        .unwrap()
        .unwrap();
    let mut w = cachecash_runtime::microcash::winners(
        &seed,
        escrow,
        round,
        e.terms.tickets_per_round,
        e.terms.winners_per_round,
    );
    w.sort_unstable();
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_not_worth_its_fee_waits_with_a_reason_and_is_sent_before_its_window_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = directory_origin(tmp.path(), 1);
    let plan = settlement_plan();
    // No fee is cheap enough: every claim waits until the last 10 blocks of
    // its window, and is sent then because it still pays.
    let claimer = ClaimerConfig {
        max_fee_percent: 0,
        urgent_blocks: 10,
        ..ClaimerConfig::default()
    };
    let net = setup_with(origin, 5, plan.clone(), claimer).await;
    fetch_over_rounds(&net, 1, u64::from(plan.round_length)).await;
    let caches: Vec<Arc<CacheState>> = net.caches.iter().map(|(_, s, _)| s.clone()).collect();
    // A winner is seen held back, with its reason, over RPC.
    let mut reasons = HashMap::new();
    let end = tokio::time::Instant::now() + DEADLINE;
    'wait: loop {
        for (node, _, _) in &net.caches {
            let page = rpc(
                node.rpc_addr().unwrap(),
                "cache_tickets",
                vec!["won".into(), serde_json::Value::Null, 10.into()],
            )
            .await
            .unwrap();
            for t in page["tickets"].as_array().unwrap() {
                if let Some(r) = t["reason"].as_str()
                    && r.contains("held back")
                {
                    reasons.insert(t["number"].to_string(), r.to_string());
                    break 'wait;
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < end,
            "no winner was held back by its fee"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reasons.values().all(|r| r.contains("more than 0%")),
        "{reasons:?}"
    );
    wait_until("every ticket settled at every cache", DEADLINE, || {
        caches.iter().all(|s| settled(s))
    })
    .await;
    let ledger = ChainLedger::new(net.chain.chain().clone(), net.chain.pool().clone());
    let mut finals = 0;
    for s in &caches {
        let (f, _, _, expired) = books(s, &ledger);
        assert!(
            expired.is_empty(),
            "held-back claims are still sent in time: {expired:?}"
        );
        finals += f;
    }
    assert!(finals > 0, "the held-back winners were paid");
    net.stop().await;
}

/// Whether any ticket of the cache has a claim in flight or landed.
fn claiming(state: &CacheState) -> bool {
    state
        .tickets
        .page(None, 100_000)
        .unwrap()
        .iter()
        .any(|(_, _, _, r)| {
            matches!(
                r.as_ref().map(|r| &r.settle),
                Some(Settle::Submitted { .. } | Settle::Claimed { .. })
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cache_stopped_while_claiming_resumes_without_a_double_or_a_lost_claim() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = directory_origin(tmp.path(), 1);
    // A claim window (40 s at the test's block time) that outlasts a stop
    // and restart on a loaded machine: with the default 4 s window a slow
    // restart found its winners expired, which is right but not the point.
    let plan = EscrowPlan {
        claim_window: 400,
        penalty: 32 * 22 * 2 * UNIT,
        ..settlement_plan()
    };
    let mut net = setup_with(origin, 5, plan.clone(), ClaimerConfig::default()).await;
    fetch_over_rounds(&net, 1, u64::from(plan.round_length)).await;
    // The cache with the most winners is stopped as soon as a claim of it
    // is in flight (or, if that moment is missed, just after one landed).
    let ledger = ChainLedger::new(net.chain.chain().clone(), net.chain.pool().clone());
    let escrow = net.state().escrow().unwrap().id;
    let winners_of = |s: &CacheState| {
        s.tickets
            .page(None, 100_000)
            .unwrap()
            .iter()
            .filter(|(_, slot, t, _)| {
                t.is_some() && {
                    let e = ledger.escrow(&escrow).unwrap().unwrap();
                    let draw = e.terms.draw_height(slot.1).unwrap();
                    ledger.canonical_hash(draw).unwrap().is_some()
                        && plan_draw(&ledger, &slot.0, slot.1)
                            .binary_search(&slot.2)
                            .is_ok()
                }
            })
            .count() as u64
    };
    let states: Vec<Arc<CacheState>> = net.caches.iter().map(|(_, s, _)| s.clone()).collect();
    wait_until("a claim in flight", DEADLINE, || {
        states.iter().any(|s| claiming(s))
    })
    .await;
    let victim = states.iter().position(|s| claiming(s)).unwrap();
    drop(states);
    let (node, old, base) = net.caches.remove(victim);
    node.stop().await;
    wait_until("the stopped cache released its database", DEADLINE, || {
        Arc::strong_count(&old) == 1
    })
    .await;
    drop(old);
    let boot = vec![p2p_addr(&net.chain)];
    let mut config = cachecash_node::cdn::cache::CacheConfig::new(base.join("cache"), 1 << 30);
    config.claimer = ClaimerConfig::default();
    let (node, state) = start_cache_with(&net.spec, &base, boot, config, None).await;
    wait_until("the restarted cache settled every ticket", DEADLINE, || {
        settled(&state)
    })
    .await;
    let (finals, value, fees, expired) = books(&state, &ledger);
    assert!(expired.is_empty(), "{expired:?}");
    assert_eq!(finals, winners_of(&state), "no winner lost");
    let me = AccountId(
        node.network()
            .unwrap()
            .signing_key()
            .verifying_key()
            .to_bytes(),
    );
    assert_eq!(
        ledger.balance(&me).unwrap(),
        value - fees,
        "paid once per winner, fees once per claim that landed"
    );
    // No ticket is in two claims that landed.
    let mut seen = std::collections::HashSet::new();
    for c in state.tickets.claims().unwrap() {
        if ledger.transaction_block(&c.tx.hash()).unwrap().is_some() {
            for slot in c.slots {
                assert!(seen.insert(slot), "{slot:?} claimed twice");
            }
        }
    }
    net.caches.insert(victim, (node, state, base));
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_publisher_tops_up_its_escrow_before_it_runs_out_within_its_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = directory_origin(tmp.path(), 1);
    // Three rounds at a time, nine at most: two top-ups, then the budget
    // stops them.
    let plan = EscrowPlan {
        rounds: 3,
        top_up_rounds: 3,
        budget: 9 * 32 * UNIT,
        ..settlement_plan()
    };
    let net = setup_with(origin, 5, plan.clone(), ClaimerConfig::default()).await;
    let id = net.state().escrow().unwrap().id;
    let chain = net.chain.chain().clone();
    let terms = move || chain.escrow(&id, None).unwrap().0.unwrap().terms;
    let first = terms();
    assert_eq!(first.last_round - first.first_round + 1, 3);
    let original_end = first.draw_height(first.last_round).unwrap();
    let t = terms.clone();
    wait_until("two top-ups landed", DEADLINE, || {
        t().last_round == first.last_round + 6
    })
    .await;
    let topped = terms();
    // The publisher issues from the new rounds: a fetch after the original
    // rounds were all drawn succeeds.
    wait_for_height(&net.chain, original_end + 1, DEADLINE).await;
    let (out, _) = net
        .fetch("/obj0", None)
        .await
        .expect("fetch in a topped-up round");
    assert_eq!(out.len(), 2 << 20);
    let publisher = net.state().escrow().unwrap();
    wait_until("the publisher sees the new rounds", DEADLINE, || {
        publisher.terms().last_round == topped.last_round
    })
    .await;
    // With fewer than three rounds left again, the budget allows no more.
    let low = topped.draw_height(topped.last_round - 2).unwrap();
    wait_for_height(&net.chain, low + 10, DEADLINE).await;
    assert_eq!(
        terms().last_round,
        topped.last_round,
        "the budget stops top-ups"
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publisher_that_signs_one_number_twice_forfeits_its_penalty_to_the_cache_that_proves_it()
{
    let tmp = tempfile::tempdir().unwrap();
    let origin = directory_origin(tmp.path(), 1);
    let plan = settlement_plan();
    let net = setup_with(origin, 5, plan.clone(), ClaimerConfig::default()).await;
    let (out, _) = net.fetch("/obj0", None).await.expect("fetch succeeds");
    assert_eq!(out.len(), 2 << 20);
    // A ticket cache 0 holds, and a second ticket with the same escrow,
    // round and number for another chunk, signed by the publisher (the
    // escrow's ticket signer is its node key): the double issue.
    let (node, state, _) = &net.caches[0];
    let (_, _, held, _) = state
        .tickets
        .page(None, 1)
        .unwrap()
        .pop()
        .expect("cache 0 holds a ticket");
    let first = held.unwrap().l1.unwrap();
    let mut twin = first.ticket.clone();
    twin.chunk = cachecash_runtime::Hash([0xdd; 32]);
    let publisher_key = net
        .publisher
        .as_ref()
        .unwrap()
        .network()
        .unwrap()
        .signing_key();
    let second = cachecash_runtime::microcash::sign_ticket(&publisher_key, twin);
    let ledger = ChainLedger::new(node.chain().clone(), node.pool().clone());
    let escrow = first.ticket.escrow;
    let penalty = ledger.escrow(&escrow).unwrap().unwrap().penalty;
    let me = first.ticket.cache;
    let before = ledger.balance(&me).unwrap();
    let key = node.network().unwrap().signing_key();
    let tx = cachecash_node::cdn::cache::settle::report_duplicate(state, &ledger, &key, &second)
        .expect("the proof is submitted");
    assert!(
        cachecash_node::cdn::cache::settle::report_duplicate(state, &ledger, &key, &second)
            .is_none(),
        "once per escrow"
    );
    let chain = net.chain.chain().clone();
    wait_until("the penalty is forfeited", DEADLINE, || {
        chain
            .escrow(&escrow, None)
            .unwrap()
            .0
            .is_some_and(|e| e.penalised && e.penalty == 0)
    })
    .await;
    let chain_ledger = ChainLedger::new(net.chain.chain().clone(), net.chain.pool().clone());
    assert!(chain_ledger.transaction_block(&tx).unwrap().is_some());
    let share =
        penalty * u128::from(net.chain.chain().params().duplicate_reporter_share_percent) / 100;
    assert!(share > 0);
    let proof_fee = net.chain.chain().params().minimum_fee;
    // Exactly: the reporter's share less the proof's fee, plus what the
    // cache's claims paid (the escrow still pays winners; only the penalty
    // went).
    let st = state.clone();
    wait_until("every ticket of the cache settled", DEADLINE, || {
        settled(&st)
    })
    .await;
    let (_, value, fees, _) = books(state, &chain_ledger);
    assert_eq!(before, 0, "the cache had earned nothing before");
    assert_eq!(
        chain_ledger.balance(&me).unwrap(),
        share - proof_fee + value - fees
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_publisher_closes_its_finished_escrow_and_takes_the_penalty_back_after_its_grace_period()
 {
    let tmp = tempfile::tempdir().unwrap();
    let origin = directory_origin(tmp.path(), 1);
    // Two short rounds and a short claim window: unlock and release come
    // within seconds at 100 ms blocks.
    let plan = EscrowPlan {
        rounds: 2,
        claim_window: 10,
        ..settlement_plan()
    };
    let net = setup_with(origin, 1, plan.clone(), ClaimerConfig::default()).await;
    let id = net.state().escrow().unwrap().id;
    let chain = net.chain.chain().clone();
    let alice = dev("alice");
    let balance = {
        let chain = chain.clone();
        move || chain.account(&alice, None).unwrap().0.balance
    };
    let escrow = {
        let chain = chain.clone();
        move || chain.escrow(&id, None).unwrap().0
    };
    let opened = escrow().expect("the escrow is open");
    let terms = opened.terms.clone();
    assert_eq!(opened.payment, terms.payment_required(2).unwrap());
    // The operator cannot close it early, nor close what is not its own.
    let publisher_rpc = net.publisher.as_ref().unwrap().rpc_addr().unwrap();
    let e = rpc(
        publisher_rpc,
        "publisher_closeEscrow",
        vec![serde_json::json!(id)],
    )
    .await
    .unwrap_err();
    let unlock = terms.unlock_height().unwrap();
    assert!(
        e.starts_with("1016") && e.contains(&format!("cannot be closed before block #{unlock}")),
        "{e}"
    );
    let e = rpc(
        publisher_rpc,
        "publisher_closeEscrow",
        vec![serde_json::json!(format!("0x{}", "ab".repeat(32)))],
    )
    .await
    .unwrap_err();
    assert!(e.contains("is not open on the chain"), "{e}");
    let before = balance();
    // From unlock, the payment deposit comes back and the record stays,
    // holding the penalty.
    let e = escrow.clone();
    wait_until("the payment deposit returned", DEADLINE, || {
        e().is_some_and(|e| e.closed)
    })
    .await;
    let held = escrow().unwrap();
    assert_eq!((held.payment, held.penalty), (0, plan.penalty));
    assert_eq!(balance(), before + opened.payment - plan.fee);
    let release = terms.penalty_release_height().unwrap();
    assert!(chain.head().header.number < release);
    // From the release height, the penalty comes back and the record goes.
    let e = escrow.clone();
    wait_until("the penalty deposit returned", DEADLINE, || e().is_none()).await;
    assert!(chain.head().header.number >= release);
    assert_eq!(
        balance(),
        before + opened.payment + plan.penalty - 2 * plan.fee
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_publisher_rotates_to_a_fresh_escrow_without_failing_a_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = directory_origin(tmp.path(), 1);
    // Four rounds and no top-ups: with two rounds left the manager opens a
    // fresh escrow and moves to it.
    let plan = EscrowPlan {
        rounds: 4,
        rotate_rounds: 2,
        // Enough numbers per round for back-to-back fetches.
        tickets_per_round: 100_000,
        ..settlement_plan()
    };
    let net = setup_with(origin, 3, plan, ClaimerConfig::default()).await;
    let first = net.state().escrow().unwrap().id;
    // Fetch back to back across the switch: none fails.
    let end = tokio::time::Instant::now() + DEADLINE;
    let mut fetches = 0;
    while net.state().escrow().unwrap().id == first {
        assert!(
            tokio::time::Instant::now() < end,
            "no rotation within {DEADLINE:?} ({fetches} fetches)"
        );
        let (out, _) = net
            .fetch("/obj0", None)
            .await
            .expect("a fetch while the escrow rotates");
        assert_eq!(out.len(), 2 << 20);
        fetches += 1;
    }
    let second = net.state().escrow().unwrap().id;
    assert_ne!(second, first);
    let fresh = net
        .chain
        .chain()
        .escrow(&second, None)
        .unwrap()
        .0
        .expect("the fresh escrow is on chain");
    assert_eq!(fresh.funder, dev("alice"));
    // Every cache accepted it, and a fetch after the switch is paid from it.
    for (_, state, _) in &net.caches {
        assert!(state.tickets.hire(&second).unwrap().is_some());
    }
    let (out, _) = net
        .fetch("/obj0", None)
        .await
        .expect("a fetch after the rotation");
    assert_eq!(out.len(), 2 << 20);
    let paid_from_fresh = net.caches.iter().any(|(_, state, _)| {
        state
            .tickets
            .page(None, 100_000)
            .unwrap()
            .iter()
            .any(|(_, (escrow, _, _), _, _)| *escrow == second)
    });
    assert!(paid_from_fresh, "tickets of the fresh escrow are held");
    // The old escrow is closed once it unlocks: its payment deposit returns.
    let chain = net.chain.chain().clone();
    wait_until("the old escrow closed", DEADLINE, || {
        chain
            .escrow(&first, None)
            .unwrap()
            .0
            .is_none_or(|e| e.closed)
    })
    .await;
    net.stop().await;
}

/// Claims a cache made on the losing side of a partition are re-evaluated
/// and re-submitted on the winning side once the link heals: the cache
/// mines alone (one miner) while the rest of the network mines with two,
/// claims the winners of its own fork's draws there, and after the heal its
/// fork is retracted, the draws change, and every proven winner of the
/// winning chain is claimed on it; the books balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_made_on_the_losing_side_of_a_partition_are_redone_on_the_winning_chain() {
    use cachecash_node::cdn::cache::{CacheConfig, CacheModule};
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let tmp = tempfile::tempdir().unwrap();
    let origin = directory_origin(tmp.path(), 1);
    let spec = fast_dev_spec(100);
    let dir = tmp.path();
    // Windows long enough to outlast the partition.
    let plan = EscrowPlan {
        claim_window: 400,
        penalty: 32 * 22 * 2 * UNIT,
        ..settlement_plan()
    };
    let main = start_miner(&spec, &dir.join("main")).await;
    let boot = vec![p2p_addr(&main)];
    let second = start_with_modules(
        &spec,
        &dir.join("second"),
        Some(dev("eve")),
        boot.clone(),
        vec![],
    )
    .await;
    // The cache mines too, so its side of the partition grows a chain.
    let module =
        CacheModule::open(CacheConfig::new(dir.join("cache").join("cache"), 1 << 30)).unwrap();
    let state = module.state();
    let cache = start_with_modules(
        &spec,
        &dir.join("cache"),
        Some(dev("dave")),
        boot.clone(),
        vec![Box::new(module)],
    )
    .await;
    let (publisher, pstate) = start_publisher(
        &spec,
        &dir.join("publisher"),
        boot.clone(),
        origin,
        vec![p2p_addr(&cache)],
        plan,
    )
    .await;
    let client = start_with_modules(&spec, &dir.join("client"), None, boot, vec![]).await;
    learn_publisher(&client, &publisher).await;
    wait_until("escrow open and the cache hired", DEADLINE, || {
        pstate.escrow().is_some() && pstate.caches.len() == 1
    })
    .await;
    // The cache earns tickets of the current round.
    let ledger = Arc::new(ChainLedger::new(
        client.chain().clone(),
        client.pool().clone(),
    ));
    let mut out = Vec::new();
    cachecash_node::cdn::client::fetch(
        client.network().unwrap(),
        ledger,
        &cachecash_node::cdn::client::FetchRequest {
            publisher: publisher.network().unwrap().local_peer_id(),
            path: "/obj0".into(),
            range: None,
        },
        &mut out,
        &Default::default(),
        None,
    )
    .await
    .expect("fetch through the cache");
    assert_eq!(out.len(), 2 << 20);
    wait_until("the client's secrets reached the cache", DEADLINE, || {
        state
            .tickets
            .page(None, 100_000)
            .unwrap()
            .iter()
            .any(|(_, _, t, _)| t.as_ref().is_some_and(|t| t.claim.is_some()))
    })
    .await;
    // Cut every link of the cache.
    let split_at = main.chain().head().header.number;
    for p in cache.network().unwrap().peers() {
        let peer: libp2p::PeerId = p.peer_id.parse().unwrap();
        cache
            .network()
            .unwrap()
            .ban_peer(peer, "partition", "test partition".into());
    }
    wait_until("the cache is alone", DEADLINE, || {
        cache.network().unwrap().peer_count() == 0
    })
    .await;
    // On its own fork it draws and claims.
    let cache_chain = cache.chain().clone();
    let fork_claims = || {
        state
            .tickets
            .claims()
            .unwrap()
            .into_iter()
            .filter_map(|c| {
                let l = ChainLedger::new(cache_chain.clone(), cache.pool().clone());
                l.transaction_block(&c.tx.hash()).unwrap()
            })
            .collect::<Vec<_>>()
    };
    wait_until("a claim landed on the cache's own fork", DEADLINE, || {
        !fork_claims().is_empty()
    })
    .await;
    let on_fork = fork_claims();
    // Heal once the two-miner side has clearly more work.
    let fork_head = cache.chain().head().header.number;
    wait_for_height(&main, fork_head + 20, DEADLINE).await;
    cache
        .network()
        .unwrap()
        .add_reserved_peer(p2p_addr(&main))
        .await
        .unwrap();
    let main_chain = main.chain().clone();
    wait_until("the cache follows the winning chain", DEADLINE, || {
        let h = main_chain.head().header.number.saturating_sub(3);
        h > fork_head
            && cache_chain.canonical_hash(h).ok().flatten()
                == main_chain.canonical_hash(h).ok().flatten()
    })
    .await;
    // The blocks holding the fork's claims are retracted...
    assert!(
        on_fork.iter().all(|(n, block)| *n > split_at
            && cache_chain.canonical_hash(*n).ok().flatten() != Some(*block)),
        "every block of the cache's fork is retracted"
    );
    let main_ledger = ChainLedger::new(main_chain.clone(), main.pool().clone());
    // ...and every ticket settles against it: no proven winner is left
    // unclaimed and the cache's balance is exactly its final claims.
    wait_until(
        "every ticket settled on the winning chain",
        DEADLINE,
        || settled(&state),
    )
    .await;
    let (finals, value, fees, expired) = books(&state, &main_ledger);
    assert!(
        expired
            .iter()
            .all(|r| !r.contains("no claim landed") && !r.contains("did not land")),
        "{expired:?}"
    );
    assert!(finals > 0, "winners of the winning chain were claimed");
    let me = *state.account.get().unwrap();
    let balance = main_chain.account(&me, None).unwrap().0.balance;
    assert_eq!(
        balance,
        value - fees,
        "the cache's balance is its final claims less fees"
    );
    for n in [client, publisher, cache, second, main] {
        n.stop().await;
    }
}

//! The modules' async ledger interface (`LedgerClient`) over a real chain
//! and pool: proven reads that verify against the state root (and fail
//! when tampered with), transaction and escrow watches that follow blocks
//! and reorganisations, and head events that name every retracted block
//! and report finality at the asked depth.

use cachecash_chain_spec::ChainSpec;
use cachecash_node::chain::{BlockOrigin, Chain};
use cachecash_node::ledger::{BlockRef, ChainLedger, HeadEvent, LedgerClient, TxStatus, Watch};
use cachecash_node::mempool::{Mempool, PoolLimits};
use cachecash_runtime::Hash;
use cachecash_runtime::microcash::{EscrowTerms, escrow_id};
use cachecash_tests::{
    dev, escrow_open_tx, fast_dev_spec, memory_chain, mine_chain_block, spec_transfer,
};
use std::sync::Arc;
use std::time::Duration;

struct Rig {
    spec: ChainSpec,
    chain: Arc<Chain>,
    pool: Arc<Mempool>,
    ledger: ChainLedger,
}

fn rig() -> Rig {
    let spec = fast_dev_spec(150);
    let chain = Arc::new(memory_chain(&spec));
    let pool = Arc::new(Mempool::new(chain.clone(), PoolLimits::default()));
    tokio::spawn(cachecash_node::mempool::maintain(
        pool.clone(),
        chain.subscribe(),
    ));
    let ledger = ChainLedger::new(chain.clone(), pool.clone());
    Rig {
        spec,
        chain,
        pool,
        ledger,
    }
}

impl Rig {
    /// Mines one block on the head holding the whole pool (`with_pool`;
    /// the pool forgets included transactions asynchronously, so only a
    /// block right after a submission takes it) or nothing.
    fn mine(&self, with_pool: bool) -> Hash {
        let txs = if with_pool {
            self.pool.pending().into_iter().map(|(_, t)| t).collect()
        } else {
            Vec::new()
        };
        let block = mine_chain_block(&self.chain, txs, dev("ferdie"), 0);
        let hash = block.hash();
        self.chain.import_block(block, BlockOrigin::Mined).unwrap();
        hash
    }
}

/// One round of four tickets, two winners, starting at block 8.
fn terms() -> EscrowTerms {
    EscrowTerms {
        signer: dev("alice"),
        face_value: 1_000_000,
        tickets_per_round: 4,
        winners_per_round: 2,
        round_length: 4,
        first_round: 2,
        last_round: 2,
        draw_delay: 1,
        claim_window: 200,
    }
}

/// The next item of a watch, or a failure naming what was awaited.
async fn next<T>(w: &mut Watch<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} within 10 s"))
        .unwrap_or_else(|| panic!("the watch ended before {what}"))
}

/// Items of a watch until `done` holds for one, which is returned last.
async fn until<T: std::fmt::Debug>(
    w: &mut Watch<T>,
    what: &str,
    done: impl Fn(&T) -> bool,
) -> Vec<T> {
    let mut seen = Vec::new();
    loop {
        let item = next(w, what).await;
        let stop = done(&item);
        seen.push(item);
        if stop {
            return seen;
        }
    }
}

/// The hashes of the `NewBest` events, in order.
fn new_best(events: &[HeadEvent]) -> Vec<Hash> {
    events
        .iter()
        .filter_map(|e| match e {
            HeadEvent::NewBest(b) => Some(b.hash),
            _ => None,
        })
        .collect()
}

/// The heights of the `Final` events, in order.
fn final_heights(events: &[HeadEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            HeadEvent::Final(b) => Some(b.number),
            _ => None,
        })
        .collect()
}

/// A heavier branch from genesis, mined on a separate chain: `len` empty
/// blocks, timestamps shifted so they differ from the rig's.
fn heavier_branch(spec: &ChainSpec, len: usize) -> Vec<cachecash_runtime::Block> {
    let other = memory_chain(spec);
    (0..len)
        .map(|_| {
            let b = mine_chain_block(&other, Vec::new(), dev("dave"), 7);
            other.import_block(b.clone(), BlockOrigin::Mined).unwrap();
            b
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proven_reads_verify_against_the_state_root_and_a_tampered_value_does_not() {
    let r = rig();
    let genesis = r.spec.genesis_hash().unwrap();
    let terms = terms();
    let fee = r.spec.consensus.minimum_fee * 4;
    let open = escrow_open_tx(&r.spec, "alice", 0, &terms, 1_000_000, fee);
    r.ledger.submit(open).await.unwrap();
    r.mine(true);
    let id = escrow_id(&genesis, &dev("alice"), 0);

    let account = r.ledger.account(dev("alice"), None).await.unwrap();
    assert_eq!(account.block, r.ledger.best());
    assert_eq!(account.value.unwrap().nonce, 1);
    account.verify(&dev("alice")).unwrap();
    let mut forged = account.clone();
    forged.value.as_mut().unwrap().balance += 1;
    assert!(forged.verify(&dev("alice")).is_err());

    let escrow = r.ledger.escrow(id, None).await.unwrap();
    assert_eq!(escrow.value.as_ref().unwrap().terms, terms);
    escrow.verify(&id).unwrap();
    let mut forged = escrow.clone();
    forged.value = None;
    assert!(forged.verify(&id).is_err(), "an open escrow proven absent");
    // An escrow that does not exist is proven absent.
    let none = r.ledger.escrow(Hash::of(b"nothing"), None).await.unwrap();
    assert!(none.value.is_none());
    none.verify(&Hash::of(b"nothing")).unwrap();
    // Reads at a block that is not canonical are a typed error.
    let err = r
        .ledger
        .account(dev("alice"), Some(Hash::of(b"no block")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, cachecash_node::ledger::LedgerError::UnknownBlock(_)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_transaction_goes_pending_in_block_final_and_back_when_its_block_is_reorganised_away()
 {
    let r = rig();
    let tx = spec_transfer(&r.spec, "alice", 0, dev("bob"), 5);
    let hash = r.ledger.submit(tx).await.unwrap();
    let mut watch = r.ledger.watch_transaction(hash, 3);
    assert_eq!(next(&mut watch, "pending").await, TxStatus::Pending);

    let b1 = r.mine(true);
    let in_block = BlockRef {
        number: 1,
        hash: b1,
    };
    assert_eq!(
        next(&mut watch, "inclusion").await,
        TxStatus::InBlock {
            block: in_block,
            confirmations: 1
        }
    );
    r.mine(false);
    r.mine(false);
    let seen = until(&mut watch, "finality", |s| {
        matches!(s, TxStatus::Final { .. })
    })
    .await;
    assert_eq!(
        seen.last(),
        Some(&TxStatus::Final { block: in_block }),
        "{seen:?}"
    );
    assert_eq!(
        r.ledger.transaction_status(hash, 3).await.unwrap(),
        TxStatus::Final { block: in_block }
    );

    // A heavier branch without the transaction: it leaves the chain and
    // returns to the pool.
    for b in heavier_branch(&r.spec, 5) {
        r.chain.import_block(b, BlockOrigin::Network).unwrap();
    }
    let seen = until(&mut watch, "the return to the pool", |s| {
        *s == TxStatus::Pending
    })
    .await;
    assert!(
        seen.iter().all(|s| !matches!(s, TxStatus::Final { .. })),
        "{seen:?}"
    );
    // Mined again on the new branch, it is found in its new block.
    let b6 = r.mine(true);
    let seen = until(&mut watch, "re-inclusion", |s| {
        matches!(s, TxStatus::InBlock { .. })
    })
    .await;
    assert_eq!(
        seen.last(),
        Some(&TxStatus::InBlock {
            block: BlockRef {
                number: 6,
                hash: b6
            },
            confirmations: 1
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_events_name_every_new_and_retracted_block_and_finality_at_depth() {
    let r = rig();
    let mut events = r.ledger.head_events(2);
    let genesis = r.chain.canonical_hash(0).unwrap().unwrap();
    assert_eq!(
        next(&mut events, "the best block").await,
        HeadEvent::NewBest(BlockRef {
            number: 0,
            hash: genesis
        })
    );
    let ours: Vec<Hash> = (0..3).map(|_| r.mine(false)).collect();
    let seen = until(
        &mut events,
        "block 2 final",
        |e| matches!(e, HeadEvent::Final(b) if b.number == 2),
    )
    .await;
    assert_eq!(
        new_best(&seen),
        ours,
        "one NewBest per block, in order: {seen:?}"
    );
    let finals = final_heights(&seen);
    // Depth 2: block n is final when n + 1 is the best.
    assert_eq!(finals, [0, 1, 2], "{seen:?}");

    let branch = heavier_branch(&r.spec, 5);
    for b in &branch {
        r.chain
            .import_block(b.clone(), BlockOrigin::Network)
            .unwrap();
    }
    let seen = until(
        &mut events,
        "block 4 of the new branch final",
        |e| matches!(e, HeadEvent::Final(b) if b.number == 4),
    )
    .await;
    let Some(HeadEvent::Reorg { common, retracted }) = seen
        .iter()
        .find(|e| matches!(e, HeadEvent::Reorg { .. }))
        .cloned()
    else {
        panic!("no Reorg event: {seen:?}");
    };
    assert_eq!(
        common,
        BlockRef {
            number: 0,
            hash: genesis
        }
    );
    let gone: Vec<Hash> = retracted.iter().map(|b| b.hash).collect();
    assert_eq!(gone, ours.iter().rev().copied().collect::<Vec<_>>());
    let after_reorg: Vec<HeadEvent> = seen
        .iter()
        .skip_while(|e| !matches!(e, HeadEvent::Reorg { .. }))
        .cloned()
        .collect();
    let new = new_best(&after_reorg);
    assert_eq!(
        new,
        branch.iter().map(|b| b.hash()).collect::<Vec<_>>(),
        "{seen:?}"
    );
    // Finality restarts on the new branch above the common block.
    let finals = final_heights(&seen);
    assert_eq!(finals.last(), Some(&4), "{seen:?}");
    assert!(finals.iter().all(|n| *n >= 1), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escrow_watch_reports_its_opening_and_its_disappearance_on_a_reorg() {
    let r = rig();
    let genesis = r.spec.genesis_hash().unwrap();
    let id = escrow_id(&genesis, &dev("alice"), 0);
    let mut watch = r.ledger.watch_escrow(id);
    assert_eq!(next(&mut watch, "the absent escrow").await.escrow, None);
    let terms = terms();
    let fee = r.spec.consensus.minimum_fee * 4;
    let open = escrow_open_tx(&r.spec, "alice", 0, &terms, 0, fee);
    r.ledger.submit(open).await.unwrap();
    let b1 = r.mine(true);
    let update = next(&mut watch, "the opening").await;
    assert_eq!(update.block.hash, b1);
    assert_eq!(update.escrow.unwrap().terms, terms);
    // A heavier branch mined elsewhere, without the opening.
    for b in heavier_branch(&r.spec, 3) {
        r.chain.import_block(b, BlockOrigin::Network).unwrap();
    }
    let seen = until(&mut watch, "the reorganised-away escrow", |u| {
        u.escrow.is_none()
    })
    .await;
    // The watch may see the chain between its revert and the new branch
    // (it reports states); the escrow is gone from the new best block.
    assert!(seen.iter().all(|u| u.block.hash != b1), "{seen:?}");
    let now = r.ledger.escrow(id, None).await.unwrap();
    assert_eq!(now.block.number, 3);
    assert!(now.value.is_none());
    now.verify(&id).unwrap();
}

//! Fork choice on partition and heal: two chains from one genesis mine
//! apart, then exchange blocks. The node switches to the branch with the
//! most work, puts the abandoned branch's transactions back in its pool so
//! they are mined again, ignores lighter branches, and survives a heavier
//! branch that turns out invalid by staying where it was.

use cachecash_chain_spec::ChainSpec;
use cachecash_node::chain::{BlockOrigin, Chain, ImportError, ImportOutcome};
use cachecash_node::{Mempool, PoolLimits};
use cachecash_runtime::builder::TemplateInput;
use cachecash_runtime::{AccountId, Block, Call, Hash, SignedTransaction, Transaction};
use cachecash_tests::{dev, fast_dev_spec, grind, memory_chain, mine_chain_block};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn open(spec: &ChainSpec) -> Arc<Chain> {
    Arc::new(memory_chain(spec))
}

fn mine(chain: &Chain, txs: Vec<SignedTransaction>, miner: AccountId, salt: u64) -> Block {
    mine_chain_block(chain, txs, miner, salt)
}

fn transfer(genesis: &Hash, nonce: u64, amount: u128) -> SignedTransaction {
    let alice = cachecash_chain_spec::dev_accounts::dev_signing_key("alice").unwrap();
    Transaction {
        signer: dev("alice"),
        nonce,
        fee: 1_000_000,
        call: Call::Transfer {
            dest: dev("bob"),
            amount,
        },
    }
    .sign(&alice, genesis)
}

// Returns the chain's own error type unchanged.
#[allow(clippy::result_large_err)]
fn import(chain: &Chain, block: &Block) -> Result<ImportOutcome, ImportError> {
    chain.import_block(block.clone(), BlockOrigin::File)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_miners_converge_on_the_most_work_and_lose_no_transaction() {
    let spec = fast_dev_spec(1000);
    let genesis = spec.genesis_hash().unwrap();
    let a = open(&spec);
    let b = open(&spec);
    let pool = Arc::new(Mempool::new(a.clone(), PoolLimits::default()));
    tokio::spawn(cachecash_node::mempool::maintain(
        pool.clone(),
        a.subscribe(),
    ));

    // A shared prefix of two blocks.
    for salt in 0..2 {
        let block = mine(&a, vec![], dev("ferdie"), salt);
        import(&a, &block).unwrap();
        import(&b, &block).unwrap();
    }
    // Partition: A mines two blocks, the first with alice's transfer; B mines three.
    let tx = transfer(&genesis, 0, 777);
    let a3 = mine(&a, vec![tx.clone()], dev("eve"), 0);
    import(&a, &a3).unwrap();
    let a4 = mine(&a, vec![], dev("eve"), 0);
    import(&a, &a4).unwrap();
    let mut b_branch = Vec::new();
    for salt in 0..3 {
        let block = mine(&b, vec![], dev("dave"), 10 + salt);
        import(&b, &block).unwrap();
        b_branch.push(block);
    }
    assert_eq!(a.head().header.number, 4);
    assert_eq!(b.head().header.number, 5);

    // Heal, B → A: the lighter and equal-work prefixes of B's branch wait on
    // the side; the heavier tip switches A over.
    assert!(matches!(
        import(&a, &b_branch[0]).unwrap(),
        ImportOutcome::SideChain { .. }
    ));
    assert!(matches!(
        import(&a, &b_branch[1]).unwrap(),
        ImportOutcome::SideChain { .. }
    ));
    assert_eq!(a.head().hash, a4.hash(), "a tie keeps the current head");
    assert!(matches!(
        import(&a, &b_branch[2]).unwrap(),
        ImportOutcome::Imported(_)
    ));
    assert_eq!(a.head().hash, b.head().hash);
    assert!(a.store().tx_location(&tx.hash()).unwrap().is_none());

    // Heal, A → B: A's old branch is lighter, so B stays.
    assert!(matches!(
        import(&b, &a3).unwrap(),
        ImportOutcome::SideChain { .. }
    ));
    assert!(matches!(
        import(&b, &a4).unwrap(),
        ImportOutcome::SideChain { .. }
    ));
    assert_eq!(b.head().header.number, 5);

    // The abandoned transfer is back in A's pool and is mined again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pool.pending().iter().any(|(h, _)| *h == tx.hash()) {
        assert!(
            Instant::now() < deadline,
            "the retracted transfer never returned to the pool"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let again = mine(&a, pool.ready(100), dev("eve"), 0);
    import(&a, &again).unwrap();
    assert_eq!(
        a.store().tx_location(&tx.hash()).unwrap().unwrap().block,
        again.hash()
    );
    let bob = a.account(&dev("bob"), None).unwrap().0.balance;
    assert_eq!(bob, 1_000_000u128 * 1_000_000_000_000 + 777);
}

#[test]
fn a_heavier_but_invalid_branch_leaves_the_node_where_it_was() {
    let spec = fast_dev_spec(1000);
    let a = open(&spec);
    let b = open(&spec);
    let first = mine(&a, vec![], dev("ferdie"), 0);
    import(&a, &first).unwrap();
    import(&b, &first).unwrap();
    let a2 = mine(&a, vec![], dev("eve"), 0);
    import(&a, &a2).unwrap();

    // B builds a valid sibling of a2, then a block with a forged state root
    // but real proof of work on top of it.
    let b2 = mine(&b, vec![], dev("dave"), 5);
    import(&b, &b2).unwrap();
    let mut forged = mine(&b, vec![], dev("dave"), 5);
    forged.header.state_root = Hash([9; 32]);
    grind(&mut forged.header);

    assert!(matches!(
        import(&a, &b2).unwrap(),
        ImportOutcome::SideChain { .. }
    ));
    let err = import(&a, &forged).unwrap_err();
    assert!(matches!(err, ImportError::Invalid { .. }), "{err}");
    assert_eq!(a.head().hash, a2.hash());
    assert_eq!(
        a.store().best_tip().unwrap(),
        None,
        "an invalid branch is not retried at the next start"
    );
    assert_eq!(
        a.store().block_status(&forged.hash()).unwrap(),
        Some(cachecash_node::storage::BlockStatus::Invalid)
    );
    assert_eq!(a.store().canonical_hash(2).unwrap(), Some(a2.hash()));
    // Sent again, the forged block is refused at once; the valid sibling
    // is still held for a later, honest extension of its branch.
    assert!(matches!(
        import(&a, &forged),
        Err(ImportError::KnownInvalid(_))
    ));
    assert!(matches!(
        import(&a, &b2).unwrap(),
        ImportOutcome::AlreadyKnown(_)
    ));
    // The node keeps importing on its own branch.
    let a3 = mine(&a, vec![], dev("eve"), 0);
    assert!(matches!(
        import(&a, &a3).unwrap(),
        ImportOutcome::Imported(_)
    ));
}

#[test]
fn a_branch_forking_at_genesis_is_checked_against_its_own_block_1_under_asert() {
    // ASERT anchors on block 1: a branch forking at genesis has its own,
    // and its blocks must be checked against it, not against ours.
    let mut v: serde_json::Value =
        serde_json::from_str(&fast_dev_spec(150).to_json(false).unwrap()).unwrap();
    v["consensus"]["retargetWindow"] = serde_json::Value::from(10);
    let spec = ChainSpec::from_json_str(&v.to_string()).unwrap();
    let (ours, theirs, node) = (open(&spec), open(&spec), open(&spec));
    for _ in 0..2 {
        let block = mine(&ours, vec![], dev("alice"), 0);
        import(&ours, &block).unwrap();
        import(&node, &block).unwrap();
    }
    let mut branch = Vec::new();
    for i in 0..4 {
        // Their block 1 is 500 ms later than ours, so the anchors differ.
        let block = mine(&theirs, vec![], dev("bob"), if i == 0 { 500 } else { 0 });
        import(&theirs, &block).unwrap();
        branch.push(block);
    }
    assert_ne!(
        branch[0].header.timestamp,
        node.header_by_number(1).unwrap().unwrap().timestamp
    );
    for block in &branch {
        import(&node, block).unwrap();
    }
    assert_eq!(
        node.head().hash,
        theirs.head().hash,
        "the heavier branch was adopted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retracted_transactions_survive_a_lagging_event_subscriber() {
    let spec = fast_dev_spec(150);
    let chain = open(&spec);
    let genesis = chain.genesis_hash();
    let tx = transfer(&genesis, 0, 7);
    let block = mine(&chain, vec![tx.clone()], dev("bob"), 0);
    import(&chain, &block).unwrap();
    let pool = Arc::new(Mempool::new(chain.clone(), PoolLimits::default()));
    // The pool subscribes, then falls far behind: the revert's event and
    // more than a channel's worth of later ones pass before it reads.
    let events = chain.subscribe();
    chain.revert_to(0).unwrap();
    for i in 0..(cachecash_node::chain::EVENT_CAPACITY as u64 + 10) {
        let b = mine(&chain, vec![], dev("bob"), i % 3);
        import(&chain, &b).unwrap();
    }
    let task = tokio::spawn(cachecash_node::mempool::maintain(pool.clone(), events));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pool.contains(&tx.hash()) {
        assert!(
            Instant::now() < deadline,
            "the retracted transaction never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
}

#[test]
fn the_miner_waits_while_the_node_catches_up() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let spec = fast_dev_spec(50);
    let chain = open(&spec);
    let pool = Arc::new(Mempool::new(chain.clone(), PoolLimits::default()));
    let syncing = Arc::new(AtomicBool::new(true));
    let mut miner =
        cachecash_node::miner::Miner::start(chain.clone(), pool, dev("alice"), syncing.clone())
            .unwrap();
    // A dev block is due at once (genesis is old) and takes ~256 hashes, so
    // an unpaused miner would have mined within this window many times over.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(chain.head().header.number, 0, "mined while syncing");
    syncing.store(false, Ordering::Release);
    let deadline = Instant::now() + Duration::from_secs(30);
    while chain.head().header.number == 0 {
        assert!(Instant::now() < deadline, "the miner did not resume");
        std::thread::sleep(Duration::from_millis(10));
    }
    miner.stop();
}

/// A block on `parent` (canonical) at `timestamp`, with the target the
/// chain requires of it.
fn mine_at(chain: &Chain, parent: &cachecash_runtime::Header, timestamp: u64) -> Block {
    let template = chain
        .build_template(
            TemplateInput {
                parent: parent.clone(),
                timestamp,
                target: chain.next_target(parent).unwrap(),
                miner: dev("bob"),
            },
            vec![],
        )
        .unwrap();
    let mut block = template.block;
    grind(&mut block.header);
    block
}

fn too_old(e: &ImportError) -> bool {
    matches!(e, ImportError::Invalid { source, .. }
        if matches!(**source, cachecash_runtime::BlockError::TimestampTooOld { .. }))
}

fn in_future(e: &ImportError) -> bool {
    matches!(e, ImportError::Invalid { source, .. }
        if matches!(**source, cachecash_runtime::BlockError::TimestampInFuture { .. }))
}

#[test]
fn fork_blocks_obey_the_timestamp_rules_before_they_are_stored() {
    // A fork block with a far-future timestamp would drive ASERT to the
    // proof-of-work limit for its children (near-free blocks that every
    // node stores); one at or below median-time-past breaks the rules
    // outright. Neither may enter the side pool.
    let spec = fast_dev_spec(150);
    let chain = open(&spec);
    for _ in 0..3 {
        let block = mine(&chain, vec![], dev("alice"), 0);
        import(&chain, &block).unwrap();
    }
    let genesis = chain.header_by_number(0).unwrap().unwrap();
    let drift = spec.consensus.max_future_drift_ms;

    // At or below the parent's median-time-past: invalid for good.
    let stale = mine_at(&chain, &genesis, genesis.timestamp);
    let e = import(&chain, &stale).unwrap_err();
    assert!(too_old(&e), "{e}");
    assert!(matches!(
        import(&chain, &stale),
        Err(ImportError::KnownInvalid(_))
    ));

    // Past our clock's drift limit: refused, but not remembered as
    // invalid, so it is accepted once the clock allows.
    let soon = cachecash_node::chain::now_ms() + drift + 1_500;
    let future = mine_at(&chain, &genesis, soon);
    let e = import(&chain, &future).unwrap_err();
    assert!(in_future(&e), "{e}");
    assert!(
        !cachecash_node::network::import::is_peer_fault(&e),
        "clock skew does not ban the sender"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match import(&chain, &future) {
            Ok(ImportOutcome::SideChain { .. }) => break,
            Err(e) if in_future(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("once the clock allows it, the fork block is kept: {other:?}"),
        }
    }
    assert_eq!(
        chain.head().header.number,
        3,
        "a lighter fork changes nothing"
    );
}

#[test]
fn lighter_fork_blocks_are_kept_but_not_relayed() {
    use cachecash_node::network::import::block_verdict;
    let spec = fast_dev_spec(150);
    let (chain, other) = (open(&spec), open(&spec));
    for _ in 0..2 {
        let block = mine(&chain, vec![], dev("alice"), 0);
        import(&chain, &block).unwrap();
    }
    let fork = mine(&other, vec![], dev("bob"), 7);
    let v = block_verdict(import(&chain, &fork));
    assert_eq!(
        format!("{:?}", v.acceptance),
        "Ignore",
        "a side-chain block is not forwarded: {}",
        v.detail
    );
    assert!(v.ban.is_none());
    let next = mine(&chain, vec![], dev("alice"), 0);
    let v = block_verdict(import(&chain, &next));
    assert_eq!(format!("{:?}", v.acceptance), "Accept", "{}", v.detail);
}

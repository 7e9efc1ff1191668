//! Partitions of more than two nodes over real libp2p connections on
//! loopback: four nodes split two by two with a miner on each side
//! converge on the most work once one link heals, and the transactions of
//! the losing side are mined again; a node eclipsed by peers that only
//! know a low-work chain switches to the honest chain as soon as one
//! honest peer appears.
//!
//! The split is made by the peer sets: each side dials only its own
//! bootnode, so no link exists between the sides until a test adds one
//! (as an operator would with `system_addReservedPeer`).

use cachecash_node::service::{Node, Storage};
use cachecash_runtime::Hash;
use cachecash_tests::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

async fn node(
    spec: &cachecash_chain_spec::ChainSpec,
    dir: &tempfile::TempDir,
    miner: Option<&str>,
    bootnodes: Vec<cachecash_node::network::Multiaddr>,
) -> Node {
    start_networked(spec, dir.path(), Storage::Memory, miner.map(dev), bootnodes).await
}

/// Whether `tx` is in a block of `node`'s canonical chain.
fn canonical(node: &Node, tx: &Hash) -> bool {
    let chain = node.chain();
    let Ok(Some(loc)) = chain.store().tx_location(tx) else {
        return false;
    };
    let Ok(Some(header)) = chain.header(&loc.block) else {
        return false;
    };
    chain.canonical_hash(header.number).ok().flatten() == Some(loc.block)
}

/// Whether every node has the same canonical block at the height just
/// below the lowest head (miners keep extending the tip).
fn converged(nodes: &[&Node], above: u64) -> bool {
    let low = nodes
        .iter()
        .map(|n| n.chain().head().header.number)
        .min()
        .unwrap_or(0);
    if low < above + 2 {
        return false;
    }
    let at = |n: &Node| n.chain().canonical_hash(low - 1).ok().flatten();
    let first = at(nodes[0]);
    first.is_some() && nodes.iter().all(|n| at(n) == first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_nodes_split_two_and_two_with_miners_on_both_sides_converge_and_lose_no_transaction() {
    let spec = fast_dev_spec(150);
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    // Side one: a mines, b follows; side two: c mines, d follows.
    let a = node(&spec, &dirs[0], Some("alice"), vec![]).await;
    let b = node(&spec, &dirs[1], None, vec![p2p_addr(&a)]).await;
    let c = node(&spec, &dirs[2], Some("charlie"), vec![]).await;
    let d = node(&spec, &dirs[3], None, vec![p2p_addr(&c)]).await;
    let all = [&a, &b, &c, &d];
    // Each side's transaction enters at its follower, maybe before the
    // follower's link is up, and reaches its miner by gossip.
    let tx_one = b
        .pool()
        .submit(transfer(&b, "bob", 0, dev("eve"), 1))
        .unwrap();
    let tx_two = d
        .pool()
        .submit(transfer(&d, "dave", 0, dev("eve"), 2))
        .unwrap();
    wait_until("each side mines its own transaction", LONG, || {
        canonical(&b, &tx_one) && canonical(&d, &tx_two)
    })
    .await;
    wait_until("both sides are four blocks high", LONG, || {
        all.iter().all(|n| n.chain().head().header.number >= 4)
    })
    .await;
    assert_ne!(
        a.chain().canonical_hash(1).unwrap(),
        c.chain().canonical_hash(1).unwrap(),
        "the partition produced two branches"
    );
    assert!(!canonical(&a, &tx_two) && !canonical(&c, &tx_one));
    let split_height = all
        .iter()
        .map(|n| n.chain().head().header.number)
        .max()
        .unwrap_or(0);

    // Heal one link between the followers: blocks and transactions must
    // cross through it.
    b.network()
        .unwrap()
        .add_reserved_peer(p2p_addr(&d))
        .await
        .unwrap();
    wait_until("all four converge on one chain", LONG, || {
        converged(&all, split_height)
    })
    .await;
    // The losing side's transaction went back to its pools and is mined
    // on the winning chain; nothing is lost on any node.
    wait_until("both transactions are canonical everywhere", LONG, || {
        all.iter()
            .all(|n| canonical(n, &tx_one) && canonical(n, &tx_two))
    })
    .await;
    let reorgs: u64 = all.iter().map(|n| n.chain().metrics().reorgs.get()).sum();
    assert!(reorgs >= 2, "the losing side's two nodes reorganised");
    for n in [a, b, c, d] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_eclipsed_by_low_work_peers_takes_the_honest_chain_when_one_honest_peer_appears() {
    let spec = fast_dev_spec(150);
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    // The eclipsing peers share a short chain.
    let e1 = node(&spec, &dirs[0], None, vec![]).await;
    extend_chain(&e1, 10, dev("dave"));
    let e2 = node(&spec, &dirs[1], None, vec![p2p_addr(&e1)]).await;
    wait_until("the second eclipsing peer syncs", LONG, || {
        head_hash(&e2) == head_hash(&e1)
    })
    .await;
    // The honest network has three times the blocks (more work).
    let honest = node(&spec, &dirs[2], None, vec![]).await;
    extend_chain(&honest, 30, dev("eve"));
    assert!(honest.chain().head().total_work > e1.chain().head().total_work);

    // The victim knows only the eclipsing peers.
    let victim = node(&spec, &dirs[3], None, vec![p2p_addr(&e1), p2p_addr(&e2)]).await;
    wait_until("the victim follows the low-work chain", LONG, || {
        head_hash(&victim) == head_hash(&e1)
    })
    .await;
    assert_eq!(victim.chain().head().header.number, 10);

    // One honest peer appears.
    victim
        .network()
        .unwrap()
        .add_reserved_peer(p2p_addr(&honest))
        .await
        .unwrap();
    wait_until("the victim switches to the honest chain", LONG, || {
        head_hash(&victim) == head_hash(&honest)
    })
    .await;
    assert_eq!(victim.chain().head().header.number, 30);
    assert!(victim.chain().metrics().reorgs.get() >= 1);
    for n in [e1, e2, honest, victim] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_submitted_to_an_isolated_node_is_announced_once_a_peer_appears() {
    let spec = fast_dev_spec(150);
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    // A node with no peer at all takes a transaction: its announcement
    // finds nobody.
    let lonely = node(&spec, &dirs[0], None, vec![]).await;
    let tx = lonely
        .pool()
        .submit(transfer(&lonely, "alice", 0, dev("bob"), 5))
        .unwrap();
    // A miner appears and connects to it: the transaction reaches the
    // miner and is mined, on both nodes' chain.
    let miner = node(&spec, &dirs[1], Some("ferdie"), vec![p2p_addr(&lonely)]).await;
    wait_until("the transaction is mined and seen by both", LONG, || {
        canonical(&miner, &tx) && canonical(&lonely, &tx)
    })
    .await;
    for n in [lonely, miner] {
        n.stop().await;
    }
}

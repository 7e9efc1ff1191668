//! Hostile peers on the sync protocol and floods past the per-peer rate
//! limits, from raw libp2p peers written for the tests: a flooder is
//! refused, then banned; a server answering the node's sync requests with
//! garbage or frames past the size limit is banned; and honest peers are
//! served (or synced from) meanwhile, with the node's state untouched.

use cachecash_node::chain::Chain;
use cachecash_node::network::protocol::{
    MAX_RESPONSE_BYTES, Status, SyncRequest, SyncResponse, sync_protocol,
};
use cachecash_node::service::Storage;
use cachecash_tests::raw::{RawResponder, flood, frame};
use cachecash_tests::*;
use parity_scale_codec::{Decode, Encode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

/// A sync response frame (length prefix, SCALE) that refuses for the rate.
fn is_rate_refusal(bytes: &[u8]) -> bool {
    matches!(
        bytes.get(4..).map(|mut b| SyncResponse::decode(&mut b)),
        Some(Ok(SyncResponse::Refused(why))) if why.contains("rate limit")
    )
}

/// A peer that sends valid sync requests far past its rate (50 per second,
/// bursts of 100) gets refusals once its bucket is empty and is banned after
/// 200 of them; an honest peer syncs from the flooded node meanwhile, and
/// the flooded node's chain is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_flooding_sync_requests_is_refused_then_banned_and_honest_peers_still_sync() {
    let spec = fast_dev_spec(150);
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let node = start_networked(&spec, dirs[0].path(), Storage::Memory, None, vec![]).await;
    extend_chain(&node, 30, dev("alice"));
    let head = head_hash(&node);
    let request = SyncRequest::HeadersByRange {
        start: 0,
        count: 16,
    }
    .encode();
    let flooding = tokio::spawn(flood(
        p2p_addr(&node),
        sync_protocol(&node.chain().genesis_hash()),
        frame(&request),
        1_000,
        is_rate_refusal,
        LONG,
    ));
    // An honest peer joins during the flood and takes the whole chain.
    let honest = start_networked(
        &spec,
        dirs[1].path(),
        Storage::Memory,
        None,
        vec![p2p_addr(&node)],
    )
    .await;
    wait_for_height(&honest, 30, LONG).await;
    let outcome = flooding.await.unwrap();
    eprintln!("sync flood: {outcome:?}");
    assert!(
        outcome.answered > 0,
        "the first burst is served: {outcome:?}"
    );
    assert!(
        outcome.refused > 0,
        "past the rate it is refused: {outcome:?}"
    );
    assert!(outcome.closed, "the ban closes the connection: {outcome:?}");
    wait_until("the flooder is banned", LONG, || {
        bans(&node, Some("sync rate limit")) >= 1
    })
    .await;
    assert_eq!(
        head_hash(&node),
        head,
        "the flooded node's chain is untouched"
    );
    assert_eq!(head_hash(&honest), head);
    honest.stop().await;
    node.stop().await;
}

/// A peer publishing transactions far past its gossip rate (2,000 per
/// second, bursts of 4,000) has the excess dropped before any decoding or
/// pool work. It is not banned for it (an honest relay may forward the
/// whole network's traffic), and blocks still reach the node meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_flooding_gossip_past_its_rate_has_the_excess_dropped_and_blocks_still_arrive() {
    use cachecash_node::network::Topic;
    const FLOOD: u64 = 20_000;
    let spec = fast_dev_spec(150);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let node = start_networked(&spec, dirs[0].path(), Storage::Memory, None, vec![]).await;
    let evil = start_networked(
        &spec,
        dirs[1].path(),
        Storage::Memory,
        None,
        vec![p2p_addr(&node)],
    )
    .await;
    let txs: Vec<Vec<u8>> = (0..FLOOD)
        .map(|n| spec_transfer(&spec, "alice", n, dev("bob"), 1).encode())
        .collect();
    let net = evil.network().unwrap().clone();
    let end = tokio::time::Instant::now() + LONG;
    while net
        .publish(Topic::Transactions, txs[0].clone())
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < end, "never subscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for tx in &txs[1..] {
        // The sender's own queue may drop some: what arrives is enough.
        let _ = net.publish(Topic::Transactions, tx.clone()).await;
    }
    wait_until("the excess is dropped for the rate", LONG, || {
        gossip_count(&node, "gossip_transactions", "rate_limited") > 0
    })
    .await;
    // An honest miner's blocks still arrive while the flood drains.
    let honest = start_networked(
        &spec,
        dirs[2].path(),
        Storage::Memory,
        None,
        vec![p2p_addr(&node)],
    )
    .await;
    extend_chain(&honest, 5, dev("charlie"));
    wait_for_height(&node, 5, LONG).await;
    assert_eq!(head_hash(&node), head_hash(&honest));
    assert_eq!(bans(&node, Some("invalid transaction")), 0);
    assert!(
        node.network()
            .unwrap()
            .peers()
            .iter()
            .any(|p| p.peer_id == evil.network().unwrap().local_peer_id().to_string()),
        "the flooder is throttled, not disconnected"
    );
    for n in [honest, evil, node] {
        n.stop().await;
    }
}

/// The sync request a hostile server answers with its bad frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spoiled {
    Status,
    Headers,
    Blocks,
}

/// A response frame that does not decode: an unknown message kind.
fn garbage() -> Vec<u8> {
    frame(&[0xff; 64])
}

/// A blocks response one block long whose frame is past the response limit.
fn past_the_limit() -> Vec<u8> {
    frame(&SyncResponse::Blocks(vec![vec![0; MAX_RESPONSE_BYTES]]).encode())
}

/// The answer an honest server of `chain` gives to `request`, its status
/// claiming `claim` as its work if given.
fn honest_answer(chain: &Chain, request: &SyncRequest, claim: Option<[u8; 32]>) -> SyncResponse {
    let head = chain.head();
    match request {
        SyncRequest::Status(_) => SyncResponse::Status(Status {
            genesis: chain.genesis_hash(),
            best_number: head.header.number,
            best_hash: head.hash,
            total_work: claim.unwrap_or(head.total_work.to_big_endian()),
        }),
        SyncRequest::Headers { locator, max } => {
            let start = locator
                .iter()
                .find_map(|h| {
                    let n = chain.header(h).unwrap()?.number;
                    (chain.canonical_hash(n).unwrap() == Some(*h)).then_some(n + 1)
                })
                .unwrap_or(0);
            let end = head.header.number.min(start + u64::from(*max) - 1);
            SyncResponse::Headers(
                (start..=end)
                    .map(|n| chain.header_by_number(n).unwrap().unwrap())
                    .collect(),
            )
        }
        _ => SyncResponse::Refused("not served".into()),
    }
}

/// A server of the honest node's chain that answers the node's `spoiled`
/// requests with `bad` bytes dials the node (claiming far more work than
/// it has when it spoils headers, so the node asks it first). Once the
/// node has asked it for the spoiled data, an honest peer joins. The
/// hostile server is banned for a malformed sync response and
/// disconnected, and the node syncs the honest chain.
async fn a_server_spoiling(spoiled: Spoiled, bad: Vec<u8>) {
    let spec = fast_dev_spec(150);
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let honest = start_networked(&spec, dirs[0].path(), Storage::Memory, None, vec![]).await;
    extend_chain(&honest, 200, dev("alice"));
    let node = start_networked(&spec, dirs[1].path(), Storage::Memory, None, vec![]).await;
    let asked = Arc::new(AtomicBool::new(false));
    let hostile = {
        let (chain, asked) = (honest.chain().clone(), asked.clone());
        let claim = (spoiled == Spoiled::Headers).then_some([0x7f; 32]);
        RawResponder::serve(
            p2p_addr(&node),
            sync_protocol(&node.chain().genesis_hash()),
            move |bytes| {
                let request = SyncRequest::decode(&mut &bytes[4..]).expect("a sync request");
                let kind = match request {
                    SyncRequest::Status(_) => Some(Spoiled::Status),
                    SyncRequest::Headers { .. } => Some(Spoiled::Headers),
                    SyncRequest::Blocks { .. } => Some(Spoiled::Blocks),
                    _ => None,
                };
                if kind == Some(spoiled) {
                    asked.store(true, Ordering::Release);
                    return bad.clone();
                }
                frame(&honest_answer(&chain, &request, claim).encode())
            },
        )
    };
    wait_until("the node asks the hostile server", LONG, || {
        asked.load(Ordering::Acquire)
    })
    .await;
    honest
        .network()
        .unwrap()
        .dial(p2p_addr(&node))
        .await
        .unwrap();
    wait_for_height(&node, 200, LONG).await;
    assert_eq!(head_hash(&node), head_hash(&honest));
    wait_until("the hostile server is banned", LONG, || {
        bans(&node, Some("malformed sync response")) >= 1
    })
    .await;
    assert_eq!(
        bans(&node, None),
        bans(&node, Some("malformed sync response")),
        "banned for nothing else, and the honest peer not at all"
    );
    wait_until("the ban closes the connection", LONG, || {
        !hostile.connections().open
    })
    .await;
    let hostile_id = hostile.peer_id().to_string();
    let peers = node.network().unwrap().peers();
    assert!(peers.iter().all(|p| p.peer_id != hostile_id), "{peers:?}");
    drop(hostile);
    honest.stop().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_answering_status_with_garbage_is_banned_and_the_node_syncs_from_an_honest_peer() {
    a_server_spoiling(Spoiled::Status, garbage()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_answering_status_past_the_size_limit_is_banned_and_the_node_syncs_from_an_honest_peer()
 {
    a_server_spoiling(Spoiled::Status, past_the_limit()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_answering_headers_with_garbage_is_banned_and_the_node_syncs_from_an_honest_peer()
{
    a_server_spoiling(Spoiled::Headers, garbage()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_answering_headers_past_the_size_limit_is_banned_and_the_node_syncs_from_an_honest_peer()
 {
    a_server_spoiling(Spoiled::Headers, past_the_limit()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_answering_blocks_with_garbage_is_banned_and_the_node_syncs_from_an_honest_peer() {
    a_server_spoiling(Spoiled::Blocks, garbage()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_answering_blocks_past_the_size_limit_is_banned_and_the_node_syncs_from_an_honest_peer()
 {
    a_server_spoiling(Spoiled::Blocks, past_the_limit()).await;
}

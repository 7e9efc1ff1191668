//! Floods past the per-peer rate limits of the request protocols, from raw
//! libp2p peers written for the tests: the flooder is refused, then banned,
//! and honest peers are served meanwhile with the node's state untouched.

use cachecash_node::network::protocol::{SyncRequest, SyncResponse, sync_protocol};
use cachecash_node::service::{Node, Storage};
use cachecash_tests::raw::flood;
use cachecash_tests::*;
use parity_scale_codec::{Decode, Encode};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

fn bans_for(node: &Node, reason: &str) -> u64 {
    let label = format!("reason=\"{reason}\"");
    node.chain()
        .metrics()
        .encode()
        .lines()
        .filter(|l| l.starts_with("cachecash_peer_bans_total") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

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
    let mut frame = u32::try_from(request.len()).unwrap().to_le_bytes().to_vec();
    frame.extend(request);
    let flooding = tokio::spawn(flood(
        p2p_addr(&node),
        sync_protocol(&node.chain().genesis_hash()),
        frame,
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
        bans_for(&node, "sync rate limit") >= 1
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

//! The health endpoints on the RPC port, as Kubernetes probes call them
//! (`deploy/kubernetes`): `GET /health` (liveness) answers 200 while the
//! RPC server runs; `GET /health/ready` (readiness) answers 200 only when
//! the node has peers (or expects none) and has caught up with them, and
//! 503 with the reason otherwise. Real nodes on loopback.

use cachecash_node::network::NetworkConfig;
use cachecash_node::service::{Node, Storage};
use cachecash_tests::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

/// `GET path` on the node's RPC port: the status and the body as JSON.
async fn get(node: &Node, path: &str) -> (u16, Value) {
    let url = format!("http://{}{path}", node.rpc_addr().expect("RPC is on"));
    let r = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("GET {url} answered {status} with non-JSON '{text}': {e}"));
    (status, body)
}

/// A networked node with memory storage that expects peers (as a node
/// given bootnodes, or on a non-development chain, does).
async fn expecting_peers(dir: &Path, bootnodes: Vec<cachecash_node::network::Multiaddr>) -> Node {
    let node = start_networked(&fast_dev_spec(150), dir, Storage::Memory, None, bootnodes).await;
    assert!(node.network().unwrap().should_have_peers());
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_expects_peers_and_has_none_is_not_ready_but_stays_live() {
    let dir = tempfile::tempdir().unwrap();
    let node = expecting_peers(dir.path(), vec![]).await;

    let (status, body) = get(&node, "/health/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false, "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("no peers") && reason.contains("--bootnodes"),
        "the reason names the problem and what to check: {body}"
    );
    assert_eq!(body["peers"], 0, "{body}");
    assert_eq!(body["shouldHavePeers"], true, "{body}");

    // Liveness does not depend on peers: a restart would not bring any.
    let (status, health) = get(&node, "/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["peers"], 0, "{health}");
    assert_eq!(health["shouldHavePeers"], true, "{health}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lone_dev_node_without_peers_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let spec = fast_dev_spec(150);
    let node = start_node_with(&spec, dir.path(), Storage::Memory, None, |c| {
        let mut net = NetworkConfig::loopback(dir.path().join("network/secret_ed25519"));
        // What `cachecash run --dev` sets: a development chain without
        // bootnodes or reserved nodes is expected to run alone.
        net.should_have_peers = false;
        c.network = Some(net);
    })
    .await;
    let (status, body) = get(&node, "/health/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["reason"], Value::Null, "{body}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_becomes_ready_once_it_has_peers_and_has_caught_up_with_them() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = expecting_peers(dirs[0].path(), vec![]).await;
    extend_chain(&a, 1000, dev("alice"));
    let tip = a.chain().head().header.number;
    let b = expecting_peers(dirs[1].path(), vec![p2p_addr(&a)]).await;

    // Poll readiness as a kubelet would, recording every answer, until B
    // says ready.
    let end = tokio::time::Instant::now() + LONG;
    let mut reasons = std::collections::BTreeSet::new();
    let ready = loop {
        let (status, body) = get(&b, "/health/ready").await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 503, "readiness answers 200 or 503: {body}");
        reasons.insert(
            body["reason"]
                .as_str()
                .unwrap_or_default()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string(),
        );
        assert!(
            tokio::time::Instant::now() < end,
            "B not ready within {LONG:?}; last answer {body}, reasons seen {reasons:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Ready means within one block of the best block its peers report:
    // B cannot be ready before it has synced A's chain.
    let height = b.chain().head().header.number;
    assert!(
        height + 1 >= tip,
        "B answered ready at block {height} of {tip}: {ready} (503 reasons before: {reasons:?})"
    );
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(ready["peers"].as_u64().unwrap() >= 1, "{ready}");
    assert_eq!(ready["isSyncing"], false, "{ready}");

    // A, which had no peers, is ready now that B is connected to it.
    wait_until("A has a peer with a known status", LONG, || {
        a.network()
            .unwrap()
            .peers()
            .iter()
            .any(|p| p.best_number.is_some())
    })
    .await;
    let (status, body) = get(&a, "/health/ready").await;
    assert_eq!(status, 200, "{body}");
    for n in [&a, &b] {
        let (status, health) = get(n, "/health").await;
        assert_eq!(status, 200, "{health}");
    }
    a.stop().await;
    b.stop().await;
}

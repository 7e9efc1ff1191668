//! Multi-node scenarios over real libp2p connections on loopback:
//! convergence, transaction propagation, sync of a long chain, partitions,
//! bans, restart mid-sync, and hostile input.

use cachecash_node::network::{Protocol, Topic};
use cachecash_node::service::{Node, Storage};
use cachecash_runtime::Hash;
use cachecash_tests::*;
use parity_scale_codec::{DecodeAll, Encode};
use std::io::Write;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

/// The test chain and `n` temporary base paths.
fn setup(n: usize) -> (cachecash_chain_spec::ChainSpec, Vec<tempfile::TempDir>) {
    let dirs = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    (fast_dev_spec(150), dirs)
}

/// Publishes `data` once a peer's subscription to the topic is known
/// (publishing fails until then).
async fn publish_once_subscribed(
    net: &cachecash_node::network::NetworkHandle,
    topic: Topic,
    data: Vec<u8>,
) {
    let end = tokio::time::Instant::now() + LONG;
    while net.publish(topic, data.clone()).await.is_err() {
        assert!(tokio::time::Instant::now() < end, "could not publish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A networked node with memory storage.
async fn mem_node(
    spec: &cachecash_chain_spec::ChainSpec,
    dir: &std::path::Path,
    miner: Option<cachecash_runtime::AccountId>,
    bootnodes: Vec<cachecash_node::network::Multiaddr>,
) -> Node {
    start_networked(spec, dir, Storage::Memory, miner, bootnodes).await
}

fn heads_equal(nodes: &[&Node]) -> bool {
    let first = head_hash(nodes[0]);
    nodes.iter().all(|n| head_hash(n) == first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_converge_on_the_same_head() {
    let (spec, dirs) = setup(3);
    let a = mem_node(&spec, dirs[0].path(), Some(dev("alice")), vec![]).await;
    let b = mem_node(&spec, dirs[1].path(), None, vec![p2p_addr(&a)]).await;
    let c = mem_node(&spec, dirs[2].path(), None, vec![p2p_addr(&b)]).await;
    wait_for_height(&a, 5, LONG).await;
    wait_for_height(&c, 5, LONG).await;
    // The miner keeps going; converge means all three agree at some moment
    // at or past block 5.
    wait_until("three heads equal", LONG, || heads_equal(&[&a, &b, &c])).await;
    assert!(c.chain().head().header.number >= 5);
    let health = rpc(c.rpc_addr().unwrap(), "system_health", vec![])
        .await
        .unwrap();
    assert!(health["peers"].as_u64().unwrap() >= 1, "{health}");
    assert_eq!(health["shouldHavePeers"], true);
    for n in [a, b, c] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_submitted_at_one_node_is_mined_by_another() {
    let (spec, dirs) = setup(3);
    let miner = mem_node(&spec, dirs[0].path(), Some(dev("alice")), vec![]).await;
    let relay = mem_node(&spec, dirs[1].path(), None, vec![p2p_addr(&miner)]).await;
    let wallet = mem_node(&spec, dirs[2].path(), None, vec![p2p_addr(&relay)]).await;
    wait_until("wallet connected", LONG, || {
        wallet.network().unwrap().peer_count() >= 1 && relay.network().unwrap().peer_count() >= 2
    })
    .await;
    let tx = transfer(&wallet, "bob", 0, dev("eve"), 12_345);
    // Submit over RPC, as a user would.
    let hash = rpc(
        wallet.rpc_addr().unwrap(),
        "author_submitTransaction",
        vec![serde_json::json!(
            cachecash_runtime::primitives::encode_hex(&tx.encode())
        )],
    )
    .await
    .unwrap();
    let hash = Hash::from_hex(hash.as_str().unwrap()).unwrap();
    let block = wait_for_inclusion(&miner, hash, LONG).await;
    let mined = miner.chain().block(&block).unwrap().unwrap();
    assert_eq!(mined.header.miner, dev("alice"), "mined by the mining node");
    wait_for_inclusion(&wallet, hash, LONG).await;
    for n in [miner, relay, wallet] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_joiner_syncs_2000_blocks() {
    let (spec, dirs) = setup(2);
    let a = mem_node(&spec, dirs[0].path(), None, vec![]).await;
    extend_chain(&a, 2000, dev("alice"));
    assert_eq!(a.chain().head().header.number, 2000);
    let b = mem_node(&spec, dirs[1].path(), None, vec![p2p_addr(&a)]).await;
    wait_for_height(&b, 2000, LONG).await;
    assert_eq!(head_hash(&b), head_hash(&a));
    let state = rpc(b.rpc_addr().unwrap(), "system_syncState", vec![])
        .await
        .unwrap();
    assert_eq!(state["startingBlock"], 0);
    assert_eq!(state["currentBlock"], 2000);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitioned_miners_converge_on_the_most_work_chain_and_lose_no_transaction() {
    let (spec, dirs) = setup(2);
    let a = mem_node(&spec, dirs[0].path(), Some(dev("alice")), vec![]).await;
    let b = mem_node(&spec, dirs[1].path(), Some(dev("bob")), vec![]).await;
    // Partitioned: each side mines its own branch with its own transaction.
    let tx_a = a
        .pool()
        .submit(transfer(&a, "charlie", 0, dev("eve"), 1))
        .unwrap();
    let tx_b = b
        .pool()
        .submit(transfer(&b, "dave", 0, dev("eve"), 2))
        .unwrap();
    wait_for_inclusion(&a, tx_a, LONG).await;
    wait_for_inclusion(&b, tx_b, LONG).await;
    wait_for_height(&a, 4, LONG).await;
    wait_for_height(&b, 4, LONG).await;
    assert_ne!(
        a.chain().canonical_hash(1).unwrap(),
        b.chain().canonical_hash(1).unwrap(),
        "the partition produced two branches"
    );
    // Heal.
    a.network()
        .unwrap()
        .add_reserved_peer(p2p_addr(&b))
        .await
        .unwrap();
    wait_until("heads equal after healing", LONG, || heads_equal(&[&a, &b])).await;
    // Neither branch's transaction is lost: the loser's is re-admitted
    // and mined on the winning branch.
    for tx in [tx_a, tx_b] {
        wait_for_inclusion(&a, tx, LONG).await;
        wait_for_inclusion(&b, tx, LONG).await;
    }
    let reorgs: u64 = [&a, &b]
        .iter()
        .map(|n| n.chain().metrics().reorgs.get())
        .sum();
    assert!(reorgs >= 1, "one side reorganised");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_serving_an_invalid_block_is_banned_and_the_honest_chain_is_unaffected() {
    let (spec, dirs) = setup(2);
    let honest = mem_node(&spec, dirs[0].path(), None, vec![]).await;
    extend_chain(&honest, 3, dev("alice"));
    let before = head_hash(&honest);
    let evil = mem_node(&spec, dirs[1].path(), None, vec![p2p_addr(&honest)]).await;
    wait_for_height(&evil, 3, LONG).await;
    // A block with valid proof of work but a false state root.
    let head = evil.chain().head();
    let mut block = mine_on(
        &evil,
        &head.header,
        head.header.timestamp + 1,
        Vec::new(),
        dev("bob"),
    );
    block.header.state_root = Hash([9; 32]);
    grind(&mut block.header);
    let bad = block.hash();
    let bytes = block.encode();
    let net = evil.network().unwrap().clone();
    // Publishing succeeds once the honest node's subscription is known.
    publish_once_subscribed(&net, Topic::Blocks, bytes).await;
    wait_until("evil peer banned", LONG, || bans(&honest, None) >= 1).await;
    wait_until("evil peer disconnected", LONG, || {
        honest.network().unwrap().peer_count() == 0
    })
    .await;
    assert_eq!(head_hash(&honest), before);
    assert!(honest.chain().header(&bad).unwrap().is_none());
    // It cannot come back while banned.
    let _ = net.dial(p2p_addr(&honest)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(honest.network().unwrap().peer_count(), 0);
    evil.stop().await;
    honest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_10000_blocks_behind_restarted_during_sync_resumes_from_its_stored_head() {
    let (spec, dirs) = setup(2);
    let a = mem_node(&spec, dirs[0].path(), None, vec![]).await;
    extend_chain(&a, 10_000, dev("alice"));
    let b = start_networked(
        &spec,
        dirs[1].path(),
        Storage::Rocks,
        None,
        vec![p2p_addr(&a)],
    )
    .await;
    wait_for_height(&b, 2_000, LONG).await;
    b.stop().await;
    let b = start_networked(
        &spec,
        dirs[1].path(),
        Storage::Rocks,
        None,
        vec![p2p_addr(&a)],
    )
    .await;
    let resumed_at = b.chain().head().header.number;
    assert!(resumed_at >= 2_000, "the restarted node kept its blocks");
    let state = rpc(b.rpc_addr().unwrap(), "system_syncState", vec![])
        .await
        .unwrap();
    assert!(state["startingBlock"].as_u64().unwrap() >= 2_000, "{state}");
    wait_for_height(&b, 10_000, LONG).await;
    assert_eq!(head_hash(&b), head_hash(&a));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_and_oversized_input_is_rejected_without_a_crash() {
    let (spec, dirs) = setup(3);
    let node = mem_node(&spec, dirs[0].path(), None, vec![]).await;
    extend_chain(&node, 5, dev("alice"));
    // Raw garbage on the TCP port: the handshake fails, nothing else.
    let addr = p2p_addr(&node);
    let tcp_port = addr
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(p) => Some(p),
            _ => None,
        })
        .unwrap();
    for size in [1usize, 1024, 4 * 1024 * 1024] {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", tcp_port)) {
            let _ = s.write_all(&vec![0xA5; size]);
        }
    }
    // Garbage on the block and transaction topics gets the sender banned.
    let evil = mem_node(&spec, dirs[1].path(), None, vec![addr.clone()]).await;
    let net = evil.network().unwrap().clone();
    publish_once_subscribed(&net, Topic::Transactions, vec![0xff; 300]).await;
    wait_until("garbage sender banned", LONG, || bans(&node, None) >= 1).await;
    // Oversized gossip is refused by the sender's own limit, and the node
    // is still serving: a fresh peer syncs from it.
    assert!(
        net.publish(Topic::Blocks, vec![0; 8 * 1024 * 1024])
            .await
            .is_err()
    );
    let fresh = mem_node(&spec, dirs[2].path(), None, vec![addr]).await;
    wait_for_height(&fresh, 5, LONG).await;
    assert_eq!(head_hash(&fresh), head_hash(&node));
    for n in [node, evil, fresh] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn range_and_hash_requests_are_served_and_out_of_bounds_ones_are_never_sent() {
    use cachecash_node::network::protocol::{SyncRequest, SyncResponse};
    let (spec, dirs) = setup(2);
    let server = mem_node(&spec, dirs[0].path(), None, vec![]).await;
    extend_chain(&server, 10, dev("alice"));
    let client = mem_node(&spec, dirs[1].path(), None, vec![p2p_addr(&server)]).await;
    wait_for_height(&client, 10, LONG).await;
    let net = client.network().unwrap().clone();
    let peer = server.network().unwrap().local_peer_id();
    let canonical = |n: u64| server.chain().canonical_hash(n).unwrap().unwrap();

    match net
        .request(peer, SyncRequest::HeadersByRange { start: 3, count: 4 })
        .await
        .unwrap()
    {
        SyncResponse::Headers(h) => {
            assert_eq!(
                h.iter().map(|h| h.number).collect::<Vec<_>>(),
                vec![3, 4, 5, 6]
            );
            assert_eq!(h[3].hash(), canonical(6));
        }
        other => panic!("unexpected {other:?}"),
    }
    // The range runs past the head: the server sends what it has.
    match net
        .request(peer, SyncRequest::BlocksByRange { start: 9, count: 5 })
        .await
        .unwrap()
    {
        SyncResponse::Blocks(b) => {
            assert_eq!(b.len(), 2);
            let block = cachecash_runtime::Block::decode_all(&mut &b[1][..]).unwrap();
            assert_eq!(block.hash(), canonical(10));
        }
        other => panic!("unexpected {other:?}"),
    }
    let unknown = Hash([0xee; 32]);
    match net
        .request(
            peer,
            SyncRequest::HeadersByHash {
                hashes: vec![canonical(5), unknown],
            },
        )
        .await
        .unwrap()
    {
        SyncResponse::Headers(h) => {
            assert_eq!(h.len(), 1);
            assert_eq!(h[0].hash(), canonical(5));
        }
        other => panic!("unexpected {other:?}"),
    }
    // The handle refuses to send a request out of bounds (it would get
    // this node banned).
    let too_many = SyncRequest::Blocks {
        hashes: vec![unknown; 129],
    };
    let err = net.request(peer, too_many).await.unwrap_err();
    assert!(err.contains("not sent"), "{err}");
    client.stop().await;
    server.stop().await;
}

/// Sends `payload` as a sync request from a fresh raw client to `node`
/// and drives the client until the request is answered or fails.
async fn send_raw_sync_request(node: &Node, payload: Vec<u8>) {
    let protocol = cachecash_node::network::protocol::sync_protocol(&node.chain().genesis_hash());
    cachecash_tests::raw::flood(p2p_addr(node), protocol, payload, 1, |_| false, LONG).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_and_oversized_sync_requests_get_the_sender_banned_and_the_node_keeps_serving() {
    let (spec, dirs) = setup(2);
    let node = mem_node(&spec, dirs[0].path(), None, vec![]).await;
    extend_chain(&node, 5, dev("alice"));
    // Not a request at all.
    send_raw_sync_request(&node, vec![0xff; 100]).await;
    wait_until("garbage sender banned", LONG, || bans(&node, None) >= 1).await;
    // Larger than any request may be.
    send_raw_sync_request(&node, vec![0; 64 * 1024]).await;
    wait_until("oversized sender banned", LONG, || bans(&node, None) >= 2).await;
    assert!(
        node.chain()
            .metrics()
            .encode()
            .contains("reason=\"malformed sync request\""),
        "the reason is counted"
    );
    // An honest peer still syncs from it.
    let fresh = mem_node(&spec, dirs[1].path(), None, vec![p2p_addr(&node)]).await;
    wait_for_height(&fresh, 5, LONG).await;
    fresh.stop().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_rpc_methods_report_peers_and_refuse_bad_input() {
    use cachecash_node::rpc::RpcMethods;
    use serde_json::json;
    let (spec, dirs) = setup(4);
    let a = mem_node(&spec, dirs[0].path(), None, vec![]).await;
    let b = mem_node(&spec, dirs[1].path(), None, vec![p2p_addr(&a)]).await;
    let rpc_b = b.rpc_addr().unwrap();
    let a_id = a.network().unwrap().local_peer_id().to_string();

    let id = rpc(rpc_b, "system_localPeerId", vec![]).await.unwrap();
    assert_eq!(id, json!(b.network().unwrap().local_peer_id().to_string()));
    let addrs = rpc(rpc_b, "system_localListenAddresses", vec![])
        .await
        .unwrap();
    let first = addrs[0].as_str().unwrap();
    assert!(
        first.starts_with("/ip4/127.0.0.1/tcp/") && first.ends_with(id.as_str().unwrap()),
        "{addrs}"
    );
    wait_until("b sees a with its status", LONG, || {
        b.network()
            .unwrap()
            .peers()
            .iter()
            .any(|p| p.peer_id == a_id && p.best_number == Some(0))
    })
    .await;
    let peers = rpc(rpc_b, "system_peers", vec![]).await.unwrap();
    assert_eq!(peers[0]["peerId"], json!(a_id), "{peers}");
    assert_eq!(peers[0]["bestNumber"], json!(0));
    assert_eq!(peers[0]["inbound"], json!(false));

    // Bad input: a clear error, and the node keeps serving.
    let err = rpc(
        rpc_b,
        "system_addReservedPeer",
        vec![json!("not an address")],
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with("-32602") && err.contains("multiaddress"),
        "{err}"
    );
    let err = rpc(
        rpc_b,
        "system_addReservedPeer",
        vec![json!("/ip4/127.0.0.1/tcp/1")],
    )
    .await
    .unwrap_err();
    assert!(err.contains("/p2p/"), "{err}");
    let err = rpc(
        rpc_b,
        "system_removeReservedPeer",
        vec![json!("12D3Koo-garbage")],
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with("-32602") && err.contains("peer id"),
        "{err}"
    );
    let err = rpc(rpc_b, "system_addReservedPeer", vec![])
        .await
        .unwrap_err();
    assert!(err.starts_with("-32602"), "{err}");

    // Reserve a, then release it.
    let reserved = rpc(
        rpc_b,
        "system_addReservedPeer",
        vec![json!(p2p_addr(&a).to_string())],
    )
    .await
    .unwrap();
    assert_eq!(reserved, json!(a_id));
    wait_until("a shown as reserved", LONG, || {
        b.network()
            .unwrap()
            .peers()
            .iter()
            .any(|p| p.peer_id == a_id && p.reserved)
    })
    .await;
    assert_eq!(
        rpc(rpc_b, "system_removeReservedPeer", vec![json!(a_id)])
            .await
            .unwrap(),
        json!(true)
    );
    assert_eq!(
        rpc(rpc_b, "system_removeReservedPeer", vec![json!(a_id)])
            .await
            .unwrap(),
        json!(false)
    );

    // The reserved-peer methods are unsafe.
    let safe = start_node_with(&spec, dirs[2].path(), Storage::Memory, None, |c| {
        c.rpc_methods = RpcMethods::Safe;
        c.network = Some(cachecash_node::network::NetworkConfig::loopback(
            dirs[2].path().join("key"),
        ));
    })
    .await;
    let err = rpc(
        safe.rpc_addr().unwrap(),
        "system_addReservedPeer",
        vec![json!(p2p_addr(&a).to_string())],
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("1012"), "{err}");

    // Without networking, peer methods say so; health describes a lone node.
    let alone = start_node(&spec, dirs[3].path(), Storage::Memory, None).await;
    let err = rpc(alone.rpc_addr().unwrap(), "system_localPeerId", vec![])
        .await
        .unwrap_err();
    assert!(
        err.starts_with("1014") && err.contains("networking"),
        "{err}"
    );
    let health = rpc(alone.rpc_addr().unwrap(), "system_health", vec![])
        .await
        .unwrap();
    assert_eq!(
        health,
        json!({"peers": 0, "isSyncing": false, "shouldHavePeers": false})
    );
    for n in [a, b, safe, alone] {
        n.stop().await;
    }
}

/// A peer that claims far more work than it has: its status says so, and
/// asked for headers it has none beyond the node's chain (or only a
/// lighter fork).
async fn run_lying_peer(node: &Node, headers: Vec<cachecash_runtime::Header>) {
    use cachecash_node::network::protocol::{
        Incoming, Status, SyncCodec, SyncRequest, SyncResponse,
    };
    use futures::StreamExt;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::SwarmEvent;
    let genesis = node.chain().genesis_hash();
    let protocol = cachecash_node::network::protocol::sync_protocol(&genesis);
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            Default::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::<SyncCodec>::new(
                [(protocol, ProtocolSupport::Full)],
                request_response::Config::default(),
            )
        })
        .unwrap()
        .build();
    swarm.dial(p2p_addr(node)).unwrap();
    let lie = Status {
        genesis,
        best_number: 1_000_000,
        best_hash: cachecash_runtime::Hash::default(),
        total_work: [0x7f; 32],
    };
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = swarm.select_next_some().await
            {
                let answer = match request {
                    Incoming::Request(SyncRequest::Status(_)) => SyncResponse::Status(lie.clone()),
                    Incoming::Request(SyncRequest::Headers { .. }) => {
                        SyncResponse::Headers(headers.clone())
                    }
                    _ => SyncResponse::Refused("no".into()),
                };
                let _ = swarm.behaviour_mut().send_response(channel, answer);
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_whose_headers_do_not_deliver_its_claimed_work_is_banned() {
    let (spec, dirs) = setup(2);
    let node = mem_node(&spec, dirs[0].path(), None, vec![]).await;
    extend_chain(&node, 5, dev("alice"));
    // Nothing beyond our chain.
    run_lying_peer(&node, vec![]).await;
    wait_until(
        "the peer claiming work it has none of is banned",
        LONG,
        || bans(&node, None) >= 1,
    )
    .await;
    // A lighter fork offered as the heavier chain.
    let other = mem_node(&spec, dirs[1].path(), None, vec![]).await;
    extend_chain(&other, 2, dev("bob"));
    let fork: Vec<_> = (1..=2)
        .map(|n| other.chain().header_by_number(n).unwrap().unwrap())
        .collect();
    run_lying_peer(&node, fork).await;
    wait_until(
        "the peer offering a lighter fork as heavier is banned",
        LONG,
        || bans(&node, None) >= 2,
    )
    .await;
    // Headers whose timestamp is not above the median time past.
    let genesis = node.chain().header_by_number(0).unwrap().unwrap();
    let stale = mine_on(&other, &genesis, genesis.timestamp, vec![], dev("bob"));
    run_lying_peer(&node, vec![stale.header]).await;
    wait_until("the peer sending stale timestamps is banned", LONG, || {
        bans(&node, None) >= 3
    })
    .await;
    assert_eq!(node.chain().head().header.number, 5, "the head never moved");
    let metrics = node.chain().metrics().encode();
    assert!(
        metrics.contains("reason=\"claimed work not delivered\""),
        "banned for the claim"
    );
    assert!(metrics.contains("reason=\"invalid headers\""), "{metrics}");
    other.stop().await;
    node.stop().await;
}

/// Headers without end: a peer claims a huge amount of work and answers
/// every header request with a full batch of well-formed headers (so the
/// batch never "ends" and its claim cannot be judged), but never serves a
/// body. The node's state stays bounded (one round of headers), its chain
/// never takes a block from the liar, and an honest peer with a real
/// heavier-than-ours chain still brings the node to its head.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_serving_headers_without_end_and_no_bodies_cannot_stop_an_honest_sync() {
    use cachecash_node::network::protocol::MAX_HEADERS;
    let (spec, dirs) = setup(3);
    let node = mem_node(&spec, dirs[0].path(), None, vec![]).await;
    // A full batch of real headers on a fork of its own.
    let forger = mem_node(&spec, dirs[1].path(), None, vec![]).await;
    extend_chain(&forger, u64::from(MAX_HEADERS), dev("bob"));
    let endless: Vec<_> = (1..=u64::from(MAX_HEADERS))
        .map(|n| forger.chain().header_by_number(n).unwrap().unwrap())
        .collect();
    run_lying_peer(&node, endless).await;
    // The liar gets the first round; then an honest peer with 40 blocks.
    let honest = mem_node(&spec, dirs[2].path(), None, vec![]).await;
    extend_chain(&honest, 40, dev("charlie"));
    let target = honest.chain().head().header.hash();
    honest
        .network()
        .unwrap()
        .dial(p2p_addr(&node))
        .await
        .unwrap();
    wait_until("the node reaches the honest head", LONG, || {
        node.chain().head().header.hash() == target
    })
    .await;
    // Nothing of the liar's fork was ever adopted.
    let liar_block = forger.chain().header_by_number(1).unwrap().unwrap().hash();
    assert!(node.chain().header(&liar_block).unwrap().is_none());
    forger.stop().await;
    honest.stop().await;
    node.stop().await;
}

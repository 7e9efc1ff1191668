//! Async hygiene under load: a node whose pool holds thousands of
//! transactions (so every new block starts a large re-validation) and
//! whose JSON-RPC is flooded with storage-reading calls still imports
//! every block a peer announces, and keeps answering RPC meanwhile.
//!
//! The re-validation, the storage-reading RPC methods and header checks
//! run on the blocking pool, so neither can occupy the async workers that
//! drive the swarm and the import queue. The test reports the propagation
//! delays it saw; it asserts liveness (every block arrives within a
//! generous deadline), not speed.

use cachecash_node::network::NetworkConfig;
use cachecash_node::rpc::api::{AuthorApiClient, ChainApiClient, StateApiClient};
use cachecash_node::{BlockOrigin, PoolLimits, Storage};
use cachecash_tests::{
    dev, fast_dev_spec, mine_on, p2p_addr, start_node_with, transfer, wait_until,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Flooding clients.
const FLOODERS: usize = 32;
/// Transactions per dev account in the pool.
const PER_ACCOUNT: u64 = 1000;
/// Blocks announced during the flood.
const BLOCKS: u64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_propagate_while_rpc_is_flooded_during_a_large_pool_revalidation() {
    let spec = fast_dev_spec(200);
    let dir = tempfile::tempdir().unwrap();
    let producer = start_node_with(&spec, &dir.path().join("a"), Storage::Memory, None, |c| {
        c.network = Some(NetworkConfig::loopback(
            dir.path().join("a/network/secret_ed25519"),
        ));
    })
    .await;
    let bootnode = p2p_addr(&producer);
    let node = start_node_with(&spec, &dir.path().join("b"), Storage::Memory, None, |c| {
        let mut net = NetworkConfig::loopback(dir.path().join("b/network/secret_ed25519"));
        net.bootnodes = vec![bootnode];
        c.network = Some(net);
        c.pool_limits = PoolLimits {
            max_transactions: 8192,
            max_bytes: 16 * 1024 * 1024,
            max_per_account: 2048,
        };
    })
    .await;
    wait_until("the nodes connect", Duration::from_secs(20), || {
        node.network().unwrap().peer_count() > 0
    })
    .await;

    // A pool of 6,000 ready transactions that the announced (empty)
    // blocks never include: each block re-validates all of them.
    for name in cachecash_chain_spec::dev_accounts::DEV_ACCOUNT_NAMES {
        for nonce in 0..PER_ACCOUNT {
            node.pool()
                .submit(transfer(&node, name, nonce, dev("ferdie"), 1))
                .unwrap();
        }
    }
    let pooled = node.pool().pending().len();
    assert_eq!(pooled as u64, 6 * PER_ACCOUNT);

    // The flood: every client loops over storage-reading methods.
    let url = format!("http://{}", node.rpc_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    for i in 0..FLOODERS {
        let client = jsonrpsee::http_client::HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(60))
            .build(&url)
            .unwrap();
        let (stop, answered) = (stop.clone(), answered.clone());
        flooders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let ok = match i % 3 {
                    0 => client.proof(dev("alice"), None).await.is_ok(),
                    1 => client.block(None).await.is_ok(),
                    _ => client
                        .pending_transactions(Some(1024), Some(0))
                        .await
                        .is_ok(),
                };
                if ok {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // Blocks announced by the producer while the flood runs.
    let mut delays = Vec::new();
    for _ in 0..BLOCKS {
        let head = producer.chain().head();
        let block = mine_on(
            &producer,
            &head.header,
            head.header.timestamp + 1,
            Vec::new(),
            dev("dave"),
        );
        let hash = block.hash();
        let sent = Instant::now();
        producer
            .chain()
            .import_block(block, BlockOrigin::Mined)
            .unwrap();
        wait_until(
            "the flooded node to import the announced block",
            Duration::from_secs(30),
            || node.chain().head().hash == hash,
        )
        .await;
        delays.push(sent.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.await.unwrap();
    }

    // RPC kept answering, and the pool was re-validated and kept every
    // still-valid transaction.
    assert!(answered.load(Ordering::Relaxed) > 0);
    let client = jsonrpsee::http_client::HttpClientBuilder::default()
        .build(&url)
        .unwrap();
    assert_eq!(
        client.header(None).await.unwrap().unwrap().header.number,
        BLOCKS
    );
    assert_eq!(node.pool().pending().len(), pooled);
    delays.sort();
    eprintln!(
        "propagation under a {FLOODERS}-client RPC flood with {pooled} pooled transactions: median {:?}, max {:?}, {} RPC answers",
        delays[delays.len() / 2],
        delays[delays.len() - 1],
        answered.load(Ordering::Relaxed)
    );
    node.stop().await;
    producer.stop().await;
}

//! Hostile gossip on both topics (blocks, transactions), sent by a raw
//! gossipsub peer written for the tests ([`RawGossip`]): undecodable bytes,
//! messages past the node's size limit, and well-formed but invalid
//! payloads. Each is kept out of the node's chain and pool, its sender is
//! dealt with as the node's design says (banned for provably invalid data;
//! oversized messages never reach validation), and an honest peer is
//! served meanwhile.

use cachecash_node::chain::BlockOrigin;
use cachecash_node::network::behaviour::{blocks_topic, transactions_topic};
use cachecash_node::service::{Node, Storage};
use cachecash_runtime::{Hash, Transaction};
use cachecash_tests::raw::RawGossip;
use cachecash_tests::*;
use libp2p::gossipsub::IdentTopic;
use parity_scale_codec::Encode;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

/// A victim node, an honest peer connected to it, and a raw gossip peer
/// connected to it that knows the victim subscribes to `topic`.
struct Scene {
    spec: cachecash_chain_spec::ChainSpec,
    node: Node,
    honest: Node,
    raw: RawGossip,
    _dirs: Vec<tempfile::TempDir>,
}

impl Scene {
    async fn new(topic: fn(&Hash) -> IdentTopic) -> Scene {
        let spec = fast_dev_spec(150);
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let node = start_networked(&spec, dirs[0].path(), Storage::Memory, None, vec![]).await;
        let honest = start_networked(
            &spec,
            dirs[1].path(),
            Storage::Memory,
            None,
            vec![p2p_addr(&node)],
        )
        .await;
        let raw = RawGossip::connect(p2p_addr(&node));
        raw.wait_subscribed(&topic(&node.chain().genesis_hash()), LONG)
            .await;
        wait_until("the victim has both peers", LONG, || {
            node.network().unwrap().peer_count() == 2
        })
        .await;
        Scene {
            spec,
            node,
            honest,
            raw,
            _dirs: dirs,
        }
    }

    fn topic(&self, topic: fn(&Hash) -> IdentTopic) -> IdentTopic {
        topic(&self.node.chain().genesis_hash())
    }

    fn raw_is_listed(&self) -> bool {
        let id = self.raw.peer_id().to_string();
        self.node
            .network()
            .unwrap()
            .peers()
            .iter()
            .any(|p| p.peer_id == id)
    }

    /// The victim banned the raw peer for `reason`, closed its connection,
    /// and refuses it when it dials again.
    async fn assert_raw_banned(&self, reason: &str) {
        wait_until("the raw peer is banned", LONG, || {
            bans(&self.node, Some(reason)) == 1
        })
        .await;
        wait_until("the ban closes the connection", LONG, || {
            !self.raw.connections().open && !self.raw_is_listed()
        })
        .await;
        let before = self.raw.connections();
        self.raw.dial(p2p_addr(&self.node)).await.unwrap();
        wait_until("the banned peer's new connection ends", LONG, || {
            self.raw.connections().ended > before.ended
        })
        .await;
        assert!(!self.raw_is_listed(), "a banned peer is never admitted");
        assert_eq!(bans(&self.node, None), 1, "no one else was banned");
    }

    /// An honest transaction gossiped by the honest peer reaches the
    /// victim's pool.
    async fn assert_honest_transaction_arrives(&self) -> Hash {
        let tx = spec_transfer(&self.spec, "bob", 0, dev("eve"), 7);
        let hash = self.honest.pool().submit(tx).unwrap();
        wait_until(
            "the honest transaction reaches the victim's pool",
            LONG,
            || self.node.pool().contains(&hash),
        )
        .await;
        hash
    }

    /// A block mined by the honest peer reaches the victim and becomes
    /// its head.
    async fn assert_honest_block_arrives(&self) -> Hash {
        let head = self.honest.chain().head();
        let block = mine_on(
            &self.honest,
            &head.header,
            head.header.timestamp + 1,
            Vec::new(),
            dev("charlie"),
        );
        let hash = block.hash();
        self.honest
            .chain()
            .import_block(block, BlockOrigin::Mined)
            .unwrap();
        wait_until("the honest block becomes the victim's head", LONG, || {
            head_hash(&self.node) == hash
        })
        .await;
        hash
    }

    async fn stop(self) {
        drop(self.raw);
        self.honest.stop().await;
        self.node.stop().await;
    }
}

/// Gossip bytes the victim received on `label` (`gossip_blocks`,
/// `gossip_transactions`), as counted before validation.
fn gossip_bytes_in(node: &Node, label: &str) -> u64 {
    let p = format!("protocol=\"{label}\"");
    node.chain()
        .metrics()
        .encode()
        .lines()
        .filter(|l| {
            l.starts_with("cachecash_network_bytes_total")
                && l.contains(&p)
                && l.contains("direction=\"in\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Bytes past the victim's gossip limit (its largest block plus 64 KiB).
fn oversized(node: &Node) -> Vec<u8> {
    let limit = node.chain().params().max_block_bytes as usize + 64 * 1024;
    vec![0x5a; limit + 256 * 1024]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_gossiping_undecodable_transaction_bytes_is_banned_and_honest_transactions_still_arrive()
 {
    let s = Scene::new(transactions_topic).await;
    let head = head_hash(&s.node);
    s.raw
        .publish(&s.topic(transactions_topic), vec![0xff; 300])
        .await
        .unwrap();
    s.assert_raw_banned("malformed transaction").await;
    assert_eq!(gossip_count(&s.node, "gossip_transactions", "reject"), 1);
    assert_eq!(s.node.pool().len(), 0, "nothing entered the pool");
    s.assert_honest_transaction_arrives().await;
    assert_eq!(s.node.pool().len(), 1);
    assert_eq!(head_hash(&s.node), head, "the chain is untouched");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_gossiping_a_badly_signed_transaction_is_banned_and_honest_transactions_still_arrive()
 {
    let s = Scene::new(transactions_topic).await;
    let head = head_hash(&s.node);
    // Alice's transfer, signed with Bob's key.
    let forged = Transaction {
        signer: dev("alice"),
        nonce: 0,
        fee: s.spec.consensus.minimum_fee,
        call: cachecash_runtime::Call::Transfer {
            dest: dev("eve"),
            amount: 1,
        },
    }
    .sign(
        &cachecash_chain_spec::dev_accounts::dev_signing_key("bob").unwrap(),
        &s.node.chain().genesis_hash(),
    );
    s.raw
        .publish(&s.topic(transactions_topic), forged.encode())
        .await
        .unwrap();
    s.assert_raw_banned("badly signed transaction").await;
    assert!(!s.node.pool().contains(&forged.hash()));
    s.assert_honest_transaction_arrives().await;
    assert_eq!(s.node.pool().len(), 1, "only the honest transaction");
    assert_eq!(head_hash(&s.node), head, "the chain is untouched");
    s.stop().await;
}

/// A correctly signed transaction from an account without funds is kept
/// out of the pool, but its sender is neither banned nor disconnected: an
/// honest relay can forward one in a race (a balance spent in a block it
/// has not seen yet), so the node only drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_gossiping_an_unfunded_transaction_has_it_dropped_without_a_ban() {
    let s = Scene::new(transactions_topic).await;
    let head = head_hash(&s.node);
    let pauper = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let unfunded = Transaction {
        signer: cachecash_runtime::AccountId::from_signing_key(&pauper),
        nonce: 0,
        fee: s.spec.consensus.minimum_fee,
        call: cachecash_runtime::Call::Transfer {
            dest: dev("eve"),
            amount: 1,
        },
    }
    .sign(&pauper, &s.node.chain().genesis_hash());
    s.raw
        .publish(&s.topic(transactions_topic), unfunded.encode())
        .await
        .unwrap();
    wait_until("the unfunded transaction is judged", LONG, || {
        gossip_count(&s.node, "gossip_transactions", "ignore") == 1
    })
    .await;
    assert!(!s.node.pool().contains(&unfunded.hash()));
    s.assert_honest_transaction_arrives().await;
    assert_eq!(s.node.pool().len(), 1, "only the honest transaction");
    assert_eq!(bans(&s.node, None), 0, "dropped, not banned");
    assert!(s.raw_is_listed() && s.raw.connections().open);
    assert_eq!(head_hash(&s.node), head, "the chain is untouched");
    s.stop().await;
}

/// A transaction message past the gossip size limit is refused by the
/// victim's gossipsub before the node sees any of it: the stream it came
/// on is closed, and nothing is decoded, validated or counted. The same
/// hand-written framing within the limit is taken and validated, so the
/// refusal is for the size. The sender is neither banned nor disconnected
/// (the node never learns of the message), and honest transactions keep
/// arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_transaction_message_is_refused_before_validation_and_honest_transactions_still_arrive()
 {
    let s = Scene::new(transactions_topic).await;
    let topic = s.topic(transactions_topic);
    let head = head_hash(&s.node);
    let within = spec_transfer(&s.spec, "alice", 0, dev("eve"), 1);
    s.raw
        .send_frame(&s.raw.publish_frame(&topic, &within.encode(), 1))
        .await
        .unwrap();
    wait_until("the framing within the limit is validated", LONG, || {
        s.node.pool().contains(&within.hash())
    })
    .await;
    let bytes = gossip_bytes_in(&s.node, "gossip_transactions");
    s.raw
        .send_frame_until_refused(s.raw.publish_frame(&topic, &oversized(&s.node), 2), LONG)
        .await
        .expect("the victim refuses the oversized message's stream");
    assert_eq!(
        gossip_bytes_in(&s.node, "gossip_transactions"),
        bytes,
        "no byte of the oversized message reached the node"
    );
    assert_eq!(gossip_count(&s.node, "gossip_transactions", "accept"), 1);
    assert_eq!(gossip_count(&s.node, "gossip_transactions", "reject"), 0);
    assert_eq!(gossip_count(&s.node, "gossip_transactions", "ignore"), 0);
    assert_eq!(bans(&s.node, None), 0, "not banned");
    assert!(
        s.raw_is_listed() && s.raw.connections().open,
        "not disconnected"
    );
    s.assert_honest_transaction_arrives().await;
    assert_eq!(s.node.pool().len(), 2, "the two valid transactions only");
    assert_eq!(head_hash(&s.node), head, "the chain is untouched");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_gossiping_undecodable_block_bytes_is_banned_and_honest_blocks_still_arrive() {
    let s = Scene::new(blocks_topic).await;
    let head = head_hash(&s.node);
    s.raw
        .publish(&s.topic(blocks_topic), vec![0xff; 300])
        .await
        .unwrap();
    s.assert_raw_banned("invalid block").await;
    assert_eq!(gossip_count(&s.node, "gossip_blocks", "reject"), 1);
    assert_eq!(head_hash(&s.node), head, "the chain is untouched");
    s.assert_honest_block_arrives().await;
    assert_eq!(s.node.chain().head().header.number, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_gossiping_a_block_without_its_proof_of_work_is_banned_and_honest_blocks_still_arrive()
 {
    let s = Scene::new(blocks_topic).await;
    let genesis = s.node.chain().head();
    // A valid block on the victim's head, with a nonce that misses the
    // target.
    let mut block = mine_on(
        &s.node,
        &genesis.header,
        genesis.header.timestamp + 1,
        Vec::new(),
        dev("bob"),
    );
    while block.header.target.is_met_by(&block.header.hash()) {
        block.header.nonce += 1;
    }
    let bad = block.hash();
    s.raw
        .publish(&s.topic(blocks_topic), block.encode())
        .await
        .unwrap();
    s.assert_raw_banned("invalid block").await;
    assert!(s.node.chain().header(&bad).unwrap().is_none());
    assert_eq!(head_hash(&s.node), genesis.hash, "the chain is untouched");
    assert_eq!(
        s.node.chain().head().header.state_root,
        genesis.header.state_root
    );
    let honest = s.assert_honest_block_arrives().await;
    assert_eq!(s.node.chain().head().header.number, 1);
    assert_ne!(honest, bad);
    s.stop().await;
}

/// A block message past the gossip size limit is refused by the victim's
/// gossipsub before the node sees any of it, while the same hand-written
/// framing within the limit is imported. The sender is neither banned nor
/// disconnected, and honest blocks keep arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_block_message_is_refused_before_validation_and_honest_blocks_still_arrive() {
    let s = Scene::new(blocks_topic).await;
    let topic = s.topic(blocks_topic);
    let genesis = s.node.chain().head();
    let within = mine_on(
        &s.node,
        &genesis.header,
        genesis.header.timestamp + 1,
        Vec::new(),
        dev("bob"),
    );
    // The honest peer has it too, and builds on it.
    s.honest
        .chain()
        .import_block(within.clone(), BlockOrigin::File)
        .unwrap();
    s.raw
        .send_frame(&s.raw.publish_frame(&topic, &within.encode(), 1))
        .await
        .unwrap();
    wait_until("the framing within the limit is imported", LONG, || {
        head_hash(&s.node) == within.hash()
    })
    .await;
    let bytes = gossip_bytes_in(&s.node, "gossip_blocks");
    s.raw
        .send_frame_until_refused(s.raw.publish_frame(&topic, &oversized(&s.node), 2), LONG)
        .await
        .expect("the victim refuses the oversized message's stream");
    assert_eq!(
        gossip_bytes_in(&s.node, "gossip_blocks"),
        bytes,
        "no byte of the oversized message reached the node"
    );
    assert_eq!(gossip_count(&s.node, "gossip_blocks", "reject"), 0);
    assert_eq!(gossip_count(&s.node, "gossip_blocks", "ignore"), 0);
    assert_eq!(bans(&s.node, None), 0, "not banned");
    assert!(
        s.raw_is_listed() && s.raw.connections().open,
        "not disconnected"
    );
    assert_eq!(head_hash(&s.node), within.hash(), "the chain is untouched");
    s.assert_honest_block_arrives().await;
    assert_eq!(s.node.chain().head().header.number, 2);
    s.stop().await;
}

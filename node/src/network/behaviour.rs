//! The composed libp2p behaviour and the swarm it runs in.
//!
//! | part | purpose |
//! |---|---|
//! | `limits` | connection limits (`--max-peers`, of which at most three quarters inbound; per peer; pending) |
//! | `blocked` | the ban list: a banned peer's connections are closed and refused |
//! | `identify` | exchanges listen addresses and the chain-namespaced protocol version |
//! | `ping` | keeps connections alive and measures round trips |
//! | `kad` | Kademlia peer discovery on `/cachecash/<genesis>/kad/1` |
//! | `gossip` | gossipsub: blocks and transactions, strictly signed, validated by the node before forwarding, with peer scoring ([`score_params`]) |
//! | `sync` | request-response: status, headers and blocks ([`super::protocol`]) |
//! | `streams` | generic long-lived streams: the CDN control and chunk protocols (`crate::cdn`) |
//!
//! Every protocol name carries the genesis hash, so nodes of different
//! chains never exchange data. More protocols (the CDN services) join by
//! adding fields here.

use super::protocol::{self, SyncCodec};
use cachecash_runtime::Hash;
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    StreamProtocol, allow_block_list, connection_limits, gossipsub, identify, kad, ping,
    request_response,
};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The node's network behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connection limits.
    pub limits: connection_limits::Behaviour,
    /// Banned peers.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Identify.
    pub identify: identify::Behaviour,
    /// Ping.
    pub ping: ping::Behaviour,
    /// Kademlia discovery.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Block and transaction gossip.
    pub gossip: gossipsub::Behaviour,
    /// Headers-first range sync.
    pub sync: request_response::Behaviour<SyncCodec>,
    /// Long-lived streams for the CDN services; they open and accept
    /// streams through a [`libp2p_stream::Control`], never through the
    /// swarm task.
    pub streams: libp2p_stream::Behaviour,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour").finish_non_exhaustive()
    }
}

/// What the behaviour is built from.
#[derive(Debug, Clone)]
pub struct BehaviourConfig {
    /// Genesis hash: namespaces every protocol.
    pub genesis: Hash,
    /// Most established connections.
    pub max_peers: u32,
    /// Largest gossip message.
    pub max_gossip_bytes: usize,
    /// Timeout of one sync request.
    pub request_timeout: Duration,
}

/// The identify protocol version: peers announcing another are on another
/// chain and are disconnected.
pub fn protocol_version(genesis: &Hash) -> String {
    format!("/cachecash/{}/1", hex::encode(genesis.0))
}

/// The Kademlia protocol name.
pub fn kad_protocol(genesis: &Hash) -> StreamProtocol {
    protocol::protocol_name(genesis, "kad/1")
}

/// Gossip topic of blocks.
pub fn blocks_topic(genesis: &Hash) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("/cachecash/{}/blocks/1", hex::encode(genesis.0)))
}

/// Gossip topic of transactions.
pub fn transactions_topic(genesis: &Hash) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!(
        "/cachecash/{}/transactions/1",
        hex::encode(genesis.0)
    ))
}

/// A gossip message's id: SHA-256 of its topic and data, so the same block
/// or transaction published by two nodes is one message.
pub fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let mut h = Sha256::new();
    h.update(message.topic.as_str().as_bytes());
    h.update([0u8]);
    h.update(&message.data);
    gossipsub::MessageId::from(h.finalize().to_vec())
}

/// Most inbound connections among `max_peers`: a quarter of the slots (at
/// least one) stays free for the peers this node chooses to dial, so
/// strangers connecting in cannot fill every slot and eclipse the node.
pub fn max_inbound(max_peers: u32) -> u32 {
    if max_peers <= 1 {
        return max_peers;
    }
    max_peers.saturating_sub((max_peers / 4).max(1))
}

/// Gossipsub peer scoring. The node already rejects (and bans the sender
/// of) provably invalid blocks and transactions; scoring makes gossipsub
/// itself act on it and on protocol misbehaviour:
/// - invalid messages (P4) weigh heavily, blocks most: one invalid block
///   takes a peer below the graylist threshold, so its gossip is ignored
///   even before the ban lands;
/// - mesh delivery deficits (P3, P3b) are off: blocks come every few
///   seconds and transactions in bursts, so an honest peer would often
///   "under-deliver";
/// - time in mesh (P1) and first deliveries (P2) reward long-lived, useful
///   peers, capped so they never outweigh one invalid block;
/// - IP colocation (P6) penalises more than ten peers from one address,
///   except loopback, where tests and single-host deployments run;
/// - broken gossip promises and GRAFT floods (P7) use the library's
///   weights.
pub fn score_params(genesis: &Hash) -> gossipsub::PeerScoreParams {
    let topic = |invalid_weight: f64| gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 300.0,
        first_message_deliveries_weight: 0.5,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: invalid_weight,
        invalid_message_deliveries_decay: 0.99,
        ..gossipsub::TopicScoreParams::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        topic_score_cap: 50.0,
        ip_colocation_factor_whitelist: [
            std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ]
        .into_iter()
        .collect(),
        ..gossipsub::PeerScoreParams::default()
    };
    params
        .topics
        .insert(blocks_topic(genesis).hash(), topic(-150.0));
    params
        .topics
        .insert(transactions_topic(genesis).hash(), topic(-30.0));
    params
}

/// Score thresholds: the library's (gossip −10, publish −50, graylist
/// −80), which the weights of [`score_params`] are sized against.
pub fn score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds::default()
}

impl Behaviour {
    /// Builds the behaviour for `key`.
    pub fn new(
        key: &Keypair,
        config: &BehaviourConfig,
        codec: SyncCodec,
    ) -> Result<Behaviour, String> {
        let peer_id = key.public().to_peer_id();
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(config.max_peers))
                .with_max_established_incoming(Some(max_inbound(config.max_peers)))
                .with_max_established_per_peer(Some(2))
                .with_max_pending_incoming(Some(config.max_peers))
                .with_max_pending_outgoing(Some(config.max_peers)),
        );
        let identify = identify::Behaviour::new(
            identify::Config::new(protocol_version(&config.genesis), key.public())
                .with_agent_version(format!("cachecash/{}", env!("CARGO_PKG_VERSION"))),
        );
        let ping = ping::Behaviour::new(ping::Config::new());
        let mut kad_config = kad::Config::new(kad_protocol(&config.genesis));
        kad_config.set_query_timeout(Duration::from_secs(30));
        // The swarm task bootstraps when it has too few peers; kad's own
        // timer would only warn on a lone node.
        kad_config.set_periodic_bootstrap_interval(None);
        // Records from peers are judged before they are stored
        // (worker/dht.rs): only valid, newer signed cache adverts are kept.
        kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        // Every node serves the DHT: nodes on private networks (and tests on
        // loopback) never confirm an external address.
        kad.set_mode(Some(kad::Mode::Server));
        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .message_id_fn(message_id)
            .max_transmit_size(config.max_gossip_bytes)
            .heartbeat_interval(Duration::from_millis(700))
            .build()
            .map_err(|e| format!("gossipsub configuration: {e}"))?;
        let mut gossip = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .map_err(|e| format!("gossipsub: {e}"))?;
        gossip
            .with_peer_score(score_params(&config.genesis), score_thresholds())
            .map_err(|e| format!("gossipsub peer scoring: {e}"))?;
        let sync = request_response::Behaviour::with_codec(
            codec,
            [(
                protocol::sync_protocol(&config.genesis),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(64),
        );
        Ok(Behaviour {
            limits,
            blocked: allow_block_list::Behaviour::default(),
            identify,
            ping,
            kad,
            gossip,
            sync,
            streams: libp2p_stream::Behaviour::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_protocols_are_namespaced_by_genesis() {
        let a = Hash([1; 32]);
        let b = Hash([2; 32]);
        assert_ne!(blocks_topic(&a).hash(), blocks_topic(&b).hash());
        assert_ne!(blocks_topic(&a).hash(), transactions_topic(&a).hash());
        assert_ne!(kad_protocol(&a), kad_protocol(&b));
        assert_ne!(protocol_version(&a), protocol_version(&b));
    }

    #[test]
    fn message_ids_depend_on_content_and_topic_only() {
        let msg = |topic: &gossipsub::IdentTopic, data: &[u8], seq| gossipsub::Message {
            source: Some(libp2p::PeerId::random()),
            data: data.to_vec(),
            sequence_number: Some(seq),
            topic: topic.hash(),
        };
        let t = blocks_topic(&Hash([1; 32]));
        let u = transactions_topic(&Hash([1; 32]));
        assert_eq!(message_id(&msg(&t, b"x", 1)), message_id(&msg(&t, b"x", 2)));
        assert_ne!(message_id(&msg(&t, b"x", 1)), message_id(&msg(&t, b"y", 1)));
        assert_ne!(message_id(&msg(&t, b"x", 1)), message_id(&msg(&u, b"x", 1)));
    }

    #[test]
    fn one_invalid_block_graylists_even_the_best_scored_peer() {
        let genesis = Hash([1; 32]);
        let params = score_params(&genesis);
        params.validate().unwrap();
        score_thresholds().validate().unwrap();
        let best_positive: f64 = params
            .topics
            .values()
            .map(|t| {
                t.topic_weight
                    * (t.time_in_mesh_weight * t.time_in_mesh_cap
                        + t.first_message_deliveries_weight * t.first_message_deliveries_cap)
            })
            .sum::<f64>()
            .min(params.topic_score_cap);
        let blocks = &params.topics[&blocks_topic(&genesis).hash()];
        let one_invalid_block = blocks.topic_weight * blocks.invalid_message_deliveries_weight;
        assert!(
            best_positive + one_invalid_block < score_thresholds().graylist_threshold,
            "{best_positive} + {one_invalid_block}"
        );
        let txs = &params.topics[&transactions_topic(&genesis).hash()];
        let two_invalid_txs = txs.topic_weight * txs.invalid_message_deliveries_weight * 4.0;
        assert!(best_positive + two_invalid_txs < score_thresholds().graylist_threshold);
        // Sparse topics: no penalty for delivering few messages.
        assert!(params.topics.values().all(
            |t| t.mesh_message_deliveries_weight == 0.0 && t.mesh_failure_penalty_weight == 0.0
        ));
        assert!(
            params
                .ip_colocation_factor_whitelist
                .contains(&std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST))
        );
    }

    #[test]
    fn a_quarter_of_the_slots_stays_free_for_outbound_peers() {
        assert_eq!(max_inbound(50), 38);
        assert_eq!(max_inbound(8), 6);
        assert_eq!(max_inbound(3), 2);
        assert_eq!(max_inbound(2), 1);
        assert_eq!(max_inbound(1), 1);
    }
}

//! The CDN services: publisher, cache and client, hosted by the node.
//!
//! # Layout
//!
//! | module | role |
//! |---|---|
//! | [`framing`] | length-prefixed frames over libp2p streams, with bounds and deadlines |
//! | [`ledger`] | the narrow ledger interface the services use ([`ledger::Ledger`]) |
//! | [`publisher`] | catalog, origin pull, escrow and hiring, ticket numbers, sessions, fills |
//! | [`cache`] | chunk store with a quota, fills, serving, durable tickets |
//! | [`client`] | `cachecash fetch`: sessions, parallel chunk fetches, the puzzle, failover |
//! | [`gateway`] | HTTP/1.1 and HTTP/2 in front of the client role, for unmodified tools |
//! | [`rpc`] | the `cdn_*` JSON-RPC namespace |
//!
//! The messages are [`cachecash_cdn::messages`] (pure data, bounded
//! decoders, fuzzed); the cryptography is [`cachecash_cdn`].
//!
//! # Links
//!
//! Every service message travels on a libp2p stream of the node's swarm
//! (TCP, Noise, Yamux): authenticated and encrypted, and the peer is known
//! by its key. A node's libp2p ed25519 key *is* its account: a cache's
//! tickets name it, a client's bundles name it, a publisher's node key
//! signs manifests and tickets and is the escrow's ticket signer. So the
//! escrow on chain binds the publisher's peer identity to its role, and a
//! bundle binds each position to one cache's peer identity.
//!
//! # Protocols
//!
//! - [`publisher_protocol`] and [`cache_protocol`]: control, one request
//!   per stream (a publisher serves fills and sessions, a cache offers and
//!   relays), see [`cachecash_cdn::messages`]. Separate names let one node
//!   run both roles.
//! - [`chunk_protocol`]: a long-lived stream per client–cache pair;
//!   requests are answered in order, chunk bytes follow their header raw.

pub mod actions;
pub mod cache;
pub mod client;
pub mod framing;
pub mod gateway;
pub mod kv;
/// The ledger interfaces, re-exported where the services always found them.
pub mod ledger {
    pub use crate::ledger::*;
}
pub mod limits;
pub mod publisher;
pub mod rpc;
pub mod settle_rpc;

use cachecash_runtime::{AccountId, Hash};
use libp2p::identity::PublicKey;
use libp2p::{Multiaddr, PeerId, StreamProtocol};

/// Most addresses remembered per peer from a bundle's contacts.
pub const MAX_PEER_ADDRS: usize = 8;

/// The control protocol served by publishers (fills, sessions) on the
/// chain with `genesis`.
pub fn publisher_protocol(genesis: &Hash) -> StreamProtocol {
    crate::network::protocol::protocol_name(genesis, "cdn/publisher/1")
}

/// The control protocol served by caches (offers, relays).
pub fn cache_protocol(genesis: &Hash) -> StreamProtocol {
    crate::network::protocol::protocol_name(genesis, "cdn/cache/1")
}

/// The chunk protocol's name on the chain with `genesis`.
pub fn chunk_protocol(genesis: &Hash) -> StreamProtocol {
    crate::network::protocol::protocol_name(genesis, "cdn/chunk/1")
}

/// The DHT key under which caches announce themselves (Kademlia provider
/// records) on the chain with `genesis`.
pub fn caches_key(genesis: &Hash) -> Vec<u8> {
    format!("/cachecash/{}/cdn/caches", hex::encode(genesis.0)).into_bytes()
}

/// How often a cache re-announces itself.
pub const ANNOUNCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// The PeerId of an account (its ed25519 key), if it is a valid key.
pub fn peer_of(account: &AccountId) -> Option<PeerId> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(&account.0).ok()?;
    Some(PublicKey::from(key).to_peer_id())
}

/// The account of a peer, when its PeerId embeds an ed25519 key (all
/// cachecash nodes do: their ids are the identity multihash of the key).
pub fn account_of(peer: &PeerId) -> Option<AccountId> {
    let key = PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    let ed = key.try_into_ed25519().ok()?;
    Some(AccountId(ed.to_bytes()))
}

/// Encodes addresses for a [`cachecash_cdn::messages::CacheContact`].
pub fn encode_addrs(addrs: &[Multiaddr]) -> Vec<Vec<u8>> {
    addrs
        .iter()
        .filter(|a| a.as_ref().len() <= cachecash_cdn::messages::MAX_ADDR_BYTES)
        .take(cachecash_cdn::messages::MAX_ADDRS)
        .map(|a| a.to_vec())
        .collect()
}

/// Decodes the addresses of a contact, skipping malformed ones.
pub fn decode_addrs(addrs: &[Vec<u8>]) -> Vec<Multiaddr> {
    addrs
        .iter()
        .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
        .take(MAX_PEER_ADDRS)
        .collect()
}

/// How long to wait before retry `attempt` (1, 2, …) of a stream that a
/// busy peer dropped. libp2p-stream hands inbound streams to the accepting
/// task through a one-slot channel and drops what arrives while that slot
/// is full, so a burst (every client of a cold start at once) loses
/// streams; retries spread over time with random jitter so the burst does
/// not repeat in step. Exponential from 10 ms, capped at 640 ms, plus up to
/// as much again at random.
pub(crate) fn retry_backoff(attempt: u32) -> std::time::Duration {
    let base = 10u64 << attempt.min(6);
    let jitter = getrandom::u64().unwrap_or(0) % base.max(1);
    std::time::Duration::from_millis(base.saturating_add(jitter))
}

/// Retries of a freshly opened stream that failed at once (see
/// [`retry_backoff`]): together at most about 2.5 s.
pub(crate) const STREAM_RETRIES: u32 = 6;

/// Current time in seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn retry_backoff_grows_and_stays_within_its_cap_and_jitter() {
        for attempt in 1..=10u32 {
            let base = 10u64 << attempt.min(6);
            let d = super::retry_backoff(attempt).as_millis() as u64;
            assert!(d >= base && d < 2 * base, "attempt {attempt}: {d} ms");
        }
        let total: u64 = (1..=super::STREAM_RETRIES)
            .map(|a| 2 * (10u64 << a.min(6)))
            .sum();
        assert!(total <= 2_600, "worst-case retry time {total} ms");
    }

    use super::*;

    #[test]
    fn accounts_and_peer_ids_are_one_key() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let account = account_of(&peer).unwrap();
        assert_eq!(peer_of(&account), Some(peer));
        let signing = crate::network::key::signing_key(&key).unwrap();
        assert_eq!(AccountId(signing.verifying_key().to_bytes()), account);
    }

    #[test]
    fn protocols_are_namespaced_by_genesis() {
        assert_ne!(
            publisher_protocol(&Hash([1; 32])),
            publisher_protocol(&Hash([2; 32]))
        );
        assert_ne!(
            publisher_protocol(&Hash([1; 32])),
            cache_protocol(&Hash([1; 32]))
        );
        assert_ne!(
            cache_protocol(&Hash([1; 32])),
            chunk_protocol(&Hash([1; 32]))
        );
    }
}

//! The peer-to-peer network: libp2p transport, discovery, gossip and
//! headers-first sync.
//!
//! # Shape
//!
//! ```text
//!   RPC, CDN services ──▶ NetworkHandle ──(bounded mpsc, oneshot replies)──▶ swarm task ◀──▶ Swarm<Behaviour>
//!                            │ snapshot (peers, sync, addresses)               │   ▲
//!                            └──────────── Arc<RwLock<Shared>> ◀───────────────┘   │ reports
//!                                                                           jobs ▼   │
//!                                                           import task (blocking pool) ──▶ Chain, Mempool
//! ```
//!
//! - One task owns the [`libp2p::Swarm`]. Everything else talks to it through
//!   a cloneable [`NetworkHandle`]: commands go over a bounded channel with
//!   oneshot replies; read-only state (peers, sync progress, listen
//!   addresses) is published in a snapshot the handle reads without a
//!   round trip.
//! - Verification never runs on the swarm task: blocks and transactions go
//!   to the import task ([`import`]), and gossip messages are forwarded only
//!   after it accepts them.
//! - The swarm task announces blocks this node mined (from
//!   [`crate::chain::ChainEvent::NewHead`] with origin `Mined`) and
//!   transactions submitted locally ([`crate::Mempool::subscribe_local`]).
//!
//! # Bounds
//!
//! Connections: `--max-peers` established, two per peer. Gossip messages:
//! the chain's largest block plus 64 KiB. Sync messages: see
//! [`protocol`]. Per peer: [`REQUESTS_PER_SECOND`] sync requests and
//! [`GOSSIP_PER_SECOND`] gossip messages (token buckets). Gossip over the
//! limit is dropped unvalidated; a peer that keeps exceeding the request
//! limit, or sends an invalid block, invalid headers, a malformed or badly
//! signed transaction, or malformed sync data, is disconnected and banned
//! for [`NetworkConfig::ban_duration`], with the reason logged and counted
//! in `cachecash_peer_bans`.

pub mod behaviour;
pub mod import;
pub mod key;
pub mod protocol;
pub mod sync;
mod worker;

use cachecash_runtime::Hash;
use parking_lot::RwLock;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
pub use worker::start;

/// Sync requests a peer may send per second (burst: twice as many).
pub const REQUESTS_PER_SECOND: u32 = 50;
/// Gossip messages a peer may send per second (burst: twice as many).
pub const GOSSIP_PER_SECOND: u32 = 2000;
/// Most values one DHT record lookup returns.
pub const MAX_RECORDS_PER_LOOKUP: usize = 32;
/// Capacity of the command channel.
pub const COMMAND_QUEUE: usize = 64;

/// Network configuration.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Addresses to listen on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses to announce to peers in addition to the listen addresses.
    pub public_addrs: Vec<Multiaddr>,
    /// Nodes to connect to first (with `/p2p/<peer id>`).
    pub bootnodes: Vec<Multiaddr>,
    /// Nodes to stay connected to (with `/p2p/<peer id>`).
    pub reserved: Vec<Multiaddr>,
    /// Most established connections.
    pub max_peers: u32,
    /// The node key file; generated if missing.
    pub node_key_file: PathBuf,
    /// Discover peers with Kademlia.
    pub discovery: bool,
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// Whether this chain expects peers (false for a lone dev node); shown
    /// in `system_health`.
    pub should_have_peers: bool,
}

impl NetworkConfig {
    /// Listening on an ephemeral loopback port, key in `key_file`, no peers
    /// configured: the base for in-process tests and benchmarks.
    pub fn loopback(key_file: PathBuf) -> NetworkConfig {
        NetworkConfig {
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap_or(Multiaddr::empty())],
            public_addrs: Vec::new(),
            bootnodes: Vec::new(),
            reserved: Vec::new(),
            max_peers: 50,
            node_key_file: key_file,
            discovery: true,
            ban_duration: Duration::from_secs(600),
            should_have_peers: true,
        }
    }
}

/// Why the network did not start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Node key.
    #[error(transparent)]
    Key(#[from] key::NodeKeyError),
    /// Transport or behaviour construction failed.
    #[error("could not build the network stack: {0}")]
    Build(String),
    /// A listen address was refused.
    #[error(
        "could not listen on {addr}: {message}; use another --port or --listen-addr, or stop the process using it"
    )]
    Listen {
        /// Address.
        addr: Multiaddr,
        /// Why.
        message: String,
    },
    /// An address lacks the peer id.
    #[error(
        "{what} {addr} has no /p2p/<peer id> suffix; write it as /ip4/ADDR/tcp/PORT/p2p/PEER_ID"
    )]
    NoPeerId {
        /// Which flag.
        what: &'static str,
        /// Address.
        addr: Multiaddr,
    },
}

/// One connected peer, as `system_peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSummary {
    /// Its PeerId.
    pub peer_id: String,
    /// Address of the connection.
    pub address: String,
    /// Whether it dialled us.
    pub inbound: bool,
    /// Best block it reported.
    pub best_hash: Option<Hash>,
    /// Height of that block.
    pub best_number: Option<u64>,
    /// Its agent version (identify).
    pub agent_version: Option<String>,
    /// Whether it is a reserved peer.
    pub reserved: bool,
}

/// Sync progress, as `system_syncState` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncProgress {
    /// Height when the node started.
    pub starting_block: u64,
    /// Our best block.
    pub current_block: u64,
    /// Best block any peer reports (at least ours).
    pub highest_block: u64,
}

/// State the swarm task publishes for readers.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) peers: Vec<PeerSummary>,
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) external: Vec<Multiaddr>,
    pub(crate) sync: SyncProgress,
    pub(crate) is_syncing: bool,
}

/// A command for the swarm task.
#[derive(Debug)]
pub(crate) enum Command {
    AddReserved(Multiaddr, oneshot::Sender<Result<PeerId, String>>),
    RemoveReserved(PeerId, oneshot::Sender<bool>),
    Dial(Multiaddr, oneshot::Sender<Result<(), String>>),
    Publish {
        topic: Topic,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Request {
        peer: PeerId,
        request: protocol::SyncRequest,
        reply: oneshot::Sender<Result<protocol::SyncResponse, String>>,
    },
    AddAddresses(PeerId, Vec<Multiaddr>, oneshot::Sender<()>),
    Ban(PeerId, &'static str, String),
    FindPeer(PeerId),
    Provide(Vec<u8>),
    GetProviders(Vec<u8>, oneshot::Sender<Vec<PeerId>>),
    PutRecord(Vec<u8>, Vec<u8>, Duration),
    GetRecords(Vec<u8>, oneshot::Sender<Vec<Vec<u8>>>),
}

/// A gossip topic of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Encoded blocks.
    Blocks,
    /// Encoded transactions.
    Transactions,
}

/// A cloneable handle on the running network.
#[derive(Clone)]
pub struct NetworkHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    shared: Arc<RwLock<Shared>>,
    should_have_peers: bool,
    syncing: Arc<AtomicBool>,
    streams: libp2p_stream::Control,
    signing_key: Arc<ed25519_dalek::SigningKey>,
}

impl std::fmt::Debug for NetworkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkHandle")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

/// The swarm task has stopped.
const STOPPED: &str = "the network service has stopped";

impl NetworkHandle {
    /// This node's PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Listen addresses, each with `/p2p/<local peer id>`, then the
    /// announced public ones.
    pub fn listen_addresses(&self) -> Vec<Multiaddr> {
        let s = self.shared.read();
        s.listen
            .iter()
            .chain(s.external.iter())
            .map(|a| a.clone().with_p2p(self.peer_id).unwrap_or_else(|a| a))
            .collect()
    }

    /// Connected peers.
    pub fn peers(&self) -> Vec<PeerSummary> {
        self.shared.read().peers.clone()
    }

    /// Number of connected peers.
    pub fn peer_count(&self) -> usize {
        self.shared.read().peers.len()
    }

    /// Sync progress.
    pub fn sync_progress(&self) -> SyncProgress {
        self.shared.read().sync
    }

    /// Whether the node is catching up with its peers.
    pub fn is_syncing(&self) -> bool {
        self.shared.read().is_syncing
    }

    /// A flag that is true while the node catches up with its peers (the
    /// miner pauses on it).
    pub fn syncing_flag(&self) -> Arc<AtomicBool> {
        self.syncing.clone()
    }

    /// A control for opening and accepting CDN streams on this node's
    /// connections (clone it per task: each clone has its own slot).
    pub fn stream_control(&self) -> libp2p_stream::Control {
        self.streams.clone()
    }

    /// The node key as an ed25519 signing key: the account of this node's
    /// CDN roles (cache payee, client, publisher manifest and ticket signer).
    pub fn signing_key(&self) -> Arc<ed25519_dalek::SigningKey> {
        self.signing_key.clone()
    }

    /// Tells the swarm where to reach `peer` (for example a cache named in
    /// a bundle), and returns once it knows, so a stream opened next can
    /// dial them.
    pub async fn add_addresses(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let _ = self
            .call(|reply| Command::AddAddresses(peer, addrs, reply))
            .await;
    }

    /// Starts a Kademlia lookup of `peer`, so that its addresses become known
    /// (a publisher named by peer id only). Best effort.
    pub fn find_peer(&self, peer: PeerId) {
        let _ = self.commands.try_send(Command::FindPeer(peer));
    }

    /// Announces this node as a provider of `key` in the DHT (Kademlia
    /// provider record, signed by the connection's peer authentication).
    /// Re-announce periodically: records expire.
    pub fn provide(&self, key: Vec<u8>) {
        let _ = self.commands.try_send(Command::Provide(key));
    }

    /// The peers that announced themselves as providers of `key`.
    pub async fn providers(&self, key: Vec<u8>) -> Result<Vec<PeerId>, String> {
        self.call(|reply| Command::GetProviders(key, reply)).await
    }

    /// Stores `value` under `key` in the DHT (here and at the peers closest
    /// to the key) for `ttl`. Anyone may store anything under any key:
    /// readers verify what they get (a signed record). Best effort.
    pub fn put_record(&self, key: Vec<u8>, value: Vec<u8>, ttl: Duration) {
        let _ = self.commands.try_send(Command::PutRecord(key, value, ttl));
    }

    /// The values stored under `key` in the DHT, as found (several peers
    /// may hold different ones; at most [`MAX_RECORDS_PER_LOOKUP`]).
    pub async fn records(&self, key: Vec<u8>) -> Result<Vec<Vec<u8>>, String> {
        self.call(|reply| Command::GetRecords(key, reply)).await
    }

    /// Bans `peer` for a protocol violation a service detected (a malformed
    /// or oversized CDN message): disconnected, refused for the ban duration,
    /// logged and counted under `reason`.
    pub fn ban_peer(&self, peer: PeerId, reason: &'static str, detail: String) {
        let _ = self.commands.try_send(Command::Ban(peer, reason, detail));
    }

    /// Whether the node is expected to have peers.
    pub fn should_have_peers(&self) -> bool {
        self.should_have_peers
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| STOPPED.to_string())?;
        rx.await.map_err(|_| STOPPED.to_string())
    }

    /// Adds a reserved peer (kept connected, redialled) and dials it.
    pub async fn add_reserved_peer(&self, addr: Multiaddr) -> Result<PeerId, String> {
        self.call(|r| Command::AddReserved(addr, r)).await?
    }

    /// Removes a reserved peer; false if it was not reserved.
    pub async fn remove_reserved_peer(&self, peer: PeerId) -> Result<bool, String> {
        self.call(|r| Command::RemoveReserved(peer, r)).await
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), String> {
        self.call(|r| Command::Dial(addr, r)).await?
    }

    /// Publishes raw bytes on a gossip topic. Peers validate them like any
    /// other message: invalid data gets this node banned.
    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), String> {
        self.call(|reply| Command::Publish { topic, data, reply })
            .await?
    }
}

impl NetworkHandle {
    /// Sends a sync request to a connected peer and waits for its answer
    /// (at most the request timeout). For tools, services and tests; the
    /// node's own sync does not go through here.
    pub async fn request(
        &self,
        peer: PeerId,
        request: protocol::SyncRequest,
    ) -> Result<protocol::SyncResponse, String> {
        self.call(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await?
    }
}

/// Splits `/…/p2p/<id>` into the peer id and the address without it.
pub fn split_peer_id(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut base = addr.clone();
    match base.pop() {
        Some(libp2p::multiaddr::Protocol::P2p(id)) => Some((id, base)),
        _ => None,
    }
}

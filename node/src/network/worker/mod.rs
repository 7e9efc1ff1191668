//! The swarm task: owns the [`Swarm`], serves sync requests, drives sync,
//! validates gossip through the import task, bans misbehaving peers.

use super::behaviour::{self, Behaviour, BehaviourConfig, BehaviourEvent};
use super::import::{self, Job, Report};
use super::protocol::{
    self, Incoming, MAX_BLOCKS, MAX_HEADERS, SOFT_RESPONSE_BYTES, Status, SyncCodec, SyncRequest,
    SyncResponse,
};
use super::sync::{self, Ready, SyncState};
use super::{
    COMMAND_QUEUE, Command, GOSSIP_PER_SECOND, NetworkConfig, NetworkError, NetworkHandle,
    PeerSummary, REQUESTS_PER_SECOND, Shared, SyncProgress, Topic, key, split_peer_id,
};
use crate::chain::{BlockOrigin, Chain, ChainEvent};
use crate::mempool::Mempool;
use crate::metrics::Metrics;
use cachecash_runtime::{Hash, Header};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, noise, tcp, yamux};
use parity_scale_codec::{Decode, Encode};
use parking_lot::RwLock;
use primitive_types::U256;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

mod admission;
mod announce;
mod dht;
mod gossip;
mod peer;
use peer::{Bucket, Peer};
mod serving;
mod sync_driver;
use serving::{locator_of, serve, status};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Housekeeping period: status refresh, unbans, redials, snapshot.
const TICK: Duration = Duration::from_millis(250);
/// How often a peer's status is refreshed.
const STATUS_REFRESH: Duration = Duration::from_secs(5);
/// How often reserved peers are redialled and discovery runs.
const REDIAL: Duration = Duration::from_secs(5);
/// Sync requests served at once; more are refused as busy.
const SERVE_QUEUE: usize = 32;
/// Rate-limit violations before a ban.
const MAX_STRIKES: u32 = 200;
/// Follow-up header requests per round when a peer answers only with
/// headers we already have (each advances up to 2,000 heights).
const MAX_REASKS: u32 = 64;
/// A sync round that has not moved the head for this long stops counting
/// as catching up (`isSyncing`, which pauses the miner).
const STALLED_SYNC: Duration = Duration::from_secs(30);
/// Timeout of one sync request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Header rounds in a row that may fall short of a peer's claimed work
/// before it is banned for the claim.
const MAX_FALSE_CLAIMS: u32 = 2;

struct Worker {
    swarm: Swarm<Behaviour>,
    chain: Arc<Chain>,
    metrics: Arc<Metrics>,
    config: NetworkConfig,
    genesis: Hash,
    blocks_topic: IdentTopic,
    txs_topic: IdentTopic,
    shared: Arc<RwLock<Shared>>,
    syncing: Arc<AtomicBool>,
    peers: HashMap<PeerId, Peer>,
    bans: HashMap<PeerId, Instant>,
    reserved: HashMap<PeerId, Multiaddr>,
    sync: SyncState,
    status_requests: HashMap<OutboundRequestId, PeerId>,
    /// Header batches verified on the blocking pool come back here.
    header_checks: mpsc::Sender<sync_driver::HeaderCheck>,
    user_requests: HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, String>>>,
    /// Kademlia provider lookups asked for through the handle.
    provider_queries: HashMap<kad::QueryId, (HashSet<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
    record_queries: HashMap<kad::QueryId, dht::RecordQuery>,
    jobs: import::JobQueue,
    serve: mpsc::Sender<(PeerId, ResponseChannel<SyncResponse>, SyncRequest)>,
    last_redial: Instant,
    last_forgive: Instant,
    unannounced: announce::Unannounced,
    /// The pool: whether an unannounced transaction is still pending.
    pool: Arc<Mempool>,
    /// The head height at the last snapshot, and since when.
    last_head: (u64, Instant),
}

/// Starts the network: builds the swarm, listens, dials bootnodes and
/// reserved peers, and spawns the swarm and import tasks. Returns once the
/// first listen address is bound.
pub async fn start(
    config: NetworkConfig,
    chain: Arc<Chain>,
    pool: Arc<Mempool>,
) -> Result<(NetworkHandle, Vec<tokio::task::JoinHandle<()>>), NetworkError> {
    let key = key::load_or_generate(&config.node_key_file)?;
    let peer_id = key.public().to_peer_id();
    let signing_key = Arc::new(key::signing_key(&key)?);
    let genesis = chain.genesis_hash();
    let metrics = chain.metrics().clone();
    for (what, list) in [
        ("bootnode", &config.bootnodes),
        ("reserved node", &config.reserved),
    ] {
        for addr in list.iter() {
            if split_peer_id(addr).is_none() {
                return Err(NetworkError::NoPeerId {
                    what,
                    addr: addr.clone(),
                });
            }
        }
    }
    let labels = |d: &'static str| vec![("protocol", "sync"), ("direction", d)];
    // One `get_or_create` per statement: its guard holds the family's lock.
    let read = metrics.network_bytes.get_or_create(&labels("in")).clone();
    let written = metrics.network_bytes.get_or_create(&labels("out")).clone();
    let codec = SyncCodec::new(Arc::new(protocol::ByteCounters { read, written }));
    let max_block = usize::try_from(chain.params().max_block_bytes).unwrap_or(usize::MAX);
    let bconfig = BehaviourConfig {
        genesis,
        max_peers: config.max_peers,
        max_gossip_bytes: max_block.saturating_add(64 * 1024),
        request_timeout: REQUEST_TIMEOUT,
    };
    let behaviour = Behaviour::new(&key, &bconfig, codec).map_err(NetworkError::Build)?;
    let streams = behaviour.streams.new_control();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetworkError::Build(e.to_string()))?
        .with_dns()
        .map_err(|e| NetworkError::Build(e.to_string()))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| NetworkError::Build(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let blocks_topic = behaviour::blocks_topic(&genesis);
    let txs_topic = behaviour::transactions_topic(&genesis);
    for t in [&blocks_topic, &txs_topic] {
        swarm
            .behaviour_mut()
            .gossip
            .subscribe(t)
            .map_err(|e| NetworkError::Build(format!("gossip subscription: {e}")))?;
    }
    for addr in &config.listen_addrs {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen {
                addr: addr.clone(),
                message: e.to_string(),
            })?;
    }
    for addr in &config.public_addrs {
        swarm.add_external_address(addr.clone());
    }
    // Wait for the listeners, so callers can read the bound addresses.
    let mut listen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while listen.len() < config.listen_addrs.len() {
        let ev = tokio::time::timeout_at(deadline, swarm.select_next_some()).await;
        match ev {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => listen.push(address),
            Ok(SwarmEvent::ListenerClosed {
                addresses, reason, ..
            }) => {
                return Err(NetworkError::Listen {
                    addr: addresses.first().cloned().unwrap_or(Multiaddr::empty()),
                    message: format!("{reason:?}"),
                });
            }
            Ok(SwarmEvent::ListenerError { error, .. }) => {
                return Err(NetworkError::Listen {
                    addr: config.listen_addrs[0].clone(),
                    message: error.to_string(),
                });
            }
            Ok(_) => {}
            Err(_) => {
                return Err(NetworkError::Listen {
                    addr: config.listen_addrs[0].clone(),
                    message: "no listener came up within 10 s".into(),
                });
            }
        }
    }
    let shared = Arc::new(RwLock::new(Shared {
        listen,
        external: config.public_addrs.clone(),
        sync: SyncProgress {
            starting_block: chain.head().header.number,
            current_block: chain.head().header.number,
            highest_block: chain.head().header.number,
        },
        ..Default::default()
    }));
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let (jobs_tx, jobs_rx) = import::job_queue();
    let (reports_tx, reports_rx) = mpsc::channel(import::JOB_QUEUE);
    let (serve_tx, serve_rx) = mpsc::channel(SERVE_QUEUE);
    let (served_tx, served_rx) = mpsc::channel(SERVE_QUEUE);
    let (checks_tx, checks_rx) = mpsc::channel(4);
    let syncing = Arc::new(AtomicBool::new(false));
    let handle = NetworkHandle {
        peer_id,
        commands: commands_tx,
        shared: shared.clone(),
        should_have_peers: config.should_have_peers,
        syncing: syncing.clone(),
        streams,
        signing_key,
    };
    let mut worker = Worker {
        swarm,
        chain: chain.clone(),
        metrics,
        genesis,
        blocks_topic,
        txs_topic,
        shared,
        syncing,
        peers: HashMap::new(),
        bans: HashMap::new(),
        reserved: HashMap::new(),
        sync: SyncState {
            starting_block: chain.head().header.number,
            ..Default::default()
        },
        status_requests: HashMap::new(),
        header_checks: checks_tx,
        user_requests: HashMap::new(),
        provider_queries: HashMap::new(),
        record_queries: HashMap::new(),
        jobs: jobs_tx,
        serve: serve_tx,
        last_redial: Instant::now(),
        last_forgive: Instant::now(),
        unannounced: Default::default(),
        pool: pool.clone(),
        last_head: (chain.head().header.number, Instant::now()),
        config,
    };
    for addr in worker.config.reserved.clone() {
        if let Some((peer, base)) = split_peer_id(&addr) {
            worker.reserved.insert(peer, addr.clone());
            worker.swarm.behaviour_mut().kad.add_address(&peer, base);
            worker.swarm.behaviour_mut().gossip.add_explicit_peer(&peer);
            worker.dial(addr);
        }
    }
    for addr in worker.config.bootnodes.clone() {
        if let Some((peer, base)) = split_peer_id(&addr) {
            worker.swarm.behaviour_mut().kad.add_address(&peer, base);
            worker.dial(addr);
        }
    }
    tracing::info!(target: "cachecash::network", %peer_id, "local node identity");
    let importer = tokio::spawn(import::run(
        chain.clone(),
        pool.clone(),
        jobs_rx,
        reports_tx,
    ));
    let server = tokio::spawn(serve(
        chain.clone(),
        serve_rx,
        served_tx,
        serving::SERVE_BYTES_PER_SECOND,
    ));
    let events = chain.subscribe();
    let local_txs = pool.subscribe_local();
    let main = tokio::spawn(async move {
        worker
            .run(
                commands_rx,
                reports_rx,
                served_rx,
                checks_rx,
                events,
                local_txs,
            )
            .await
    });
    Ok((handle, vec![main, importer, server]))
}

impl Worker {
    async fn run(
        &mut self,
        mut commands: mpsc::Receiver<Command>,
        mut reports: mpsc::Receiver<Report>,
        mut served: mpsc::Receiver<(ResponseChannel<SyncResponse>, SyncResponse)>,
        mut header_checks: mpsc::Receiver<sync_driver::HeaderCheck>,
        mut events: broadcast::Receiver<ChainEvent>,
        mut local_txs: broadcast::Receiver<cachecash_runtime::SignedTransaction>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                cmd = commands.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                Some(report) = reports.recv() => self.on_report(report),
                Some(check) = header_checks.recv() => self.on_header_check(check),
                Some((channel, response)) = served.recv() => {
                    // The peer may have gone; nothing to do then.
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
                }
                ev = events.recv() => match ev {
                    Ok(ChainEvent::NewHead { hash, origin: BlockOrigin::Mined, .. }) => self.announce_block(hash),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                tx = local_txs.recv() => match tx {
                    Ok(tx) => {
                        let topic = self.txs_topic.clone();
                        if !self.publish(&topic, tx.encode(), "gossip_transactions") {
                            self.unannounced.push(tx);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(target: "cachecash::network", "{n} local transactions were not announced (announcement queue overflowed)");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => self.on_tick(),
            }
            self.drive_sync();
        }
        // Never leave the miner paused behind a stopped network.
        self.syncing.store(false, Ordering::Release);
        tracing::debug!(target: "cachecash::network", "network task stopped");
    }

    fn dial(&mut self, addr: Multiaddr) {
        if let Some((peer, _)) = split_peer_id(&addr)
            && (self.bans.contains_key(&peer) || self.peers.contains_key(&peer))
        {
            return;
        }
        if let Err(e) = self.swarm.dial(addr.clone()) {
            tracing::debug!(target: "cachecash::network", %addr, "dial failed: {e}");
        }
    }

    fn announce_block(&mut self, hash: Hash) {
        match self.chain.block(&hash) {
            Ok(Some(block)) => {
                let topic = self.blocks_topic.clone();
                self.publish(&topic, block.encode(), "gossip_blocks");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target: "cachecash::network", "cannot read mined block {hash} to announce it: {e}")
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::AddReserved(addr, reply) => {
                let result = match split_peer_id(&addr) {
                    None => Err(format!(
                        "{addr} has no /p2p/<peer id> suffix; write it as /ip4/ADDR/tcp/PORT/p2p/PEER_ID"
                    )),
                    Some((peer, base)) if peer == *self.swarm.local_peer_id() => {
                        let _ = base;
                        Err("that is this node's own peer id".to_string())
                    }
                    Some((peer, base)) => {
                        self.bans.remove(&peer);
                        self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                        self.reserved.insert(peer, addr.clone());
                        self.swarm.behaviour_mut().kad.add_address(&peer, base);
                        self.swarm.behaviour_mut().gossip.add_explicit_peer(&peer);
                        self.dial(addr);
                        Ok(peer)
                    }
                };
                let _ = reply.send(result);
            }
            Command::RemoveReserved(peer, reply) => {
                let removed = self.reserved.remove(&peer).is_some();
                if removed {
                    self.swarm
                        .behaviour_mut()
                        .gossip
                        .remove_explicit_peer(&peer);
                }
                let _ = reply.send(removed);
            }
            Command::Dial(addr, reply) => {
                let r = self.swarm.dial(addr).map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            Command::Ban(peer, reason, detail) => self.ban(peer, reason, &detail),
            Command::FindPeer(peer) => {
                self.swarm.behaviour_mut().kad.get_closest_peers(peer);
            }
            Command::Provide(key) => self.provide(key),
            Command::GetProviders(key, reply) => self.get_providers(key, reply),
            Command::PutRecord(key, value, ttl) => self.put_record(key, value, ttl),
            Command::GetRecords(key, reply) => self.get_records(key, reply),
            Command::AddAddresses(peer, addrs, reply) => {
                if peer != *self.swarm.local_peer_id() && !self.bans.contains_key(&peer) {
                    for a in addrs.into_iter().take(crate::cdn::MAX_PEER_ADDRS) {
                        self.swarm.add_peer_address(peer, a);
                    }
                }
                let _ = reply.send(());
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                // A request out of bounds would get this node banned.
                let checked = request.check_bounds().and_then(|()| {
                    let len = request.encoded_size();
                    if len > protocol::MAX_REQUEST_BYTES {
                        Err(format!(
                            "the request is {len} bytes, more than {}",
                            protocol::MAX_REQUEST_BYTES
                        ))
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = checked {
                    let _ = reply.send(Err(format!("not sent: {e}")));
                } else if self.peers.contains_key(&peer) {
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer, Incoming::Request(request));
                    self.user_requests.insert(id, reply);
                } else {
                    let _ = reply.send(Err(format!("{peer} is not connected")));
                }
            }
            Command::Publish { topic, data, reply } => {
                let (t, label) = match topic {
                    Topic::Blocks => (self.blocks_topic.clone(), "gossip_blocks"),
                    Topic::Transactions => (self.txs_topic.clone(), "gossip_transactions"),
                };
                let r = match self.swarm.behaviour_mut().gossip.publish(t, data) {
                    Ok(_) | Err(gossipsub::PublishError::Duplicate) => Ok(()),
                    Err(e) => Err(format!("could not publish on {label}: {e}")),
                };
                let _ = reply.send(r);
            }
        }
    }

    fn ban(&mut self, peer: PeerId, reason: &'static str, detail: &str) {
        // Answers already in flight from a banned peer (two requests both
        // answered with garbage) renew its ban without counting it again.
        let already = self
            .bans
            .get(&peer)
            .is_some_and(|until| *until > Instant::now());
        if already {
            tracing::debug!(target: "cachecash::network", %peer, reason, "banned peer misbehaved again: {detail}");
        } else {
            tracing::warn!(target: "cachecash::network", %peer, reason, "banning peer for {:?}: {detail}", self.config.ban_duration);
            self.metrics
                .peer_bans
                .get_or_create(&vec![("reason", reason)])
                .inc();
        }
        self.bans
            .insert(peer, Instant::now() + self.config.ban_duration);
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
    }

    fn strike(&mut self, peer: PeerId, reason: &'static str) {
        let strikes = match self.peers.get_mut(&peer) {
            Some(p) => {
                p.strikes = p.strikes.saturating_add(1);
                p.strikes
            }
            None => return,
        };
        if strikes > MAX_STRIKES {
            self.ban(peer, reason, "too many violations");
        }
    }

    /// Stops asking `peer` for sync data for a while, longer after each
    /// consecutive failure (up to a minute).
    fn back_off(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.stalls = p.stalls.saturating_add(1);
            let secs = 1u64 << p.stalls.min(6);
            p.retry_after = Instant::now() + Duration::from_secs(secs);
        }
    }

    /// `peer` made progress: clear its backoff.
    fn progressed(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.stalls = 0;
            p.retry_after = Instant::now();
        }
    }

    fn request_status(&mut self, peer: PeerId) {
        let ours = status(&self.chain);
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.status_pending {
                return;
            }
            p.status_pending = true;
            p.status_at = Instant::now();
        }
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, Incoming::Request(SyncRequest::Status(ours)));
        self.status_requests.insert(id, peer);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(target: "cachecash::network", %address, "listening");
                self.shared.write().listen.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.shared.write().listen.retain(|a| a != &address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } if num_established.get() == 1 => {
                if !self.admit(peer_id, &endpoint) {
                    return;
                }
                tracing::debug!(target: "cachecash::network", %peer_id, "connected");
                self.peers.insert(
                    peer_id,
                    Peer {
                        address: endpoint.get_remote_address().clone(),
                        inbound: endpoint.is_listener(),
                        status: None,
                        status_pending: false,
                        status_at: Instant::now(),
                        agent: None,
                        requests: Bucket::new(REQUESTS_PER_SECOND),
                        gossip: Bucket::new(GOSSIP_PER_SECOND),
                        strikes: 0,
                        retry_after: Instant::now(),
                        stalls: 0,
                        false_claims: 0,
                    },
                );
                self.request_status(peer_id);
                self.publish_snapshot();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                tracing::debug!(target: "cachecash::network", %peer_id, "disconnected");
                self.peers.remove(&peer_id);
                self.publish_snapshot();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                cause,
                num_established,
                ..
            } => {
                tracing::debug!(target: "cachecash::network", %peer_id, num_established, ?cause, "a connection closed");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(target: "cachecash::network", ?peer_id, "outgoing connection failed: {error}");
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!(target: "cachecash::network", "incoming connection failed: {error}");
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour_event(ev),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocol_version != behaviour::protocol_version(&self.genesis) {
                    tracing::debug!(target: "cachecash::network", %peer_id, version = %info.protocol_version, "peer is on another chain; disconnecting");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                let kad_proto = behaviour::kad_protocol(&self.genesis);
                if info.protocols.contains(&kad_proto) {
                    for addr in info.listen_addrs.iter().take(16) {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, addr.clone());
                    }
                }
                if let Some(p) = self.peers.get_mut(&peer_id) {
                    p.agent = Some(info.agent_version.chars().take(64).collect());
                }
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            }) => self.on_query(id, result, step.last),
            BehaviourEvent::Kad(kad::Event::InboundRequest { request }) => self.on_inbound(request),
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) => {
                let wanted = (self.config.max_peers / 2).max(1) as usize;
                if self.config.discovery
                    && self.peers.len() < wanted
                    && !self.peers.contains_key(&peer)
                    && !self.bans.contains_key(&peer)
                    && let Some(addr) = addresses.iter().next()
                    && let Ok(full) = addr.clone().with_p2p(peer)
                {
                    self.dial(full);
                }
            }
            BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_gossip(propagation_source, message_id, message),
            BehaviourEvent::Sync(ev) => self.on_sync_event(ev),
            _ => {}
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if !self.unannounced.is_empty() {
            let topic = self.txs_topic.clone();
            let mut waiting = std::mem::take(&mut self.unannounced);
            let pool = self.pool.clone();
            let sent = waiting.retry(
                |h| pool.contains(h),
                |tx| self.publish(&topic, tx.encode(), "gossip_transactions"),
            );
            if sent > 0 {
                tracing::debug!(target: "cachecash::network", sent, waiting = waiting.len(), "announced local transactions that had found no peer");
            }
            self.unannounced = waiting;
        }
        // Unban.
        let expired: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in expired {
            self.bans.remove(&p);
            self.swarm.behaviour_mut().blocked.unblock_peer(p);
        }
        // Forgive old rate-limit violations.
        if now.duration_since(self.last_forgive) >= Duration::from_secs(60) {
            self.last_forgive = now;
            for p in self.peers.values_mut() {
                p.strikes = 0;
            }
        }
        // Refresh statuses.
        let stale: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !p.status_pending
                    && (p.status.is_none() || now.duration_since(p.status_at) >= STATUS_REFRESH)
            })
            .map(|(id, _)| *id)
            .collect();
        for p in stale {
            self.request_status(p);
        }
        // Reserved peers and discovery.
        if now.duration_since(self.last_redial) >= REDIAL {
            self.last_redial = now;
            let missing: Vec<Multiaddr> = self
                .reserved
                .iter()
                .filter(|(id, _)| !self.peers.contains_key(*id))
                .map(|(_, a)| a.clone())
                .collect();
            for a in missing {
                self.dial(a);
            }
            if self.config.discovery && self.peers.len() < (self.config.max_peers / 2) as usize {
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
            }
        }
        self.publish_snapshot();
    }

    fn publish_snapshot(&mut self) {
        let current = self.chain.head().header.number;
        let highest_peer = self
            .peers
            .values()
            .filter_map(|p| p.status.as_ref().map(|s| s.best_number))
            .max()
            .unwrap_or(0);
        let highest = highest_peer.max(current);
        self.metrics
            .peers
            .set(i64::try_from(self.peers.len()).unwrap_or(i64::MAX));
        self.metrics
            .sync_highest_block
            .set(i64::try_from(highest).unwrap_or(i64::MAX));
        let peers = self
            .peers
            .iter()
            .map(|(id, p)| PeerSummary {
                peer_id: id.to_string(),
                address: p.address.to_string(),
                inbound: p.inbound,
                best_hash: p.status.as_ref().map(|s| s.best_hash),
                best_number: p.status.as_ref().map(|s| s.best_number),
                agent_version: p.agent.clone(),
                reserved: self.reserved.contains_key(id),
            })
            .collect();
        let mut s = self.shared.write();
        s.peers = peers;
        s.sync = SyncProgress {
            starting_block: self.sync.starting_block,
            current_block: current,
            highest_block: highest,
        };
        if current != self.last_head.0 {
            self.last_head = (current, Instant::now());
        }
        // A round that has not moved the head for a while (a branch we can
        // never adopt, a peer that only promises) does not count as
        // catching up: the miner must not wait on it forever.
        s.is_syncing = self.sync.active()
            && highest > current.saturating_add(1)
            && self.last_head.1.elapsed() < STALLED_SYNC;
        self.syncing.store(s.is_syncing, Ordering::Release);
    }
}

fn verdict_name(a: &MessageAcceptance) -> &'static str {
    match a {
        MessageAcceptance::Accept => "accept",
        MessageAcceptance::Reject => "reject",
        MessageAcceptance::Ignore => "ignore",
    }
}

//! Raw libp2p peers written for the tests, speaking a node's protocols as a
//! hostile peer would, without the node's own codecs or limits: a
//! request-response codec of raw bytes and a flood driver (requests past
//! the rate limits), a responder that answers the node's sync requests
//! with any bytes (garbage, oversized frames), and a bare gossipsub peer
//! that publishes any bytes, and writes gossipsub frames by hand for what
//! gossipsub itself never sends (messages past the node's size limit).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, TopicHash};
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, StreamProtocol};
use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Bytes in, bytes out: the request is written as given and the stream
/// closed; the response is read to the end (up to 32 MiB).
#[derive(Clone, Debug, Default)]
pub struct RawCodec;

impl libp2p::request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut v = Vec::new();
        io.take(1 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut v = Vec::new();
        io.take(32 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        resp: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&resp).await?;
        io.close().await
    }
}

/// Requests a [`flood`] keeps in flight.
pub const FLOOD_IN_FLIGHT: usize = 32;

/// What became of the requests of a [`flood`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flood {
    /// Answered with anything but a refusal.
    pub answered: usize,
    /// Answered with a refusal whose text contains the flood's `refusal`.
    pub refused: usize,
    /// Failed without an answer (stream or connection gone).
    pub failed: usize,
    /// Whether the node closed the connection before every request ended.
    pub closed: bool,
}

/// Dials `addr` (with its `/p2p/` part) from a fresh identity and sends
/// `payload` `count` times on request-response `protocol`, keeping
/// [`FLOOD_IN_FLIGHT`] requests in flight (below the per-connection stream
/// limit, so every request reaches the node's handler);
/// classifies each outcome with `is_refusal` on the response bytes. Ends
/// when every request has ended or the node closes the connection.
pub async fn flood(
    addr: libp2p::Multiaddr,
    protocol: StreamProtocol,
    payload: Vec<u8>,
    count: usize,
    is_refusal: impl Fn(&[u8]) -> bool,
    deadline: std::time::Duration,
) -> Flood {
    use libp2p::request_response::{self, ProtocolSupport};
    let mut swarm = raw_swarm(|_| {
        request_response::Behaviour::<RawCodec>::new(
            [(protocol, ProtocolSupport::Outbound)],
            request_response::Config::default(),
        )
    });
    let (peer, _) = cachecash_node::network::split_peer_id(&addr).expect("a /p2p/ address");
    swarm.dial(addr).expect("dial");
    let mut out = Flood::default();
    let mut sent = 0usize;
    let run = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } if sent == 0 => {
                    while sent < count.min(FLOOD_IN_FLIGHT) {
                        swarm.behaviour_mut().send_request(&peer, payload.clone());
                        sent += 1;
                    }
                }
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => {
                    if is_refusal(&response) {
                        out.refused += 1;
                    } else {
                        out.answered += 1;
                    }
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => {
                    out.failed += 1;
                }
                SwarmEvent::ConnectionClosed { .. } => {
                    out.closed = true;
                    return;
                }
                _ => {}
            }
            let ended = out.answered + out.refused + out.failed;
            if ended >= count {
                return;
            }
            while sent < count && sent < ended + FLOOD_IN_FLIGHT {
                swarm.behaviour_mut().send_request(&peer, payload.clone());
                sent += 1;
            }
        }
    };
    tokio::time::timeout(deadline, run)
        .await
        .expect("the flood ended before its deadline");
    out
}

/// `bytes` framed as the sync protocol frames a message: a little-endian
/// `u32` length, then the bytes.
pub fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut v = u32::try_from(bytes.len())
        .expect("a frame fits a u32 length")
        .to_le_bytes()
        .to_vec();
    v.extend_from_slice(bytes);
    v
}

/// A fresh-identity swarm on TCP (noise, yamux) running `behaviour`.
fn raw_swarm<B: libp2p::swarm::NetworkBehaviour>(
    behaviour: impl FnOnce(&libp2p::identity::Keypair) -> B,
) -> libp2p::Swarm<B> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            Default::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build()
}

/// What a raw peer's connections to the node went through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Connections {
    /// Connections established.
    pub established: usize,
    /// Connections closed, and dials that failed.
    pub ended: usize,
    /// Whether a connection is open now.
    pub open: bool,
}

impl Connections {
    fn on<E>(&mut self, event: &SwarmEvent<E>) {
        match event {
            SwarmEvent::ConnectionEstablished { .. } => {
                self.established += 1;
                self.open = true;
            }
            SwarmEvent::ConnectionClosed {
                num_established, ..
            } => {
                self.ended += 1;
                self.open = *num_established > 0;
            }
            SwarmEvent::OutgoingConnectionError { .. } => self.ended += 1,
            _ => {}
        }
    }
}

/// What a [`RawGossip`] peer has seen.
#[derive(Debug, Default)]
struct GossipSeen {
    connections: Connections,
    /// Topics the node told it it subscribes to, on the open connection.
    subscribed: HashSet<TopicHash>,
}

#[derive(Debug)]
enum GossipCommand {
    Publish(TopicHash, Vec<u8>, oneshot::Sender<Result<(), String>>),
    Dial(libp2p::Multiaddr, oneshot::Sender<Result<(), String>>),
}

/// Largest message a [`RawGossip`] peer's gossipsub sends: far past any
/// node's limit, so its own limit never stands between a test and the
/// node's.
pub const RAW_GOSSIP_MAX_BYTES: usize = 32 << 20;

/// The gossipsub protocol a [`RawGossip`] peer writes its own frames on.
pub const MESHSUB: StreamProtocol = StreamProtocol::new("/meshsub/1.1.0");

/// A raw gossip peer's behaviour: gossipsub, and raw streams for frames
/// written by hand.
#[derive(libp2p::swarm::NetworkBehaviour)]
struct GossipPeer {
    gossip: gossipsub::Behaviour,
    streams: libp2p_stream::Behaviour,
}

/// A bare gossipsub peer of a node, as a hostile peer would run one:
/// gossipsub configured like the node's (strict signing and validation,
/// the node's message ids) so the node takes its messages to validation,
/// publishing whatever bytes it is given; and, for what gossipsub itself
/// would never send, gossipsub frames written by hand on streams of their
/// own ([`RawGossip::publish_frame`]). Its swarm runs on a task of its own
/// until it is dropped.
pub struct RawGossip {
    peer_id: PeerId,
    key: libp2p::identity::Keypair,
    node: PeerId,
    streams: libp2p_stream::Control,
    commands: mpsc::Sender<GossipCommand>,
    seen: Arc<Mutex<GossipSeen>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RawGossip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawGossip")
            .field("peer_id", &self.peer_id)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl RawGossip {
    /// Dials `addr` (with its `/p2p/` part) from a fresh identity.
    pub fn connect(addr: libp2p::Multiaddr) -> RawGossip {
        let mut identity = None;
        let mut swarm = raw_swarm(|key| {
            identity = Some(key.clone());
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Strict)
                .message_id_fn(cachecash_node::network::behaviour::message_id)
                .max_transmit_size(RAW_GOSSIP_MAX_BYTES)
                .build()
                .expect("gossipsub configuration");
            GossipPeer {
                gossip: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    config,
                )
                .expect("gossipsub"),
                streams: libp2p_stream::Behaviour::new(),
            }
        });
        let key = identity.expect("the swarm was built with a key");
        let peer_id = *swarm.local_peer_id();
        let streams = swarm.behaviour().streams.new_control();
        let (node, _) = cachecash_node::network::split_peer_id(&addr).expect("a /p2p/ address");
        swarm.dial(addr).expect("dial");
        let seen = Arc::new(Mutex::new(GossipSeen::default()));
        let (commands, mut rx) = mpsc::channel(16);
        let state = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = swarm.select_next_some() => {
                        let mut s = state.lock().expect("state lock");
                        s.connections.on(&event);
                        match event {
                            SwarmEvent::ConnectionClosed { num_established: 0, .. } => {
                                s.subscribed.clear();
                            }
                            SwarmEvent::Behaviour(GossipPeerEvent::Gossip(
                                gossipsub::Event::Subscribed { topic, .. },
                            )) => {
                                s.subscribed.insert(topic);
                            }
                            SwarmEvent::Behaviour(GossipPeerEvent::Gossip(
                                gossipsub::Event::Unsubscribed { topic, .. },
                            )) => {
                                s.subscribed.remove(&topic);
                            }
                            _ => {}
                        }
                    }
                    command = rx.recv() => match command {
                        Some(GossipCommand::Publish(topic, data, reply)) => {
                            let r = swarm.behaviour_mut().gossip.publish(topic, data);
                            let _ = reply.send(r.map(|_| ()).map_err(|e| e.to_string()));
                        }
                        Some(GossipCommand::Dial(addr, reply)) => {
                            let _ = reply.send(swarm.dial(addr).map_err(|e| e.to_string()));
                        }
                        None => return,
                    },
                }
            }
        });
        RawGossip {
            peer_id,
            key,
            node,
            streams,
            commands,
            seen,
            task,
        }
    }

    /// Its peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// What its connections went through so far.
    pub fn connections(&self) -> Connections {
        self.seen.lock().expect("state lock").connections.clone()
    }

    /// Whether the node told it, on the open connection, that it
    /// subscribes to `topic`.
    pub fn knows_subscription(&self, topic: &gossipsub::IdentTopic) -> bool {
        self.seen
            .lock()
            .expect("state lock")
            .subscribed
            .contains(&topic.hash())
    }

    /// Waits until the node's subscription to `topic` is known (publishing
    /// needs a subscribed peer), or panics after `deadline`.
    pub async fn wait_subscribed(&self, topic: &gossipsub::IdentTopic, deadline: Duration) {
        crate::wait_until("the node's subscription is known", deadline, || {
            self.knows_subscription(topic)
        })
        .await;
    }

    /// Publishes `data` on `topic` (signed by this peer, so gossipsub's
    /// own checks pass and the node's validation judges the bytes).
    pub async fn publish(
        &self,
        topic: &gossipsub::IdentTopic,
        data: Vec<u8>,
    ) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(GossipCommand::Publish(topic.hash(), data, reply))
            .await
            .map_err(|_| "the raw peer stopped".to_string())?;
        rx.await.map_err(|_| "the raw peer stopped".to_string())?
    }

    /// Dials `addr` again.
    pub async fn dial(&self, addr: libp2p::Multiaddr) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(GossipCommand::Dial(addr, reply))
            .await
            .map_err(|_| "the raw peer stopped".to_string())?;
        rx.await.map_err(|_| "the raw peer stopped".to_string())?
    }

    /// One gossipsub frame, written by hand as gossipsub frames one: a
    /// varint length, then an RPC publishing `data` on `topic` in a message
    /// from this peer with sequence number `seqno`, signed as strict
    /// validation requires.
    pub fn publish_frame(&self, topic: &gossipsub::IdentTopic, data: &[u8], seqno: u64) -> Vec<u8> {
        fn varint(mut n: usize, out: &mut Vec<u8>) {
            while n >= 0x80 {
                out.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
        }
        // A length-delimited protobuf field.
        fn field(number: u8, bytes: &[u8], out: &mut Vec<u8>) {
            out.push((number << 3) | 2);
            varint(bytes.len(), out);
            out.extend_from_slice(bytes);
        }
        // Message { from = 1, data = 2, seqno = 3, topic = 4, signature = 5 },
        // signed over its encoding without the signature.
        let mut message = Vec::with_capacity(data.len() + 256);
        field(1, &self.peer_id.to_bytes(), &mut message);
        field(2, data, &mut message);
        field(3, &seqno.to_be_bytes(), &mut message);
        field(4, topic.hash().as_str().as_bytes(), &mut message);
        let signature = self
            .key
            .sign(&[&b"libp2p-pubsub:"[..], &message].concat())
            .expect("an ed25519 key signs");
        field(5, &signature, &mut message);
        // Rpc { publish = 2 }.
        let mut rpc = Vec::with_capacity(message.len() + 8);
        field(2, &message, &mut rpc);
        let mut frame = Vec::with_capacity(rpc.len() + 8);
        varint(rpc.len(), &mut frame);
        frame.extend_from_slice(&rpc);
        frame
    }

    /// Writes `frame` on a new gossipsub stream to the node, then closes
    /// the stream.
    pub async fn send_frame(&self, frame: &[u8]) -> Result<(), String> {
        let mut stream = self
            .streams
            .clone()
            .open_stream(self.node, MESHSUB)
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(frame).await.map_err(|e| e.to_string())?;
        stream.close().await.map_err(|e| e.to_string())
    }

    /// Writes `frame` on a new gossipsub stream to the node, keeping its
    /// side of the stream open, and waits until the node closes or resets
    /// the stream: Ok if it did within `deadline`. The node sends nothing
    /// on a peer's gossip stream, so it ends only when the node gives up
    /// on what it read.
    pub async fn send_frame_until_refused(
        &self,
        frame: Vec<u8>,
        deadline: Duration,
    ) -> Result<(), String> {
        let stream = self
            .streams
            .clone()
            .open_stream(self.node, MESHSUB)
            .await
            .map_err(|e| e.to_string())?;
        let (mut reader, mut writer) = stream.split();
        let write = async move {
            // The node stops reading at its limit: the rest may never go.
            let _ = writer.write_all(&frame).await;
            std::future::pending::<()>().await
        };
        let closed = async move {
            let mut buf = [0u8; 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(deadline, async {
            tokio::select! {
                () = closed => {}
                () = write => {}
            }
        })
        .await
        .map_err(|_| format!("the node kept the stream open for {deadline:?}"))
    }
}

impl Drop for RawGossip {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a [`RawResponder`] has seen.
#[derive(Debug, Default)]
struct ResponderSeen {
    connections: Connections,
}

/// A peer that dials a node and answers the node's requests on one
/// request-response protocol with whatever bytes its `answer` function
/// returns for the request's bytes (frame included): a hostile server the
/// node syncs from. Its swarm runs on a task of its own until it is
/// dropped.
#[derive(Debug)]
pub struct RawResponder {
    peer_id: PeerId,
    seen: Arc<Mutex<ResponderSeen>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawResponder {
    /// Dials `addr` (with its `/p2p/` part) from a fresh identity and
    /// serves `protocol` with `answer`.
    pub fn serve(
        addr: libp2p::Multiaddr,
        protocol: StreamProtocol,
        mut answer: impl FnMut(&[u8]) -> Vec<u8> + Send + 'static,
    ) -> RawResponder {
        use libp2p::request_response::{self, ProtocolSupport};
        let mut swarm = raw_swarm(|_| {
            request_response::Behaviour::<RawCodec>::new(
                [(protocol, ProtocolSupport::Inbound)],
                request_response::Config::default(),
            )
        });
        let peer_id = *swarm.local_peer_id();
        swarm.dial(addr).expect("dial");
        let seen = Arc::new(Mutex::new(ResponderSeen::default()));
        let state = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let event = swarm.select_next_some().await;
                state.lock().expect("state lock").connections.on(&event);
                if let SwarmEvent::Behaviour(request_response::Event::Message {
                    message:
                        request_response::Message::Request {
                            request, channel, ..
                        },
                    ..
                }) = event
                {
                    // The node may drop the stream before the whole answer
                    // is written (an oversized one): nothing to do then.
                    let _ = swarm
                        .behaviour_mut()
                        .send_response(channel, answer(&request));
                }
            }
        });
        RawResponder {
            peer_id,
            seen,
            task,
        }
    }

    /// Its peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// What its connections went through so far.
    pub fn connections(&self) -> Connections {
        self.seen.lock().expect("state lock").connections.clone()
    }
}

impl Drop for RawResponder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

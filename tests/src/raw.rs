//! A request-response codec that sends and receives raw bytes: lets a test
//! speak a node's request-response protocols as a hostile peer would
//! (garbage, oversized frames, floods) without the node's own codec.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use std::io;

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
    use futures::StreamExt;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::SwarmEvent;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            Default::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(|_| {
            request_response::Behaviour::<RawCodec>::new(
                [(protocol, ProtocolSupport::Outbound)],
                request_response::Config::default(),
            )
        })
        .expect("behaviour")
        .build();
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

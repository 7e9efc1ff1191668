//! The sync wire protocol: request-response messages, their bounds, and
//! the codec that enforces them.
//!
//! Every message is one SCALE-encoded value per stream, written whole and
//! followed by closing the write side. Readers never read more than the
//! message kind's limit plus one byte, so an oversized message is an error
//! before it is buffered, and decoding is bounded by
//! `decode_all_with_depth_limit`. Blocks travel as their encoded bytes and
//! are decoded by the runtime's bounded block decoder at import.
//!
//! | request | response | bound |
//! |---|---|---|
//! | `Status(status)` | `Status(status)` | fixed size |
//! | `Headers { locator, max }` | `Headers(headers)` | locator ≤ [`MAX_LOCATOR`], headers ≤ [`MAX_HEADERS`] |
//! | `Blocks { hashes }` | `Blocks(encoded blocks)` | hashes ≤ [`MAX_BLOCKS`], response ≤ [`MAX_RESPONSE_BYTES`] |
//! | `HeadersByRange { start, count }` | `Headers(headers)` | count capped at [`MAX_HEADERS`] |
//! | `BlocksByRange { start, count }` | `Blocks(encoded blocks)` | count capped at [`MAX_BLOCKS`] |
//! | `HeadersByHash { hashes }` | `Headers(headers)` | hashes ≤ [`MAX_BLOCKS`] |
//!
//! Ranges and hashes name canonical blocks; a response is the prefix the
//! server has (it stops at the first block it lacks).

use cachecash_runtime::{Hash, Header};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use parity_scale_codec::{Decode, DecodeLimit, Encode};
use prometheus_client::metrics::counter::Counter;
use std::io;
use std::sync::Arc;

/// Most hashes in a block locator.
pub const MAX_LOCATOR: usize = 64;
/// Most headers in one response.
pub const MAX_HEADERS: u32 = 2000;
/// Most blocks asked for in one request.
pub const MAX_BLOCKS: u32 = 128;
/// Largest request on the wire.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Soft size of a blocks response: a server adds no block that would take
/// the response past it, except the first.
pub const SOFT_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Largest response on the wire: one largest block (consensus caps blocks
/// at 16 MiB, `runtime::consensus::MAX_BLOCK_BYTES_LIMIT`) plus framing.
pub const MAX_RESPONSE_BYTES: usize =
    cachecash_runtime::consensus::MAX_BLOCK_BYTES_LIMIT as usize + 64 * 1024;
/// Nesting limit for the SCALE decoder.
const DEPTH_LIMIT: u32 = 8;

/// A node's view of its chain, exchanged on connect and refreshed.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Status {
    /// Genesis hash: peers on another chain are dropped.
    pub genesis: Hash,
    /// Height of the best block.
    pub best_number: u64,
    /// Hash of the best block.
    pub best_hash: Hash,
    /// Cumulative work of the best chain, big-endian.
    pub total_work: [u8; 32],
}

/// A sync request.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum SyncRequest {
    /// "Here is my status; what is yours?"
    #[codec(index = 0)]
    Status(Status),
    /// Headers after the first locator hash on the server's canonical
    /// chain, in ascending order, at most `max`.
    #[codec(index = 1)]
    Headers {
        /// Hashes from the requester's chain, newest first, thinning out
        /// exponentially back to genesis.
        locator: Vec<Hash>,
        /// Most headers wanted (the server caps it at [`MAX_HEADERS`]).
        max: u32,
    },
    /// Blocks by hash, in the order asked.
    #[codec(index = 2)]
    Blocks {
        /// The hashes, at most [`MAX_BLOCKS`].
        hashes: Vec<Hash>,
    },
    /// Canonical headers from height `start`, at most `count`.
    #[codec(index = 3)]
    HeadersByRange {
        /// First height.
        start: u64,
        /// How many (capped at [`MAX_HEADERS`]).
        count: u32,
    },
    /// Canonical blocks from height `start`, at most `count`.
    #[codec(index = 4)]
    BlocksByRange {
        /// First height.
        start: u64,
        /// How many (capped at [`MAX_BLOCKS`]).
        count: u32,
    },
    /// Headers by hash, in the order asked.
    #[codec(index = 5)]
    HeadersByHash {
        /// The hashes, at most [`MAX_BLOCKS`].
        hashes: Vec<Hash>,
    },
}

/// A sync response.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum SyncResponse {
    /// The server's status.
    #[codec(index = 0)]
    Status(Status),
    /// Headers in ascending order; empty if no locator hash is known.
    #[codec(index = 1)]
    Headers(Vec<Header>),
    /// Encoded blocks: a prefix of the hashes asked for (the server stops
    /// at the first block it does not have, or at the response size).
    #[codec(index = 2)]
    Blocks(Vec<Vec<u8>>),
    /// The server refused the request (rate limit, malformed request).
    #[codec(index = 3)]
    Refused(String),
}

/// What the codec hands over for an inbound stream: the request, or why
/// its bytes were refused. libp2p drops read errors of inbound requests
/// silently, so the codec reports malformed input as a value, and the node
/// bans the sender. Never written to the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A well-formed request.
    Request(SyncRequest),
    /// Bytes that are not a request within bounds, and why.
    Malformed(String),
}

impl SyncRequest {
    /// Checks the bounds a decoded request must respect.
    pub fn check_bounds(&self) -> Result<(), String> {
        match self {
            SyncRequest::Status(_) => Ok(()),
            SyncRequest::Headers { locator, .. } if locator.len() > MAX_LOCATOR => Err(format!(
                "locator of {} hashes exceeds {MAX_LOCATOR}",
                locator.len()
            )),
            SyncRequest::Blocks { hashes } | SyncRequest::HeadersByHash { hashes }
                if hashes.len() > MAX_BLOCKS as usize =>
            {
                Err(format!(
                    "{} blocks asked for, more than {MAX_BLOCKS}",
                    hashes.len()
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The protocol name, namespaced by the genesis hash so that nodes of
/// different chains never negotiate it.
pub fn sync_protocol(genesis: &Hash) -> StreamProtocol {
    protocol_name(genesis, "sync/1")
}

/// `/cachecash/<genesis hex>/<suffix>` as a stream protocol.
pub fn protocol_name(genesis: &Hash, suffix: &str) -> StreamProtocol {
    let name = format!("/cachecash/{}/{suffix}", hex_of(genesis));
    // Built from hex digits and a fixed suffix, so it always starts with '/'.
    StreamProtocol::try_from_owned(name).unwrap_or(StreamProtocol::new("/cachecash/invalid"))
}

fn hex_of(h: &Hash) -> String {
    hex::encode(h.0)
}

/// Bytes moved by the sync protocol (metrics counters).
#[derive(Debug, Default)]
pub struct ByteCounters {
    /// Bytes read.
    pub read: Counter,
    /// Bytes written.
    pub written: Counter,
}

/// The request-response codec: bounded SCALE messages.
#[derive(Clone, Debug, Default)]
pub struct SyncCodec {
    counters: Arc<ByteCounters>,
}

impl SyncCodec {
    /// A codec that counts bytes into `counters`.
    pub fn new(counters: Arc<ByteCounters>) -> SyncCodec {
        SyncCodec { counters }
    }
}

async fn read_bounded<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    limit: usize,
    what: &str,
) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    io.take(cap).read_to_end(&mut buf).await?;
    if buf.is_empty() {
        // The other side closed without a message (it gave up on the
        // request); not malformed data.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{what}: the stream closed without a message"),
        ));
    }
    if buf.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} exceeds the {limit}-byte limit"),
        ));
    }
    Ok(buf)
}

fn decode<V: Decode>(bytes: &[u8], what: &str) -> io::Result<V> {
    V::decode_all_with_depth_limit(DEPTH_LIMIT, &mut &bytes[..])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("malformed {what}: {e}")))
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Incoming;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Incoming>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = match read_bounded(io, MAX_REQUEST_BYTES, "sync request").await {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Ok(Incoming::Malformed(e.to_string()));
            }
            Err(e) => return Err(e),
        };
        self.counters.read.inc_by(bytes.len() as u64);
        let req: SyncRequest = match decode(&bytes, "sync request") {
            Ok(r) => r,
            Err(e) => return Ok(Incoming::Malformed(e.to_string())),
        };
        Ok(match req.check_bounds() {
            Ok(()) => Incoming::Request(req),
            Err(e) => Incoming::Malformed(e),
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_bounded(io, MAX_RESPONSE_BYTES, "sync response").await?;
        self.counters.read.inc_by(bytes.len() as u64);
        let resp: SyncResponse = decode(&bytes, "sync response")?;
        if let SyncResponse::Headers(h) = &resp
            && h.len() > MAX_HEADERS as usize
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} headers in one response, more than {MAX_HEADERS}",
                    h.len()
                ),
            ));
        }
        Ok(resp)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Incoming,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let Incoming::Request(req) = req else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a malformed request is never sent",
            ));
        };
        let bytes = req.encode();
        io.write_all(&bytes).await?;
        io.close().await?;
        self.counters.written.inc_by(bytes.len() as u64);
        Ok(())
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        resp: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = resp.encode();
        io.write_all(&bytes).await?;
        io.close().await?;
        self.counters.written.inc_by(bytes.len() as u64);
        Ok(())
    }
}

/// A block locator for a chain whose block at height `n` is `hash_at(n)`:
/// the last ten heights, then exponentially sparser, then genesis.
pub fn locator_heights(head: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut n = head;
    let mut step = 1u64;
    loop {
        out.push(n);
        if n == 0 || out.len() >= MAX_LOCATOR - 1 {
            break;
        }
        if out.len() >= 10 {
            step = step.saturating_mul(2);
        }
        n = n.saturating_sub(step);
    }
    if out.last() != Some(&0) {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec;

    fn status() -> Status {
        Status {
            genesis: Hash([0x11; 32]),
            best_number: 0x0102,
            best_hash: Hash([0x22; 32]),
            total_work: [0x33; 32],
        }
    }

    #[test]
    fn status_request_golden_vector() {
        let bytes = SyncRequest::Status(status()).encode();
        let expected = format!(
            "00{}0201000000000000{}{}",
            "11".repeat(32),
            "22".repeat(32),
            "33".repeat(32)
        );
        assert_eq!(hex::encode(&bytes), expected);
    }

    #[test]
    fn headers_and_blocks_requests_golden_vectors() {
        let req = SyncRequest::Headers {
            locator: vec![Hash([0xaa; 32])],
            max: 2000,
        };
        assert_eq!(
            hex::encode(req.encode()),
            format!("0104{}d0070000", "aa".repeat(32))
        );
        let req = SyncRequest::Blocks {
            hashes: vec![Hash([0x01; 32]), Hash([0x02; 32])],
        };
        assert_eq!(
            hex::encode(req.encode()),
            format!("0208{}{}", "01".repeat(32), "02".repeat(32))
        );
        let resp = SyncResponse::Blocks(vec![vec![0xde, 0xad]]);
        assert_eq!(hex::encode(resp.encode()), "020408dead");
        let resp = SyncResponse::Refused("no".into());
        assert_eq!(hex::encode(resp.encode()), "03086e6f");
    }

    #[test]
    fn range_and_header_hash_requests_golden_vectors() {
        let req = SyncRequest::HeadersByRange { start: 5, count: 3 };
        assert_eq!(hex::encode(req.encode()), "03050000000000000003000000");
        let req = SyncRequest::BlocksByRange { start: 1, count: 2 };
        assert_eq!(hex::encode(req.encode()), "04010000000000000002000000");
        let req = SyncRequest::HeadersByHash {
            hashes: vec![Hash([7; 32])],
        };
        assert_eq!(
            hex::encode(req.encode()),
            format!("0504{}", "07".repeat(32))
        );
    }

    #[test]
    fn protocol_name_is_namespaced_by_genesis() {
        let a = sync_protocol(&Hash([1; 32]));
        let b = sync_protocol(&Hash([2; 32]));
        assert_ne!(a, b);
        assert_eq!(a.as_ref(), format!("/cachecash/{}/sync/1", "01".repeat(32)));
    }

    #[test]
    fn locator_is_dense_near_the_head_sparse_below_and_ends_at_genesis() {
        let l = locator_heights(10_000);
        assert_eq!(
            &l[..10],
            &[
                10_000, 9_999, 9_998, 9_997, 9_996, 9_995, 9_994, 9_993, 9_992, 9_991
            ]
        );
        assert_eq!(l.last(), Some(&0));
        assert!(l.len() <= MAX_LOCATOR);
        assert!(l.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(locator_heights(0), vec![0]);
        assert_eq!(locator_heights(3), vec![3, 2, 1, 0]);
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn oversized_request_is_rejected_before_decoding() {
        let mut codec = SyncCodec::default();
        let proto = sync_protocol(&Hash([0; 32]));
        let big = vec![0u8; MAX_REQUEST_BYTES + 10];
        match block_on(codec.read_request(&proto, &mut &big[..])).unwrap() {
            Incoming::Malformed(why) => assert!(why.contains("limit"), "{why}"),
            other => panic!("accepted {other:?}"),
        }
    }

    #[test]
    fn garbage_and_out_of_bounds_requests_are_reported_as_malformed() {
        let mut codec = SyncCodec::default();
        let proto = sync_protocol(&Hash([0; 32]));
        // An empty stream is the peer giving up, not malformed data.
        assert!(block_on(codec.read_request(&proto, &mut &b""[..])).is_err());
        for garbage in [
            &[0xff][..],
            &[0x01, 0xff, 0xff, 0xff, 0xff][..],
            &[0x00, 0x01][..],
        ] {
            let r = block_on(codec.read_request(&proto, &mut &garbage[..])).unwrap();
            assert!(matches!(r, Incoming::Malformed(_)), "{garbage:?} decoded");
        }
        let too_many = SyncRequest::Blocks {
            hashes: vec![Hash([0; 32]); MAX_BLOCKS as usize + 1],
        }
        .encode();
        match block_on(codec.read_request(&proto, &mut &too_many[..])).unwrap() {
            Incoming::Malformed(why) => assert!(why.contains("more than"), "{why}"),
            other => panic!("accepted {other:?}"),
        }
    }

    #[test]
    fn requests_and_responses_round_trip_through_the_codec() {
        let mut codec = SyncCodec::default();
        let proto = sync_protocol(&Hash([0; 32]));
        let req = SyncRequest::Headers {
            locator: vec![Hash([5; 32]); 3],
            max: 7,
        };
        let mut wire = futures::io::Cursor::new(Vec::new());
        block_on(codec.write_request(&proto, &mut wire, Incoming::Request(req.clone()))).unwrap();
        let bytes = wire.into_inner();
        assert_eq!(
            block_on(codec.read_request(&proto, &mut &bytes[..])).unwrap(),
            Incoming::Request(req)
        );
        let resp = SyncResponse::Status(status());
        let mut wire = futures::io::Cursor::new(Vec::new());
        block_on(codec.write_response(&proto, &mut wire, resp.clone())).unwrap();
        let bytes = wire.into_inner();
        assert_eq!(
            block_on(codec.read_response(&proto, &mut &bytes[..])).unwrap(),
            resp
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_to_a_value_or_an_error(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut codec = SyncCodec::default();
            let proto = sync_protocol(&Hash([0; 32]));
            let _ = block_on(codec.read_request(&proto, &mut &bytes[..]));
            let _ = block_on(codec.read_response(&proto, &mut &bytes[..]));
        }
    }
}

//! The sync protocol on libp2p: protocol names and the request-response
//! codec. The messages, their bounds and decoders are in
//! [`cachecash_wire`] (re-exported here).
//!
//! Framing: one message per stream, as `length (u32 LE) ‖ SCALE bytes`,
//! then the writer closes. The length lets a reader tell the two failures
//! apart: a stream that ends early (the peer shut down or gave up) is
//! `UnexpectedEof` and costs the peer nothing, while a length over the
//! message kind's limit, trailing bytes, or a complete message that does
//! not decode is malformed data and gets the peer banned. Nothing past the
//! limit is ever buffered.

use cachecash_runtime::Hash;
pub use cachecash_wire::*;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use parity_scale_codec::Encode;
use prometheus_client::metrics::counter::Counter;
use std::io;
use std::sync::Arc;

/// The protocol name, namespaced by the genesis hash so that nodes of
/// different chains never negotiate it.
pub fn sync_protocol(genesis: &Hash) -> StreamProtocol {
    protocol_name(genesis, "sync/2")
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

/// Reads one framed message of at most `limit` bytes.
async fn read_bounded<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    limit: usize,
    what: &str,
) -> io::Result<Vec<u8>> {
    let eof = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{what}: the stream ended before the whole message"),
            )
        } else {
            e
        }
    };
    let mut header = [0u8; 4];
    io.read_exact(&mut header).await.map_err(eof)?;
    let len = usize::try_from(u32::from_le_bytes(header)).unwrap_or(usize::MAX);
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} of {len} bytes exceeds the {limit}-byte limit"),
        ));
    }
    // Grow with what arrives rather than reserving `len` up front: a peer
    // announcing 24 MiB and sending slowly holds only what it sent.
    let mut buf = Vec::new();
    io.take(u64::try_from(len).unwrap_or(u64::MAX))
        .read_to_end(&mut buf)
        .await?;
    if buf.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{what}: the stream ended before the whole message"),
        ));
    }
    let mut extra = [0u8; 1];
    if io.read(&mut extra).await? != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what}: bytes after the {len}-byte message"),
        ));
    }
    Ok(buf)
}

/// Writes one framed message and closes the stream.
async fn write_framed<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<usize> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message longer than 4 GiB"))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await?;
    Ok(bytes.len().saturating_add(4))
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
        self.counters.read.inc_by(bytes.len() as u64 + 4);
        Ok(decode_request(&bytes))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_bounded(io, MAX_RESPONSE_BYTES, "sync response").await?;
        self.counters.read.inc_by(bytes.len() as u64 + 4);
        decode_response(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
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
        let written = write_framed(io, &req.encode()).await?;
        self.counters.written.inc_by(written as u64);
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
        let written = write_framed(io, &resp.encode()).await?;
        self.counters.written.inc_by(written as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec;

    #[test]
    fn protocol_name_is_namespaced_by_genesis() {
        let a = sync_protocol(&Hash([1; 32]));
        let b = sync_protocol(&Hash([2; 32]));
        assert_ne!(a, b);
        assert_eq!(a.as_ref(), format!("/cachecash/{}/sync/2", "01".repeat(32)));
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn oversized_request_is_rejected_before_reading_its_body() {
        let mut codec = SyncCodec::default();
        let proto = sync_protocol(&Hash([0; 32]));
        let mut big = u32::try_from(MAX_REQUEST_BYTES + 1)
            .unwrap()
            .to_le_bytes()
            .to_vec();
        big.extend([0u8; 8]);
        match block_on(codec.read_request(&proto, &mut &big[..])).unwrap() {
            Incoming::Malformed(why) => assert!(why.contains("limit"), "{why}"),
            other => panic!("accepted {other:?}"),
        }
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = u32::try_from(payload.len()).unwrap().to_le_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn garbage_and_out_of_bounds_requests_are_reported_as_malformed() {
        let mut codec = SyncCodec::default();
        let proto = sync_protocol(&Hash([0; 32]));
        for garbage in [
            framed(&[0xff]),
            framed(&[0x01, 0xff, 0xff, 0xff, 0xff]),
            framed(&[0x00, 0x01]),
            // Bytes after a complete message.
            [
                framed(&SyncRequest::HeadersByRange { start: 0, count: 1 }.encode()),
                vec![0],
            ]
            .concat(),
        ] {
            let r = block_on(codec.read_request(&proto, &mut &garbage[..])).unwrap();
            assert!(matches!(r, Incoming::Malformed(_)), "{garbage:?} decoded");
        }
        let too_many = framed(
            &SyncRequest::Blocks {
                hashes: vec![Hash([0; 32]); MAX_BLOCKS as usize + 1],
            }
            .encode(),
        );
        match block_on(codec.read_request(&proto, &mut &too_many[..])).unwrap() {
            Incoming::Malformed(why) => assert!(why.contains("more than"), "{why}"),
            other => panic!("accepted {other:?}"),
        }
    }

    #[test]
    fn a_stream_that_ends_early_is_not_malformed_data() {
        // A peer that shuts down mid-message is not misbehaving: the
        // reader sees end-of-stream, never InvalidData (which bans).
        let mut codec = SyncCodec::default();
        let proto = sync_protocol(&Hash([0; 32]));
        let whole = framed(&SyncResponse::Blocks(vec![vec![7; 100]]).encode());
        for cut in [0, 2, 4, 50, whole.len() - 1] {
            let err = block_on(codec.read_response(&proto, &mut &whole[..cut])).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
            let err = block_on(codec.read_request(&proto, &mut &whole[..cut])).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        }
        // A complete frame that does not decode is malformed.
        let err = block_on(codec.read_response(&proto, &mut &framed(&[9, 9])[..])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
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
        assert_eq!(&bytes[..4], &(bytes.len() as u32 - 4).to_le_bytes());
        assert_eq!(
            block_on(codec.read_request(&proto, &mut &bytes[..])).unwrap(),
            Incoming::Request(req)
        );
        let resp = SyncResponse::Blocks(vec![vec![1, 2, 3], Vec::new()]);
        let mut wire = futures::io::Cursor::new(Vec::new());
        block_on(codec.write_response(&proto, &mut wire, resp.clone())).unwrap();
        let bytes = wire.into_inner();
        assert_eq!(
            block_on(codec.read_response(&proto, &mut &bytes[..])).unwrap(),
            resp
        );
    }
}

//! The sync protocol on libp2p: protocol names and the request-response
//! codec. The messages, their bounds and decoders are in
//! [`cachecash_wire`] (re-exported here); the codec reads at most a message
//! kind's limit plus one byte before decoding, writes one message per
//! stream and closes it.

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
        Ok(decode_request(&bytes))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_bounded(io, MAX_RESPONSE_BYTES, "sync response").await?;
        self.counters.read.inc_by(bytes.len() as u64);
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

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec;

    #[test]
    fn protocol_name_is_namespaced_by_genesis() {
        let a = sync_protocol(&Hash([1; 32]));
        let b = sync_protocol(&Hash([2; 32]));
        assert_ne!(a, b);
        assert_eq!(a.as_ref(), format!("/cachecash/{}/sync/1", "01".repeat(32)));
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

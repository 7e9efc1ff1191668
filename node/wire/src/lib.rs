//! # cachecash-wire
//!
//! The messages nodes exchange over the sync protocol, their bounds, and
//! their decoders: pure data and functions, no networking, so that the
//! decoders can be fuzzed and reused without the node.
//!
//! Every message is one SCALE-encoded value per stream. Readers never read
//! more than the message kind's limit plus one byte, so an oversized message
//! is an error before it is buffered, and decoding is bounded by
//! `decode_all_with_depth_limit` and [`SyncRequest::check_bounds`]. Blocks
//! travel as their encoded bytes and are decoded by the runtime's bounded
//! block decoder at import.
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
use parity_scale_codec::{Decode, DecodeLimit, Encode};

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
pub const DEPTH_LIMIT: u32 = 8;

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

/// Decodes a request read from a stream (at most [`MAX_REQUEST_BYTES`]):
/// the request, or why the bytes are not one within bounds.
pub fn decode_request(bytes: &[u8]) -> Incoming {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Incoming::Malformed(format!(
            "sync request exceeds the {MAX_REQUEST_BYTES}-byte limit"
        ));
    }
    let req = match SyncRequest::decode_all_with_depth_limit(DEPTH_LIMIT, &mut &bytes[..]) {
        Ok(r) => r,
        Err(e) => return Incoming::Malformed(format!("malformed sync request: {e}")),
    };
    match req.check_bounds() {
        Ok(()) => Incoming::Request(req),
        Err(e) => Incoming::Malformed(e),
    }
}

/// Decodes a response read from a stream (at most [`MAX_RESPONSE_BYTES`]).
pub fn decode_response(bytes: &[u8]) -> Result<SyncResponse, String> {
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(format!(
            "sync response exceeds the {MAX_RESPONSE_BYTES}-byte limit"
        ));
    }
    let resp = SyncResponse::decode_all_with_depth_limit(DEPTH_LIMIT, &mut &bytes[..])
        .map_err(|e| format!("malformed sync response: {e}"))?;
    if let SyncResponse::Headers(h) = &resp
        && h.len() > MAX_HEADERS as usize
    {
        return Err(format!(
            "{} headers in one response, more than {MAX_HEADERS}",
            h.len()
        ));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn out_of_bounds_and_garbage_requests_are_malformed() {
        for garbage in [
            &[0xff][..],
            &[0x01, 0xff, 0xff, 0xff, 0xff][..],
            &[0x00, 0x01][..],
        ] {
            assert!(
                matches!(decode_request(garbage), Incoming::Malformed(_)),
                "{garbage:?}"
            );
        }
        let too_many = SyncRequest::Blocks {
            hashes: vec![Hash([0; 32]); MAX_BLOCKS as usize + 1],
        }
        .encode();
        assert!(
            matches!(decode_request(&too_many), Incoming::Malformed(m) if m.contains("more than"))
        );
        let big = vec![0u8; MAX_REQUEST_BYTES + 1];
        assert!(matches!(decode_request(&big), Incoming::Malformed(m) if m.contains("limit")));
        let ok = SyncRequest::Status(status()).encode();
        assert_eq!(
            decode_request(&ok),
            Incoming::Request(SyncRequest::Status(status()))
        );
        assert!(decode_response(&[0x07]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_to_a_value_or_an_error(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
        }

        #[test]
        fn requests_round_trip(start in 0u64.., count in 0u32.., n in 0usize..(MAX_BLOCKS as usize)) {
            for req in [
                SyncRequest::BlocksByRange { start, count },
                SyncRequest::HeadersByHash { hashes: vec![Hash([3; 32]); n] },
            ] {
                proptest::prop_assert_eq!(decode_request(&req.encode()), Incoming::Request(req.clone()));
            }
        }
    }
}

//! The CDN service messages on the wire: golden encodings (worked out by
//! hand from the SCALE rules: enum index byte, little-endian integers,
//! compact length prefixes) and the bounded decoders' refusals. A change to
//! a vector is a protocol change: bump the protocol name (`…/2`).

use cachecash_cdn::keys::{PuzzleSecret, SessionKey};
use cachecash_cdn::messages::{
    ChunkReply, ChunkRequest, ControlRequest, ErrorKind, Fault, FillReply, FillRequest, OfferReply,
    OpenRequest, SessionReply, SessionRequest, decode, text, wire_text,
};
use cachecash_cdn::{DecodeError, WireMessage};
use cachecash_runtime::Hash;
use parity_scale_codec::Encode;

fn check<T: WireMessage + PartialEq + std::fmt::Debug>(value: T, hex_expected: &str) {
    let bytes = value.encode();
    assert_eq!(hex::encode(&bytes), hex_expected, "{value:?}");
    assert_eq!(decode::<T>(&bytes).unwrap(), value);
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode::<T>(&longer).is_err(), "trailing bytes accepted");
}

#[test]
fn golden_encodings_of_every_service_message() {
    check(OfferReply::Accepted, "00");
    check(OfferReply::Refused(b"no".to_vec()), "01086e6f");
    check(FillReply::Data { len: 0x0001_0203 }, "0003020100");
    check(ChunkReply::Data { len: 131_072 }, "0000000200");
    check(
        ChunkReply::OuterKey(SessionKey::from_bytes([0x11; 16])),
        &format!("01{}", "11".repeat(16)),
    );
    check(
        SessionRequest::Secret {
            sequence: 1,
            secret: PuzzleSecret::from_bytes([0x22; 32]),
        },
        &format!("000100000000000000{}", "22".repeat(32)),
    );
    check(
        SessionRequest::Blame {
            sequence: 2,
            position: 3,
            fault: Fault::Stalled,
        },
        "0102000000000000000301",
    );
    check(
        ControlRequest::Open(OpenRequest {
            path: b"/a".to_vec(),
            range: Some((1, 2)),
            window: 2,
        }),
        "02082f61010100000000000000020000000000000002",
    );
    check(
        ControlRequest::Fill(FillRequest {
            escrow: Hash([1; 32]),
            object: Hash([2; 32]),
            chunk_index: 5,
            chunk_id: Hash([3; 32]),
        }),
        &format!(
            "01{}{}0500000000000000{}",
            "01".repeat(32),
            "02".repeat(32),
            "03".repeat(32)
        ),
    );
    check(SessionReply::Done, "02");
    check(
        SessionReply::Error {
            kind: ErrorKind::NotFound,
            message: b"x".to_vec(),
        },
        "03010478",
    );
}

#[test]
fn decoders_refuse_out_of_bounds_messages() {
    let open = |path: Vec<u8>, window| {
        ControlRequest::Open(OpenRequest {
            path,
            range: None,
            window,
        })
        .encode()
    };
    assert!(matches!(
        decode::<ControlRequest>(&open(vec![b'a'; 1025], 1)),
        Err(DecodeError::OutOfBounds { .. })
    ));
    assert!(decode::<ControlRequest>(&open(b"/x".to_vec(), 0)).is_err());
    assert!(decode::<ControlRequest>(&open(b"/x".to_vec(), 9)).is_err());
    assert!(decode::<ControlRequest>(&open(b"/x".to_vec(), 8)).is_ok());
    assert!(matches!(
        decode::<ChunkReply>(&vec![1; 4096]),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(decode::<FillReply>(&FillReply::Data { len: u32::MAX }.encode()).is_err());
    let blame = SessionRequest::Blame {
        sequence: 0,
        position: 16,
        fault: Fault::Stalled,
    };
    assert!(decode::<SessionRequest>(&blame.encode()).is_err());
    let evidence = SessionRequest::Blame {
        sequence: 0,
        position: 0,
        fault: Fault::Corrupt(vec![Hash([0; 32]); 17]),
    };
    assert!(decode::<SessionRequest>(&evidence.encode()).is_err());
    for garbage in [&[][..], &[0xff], &[9, 9, 9]] {
        assert!(decode::<ChunkRequest>(garbage).is_err());
        assert!(decode::<SessionReply>(garbage).is_err());
    }
}

#[test]
fn wire_text_is_bounded_and_peer_text_cannot_forge_log_lines() {
    let long = "é".repeat(600);
    let w = wire_text(&long);
    assert!(w.len() <= 512 && std::str::from_utf8(&w).is_ok());
    assert_eq!(text(b"ok\nFAKE LOG LINE"), "ok\u{fffd}FAKE LOG LINE");
}

/// A signed cache advert: SCALE of the advert, then the ed25519 signature
/// over `cachecash/cache-advert/v1 ‖ SCALE(advert)` (cross-checked with
/// Python's `cryptography`).
#[test]
fn golden_signed_cache_advert() {
    use cachecash_cdn::advert::CacheAdvert;
    use cachecash_runtime::{AccountId, Hash};
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let advert = CacheAdvert {
        cache: AccountId(key.verifying_key().to_bytes()),
        genesis: Hash([1; 32]),
        addrs: vec![vec![4, 127, 0, 0, 1, 6, 0x76, 0x5d]],
        quota: 1 << 30,
        free: 1 << 29,
        escrows: vec![Hash([2; 32])],
        issued: 1_000,
        expires: 1_600,
    };
    check(
        advert.sign(&key),
        "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c01010101010101010101010101010101010101010101010101010101010101010420047f00000106765d00000040000000000000002000000000040202020202020202020202020202020202020202020202020202020202020202e8030000000000004006000000000000b66617d70c483af41e28a23fbec6a2e6891e8339070207ac7a75e45561be00f1141df5cbc1551d0ba7189bc2de43e78f0ac6f6bbb63f84030d8c0a1cdf88820a",
    );
}

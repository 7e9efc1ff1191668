//! `SignedCacheAdvert::decode_bounded` is total: any input decodes or returns an error,
//! never panics, and whatever decodes re-encodes to exactly the same bytes
//! (one encoding per message).

#![no_main]

use cachecash_cdn::advert::SignedCacheAdvert;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SignedCacheAdvert::decode_bounded(data) {
        assert_eq!(message.encode(), data, "decoded SignedCacheAdvert does not re-encode to its input");
    }
});

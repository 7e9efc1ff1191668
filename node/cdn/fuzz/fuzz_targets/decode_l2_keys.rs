//! `L2Keys::decode_bounded` is total: any input decodes or returns an error,
//! never panics, and whatever decodes re-encodes to exactly the same bytes
//! (one encoding per message).

#![no_main]

use cachecash_cdn::l2::L2Keys;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = L2Keys::decode_bounded(data) {
        assert_eq!(message.encode(), data, "decoded L2Keys does not re-encode to its input");
    }
});

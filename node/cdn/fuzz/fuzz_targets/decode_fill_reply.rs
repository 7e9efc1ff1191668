//! The bounded decoder of `FillReply` (a CDN service message) is total: any
//! input decodes or returns an error, never panics, and whatever decodes
//! re-encodes to exactly the same bytes (one encoding per message).

#![no_main]

use cachecash_cdn::messages::{FillReply, decode};
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode::<FillReply>(data) {
        assert_eq!(message.encode(), data, "decoded FillReply does not re-encode to its input");
    }
});

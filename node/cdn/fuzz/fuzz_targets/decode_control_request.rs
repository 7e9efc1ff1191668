//! The bounded decoder of `ControlRequest` (a CDN service message) is total: any
//! input decodes or returns an error, never panics, and whatever decodes
//! re-encodes to exactly the same bytes (one encoding per message).

#![no_main]

use cachecash_cdn::messages::{ControlRequest, decode};
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode::<ControlRequest>(data) {
        assert_eq!(message.encode(), data, "decoded ControlRequest does not re-encode to its input");
    }
});

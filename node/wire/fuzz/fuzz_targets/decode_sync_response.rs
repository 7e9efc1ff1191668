//! Any bytes from a peer decode to a response within bounds or to an
//! error, never a panic; a decoded response re-encodes to the same bytes.
#![no_main]

use cachecash_wire::decode_response;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = decode_response(data) {
        assert_eq!(resp.encode(), data);
    }
});

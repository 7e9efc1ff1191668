//! Any bytes from a peer decode to a request within bounds or to a
//! "malformed" verdict, never a panic; a decoded request re-encodes to the
//! same bytes.
#![no_main]

use cachecash_wire::{Incoming, decode_request};
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    if let Incoming::Request(req) = decode_request(data) {
        assert_eq!(req.encode(), data);
        assert!(req.check_bounds().is_ok());
    }
});

//! Headers are fixed-size: any byte string decodes exactly or errors.
#![no_main]
use cachecash_runtime::Header;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::{DecodeAll, Encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::decode_all(&mut &data[..]) {
        assert_eq!(h.encode(), data, "decoding is canonical");
        assert_eq!(Header::hash_with_nonce(&h.mining_prefix(), h.nonce), h.hash());
    }
});

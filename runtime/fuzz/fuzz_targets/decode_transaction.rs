//! Any byte string decodes to a transaction or an error, never a panic or
//! an unbounded allocation; whatever decodes re-encodes to the same bytes.
#![no_main]
use cachecash_runtime::SignedTransaction;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = SignedTransaction::decode_bounded(data) {
        assert_eq!(tx.encode(), data, "decoding is canonical");
        let _ = tx.hash();
    }
});

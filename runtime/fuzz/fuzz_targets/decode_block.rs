//! The first verification stage on arbitrary bytes: a block or an error,
//! never a panic; whatever decodes re-encodes to the same bytes.
#![no_main]
use cachecash_runtime::verify::UncheckedBlock;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    let params = cachecash_chain_spec::ChainSpec::dev().consensus_params();
    if let Ok(b) = UncheckedBlock::decode(data, &params) {
        assert_eq!(b.block().encode(), data, "decoding is canonical");
        let _ = b.check_stateless(&cachecash_runtime::Hash::default(), &params);
    }
});

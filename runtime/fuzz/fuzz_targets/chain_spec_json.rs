//! Chain-spec files are untrusted input: any text parses to a valid spec
//! or a clear error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(spec) = cachecash_chain_spec::ChainSpec::from_json_str(text) {
            let _ = spec.genesis_hash();
            let _ = spec.to_json(true);
        }
    }
});

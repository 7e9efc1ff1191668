//! Domain-separation tags.
//!
//! Every hash, key derivation, MAC and signature in this crate starts its
//! input with one of these ASCII constants, so that no value computed for one
//! purpose can be replayed as a value for another. The tags are all distinct
//! and none is a prefix of another (a unit test checks both), so a tag
//! followed by its fixed-layout fields is an unambiguous encoding.
//!
//! A tag names a format version: changing what follows a tag requires a new
//! tag (`…/v2`), never a silent change of meaning.

/// Chunk digest: `SHA-256(CHUNK ‖ chunk bytes)`.
pub const CHUNK: &[u8] = b"cachecash/chunk/v1";
/// Leaf of a manifest's chunk Merkle tree: leaf data = `CHUNK_LEAF ‖ chunk digest`.
pub const CHUNK_LEAF: &[u8] = b"cachecash/chunk-leaf/v1";
/// Manifest signing payload prefix.
pub const MANIFEST: &[u8] = b"cachecash/manifest/v1";
/// HKDF info prefix of a per-cache master key.
pub const MASTER_KEY: &[u8] = b"cachecash/master-key/v1";
/// HKDF info prefix of a session key.
pub const SESSION_KEY: &[u8] = b"cachecash/session-key/v1";
/// HKDF info prefix of a per-chunk IV.
pub const CHUNK_IV: &[u8] = b"cachecash/chunk-iv/v2";
/// Initial chain value of the puzzle walk: `SHA-256(PUZZLE)`.
pub const PUZZLE: &[u8] = b"cachecash/puzzle/v1";
/// HKDF info prefix of the L2 encryption key and IV.
pub const L2_ENC: &[u8] = b"cachecash/l2-enc/v1";
/// HKDF info prefix of the L2 MAC key.
pub const L2_MAC_KEY: &[u8] = b"cachecash/l2-mac-key/v1";
/// Prefix of the L2 MAC input.
pub const L2_MAC: &[u8] = b"cachecash/l2-mac/v1";
/// Bundle remainder digest prefix.
pub const BUNDLE_REMAINDER: &[u8] = b"cachecash/bundle-remainder/v1";
/// Per-chunk (per-cache) bundle subdigest prefix.
pub const BUNDLE_CHUNK: &[u8] = b"cachecash/bundle-chunk/v1";
/// Sealed-L2 digest prefix.
pub const BUNDLE_L2: &[u8] = b"cachecash/bundle-l2/v1";
/// Bundle digest prefix.
pub const BUNDLE: &[u8] = b"cachecash/bundle/v1";
/// Leaf of a bundle batch Merkle tree: leaf data = `BATCH_LEAF ‖ bundle digest`.
pub const BATCH_LEAF: &[u8] = b"cachecash/bundle-batch-leaf/v1";
/// Bundle batch signing payload prefix.
pub const BATCH: &[u8] = b"cachecash/bundle-batch/v1";
/// Cache advert signing payload prefix.
pub const CACHE_ADVERT: &[u8] = b"cachecash/cache-advert/v1";

/// Every tag, for the distinctness test.
pub const ALL: &[&[u8]] = &[
    CHUNK,
    CHUNK_LEAF,
    MANIFEST,
    MASTER_KEY,
    SESSION_KEY,
    CHUNK_IV,
    PUZZLE,
    L2_ENC,
    L2_MAC_KEY,
    L2_MAC,
    BUNDLE_REMAINDER,
    BUNDLE_CHUNK,
    BUNDLE_L2,
    BUNDLE,
    CACHE_ADVERT,
    BATCH_LEAF,
    BATCH,
];

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn tags_are_distinct_ascii_and_prefix_free() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(a.is_ascii(), "tag {i} is not ASCII");
            assert!(
                a.starts_with(b"cachecash/"),
                "tag {i} lacks the cachecash/ prefix"
            );
            for (j, b) in ALL.iter().enumerate() {
                if i != j {
                    assert!(!b.starts_with(a), "tag {i} is a prefix of tag {j}");
                }
            }
        }
    }
}

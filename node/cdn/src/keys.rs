//! The key schedule: escrow secret → per-cache master keys → per-bundle
//! session keys → per-chunk IVs, all with HKDF-SHA256 (RFC 5869).
//!
//! # Layout
//!
//! Every derivation is `HKDF-SHA256(salt = none, IKM, info)` (no salt means
//! RFC 5869's 32 zero bytes). Integers are little-endian; accounts and ids are
//! their 32 raw bytes; `‖` is concatenation.
//!
//! ```text
//! master  (32 B) = HKDF(IKM = escrow secret (32),
//!                       info = "cachecash/master-key/v1" ‖ escrow id (32) ‖ cache account (32) ‖ layer (1))
//! session (16 B) = HKDF(IKM = master key (32),
//!                       info = "cachecash/session-key/v1" ‖ client account (32) ‖ LE64(bundle sequence))
//! IV      (16 B) = HKDF(IKM = session key (16),
//!                       info = "cachecash/chunk-iv/v2" ‖ object id (32) ‖ chunk id (32) ‖ LE64(object chunk index))
//! layer byte: inner = 0x01, outer = 0x02
//! ```
//!
//! # Why per-cache keys
//!
//! The Go prototype gave every cache of an escrow the same inner and outer
//! master keys. Any one cache could then derive every layer of every chunk,
//! so one cache holding all of a bundle's chunks could solve the colocation
//! puzzle with no client at all, and the four inner keys in an L2 were
//! identical. Here the cache account is part of the HKDF info, so every cache
//! gets independent keys; knowing one cache's keys says nothing about
//! another's. The publisher keeps only the 32-byte escrow secret and derives
//! the rest on demand.
//!
//! # Why (key, IV) never repeats
//!
//! A session key is bound to (escrow, cache, layer) through its master key
//! and to (client, bundle sequence) through its info. The publisher never
//! reuses a bundle sequence for a client key within an escrow, and a bundle
//! holds each object chunk at most once (checked when a bundle is prepared),
//! so for a given session key the IV's chunk index is unique too. The IV
//! also binds the object id and the chunk id (its digest): should a sequence
//! ever be handed out twice (a restored backup of the publisher's database,
//! two front-ends configured with one instance number), the same session
//! key over different content still gets a different IV, so the keystream
//! of one chunk never encrypts another. AES-CTR
//! then runs from that IV as a 128-bit big-endian counter; two 128-bit
//! pseudo-random IVs overlapping within a chunk's few thousand blocks has
//! probability about 2⁻¹⁰⁰.
//!
//! Secret types redact themselves in `Debug` and compare in constant time.
//! They do not zeroize on drop (the crate has no `zeroize` dependency).

use cachecash_runtime::microcash::{EscrowId, secret_commitment};
use cachecash_runtime::{AccountId, Hash};
use core::fmt;
use hkdf::Hkdf;
use parity_scale_codec::{Decode, Encode};
use sha2::Sha256;

use crate::error::RngError;
use crate::tags;

/// HKDF-SHA256 with no salt, `info` = the concatenation of `info`, `N` output bytes.
pub(crate) fn hkdf_sha256<const N: usize>(ikm: &[u8], info: &[&[u8]]) -> [u8; N] {
    const { assert!(N <= 255 * 32, "HKDF-SHA256 outputs at most 8160 bytes") };
    let mut okm = [0u8; N];
    let expanded = Hkdf::<Sha256>::new(None, ikm).expand_multi_info(info, &mut okm);
    // Expansion fails only for outputs over 255·32 bytes, excluded above at compile time.
    debug_assert!(expanded.is_ok());
    okm
}

/// Constant-time equality of two byte arrays.
pub(crate) fn ct_eq<const N: usize>(a: &[u8; N], b: &[u8; N]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

macro_rules! secret_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Eq, Encode, Decode)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Wraps raw key bytes.
            pub fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw key bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl PartialEq for $name {
            /// Constant-time comparison.
            fn eq(&self, other: &Self) -> bool {
                ct_eq(&self.0, &other.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_bytes!(
    /// The publisher's 32-byte secret for one escrow; every cache key of the
    /// escrow is derived from it.
    EscrowSecret,
    32
);
secret_bytes!(
    /// A per-(escrow, cache, layer) master key, delivered to that cache once
    /// over an authenticated, encrypted link.
    MasterKey,
    32
);
secret_bytes!(
    /// A per-(cache, layer, client, bundle sequence) AES-128 key.
    SessionKey,
    16
);
secret_bytes!(
    /// The colocation puzzle's secret: the walk's second-to-last chain value.
    /// It seals the L2 and its commitment is in every L1 of the bundle.
    PuzzleSecret,
    32
);

/// The two encryption layers a cache applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Applied first; its key is released through the L2 after the puzzle.
    Inner,
    /// Applied second; its key is released by the cache for a valid L1.
    Outer,
}

impl Layer {
    /// The layer's byte in the master-key HKDF info.
    pub const fn byte(self) -> u8 {
        match self {
            Layer::Inner => 0x01,
            Layer::Outer => 0x02,
        }
    }
}

impl PuzzleSecret {
    /// The commitment an L1 ticket carries (`Ticket::secret_hash`).
    pub fn commitment(&self) -> Hash {
        secret_commitment(&self.0)
    }
}

impl EscrowSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, RngError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| RngError(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// The master key of `cache` for `layer` in `escrow`.
    pub fn master_key(&self, escrow: &EscrowId, cache: &AccountId, layer: Layer) -> MasterKey {
        MasterKey(hkdf_sha256(
            &self.0,
            &[
                tags::MASTER_KEY,
                escrow.as_bytes(),
                cache.as_bytes(),
                &[layer.byte()],
            ],
        ))
    }

    /// Both master keys of `cache` in `escrow`.
    pub fn cache_keys(&self, escrow: &EscrowId, cache: &AccountId) -> CacheKeys {
        CacheKeys {
            inner: self.master_key(escrow, cache, Layer::Inner),
            outer: self.master_key(escrow, cache, Layer::Outer),
        }
    }
}

impl MasterKey {
    /// The session key for bundle `sequence` of `client`.
    pub fn session_key(&self, client: &AccountId, sequence: u64) -> SessionKey {
        SessionKey(hkdf_sha256(
            &self.0,
            &[
                tags::SESSION_KEY,
                client.as_bytes(),
                &sequence.to_le_bytes(),
            ],
        ))
    }
}

/// Where a chunk sits, which its IV is bound to: the object, the chunk's id
/// (the digest of its plaintext) and its index in the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkAt {
    /// The object.
    pub object: Hash,
    /// The chunk's id.
    pub chunk_id: Hash,
    /// Its index in the object.
    pub index: u64,
}

impl ChunkAt {
    /// Chunk `index`, with id `chunk_id`, of `object`.
    pub fn new(object: Hash, chunk_id: Hash, index: u64) -> ChunkAt {
        ChunkAt {
            object,
            chunk_id,
            index,
        }
    }
}

impl SessionKey {
    /// The IV of the chunk at `at` under this session key.
    pub fn chunk_iv(&self, at: &ChunkAt) -> ChunkIv {
        ChunkIv(hkdf_sha256(
            &self.0,
            &[
                tags::CHUNK_IV,
                at.object.as_bytes(),
                at.chunk_id.as_bytes(),
                &at.index.to_le_bytes(),
            ],
        ))
    }
}

/// A 16-byte AES-CTR initial counter block (not secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkIv(pub [u8; 16]);

impl ChunkIv {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// One cache's inner and outer master keys for one escrow.
#[derive(Clone, PartialEq, Eq)]
pub struct CacheKeys {
    /// Inner master key.
    pub inner: MasterKey,
    /// Outer master key.
    pub outer: MasterKey,
}

impl CacheKeys {
    /// The inner session key for bundle `sequence` of `client`.
    pub fn inner_session(&self, client: &AccountId, sequence: u64) -> SessionKey {
        self.inner.session_key(client, sequence)
    }

    /// The outer session key for bundle `sequence` of `client`: what the
    /// cache releases for a valid L1.
    pub fn outer_session(&self, client: &AccountId, sequence: u64) -> SessionKey {
        self.outer.session_key(client, sequence)
    }
}

impl fmt::Debug for CacheKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CacheKeys(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_and_caches_get_distinct_keys() {
        let secret = EscrowSecret::from_bytes([7; 32]);
        let escrow = Hash([1; 32]);
        let a = secret.cache_keys(&escrow, &AccountId([2; 32]));
        let b = secret.cache_keys(&escrow, &AccountId([3; 32]));
        assert_ne!(a.inner, a.outer);
        assert_ne!(a.inner, b.inner);
        assert_ne!(a.outer, b.outer);
        assert_ne!(a.inner, b.outer);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let k = SessionKey::from_bytes([0xab; 16]);
        assert_eq!(format!("{k:?}"), "SessionKey(<redacted>)");
        assert!(
            !format!(
                "{:?}",
                CacheKeys {
                    inner: MasterKey::from_bytes([0xab; 32]),
                    outer: MasterKey::from_bytes([0xab; 32]),
                }
            )
            .contains("ab")
        );
    }

    #[test]
    fn ivs_differ_per_chunk_and_session() {
        let m = MasterKey::from_bytes([9; 32]);
        let s1 = m.session_key(&AccountId([4; 32]), 0);
        let s2 = m.session_key(&AccountId([4; 32]), 1);
        assert_ne!(s1, s2);
        let at = |object: u8, chunk_id: u8, index: u64| ChunkAt {
            object: Hash([object; 32]),
            chunk_id: Hash([chunk_id; 32]),
            index,
        };
        assert_ne!(s1.chunk_iv(&at(1, 2, 0)), s1.chunk_iv(&at(1, 2, 1)));
        assert_ne!(s1.chunk_iv(&at(1, 2, 0)), s2.chunk_iv(&at(1, 2, 0)));
        // One session key over other content: another IV.
        assert_ne!(s1.chunk_iv(&at(1, 2, 0)), s1.chunk_iv(&at(3, 2, 0)));
        assert_ne!(s1.chunk_iv(&at(1, 2, 0)), s1.chunk_iv(&at(1, 3, 0)));
    }
}

//! Signed cache adverts: how a cache tells publishers that it exists, where
//! it listens, how much room it has and which escrows it serves.
//!
//! A cache puts a [`SignedCacheAdvert`] in the DHT under a key of its own
//! ([`advert_key`]) and announces itself as a provider of the network's
//! cache key, so a publisher finds the provider ids first and then reads
//! each one's advert. Anyone can store anything under any DHT key, so an
//! advert counts only when it verifies:
//!
//! - it is signed by the cache's own key (the advert names the cache, and
//!   the publisher checks that name against the provider's peer id), over
//!   `CACHE_ADVERT ‖ SCALE(advert)`;
//! - it names this chain's genesis, so adverts never cross networks;
//! - it is current: issued no later than a minute ahead of the reader's
//!   clock, not yet expired, and living at most [`MAX_ADVERT_TTL`] seconds,
//!   so a stolen or stale advert stops counting on its own.
//!
//! A forged record under a cache's key is ignored, and the publisher still
//! dials the cache back before hiring it: the advert says where to try, the
//! authenticated connection proves who answers.

use crate::codec::{WireMessage, decode_bounded};
use crate::error::DecodeError;
use crate::tags;
use cachecash_runtime::microcash::EscrowId;
use cachecash_runtime::{AccountId, Hash, Signature};
use ed25519_dalek::{Signer, SigningKey};
use parity_scale_codec::{Decode, Encode};

/// Most addresses in an advert.
pub const MAX_ADVERT_ADDRS: usize = 8;
/// Longest address (a binary multiaddr), in bytes.
pub const MAX_ADDR_BYTES: usize = 128;
/// Most escrows an advert lists.
pub const MAX_ADVERT_ESCROWS: usize = 32;
/// Longest life of an advert, in seconds.
pub const MAX_ADVERT_TTL: u64 = 3_600;
/// How far ahead of the reader's clock an advert may be issued, in seconds.
pub const MAX_CLOCK_SKEW: u64 = 60;

/// What a cache says about itself.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct CacheAdvert {
    /// The cache's account (its ed25519 key, which is also its peer id).
    pub cache: AccountId,
    /// The chain it serves.
    pub genesis: Hash,
    /// Where it listens: binary multiaddrs, at most [`MAX_ADVERT_ADDRS`].
    pub addrs: Vec<Vec<u8>>,
    /// Its store's quota, in bytes.
    pub quota: u64,
    /// Bytes of the quota still free.
    pub free: u64,
    /// Escrows it is hired for, at most [`MAX_ADVERT_ESCROWS`].
    pub escrows: Vec<EscrowId>,
    /// When it was issued (Unix seconds).
    pub issued: u64,
    /// When it stops counting (Unix seconds).
    pub expires: u64,
}

/// A [`CacheAdvert`] with the cache's signature.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct SignedCacheAdvert {
    /// The advert.
    pub advert: CacheAdvert,
    /// ed25519 signature by `advert.cache` over [`CacheAdvert::signing_payload`].
    pub signature: Signature,
}

/// Why an advert does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvertError {
    /// The signature does not verify under the named cache's key.
    #[error("the advert of {0} is not signed by that cache's key")]
    BadSignature(AccountId),
    /// The advert names another chain.
    #[error("the advert is for the chain with genesis {0}, not this one")]
    OtherChain(Hash),
    /// Expired, issued in the future, or living too long.
    #[error("the advert is not current: {0}")]
    NotCurrent(String),
    /// Signed by a key other than the one the reader expected.
    #[error("the advert names cache {named}, but was found for {expected}")]
    WrongCache {
        /// The cache the advert names.
        named: AccountId,
        /// The cache the reader looked up.
        expected: AccountId,
    },
}

impl CacheAdvert {
    /// The bytes the cache signs.
    pub fn signing_payload(&self) -> Vec<u8> {
        let mut out = tags::CACHE_ADVERT.to_vec();
        self.encode_to(&mut out);
        out
    }

    /// Signs the advert with the cache's key (whose account it must name).
    pub fn sign(self, key: &SigningKey) -> SignedCacheAdvert {
        let signature = Signature(key.sign(&self.signing_payload()).to_bytes());
        SignedCacheAdvert {
            advert: self,
            signature,
        }
    }
}

impl SignedCacheAdvert {
    /// Checks that the advert is `cache`'s, signed by it, for the chain
    /// `genesis`, and current at Unix time `now`.
    pub fn verify(
        &self,
        cache: &AccountId,
        genesis: &Hash,
        now: u64,
    ) -> Result<&CacheAdvert, AdvertError> {
        let a = &self.advert;
        if a.cache != *cache {
            return Err(AdvertError::WrongCache {
                named: a.cache,
                expected: *cache,
            });
        }
        if a.genesis != *genesis {
            return Err(AdvertError::OtherChain(a.genesis));
        }
        if a.issued > now.saturating_add(MAX_CLOCK_SKEW) {
            return Err(AdvertError::NotCurrent(format!(
                "issued at {}, ahead of this clock ({now})",
                a.issued
            )));
        }
        if a.expires <= now {
            return Err(AdvertError::NotCurrent(format!(
                "expired at {} (now {now})",
                a.expires
            )));
        }
        if a.expires.saturating_sub(a.issued) > MAX_ADVERT_TTL {
            return Err(AdvertError::NotCurrent(format!(
                "lives {} s, more than {MAX_ADVERT_TTL} s",
                a.expires.saturating_sub(a.issued)
            )));
        }
        let key = a
            .cache
            .verifying_key()
            .map_err(|_| AdvertError::BadSignature(a.cache))?;
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        key.verify_strict(&a.signing_payload(), &signature)
            .map_err(|_| AdvertError::BadSignature(a.cache))?;
        Ok(a)
    }

    /// Decodes an advert from the DHT (see [`crate::codec`]).
    pub fn decode_bounded(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_bounded(bytes)
    }
}

impl WireMessage for SignedCacheAdvert {
    const NAME: &'static str = "SignedCacheAdvert";
    // Account, genesis, addresses (compact lengths of at most 5 bytes),
    // quota and free, escrows, issued and expires, signature.
    const MAX_BYTES: usize = 32
        + 32
        + 5
        + MAX_ADVERT_ADDRS * (5 + MAX_ADDR_BYTES)
        + 16
        + 5
        + 32 * MAX_ADVERT_ESCROWS
        + 16
        + 64;

    fn check_bounds(&self) -> Result<(), String> {
        let a = &self.advert;
        if a.addrs.len() > MAX_ADVERT_ADDRS {
            return Err(format!(
                "{} addresses, over the limit of {MAX_ADVERT_ADDRS}",
                a.addrs.len()
            ));
        }
        if let Some(long) = a.addrs.iter().find(|x| x.len() > MAX_ADDR_BYTES) {
            return Err(format!(
                "an address of {} bytes, over the limit of {MAX_ADDR_BYTES}",
                long.len()
            ));
        }
        if a.escrows.len() > MAX_ADVERT_ESCROWS {
            return Err(format!(
                "{} escrows, over the limit of {MAX_ADVERT_ESCROWS}",
                a.escrows.len()
            ));
        }
        Ok(())
    }
}

/// The DHT key of `cache`'s advert on the chain with `genesis`.
pub fn advert_key(genesis: &Hash, cache: &AccountId) -> Vec<u8> {
    format!(
        "/cachecash/{}/cdn/cache-advert/{}",
        hex::encode(genesis.0),
        hex::encode(cache.0)
    )
    .into_bytes()
}

/// The cache whose advert key `key` is on the chain with `genesis`, or
/// `None` when `key` is not an advert key of that chain.
pub fn advert_key_account(genesis: &Hash, key: &[u8]) -> Option<AccountId> {
    let prefix = format!("/cachecash/{}/cdn/cache-advert/", hex::encode(genesis.0));
    let rest = key.strip_prefix(prefix.as_bytes())?;
    let mut account = [0u8; 32];
    hex::decode_to_slice(rest, &mut account).ok()?;
    Some(AccountId(account))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advert(key: &SigningKey, now: u64) -> CacheAdvert {
        CacheAdvert {
            cache: AccountId(key.verifying_key().to_bytes()),
            genesis: Hash([1; 32]),
            addrs: vec![vec![4, 127, 0, 0, 1, 6, 0x76, 0x5d]],
            quota: 1 << 30,
            free: 1 << 29,
            escrows: vec![Hash([2; 32])],
            issued: now,
            expires: now + 600,
        }
    }

    #[test]
    fn a_signed_current_advert_verifies_and_round_trips() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let signed = advert(&key, 1_000).sign(&key);
        let me = signed.advert.cache;
        assert!(signed.verify(&me, &Hash([1; 32]), 1_100).is_ok());
        let back = SignedCacheAdvert::decode_bounded(&signed.encode()).unwrap();
        assert_eq!(back, signed);
    }

    #[test]
    fn forged_foreign_stale_and_early_adverts_do_not_count() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let me = AccountId(key.verifying_key().to_bytes());
        let genesis = Hash([1; 32]);
        // Signed by another key in the cache's name.
        let forged = advert(&key, 1_000).sign(&other);
        assert!(matches!(
            forged.verify(&me, &genesis, 1_000),
            Err(AdvertError::BadSignature(_))
        ));
        // A changed field breaks the signature.
        let mut tampered = advert(&key, 1_000).sign(&key);
        tampered.advert.free = u64::MAX;
        assert!(matches!(
            tampered.verify(&me, &genesis, 1_000),
            Err(AdvertError::BadSignature(_))
        ));
        // Found under another cache's key.
        let theirs = advert(&other, 1_000).sign(&other);
        assert!(matches!(
            theirs.verify(&me, &genesis, 1_000),
            Err(AdvertError::WrongCache { .. })
        ));
        let good = advert(&key, 1_000).sign(&key);
        assert!(matches!(
            good.verify(&me, &Hash([9; 32]), 1_000),
            Err(AdvertError::OtherChain(_))
        ));
        // Expired, issued ahead of the clock, or living too long.
        assert!(good.verify(&me, &genesis, 1_600).is_err());
        assert!(
            good.verify(&me, &genesis, 1_000 - MAX_CLOCK_SKEW - 1)
                .is_err()
        );
        let mut long = advert(&key, 1_000);
        long.expires = 1_000 + MAX_ADVERT_TTL + 1;
        assert!(long.sign(&key).verify(&me, &genesis, 1_000).is_err());
    }

    #[test]
    fn advert_keys_name_their_cache_and_chain() {
        let genesis = Hash([1; 32]);
        let cache = AccountId([9; 32]);
        let key = advert_key(&genesis, &cache);
        assert_eq!(advert_key_account(&genesis, &key), Some(cache));
        assert_eq!(advert_key_account(&Hash([2; 32]), &key), None);
        assert_eq!(advert_key_account(&genesis, b"/cachecash/other"), None);
        let mut short = key.clone();
        short.pop();
        assert_eq!(advert_key_account(&genesis, &short), None);
    }

    #[test]
    fn adverts_over_their_caps_are_refused_by_the_decoder() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut a = advert(&key, 0);
        a.addrs = vec![vec![0; 8]; MAX_ADVERT_ADDRS + 1];
        assert!(SignedCacheAdvert::decode_bounded(&a.sign(&key).encode()).is_err());
        let mut a = advert(&key, 0);
        a.escrows = vec![Hash([0; 32]); MAX_ADVERT_ESCROWS + 1];
        assert!(SignedCacheAdvert::decode_bounded(&a.sign(&key).encode()).is_err());
        let mut a = advert(&key, 0);
        a.addrs = vec![vec![0; MAX_ADDR_BYTES]; MAX_ADVERT_ADDRS];
        a.escrows = vec![Hash([0; 32]); MAX_ADVERT_ESCROWS];
        let full = a.sign(&key).encode();
        assert!(full.len() <= SignedCacheAdvert::MAX_BYTES, "{}", full.len());
        assert!(SignedCacheAdvert::decode_bounded(&full).is_ok());
    }
}

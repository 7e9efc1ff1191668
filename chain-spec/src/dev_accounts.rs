//! Well-known development accounts.
//!
//! Each dev account's 32-byte ed25519 secret seed is
//!
//! ```text
//! seed = SHA-256("cachecash/dev-account/" ‖ lower-case name)
//! ```
//!
//! used as-is with [`ed25519_dalek::SigningKey::from_bytes`]; the account id
//! is the verifying key. Anyone can derive these keys, so they must never
//! hold value: the presets fund them, and [`crate::ChainSpec`] resolves
//! their names only on Development and Local chains.

use cachecash_runtime::AccountId;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

/// The dev accounts, in the order the presets fund them.
pub const DEV_ACCOUNT_NAMES: [&str; 6] = ["alice", "bob", "charlie", "dave", "eve", "ferdie"];

/// Domain-separation prefix of dev seeds.
pub const DEV_SEED_PREFIX: &[u8] = b"cachecash/dev-account/";

/// The canonical (lower-case) spelling of a dev name, matched
/// case-insensitively; `None` if `name` is not a dev account.
pub fn canonical_dev_name(name: &str) -> Option<&'static str> {
    DEV_ACCOUNT_NAMES
        .iter()
        .copied()
        .find(|n| n.eq_ignore_ascii_case(name))
}

/// Whether `name` is a dev account name (case-insensitive).
pub fn is_dev_name(name: &str) -> bool {
    canonical_dev_name(name).is_some()
}

/// The secret seed of a dev account (case-insensitive name).
pub fn dev_seed(name: &str) -> Option<[u8; 32]> {
    let name = canonical_dev_name(name)?;
    let mut h = Sha256::new();
    h.update(DEV_SEED_PREFIX);
    h.update(name.as_bytes());
    Some(h.finalize().into())
}

/// The signing key of a dev account (case-insensitive name).
pub fn dev_signing_key(name: &str) -> Option<SigningKey> {
    dev_seed(name).map(|seed| SigningKey::from_bytes(&seed))
}

/// The account id of a dev account (case-insensitive name).
pub fn dev_account(name: &str) -> Option<AccountId> {
    dev_signing_key(name).map(|k| AccountId::from_signing_key(&k))
}

/// Every dev account with its name, in [`DEV_ACCOUNT_NAMES`] order.
pub fn dev_accounts() -> impl Iterator<Item = (&'static str, AccountId)> {
    DEV_ACCOUNT_NAMES.iter().filter_map(|&name| {
        let key = dev_seed(name).map(|seed| SigningKey::from_bytes(&seed))?;
        Some((name, AccountId::from_signing_key(&key)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_case_insensitively() {
        assert_eq!(canonical_dev_name("Alice"), Some("alice"));
        assert_eq!(canonical_dev_name("FERDIE"), Some("ferdie"));
        assert_eq!(canonical_dev_name("mallory"), None);
        assert_eq!(canonical_dev_name(""), None);
        assert_eq!(dev_account("ALICE"), dev_account("alice"));
    }

    #[test]
    fn seed_is_sha256_of_prefixed_name() {
        let expected: [u8; 32] = Sha256::digest(b"cachecash/dev-account/bob").into();
        assert_eq!(dev_seed("Bob"), Some(expected));
    }

    #[test]
    fn dev_accounts_are_distinct_valid_keys() {
        let all: Vec<_> = dev_accounts().collect();
        assert_eq!(all.len(), DEV_ACCOUNT_NAMES.len());
        for (i, (name, id)) in all.iter().enumerate() {
            assert_eq!(*name, DEV_ACCOUNT_NAMES[i]);
            assert!(id.verifying_key().is_ok(), "{name}");
            for (_, other) in &all[i + 1..] {
                assert_ne!(id, other);
            }
        }
    }
}

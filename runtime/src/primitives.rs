//! Primitive types of the ledger: hashes, accounts, balances, signatures.
//!
//! Every fixed-size byte type encodes in SCALE as its raw bytes (no length
//! prefix) and in JSON as a `0x`-prefixed lower-case hex string.

use parity_scale_codec::{Decode, Encode};
use sha2::{Digest, Sha256};

/// Amount of Cachecoin in its smallest unit (10^-12 CCH with the presets).
pub type Balance = u128;
/// Height of a block; genesis is 0.
pub type BlockNumber = u64;
/// Per-account transaction counter; the next transaction must carry it exactly.
pub type Nonce = u64;
/// Milliseconds since the Unix epoch.
pub type Timestamp = u64;

/// Error parsing a hex string into a fixed-size value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The string is not hex.
    #[error("'{input}' is not hex: {reason}; expected 0x followed by {expected} hex digits")]
    NotHex {
        /// The offending input (truncated).
        input: String,
        /// What the hex decoder said.
        reason: String,
        /// Number of hex digits expected.
        expected: usize,
    },
    /// The string decodes to the wrong number of bytes.
    #[error("'{input}' has {got} bytes; expected exactly {expected} bytes (0x followed by {digits} hex digits)", digits = expected.saturating_mul(2))]
    WrongLength {
        /// The offending input (truncated).
        input: String,
        /// Bytes decoded.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
}

fn truncate_for_message(s: &str) -> String {
    if s.len() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// Decodes `0x`-prefixed (or bare) hex of any length.
pub fn decode_hex(input: &str) -> Result<Vec<u8>, HexError> {
    let body = input
        .strip_prefix("0x")
        .or_else(|| input.strip_prefix("0X"))
        .unwrap_or(input);
    hex::decode(body).map_err(|e| HexError::NotHex {
        input: truncate_for_message(input),
        reason: e.to_string(),
        expected: body.len(),
    })
}

/// Encodes bytes as `0x`-prefixed lower-case hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Decodes hex into exactly `N` bytes.
pub fn decode_hex_array<const N: usize>(input: &str) -> Result<[u8; N], HexError> {
    let bytes = decode_hex(input).map_err(|e| match e {
        HexError::NotHex { input, reason, .. } => HexError::NotHex {
            input,
            reason,
            expected: N.saturating_mul(2),
        },
        other => other,
    })?;
    let got = bytes.len();
    bytes.try_into().map_err(|_| HexError::WrongLength {
        input: truncate_for_message(input),
        got,
        expected: N,
    })
}

macro_rules! fixed_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// `0x`-prefixed lower-case hex.
            pub fn to_hex(&self) -> String {
                encode_hex(&self.0)
            }

            /// Parses `0x`-prefixed hex of exactly the right length.
            pub fn from_hex(s: &str) -> Result<Self, HexError> {
                decode_hex_array::<$len>(s).map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self([0u8; $len])
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl core::str::FromStr for $name {
            type Err = HexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fixed_bytes!(
    /// A SHA-256 digest.
    Hash,
    32
);
fixed_bytes!(
    /// An account: an ed25519 public key.
    AccountId,
    32
);
fixed_bytes!(
    /// An ed25519 signature.
    Signature,
    64
);

impl Hash {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Hash {
        Hash(Sha256::digest(data).into())
    }

    /// SHA-256 over the concatenation of `parts`.
    pub fn of_parts(parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        Hash(h.finalize().into())
    }
}

impl AccountId {
    /// The ed25519 verifying key, if these bytes are a valid, non-weak point.
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| KeyError::NotACurvePoint(*self))?;
        if key.is_weak() {
            return Err(KeyError::WeakKey(*self));
        }
        Ok(key)
    }

    /// The account of a signing key.
    pub fn from_signing_key(key: &ed25519_dalek::SigningKey) -> AccountId {
        AccountId(key.verifying_key().to_bytes())
    }
}

/// An account id that cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a valid compressed Edwards point.
    #[error("account {0} is not a valid ed25519 public key")]
    NotACurvePoint(AccountId),
    /// A small-order key, for which forgeries are trivial.
    #[error("account {0} is a weak (small-order) ed25519 key and cannot sign transactions")]
    WeakKey(AccountId),
}

/// Formats a balance in the smallest unit as a decimal CCH amount.
pub fn format_balance(amount: Balance, decimals: u8) -> String {
    let unit = 10u128.checked_pow(u32::from(decimals)).unwrap_or(1);
    let whole = amount.checked_div(unit).unwrap_or(amount);
    let frac = amount.checked_rem(unit).unwrap_or(0);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{:0width$}", frac, width = usize::from(decimals));
    format!("{}.{}", whole, frac.trim_end_matches('0'))
}

/// Serde for raw 32-byte values as `0x` hex.
pub mod serde_hex32 {
    /// Serializes as `0x` hex.
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode_hex(v))
    }

    /// Deserializes from `0x` hex of 32 bytes.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        super::decode_hex_array::<32>(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_hex_round_trips_and_rejects_bad_lengths() {
        let h = Hash::of(b"abc");
        assert_eq!(
            h.to_hex(),
            "0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Hash::from_hex(&h.to_hex()).unwrap(), h);
        assert!(matches!(
            Hash::from_hex("0x1234"),
            Err(HexError::WrongLength {
                got: 2,
                expected: 32,
                ..
            })
        ));
        assert!(matches!(
            Hash::from_hex("0xzz"),
            Err(HexError::NotHex { .. })
        ));
    }

    #[test]
    fn balances_format_with_decimals() {
        assert_eq!(format_balance(1_500_000_000_000, 12), "1.5");
        assert_eq!(format_balance(2_000_000_000_000, 12), "2");
        assert_eq!(format_balance(1, 12), "0.000000000001");
    }
}

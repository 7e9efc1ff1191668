//! The L2 ticket: the bundle's inner session keys, sealed under the puzzle
//! secret with encrypt-then-MAC (AES-128-CTR + HMAC-SHA256).
//!
//! # Layout
//!
//! ```text
//! context   = the bundle's remainder digest (binds the L2 to one bundle)
//! enc (32)  = HKDF-SHA256(IKM = secret, info = "cachecash/l2-enc/v1" ‖ context)
//! key, IV   = enc[0..16], enc[16..32]
//! mac key   = HKDF-SHA256(IKM = secret, info = "cachecash/l2-mac-key/v1" ‖ context)   (64 bytes)
//! plaintext = SCALE(L2Keys)       inner session key of every bundle position, in order
//! ciphertext= AES-128-CTR(key, IV, plaintext)
//! tag       = HMAC-SHA256(mac key, "cachecash/l2-mac/v1" ‖ context ‖ LE32(len) ‖ ciphertext)
//! ```
//!
//! Opening checks the tag in constant time before decrypting, then decodes
//! the plaintext with the bounded decoder. The prototype's L2 had no MAC
//! (a wrong secret produced garbage keys) and took its key and IV straight
//! from the secret; here they come from HKDF with distinct labels, so the
//! encryption and MAC keys are independent.
//!
//! Every puzzle secret is used for exactly one L2 (a fresh puzzle per
//! bundle), so the derived (key, IV) is never reused.
//!
//! # Which keys
//!
//! The L2 carries the inner key of every chunk of the bundle, covered by the
//! puzzle or not: with the "3 of 4" variant the client still needs the
//! fourth chunk's inner key, and releasing it through the same L2 keeps the
//! rule "no plaintext without a solved puzzle".

use core::fmt;

use cachecash_runtime::Hash;
use ctr::cipher::StreamCipher;
use hmac::{Hmac, KeyInit, Mac};
use parity_scale_codec::{Decode, Encode};
use sha2::Sha256;

use crate::codec::{WireMessage, decode_bounded};
use crate::error::{DecodeError, L2Error};
use crate::keys::{PuzzleSecret, SessionKey, hkdf_sha256};
use crate::layers::aes128_ctr;
use crate::puzzle::MAX_BUNDLE_CHUNKS;
use crate::tags;

/// The largest L2 ciphertext: a one-byte compact length and 16 keys.
pub const MAX_L2_CIPHERTEXT: usize = 1 + 16 * MAX_BUNDLE_CHUNKS;

/// The plaintext of an L2: one inner session key per bundle position.
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
pub struct L2Keys {
    /// Inner session keys, in bundle order.
    pub inner: Vec<SessionKey>,
}

impl fmt::Debug for L2Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L2Keys(<{} keys redacted>)", self.inner.len())
    }
}

impl WireMessage for L2Keys {
    const NAME: &'static str = "L2Keys";
    const MAX_BYTES: usize = MAX_L2_CIPHERTEXT;

    fn check_bounds(&self) -> Result<(), String> {
        if self.inner.is_empty() || self.inner.len() > MAX_BUNDLE_CHUNKS {
            return Err(format!(
                "{} inner keys; an L2 holds 1 to {MAX_BUNDLE_CHUNKS}",
                self.inner.len()
            ));
        }
        Ok(())
    }
}

impl L2Keys {
    /// Decodes L2 plaintext (see [`crate::codec`]).
    pub fn decode_bounded(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_bounded(bytes)
    }
}

/// A sealed L2 as it travels in a bundle.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct SealedL2 {
    /// AES-128-CTR ciphertext of `SCALE(L2Keys)`.
    pub ciphertext: Vec<u8>,
    /// HMAC-SHA256 tag.
    pub tag: [u8; 32],
}

impl SealedL2 {
    /// The digest the bundle signature covers:
    /// `SHA-256("cachecash/bundle-l2/v1" ‖ SCALE(self))`.
    pub fn digest(&self) -> Hash {
        Hash::of_parts(&[tags::BUNDLE_L2, &self.encode()])
    }

    /// Checks the size cap.
    pub fn check_bounds(&self) -> Result<(), String> {
        if self.ciphertext.len() > MAX_L2_CIPHERTEXT {
            return Err(format!(
                "L2 ciphertext of {} bytes, over the limit of {MAX_L2_CIPHERTEXT}",
                self.ciphertext.len()
            ));
        }
        Ok(())
    }
}

struct Schedule {
    key: [u8; 16],
    iv: [u8; 16],
    mac_key: [u8; 64],
}

fn schedule(secret: &PuzzleSecret, context: &Hash) -> Schedule {
    let enc: [u8; 32] = hkdf_sha256(secret.as_bytes(), &[tags::L2_ENC, context.as_bytes()]);
    let mut key = [0u8; 16];
    let mut iv = [0u8; 16];
    key.copy_from_slice(&enc[..16]);
    iv.copy_from_slice(&enc[16..]);
    Schedule {
        key,
        iv,
        mac_key: hkdf_sha256(secret.as_bytes(), &[tags::L2_MAC_KEY, context.as_bytes()]),
    }
}

fn mac(mac_key: &[u8; 64], context: &Hash, ciphertext: &[u8]) -> Hmac<Sha256> {
    let len = u32::try_from(ciphertext.len()).unwrap_or(u32::MAX);
    let mut m = <Hmac<Sha256> as KeyInit>::new(&(*mac_key).into());
    m.update(tags::L2_MAC);
    m.update(context.as_bytes());
    m.update(&len.to_le_bytes());
    m.update(ciphertext);
    m
}

/// Seals `keys` under the puzzle `secret` for the bundle whose remainder digest is `context`.
pub fn seal(secret: &PuzzleSecret, context: &Hash, keys: &L2Keys) -> SealedL2 {
    let s = schedule(secret, context);
    let mut ciphertext = keys.encode();
    aes128_ctr(&s.key, &s.iv).apply_keystream(&mut ciphertext);
    let tag: [u8; 32] = mac(&s.mac_key, context, &ciphertext)
        .finalize()
        .into_bytes()
        .into();
    SealedL2 { ciphertext, tag }
}

/// Authenticates and decrypts an L2.
pub fn open(secret: &PuzzleSecret, context: &Hash, sealed: &SealedL2) -> Result<L2Keys, L2Error> {
    if sealed.ciphertext.len() > MAX_L2_CIPHERTEXT {
        return Err(L2Error::TooLarge {
            got: sealed.ciphertext.len(),
            max: MAX_L2_CIPHERTEXT,
        });
    }
    let s = schedule(secret, context);
    mac(&s.mac_key, context, &sealed.ciphertext)
        .verify_slice(&sealed.tag)
        .map_err(|_| L2Error::BadTag)?;
    let mut plaintext = sealed.ciphertext.clone();
    aes128_ctr(&s.key, &s.iv).apply_keystream(&mut plaintext);
    L2Keys::decode_bounded(&plaintext).map_err(L2Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (PuzzleSecret, Hash, L2Keys) {
        (
            PuzzleSecret::from_bytes([3; 32]),
            Hash([4; 32]),
            L2Keys {
                inner: (0..4u8).map(|i| SessionKey::from_bytes([i; 16])).collect(),
            },
        )
    }

    #[test]
    fn seal_open_round_trip() {
        let (secret, ctx, keys) = sample();
        let sealed = seal(&secret, &ctx, &keys);
        assert_eq!(sealed.ciphertext.len(), 1 + 4 * 16);
        assert_eq!(open(&secret, &ctx, &sealed).unwrap(), keys);
    }

    #[test]
    fn wrong_secret_context_or_bytes_fail_authentication() {
        let (secret, ctx, keys) = sample();
        let sealed = seal(&secret, &ctx, &keys);
        assert_eq!(
            open(&PuzzleSecret::from_bytes([5; 32]), &ctx, &sealed),
            Err(L2Error::BadTag)
        );
        assert_eq!(open(&secret, &Hash([5; 32]), &sealed), Err(L2Error::BadTag));
        let mut t = sealed.clone();
        t.ciphertext[3] ^= 1;
        assert_eq!(open(&secret, &ctx, &t), Err(L2Error::BadTag));
        let mut t = sealed.clone();
        t.tag[0] ^= 1;
        assert_eq!(open(&secret, &ctx, &t), Err(L2Error::BadTag));
        let mut t = sealed;
        t.ciphertext.push(0);
        assert_eq!(open(&secret, &ctx, &t), Err(L2Error::BadTag));
    }
}

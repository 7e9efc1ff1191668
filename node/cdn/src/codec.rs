//! Bounded, total decoding of wire messages.
//!
//! Every top-level message is SCALE (`parity-scale-codec`) and implements
//! [`WireMessage`]. [`decode_bounded`] is the only way bytes from the network
//! should become a message:
//!
//! 1. the byte length is checked against the type's `MAX_BYTES` before any
//!    parsing, so no allocation exceeds it (SCALE sizes vector allocations by
//!    the input left, not by the declared length);
//! 2. the bytes are decoded with `DecodeAll`, which rejects trailing bytes,
//!    so every message has exactly one encoding;
//! 3. the decoded value's vector lengths and indices are checked against the
//!    protocol caps ([`WireMessage::check_bounds`]).
//!
//! The function is total: any input yields `Ok` or a [`DecodeError`], never
//! a panic, and the fuzz targets in `fuzz/` exercise exactly that.
//! Signatures, digests and cross-field consistency are checked later by the
//! `verify` functions, which need context (keys, the caller's identity).

use crate::error::DecodeError;
use parity_scale_codec::{Decode, DecodeAll, Encode};

/// A top-level wire message with a byte limit and structural caps.
pub trait WireMessage: Encode + Decode {
    /// Name used in error messages.
    const NAME: &'static str;
    /// Largest valid encoding, in bytes.
    const MAX_BYTES: usize;

    /// Checks vector lengths and indices against the protocol caps.
    fn check_bounds(&self) -> Result<(), String>;
}

/// Decodes one `T` from exactly `bytes`, enforcing `T::MAX_BYTES`, the
/// absence of trailing bytes and `T`'s caps.
pub fn decode_bounded<T: WireMessage>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > T::MAX_BYTES {
        return Err(DecodeError::TooLarge {
            message: T::NAME,
            got: bytes.len(),
            limit: T::MAX_BYTES,
        });
    }
    let mut input = bytes;
    let value = T::decode_all(&mut input).map_err(|e| DecodeError::Malformed {
        message: T::NAME,
        reason: e.to_string(),
    })?;
    value
        .check_bounds()
        .map_err(|reason| DecodeError::OutOfBounds {
            message: T::NAME,
            reason,
        })?;
    Ok(value)
}

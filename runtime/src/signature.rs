//! The consensus signature rule.
//!
//! A signature is valid when the signer's account is a valid, non-weak
//! ed25519 point ([`AccountId::verifying_key`]) and the signature passes
//! **ZIP-215** verification (the `ed25519-consensus` crate): the cofactored
//! equation `[8][s]B = [8]R + [8][k]A`, with the encodings ZIP-215 fixes.
//! Under this rule single and batch verification agree on every input, so
//! whether a block is valid never depends on how a node checks it, on the
//! library's internals, or on the randomness of a batch. (The former rule,
//! "the batch passes, or every signature passes `verify_strict`", let the
//! cofactorless strict check and the batch equation disagree on signatures
//! with small-order components.)
//!
//! Batch verification draws its coefficients from a ChaCha20 stream seeded
//! with a hash of the batch: deterministic, and unpredictable to whoever
//! built the batch before it was complete.

use crate::primitives::{AccountId, KeyError};
use ed25519_consensus::{Signature, VerificationKey, VerificationKeyBytes, batch};
use rand_chacha::rand_core::SeedableRng;
use sha2::{Digest, Sha256};

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// The signer is not a usable key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The signature does not verify.
    #[error("the signature does not verify under the consensus rule (ZIP-215)")]
    Invalid,
}

/// Verifies one signature under the consensus rule.
pub fn verify(signer: &AccountId, message: &[u8], signature: &[u8; 64]) -> Result<(), SigError> {
    signer.verifying_key()?;
    let key = VerificationKey::try_from(signer.0).map_err(|_| SigError::Invalid)?;
    key.verify(&Signature::from(*signature), message)
        .map_err(|_| SigError::Invalid)
}

/// Verifies many signatures at once: true exactly when every one of them
/// passes [`verify`] (the signers must already be known usable keys).
pub fn verify_batch<'a>(
    items: impl IntoIterator<Item = (&'a AccountId, &'a [u8], &'a [u8; 64])>,
) -> bool {
    let mut verifier = batch::Verifier::new();
    let mut seed = Sha256::new();
    for (signer, message, signature) in items {
        seed.update(signer.0);
        seed.update(signature);
        seed.update(Sha256::digest(message));
        verifier.queue((
            VerificationKeyBytes::from(signer.0),
            Signature::from(*signature),
            message,
        ));
    }
    let rng = rand_chacha::ChaCha20Rng::from_seed(seed.finalize().into());
    verifier.verify(rng).is_ok()
}

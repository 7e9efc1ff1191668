//! The consensus signature rule (ZIP-215) on its edge cases: single and
//! batch verification give one verdict on every input, including a
//! signature under a key with a torsion component, which the former
//! cofactorless strict check refused while a cofactored batch could pass.

use cachecash_runtime::AccountId;
use cachecash_runtime::signature::{SigError, verify, verify_batch};
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

fn scalar_wide(parts: &[&[u8]]) -> Scalar {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// A signature by secret scalar `a` under the public point `public` (which
/// may differ from a·B by a torsion point), with nonce from `seed`.
fn sign_raw(a: &Scalar, public: &[u8; 32], seed: &[u8], message: &[u8]) -> [u8; 64] {
    let r = scalar_wide(&[b"nonce", seed, message]);
    let big_r = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
    let k = scalar_wide(&[&big_r, public, message]);
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

fn both(signer: &AccountId, message: &[u8], sig: &[u8; 64]) -> (bool, bool) {
    let single = verify(signer, message, sig).is_ok();
    let batch = verify_batch([(signer, message, sig)]);
    (single, batch)
}

#[test]
fn an_ordinary_signature_passes_single_and_batch_and_a_tampered_one_fails_both() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let signer = AccountId::from_signing_key(&key);
    use ed25519_dalek::Signer;
    let sig = key.sign(b"hello").to_bytes();
    assert_eq!(both(&signer, b"hello", &sig), (true, true));
    assert_eq!(both(&signer, b"hellO", &sig), (false, false));
    let mut bad = sig;
    bad[40] ^= 1;
    assert_eq!(both(&signer, b"hello", &bad), (false, false));
    // s ≥ ℓ (non-canonical scalar) is refused by both.
    let mut big_s = sig;
    big_s[63] |= 0xf0;
    assert_eq!(both(&signer, b"hello", &big_s), (false, false));
}

#[test]
fn a_key_with_a_torsion_component_gets_one_verdict_from_single_and_batch() {
    // A' = a·B + T, T of order 8: not a weak (small-order) key, so it is a
    // usable account; signatures under it satisfy only the cofactored
    // equation unless k ≡ 0 (mod 8).
    let a = scalar_wide(&[b"torsion secret"]);
    let point = ED25519_BASEPOINT_POINT * a + EIGHT_TORSION[1];
    let public = point.compress().to_bytes();
    let signer = AccountId(public);
    assert!(
        signer.verifying_key().is_ok(),
        "a mixed-order key is not weak"
    );
    let mut checked = 0;
    for i in 0u32..64 {
        let message = format!("message {i}");
        let sig = sign_raw(&a, &public, b"seed", message.as_bytes());
        let strict = ed25519_dalek::VerifyingKey::from_bytes(&public)
            .unwrap()
            .verify_strict(
                message.as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&sig),
            )
            .is_ok();
        let (single, batch) = both(&signer, message.as_bytes(), &sig);
        assert_eq!(single, batch, "one verdict for {message}");
        assert!(
            single,
            "ZIP-215 accepts the cofactored signature ({message})"
        );
        if !strict {
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "some of these signatures are refused by the cofactorless strict check"
    );
    // Mixed into a batch of ordinary signatures, the verdict is the same.
    let key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let other = AccountId::from_signing_key(&key);
    use ed25519_dalek::Signer;
    let ok = key.sign(b"x").to_bytes();
    let tors = sign_raw(&a, &public, b"seed", b"message 1");
    assert!(verify_batch([
        (&other, &b"x"[..], &ok),
        (&signer, &b"message 1"[..], &tors)
    ]));
}

#[test]
fn small_order_keys_are_refused_before_any_equation() {
    // The identity point and the torsion points: weak keys, never accounts.
    for t in EIGHT_TORSION.iter() {
        let signer = AccountId(t.compress().to_bytes());
        assert!(matches!(
            verify(&signer, b"m", &[0u8; 64]),
            Err(SigError::Key(_))
        ));
    }
}

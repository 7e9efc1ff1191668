//! # cachecash-cdn
//!
//! The CDN data plane as a library with no networking: everything the
//! publisher, the caches and the client compute. The services that move
//! these messages over libp2p build on it.
//!
//! ## The retrieval flow
//!
//! ```text
//! publisher: manifest (signed)  ─────────────────────────────────────────────▶ client
//! publisher: escrow secret ─HKDF─▶ per-cache master keys ─(secure link)─▶ caches
//! publisher: bundle (≤16 chunks): remainder, ticket requests, L1s, sealed L2,
//!            batch signature                                        ─────────▶ client
//! client ─ CacheRequest(remainder, request_i, L1 hash, subdigests, d_l2, auth) ─▶ cache_i
//! cache_i: verify, then serve outer(inner(chunk_i)) in one pass     ─────────▶ client
//! client ─ L1_i ─▶ cache_i: verify L1, release the outer session key ────────▶ client
//! client: strip outer layers, solve the puzzle over the covered chunks → secret
//! client: open the L2 with the secret → inner keys; strip inner layers;
//!         check every plaintext chunk against the manifest
//! client ─ L2Claim(sealed L2, secret) ─▶ every cache_i (evidence for redemption)
//! ```
//!
//! ## Modules
//!
//! - [`manifest`]: chunk layout, chunk digests, Merkle root, signed manifests.
//! - [`keys`]: the HKDF-SHA256 key schedule (per-cache master keys, session
//!   keys, per-chunk IVs).
//! - [`layers`]: the two AES-128-CTR layers, one-pass for caches, seekable.
//! - [`puzzle`]: the colocation puzzle: parameters, generation, solving.
//! - [`l2`]: the L2 ticket, sealed with AES-128-CTR + HMAC-SHA256.
//! - [`bundle`]: bundles, digests, batch signatures, cache and client checks.
//! - [`codec`]: bounded, total decoding of every wire message.
//! - [`tags`]: the domain-separation tags.
//! - [`error`]: error types.
//! - [`bench`]: rate measurements for `cachecash benchmark crypto`.
//!
//! ## Fixes to the Go reference
//!
//! Per-cache keys (one shared key voided colocation); unique, non-repeating
//! (key, IV) pairs; SHA-256 puzzle steps of one compression each; defined,
//! tested handling of empty objects, short and ragged chunks; CSPRNG start
//! offsets with a configurable range; degenerate parameters rejected;
//! an authenticated L2; a bundle digest that covers every field; batch
//! signatures verified against the escrow's signer, never a key carried in
//! the message; client-side content integrity against a signed manifest;
//! bounded decoders; no whole-object buffering.
//!
//! ## Concurrency
//!
//! Every type is `Send + Sync` (ciphers are `Send + Sync` too, but hold a
//! position, so each stream owns its own). Nothing blocks or does I/O except
//! [`puzzle::solve_parallel`], which uses scoped threads, and
//! [`keys::EscrowSecret::generate`] and [`puzzle::generate`], which read the
//! OS random number generator.
//!
//! ## Panics
//!
//! None on any input. Decoders are bounded and total; arithmetic on wire
//! values is checked or saturating; slices are accessed with `get`.

#![warn(missing_docs)]

pub mod advert;
pub mod bench;
pub mod bundle;
pub mod codec;
pub mod error;
pub mod keys;
pub mod l2;
pub mod layers;
pub mod manifest;
pub mod messages;
pub mod puzzle;
pub mod tags;

pub use bundle::{
    Bundle, BundleOrder, CacheRequest, ChunkOrder, L2Claim, VerifiedRequest, prepare_bundle,
    sign_bundles,
};
pub use codec::{WireMessage, decode_bounded};
pub use error::{
    BundleError, DecodeError, L2Error, LayerError, ManifestError, PuzzleError, RngError,
};
pub use keys::{CacheKeys, ChunkIv, EscrowSecret, Layer, MasterKey, PuzzleSecret, SessionKey};
pub use layers::{LayerCipher, TwoLayerCipher};
pub use manifest::{ChunkLayout, Manifest, SignedManifest};
pub use puzzle::{PuzzleParams, Solution};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Bundle>();
        check::<CacheRequest>();
        check::<L2Claim>();
        check::<SignedManifest>();
        check::<manifest::ManifestBuilder>();
        check::<manifest::ChunkHasher>();
        check::<puzzle::MemorySource<'static>>();
        check::<bundle::PreparedBundle>();
        check::<CacheKeys>();
        check::<BundleError>();
    }
}

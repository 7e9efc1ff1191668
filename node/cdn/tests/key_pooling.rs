//! Caches pooling keys: every cache holds only the master keys the
//! publisher derived for its own account, so neither one cache nor a pool
//! of them can strip another cache's layers of a bundle. Each attempt
//! below is made the way the real strip is made (the right keys recover
//! the chunk), and what the wrong keys give fails the manifest check the
//! client runs on every chunk.

use cachecash_cdn::bench::BundleFixture;
use cachecash_cdn::bundle::Bundle;
use cachecash_cdn::error::ManifestError;
use cachecash_cdn::keys::{CacheKeys, ChunkAt, MasterKey, SessionKey};
use cachecash_cdn::l2::open;
use cachecash_cdn::layers::{LayerCipher, TwoLayerCipher};
use cachecash_runtime::{AccountId, Hash};
use proptest::collection::vec;
use proptest::prelude::*;

/// A chunk as its cache put it on the wire: both of its layers applied.
struct Served {
    index: u64,
    at: ChunkAt,
    wire: Vec<u8>,
}

fn keys_of(f: &BundleFixture, position: usize) -> CacheKeys {
    f.escrow_secret.cache_keys(&f.escrow, &f.caches[position])
}

fn plaintext(f: &BundleFixture, index: u64) -> &[u8] {
    let size = f.manifest.chunk_size as usize;
    let start = index as usize * size;
    &f.object[start..start + size]
}

/// What the cache at `position` serves for `bundle`, under its own keys.
fn served(f: &BundleFixture, bundle: &Bundle, position: usize) -> Served {
    let request = &bundle.chunks[position].request;
    let at = request.at(&bundle.remainder.object);
    let mut wire = plaintext(f, request.chunk_index).to_vec();
    TwoLayerCipher::for_cache(
        &keys_of(f, position),
        &f.client,
        bundle.remainder.sequence,
        &at,
    )
    .apply(&mut wire);
    Served {
        index: request.chunk_index,
        at,
        wire,
    }
}

/// Strips the outer layer with `outer`, then the inner one with `inner`,
/// and checks the result as the client does.
fn strip(
    f: &BundleFixture,
    chunk: &Served,
    inner: &SessionKey,
    outer: &SessionKey,
) -> Result<Vec<u8>, ManifestError> {
    let mut data = chunk.wire.clone();
    LayerCipher::for_chunk(outer, &chunk.at).apply(&mut data);
    LayerCipher::for_chunk(inner, &chunk.at).apply(&mut data);
    f.manifest.verify_chunk(chunk.index, &data).map(|()| data)
}

/// Asserts that stripping with `inner` and `outer` does not recover the
/// chunk and fails the client's digest check.
fn assert_not_recovered(
    f: &BundleFixture,
    chunk: &Served,
    inner: &SessionKey,
    outer: &SessionKey,
    who: &str,
) {
    match strip(f, chunk, inner, outer) {
        Err(ManifestError::ChunkDigest { index }) => assert_eq!(index, chunk.index),
        other => panic!(
            "{who}: expected a digest mismatch on chunk {}, got {other:?}",
            chunk.index
        ),
    }
}

fn fixture() -> (BundleFixture, Vec<Bundle>) {
    let f = BundleFixture::new(4, 64).unwrap();
    let bundles = f.issue(2).unwrap();
    (f, bundles)
}

#[test]
fn a_cache_holding_only_its_own_keys_cannot_strip_another_caches_layers() {
    let (f, bundles) = fixture();
    let bundle = &bundles[0];
    let sequence = bundle.remainder.sequence;
    for victim in 0..f.caches.len() {
        let chunk = served(&f, bundle, victim);
        let own = keys_of(&f, victim);
        let victim_outer = own.outer_session(&f.client, sequence);
        // The victim's own keys recover its chunk: the strip is done right.
        let data = strip(
            &f,
            &chunk,
            &own.inner_session(&f.client, sequence),
            &victim_outer,
        )
        .expect("the victim's keys recover its chunk");
        assert_eq!(data, plaintext(&f, chunk.index));
        for attacker in (0..f.caches.len()).filter(|a| *a != victim) {
            let mine = keys_of(&f, attacker);
            let (inner, outer) = (
                mine.inner_session(&f.client, sequence),
                mine.outer_session(&f.client, sequence),
            );
            assert_not_recovered(
                &f,
                &chunk,
                &inner,
                &outer,
                &format!("cache {attacker} on cache {victim}'s chunk"),
            );
            // The victim released its outer key to the client for the L1; a
            // client colluding with the attacker hands it over. The inner
            // layer still holds.
            assert_not_recovered(
                &f,
                &chunk,
                &inner,
                &victim_outer,
                &format!("cache {attacker} with cache {victim}'s outer key"),
            );
        }
    }
}

#[test]
fn caches_pooling_every_key_they_hold_cannot_strip_a_cache_outside_the_pool() {
    let (f, bundles) = fixture();
    for bundle in &bundles {
        let sequence = bundle.remainder.sequence;
        for victim in 0..f.caches.len() {
            let chunk = served(&f, bundle, victim);
            // Every master key of every other cache, each tried as either
            // layer, paired with every other and with the victim's released
            // outer key.
            let pool: Vec<MasterKey> = (0..f.caches.len())
                .filter(|p| *p != victim)
                .flat_map(|p| {
                    let k = keys_of(&f, p);
                    [k.inner, k.outer]
                })
                .collect();
            let sessions: Vec<SessionKey> = pool
                .iter()
                .map(|m| m.session_key(&f.client, sequence))
                .collect();
            let victim_outer = keys_of(&f, victim).outer_session(&f.client, sequence);
            for inner in &sessions {
                for outer in sessions.iter().chain([&victim_outer]) {
                    assert_not_recovered(&f, &chunk, inner, outer, "the pool");
                }
            }
        }
    }
}

/// A relayed L2 claim hands every cache of a bundle the inner keys of
/// every position of that bundle (the claim is its redemption evidence).
/// Those keys are bound to the bundle's client and sequence: pooled with
/// the cache's own, they strip nothing of the caches' next bundle.
#[test]
fn inner_keys_from_a_relayed_l2_open_no_other_bundle() {
    let (f, bundles) = fixture();
    let (first, next) = (&bundles[0], &bundles[1]);
    // The client's view of the first bundle: outer layers off, solved.
    let singly: Vec<Vec<u8>> = (0..f.caches.len())
        .map(|p| {
            let chunk = served(&f, first, p);
            let mut data = chunk.wire;
            let outer = keys_of(&f, p).outer_session(&f.client, first.remainder.sequence);
            LayerCipher::for_chunk(&outer, &chunk.at).apply(&mut data);
            data
        })
        .collect();
    let covered: Vec<&[u8]> = first
        .remainder
        .puzzle
        .covered_positions()
        .into_iter()
        .map(|p| singly[p].as_slice())
        .collect();
    let secret = first.solve(&covered, 2).unwrap().secret;
    // What any cache of the first bundle can open once the claim arrives.
    let leaked = open(&secret, &first.remainder.digest(), &first.l2).unwrap();
    assert_eq!(leaked.inner.len(), f.caches.len());
    for victim in 0..f.caches.len() {
        let chunk = served(&f, next, victim);
        let victim_outer = keys_of(&f, victim).outer_session(&f.client, next.remainder.sequence);
        for inner in &leaked.inner {
            assert_not_recovered(&f, &chunk, inner, &victim_outer, "a key from the old L2");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any escrow secret, escrow, pair of caches, client, sequence and
    /// chunk: the keys of one cache never strip the layers of the other.
    #[test]
    fn one_caches_keys_never_strip_anothers_layers(
        secret in any::<[u8; 32]>(),
        escrow in any::<[u8; 32]>(),
        a in any::<[u8; 32]>(),
        b in any::<[u8; 32]>(),
        client in any::<[u8; 32]>(),
        sequence in any::<u64>(),
        index in 0u64..1 << 20,
        chunk in vec(any::<u8>(), 16..256),
    ) {
        prop_assume!(a != b);
        let secret = cachecash_cdn::EscrowSecret::from_bytes(secret);
        let (escrow, client) = (Hash(escrow), AccountId(client));
        let victim = secret.cache_keys(&escrow, &AccountId(b));
        let attacker = secret.cache_keys(&escrow, &AccountId(a));
        let id = cachecash_cdn::manifest::chunk_digest(&chunk);
        let at = ChunkAt::new(Hash([1; 32]), id, index);
        let mut wire = chunk.clone();
        TwoLayerCipher::for_cache(&victim, &client, sequence, &at).apply(&mut wire);
        let victim_outer = victim.outer_session(&client, sequence);
        let mut once = wire.clone();
        TwoLayerCipher::for_cache(&attacker, &client, sequence, &at).apply(&mut once);
        let mut half = wire;
        LayerCipher::for_chunk(&victim_outer, &at).apply(&mut half);
        LayerCipher::for_chunk(&attacker.inner_session(&client, sequence), &at).apply(&mut half);
        for attempt in [once, half] {
            prop_assert_ne!(cachecash_cdn::manifest::chunk_digest(&attempt), id);
        }
    }
}

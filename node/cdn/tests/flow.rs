//! End-to-end retrieval with every role in process: publisher, caches and
//! client, every message through its SCALE encoding and bounded decoder.

use cachecash_cdn::bundle::{
    Bundle, BundleOrder, CacheRequest, ChunkOrder, L2Claim, prepare_bundle, prepare_bundle_at,
    sign_bundles,
};
use cachecash_cdn::error::{BundleError, PuzzleError};
use cachecash_cdn::keys::{CacheKeys, EscrowSecret};
use cachecash_cdn::layers::{LayerCipher, TwoLayerCipher};
use cachecash_cdn::manifest::{Manifest, SignedManifest};
use cachecash_cdn::puzzle::{MemorySource, PuzzleParams};
use cachecash_runtime::{AccountId, Hash};
use ed25519_dalek::SigningKey;
use parity_scale_codec::Encode;

const CHUNK: u32 = 64;

struct World {
    publisher: SigningKey,
    signer: SigningKey,
    escrow: Hash,
    secret: EscrowSecret,
    client: AccountId,
    caches: Vec<AccountId>,
    object: Vec<u8>,
    manifest: Manifest,
}

fn world() -> World {
    // Five full chunks and a 1-byte last chunk (shorter than one block).
    let object: Vec<u8> = (0..(5 * CHUNK + 1)).map(|i| (i * 13 + 5) as u8).collect();
    let manifest = Manifest::from_object(Hash([0x0b; 32]), CHUNK, &object).unwrap();
    assert_eq!(manifest.chunks.len(), 6);
    World {
        publisher: SigningKey::from_bytes(&[1; 32]),
        signer: SigningKey::from_bytes(&[2; 32]),
        escrow: Hash([0xe5; 32]),
        secret: EscrowSecret::from_bytes([3; 32]),
        client: AccountId::from_signing_key(&SigningKey::from_bytes(&[4; 32])),
        caches: (0..4u8)
            .map(|i| AccountId::from_signing_key(&SigningKey::from_bytes(&[0x10 + i; 32])))
            .collect(),
        object,
        manifest,
    }
}

impl World {
    fn ticket_signer(&self) -> AccountId {
        AccountId::from_signing_key(&self.signer)
    }

    fn order(&self, sequence: u64, chunks: &[u64], puzzle: PuzzleParams) -> BundleOrder {
        BundleOrder {
            escrow: self.escrow,
            round: 9,
            object: self.manifest.object,
            object_size: self.manifest.size,
            chunk_size: self.manifest.chunk_size,
            client: self.client,
            sequence,
            puzzle,
            chunks: chunks
                .iter()
                .enumerate()
                .map(|(p, &index)| ChunkOrder {
                    chunk_index: index,
                    chunk_id: self.manifest.chunks[index as usize],
                    size: self.manifest.layout().unwrap().chunk_len(index).unwrap(),
                    cache: self.caches[p],
                    ticket_number: (sequence * 16 + p as u64) as u32,
                })
                .collect(),
        }
    }

    fn plaintext(&self, index: u64) -> &[u8] {
        let start = (index * u64::from(CHUNK)) as usize;
        let end = (start + CHUNK as usize).min(self.object.len());
        &self.object[start..end]
    }

    fn cache_keys(&self, position: usize) -> CacheKeys {
        self.secret.cache_keys(&self.escrow, &self.caches[position])
    }

    fn issue(&self, orders: &[BundleOrder]) -> Vec<Bundle> {
        let mut source = MemorySource::new(&self.object, CHUNK);
        let prepared: Vec<_> = orders
            .iter()
            .map(|o| prepare_bundle(o, &self.secret, &mut source).unwrap())
            .collect();
        sign_bundles(&self.signer, prepared).unwrap()
    }
}

/// Runs one bundle through every role; returns the client's plaintext chunks.
fn retrieve(w: &World, bundle: &Bundle) -> Vec<Vec<u8>> {
    let signer = w.ticket_signer();
    // Client: receive and check the bundle.
    let bundle = Bundle::decode_bounded(&bundle.encode()).unwrap();
    bundle.verify_for_client(&w.client, &signer).unwrap();
    bundle.check_manifest(&w.manifest).unwrap();

    // Per cache: request, serve both layers, exchange the L1 for the outer key.
    let mut singly = Vec::new();
    for (position, chunk) in bundle.chunks.iter().enumerate() {
        let request =
            CacheRequest::decode_bounded(&bundle.cache_request(position).unwrap().encode())
                .unwrap();
        let keys = w.cache_keys(position);
        let verified = request.verify(&w.caches[position], &signer).unwrap();
        let index = request.request.chunk_index;
        let at = request.request.at(&bundle.remainder.object);
        let mut wire = w.plaintext(index).to_vec();
        let mut cache_cipher =
            TwoLayerCipher::for_cache(&keys, &w.client, bundle.remainder.sequence, &at);
        for piece in wire.chunks_mut(10) {
            cache_cipher.apply(piece);
        }
        let outer = verified
            .release_outer_key(&chunk.l1, &signer, &keys)
            .unwrap();
        LayerCipher::for_chunk(&outer, &at).apply(&mut wire);
        singly.push(wire);
    }

    // Client: solve over the covered chunks, open the L2, strip the inner layers.
    let covered: Vec<&[u8]> = bundle
        .remainder
        .puzzle
        .covered_positions()
        .into_iter()
        .map(|p| singly[p].as_slice())
        .collect();
    let solution = bundle.solve(&covered, 2).unwrap();
    let keys = bundle.open_l2(&solution.secret).unwrap();
    let mut plain = Vec::new();
    for (position, mut data) in singly.into_iter().enumerate() {
        let request = &bundle.chunks[position].request;
        let index = request.chunk_index;
        LayerCipher::for_chunk(&keys.inner[position], &request.at(&bundle.remainder.object))
            .apply(&mut data);
        w.manifest.verify_chunk(index, &data).unwrap();
        plain.push(data);
    }

    // Every cache accepts the L2 claim as redemption evidence.
    let claim = L2Claim {
        sealed: bundle.l2.clone(),
        secret: solution.secret.clone(),
    };
    let claim = L2Claim::decode_bounded(&claim.encode()).unwrap();
    for (position, chunk) in bundle.chunks.iter().enumerate() {
        let request = bundle.cache_request(position).unwrap();
        let inner = w
            .cache_keys(position)
            .inner_session(&w.client, bundle.remainder.sequence);
        request
            .verify_l2_claim(&chunk.l1.ticket, &claim, &inner)
            .unwrap();
    }
    plain
}

#[test]
fn full_retrieval_of_every_shape() {
    let w = world();
    let publisher = AccountId::from_signing_key(&w.publisher);
    let signed = w.manifest.clone().sign(&w.publisher);
    let signed = SignedManifest::decode_bounded(&signed.encode()).unwrap();
    signed.verify(&publisher).unwrap();

    let orders = [
        // Four full chunks, all covered (the deployed shape).
        w.order(0, &[0, 1, 2, 3], PuzzleParams::covering_all(2, 8192, 4)),
        // A full chunk and the 1-byte last chunk.
        w.order(1, &[4, 5], PuzzleParams::covering_all(2, 8192, 2)),
        // "3 of 4": the puzzle skips position 3, whose key still comes from the L2.
        w.order(
            2,
            &[0, 1, 2, 3],
            PuzzleParams {
                rounds: 2,
                start_range: 8192,
                covered: 0b0111,
            },
        ),
        // Three rounds over a ragged selection.
        w.order(3, &[5, 2, 0], PuzzleParams::covering_all(3, 2, 3)),
    ];
    let bundles = w.issue(&orders);
    assert_eq!(bundles.len(), 4);
    for (bundle, order) in bundles.iter().zip(&orders) {
        let plain = retrieve(&w, bundle);
        for (data, chunk) in plain.iter().zip(&order.chunks) {
            assert_eq!(data.as_slice(), w.plaintext(chunk.chunk_index));
        }
    }
}

#[test]
fn caches_and_clients_refuse_what_is_not_theirs() {
    let w = world();
    let signer = w.ticket_signer();
    let bundles = w.issue(&[w.order(0, &[0, 1, 2, 3], PuzzleParams::covering_all(2, 8192, 4))]);
    let bundle = &bundles[0];

    let stranger = AccountId::from_signing_key(&SigningKey::from_bytes(&[0x77; 32]));
    assert!(matches!(
        bundle.verify_for_client(&stranger, &signer),
        Err(BundleError::WrongClient { .. })
    ));
    assert!(matches!(
        bundle.verify_for_client(&w.client, &stranger),
        Err(BundleError::BadL1 { .. } | BundleError::BadSignature { .. })
    ));

    let request = bundle.cache_request(1).unwrap();
    assert!(matches!(
        request.verify(&w.caches[0], &signer),
        Err(BundleError::WrongCache { .. })
    ));
    assert!(matches!(
        request.verify(&w.caches[1], &stranger),
        Err(BundleError::BadSignature { .. })
    ));
    // The L1 of another position does not buy this cache's key.
    assert!(matches!(
        request.verify_l1(&bundle.chunks[0].l1, &signer),
        Err(BundleError::L1Mismatch { field: "hash", .. })
    ));
    // A claim with a wrong secret is refused.
    let claim = L2Claim {
        sealed: bundle.l2.clone(),
        secret: cachecash_cdn::PuzzleSecret::from_bytes([9; 32]),
    };
    let inner = w.cache_keys(1).inner_session(&w.client, 0);
    assert_eq!(
        request.verify_l2_claim(&bundle.chunks[1].l1.ticket, &claim, &inner),
        Err(BundleError::SecretMismatch)
    );
    // The honest flow still goes through.
    let plain = retrieve(&w, bundle);
    assert_eq!(plain.len(), 4);
}

#[test]
fn a_client_missing_a_chunk_cannot_solve() {
    let w = world();
    let bundles = w.issue(&[w.order(0, &[0, 1, 2, 3], PuzzleParams::covering_all(2, 8192, 4))]);
    let bundle = &bundles[0];
    let mut singly = Vec::new();
    for (position, chunk) in bundle.chunks.iter().enumerate() {
        let index = chunk.request.chunk_index;
        let mut data = w.plaintext(index).to_vec();
        LayerCipher::for_chunk(
            &w.cache_keys(position).inner_session(&w.client, 0),
            &chunk.request.at(&bundle.remainder.object),
        )
        .apply(&mut data);
        singly.push(data);
    }
    let views: Vec<&[u8]> = singly.iter().map(Vec::as_slice).collect();
    assert!(bundle.solve(&views, 1).is_ok());

    // Chunk 2 guessed as zeros: no start offset reaches the goal.
    let zeros = vec![0u8; singly[2].len()];
    let mut guessed = views.clone();
    guessed[2] = zeros.as_slice();
    assert!(matches!(
        bundle.solve(&guessed, 2),
        Err(BundleError::Puzzle(PuzzleError::NoSolution { .. }))
    ));
    // A truncated chunk is refused before solving.
    let mut short = views.clone();
    short[1] = &singly[1][..10];
    assert!(matches!(
        bundle.solve(&short, 1),
        Err(BundleError::ChunkData { position: 1, .. })
    ));
    // Plaintext instead of inner-encrypted bytes does not solve either.
    let mut plain = views;
    plain[0] = w.plaintext(0);
    assert!(bundle.solve(&plain, 1).is_err());
}

#[test]
fn the_publisher_rejects_bad_orders() {
    let w = world();
    let mut source = MemorySource::new(&w.object, CHUNK);
    let params = PuzzleParams::covering_all(2, 8192, 2);

    let dup = w.order(0, &[1, 1], params);
    assert!(matches!(
        prepare_bundle(&dup, &w.secret, &mut source),
        Err(BundleError::DuplicateChunk { index: 1 })
    ));

    let mut wrong_size = w.order(0, &[4, 5], params);
    wrong_size.chunks[1].size = 16;
    assert!(matches!(
        prepare_bundle(&wrong_size, &w.secret, &mut source),
        Err(BundleError::ChunkSize { position: 1, .. })
    ));

    let empty = w.order(0, &[], params);
    assert!(matches!(
        prepare_bundle(&empty, &w.secret, &mut source),
        Err(BundleError::Puzzle(PuzzleError::BundleSize { got: 0, .. }))
    ));

    let degenerate = w.order(0, &[0], PuzzleParams::covering_all(2, 8192, 1));
    assert!(matches!(
        prepare_bundle(&degenerate, &w.secret, &mut source),
        Err(BundleError::Puzzle(PuzzleError::Degenerate { product: 2 }))
    ));

    let beyond = w.order(0, &[0, 1], PuzzleParams::covering_all(2, 8192, 2));
    assert!(matches!(
        prepare_bundle_at(&beyond, &w.secret, &mut source, 4),
        Err(BundleError::Puzzle(PuzzleError::StartOutOfRange {
            start: 4,
            range: 4
        }))
    ));

    assert!(matches!(
        sign_bundles(&w.signer, Vec::new()),
        Err(BundleError::EmptyBatch)
    ));
}

#[test]
fn an_empty_object_has_a_manifest_but_no_bundles() {
    let m = Manifest::from_object(Hash([1; 32]), 64, &[]).unwrap();
    assert_eq!((m.size, m.chunks.len()), (0, 0));
    let key = SigningKey::from_bytes(&[8; 32]);
    m.sign(&key)
        .verify(&AccountId::from_signing_key(&key))
        .unwrap();
}

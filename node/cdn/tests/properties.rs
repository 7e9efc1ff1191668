//! Property tests: layer round trips, what a solver lacking data cannot do,
//! tamper detection at every cache, key independence, total decoders.

use std::sync::OnceLock;

use cachecash_cdn::bench::BundleFixture;
use cachecash_cdn::bundle::{Bundle, CacheRequest, L2Claim, decode_l1};
use cachecash_cdn::error::PuzzleError;
use cachecash_cdn::keys::{ChunkAt, EscrowSecret, SessionKey};
use cachecash_cdn::l2::L2Keys;
use cachecash_cdn::layers::{LayerCipher, TwoLayerCipher};
use cachecash_cdn::manifest::{Manifest, ManifestBuilder, SignedManifest};
use cachecash_cdn::puzzle::{
    MemorySource, PuzzleChunk, PuzzleParams, SourceError, generate, solve,
};
use cachecash_runtime::{AccountId, Hash};
use parity_scale_codec::Encode;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// Slot size when packing puzzle chunks into one object for the block source.
const SLOT: usize = 64;

/// Inner-encrypts `chunks`; returns what the publisher knows, what the
/// client holds and the plaintext packed in `SLOT`-byte slots.
fn puzzle_setup(chunks: &[Vec<u8>], seed: u8) -> (Vec<PuzzleChunk>, Vec<Vec<u8>>, Vec<u8>) {
    let mut publisher = Vec::new();
    let mut client = Vec::new();
    let mut object = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let key = SessionKey::from_bytes([seed ^ i as u8; 16]);
        let iv = key.chunk_iv(&ChunkAt::new(Hash([1; 32]), Hash([2; 32]), i as u64));
        let mut e = c.clone();
        LayerCipher::new(&key, &iv).apply(&mut e);
        client.push(e);
        let mut slot = c.clone();
        slot.resize(SLOT, 0);
        object.extend_from_slice(&slot);
        publisher.push(PuzzleChunk {
            chunk: i as u64,
            len: c.len() as u32,
            key,
            iv,
        });
    }
    (publisher, client, object)
}

fn fixture() -> &'static (BundleFixture, Vec<Bundle>) {
    static FIXTURE: OnceLock<(BundleFixture, Vec<Bundle>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let f = BundleFixture::new(4, 64).unwrap();
        let bundles = f.issue(2).unwrap();
        (f, bundles)
    })
}

/// Fields [`tamper`] knows.
const TAMPERED_FIELDS: usize = 24;

/// Flips bits of one field of a bundle (never a no-op).
fn tamper(b: &mut Bundle, field: usize, position: usize, x: u8) {
    let x = x | 1;
    let p = position % b.chunks.len();
    match field {
        0 => b.remainder.escrow.0[0] ^= x,
        1 => b.remainder.object.0[1] ^= x,
        2 => b.remainder.object_size ^= u64::from(x),
        3 => b.remainder.chunk_size ^= u32::from(x) << 4,
        4 => b.remainder.client.0[2] ^= x,
        5 => b.remainder.sequence ^= u64::from(x),
        6 => b.remainder.puzzle.rounds ^= x,
        7 => b.remainder.puzzle.start_range ^= u32::from(x),
        8 => b.remainder.puzzle.covered ^= u16::from(x),
        9 => b.remainder.goal.0[31] ^= x,
        10 => b.chunks[p].request.chunk_index ^= u64::from(x),
        11 => b.chunks[p].request.chunk_id.0[0] ^= x,
        12 => b.chunks[p].request.cache.0[0] ^= x,
        13 => b.chunks[p].request.size ^= u32::from(x),
        14 => b.chunks[p].l1.ticket.number ^= u32::from(x),
        15 => b.chunks[p].l1.ticket.round ^= u64::from(x),
        16 => b.chunks[p].l1.ticket.secret_hash.0[5] ^= x,
        17 => b.chunks[p].l1.ticket.chunk.0[5] ^= x,
        18 => b.l2.ciphertext[0] ^= x,
        19 => b.l2.tag[0] ^= x,
        20 => b.auth.root.0[0] ^= x,
        21 => b.auth.index ^= 1,
        22 => b.auth.signature.0[0] ^= x,
        _ => b.auth.path[0].0[0] ^= x,
    }
}

proptest! {
    #[test]
    fn both_layers_round_trip_for_any_length(
        data in vec(any::<u8>(), 0..600),
        inner in any::<[u8; 16]>(),
        outer in any::<[u8; 16]>(),
        index in any::<u64>(),
        split in 0usize..600,
    ) {
        let inner = SessionKey::from_bytes(inner);
        let outer = SessionKey::from_bytes(outer);
        let mut buf = data.clone();
        let cut = split.min(buf.len());
        let at = ChunkAt::new(Hash([1; 32]), Hash([2; 32]), index);
        let mut cache = TwoLayerCipher::for_chunk(&inner, &outer, &at);
        let (a, b) = buf.split_at_mut(cut);
        cache.apply(a);
        cache.apply(b);
        if data.len() >= 16 {
            prop_assert_ne!(&buf, &data);
        }
        // The client removes the outer layer, then the inner one in small pieces.
        LayerCipher::for_chunk(&outer, &at).apply(&mut buf);
        let mut inner_cipher = LayerCipher::for_chunk(&inner, &at);
        for piece in buf.chunks_mut(7) {
            inner_cipher.apply(piece);
        }
        prop_assert_eq!(buf, data);
    }

    #[test]
    fn caches_never_share_a_key(
        secret in any::<[u8; 32]>(),
        escrow in any::<[u8; 32]>(),
        a in any::<[u8; 32]>(),
        b in any::<[u8; 32]>(),
        client in any::<[u8; 32]>(),
        sequence in any::<u64>(),
    ) {
        prop_assume!(a != b);
        let secret = EscrowSecret::from_bytes(secret);
        let ka = secret.cache_keys(&Hash(escrow), &AccountId(a));
        let kb = secret.cache_keys(&Hash(escrow), &AccountId(b));
        let masters = [&ka.inner, &ka.outer, &kb.inner, &kb.outer];
        for (i, x) in masters.iter().enumerate() {
            for y in &masters[i + 1..] {
                prop_assert_ne!(x, y);
            }
        }
        let client = AccountId(client);
        let sessions = [
            ka.inner_session(&client, sequence),
            ka.outer_session(&client, sequence),
            kb.inner_session(&client, sequence),
            kb.outer_session(&client, sequence),
        ];
        for (i, x) in sessions.iter().enumerate() {
            for y in &sessions[i + 1..] {
                prop_assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn manifests_stream_in_any_pieces(
        data in vec(any::<u8>(), 0..700),
        blocks in 1u32..=8,
        piece in 1usize..100,
    ) {
        let chunk_size = blocks * 16;
        let whole = Manifest::from_object(Hash([1; 32]), chunk_size, &data).unwrap();
        let mut builder = ManifestBuilder::new(Hash([1; 32]), chunk_size).unwrap();
        for p in data.chunks(piece) {
            builder.update(p).unwrap();
        }
        let streamed = builder.finish().unwrap();
        prop_assert_eq!(&streamed, &whole);
        prop_assert!(whole.check().is_ok());
        prop_assert_eq!(whole.chunks.len(), data.len().div_ceil(chunk_size as usize));
        for (i, c) in data.chunks(chunk_size as usize).enumerate() {
            prop_assert!(whole.verify_chunk(i as u64, c).is_ok());
        }
    }

    #[test]
    fn decoders_are_total(bytes in vec(any::<u8>(), 0..2048)) {
        let _ = Bundle::decode_bounded(&bytes);
        let _ = CacheRequest::decode_bounded(&bytes);
        let _ = L2Claim::decode_bounded(&bytes);
        let _ = SignedManifest::decode_bounded(&bytes);
        let _ = L2Keys::decode_bounded(&bytes);
        let _ = decode_l1(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// One flipped bit in any block the publisher's walk visited defeats
    /// the solver. Chunks of one block (up to 16 bytes) are always visited
    /// whole; in longer ones, the blocks the winning walk never reads are
    /// left alone, since flipping them proves nothing.
    #[test]
    fn one_flipped_bit_in_a_visited_block_defeats_the_solver(
        chunks in vec(vec(any::<u8>(), 1..=SLOT), 2..=4),
        rounds in 2u8..=3,
        which in any::<Index>(),
        bit in 0usize..128,
        seed in any::<u8>(),
    ) {
        let k = chunks.len();
        let params = PuzzleParams::covering_all(rounds, 8192, k);
        let (publisher, client, object) = puzzle_setup(&chunks, seed);
        let mut visited = Vec::new();
        let mut source = |c: u64, b: u64, out: &mut [u8]| -> Result<(), SourceError> {
            visited.push((c as usize, b as usize));
            let at = c as usize * SLOT + b as usize * 16;
            out.copy_from_slice(&object[at..at + out.len()]);
            Ok(())
        };
        let generated = generate(&params, &publisher, &mut source).unwrap();
        prop_assert_eq!(visited.len(), usize::from(rounds) * k - 1);
        let views: Vec<&[u8]> = client.iter().map(Vec::as_slice).collect();
        let solved = solve(&params, &views, &generated.goal).unwrap();
        prop_assert_eq!(&solved.secret, &generated.secret);

        let (c, block) = visited[which.index(visited.len())];
        let mut flipped = client.clone();
        let len = flipped[c].len();
        let byte = (block * 16 + (bit / 8) % 16).min(len - 1);
        flipped[c][byte] ^= 1u8 << (bit % 8);
        let views: Vec<&[u8]> = flipped.iter().map(Vec::as_slice).collect();
        let no_solution = matches!(
            solve(&params, &views, &generated.goal),
            Err(PuzzleError::NoSolution { .. })
        );
        prop_assert!(no_solution);
    }

    /// A client missing a chunk can only guess it; any wrong guess fails.
    #[test]
    fn a_missing_chunk_defeats_the_solver(
        chunks in vec(vec(any::<u8>(), 1..=SLOT), 2..=4),
        rounds in 2u8..=3,
        which in any::<Index>(),
        mask in 1u8..=255,
        seed in any::<u8>(),
    ) {
        let k = chunks.len();
        let params = PuzzleParams::covering_all(rounds, 8192, k);
        let (publisher, client, object) = puzzle_setup(&chunks, seed);
        let generated = generate(&params, &publisher, &mut MemorySource::new(&object, SLOT as u32)).unwrap();
        let views: Vec<&[u8]> = client.iter().map(Vec::as_slice).collect();
        let solved = solve(&params, &views, &generated.goal).unwrap();
        prop_assert_eq!(&solved.secret, &generated.secret);

        let c = which.index(k);
        let guess: Vec<u8> = client[c].iter().map(|b| b ^ mask).collect();
        let mut guessed = views.clone();
        guessed[c] = guess.as_slice();
        let no_solution = matches!(
            solve(&params, &guessed, &generated.goal),
            Err(PuzzleError::NoSolution { .. })
        );
        prop_assert!(no_solution);
        // Leaving the chunk out altogether is refused outright.
        let mut fewer = views;
        fewer.remove(c);
        let refused = matches!(
            solve(&params, &fewer, &generated.goal),
            Err(PuzzleError::ChunkCount { .. })
        );
        prop_assert!(refused);
    }

    /// Every field, each case with its own tampered position and bits.
    #[test]
    fn a_tampered_bundle_fails_at_every_cache(
        position in 0usize..4,
        x in any::<u8>(),
        which in 0usize..2,
    ) {
        let (f, bundles) = fixture();
        let original = &bundles[which];
        for (p, cache) in f.caches.iter().enumerate() {
            let request = original.cache_request(p).unwrap();
            prop_assert!(request.verify(cache, &f.ticket_signer).is_ok());
        }
        prop_assert!(original.verify_for_client(&f.client, &f.ticket_signer).is_ok());

        for field in 0..TAMPERED_FIELDS {
            let mut b = original.clone();
            tamper(&mut b, field, position, x);
            prop_assert_ne!(&b, original);
            for (p, cache) in f.caches.iter().enumerate() {
                let request = b.cache_request(p).unwrap();
                prop_assert!(
                    request.verify(cache, &f.ticket_signer).is_err(),
                    "field {field} accepted by the cache at position {p}"
                );
            }
            prop_assert!(b.verify_for_client(&f.client, &f.ticket_signer).is_err());
        }
    }

    #[test]
    fn l1_tickets_round_trip_and_reject_cut_or_padded_bytes(
        cut in any::<Index>(),
        extra in 1usize..4,
    ) {
        let (_, bundles) = fixture();
        for chunk in &bundles[0].chunks {
            let bytes = chunk.l1.encode();
            prop_assert_eq!(&decode_l1(&bytes).unwrap(), &chunk.l1);
            prop_assert!(decode_l1(&bytes[..cut.index(bytes.len())]).is_err());
            let mut longer = bytes.clone();
            longer.resize(bytes.len() + extra, 0);
            prop_assert!(decode_l1(&longer).is_err());
        }
    }

    #[test]
    fn truncated_or_extended_encodings_are_rejected(cut in any::<Index>(), extra in 1usize..4) {
        let (_, bundles) = fixture();
        let bytes = bundles[0].encode();
        let decoded = Bundle::decode_bounded(&bytes).unwrap();
        prop_assert_eq!(&decoded, &bundles[0]);
        let cut = cut.index(bytes.len());
        prop_assert!(Bundle::decode_bounded(&bytes[..cut]).is_err());
        let mut longer = bytes.clone();
        longer.resize(bytes.len() + extra, 0);
        prop_assert!(Bundle::decode_bounded(&longer).is_err());
    }
}

#[test]
fn an_l1_with_a_proof_deeper_than_any_batch_is_out_of_bounds() {
    use cachecash_cdn::error::DecodeError;
    use cachecash_runtime::microcash::{MAX_PROOF_DEPTH, TicketAuth};
    let (_, bundles) = fixture();
    let mut l1 = bundles[0].chunks[0].l1.clone();
    let TicketAuth::Batch { proof, .. } = &mut l1.auth else {
        panic!("bundle L1s are batch-signed");
    };
    proof.path = vec![Hash([7; 32]); MAX_PROOF_DEPTH + 1];
    assert!(matches!(
        decode_l1(&l1.encode()),
        Err(DecodeError::OutOfBounds { .. })
    ));
}

//! Golden hex vectors of the derivations, both layers, the puzzle walk, the
//! bundle digest and the L2 sealing. A change here is a wire-format change:
//! it needs a new domain tag (`…/v2`), not an updated vector.
//!
//! The vectors were cross-checked against an independent implementation
//! written from the layouts in the module docs (Python's `hashlib`, `hmac`
//! and `cryptography`). The AES-128-CTR known-answer vectors come from
//! NIST SP 800-38A.

use cachecash_cdn::bundle::{
    BundleRemainder, TicketRequest, batch_payload, bundle_digest, chunk_subdigest,
};
use cachecash_cdn::keys::{ChunkAt, ChunkIv, EscrowSecret, Layer, PuzzleSecret, SessionKey};
use cachecash_cdn::l2::{L2Keys, SealedL2, seal};
use cachecash_cdn::layers::{LayerCipher, TwoLayerCipher, apply_at_block};
use cachecash_cdn::manifest::{Manifest, chunk_digest};
use cachecash_cdn::puzzle::{PuzzleParams, walk};
use cachecash_runtime::{AccountId, Hash};
use parity_scale_codec::Encode;

/// Compares a computed hex string with its golden constant.
fn golden(name: &str, expected: &str, got: &str) {
    assert!(
        expected != "FILL",
        "golden vector `{name}` is not filled in yet; the computed value is\n{got}\n(check it independently before pasting it in)"
    );
    assert_eq!(
        got, expected,
        "golden vector `{name}` changed: that is a wire-format change"
    );
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

// ---------------------------------------------------------------------------
// AES-128-CTR known answers (filled in from the standard).

/// NIST SP 800-38A, F.5.1 CTR-AES128.Encrypt.
const NIST_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const NIST_IV: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
const NIST_PLAIN: [&str; 4] = [
    "6bc1bee22e409f96e93d7e117393172a",
    "ae2d8a571e03ac9c9eb76fac45af8e51",
    "30c81c46a35ce411e5fbc1191a0a52ef",
    "f69f2445df4f9b17ad2b417be66c3710",
];
const NIST_CIPHER: [&str; 4] = [
    "874d6191b620e3261bef6864990db6ce",
    "9806f66b7970fdff8617187bb9fffdff",
    "5ae4df3edbd5d35e5b4f09020db03eab",
    "1e031dda2fbe03d1792170a0f3009cee",
];

#[test]
fn aes128_ctr_matches_nist_sp800_38a_f51() {
    let key = SessionKey::from_bytes(unhex(NIST_KEY));
    let iv = ChunkIv(unhex(NIST_IV));

    // First block alone.
    let mut block: [u8; 16] = unhex(NIST_PLAIN[0]);
    LayerCipher::new(&key, &iv).apply(&mut block);
    assert_eq!(hex::encode(block), NIST_CIPHER[0]);

    // All four blocks as one stream (block 2's counter carries out of the last byte).
    let mut stream: Vec<u8> = NIST_PLAIN
        .iter()
        .flat_map(|p| hex::decode(p).unwrap())
        .collect();
    LayerCipher::new(&key, &iv).apply(&mut stream);
    assert_eq!(hex::encode(stream.as_slice()), NIST_CIPHER.concat());

    // Any block alone, by seeking.
    for (i, (p, c)) in NIST_PLAIN.iter().zip(NIST_CIPHER).enumerate() {
        let mut b: [u8; 16] = unhex(p);
        apply_at_block(&key, &iv, i as u64, &mut b).unwrap();
        assert_eq!(hex::encode(b), c, "block {i}");
    }
}

/// The Go reference's shared single-block vector (protocol reference §4):
/// plaintext 01..10, key 10..01, IV 08..01 ‖ 10..09, block offset 23. The
/// byte strings below are this crate's reading of that notation.
#[test]
fn aes128_ctr_matches_the_go_single_block_vector() {
    let key = SessionKey::from_bytes(core::array::from_fn(|i| 16 - i as u8));
    let mut iv = [0u8; 16];
    for (i, b) in iv.iter_mut().enumerate() {
        *b = if i < 8 { 8 - i as u8 } else { 24 - i as u8 };
    }
    assert_eq!(hex::encode(iv), "0807060504030201100f0e0d0c0b0a09");
    let mut block: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
    apply_at_block(&key, &ChunkIv(iv), 23, &mut block).unwrap();
    assert_eq!(hex::encode(block), "07e7557fd9a512723b50d724606bbd57");
}

// ---------------------------------------------------------------------------
// Key schedule.

const MASTER_INNER: &str = "911fd546b210f4385d16e7efc71a0dd5971a9452ac60a30309b6df357c3e06b9";
const MASTER_OUTER: &str = "ee416161d15f9dd22cd921cfbb5725e196a906a9bc735e51002d7efafe92cda7";
const SESSION_INNER: &str = "cd6ab79147151b1ed6c96de93d12a77f";
const SESSION_OUTER: &str = "8deecaccf08b25631507859326c8b3aa";
/// IVs bind the object and the chunk id (`chunk-iv/v2`): chunk 5, id 0x66…,
/// of object 0x55….
const IV_INNER_CHUNK5: &str = "de1fb50d03a167e977225cf6b045912d";

fn chunk5() -> ChunkAt {
    ChunkAt::new(Hash([0x55; 32]), Hash([0x66; 32]), 5)
}

fn escrow() -> (EscrowSecret, Hash, AccountId) {
    (
        EscrowSecret::from_bytes([0x11; 32]),
        Hash([0x22; 32]),
        AccountId([0x33; 32]),
    )
}

fn sessions() -> (SessionKey, SessionKey) {
    let (secret, escrow, cache) = escrow();
    let client = AccountId([0x44; 32]);
    (
        secret
            .master_key(&escrow, &cache, Layer::Inner)
            .session_key(&client, 7),
        secret
            .master_key(&escrow, &cache, Layer::Outer)
            .session_key(&client, 7),
    )
}

#[test]
fn golden_master_keys() {
    let (secret, escrow, cache) = escrow();
    golden(
        "master key, inner",
        MASTER_INNER,
        &hex::encode(secret.master_key(&escrow, &cache, Layer::Inner).as_bytes()),
    );
    golden(
        "master key, outer",
        MASTER_OUTER,
        &hex::encode(secret.master_key(&escrow, &cache, Layer::Outer).as_bytes()),
    );
}

#[test]
fn golden_session_keys_and_iv() {
    let (inner, outer) = sessions();
    golden(
        "session key, inner",
        SESSION_INNER,
        &hex::encode(inner.as_bytes()),
    );
    golden(
        "session key, outer",
        SESSION_OUTER,
        &hex::encode(outer.as_bytes()),
    );
    golden(
        "IV of chunk 5, inner",
        IV_INNER_CHUNK5,
        &hex::encode(inner.chunk_iv(&chunk5()).as_bytes()),
    );
}

// ---------------------------------------------------------------------------
// Layers: 40 bytes (two blocks and a half) of chunk 5.

const INNER_LAYER_40: &str =
    "0df9826071fd6cc9b1b10841246ff8b47785ef02d8122dd0691375ca0f75a6c5366a84e429f1e064";
const TWO_LAYERS_40: &str =
    "35fcae6fbc7fb56436f7b5419fb2785f498bccf93740de8d5fef7e7fe21e5e61a9019d3aa395ecd3";

#[test]
fn golden_layers() {
    let (inner, outer) = sessions();
    let plain: Vec<u8> = (0u8..40).collect();

    let mut one = plain.clone();
    LayerCipher::for_chunk(&inner, &chunk5()).apply(&mut one);
    golden("inner layer", INNER_LAYER_40, &hex::encode(one.as_slice()));

    let mut two = plain;
    TwoLayerCipher::for_chunk(&inner, &outer, &chunk5()).apply(&mut two);
    golden("both layers", TWO_LAYERS_40, &hex::encode(two.as_slice()));
}

// ---------------------------------------------------------------------------
// Manifest.

const CHUNK_DIGEST_ABC: &str = "ddcaa35d48c445bbbe28b3dd397458916cf1a0db039344e701cddd0203b3d62d";
const ROOT_40_IN_16: &str = "83d318a12b929a8486a9c6e7c9901b81e395a06611c18abea84865cb0e88944f";
/// RFC 6962: the empty tree's root is SHA-256 of the empty string.
const EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn golden_manifest() {
    golden(
        "chunk digest of abc",
        CHUNK_DIGEST_ABC,
        &hex::encode(chunk_digest(b"abc").0),
    );
    let data: Vec<u8> = (0u8..40).collect();
    let m = Manifest::from_object(Hash([0x0b; 32]), 16, &data).unwrap();
    assert_eq!(m.chunks.len(), 3);
    golden(
        "root of 40 bytes in 16-byte chunks",
        ROOT_40_IN_16,
        &hex::encode(m.root.0),
    );
    let empty = Manifest::from_object(Hash([0x0b; 32]), 16, &[]).unwrap();
    assert_eq!(hex::encode(empty.root.0), EMPTY_ROOT);
}

// ---------------------------------------------------------------------------
// Puzzle walk.

const WALK_ONE_BLOCK_GOAL: &str =
    "74620c0949b2b1dac5e0f6de44547e0f2183c7c797aeba137b1b9581d6ce9dc2";
const WALK_ONE_BLOCK_SECRET: &str =
    "3a7a0d92b1e6e4331f39d4fd51bae2c41ca785b691672363763d072c2bebc890";
const WALK_RAGGED_GOAL: &str = "f6d08db249f84c972dedea4f102c5935434c6b83190c9f3c07c752b7c99ba6c8";
const WALK_RAGGED_SECRET: &str = "afacd4a72e386f6b90fa2bae1c5a00874eeb1baa0f2058b6bda4beed8f61a84c";
const WALK_LARGEST_THIRD_GOAL: &str =
    "b42cb043b9c1314e11e1f054c71336515f19b86b5e88731c0d5dd8759c8043ef";
const WALK_LARGEST_THIRD_SECRET: &str =
    "69b93e5354393aaae7f4af11b01d91afd8d711f1f5e8df9684bed6e28a00221a";

#[test]
fn golden_puzzle_walks() {
    // Four one-block chunks of bytes 0..63 (the Go test's shape), R = 2, start 0.
    let bytes: Vec<u8> = (0u8..64).collect();
    let chunks: Vec<&[u8]> = bytes.chunks(16).collect();
    let (goal, secret) = walk(&PuzzleParams::covering_all(2, 8192, 4), &chunks, 0).unwrap();
    golden(
        "walk, one-block chunks, goal",
        WALK_ONE_BLOCK_GOAL,
        &hex::encode(goal.0),
    );
    golden(
        "walk, one-block chunks, secret",
        WALK_ONE_BLOCK_SECRET,
        &hex::encode(secret.as_bytes()),
    );

    // Ragged chunks of 40, 17, 5 and 32 bytes (partial blocks zero-padded), R = 3, start 1.
    let bytes: Vec<u8> = (0..94u32).map(|i| (i * 7) as u8).collect();
    let (a, rest) = bytes.split_at(40);
    let (b, rest) = rest.split_at(17);
    let (c, d) = rest.split_at(5);
    let (goal, secret) = walk(&PuzzleParams::covering_all(3, 8192, 4), &[a, b, c, d], 1).unwrap();
    golden(
        "walk, ragged chunks, goal",
        WALK_RAGGED_GOAL,
        &hex::encode(goal.0),
    );
    golden(
        "walk, ragged chunks, secret",
        WALK_RAGGED_SECRET,
        &hex::encode(secret.as_bytes()),
    );

    // Chunks of 5, 17, 40 and 32 bytes, R = 2, start 2: the walk starts in
    // the largest chunk (the third) and goes round-robin from there, so the
    // start range is that chunk's 3 blocks, not the first chunk's 1.
    let bytes: Vec<u8> = (0..94u32).map(|i| (i * 13 + 5) as u8).collect();
    let (a, rest) = bytes.split_at(5);
    let (b, rest) = rest.split_at(17);
    let (c, d) = rest.split_at(40);
    let (goal, secret) = walk(&PuzzleParams::covering_all(2, 8192, 4), &[a, b, c, d], 2).unwrap();
    golden(
        "walk, largest chunk third, goal",
        WALK_LARGEST_THIRD_GOAL,
        &hex::encode(goal.0),
    );
    golden(
        "walk, largest chunk third, secret",
        WALK_LARGEST_THIRD_SECRET,
        &hex::encode(secret.as_bytes()),
    );
}

// ---------------------------------------------------------------------------
// Bundle digest.

const REMAINDER_DIGEST: &str = "f99f9ccf56b599ffac8dbc0bbf3f30ff6a0d87eb45c79efee6122b80f9f9ab48";
const L2_DIGEST: &str = "c13da1411e26fa871b8b6c402d5fd2beb6c1120f91aba05d00f5972ac1d7db5a";
const SUBDIGEST_1: &str = "80188acb36189bb4c2c83eecb39e386a2211435b66841571ea35c799b658374e";
const BUNDLE_DIGEST: &str = "5038bd4db39bf090f9eb6db03b709895f96a0f6d82826c8b1ac32ec7416070c4";

fn sample_remainder() -> BundleRemainder {
    BundleRemainder {
        escrow: Hash([0x22; 32]),
        object: Hash([0x0b; 32]),
        object_size: 327,
        chunk_size: 64,
        client: AccountId([0x44; 32]),
        sequence: 7,
        puzzle: PuzzleParams {
            rounds: 2,
            start_range: 8192,
            covered: 0b0111,
        },
        goal: Hash([0x99; 32]),
    }
}

fn sample_request(i: u8) -> TicketRequest {
    TicketRequest {
        chunk_index: u64::from(i) + 1,
        chunk_id: Hash([0xc0 + i; 32]),
        cache: AccountId([0x30 + i; 32]),
        size: 64,
    }
}

#[test]
fn golden_bundle_digest() {
    let remainder = sample_remainder().digest();
    let l2 = SealedL2 {
        ciphertext: vec![1, 2, 3],
        tag: [4; 32],
    }
    .digest();
    let subs: Vec<Hash> = (0..4u8)
        .map(|i| chunk_subdigest(i, &sample_request(i), &Hash([0xa0 + i; 32])))
        .collect();
    golden(
        "remainder digest",
        REMAINDER_DIGEST,
        &hex::encode(remainder.0),
    );
    golden("sealed L2 digest", L2_DIGEST, &hex::encode(l2.0));
    golden(
        "subdigest of position 1",
        SUBDIGEST_1,
        &hex::encode(subs[1].0),
    );
    golden(
        "bundle digest",
        BUNDLE_DIGEST,
        &hex::encode(bundle_digest(&remainder, &l2, &subs).0),
    );
}

#[test]
fn layouts_of_the_signed_encodings() {
    // SCALE of a ticket request: LE64 index ‖ chunk id ‖ cache ‖ LE32 size.
    let r = sample_request(0).encode();
    assert_eq!(r.len(), 8 + 32 + 32 + 4);
    assert_eq!(&r[..8], &1u64.to_le_bytes());
    assert_eq!(&r[8..40], &[0xc0; 32]);
    assert_eq!(&r[72..], &64u32.to_le_bytes());

    // SCALE of a remainder: escrow ‖ object ‖ LE64 size ‖ LE32 chunk size ‖ client ‖ LE64 seq ‖ u8 R ‖ LE32 range ‖ LE16 mask ‖ goal.
    let e = sample_remainder().encode();
    assert_eq!(e.len(), 32 + 32 + 8 + 4 + 32 + 8 + 1 + 4 + 2 + 32);

    // Batch payload: tag ‖ root ‖ LE32 size.
    let p = batch_payload(&Hash([5; 32]), 3);
    assert_eq!(&p[..25], b"cachecash/bundle-batch/v1");
    assert_eq!(&p[25..57], &[5; 32]);
    assert_eq!(&p[57..], &3u32.to_le_bytes());

    // Manifest payload: tag ‖ object ‖ LE64 size ‖ LE32 chunk size ‖ LE64 count ‖ root.
    let m = Manifest::from_object(Hash([0x0b; 32]), 16, &[7; 20]).unwrap();
    let p = m.signing_payload();
    assert_eq!(&p[..21], b"cachecash/manifest/v1");
    assert_eq!(&p[21..53], &[0x0b; 32]);
    assert_eq!(&p[53..61], &20u64.to_le_bytes());
    assert_eq!(&p[61..65], &16u32.to_le_bytes());
    assert_eq!(&p[65..73], &2u64.to_le_bytes());
    assert_eq!(&p[73..], &m.root.0);
}

// ---------------------------------------------------------------------------
// L2 sealing.

const L2_CIPHERTEXT: &str = "9befd4817462e653a1c07e6f63e0781182ce44901315dd1e924851f837b6c82a67";
const L2_TAG: &str = "987a19b57c722d566f5d474eec4276cba238c74877acd2947cbc942af493b952";

#[test]
fn golden_l2_sealing() {
    let keys = L2Keys {
        inner: vec![
            SessionKey::from_bytes([1; 16]),
            SessionKey::from_bytes([2; 16]),
        ],
    };
    let sealed = seal(
        &PuzzleSecret::from_bytes([0x55; 32]),
        &Hash([0x66; 32]),
        &keys,
    );
    assert_eq!(sealed.ciphertext.len(), 33);
    golden(
        "L2 ciphertext",
        L2_CIPHERTEXT,
        &hex::encode(sealed.ciphertext.as_slice()),
    );
    golden("L2 tag", L2_TAG, &hex::encode(sealed.tag));
}

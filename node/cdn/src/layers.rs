//! The two encryption layers: AES-128-CTR with a 128-bit big-endian counter.
//!
//! A cache serves `outer(inner(chunk))`. Each layer is AES-128 in counter
//! mode under a session key ([`crate::keys`]) with the chunk's IV as the
//! initial counter block; the whole 16-byte block is the counter
//! (`ctr::Ctr128BE<aes::Aes128>`, the same as Go's `cipher.NewCTR`), so block
//! `j` of a chunk is encrypted with keystream `AES_k(IV + j mod 2¹²⁸)`.
//! `Ctr64BE` would differ from the Go reference whenever the low 64 bits wrap.
//!
//! Both layers are XOR with a keystream, so they commute: the client removes
//! the outer layer first (it gets the outer key for an L1), solves the puzzle
//! over the inner-encrypted bytes, and removes the inner layer once the L2
//! hands over the inner key.
//!
//! # Streaming and lengths
//!
//! Ciphers keep their position between calls, so a chunk can be processed in
//! pieces of any size (including pieces that split a block); the result is
//! the same as one call over the whole chunk. Any length works, including 0
//! and lengths that are not multiples of 16: a trailing partial block uses
//! the first bytes of its keystream block. [`LayerCipher::seek_block`] jumps
//! to any block, so one block can be encrypted alone (the publisher does this
//! for the puzzle).
//!
//! # One pass for two layers
//!
//! [`TwoLayerCipher::apply`] walks the buffer in 4 KiB tiles. For each tile
//! it writes the tile's counter blocks for both layers, encrypts them with
//! the `aes` crate's multi-block `encrypt_blocks` (AES-NI, eight blocks in
//! flight), and XORs both keystreams into the data in one sweep while
//! everything is in the L1 data cache. This is counter mode exactly as
//! `ctr::Ctr128BE` computes it — a test checks the two agree for every
//! length and split — but it lets AES run at its multi-block speed: on the
//! development machine `ctr`'s generic keystream path gave 1.7 GB/s per
//! stream against 6.5 GB/s for `encrypt_blocks` on the same key
//! (`docs/performance.md`, decision D13).
//!
//! # Panics
//!
//! None. `apply_keystream` panics only when a cipher runs out of keystream;
//! a 128-bit counter starting at block 0 and seeked to at most block 2⁶⁴ has
//! 2¹²⁸ − 2⁶⁴ blocks left, more than any buffer can hold. Failing closed by a
//! panic would still be preferable to sending plaintext.

use crate::error::LayerError;
use crate::keys::{CacheKeys, ChunkAt, ChunkIv, SessionKey};
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use cachecash_runtime::AccountId;
use core::fmt;
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

/// AES-128 in CTR mode with a 128-bit big-endian counter.
pub type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// The AES block size and the puzzle's block size.
pub const BLOCK_SIZE: usize = 16;

/// Bytes processed per tile by [`TwoLayerCipher`]: small enough for L1.
pub const TILE_SIZE: usize = 4096;

/// A new AES-128-CTR cipher positioned at block 0.
pub(crate) fn aes128_ctr(key: &[u8; 16], iv: &[u8; 16]) -> Aes128Ctr {
    Aes128Ctr::new(&(*key).into(), &(*iv).into())
}

/// One encryption layer of one chunk.
pub struct LayerCipher {
    cipher: Aes128Ctr,
}

impl LayerCipher {
    /// A cipher at block 0 of the keystream for `key` and `iv`.
    pub fn new(key: &SessionKey, iv: &ChunkIv) -> Self {
        Self {
            cipher: aes128_ctr(key.as_bytes(), iv.as_bytes()),
        }
    }

    /// The cipher of the chunk at `at` under `key` (IV derived from both).
    pub fn for_chunk(key: &SessionKey, at: &ChunkAt) -> Self {
        Self::new(key, &key.chunk_iv(at))
    }

    /// XORs the next `buf.len()` keystream bytes into `buf` (encrypts or decrypts).
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.cipher.apply_keystream(buf);
    }

    /// Positions the cipher at the start of 16-byte block `block`.
    pub fn seek_block(&mut self, block: u64) -> Result<(), LayerError> {
        let byte = u128::from(block) * (BLOCK_SIZE as u128);
        self.cipher
            .try_seek(byte)
            .map_err(|_| LayerError::Seek { block })
    }
}

impl fmt::Debug for LayerCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LayerCipher(<keyed>)")
    }
}

/// Encrypts (or decrypts) `data` as the bytes that start at block `block`
/// of the keystream for `key` and `iv`: one block alone, by seeking.
pub fn apply_at_block(
    key: &SessionKey,
    iv: &ChunkIv,
    block: u64,
    data: &mut [u8],
) -> Result<(), LayerError> {
    let mut cipher = LayerCipher::new(key, iv);
    cipher.seek_block(block)?;
    cipher.apply(data);
    Ok(())
}

/// Blocks per tile of [`TwoLayerCipher`].
const TILE_BLOCKS: usize = TILE_SIZE / BLOCK_SIZE;

/// One CTR keystream: the block cipher and the next counter block, as a
/// 128-bit big-endian number (wrapping mod 2¹²⁸, as `Ctr128BE` does).
struct Keystream {
    aes: aes::Aes128Enc,
    counter: u128,
}

impl Keystream {
    fn new(key: &[u8; 16], iv: &[u8; 16]) -> Self {
        Self {
            aes: aes::Aes128Enc::new(&(*key).into()),
            counter: u128::from_be_bytes(*iv),
        }
    }

    /// Writes the next `out.len()` keystream blocks.
    fn fill(&mut self, out: &mut [aes::Block]) {
        for block in out.iter_mut() {
            *block = self.counter.to_be_bytes().into();
            self.counter = self.counter.wrapping_add(1);
        }
        self.aes.encrypt_blocks(out);
    }
}

/// Both layers of one chunk, applied in one pass: what a cache runs.
pub struct TwoLayerCipher {
    inner: Keystream,
    outer: Keystream,
    /// Combined keystream (inner ⊕ outer) of the block the last call ended in.
    partial: [u8; BLOCK_SIZE],
    /// Bytes of `partial` already used; `BLOCK_SIZE` when none are left.
    partial_used: usize,
}

impl TwoLayerCipher {
    /// Both ciphers at block 0.
    pub fn new(
        inner: &SessionKey,
        inner_iv: &ChunkIv,
        outer: &SessionKey,
        outer_iv: &ChunkIv,
    ) -> Self {
        Self {
            inner: Keystream::new(inner.as_bytes(), inner_iv.as_bytes()),
            outer: Keystream::new(outer.as_bytes(), outer_iv.as_bytes()),
            partial: [0; BLOCK_SIZE],
            partial_used: BLOCK_SIZE,
        }
    }

    /// The ciphers of the chunk at `at` under the two session keys.
    pub fn for_chunk(inner: &SessionKey, outer: &SessionKey, at: &ChunkAt) -> Self {
        Self::new(inner, &inner.chunk_iv(at), outer, &outer.chunk_iv(at))
    }

    /// What a cache holding `keys` applies to the chunk at `at` in bundle
    /// `sequence` for `client`.
    pub fn for_cache(keys: &CacheKeys, client: &AccountId, sequence: u64, at: &ChunkAt) -> Self {
        Self::for_chunk(
            &keys.inner_session(client, sequence),
            &keys.outer_session(client, sequence),
            at,
        )
    }

    /// Applies both keystreams to the next `buf.len()` bytes.
    pub fn apply(&mut self, buf: &mut [u8]) {
        // Finish the block the previous call ended in.
        let carried = (BLOCK_SIZE - self.partial_used).min(buf.len());
        let (head, rest) = buf.split_at_mut(carried);
        for (b, k) in head.iter_mut().zip(&self.partial[self.partial_used..]) {
            *b ^= k;
        }
        self.partial_used += carried;

        let whole = rest.len() - rest.len() % BLOCK_SIZE;
        let (body, tail) = rest.split_at_mut(whole);
        let mut ks_in = [aes::Block::default(); TILE_BLOCKS];
        let mut ks_out = [aes::Block::default(); TILE_BLOCKS];
        for tile in body.chunks_mut(TILE_SIZE) {
            let n = tile.len() / BLOCK_SIZE;
            self.inner.fill(&mut ks_in[..n]);
            self.outer.fill(&mut ks_out[..n]);
            for ((data, a), b) in tile.chunks_exact_mut(BLOCK_SIZE).zip(&ks_in).zip(&ks_out) {
                for ((d, x), y) in data.iter_mut().zip(a.iter()).zip(b.iter()) {
                    *d ^= x ^ y;
                }
            }
        }

        if !tail.is_empty() {
            let mut a = [aes::Block::default(); 1];
            let mut b = [aes::Block::default(); 1];
            self.inner.fill(&mut a);
            self.outer.fill(&mut b);
            for ((p, x), y) in self.partial.iter_mut().zip(a[0].iter()).zip(b[0].iter()) {
                *p = x ^ y;
            }
            for (d, k) in tail.iter_mut().zip(&self.partial) {
                *d ^= k;
            }
            self.partial_used = tail.len();
        }
    }
}

impl fmt::Debug for TwoLayerCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TwoLayerCipher(<keyed>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachecash_runtime::Hash;

    fn keys() -> (SessionKey, ChunkIv, SessionKey, ChunkIv) {
        let a = SessionKey::from_bytes([1; 16]);
        let b = SessionKey::from_bytes([2; 16]);
        let at = ChunkAt::new(Hash([7; 32]), Hash([8; 32]), 5);
        (a.clone(), a.chunk_iv(&at), b.clone(), b.chunk_iv(&at))
    }

    #[test]
    fn two_layers_equal_two_single_layers_and_any_split() {
        let (ik, iv, ok, ov) = keys();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();

        let mut one_pass = data.clone();
        TwoLayerCipher::new(&ik, &iv, &ok, &ov).apply(&mut one_pass);

        let mut two_pass = data.clone();
        LayerCipher::new(&ik, &iv).apply(&mut two_pass);
        LayerCipher::new(&ok, &ov).apply(&mut two_pass);
        assert_eq!(one_pass, two_pass);

        let mut pieces = data.clone();
        let mut c = TwoLayerCipher::new(&ik, &iv, &ok, &ov);
        for piece in pieces.chunks_mut(37) {
            c.apply(piece);
        }
        assert_eq!(one_pass, pieces);
    }

    #[test]
    fn two_layers_wrap_the_128_bit_counter_like_ctr128be() {
        let ik = SessionKey::from_bytes([3; 16]);
        let ok = SessionKey::from_bytes([4; 16]);
        let iv = ChunkIv([0xff; 16]);
        let ov = ChunkIv([0xfe; 16]);
        let data = vec![0x33u8; 16 * 300 + 7];
        let mut fused = data.clone();
        let mut c = TwoLayerCipher::new(&ik, &iv, &ok, &ov);
        for piece in fused.chunks_mut(4099) {
            c.apply(piece);
        }
        let mut reference = data;
        aes128_ctr(ik.as_bytes(), iv.as_bytes()).apply_keystream(&mut reference);
        aes128_ctr(ok.as_bytes(), ov.as_bytes()).apply_keystream(&mut reference);
        assert_eq!(fused, reference);
    }

    #[test]
    fn seeking_encrypts_one_block_like_the_stream() {
        let (ik, iv, _, _) = keys();
        let mut stream = [0x5au8; 16 * 9 + 5];
        LayerCipher::new(&ik, &iv).apply(&mut stream);
        for block in 0..10u64 {
            let start = block as usize * 16;
            let end = (start + 16).min(stream.len());
            let mut one = vec![0x5au8; end - start];
            apply_at_block(&ik, &iv, block, &mut one).unwrap();
            assert_eq!(&one[..], &stream[start..end], "block {block}");
        }
    }

    #[test]
    fn ciphers_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<LayerCipher>();
        check::<TwoLayerCipher>();
    }
}

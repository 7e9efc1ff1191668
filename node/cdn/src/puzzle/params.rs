//! The puzzle's parameters: rounds, start range and cover mask, and the
//! rules that reject degenerate ones (see the module above).

use crate::error::PuzzleError;
use crate::layers::BLOCK_SIZE;
use parity_scale_codec::{Decode, Encode};

/// Most chunks in a bundle (and so in a puzzle).
pub const MAX_BUNDLE_CHUNKS: usize = 16;
/// Most rounds.
pub const MAX_ROUNDS: u8 = 32;
/// The deployed number of rounds.
pub const DEFAULT_ROUNDS: u8 = 2;
/// The deployed start range: every block of a 128 KiB chunk.
pub const DEFAULT_START_RANGE: u32 = 8192;

/// Per-request puzzle parameters, carried in the bundle remainder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub struct PuzzleParams {
    /// Rounds `R` over the covered chunks.
    pub rounds: u8,
    /// Start offsets are drawn from `[0, min(start_range, n_0))`.
    pub start_range: u32,
    /// Bit `i` set = bundle position `i` is covered.
    pub covered: u16,
}

impl PuzzleParams {
    /// Parameters covering the first `chunks` positions (all of a bundle of that size).
    pub fn covering_all(rounds: u8, start_range: u32, chunks: usize) -> Self {
        let mask = (1u32 << chunks.min(MAX_BUNDLE_CHUNKS)).wrapping_sub(1);
        Self {
            rounds,
            start_range,
            covered: u16::try_from(mask).unwrap_or(u16::MAX),
        }
    }

    /// Number of covered chunks `k`.
    pub fn covered_count(&self) -> usize {
        self.covered.count_ones() as usize
    }

    /// Whether bundle position `position` is covered.
    pub fn covers(&self, position: usize) -> bool {
        position < MAX_BUNDLE_CHUNKS && (self.covered >> position) & 1 == 1
    }

    /// The covered positions, in bundle order.
    pub fn covered_positions(&self) -> Vec<usize> {
        (0..MAX_BUNDLE_CHUNKS).filter(|&p| self.covers(p)).collect()
    }

    /// Checks the parameters for a bundle of `bundle_chunks` chunks; returns `k`.
    pub fn check(&self, bundle_chunks: usize) -> Result<usize, PuzzleError> {
        if bundle_chunks == 0 || bundle_chunks > MAX_BUNDLE_CHUNKS {
            return Err(PuzzleError::BundleSize {
                got: bundle_chunks,
                max: MAX_BUNDLE_CHUNKS,
            });
        }
        if self.covered == 0 {
            return Err(PuzzleError::NothingCovered);
        }
        if bundle_chunks < MAX_BUNDLE_CHUNKS && self.covered >> bundle_chunks != 0 {
            return Err(PuzzleError::CoverOutOfRange {
                mask: self.covered,
                chunks: bundle_chunks,
            });
        }
        let k = self.covered_count();
        self.check_walk(k)?;
        Ok(k)
    }

    /// Checks rounds and start range for a walk over `k` chunks.
    pub fn check_walk(&self, k: usize) -> Result<(), PuzzleError> {
        let product = usize::from(self.rounds).saturating_mul(k);
        if product < 3 {
            return Err(PuzzleError::Degenerate { product });
        }
        if self.rounds < 2 {
            return Err(PuzzleError::TooFewRounds {
                rounds: self.rounds,
            });
        }
        if self.rounds > MAX_ROUNDS {
            return Err(PuzzleError::TooManyRounds {
                rounds: self.rounds,
                max: MAX_ROUNDS,
            });
        }
        if self.start_range == 0 {
            return Err(PuzzleError::EmptyStartRange);
        }
        Ok(())
    }

    /// The effective start range when the largest covered chunk (where the
    /// walk starts) is `largest_len` bytes long.
    pub fn effective_start_range(&self, largest_len: u64) -> u64 {
        block_count(largest_len).min(u64::from(self.start_range))
    }
}

/// Number of 16-byte blocks in a chunk of `len` bytes (a partial block counts).
pub fn block_count(len: u64) -> u64 {
    len.div_ceil(BLOCK_SIZE as u64)
}

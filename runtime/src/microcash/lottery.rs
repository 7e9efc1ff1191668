//! The draw: a round's winning numbers from its draw block's hash.

use super::*;
use sha2::{Digest, Sha256};

/// The `w` distinct winning numbers in `[0, n)` of `round`, drawn from
/// `seed` (the draw block's hash), in draw order.
pub fn winners(seed: &Hash, escrow: &EscrowId, round: u64, n: u32, w: u32) -> Vec<u32> {
    let want = usize::try_from(w.min(n)).unwrap_or(0);
    let mut out: Vec<u32> = Vec::with_capacity(want);
    if want == 0 {
        return out;
    }
    let n64 = u64::from(n);
    // Largest multiple of n that fits in 2^64; words at or above it are rejected.
    let excess = u64::MAX
        .checked_rem(n64)
        .and_then(|r| r.wrapping_add(1).checked_rem(n64))
        .unwrap_or(0);
    let zone = u64::MAX.saturating_sub(excess);
    let mut seen = std::collections::BTreeSet::new();
    let mut counter: u64 = 0;
    while out.len() < want {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(LOTTERY_DOMAIN)
            .chain_update(seed.as_bytes())
            .chain_update(escrow.as_bytes())
            .chain_update(round.to_le_bytes())
            .chain_update(counter.to_le_bytes())
            .finalize()
            .into();
        counter = counter.wrapping_add(1);
        for word in digest.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(word);
            let v = u64::from_le_bytes(b);
            if v > zone {
                continue;
            }
            let number = v
                .checked_rem(n64)
                .and_then(|x| u32::try_from(x).ok())
                .unwrap_or(0);
            if seen.insert(number) {
                out.push(number);
                if out.len() == want {
                    break;
                }
            }
        }
    }
    out
}

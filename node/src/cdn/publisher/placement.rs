//! Cache placement: keyed Maglev consistent hashing over an escrow's
//! healthy caches.
//!
//! - **Table.** M is the smallest prime ≥ 100·N for N caches (computed, no
//!   fixed list, no cap on N). Each cache's permutation comes from a keyed
//!   hash of its account: `offset = h₀ mod M`, `skip = h₁ mod (M−1) + 1`;
//!   caches in account order take turns claiming their next free slot.
//! - **Placement.** A bundle starting at chunk c of object o starts at
//!   `table[H(key, o ‖ LE64(c)) mod M]` and takes the next distinct
//!   healthy caches in account order.
//! - **Keyed, per publisher.** The key derives from the escrow secret, so a
//!   client cannot predict which caches a bundle lands on and steer its
//!   requests to caches it controls. The prototype used fixed public keys.
//! - A bundle never holds one cache twice ([`place`] returns distinct
//!   caches or fewer than asked).

use cachecash_runtime::{AccountId, Hash};

/// The placement key of an escrow.
pub fn placement_key(escrow_secret: &[u8; 32]) -> Hash {
    Hash::of_parts(&[b"cachecash/placement/v1", escrow_secret])
}

fn keyed(key: &Hash, data: &[u8]) -> u64 {
    let h = Hash::of_parts(&[b"cachecash/placement-hash/v1", &key.0, data]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.0[..8]);
    u64::from_le_bytes(b)
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// The table size for `n` caches: the smallest prime ≥ 100·n (at least 7).
pub fn table_size(n: usize) -> u64 {
    let mut m = (n as u64).saturating_mul(100).max(7);
    while !is_prime(m) {
        m += 1;
    }
    m
}

/// A Maglev lookup table over a set of caches (sorted by account).
#[derive(Debug, Clone)]
pub struct Table {
    caches: Vec<AccountId>,
    lookup: Vec<u32>,
    key: Hash,
}

impl Table {
    /// Builds the table for `caches` under `key`.
    pub fn new(key: Hash, mut caches: Vec<AccountId>) -> Table {
        caches.sort();
        caches.dedup();
        let n = caches.len();
        if n == 0 {
            return Table {
                caches,
                lookup: Vec::new(),
                key,
            };
        }
        let m = table_size(n);
        let perms: Vec<(u64, u64)> = caches
            .iter()
            .map(|c| {
                let offset = keyed(&key, &[b"offset".as_slice(), &c.0].concat()) % m;
                let skip = keyed(&key, &[b"skip".as_slice(), &c.0].concat()) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; n];
        let mut lookup = vec![u32::MAX; m as usize];
        let mut filled = 0u64;
        'fill: loop {
            for (i, (offset, skip)) in perms.iter().enumerate() {
                let mut slot = (offset + next[i] * skip) % m;
                while lookup[slot as usize] != u32::MAX {
                    next[i] += 1;
                    slot = (offset + next[i] * skip) % m;
                }
                lookup[slot as usize] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        Table {
            caches,
            lookup,
            key,
        }
    }

    /// The caches, in account order.
    pub fn caches(&self) -> &[AccountId] {
        &self.caches
    }

    /// Up to `k` distinct caches for the bundle of `object` starting at
    /// `first_chunk`, skipping those `healthy` rejects.
    pub fn place(
        &self,
        object: &Hash,
        first_chunk: u64,
        k: usize,
        healthy: impl Fn(&AccountId) -> bool,
    ) -> Vec<AccountId> {
        let n = self.caches.len();
        if n == 0 || self.lookup.is_empty() {
            return Vec::new();
        }
        let h = keyed(
            &self.key,
            &[&object.0[..], &first_chunk.to_le_bytes()].concat(),
        );
        let start = self.lookup[(h % self.lookup.len() as u64) as usize] as usize;
        let mut out = Vec::with_capacity(k);
        for i in 0..n {
            if out.len() == k {
                break;
            }
            let c = self.caches[(start + i) % n];
            if healthy(&c) && !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caches(n: u8) -> Vec<AccountId> {
        (0..n).map(|i| AccountId([i; 32])).collect()
    }

    #[test]
    fn table_sizes_are_primes_over_a_hundred_per_cache() {
        assert_eq!(table_size(1), 101);
        assert_eq!(table_size(5), 503);
        assert!(is_prime(table_size(1000)) && table_size(1000) >= 100_000);
    }

    #[test]
    fn placement_is_distinct_spread_and_keyed() {
        let t = Table::new(Hash([1; 32]), caches(5));
        let mut used = std::collections::HashSet::new();
        for c in 0..200u64 {
            let p = t.place(&Hash([9; 32]), c * 4, 4, |_| true);
            assert_eq!(p.len(), 4);
            let set: std::collections::HashSet<_> = p.iter().collect();
            assert_eq!(set.len(), 4, "a cache twice in one bundle");
            used.insert(p[0]);
        }
        assert_eq!(used.len(), 5, "every cache starts some bundle");
        let other = Table::new(Hash([2; 32]), caches(5));
        let differs = (0..50u64).any(|c| {
            t.place(&Hash([9; 32]), c, 4, |_| true) != other.place(&Hash([9; 32]), c, 4, |_| true)
        });
        assert!(differs, "placement must depend on the publisher's key");
    }

    #[test]
    fn unhealthy_caches_are_skipped_and_one_failure_moves_little() {
        let t = Table::new(Hash([3; 32]), caches(6));
        let bad = AccountId([2; 32]);
        let mut moved = 0;
        for c in 0..300u64 {
            let all = t.place(&Hash([4; 32]), c, 3, |_| true);
            let some = t.place(&Hash([4; 32]), c, 3, |a| *a != bad);
            assert!(!some.contains(&bad));
            if !all.contains(&bad) && all != some {
                moved += 1;
            }
        }
        assert_eq!(
            moved, 0,
            "bundles without the failed cache keep their caches"
        );
        assert!(t.place(&Hash([4; 32]), 0, 3, |_| false).is_empty());
    }
}

//! The benchmark's arithmetic: percentiles, the Zipf popularity law, phase
//! shares and the soak's growth test. Pure functions, tested below.

use serde::{Deserialize, Serialize};

/// The nearest-rank percentile `p` (0–100) of `v`; 0 for an empty slice.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// p50, p95 and p99 of a sample.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Quantiles {
    /// The quantiles of `v`.
    pub fn of(v: &[f64]) -> Quantiles {
        Quantiles {
            p50: percentile(v, 50.0),
            p95: percentile(v, 95.0),
            p99: percentile(v, 99.0),
        }
    }
}

/// Popularity by Zipf's law: object `i` (0-based) is asked with weight
/// `1 / (i + 1)^s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// `n` objects (at least one) with exponent `s` (0 = uniform).
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (0..n.max(1))
            .map(|i| {
                acc += 1.0 / ((i + 1) as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    /// The object for a uniform draw `u` in [0, 1).
    pub fn pick(&self, u: f64) -> usize {
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

/// Time a fetch spent in each phase, milliseconds, summed over its
/// bundles (the 2021 experiment's breakdown).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Phases {
    /// Session open to the first bundle from the publisher.
    pub publisher: f64,
    /// Per bundle, the slowest cache's request to last byte.
    pub transfer: f64,
    /// Outer and inner layer decryption.
    pub decryption: f64,
    /// Puzzle solving.
    pub puzzle: f64,
    /// Manifest verification of the plaintext.
    pub verification: f64,
}

impl Phases {
    /// Adds another fetch's phases.
    pub fn add(&mut self, o: &Phases) {
        self.publisher += o.publisher;
        self.transfer += o.transfer;
        self.decryption += o.decryption;
        self.puzzle += o.puzzle;
        self.verification += o.verification;
    }

    fn total(&self) -> f64 {
        self.publisher + self.transfer + self.decryption + self.puzzle + self.verification
    }

    /// Each phase as a share of their sum (0 when nothing was measured).
    pub fn shares(&self) -> Phases {
        let t = self.total();
        if t <= 0.0 {
            return Phases::default();
        }
        Phases {
            publisher: self.publisher / t,
            transfer: self.transfer / t,
            decryption: self.decryption / t,
            puzzle: self.puzzle / t,
            verification: self.verification / t,
        }
    }

    /// Decryption + puzzle + verification as a share of the sum.
    pub fn crypto_share(&self) -> f64 {
        let t = self.total();
        if t <= 0.0 {
            0.0
        } else {
            (self.decryption + self.puzzle + self.verification) / t
        }
    }
}

/// Least-squares slope of `y` over `x`; 0 with fewer than two distinct `x`.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 { 0.0 } else { sxy / sxx }
}

/// Whether a series sampled over a soak grows without bound: the linear
/// fit over its second half, carried over the whole soak, would add more
/// than `tolerance` (a share of its mean, at least `floor` units).
/// Returns the fitted growth over the soak and the verdict.
pub fn grows(points: &[(f64, f64)], tolerance: f64, floor: f64) -> (f64, bool) {
    let half = &points[points.len() / 2..];
    let span = match (points.first(), points.last()) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => 0.0,
    };
    let growth = slope(half) * span;
    let mean = half.iter().map(|p| p.1).sum::<f64>() / half.len().max(1) as f64;
    (growth, growth > (mean * tolerance).max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn zipf_picks_follow_the_law() {
        let z = Zipf::new(4, 1.0);
        // Weights 1, 1/2, 1/3, 1/4 over 25/12.
        let mut counts = [0usize; 4];
        let n = 120_000;
        for i in 0..n {
            counts[z.pick((i as f64 + 0.5) / n as f64)] += 1;
        }
        let expect = [12.0 / 25.0, 6.0 / 25.0, 4.0 / 25.0, 3.0 / 25.0];
        for (c, e) in counts.iter().zip(expect) {
            assert!((*c as f64 / n as f64 - e).abs() < 0.001, "{counts:?}");
        }
        // Exponent 0 is uniform; one object always answers 0.
        let u = Zipf::new(3, 0.0);
        assert_eq!([u.pick(0.1), u.pick(0.5), u.pick(0.9)], [0, 1, 2]);
        assert_eq!(Zipf::new(1, 1.2).pick(0.999_999), 0);
        assert_eq!(Zipf::new(0, 1.0).pick(0.5), 0);
    }

    #[test]
    fn phase_shares_sum_to_one_and_crypto_is_three_of_them() {
        let p = Phases {
            publisher: 10.0,
            transfer: 60.0,
            decryption: 15.0,
            puzzle: 10.0,
            verification: 5.0,
        };
        let s = p.shares();
        let sum = s.publisher + s.transfer + s.decryption + s.puzzle + s.verification;
        assert!((sum - 1.0).abs() < 1e-12);
        assert!((p.crypto_share() - 0.30).abs() < 1e-12);
        assert_eq!(Phases::default().crypto_share(), 0.0);
        assert_eq!(Phases::default().shares(), Phases::default());
    }

    #[test]
    fn a_flat_series_does_not_grow_and_a_leak_does() {
        let flat: Vec<(f64, f64)> = (0..20)
            .map(|i| (f64::from(i) * 30.0, 100.0 + f64::from(i % 3)))
            .collect();
        assert!(!grows(&flat, 0.05, 4.0).1);
        let leak: Vec<(f64, f64)> = (0..20)
            .map(|i| (f64::from(i) * 30.0, 100.0 + 5.0 * f64::from(i)))
            .collect();
        let (growth, bad) = grows(&leak, 0.05, 4.0);
        assert!(bad);
        assert!((growth - 5.0 * 19.0).abs() < 1e-9);
        // A leak that stopped (growth in the first half only) passes.
        let settled: Vec<(f64, f64)> = (0..20)
            .map(|i| (f64::from(i) * 30.0, 100.0 + 5.0 * f64::from(i.min(8))))
            .collect();
        assert!(!grows(&settled, 0.05, 4.0).1);
        assert_eq!(slope(&[(1.0, 2.0)]), 0.0);
    }
}

//! What the swarm task keeps per connected peer: its address and
//! direction, its last status, rate buckets for its requests and gossip,
//! strikes, and the sync back-off.

use super::*;

/// A token bucket: `rate` per second, bursts of twice that.
#[derive(Debug)]
pub(super) struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    pub(super) fn new(rate: u32) -> Bucket {
        Bucket {
            tokens: f64::from(rate) * 2.0,
            rate: f64::from(rate),
            last: Instant::now(),
        }
    }

    pub(super) fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate * 2.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
pub(super) struct Peer {
    pub(super) address: Multiaddr,
    pub(super) inbound: bool,
    pub(super) status: Option<Status>,
    pub(super) status_pending: bool,
    pub(super) status_at: Instant,
    pub(super) agent: Option<String>,
    pub(super) requests: Bucket,
    pub(super) gossip: Bucket,
    pub(super) strikes: u32,
    /// Not asked for sync data before this (it refused, failed, or made no
    /// progress).
    pub(super) retry_after: Instant,
    /// Consecutive requests that made no progress.
    pub(super) stalls: u32,
    /// Consecutive header rounds that did not deliver the work its status
    /// claimed.
    pub(super) false_claims: u32,
}

impl Peer {
    pub(super) fn available(&self, now: Instant) -> bool {
        self.retry_after <= now
    }
}

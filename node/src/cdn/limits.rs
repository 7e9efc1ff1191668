//! Per-peer limits of the CDN services: stream slots and request rates.
//!
//! # Stream slots
//!
//! A service spawns a task per accepted stream, and a stream may wait for
//! its first message up to the I/O time-out. Without a per-peer bound one
//! peer could hold every task and every global slot (the publisher's
//! sessions, the cache's serving capacity) by opening streams and sending
//! nothing. [`PeerSlots::try_enter`] admits a stream only while its peer
//! holds fewer than the bound, and the returned [`Slot`] gives the place
//! back when dropped, whatever way the stream's task ends. A stream past
//! the bound is dropped at once (the peer sees it reset), so a flood costs
//! the service one map lookup per stream.
//!
//! Invariant: the map holds exactly the peers with at least one live slot,
//! so it is bounded by the connected peers, never by history.
//!
//! # Request rates
//!
//! [`RateLimits`] keeps a token bucket per peer (`rate` requests per
//! second, bursts of twice that). A request past the rate is refused with a
//! reply that says so, and a peer refused [`STRIKES_BEFORE_BAN`] times
//! without ever letting its bucket refill is a flooder, not a busy client:
//! the service bans it. A peer whose bucket refills completely starts
//! counting afresh. The table holds at most
//! [`MAX_TRACKED_PEERS`] peers; when full it forgets the peers whose bucket
//! has refilled (they carry no state worth keeping), and if none has, the
//! newcomer is refused until one does, so a Sybil swarm cannot grow it.

use libp2p::PeerId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

/// Counts of live streams per peer, each at most `max`.
#[derive(Debug)]
pub struct PeerSlots {
    max: usize,
    held: Mutex<HashMap<PeerId, usize>>,
}

/// One admitted stream; gives its place back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<PeerSlots>,
    peer: PeerId,
}

impl PeerSlots {
    /// Slots of at most `max` streams per peer.
    pub fn new(max: usize) -> Arc<PeerSlots> {
        Arc::new(PeerSlots {
            max,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The bound per peer.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for a stream of `peer`, or `None` when it holds its share.
    pub fn try_enter(self: &Arc<Self>, peer: PeerId) -> Option<Slot> {
        let mut held = self.held.lock();
        let n = held.entry(peer).or_insert(0);
        if *n >= self.max {
            if *n == 0 {
                held.remove(&peer);
            }
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: self.clone(),
            peer,
        })
    }

    /// Streams `peer` holds now.
    pub fn held(&self, peer: &PeerId) -> usize {
        self.held.lock().get(peer).copied().unwrap_or(0)
    }

    /// Peers holding at least one stream.
    pub fn peers(&self) -> usize {
        self.held.lock().len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock();
        if let Some(n) = held.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.peer);
            }
        }
    }
}

/// How every refusal for a peer's rate begins, so the peer's software can
/// tell it from a final refusal and retry after a back-off.
pub const RATE_LIMITED: &str = "rate limit:";
/// Refusals after which a peer counts as a flooder.
pub const STRIKES_BEFORE_BAN: u32 = 200;
/// Most peers a [`RateLimits`] table tracks.
pub const MAX_TRACKED_PEERS: usize = 4096;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    strikes: u32,
}

/// Per-peer token buckets.
#[derive(Debug)]
pub struct RateLimits {
    rate: f64,
    peers: Mutex<HashMap<PeerId, Bucket>>,
}

/// What [`RateLimits::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate.
    Allowed,
    /// Past the rate: refuse this request.
    Limited,
    /// Past the rate [`STRIKES_BEFORE_BAN`] times: ban the peer.
    Flooding,
}

impl RateLimits {
    /// `rate` requests per second per peer (at least one).
    pub fn new(rate: u32) -> RateLimits {
        RateLimits {
            rate: f64::from(rate.max(1)),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// The rate per peer, per second.
    pub fn rate(&self) -> u32 {
        self.rate as u32
    }

    /// Takes a token of `peer` now.
    pub fn check(&self, peer: PeerId) -> Verdict {
        self.check_at(peer, Instant::now())
    }

    fn check_at(&self, peer: PeerId, now: Instant) -> Verdict {
        let burst = self.rate * 2.0;
        let mut peers = self.peers.lock();
        if !peers.contains_key(&peer) && peers.len() >= MAX_TRACKED_PEERS {
            let rate = self.rate;
            peers.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
            if peers.len() >= MAX_TRACKED_PEERS {
                return Verdict::Limited;
            }
        }
        let b = peers.entry(peer).or_insert(Bucket {
            tokens: burst,
            last: now,
            strikes: 0,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * self.rate).min(burst);
        b.last = now;
        if b.tokens >= burst {
            // Quiet long enough to refill: earlier refusals were a burst,
            // not a flood.
            b.strikes = 0;
        }
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Verdict::Allowed;
        }
        b.strikes = b.strikes.saturating_add(1);
        if b.strikes >= STRIKES_BEFORE_BAN {
            peers.remove(&peer);
            Verdict::Flooding
        } else {
            Verdict::Limited
        }
    }

    /// Peers tracked now.
    pub fn tracked(&self) -> usize {
        self.peers.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_past_its_rate_is_limited_then_flagged_and_others_are_unaffected() {
        let limits = RateLimits::new(10);
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        // A burst of twice the rate passes, the next is refused.
        for _ in 0..20 {
            assert_eq!(limits.check_at(a, t0), Verdict::Allowed);
        }
        assert_eq!(limits.check_at(a, t0), Verdict::Limited);
        assert_eq!(
            limits.check_at(b, t0),
            Verdict::Allowed,
            "b has its own bucket"
        );
        // A tenth of a second refills one token.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(limits.check_at(a, t1), Verdict::Allowed);
        // Refused STRIKES_BEFORE_BAN times in all (one refusal above): a
        // flooder.
        let mut verdicts = Vec::new();
        for _ in 1..STRIKES_BEFORE_BAN {
            verdicts.push(limits.check_at(a, t1));
        }
        assert_eq!(verdicts.last(), Some(&Verdict::Flooding));
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Limited).count(),
            STRIKES_BEFORE_BAN as usize - 2
        );
    }

    #[test]
    fn refusals_are_forgiven_once_the_bucket_refills() {
        let limits = RateLimits::new(10);
        let a = PeerId::random();
        let mut t = Instant::now();
        // Bursts past the rate, each followed by a quiet spell: refused
        // every time, never flagged as a flood.
        for _ in 0..3 * STRIKES_BEFORE_BAN {
            for _ in 0..20 {
                assert_eq!(limits.check_at(a, t), Verdict::Allowed);
            }
            assert_eq!(limits.check_at(a, t), Verdict::Limited);
            t += Duration::from_secs(3);
        }
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_only_refilled_peers() {
        let limits = RateLimits::new(1);
        let t0 = Instant::now();
        let busy: Vec<PeerId> = (0..MAX_TRACKED_PEERS).map(|_| PeerId::random()).collect();
        for p in &busy {
            assert_eq!(limits.check_at(*p, t0), Verdict::Allowed);
        }
        // Full of peers with spent tokens: a newcomer waits.
        assert_eq!(limits.check_at(PeerId::random(), t0), Verdict::Limited);
        assert_eq!(limits.tracked(), MAX_TRACKED_PEERS);
        // Once they refilled they are forgotten and the newcomer is served.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(limits.check_at(PeerId::random(), later), Verdict::Allowed);
        assert_eq!(limits.tracked(), 1);
    }

    #[test]
    fn a_peer_holds_at_most_its_share_and_dropped_slots_return() {
        let slots = PeerSlots::new(2);
        let (a, b) = (PeerId::random(), PeerId::random());
        let a1 = slots.try_enter(a).unwrap();
        let a2 = slots.try_enter(a).unwrap();
        assert!(slots.try_enter(a).is_none(), "a third stream of a");
        // Another peer is not affected by a's share.
        let b1 = slots.try_enter(b).unwrap();
        assert_eq!((slots.held(&a), slots.held(&b)), (2, 1));
        drop(a1);
        let _a3 = slots.try_enter(a).unwrap();
        drop(a2);
        drop(b1);
        assert_eq!(slots.held(&b), 0);
        assert_eq!(slots.peers(), 1, "only peers with live slots are kept");
    }

    #[test]
    fn a_zero_bound_admits_nothing_and_keeps_no_entry() {
        let slots = PeerSlots::new(0);
        assert!(slots.try_enter(PeerId::random()).is_none());
        assert_eq!(slots.peers(), 0);
    }
}

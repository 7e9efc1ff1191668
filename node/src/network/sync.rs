//! Headers-first sync: the download state machine.
//!
//! A round runs against the peer with the most cumulative work:
//! 1. **Headers.** Ask it for up to [`MAX_HEADERS`] headers after our block
//!    locator. Check them before fetching anything else: they attach to a
//!    block we have, are consecutive and linked, each meets its own target,
//!    each target is the one the retarget rule requires, and each
//!    timestamp is above the median of the eleven before it and within our
//!    clock's drift limit ([`verify_headers`]). A peer that sends headers
//!    failing these checks is banned (a timestamp ahead of our clock only
//!    defers the round). The batch's cumulative work is summed: a batch
//!    that ends at the peer's head (shorter than asked) with less work than
//!    the peer's status claimed proves the claim false, and the peer is
//!    banned before any body is downloaded.
//! 2. **Bodies.** Request the blocks by hash in batches of
//!    [`BODY_BATCH`], spread over every peer whose reported chain reaches
//!    that height (at most [`MAX_INFLIGHT_PER_PEER`] requests per peer and
//!    [`MAX_INFLIGHT`] in all), while downloaded-but-unimported blocks stay
//!    under [`MAX_READY_BYTES`] (a request that fills the gap below them is
//!    always allowed, so the buffer drains). A response must be a prefix of the hashes
//!    asked for, each block hashing to its slot; missing blocks are asked
//!    of another peer. If the round's own header peer refuses or lacks the
//!    bodies of its headers, the round is abandoned and that peer backed
//!    off, so a peer serving headers without end (and no body) cannot hold
//!    the round against honest peers.
//! 3. **Import** in height order through the import pipeline, which checks
//!    everything again (signatures, execution, state root). An invalid block
//!    bans the peer that served it and restarts the round.
//!
//! When a round is fully imported the next one starts from the new head, so
//! a node thousands of blocks behind advances 2,000 blocks a round. Nothing
//! is kept on disk but imported blocks: after a restart, sync resumes from
//! the stored head.

use super::protocol::{MAX_BLOCKS, MAX_HEADERS};
use crate::chain::Chain;
use cachecash_runtime::consensus::{self, RetargetInput};
use cachecash_runtime::{Hash, Header};
use libp2p::PeerId;
use libp2p::request_response::OutboundRequestId;
use primitive_types::U256;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Blocks per body request.
pub const BODY_BATCH: usize = 64;
/// Body requests in flight in all.
pub const MAX_INFLIGHT: usize = 8;
/// Body requests in flight per peer.
pub const MAX_INFLIGHT_PER_PEER: usize = 2;
/// Most bytes of downloaded blocks waiting for import.
pub const MAX_READY_BYTES: usize = 64 * 1024 * 1024;
/// Blocks per import job.
pub const IMPORT_BATCH: usize = 64;
/// Import jobs in flight.
pub const MAX_IMPORT_JOBS: usize = 2;

const _: () = assert!(BODY_BATCH <= MAX_BLOCKS as usize);

/// Why a header batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The first header's parent is unknown.
    #[error("headers start at #{number} on unknown parent {parent}, which is not in our locator")]
    Unattached {
        /// First header's number.
        number: u64,
        /// Its parent.
        parent: Hash,
    },
    /// Not consecutive or not linked.
    #[error("header #{number} does not follow the previous header")]
    NotLinked {
        /// The header's number.
        number: u64,
    },
    /// The hash does not meet the header's target.
    #[error("header #{number} ({hash}) does not meet its own proof-of-work target")]
    BadPow {
        /// Number.
        number: u64,
        /// Hash.
        hash: Hash,
    },
    /// The target is not the one the retarget rule requires.
    #[error("header #{number} carries target {got}, the chain requires {expected}")]
    WrongTarget {
        /// Number.
        number: u64,
        /// Carried.
        got: String,
        /// Required.
        expected: String,
    },
    /// A timestamp not above the median of the eleven before it.
    #[error("header #{number} has timestamp {timestamp}, not above the median time past {median}")]
    TooOld {
        /// Number.
        number: u64,
        /// Its timestamp.
        timestamp: u64,
        /// The median of its ancestors.
        median: u64,
    },
    /// A timestamp beyond our clock's drift limit: clock skew, not proof of
    /// misbehaviour; the round is retried later.
    #[error("header #{number} is {ahead_ms} ms ahead of this node's clock; check the clocks")]
    InFuture {
        /// Number.
        number: u64,
        /// How far ahead of the limit.
        ahead_ms: u64,
    },
    /// More headers than asked for.
    #[error("{got} headers sent, at most {max} were asked for")]
    TooMany {
        /// Sent.
        got: usize,
        /// Asked.
        max: usize,
    },
    /// Storage failed while checking.
    #[error("storage: {0}")]
    Store(String),
}

/// A checked header batch.
#[derive(Debug, Clone)]
pub struct VerifiedHeaders {
    /// The headers not yet stored, in order.
    pub new: Vec<Header>,
    /// Cumulative work at the last linked header: what the batch proves the
    /// peer's chain holds.
    pub tip_work: U256,
    /// Every header linked (the server's chain did not move while it read
    /// them), so a batch shorter than asked ends at the server's head.
    pub complete: bool,
}

/// Checks a header batch against the chain (see the module docs): linkage,
/// proof of work, the required target, and the timestamp rules
/// (median-time-past, the future-drift limit at `now`).
pub fn verify_headers(
    chain: &Chain,
    headers: Vec<Header>,
    now: u64,
) -> Result<VerifiedHeaders, HeaderError> {
    if headers.len() > MAX_HEADERS as usize {
        return Err(HeaderError::TooMany {
            got: headers.len(),
            max: MAX_HEADERS as usize,
        });
    }
    let Some(first) = headers.first() else {
        return Ok(VerifiedHeaders {
            new: Vec::new(),
            tip_work: U256::zero(),
            complete: true,
        });
    };
    let store = |e: crate::storage::StoreError| HeaderError::Store(e.to_string());
    let (mut prev, mut work) = chain
        .header_with_work(&first.parent_hash)
        .map_err(store)?
        .ok_or(HeaderError::Unattached {
            number: first.number,
            parent: first.parent_hash,
        })?;
    let mut window: VecDeque<u64> = chain.recent_timestamps(&prev).map_err(store)?.into();
    let drift = chain.params().max_future_drift_ms;
    let mut complete = true;
    // ASERT anchors on block 1. Below a fork at genesis it is the branch's
    // own first header; otherwise it is block 1 of the parent's branch.
    let anchor = if prev.number == 0 {
        first.timestamp
    } else {
        chain.anchor_timestamp(&prev).map_err(store)?
    };
    let mut prev_hash = first.parent_hash;
    let mut out = Vec::with_capacity(headers.len());
    for (i, h) in headers.into_iter().enumerate() {
        if h.parent_hash != prev_hash && i > 0 {
            // The server's chain reorganised while it read the headers:
            // keep the linked prefix.
            complete = false;
            break;
        }
        if Some(h.number) != prev.number.checked_add(1) {
            return Err(HeaderError::NotLinked { number: h.number });
        }
        let hash = h.hash();
        if !h.target.is_met_by(&hash) {
            return Err(HeaderError::BadPow {
                number: h.number,
                hash,
            });
        }
        let expected = consensus::next_target(
            chain.params(),
            RetargetInput {
                parent_number: prev.number,
                parent_timestamp: prev.timestamp,
                anchor_timestamp: anchor,
            },
        );
        if h.target != expected {
            return Err(HeaderError::WrongTarget {
                number: h.number,
                got: h.target.to_hex(),
                expected: expected.to_hex(),
            });
        }
        let median = consensus::median_time_past(window.make_contiguous());
        if h.timestamp <= median {
            return Err(HeaderError::TooOld {
                number: h.number,
                timestamp: h.timestamp,
                median,
            });
        }
        if h.timestamp > now.saturating_add(drift) {
            return Err(HeaderError::InFuture {
                number: h.number,
                ahead_ms: h.timestamp - now.saturating_add(drift),
            });
        }
        window.push_back(h.timestamp);
        if window.len() > consensus::MEDIAN_TIME_SPAN {
            window.pop_front();
        }
        work = work.saturating_add(h.target.work());
        let known = chain.header(&hash).map_err(store)?.is_some();
        prev_hash = hash;
        prev = h.clone();
        if !known {
            out.push(h);
        }
    }
    Ok(VerifiedHeaders {
        new: out,
        tip_work: work,
        complete,
    })
}

/// A downloaded block waiting for import.
#[derive(Debug)]
pub struct Ready {
    /// Its hash.
    pub hash: Hash,
    /// The peer that served it (banned if it is invalid).
    pub peer: PeerId,
    /// Encoded block.
    pub bytes: Vec<u8>,
}

/// The state of the current round.
#[derive(Debug, Default)]
pub struct SyncState {
    /// The outstanding header request and the peer it went to.
    pub headers_request: Option<(OutboundRequestId, PeerId)>,
    /// A header batch from this peer is being verified on the blocking
    /// pool; its result is used only while this is still set.
    pub verifying_headers: Option<PeerId>,
    /// Blocks (height, hash) still to request, in height order.
    pub queue: VecDeque<(u64, Hash)>,
    /// Body requests in flight.
    pub inflight: HashMap<OutboundRequestId, (PeerId, Vec<(u64, Hash)>)>,
    /// Downloaded blocks by height.
    pub ready: BTreeMap<u64, Ready>,
    /// Bytes in `ready`.
    pub ready_bytes: usize,
    /// Blocks handed to the importer and not yet reported.
    pub importing: usize,
    /// Import jobs in flight, oldest first: (blocks, bytes).
    pub import_jobs: VecDeque<(usize, usize)>,
    /// Next height to hand to the importer.
    pub next_import: u64,
    /// Highest height of the round.
    pub round_end: u64,
    /// Height when the node started syncing (for `system_syncState`).
    pub starting_block: u64,
    /// The peer that served this round's headers.
    pub round_peer: Option<PeerId>,
    /// Follow-up header requests this round (all-known answers).
    pub reasks: u32,
}

impl SyncState {
    /// Whether a round is in progress.
    pub fn active(&self) -> bool {
        self.headers_request.is_some()
            || self.verifying_headers.is_some()
            || !self.queue.is_empty()
            || !self.inflight.is_empty()
            || !self.ready.is_empty()
            || self.importing > 0
    }

    /// Starts the body phase for verified `headers`.
    pub fn begin_bodies(&mut self, headers: &[Header]) {
        self.queue.clear();
        self.ready.clear();
        self.ready_bytes = 0;
        for h in headers {
            self.queue.push_back((h.number, h.hash()));
        }
        if let (Some(first), Some(last)) = (headers.first(), headers.last()) {
            self.next_import = first.number;
            self.round_end = last.number;
        }
    }

    /// Abandons the round (invalid data, or the chain moved under it).
    /// Import jobs already handed over finish and are reported.
    pub fn reset(&mut self) {
        self.headers_request = None;
        self.verifying_headers = None;
        self.queue.clear();
        self.inflight.clear();
        self.ready.clear();
        self.ready_bytes = 0;
    }

    /// Records an import job of `blocks` blocks and `bytes` bytes handed to
    /// the importer.
    pub fn job_started(&mut self, blocks: usize, bytes: usize) {
        self.importing = self.importing.saturating_add(blocks);
        self.import_jobs.push_back((blocks, bytes));
    }

    /// Records the importer's report on the oldest job.
    pub fn job_finished(&mut self) {
        if let Some((n, _)) = self.import_jobs.pop_front() {
            self.importing = self.importing.saturating_sub(n);
        }
    }

    /// Body requests in flight to `peer`.
    pub fn inflight_to(&self, peer: &PeerId) -> usize {
        self.inflight.values().filter(|(p, _)| p == peer).count()
    }

    /// Bytes downloaded and not yet imported (waiting, or in import jobs).
    pub fn buffered_bytes(&self) -> usize {
        self.import_jobs
            .iter()
            .fold(self.ready_bytes, |acc, (_, b)| acc.saturating_add(*b))
    }

    /// Takes the next batch to request, if the bounds allow one. A batch
    /// that fills the gap below the downloaded blocks is always allowed
    /// (within the in-flight bound), so the buffer can always drain.
    pub fn next_batch(&mut self) -> Option<Vec<(u64, Hash)>> {
        let front = self.queue.front()?.0;
        let fills_gap = self
            .ready
            .keys()
            .next()
            .is_some_and(|&lowest| front < lowest);
        if self.inflight.len() >= MAX_INFLIGHT
            || (self.buffered_bytes() >= MAX_READY_BYTES && !fills_gap)
        {
            return None;
        }
        let n = self.queue.len().min(BODY_BATCH);
        Some(self.queue.drain(..n).collect())
    }

    /// Puts blocks back at the front of the queue (a failed or short
    /// response), keeping height order.
    pub fn requeue(&mut self, mut blocks: Vec<(u64, Hash)>) {
        blocks.retain(|(n, _)| !self.ready.contains_key(n));
        for b in blocks.into_iter().rev() {
            self.queue.push_front(b);
        }
        self.queue.make_contiguous().sort_by_key(|(n, _)| *n);
    }

    /// Records a downloaded block.
    pub fn add_ready(&mut self, number: u64, ready: Ready) {
        self.ready_bytes = self.ready_bytes.saturating_add(ready.bytes.len());
        if let Some(old) = self.ready.insert(number, ready) {
            self.ready_bytes = self.ready_bytes.saturating_sub(old.bytes.len());
        }
    }

    /// Takes the next blocks in height order that are downloaded, up to
    /// [`IMPORT_BATCH`].
    pub fn take_importable(&mut self) -> Vec<Ready> {
        let mut out = Vec::new();
        while out.len() < IMPORT_BATCH {
            let Some(r) = self.ready.remove(&self.next_import) else {
                break;
            };
            self.ready_bytes = self.ready_bytes.saturating_sub(r.bytes.len());
            self.next_import = self.next_import.saturating_add(1);
            out.push(r);
        }
        out
    }

    /// Puts blocks taken by [`SyncState::take_importable`] back (the
    /// importer was busy).
    pub fn untake(&mut self, blocks: Vec<Ready>) {
        if !blocks.is_empty() {
            let start = self.next_import.saturating_sub(blocks.len() as u64);
            self.next_import = start;
            for (i, r) in blocks.into_iter().enumerate() {
                self.add_ready(start.saturating_add(i as u64), r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u64) -> Hash {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&n.to_be_bytes());
        Hash(h)
    }

    fn ready(n: u64) -> Ready {
        Ready {
            hash: hash(n),
            peer: PeerId::random(),
            bytes: vec![0; 10],
        }
    }

    #[test]
    fn batches_respect_the_batch_size_and_the_inflight_bound() {
        let mut s = SyncState::default();
        for n in 1..=1000 {
            s.queue.push_back((n, hash(n)));
        }
        let b = s.next_batch().unwrap();
        assert_eq!(b.len(), BODY_BATCH);
        assert_eq!(b[0].0, 1);
        for id in request_ids(MAX_INFLIGHT) {
            s.inflight.insert(id, (PeerId::random(), Vec::new()));
        }
        assert!(s.next_batch().is_none());
    }

    #[test]
    fn requeued_blocks_come_back_first_in_height_order() {
        let mut s = SyncState::default();
        for n in 1..=200 {
            s.queue.push_back((n, hash(n)));
        }
        let a = s.next_batch().unwrap();
        let b = s.next_batch().unwrap();
        s.requeue(b.clone());
        s.requeue(a.clone());
        let again = s.next_batch().unwrap();
        assert_eq!(again, a);
        assert_eq!(s.next_batch().unwrap(), b);
    }

    #[test]
    fn import_takes_only_the_contiguous_prefix() {
        let mut s = SyncState {
            next_import: 5,
            ..Default::default()
        };
        s.add_ready(6, ready(6));
        assert!(s.take_importable().is_empty());
        s.add_ready(5, ready(5));
        s.add_ready(8, ready(8));
        let taken = s.take_importable();
        assert_eq!(
            taken.iter().map(|r| r.hash).collect::<Vec<_>>(),
            vec![hash(5), hash(6)]
        );
        assert_eq!(s.next_import, 7);
        assert_eq!(s.ready_bytes, 10);
        s.untake(taken);
        assert_eq!(s.next_import, 5);
        assert_eq!(s.ready.len(), 3);
        assert_eq!(s.ready_bytes, 30);
    }

    fn request_ids(n: usize) -> Vec<OutboundRequestId> {
        // OutboundRequestId has no public constructor; take real ones from
        // a behaviour that is never polled.
        use super::super::protocol::{Incoming, SyncCodec, SyncRequest, sync_protocol};
        use libp2p::request_response::{self, ProtocolSupport};
        let mut b = request_response::Behaviour::<SyncCodec>::new(
            [(sync_protocol(&Hash([0; 32])), ProtocolSupport::Full)],
            request_response::Config::default(),
        );
        (0..n)
            .map(|_| {
                b.send_request(
                    &PeerId::random(),
                    Incoming::Request(SyncRequest::Blocks { hashes: Vec::new() }),
                )
            })
            .collect()
    }
}

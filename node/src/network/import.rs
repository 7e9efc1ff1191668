//! The import queue between the swarm task and the chain.
//!
//! Verifying a block (signatures, execution, state root) or a transaction
//! takes real CPU time, so the swarm task never does it: it hands jobs to
//! this task through a [`JobQueue`] (`try_send`; a full queue means the
//! gossip message is ignored, and sync simply waits), and the task runs
//! each on the blocking pool and reports the verdict back. The swarm task
//! then tells gossipsub whether to forward the message, and bans the peer
//! if the data was invalid.
//!
//! # Bounds and priority
//!
//! The queue has two lanes, each bounded by count and by encoded bytes:
//! blocks (sync batches and gossiped blocks, [`MAX_QUEUED_BLOCK_BYTES`])
//! and gossiped transactions ([`MAX_QUEUED_TX_BYTES`]). A count bound
//! alone would let 256 maximal blocks hold 4 GiB. The importer always
//! takes a waiting block job first, so a flood of transactions never
//! delays a block or the sync that keeps the node on the best chain.

use crate::chain::{BlockOrigin, Chain, ImportError, ImportOutcome};
use crate::mempool::{Mempool, PoolError};
use cachecash_runtime::{BlockError, Hash, SignedTransaction, TxError};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// Most jobs waiting in each lane.
pub const JOB_QUEUE: usize = 256;

/// Most encoded bytes of blocks waiting for import (one job larger than
/// this is still taken when the lane is empty).
pub const MAX_QUEUED_BLOCK_BYTES: usize = 64 * 1024 * 1024;

/// Most encoded bytes of gossiped transactions waiting for admission.
pub const MAX_QUEUED_TX_BYTES: usize = 8 * 1024 * 1024;

/// The sending side of the import queue (see the module docs).
#[derive(Debug, Clone)]
pub struct JobQueue {
    blocks: mpsc::Sender<Job>,
    transactions: mpsc::Sender<Job>,
    bytes: Arc<[AtomicUsize; 2]>,
}

/// The receiving side of the import queue.
#[derive(Debug)]
pub struct JobReceiver {
    blocks: mpsc::Receiver<Job>,
    transactions: mpsc::Receiver<Job>,
    bytes: Arc<[AtomicUsize; 2]>,
}

/// A new, empty import queue.
pub fn job_queue() -> (JobQueue, JobReceiver) {
    let (blocks_tx, blocks_rx) = mpsc::channel(JOB_QUEUE);
    let (txs_tx, txs_rx) = mpsc::channel(JOB_QUEUE);
    let bytes = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    (
        JobQueue {
            blocks: blocks_tx,
            transactions: txs_tx,
            bytes: bytes.clone(),
        },
        JobReceiver {
            blocks: blocks_rx,
            transactions: txs_rx,
            bytes,
        },
    )
}

impl Job {
    /// Lane 0 (blocks) or 1 (transactions).
    fn lane(&self) -> usize {
        match self {
            Job::Sync(_) | Job::Block { .. } => 0,
            Job::Transaction { .. } => 1,
        }
    }

    /// Encoded bytes the job holds.
    pub fn bytes(&self) -> usize {
        match self {
            Job::Sync(blocks) => blocks.iter().map(|r| r.bytes.len()).sum(),
            Job::Block { bytes, .. } | Job::Transaction { bytes, .. } => bytes.len(),
        }
    }
}

impl JobQueue {
    /// Queues `job` if its lane has room in count and bytes; otherwise
    /// hands it back.
    pub fn try_send(&self, job: Job) -> Result<(), Box<Job>> {
        let lane = job.lane();
        let limit = if lane == 0 {
            MAX_QUEUED_BLOCK_BYTES
        } else {
            MAX_QUEUED_TX_BYTES
        };
        let size = job.bytes();
        let counter = &self.bytes[lane];
        let reserved = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
            let after = queued.saturating_add(size);
            (queued == 0 || after <= limit).then_some(after)
        });
        if reserved.is_err() {
            return Err(Box::new(job));
        }
        let sender = if lane == 0 {
            &self.blocks
        } else {
            &self.transactions
        };
        sender.try_send(job).map_err(|e| {
            counter.fetch_sub(size, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => {
                    Box::new(job)
                }
            }
        })
    }

    /// Bytes waiting in the block lane and the transaction lane.
    pub fn queued_bytes(&self) -> (usize, usize) {
        (
            self.bytes[0].load(Ordering::Acquire),
            self.bytes[1].load(Ordering::Acquire),
        )
    }
}

impl JobReceiver {
    /// The next job: a waiting block job before any transaction. `None`
    /// once both lanes are closed and empty.
    pub async fn recv(&mut self) -> Option<Job> {
        let job = tokio::select! {
            biased;
            Some(job) = self.blocks.recv() => job,
            Some(job) = self.transactions.recv() => job,
            else => return None,
        };
        self.bytes[job.lane()].fetch_sub(job.bytes(), Ordering::AcqRel);
        Some(job)
    }
}

/// Work for the import task.
#[derive(Debug)]
pub enum Job {
    /// Sync: blocks in height order.
    Sync(Vec<super::sync::Ready>),
    /// A gossiped block.
    Block {
        /// Who forwarded it.
        peer: PeerId,
        /// Gossip id.
        id: MessageId,
        /// Encoded block.
        bytes: Vec<u8>,
    },
    /// A gossiped transaction.
    Transaction {
        /// Who forwarded it.
        peer: PeerId,
        /// Gossip id.
        id: MessageId,
        /// Encoded transaction.
        bytes: Vec<u8>,
    },
}

/// The verdict on a gossip message.
#[derive(Debug)]
pub struct Verdict {
    /// Forward, drop, or drop and penalise.
    pub acceptance: MessageAcceptance,
    /// Ban the forwarder for this reason (invalid data).
    pub ban: Option<&'static str>,
    /// The block builds on an unknown parent: the forwarder is ahead.
    pub unknown_parent: bool,
    /// For logs.
    pub detail: String,
}

/// What the import task reports.
#[derive(Debug)]
pub enum Report {
    /// A sync batch was processed.
    Sync {
        /// Blocks handed in.
        handed: usize,
        /// Blocks that failed: the first failure stops the batch.
        failure: Option<SyncFailure>,
    },
    /// A gossiped block was checked.
    Block {
        /// Forwarder.
        peer: PeerId,
        /// Gossip id.
        id: MessageId,
        /// Verdict.
        verdict: Verdict,
    },
    /// A gossiped transaction was checked.
    Transaction {
        /// Forwarder.
        peer: PeerId,
        /// Gossip id.
        id: MessageId,
        /// Verdict.
        verdict: Verdict,
    },
}

/// Why a sync batch stopped.
#[derive(Debug)]
pub struct SyncFailure {
    /// Peer that served the block.
    pub peer: PeerId,
    /// The block.
    pub hash: Hash,
    /// The block broke a rule (ban the peer) rather than, say, no longer
    /// fitting our chain.
    pub invalid: bool,
    /// The error.
    pub message: String,
}

/// Runs jobs until the job channel closes.
pub async fn run(
    chain: Arc<Chain>,
    pool: Arc<Mempool>,
    mut jobs: JobReceiver,
    reports: mpsc::Sender<Report>,
) {
    while let Some(job) = jobs.recv().await {
        let chain = chain.clone();
        let pool = pool.clone();
        // What to report if the job dies: the swarm task must always hear
        // back, or sync would wait for it forever.
        let fallback = fallback_report(&job);
        let report = match tokio::task::spawn_blocking(move || process(&chain, &pool, job)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(target: "cachecash::network", "import job failed: {e}");
                fallback
            }
        };
        if reports.send(report).await.is_err() {
            break;
        }
    }
}

fn fallback_report(job: &Job) -> Report {
    let failed = || verdict(MessageAcceptance::Ignore, "import job failed".into());
    match job {
        Job::Sync(blocks) => Report::Sync {
            handed: blocks.len(),
            failure: blocks.first().map(|r| SyncFailure {
                peer: r.peer,
                hash: r.hash,
                invalid: false,
                message: "import job failed".into(),
            }),
        },
        Job::Block { peer, id, .. } => Report::Block {
            peer: *peer,
            id: id.clone(),
            verdict: failed(),
        },
        Job::Transaction { peer, id, .. } => Report::Transaction {
            peer: *peer,
            id: id.clone(),
            verdict: failed(),
        },
    }
}

/// Whether an import error proves the block breaks a rule, so the peer
/// that sent it misbehaved. Local failures (storage, the state tree) and a
/// timestamp ahead of our clock (clock skew) do not.
pub fn is_peer_fault(e: &ImportError) -> bool {
    match e {
        ImportError::Invalid { source, .. } => {
            source.is_invalid_block() && !matches!(**source, BlockError::TimestampInFuture { .. })
        }
        _ => false,
    }
}

fn process(chain: &Chain, pool: &Mempool, job: Job) -> Report {
    match job {
        Job::Sync(blocks) => {
            let handed = blocks.len();
            let mut failure = None;
            for r in blocks {
                match chain.import_encoded(&r.bytes, BlockOrigin::Network) {
                    Ok(_) => {}
                    Err(e) => {
                        failure = Some(SyncFailure {
                            peer: r.peer,
                            hash: r.hash,
                            invalid: is_peer_fault(&e),
                            message: e.to_string(),
                        });
                        break;
                    }
                }
            }
            Report::Sync { handed, failure }
        }
        Job::Block { peer, id, bytes } => Report::Block {
            peer,
            id,
            verdict: block_verdict(chain.import_encoded(&bytes, BlockOrigin::Network)),
        },
        Job::Transaction { peer, id, bytes } => Report::Transaction {
            peer,
            id,
            verdict: transaction_verdict(
                SignedTransaction::decode_bounded(&bytes)
                    .map_err(PoolError::from)
                    .and_then(|tx| pool.submit_from_network(tx)),
            ),
        },
    }
}

fn verdict(acceptance: MessageAcceptance, detail: String) -> Verdict {
    Verdict {
        acceptance,
        ban: None,
        unknown_parent: false,
        detail,
    }
}

/// Maps an import result to a gossip verdict: forward new valid blocks
/// that are, or extend, the best chain; keep lighter fork blocks without
/// forwarding them; drop known or unplaceable ones, reject and ban provably invalid ones. A
/// block remembered as invalid is only dropped: the memory of it may come
/// from a local failure, and its first sender was banned already.
pub fn block_verdict(result: Result<ImportOutcome, ImportError>) -> Verdict {
    match result {
        Ok(ImportOutcome::Imported(_)) => verdict(MessageAcceptance::Accept, "imported".into()),
        // Kept for a later reorganisation, not relayed: only blocks that
        // become or extend the best chain travel on gossip, so a fork that
        // never wins cannot use the network as an amplifier.
        Ok(ImportOutcome::SideChain { .. }) => verdict(
            MessageAcceptance::Ignore,
            "side chain: stored, not relayed".into(),
        ),
        Ok(ImportOutcome::AlreadyKnown(_)) => verdict(MessageAcceptance::Ignore, "known".into()),
        Err(e) if is_peer_fault(&e) => Verdict {
            acceptance: MessageAcceptance::Reject,
            ban: Some("invalid block"),
            unknown_parent: false,
            detail: e.to_string(),
        },
        Err(e @ ImportError::UnknownParent { .. }) => Verdict {
            acceptance: MessageAcceptance::Ignore,
            ban: None,
            unknown_parent: true,
            detail: e.to_string(),
        },
        Err(e) => verdict(MessageAcceptance::Ignore, e.to_string()),
    }
}

/// Maps a pool admission result to a gossip verdict: forward admitted
/// transactions; reject and ban undecodable or badly signed ones (no honest
/// node forwards them); ignore the rest, which honest nodes can forward in
/// a race (nonce already used, pool full).
pub fn transaction_verdict(result: Result<Hash, PoolError>) -> Verdict {
    match result {
        Ok(_) => verdict(MessageAcceptance::Accept, "admitted".into()),
        Err(e @ PoolError::Decode(_)) => Verdict {
            acceptance: MessageAcceptance::Reject,
            ban: Some("malformed transaction"),
            unknown_parent: false,
            detail: e.to_string(),
        },
        Err(e @ PoolError::Invalid(TxError::BadSignature { .. } | TxError::BadSigner(_))) => {
            Verdict {
                acceptance: MessageAcceptance::Reject,
                ban: Some("badly signed transaction"),
                unknown_parent: false,
                detail: e.to_string(),
            }
        }
        Err(e) => verdict(MessageAcceptance::Ignore, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_job(bytes: usize) -> Job {
        Job::Block {
            peer: PeerId::random(),
            id: MessageId::new(&[1]),
            bytes: vec![0; bytes],
        }
    }

    fn tx_job(bytes: usize) -> Job {
        Job::Transaction {
            peer: PeerId::random(),
            id: MessageId::new(&[2]),
            bytes: vec![0; bytes],
        }
    }

    #[tokio::test]
    async fn waiting_block_jobs_are_taken_before_any_transaction() {
        let (queue, mut rx) = job_queue();
        for _ in 0..5 {
            queue.try_send(tx_job(100)).unwrap();
        }
        queue.try_send(block_job(1000)).unwrap();
        assert!(matches!(rx.recv().await, Some(Job::Block { .. })));
        for _ in 0..5 {
            assert!(matches!(rx.recv().await, Some(Job::Transaction { .. })));
        }
        assert_eq!(queue.queued_bytes(), (0, 0));
    }

    #[tokio::test]
    async fn each_lane_is_bounded_by_bytes_and_a_refused_job_is_handed_back() {
        let (queue, mut rx) = job_queue();
        let half = MAX_QUEUED_BLOCK_BYTES / 2;
        queue.try_send(block_job(half)).unwrap();
        queue.try_send(block_job(half)).unwrap();
        let refused = queue.try_send(block_job(1)).unwrap_err();
        assert_eq!(refused.bytes(), 1, "the job comes back whole");
        assert_eq!(queue.queued_bytes(), (MAX_QUEUED_BLOCK_BYTES, 0));
        // A full block lane does not stop transactions, and the reverse.
        let tx_half = MAX_QUEUED_TX_BYTES / 2;
        queue.try_send(tx_job(tx_half)).unwrap();
        queue.try_send(tx_job(tx_half)).unwrap();
        assert!(queue.try_send(tx_job(1)).is_err());
        // Taking a job frees its bytes.
        rx.recv().await.unwrap();
        assert_eq!(queue.queued_bytes(), (half, MAX_QUEUED_TX_BYTES));
        queue.try_send(block_job(half)).unwrap();
    }

    #[tokio::test]
    async fn a_job_larger_than_its_lane_is_taken_only_when_the_lane_is_empty() {
        let (queue, mut rx) = job_queue();
        queue.try_send(block_job(10)).unwrap();
        assert!(
            queue
                .try_send(block_job(MAX_QUEUED_BLOCK_BYTES + 1))
                .is_err()
        );
        rx.recv().await.unwrap();
        queue
            .try_send(block_job(MAX_QUEUED_BLOCK_BYTES + 1))
            .unwrap();
        assert_eq!(rx.recv().await.unwrap().bytes(), MAX_QUEUED_BLOCK_BYTES + 1);
    }

    #[tokio::test]
    async fn the_lanes_are_bounded_by_count_too() {
        let (queue, _rx) = job_queue();
        for _ in 0..JOB_QUEUE {
            queue.try_send(tx_job(1)).unwrap();
        }
        assert!(queue.try_send(tx_job(1)).is_err());
        assert_eq!(queue.queued_bytes(), (0, JOB_QUEUE));
    }
}

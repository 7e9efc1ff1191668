//! The import queue between the swarm task and the chain.
//!
//! Verifying a block (signatures, execution, state root) or a transaction
//! takes real CPU time, so the swarm task never does it: it hands jobs to
//! this task over a bounded channel (`try_send`; a full queue means the
//! gossip message is ignored, and sync simply waits), and the task runs
//! each on the blocking pool, in order, and reports the verdict back. The
//! swarm task then tells gossipsub whether to forward the message, and bans
//! the peer if the data was invalid.

use crate::chain::{BlockOrigin, Chain, ImportError, ImportOutcome};
use crate::mempool::{Mempool, PoolError};
use cachecash_runtime::{BlockError, Hash, SignedTransaction, TxError};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Capacity of the job queue.
pub const JOB_QUEUE: usize = 256;

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
    mut jobs: mpsc::Receiver<Job>,
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

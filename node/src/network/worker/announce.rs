//! Local transactions that could not be announced yet.
//!
//! A transaction submitted to this node is published on the transaction
//! topic once. Publishing fails while no peer subscribes to the topic (a
//! node that just started, or one cut off), and gossip has no memory for
//! it: without a retry, such a transaction would wait in this node's pool
//! until this node mined it itself, which a non-mining node never does.
//! The worker keeps those transactions here (at most [`MAX_WAITING`], the
//! oldest dropped first) and publishes them again on its tick while they
//! are still pending.

use cachecash_runtime::{Hash, SignedTransaction};
use std::collections::VecDeque;

/// Local transactions remembered for a later announcement.
pub const MAX_WAITING: usize = 1024;

/// Announcements retried per tick.
pub const RETRY_PER_TICK: usize = 64;

/// The local transactions waiting for a peer to announce them to.
#[derive(Debug, Default)]
pub struct Unannounced {
    waiting: VecDeque<(Hash, SignedTransaction)>,
}

impl Unannounced {
    /// Remembers a transaction whose announcement failed.
    pub fn push(&mut self, tx: SignedTransaction) {
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
        }
        self.waiting.push_back((tx.hash(), tx));
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Publishes up to [`RETRY_PER_TICK`] waiting transactions that are
    /// still pending (`pending`), oldest first, with `publish`; stops at
    /// the first failure (no peer yet). Transactions no longer pending are
    /// forgotten. Returns how many were announced.
    pub fn retry(
        &mut self,
        pending: impl Fn(&Hash) -> bool,
        mut publish: impl FnMut(&SignedTransaction) -> bool,
    ) -> usize {
        let mut sent = 0;
        let mut tried = 0;
        while tried < RETRY_PER_TICK {
            let Some((hash, tx)) = self.waiting.pop_front() else {
                break;
            };
            if !pending(&hash) {
                continue;
            }
            tried += 1;
            if publish(&tx) {
                sent += 1;
            } else {
                self.waiting.push_front((hash, tx));
                break;
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachecash_runtime::{AccountId, Call, Transaction};

    fn tx(nonce: u64) -> SignedTransaction {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        Transaction {
            signer: AccountId::from_signing_key(&key),
            nonce,
            fee: 1,
            call: Call::Transfer {
                dest: AccountId([1; 32]),
                amount: 1,
            },
        }
        .sign(&key, &Hash::default())
    }

    #[test]
    fn waiting_transactions_are_announced_once_a_peer_takes_them_and_mined_ones_are_dropped() {
        let mut u = Unannounced::default();
        for n in 0..3 {
            u.push(tx(n));
        }
        // No peer: nothing goes, nothing is lost.
        assert_eq!(u.retry(|_| true, |_| false), 0);
        assert_eq!(u.len(), 3);
        // Transaction 1 was mined meanwhile; the others go out in order.
        let mined = tx(1).hash();
        let mut sent = Vec::new();
        let n = u.retry(
            |h| *h != mined,
            |t| {
                sent.push(t.tx.nonce);
                true
            },
        );
        assert_eq!((n, sent), (2, vec![0, 2]));
        assert!(u.is_empty());
    }

    #[test]
    fn the_waiting_list_is_bounded_and_drops_the_oldest() {
        let mut u = Unannounced::default();
        for n in 0..(MAX_WAITING as u64 + 5) {
            u.push(tx(n));
        }
        assert_eq!(u.len(), MAX_WAITING);
        let mut first = None;
        u.retry(
            |_| true,
            |t| {
                first.get_or_insert(t.tx.nonce);
                true
            },
        );
        assert_eq!(first, Some(5));
    }
}

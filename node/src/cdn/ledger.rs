//! The narrow ledger interface of the CDN services.
//!
//! Services never touch storage or the import pipeline: they read the
//! head, escrows and accounts, and submit transactions, through
//! [`Ledger`]. [`ChainLedger`] implements it over the node's chain and
//! pool; tests may implement it over anything that behaves like a chain.

use crate::chain::Chain;
use crate::mempool::Mempool;
use cachecash_runtime::microcash::{Escrow, EscrowId};
use cachecash_runtime::{AccountId, Hash, SignedTransaction};
use std::sync::Arc;

/// What the CDN services need from the ledger.
pub trait Ledger: Send + Sync + std::fmt::Debug + 'static {
    /// The genesis hash (namespaces protocols and signs transactions).
    fn genesis(&self) -> Hash;
    /// Height of the best block.
    fn head_number(&self) -> u64;
    /// An escrow at the best block.
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, String>;
    /// The nonce the next transaction of `account` must carry (state plus
    /// pending pool transactions).
    fn next_nonce(&self, account: &AccountId) -> Result<u64, String>;
    /// Submits a transaction to the pool.
    fn submit(&self, tx: SignedTransaction) -> Result<Hash, String>;
}

/// [`Ledger`] over the node's chain and pool.
#[derive(Debug, Clone)]
pub struct ChainLedger {
    chain: Arc<Chain>,
    pool: Arc<Mempool>,
}

impl ChainLedger {
    /// The ledger of a node.
    pub fn new(chain: Arc<Chain>, pool: Arc<Mempool>) -> ChainLedger {
        ChainLedger { chain, pool }
    }
}

impl Ledger for ChainLedger {
    fn genesis(&self) -> Hash {
        self.chain.genesis_hash()
    }

    fn head_number(&self) -> u64 {
        self.chain.head().header.number
    }

    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, String> {
        self.chain
            .escrow(id, None)
            .map(|(e, _, _)| e)
            .map_err(|e| e.to_string())
    }

    fn next_nonce(&self, account: &AccountId) -> Result<u64, String> {
        let (state, _, _) = self
            .chain
            .account(account, None)
            .map_err(|e| e.to_string())?;
        let pending = self
            .pool
            .pending()
            .iter()
            .filter(|(_, tx)| tx.tx.signer == *account)
            .count();
        Ok(state
            .nonce
            .saturating_add(u64::try_from(pending).unwrap_or(u64::MAX)))
    }

    fn submit(&self, tx: SignedTransaction) -> Result<Hash, String> {
        self.pool.submit(tx).map_err(|e| e.to_string())
    }
}

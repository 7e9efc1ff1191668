//! The narrow ledger interfaces of hosted modules (the CDN services).
//!
//! Modules never touch storage or the import pipeline. They reach the
//! ledger through two traits with one typed error, [`LedgerError`]:
//!
//! - [`LedgerClient`] (async, in [`client`]) is what code on the async
//!   runtime uses: every read runs on the blocking pool, state reads come
//!   with Merkle proofs against the block's state root, and transactions,
//!   escrows and the head can be watched as streams that understand
//!   reorganisations and a confirmation depth.
//! - [`Ledger`] (synchronous) is for code that already runs on the
//!   blocking pool, such as the cache's claimer pass, and for in-memory
//!   chains in tests and benchmarks.
//!
//! [`ChainLedger`] implements both over the node's chain and pool.

pub mod client;

pub use client::{
    BlockRef, EscrowUpdate, EscrowWatch, HeadEvent, HeadEvents, LedgerClient, Proven, TxStatus,
    TxWatch, Watch,
};

use crate::chain::{Chain, ReadError};
use crate::mempool::{Mempool, PoolError};
use crate::storage::StoreError;
use cachecash_runtime::microcash::{Escrow, EscrowId};
use cachecash_runtime::{AccountId, Balance, Hash, SignedTransaction};
use std::sync::Arc;

/// Why a ledger call failed. Every variant says what to do; none of them
/// stops the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The block asked for is not canonical here (unknown, reorganised
    /// away, or below the state pruning horizon).
    #[error(
        "block {0} is not in this node's canonical chain (unknown, reorganised away, or its state is pruned); ask again at the best block"
    )]
    UnknownBlock(String),
    /// The node's storage failed.
    #[error("the node's storage failed: {0}; the node keeps running, check its disk and log")]
    Storage(String),
    /// The pool refused the transaction.
    #[error("the transaction was refused: {0}")]
    Refused(#[from] PoolError),
    /// The node is shutting down: its blocking pool or chain is gone.
    #[error("the node is shutting down; retry against a running node")]
    ShuttingDown,
}

impl From<ReadError> for LedgerError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::UnknownBlock(h) => LedgerError::UnknownBlock(h),
            ReadError::Store(StoreError::StatePruned { number, oldest }) => {
                LedgerError::UnknownBlock(format!("#{number} (state kept from #{oldest})"))
            }
            other => LedgerError::Storage(other.to_string()),
        }
    }
}

impl From<StoreError> for LedgerError {
    fn from(e: StoreError) -> Self {
        LedgerError::from(ReadError::Store(e))
    }
}

impl From<LedgerError> for String {
    fn from(e: LedgerError) -> String {
        e.to_string()
    }
}

/// What the CDN services need from the ledger, synchronously.
pub trait Ledger: Send + Sync + std::fmt::Debug + 'static {
    /// The genesis hash (namespaces protocols and signs transactions).
    fn genesis(&self) -> Hash;
    /// Height of the best block.
    fn head_number(&self) -> u64;
    /// An escrow at the best block.
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, LedgerError>;
    /// The nonce the next transaction of `account` must carry (state plus
    /// pending pool transactions).
    fn next_nonce(&self, account: &AccountId) -> Result<u64, LedgerError>;
    /// Submits a transaction to the pool.
    fn submit(&self, tx: SignedTransaction) -> Result<Hash, LedgerError>;
    /// The canonical block hash at `number`, if the chain is that long.
    fn canonical_hash(&self, number: u64) -> Result<Option<Hash>, LedgerError>;
    /// Where a transaction sits in the canonical chain: (block number,
    /// block hash).
    fn transaction_block(&self, tx: &Hash) -> Result<Option<(u64, Hash)>, LedgerError>;
    /// Whether a transaction waits in the pool.
    fn is_pending(&self, tx: &Hash) -> bool;
    /// The nonce of `account` in the best state (pending transactions not
    /// counted).
    fn state_nonce(&self, account: &AccountId) -> Result<u64, LedgerError>;
    /// The balance of `account` in the best state.
    fn balance(&self, account: &AccountId) -> Result<Balance, LedgerError>;
    /// A fee likely to get a transaction of `size` signed bytes into the
    /// next block: the chain minimum for that size, or just above the
    /// cheapest fee per byte of a full next block when the pool holds more
    /// than a block.
    fn fee_estimate(&self, size: usize) -> Balance;
    /// The transactions of the canonical block at `number`.
    fn block_transactions(&self, number: u64) -> Result<Vec<SignedTransaction>, LedgerError>;
}

/// [`Ledger`] and [`LedgerClient`] over the node's chain and pool.
#[derive(Debug, Clone)]
pub struct ChainLedger {
    pub(crate) chain: Arc<Chain>,
    pub(crate) pool: Arc<Mempool>,
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

    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, LedgerError> {
        self.chain
            .escrow(id, None)
            .map(|(e, _, _)| e)
            .map_err(LedgerError::from)
    }

    fn next_nonce(&self, account: &AccountId) -> Result<u64, LedgerError> {
        let (state, _, _) = self.chain.account(account, None)?;
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

    fn submit(&self, tx: SignedTransaction) -> Result<Hash, LedgerError> {
        self.pool.submit(tx).map_err(LedgerError::from)
    }

    fn canonical_hash(&self, number: u64) -> Result<Option<Hash>, LedgerError> {
        self.chain.canonical_hash(number).map_err(LedgerError::from)
    }

    fn transaction_block(&self, tx: &Hash) -> Result<Option<(u64, Hash)>, LedgerError> {
        let Some(loc) = self.chain.store().tx_location(tx)? else {
            return Ok(None);
        };
        let Some(header) = self.chain.header(&loc.block)? else {
            return Ok(None);
        };
        // Only a block of the canonical chain counts.
        if self.canonical_hash(header.number)? != Some(loc.block) {
            return Ok(None);
        }
        Ok(Some((header.number, loc.block)))
    }

    fn is_pending(&self, tx: &Hash) -> bool {
        self.pool.contains(tx)
    }

    fn state_nonce(&self, account: &AccountId) -> Result<u64, LedgerError> {
        self.chain
            .account(account, None)
            .map(|(a, _, _)| a.nonce)
            .map_err(LedgerError::from)
    }

    fn balance(&self, account: &AccountId) -> Result<Balance, LedgerError> {
        self.chain
            .account(account, None)
            .map(|(a, _, _)| a.balance)
            .map_err(LedgerError::from)
    }

    fn fee_estimate(&self, size: usize) -> Balance {
        let p = self.chain.params();
        let minimum = p.minimum_fee_for(size);
        let cap = usize::try_from(p.max_block_transactions).unwrap_or(usize::MAX);
        let ready = self.pool.ready(cap.saturating_add(1));
        if ready.len() > cap {
            // The pool holds more than a block: beat its cheapest entrant's
            // fee per KiB.
            let Some(lowest) = ready
                .iter()
                .take(cap)
                .map(|t| crate::mempool::fee_rate(t.tx.fee, t.tx.signed_size()))
                .min()
            else {
                return minimum;
            };
            let bytes = Balance::try_from(size).unwrap_or(Balance::MAX);
            lowest
                .saturating_add(1)
                .saturating_mul(bytes)
                .div_ceil(1024)
                .max(minimum)
        } else {
            minimum
        }
    }

    fn block_transactions(&self, number: u64) -> Result<Vec<SignedTransaction>, LedgerError> {
        let Some(hash) = self.canonical_hash(number)? else {
            return Ok(Vec::new());
        };
        Ok(self
            .chain
            .block(&hash)?
            .map(|b| b.transactions)
            .unwrap_or_default())
    }
}

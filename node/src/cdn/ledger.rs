//! The narrow ledger interface of the CDN services.
//!
//! Services never touch storage or the import pipeline: they read the
//! head, escrows and accounts, and submit transactions, through
//! [`Ledger`]. [`ChainLedger`] implements it over the node's chain and
//! pool; tests may implement it over anything that behaves like a chain.

use crate::chain::Chain;
use crate::mempool::Mempool;
use cachecash_runtime::microcash::{Escrow, EscrowId};
use cachecash_runtime::{AccountId, Balance, Hash, SignedTransaction};
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
    /// The canonical block hash at `number`, if the chain is that long.
    fn canonical_hash(&self, number: u64) -> Result<Option<Hash>, String>;
    /// Where a transaction sits in the canonical chain: (block number,
    /// block hash).
    fn transaction_block(&self, tx: &Hash) -> Result<Option<(u64, Hash)>, String>;
    /// Whether a transaction waits in the pool.
    fn is_pending(&self, tx: &Hash) -> bool;
    /// The nonce of `account` in the best state (pending transactions not
    /// counted).
    fn state_nonce(&self, account: &AccountId) -> Result<u64, String>;
    /// The balance of `account` in the best state.
    fn balance(&self, account: &AccountId) -> Result<Balance, String>;
    /// A fee likely to get a transaction of `size` signed bytes into the
    /// next block: the chain minimum for that size, or just above the
    /// cheapest fee per byte of a full next block when the pool holds more
    /// than a block.
    fn fee_estimate(&self, size: usize) -> Balance;
    /// The transactions of the canonical block at `number`.
    fn block_transactions(&self, number: u64) -> Result<Vec<SignedTransaction>, String>;
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

    fn canonical_hash(&self, number: u64) -> Result<Option<Hash>, String> {
        self.chain.canonical_hash(number).map_err(|e| e.to_string())
    }

    fn transaction_block(&self, tx: &Hash) -> Result<Option<(u64, Hash)>, String> {
        let Some(loc) = self
            .chain
            .store()
            .tx_location(tx)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let Some(header) = self.chain.header(&loc.block).map_err(|e| e.to_string())? else {
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

    fn state_nonce(&self, account: &AccountId) -> Result<u64, String> {
        self.chain
            .account(account, None)
            .map(|(a, _, _)| a.nonce)
            .map_err(|e| e.to_string())
    }

    fn balance(&self, account: &AccountId) -> Result<Balance, String> {
        self.chain
            .account(account, None)
            .map(|(a, _, _)| a.balance)
            .map_err(|e| e.to_string())
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

    fn block_transactions(&self, number: u64) -> Result<Vec<SignedTransaction>, String> {
        let Some(hash) = self.canonical_hash(number)? else {
            return Ok(Vec::new());
        };
        Ok(self
            .chain
            .block(&hash)
            .map_err(|e| e.to_string())?
            .map(|b| b.transactions)
            .unwrap_or_default())
    }
}

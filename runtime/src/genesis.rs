//! The genesis block.
//!
//! Genesis is fully determined by the consensus parameters, a timestamp and
//! the initial balances:
//! - `parentHash` = [`ConsensusParams::commitment`], so the genesis hash
//!   commits to every consensus rule as well as to the initial state;
//! - `number` 0, no transactions (the transactions root of the empty list);
//! - `stateRoot` = the state tree holding the initial balances (version 0);
//! - `target` = the initial target, `miner` = all zeros, `nonce` 0.
//!
//! Genesis carries no proof of work. Its hash identifies the chain: it is
//! mixed into every transaction signature and, later, into network
//! protocol names.

use crate::block::{Block, Header, transactions_root};
use crate::commitment::{MemoryTree, StateUpdate, compute_update};
use crate::consensus::{ConsensusParams, ParamsError};
use crate::primitives::{AccountId, Balance, Hash, Timestamp};
use crate::state::Account;
use std::collections::BTreeMap;

/// The genesis inputs besides the consensus parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisConfig {
    /// Genesis timestamp, ms since the epoch.
    pub timestamp: Timestamp,
    /// Initial balances; accounts must be distinct.
    pub balances: Vec<(AccountId, Balance)>,
}

/// A built genesis.
#[derive(Debug, Clone)]
pub struct Genesis {
    /// The block.
    pub block: Block,
    /// Its hash: the chain's identity.
    pub hash: Hash,
    /// The initial accounts.
    pub accounts: BTreeMap<AccountId, Account>,
    /// The state-tree writes of version 0.
    pub update: StateUpdate,
}

/// Why a genesis cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// Bad parameters.
    #[error("invalid consensus parameters: {0}")]
    Params(#[from] ParamsError),
    /// No accounts.
    #[error("genesis must fund at least one account")]
    NoAccounts,
    /// An account twice.
    #[error("account {0} appears twice in the genesis balances; merge the entries")]
    DuplicateAccount(AccountId),
    /// Supply overflow.
    #[error("genesis balances add up to more than the largest balance (2^128 - 1)")]
    SupplyOverflow,
    /// Tree failure.
    #[error("{0}")]
    Tree(String),
}

/// Builds genesis.
pub fn build_genesis(
    params: &ConsensusParams,
    config: &GenesisConfig,
) -> Result<Genesis, GenesisError> {
    params.validate()?;
    if config.balances.is_empty() {
        return Err(GenesisError::NoAccounts);
    }
    let mut accounts = BTreeMap::new();
    let mut total: Balance = 0;
    for (id, balance) in &config.balances {
        total = total
            .checked_add(*balance)
            .ok_or(GenesisError::SupplyOverflow)?;
        let account = Account {
            nonce: 0,
            balance: *balance,
        };
        if accounts.insert(*id, account).is_some() {
            return Err(GenesisError::DuplicateAccount(*id));
        }
    }
    let update = compute_update(&MemoryTree::new(), &accounts, 0)
        .map_err(|e| GenesisError::Tree(e.to_string()))?;
    let header = Header {
        parent_hash: params.commitment(),
        number: 0,
        timestamp: config.timestamp,
        transactions_root: transactions_root(&[]),
        state_root: update.root,
        target: params.initial_target,
        miner: AccountId::default(),
        nonce: 0,
    };
    let hash = header.hash();
    Ok(Genesis {
        block: Block {
            header,
            transactions: Vec::new(),
        },
        hash,
        accounts,
        update,
    })
}

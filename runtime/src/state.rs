//! Account state and the small trait through which the runtime reads it.
//!
//! The runtime never writes to storage: execution collects the changed
//! accounts in an [`Overlay`] and returns them, with the state-tree update,
//! for the node to commit atomically with the block.

use crate::primitives::{AccountId, Balance, Nonce};
use parity_scale_codec::{Decode, Encode};
use std::collections::BTreeMap;

/// An account's state. Absent accounts read as the default (zero balance,
/// nonce 0).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize,
)]
pub struct Account {
    /// Number of transactions this account has sent; the next must carry it.
    pub nonce: Nonce,
    /// Spendable balance in the smallest unit.
    #[serde(with = "crate::serde_balance")]
    pub balance: Balance,
}

/// A state backend failed (I/O, corruption). Never a rule violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state backend failed: {0}")]
pub struct StateError(pub String);

/// Read access to account state at one block.
pub trait StateReader {
    /// The account, or `None` if it has never been written.
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError>;
}

impl<T: StateReader + ?Sized> StateReader for &T {
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError> {
        (**self).account(id)
    }
}

/// Pending account changes on top of a [`StateReader`].
#[derive(Debug)]
pub struct Overlay<'a, S: ?Sized> {
    base: &'a S,
    changes: BTreeMap<AccountId, Account>,
}

impl<'a, S: StateReader + ?Sized> Overlay<'a, S> {
    /// An empty overlay over `base`.
    pub fn new(base: &'a S) -> Self {
        Overlay {
            base,
            changes: BTreeMap::new(),
        }
    }

    /// The account as changed so far.
    pub fn get(&self, id: &AccountId) -> Result<Account, StateError> {
        if let Some(a) = self.changes.get(id) {
            return Ok(*a);
        }
        Ok(self.base.account(id)?.unwrap_or_default())
    }

    /// Records a new value for `id`.
    pub fn set(&mut self, id: AccountId, account: Account) {
        self.changes.insert(id, account);
    }

    /// Number of changed accounts.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Saves the current changes, to roll back to with [`Overlay::restore`].
    pub fn checkpoint(&self) -> BTreeMap<AccountId, Account> {
        self.changes.clone()
    }

    /// Rolls back to a checkpoint.
    pub fn restore(&mut self, checkpoint: BTreeMap<AccountId, Account>) {
        self.changes = checkpoint;
    }

    /// The changed accounts.
    pub fn into_changes(self) -> BTreeMap<AccountId, Account> {
        self.changes
    }
}

impl<S: StateReader + ?Sized> StateReader for Overlay<'_, S> {
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError> {
        if let Some(a) = self.changes.get(id) {
            return Ok(Some(*a));
        }
        self.base.account(id)
    }
}

/// A whole state in memory: for genesis, tests and tools.
#[derive(Debug, Default, Clone)]
pub struct MemoryState {
    /// Every account.
    pub accounts: BTreeMap<AccountId, Account>,
}

impl StateReader for MemoryState {
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError> {
        Ok(self.accounts.get(id).copied())
    }
}

/// Sum of all balances, checked. `None` on overflow (impossible for a valid chain).
pub fn total_balance<'a>(accounts: impl IntoIterator<Item = &'a Account>) -> Option<Balance> {
    accounts
        .into_iter()
        .try_fold(0u128, |acc, a| acc.checked_add(a.balance))
}

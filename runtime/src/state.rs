//! Account state and the small trait through which the runtime reads it.
//!
//! The runtime never writes to storage: execution collects the changed
//! accounts in an [`Overlay`] and returns them, with the state-tree update,
//! for the node to commit atomically with the block.

use crate::microcash::{Escrow, EscrowId};
use crate::primitives::{AccountId, Balance, BlockNumber, Hash, Nonce};
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

/// Read access to the state at one block: accounts, escrows, and the
/// index of open escrows by funder.
pub trait StateReader {
    /// The account, or `None` if it has never been written.
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError>;
    /// The escrow, or `None` if it does not exist (never opened or closed).
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, StateError>;
    /// Ids of the open escrows funded by `funder`, in opening order.
    fn funder_escrows(&self, funder: &AccountId) -> Result<Vec<EscrowId>, StateError>;
}

impl<T: StateReader + ?Sized> StateReader for &T {
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError> {
        (**self).account(id)
    }
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, StateError> {
        (**self).escrow(id)
    }
    fn funder_escrows(&self, funder: &AccountId) -> Result<Vec<EscrowId>, StateError> {
        (**self).funder_escrows(funder)
    }
}

/// Canonical block hashes of the chain a block extends: the lottery draws
/// its seeds from them. Implementations answer for every height below the
/// block being executed.
pub trait BlockHashes {
    /// The hash of the canonical block at `number`, if it exists.
    fn canonical_hash(&self, number: BlockNumber) -> Result<Option<Hash>, StateError>;
}

/// The history of a chain that has only genesis: no draw seed exists yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenesisOnly;

impl BlockHashes for GenesisOnly {
    fn canonical_hash(&self, _number: BlockNumber) -> Result<Option<Hash>, StateError> {
        Ok(None)
    }
}

impl BlockHashes for BTreeMap<BlockNumber, Hash> {
    fn canonical_hash(&self, number: BlockNumber) -> Result<Option<Hash>, StateError> {
        Ok(self.get(&number).copied())
    }
}

/// Where a transaction executes: the height of the including block and the
/// chain below it.
#[derive(Clone, Copy)]
pub struct BlockEnv<'a> {
    /// Height of the block that includes the transaction.
    pub number: BlockNumber,
    /// Canonical hashes below `number`.
    pub history: &'a dyn BlockHashes,
}

impl std::fmt::Debug for BlockEnv<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockEnv")
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

/// Everything a block (or template) changes in state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateChanges {
    /// Changed accounts.
    pub accounts: BTreeMap<AccountId, Account>,
    /// Changed escrows; `None` deletes.
    pub escrows: BTreeMap<EscrowId, Option<Escrow>>,
    /// Changed funder indexes; an empty list deletes.
    pub funders: BTreeMap<AccountId, Vec<EscrowId>>,
    /// Coins destroyed (duplicate-ticket penalties not paid to a reporter).
    /// Not stored: supply accounting only.
    pub burnt: Balance,
}

impl StateChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.escrows.is_empty() && self.funders.is_empty()
    }
}

/// Pending changes on top of a [`StateReader`], with the block environment
/// the transactions execute in.
#[derive(Debug)]
pub struct Overlay<'a, S: ?Sized> {
    base: &'a S,
    env: Option<BlockEnv<'a>>,
    changes: StateChanges,
    /// Drawn winners by (escrow, round), sorted: a block's claims of one
    /// round share one draw. A function of chain history, never of the
    /// changes, so checkpoints need not cover it.
    winners: BTreeMap<(EscrowId, u64), Vec<u32>>,
}

impl<'a, S: StateReader + ?Sized> Overlay<'a, S> {
    /// An empty overlay over `base`, without a block environment: only
    /// calls that need no chain history (transfers) can be applied.
    pub fn new(base: &'a S) -> Self {
        Overlay {
            base,
            env: None,
            changes: StateChanges::default(),
            winners: BTreeMap::new(),
        }
    }

    /// An empty overlay over `base` for a block at `env.number`.
    pub fn with_env(base: &'a S, env: BlockEnv<'a>) -> Self {
        Overlay {
            base,
            env: Some(env),
            changes: StateChanges::default(),
            winners: BTreeMap::new(),
        }
    }

    /// The block environment, if any.
    pub fn env(&self) -> Option<BlockEnv<'a>> {
        self.env
    }

    /// The sorted winners of `(escrow, round)`, computed by `draw` on first use.
    pub fn winners_with(
        &mut self,
        escrow: EscrowId,
        round: u64,
        draw: impl FnOnce() -> Vec<u32>,
    ) -> &[u32] {
        self.winners.entry((escrow, round)).or_insert_with(|| {
            let mut w = draw();
            w.sort_unstable();
            w
        })
    }

    /// The account as changed so far.
    pub fn get(&self, id: &AccountId) -> Result<Account, StateError> {
        if let Some(a) = self.changes.accounts.get(id) {
            return Ok(*a);
        }
        Ok(self.base.account(id)?.unwrap_or_default())
    }

    /// Records a new value for `id`.
    pub fn set(&mut self, id: AccountId, account: Account) {
        self.changes.accounts.insert(id, account);
    }

    /// The escrow as changed so far.
    pub fn get_escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, StateError> {
        if let Some(e) = self.changes.escrows.get(id) {
            return Ok(e.clone());
        }
        self.base.escrow(id)
    }

    /// Records a new value for escrow `id` (`None` deletes it).
    pub fn set_escrow(&mut self, id: EscrowId, escrow: Option<Escrow>) {
        self.changes.escrows.insert(id, escrow);
    }

    /// The funder's open escrows as changed so far.
    pub fn get_funder_escrows(&self, funder: &AccountId) -> Result<Vec<EscrowId>, StateError> {
        if let Some(v) = self.changes.funders.get(funder) {
            return Ok(v.clone());
        }
        self.base.funder_escrows(funder)
    }

    /// Records the funder's open escrows.
    pub fn set_funder_escrows(&mut self, funder: AccountId, ids: Vec<EscrowId>) {
        self.changes.funders.insert(funder, ids);
    }

    /// Records coins destroyed.
    pub fn burn(&mut self, amount: Balance) -> Result<(), StateError> {
        self.changes.burnt = self
            .changes
            .burnt
            .checked_add(amount)
            .ok_or_else(|| StateError("burnt total overflows".into()))?;
        Ok(())
    }

    /// Number of changed accounts.
    pub fn len(&self) -> usize {
        self.changes.accounts.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Saves the current changes, to roll back to with [`Overlay::restore`].
    pub fn checkpoint(&self) -> StateChanges {
        self.changes.clone()
    }

    /// Rolls back to a checkpoint.
    pub fn restore(&mut self, checkpoint: StateChanges) {
        self.changes = checkpoint;
    }

    /// Everything changed.
    pub fn into_changes(self) -> StateChanges {
        self.changes
    }
}

impl<S: StateReader + ?Sized> StateReader for Overlay<'_, S> {
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError> {
        if let Some(a) = self.changes.accounts.get(id) {
            return Ok(Some(*a));
        }
        self.base.account(id)
    }
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, StateError> {
        self.get_escrow(id)
    }
    fn funder_escrows(&self, funder: &AccountId) -> Result<Vec<EscrowId>, StateError> {
        self.get_funder_escrows(funder)
    }
}

/// A whole state in memory: for genesis, tests and tools.
#[derive(Debug, Default, Clone)]
pub struct MemoryState {
    /// Every account.
    pub accounts: BTreeMap<AccountId, Account>,
    /// Every escrow.
    pub escrows: BTreeMap<EscrowId, Escrow>,
    /// Open escrows by funder.
    pub funders: BTreeMap<AccountId, Vec<EscrowId>>,
}

impl MemoryState {
    /// Applies a block's changes.
    pub fn apply(&mut self, changes: &StateChanges) {
        for (id, a) in &changes.accounts {
            self.accounts.insert(*id, *a);
        }
        for (id, e) in &changes.escrows {
            match e {
                Some(e) => self.escrows.insert(*id, e.clone()),
                None => self.escrows.remove(id),
            };
        }
        for (id, v) in &changes.funders {
            if v.is_empty() {
                self.funders.remove(id);
            } else {
                self.funders.insert(*id, v.clone());
            }
        }
    }
}

impl StateReader for MemoryState {
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError> {
        Ok(self.accounts.get(id).copied())
    }
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, StateError> {
        Ok(self.escrows.get(id).cloned())
    }
    fn funder_escrows(&self, funder: &AccountId) -> Result<Vec<EscrowId>, StateError> {
        Ok(self.funders.get(funder).cloned().unwrap_or_default())
    }
}

/// Sum of all balances, checked. `None` on overflow (impossible for a valid chain).
pub fn total_balance<'a>(accounts: impl IntoIterator<Item = &'a Account>) -> Option<Balance> {
    accounts
        .into_iter()
        .try_fold(0u128, |acc, a| acc.checked_add(a.balance))
}

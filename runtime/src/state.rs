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
///
/// The funder index is a dense array per funder, stored as one state entry
/// per element so that opening or closing an escrow writes a constant
/// number of entries whatever the funder holds: a count, one slot per open
/// escrow, and each escrow's slot. Closing moves the funder's last escrow
/// into the freed slot (swap-remove), so slot order is opening order until
/// the first close.
pub trait StateReader {
    /// The account, or `None` if it has never been written.
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError>;
    /// The escrow, or `None` if it does not exist (never opened or closed).
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, StateError>;
    /// How many open escrows `funder` has.
    fn funder_escrow_count(&self, funder: &AccountId) -> Result<u64, StateError>;
    /// The open escrow in `slot` of `funder`'s index (`slot < count`).
    fn funder_escrow_at(
        &self,
        funder: &AccountId,
        slot: u64,
    ) -> Result<Option<EscrowId>, StateError>;
    /// The slot an open escrow occupies in its funder's index.
    fn escrow_slot(&self, id: &EscrowId) -> Result<Option<u64>, StateError>;
}

impl<T: StateReader + ?Sized> StateReader for &T {
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError> {
        (**self).account(id)
    }
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, StateError> {
        (**self).escrow(id)
    }
    fn funder_escrow_count(&self, funder: &AccountId) -> Result<u64, StateError> {
        (**self).funder_escrow_count(funder)
    }
    fn funder_escrow_at(
        &self,
        funder: &AccountId,
        slot: u64,
    ) -> Result<Option<EscrowId>, StateError> {
        (**self).funder_escrow_at(funder, slot)
    }
    fn escrow_slot(&self, id: &EscrowId) -> Result<Option<u64>, StateError> {
        (**self).escrow_slot(id)
    }
}

/// Up to `limit` of `funder`'s open escrows from slot `start` on, in slot
/// order; reads `limit + 1` entries at most.
pub fn funder_escrows_page<S: StateReader + ?Sized>(
    state: &S,
    funder: &AccountId,
    start: u64,
    limit: u64,
) -> Result<Vec<EscrowId>, StateError> {
    let count = state.funder_escrow_count(funder)?;
    let end = start.saturating_add(limit).min(count);
    let mut out = Vec::new();
    for slot in start..end {
        match state.funder_escrow_at(funder, slot)? {
            Some(id) => out.push(id),
            None => {
                return Err(StateError(format!(
                    "escrow index of {funder} is corrupt: slot {slot} of {count} is empty"
                )));
            }
        }
    }
    Ok(out)
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
    /// Changed funder-index counts; `0` deletes.
    pub funder_counts: BTreeMap<AccountId, u64>,
    /// Changed funder-index slots; `None` deletes.
    pub funder_slots: BTreeMap<(AccountId, u64), Option<EscrowId>>,
    /// Changed escrow slots; `None` deletes.
    pub escrow_slots: BTreeMap<EscrowId, Option<u64>>,
    /// Coins destroyed (duplicate-ticket penalties not paid to a reporter).
    /// Not stored: supply accounting only.
    pub burnt: Balance,
}

impl StateChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.escrows.is_empty()
            && self.funder_counts.is_empty()
            && self.funder_slots.is_empty()
            && self.escrow_slots.is_empty()
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

    /// Appends `id` to `funder`'s index: three entries written.
    pub fn index_escrow(&mut self, funder: AccountId, id: EscrowId) -> Result<(), StateError> {
        let slot = self.funder_escrow_count(&funder)?;
        let count = slot
            .checked_add(1)
            .ok_or_else(|| StateError(format!("escrow index of {funder} overflows")))?;
        self.changes.funder_slots.insert((funder, slot), Some(id));
        self.changes.escrow_slots.insert(id, Some(slot));
        self.changes.funder_counts.insert(funder, count);
        Ok(())
    }

    /// Removes `id` from `funder`'s index by moving the last escrow into
    /// its slot: at most five entries written.
    pub fn unindex_escrow(&mut self, funder: AccountId, id: EscrowId) -> Result<(), StateError> {
        let corrupt =
            |what: String| StateError(format!("escrow index of {funder} is corrupt: {what}"));
        let slot = self
            .escrow_slot(&id)?
            .ok_or_else(|| corrupt(format!("open escrow {id} has no slot")))?;
        let count = self.funder_escrow_count(&funder)?;
        let last = count
            .checked_sub(1)
            .ok_or_else(|| corrupt(format!("escrow {id} in slot {slot} of an empty index")))?;
        if slot > last || self.funder_escrow_at(&funder, slot)? != Some(id) {
            return Err(corrupt(format!("slot {slot} does not hold escrow {id}")));
        }
        if slot != last {
            let moved = self
                .funder_escrow_at(&funder, last)?
                .ok_or_else(|| corrupt(format!("last slot {last} is empty")))?;
            self.changes
                .funder_slots
                .insert((funder, slot), Some(moved));
            self.changes.escrow_slots.insert(moved, Some(slot));
        }
        self.changes.funder_slots.insert((funder, last), None);
        self.changes.escrow_slots.insert(id, None);
        self.changes.funder_counts.insert(funder, last);
        Ok(())
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
    fn funder_escrow_count(&self, funder: &AccountId) -> Result<u64, StateError> {
        match self.changes.funder_counts.get(funder) {
            Some(n) => Ok(*n),
            None => self.base.funder_escrow_count(funder),
        }
    }
    fn funder_escrow_at(
        &self,
        funder: &AccountId,
        slot: u64,
    ) -> Result<Option<EscrowId>, StateError> {
        match self.changes.funder_slots.get(&(*funder, slot)) {
            Some(v) => Ok(*v),
            None => self.base.funder_escrow_at(funder, slot),
        }
    }
    fn escrow_slot(&self, id: &EscrowId) -> Result<Option<u64>, StateError> {
        match self.changes.escrow_slots.get(id) {
            Some(v) => Ok(*v),
            None => self.base.escrow_slot(id),
        }
    }
}

/// A whole state in memory: for genesis, tests and tools.
#[derive(Debug, Default, Clone)]
pub struct MemoryState {
    /// Every account.
    pub accounts: BTreeMap<AccountId, Account>,
    /// Every escrow.
    pub escrows: BTreeMap<EscrowId, Escrow>,
    /// Funder-index counts.
    pub funder_counts: BTreeMap<AccountId, u64>,
    /// Funder-index slots.
    pub funder_slots: BTreeMap<(AccountId, u64), EscrowId>,
    /// Escrow slots.
    pub escrow_slots: BTreeMap<EscrowId, u64>,
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
        for (id, n) in &changes.funder_counts {
            if *n == 0 {
                self.funder_counts.remove(id);
            } else {
                self.funder_counts.insert(*id, *n);
            }
        }
        for (key, v) in &changes.funder_slots {
            match v {
                Some(e) => self.funder_slots.insert(*key, *e),
                None => self.funder_slots.remove(key),
            };
        }
        for (id, v) in &changes.escrow_slots {
            match v {
                Some(slot) => self.escrow_slots.insert(*id, *slot),
                None => self.escrow_slots.remove(id),
            };
        }
    }

    /// Every open escrow of `funder`, in slot order.
    pub fn funder_escrows(&self, funder: &AccountId) -> Vec<EscrowId> {
        self.funder_slots
            .range((*funder, 0)..=(*funder, u64::MAX))
            .map(|(_, id)| *id)
            .collect()
    }
}

impl StateReader for MemoryState {
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StateError> {
        Ok(self.accounts.get(id).copied())
    }
    fn escrow(&self, id: &EscrowId) -> Result<Option<Escrow>, StateError> {
        Ok(self.escrows.get(id).cloned())
    }
    fn funder_escrow_count(&self, funder: &AccountId) -> Result<u64, StateError> {
        Ok(self.funder_counts.get(funder).copied().unwrap_or(0))
    }
    fn funder_escrow_at(
        &self,
        funder: &AccountId,
        slot: u64,
    ) -> Result<Option<EscrowId>, StateError> {
        Ok(self.funder_slots.get(&(*funder, slot)).copied())
    }
    fn escrow_slot(&self, id: &EscrowId) -> Result<Option<u64>, StateError> {
        Ok(self.escrow_slots.get(id).copied())
    }
}

/// Sum of all balances, checked. `None` on overflow (impossible for a valid chain).
pub fn total_balance<'a>(accounts: impl IntoIterator<Item = &'a Account>) -> Option<Balance> {
    accounts
        .into_iter()
        .try_fold(0u128, |acc, a| acc.checked_add(a.balance))
}

//! Executing transactions and blocks against state.
//!
//! Rules, in the order they are checked for each transaction:
//! 1. fee ≥ the chain minimum;
//! 2. nonce = the signer's current nonce;
//! 3. balance ≥ amount + fee (checked addition);
//! 4. the signer is debited amount + fee and its nonce incremented, then the
//!    destination is credited (re-read, so a self-transfer nets to −fee and
//!    never overflows); a credit that would overflow u128 is rejected.
//!
//! After the transactions the miner is credited the block reward plus all
//! fees. Fees therefore move supply, the reward mints it, nothing burns it:
//! total supply = genesis total + reward × blocks.

use crate::consensus::ConsensusParams;
use crate::error::{BlockError, TxError};
use crate::primitives::{AccountId, Balance};
use crate::state::{Account, Overlay, StateReader};
use crate::transaction::{Call, SignedTransaction, Transaction};
use std::collections::BTreeMap;

/// Checks a transaction against state without applying it, requiring its
/// nonce to be exactly the account's next.
pub fn check_transaction<S: StateReader + ?Sized>(
    state: &S,
    tx: &Transaction,
    params: &ConsensusParams,
) -> Result<(), TxError> {
    let mut overlay = Overlay::new(state);
    apply_transaction(&mut overlay, tx, params).map(|_| ())
}

/// Applies one (signature-checked) transaction, returning its fee.
pub fn apply_transaction<S: StateReader + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    tx: &Transaction,
    params: &ConsensusParams,
) -> Result<Balance, TxError> {
    if tx.fee < params.minimum_fee {
        return Err(TxError::FeeTooLow {
            fee: tx.fee,
            minimum: params.minimum_fee,
        });
    }
    let mut sender = overlay.get(&tx.signer)?;
    if tx.nonce < sender.nonce {
        return Err(TxError::StaleNonce {
            signer: tx.signer,
            expected: sender.nonce,
            got: tx.nonce,
        });
    }
    if tx.nonce > sender.nonce {
        return Err(TxError::FutureNonce {
            signer: tx.signer,
            expected: sender.nonce,
            got: tx.nonce,
        });
    }
    let next_nonce = sender
        .nonce
        .checked_add(1)
        .ok_or(TxError::Overflow("the signer's nonce is exhausted"))?;
    match &tx.call {
        Call::Transfer { dest, amount } => {
            let needed = amount.checked_add(tx.fee).ok_or(TxError::Overflow(
                "amount + fee exceeds the largest balance",
            ))?;
            let remaining =
                sender
                    .balance
                    .checked_sub(needed)
                    .ok_or(TxError::InsufficientBalance {
                        signer: tx.signer,
                        balance: sender.balance,
                        needed,
                    })?;
            sender.balance = remaining;
            sender.nonce = next_nonce;
            overlay.set(tx.signer, sender);
            let mut receiver = overlay.get(dest)?;
            receiver.balance = receiver
                .balance
                .checked_add(*amount)
                .ok_or(TxError::Overflow(
                    "the destination's balance would exceed the largest balance",
                ))?;
            overlay.set(*dest, receiver);
        }
    }
    Ok(tx.fee)
}

/// Result of executing a block body.
#[derive(Debug, Clone)]
pub struct Execution {
    /// Every changed account, the miner always among them.
    pub changes: BTreeMap<AccountId, Account>,
    /// Sum of fees.
    pub fees: Balance,
}

/// Executes `txs` in order and pays the miner. Any invalid transaction
/// invalidates the block.
pub fn execute_block<S: StateReader + ?Sized>(
    state: &S,
    miner: &AccountId,
    txs: &[SignedTransaction],
    params: &ConsensusParams,
) -> Result<Execution, BlockError> {
    let mut overlay = Overlay::new(state);
    let mut fees: Balance = 0;
    for (index, t) in txs.iter().enumerate() {
        let fee = apply_transaction(&mut overlay, &t.tx, params).map_err(|source| {
            BlockError::InvalidTransaction {
                index,
                hash: t.hash(),
                source,
            }
        })?;
        fees = fees.checked_add(fee).ok_or(BlockError::RewardOverflow)?;
    }
    credit_miner(&mut overlay, miner, params.block_reward, fees)?;
    Ok(Execution {
        changes: overlay.into_changes(),
        fees,
    })
}

/// Credits reward + fees to the miner. The miner's account is always
/// written, even when the credit is zero, so every block changes state.
pub fn credit_miner<S: StateReader + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    miner: &AccountId,
    reward: Balance,
    fees: Balance,
) -> Result<(), BlockError> {
    let credit = reward.checked_add(fees).ok_or(BlockError::RewardOverflow)?;
    let mut m = overlay.get(miner)?;
    m.balance = m
        .balance
        .checked_add(credit)
        .ok_or(BlockError::RewardOverflow)?;
    overlay.set(*miner, m);
    Ok(())
}

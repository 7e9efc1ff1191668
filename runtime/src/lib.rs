//! # cachecash-runtime
//!
//! The Cachecoin state-transition function. It is pure: no I/O, no clock,
//! no threads, no storage engine and no networking. The node hands it
//! blocks, transactions, the parent's context and read access to state;
//! it answers with verdicts and the writes a valid block implies.
//!
//! - [`primitives`]: hashes, accounts, balances, hex.
//! - [`transaction`]: signed transactions and the [`transaction::Call`] enum
//!   (the seam where escrows and ticket claims will be added).
//! - [`block`]: headers, blocks, the transactions root.
//! - [`consensus`]: parameters, targets, ASERT retargeting, median time past.
//! - [`state`]: accounts and the [`state::StateReader`] trait.
//! - [`commitment`]: the authenticated state tree, roots and proofs.
//! - [`execution`]: the transaction and block rules.
//! - [`verify`]: the verification stages as types.
//! - [`builder`]: block templates for miners.
//! - [`genesis`]: the genesis block.
//!
//! Consensus code must never panic or wrap: outside tests, unwrap, expect,
//! panics, indexing and unchecked arithmetic are compile errors.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
#![warn(missing_docs)]

pub mod block;
pub mod builder;
pub mod commitment;
pub mod consensus;
pub mod error;
pub mod execution;
pub mod genesis;
pub mod microcash;
pub mod primitives;
pub mod serde_balance;
pub mod signature;
pub mod state;
pub mod transaction;
pub mod verify;

pub use block::{Block, Header};
pub use consensus::{ConsensusParams, Target};
pub use error::{BlockError, TxError};
pub use primitives::{AccountId, Balance, BlockNumber, Hash, Nonce, Signature, Timestamp};
pub use state::{Account, StateReader};
pub use transaction::{Call, SignedTransaction, Transaction};

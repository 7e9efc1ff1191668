//! Rule violations, each with a message that says what was wrong and what
//! to do about it.

use crate::commitment::CommitmentError;
use crate::consensus::Target;
use crate::primitives::{AccountId, Balance, BlockNumber, Hash, KeyError, Nonce, Timestamp};
use crate::state::StateError;

/// Why a transaction is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The signer cannot sign.
    #[error("bad signer: {0}")]
    BadSigner(KeyError),
    /// The signature does not verify.
    #[error(
        "bad signature: not signed by {signer} for the chain with genesis {genesis}; sign it again with the signer's key for this chain"
    )]
    BadSignature {
        /// Claimed signer.
        signer: AccountId,
        /// The chain the validator is on.
        genesis: Hash,
    },
    /// The nonce was already used.
    #[error(
        "stale nonce: account {signer} is at nonce {expected} but the transaction has nonce {got}; it was already used, so build a new transaction with nonce {expected}"
    )]
    StaleNonce {
        /// Signer.
        signer: AccountId,
        /// The account's current nonce.
        expected: Nonce,
        /// The transaction's nonce.
        got: Nonce,
    },
    /// The nonce skips ahead.
    #[error(
        "future nonce: account {signer} is at nonce {expected} but the transaction has nonce {got}; send the transactions with nonces {expected}..{got} first"
    )]
    FutureNonce {
        /// Signer.
        signer: AccountId,
        /// The account's current nonce.
        expected: Nonce,
        /// The transaction's nonce.
        got: Nonce,
    },
    /// Fee under the minimum.
    #[error(
        "fee too low: {fee} is below this chain's minimum fee {minimum}; pay at least {minimum}"
    )]
    FeeTooLow {
        /// Offered fee.
        fee: Balance,
        /// Chain minimum.
        minimum: Balance,
    },
    /// Not enough funds.
    #[error(
        "insufficient balance: account {signer} has {balance} but the transaction needs {needed} (amount + fee)"
    )]
    InsufficientBalance {
        /// Signer.
        signer: AccountId,
        /// Its balance.
        balance: Balance,
        /// Amount plus fee.
        needed: Balance,
    },
    /// An arithmetic limit.
    #[error("overflow: {0}")]
    Overflow(&'static str),
    /// A MicroCash rule.
    #[error(transparent)]
    Microcash(#[from] crate::microcash::MicrocashError),
    /// The call needs the chain's history, which this context lacks.
    #[error(
        "this call needs the block height and chain history; check it against a block or the mempool"
    )]
    NoBlockEnv,
    /// Backend failure while checking.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Why a block is invalid (or could not be checked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Oversized encoding.
    #[error("block is {size} bytes; the chain limit is {limit}")]
    TooLarge {
        /// Size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Not SCALE.
    #[error("bytes do not decode as a SCALE block: {0}")]
    Undecodable(String),
    /// Too many transactions.
    #[error("block has {count} transactions; the chain limit is {limit}")]
    TooManyTransactions {
        /// Count.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// The same transaction twice.
    #[error("transaction {0} appears twice in the block")]
    DuplicateTransaction(Hash),
    /// Transactions root differs.
    #[error(
        "transactions root {claimed} in the header differs from {computed} computed from the body"
    )]
    TransactionsRootMismatch {
        /// In header.
        claimed: Hash,
        /// From body.
        computed: Hash,
    },
    /// PoW not met.
    #[error("header hash {hash} does not meet its target {target:?}")]
    InsufficientWork {
        /// Header hash.
        hash: Hash,
        /// Target.
        target: Target,
    },
    /// A transaction is invalid.
    #[error("transaction {index} ({hash}) is invalid: {source}")]
    InvalidTransaction {
        /// Position in the block.
        index: usize,
        /// Its hash.
        hash: Hash,
        /// Why.
        #[source]
        source: TxError,
    },
    /// Does not extend the given parent.
    #[error("block's parent is {got}, not {expected}")]
    WrongParent {
        /// Expected parent.
        expected: Hash,
        /// Header's parent hash.
        got: Hash,
    },
    /// Wrong height.
    #[error("block number {got} should be {expected} (parent's plus one)")]
    WrongNumber {
        /// Parent + 1.
        expected: BlockNumber,
        /// Header's number.
        got: BlockNumber,
    },
    /// Timestamp not after MTP.
    #[error("timestamp {timestamp} is not after the median {median} of the last 11 blocks")]
    TimestampTooOld {
        /// Header timestamp.
        timestamp: Timestamp,
        /// Median time past.
        median: Timestamp,
    },
    /// Timestamp too far ahead.
    #[error(
        "timestamp {timestamp} is more than {drift_ms} ms ahead of this node's clock ({now}); check the clocks"
    )]
    TimestampInFuture {
        /// Header timestamp.
        timestamp: Timestamp,
        /// Local clock.
        now: Timestamp,
        /// Allowed drift.
        drift_ms: u64,
    },
    /// Target not per the difficulty rule.
    #[error("target {got:?} differs from the required {expected:?}")]
    WrongTarget {
        /// Required.
        expected: Target,
        /// Header's.
        got: Target,
    },
    /// State root differs.
    #[error(
        "state root {claimed} in the header differs from {computed} computed by executing the block"
    )]
    StateRootMismatch {
        /// In header.
        claimed: Hash,
        /// Computed.
        computed: Hash,
    },
    /// Reward and fees overflow.
    #[error("block reward plus fees overflow the miner's balance")]
    RewardOverflow,
    /// Backend failure: the block could not be checked (not a verdict).
    #[error("could not check the block: {0}")]
    State(#[from] StateError),
    /// Tree failure: the block could not be checked (not a verdict).
    #[error("could not check the block: {0}")]
    Commitment(#[from] CommitmentError),
}

impl BlockError {
    /// Whether the error says the block is invalid (as opposed to a local
    /// failure while checking it). Peers are penalised only for these.
    pub fn is_invalid_block(&self) -> bool {
        !matches!(self, BlockError::State(_) | BlockError::Commitment(_))
    }
}

//! Block verification in stages, each a type:
//!
//! ```text
//!  bytes ──decode──▶ UncheckedBlock ──check_stateless──▶ StatelessBlock ──check_stateful──▶ ExecutedBlock ──▶ (node commits)
//!         size limit,              tx count, duplicates,               parent, number, time,           state update,
//!         exact SCALE              tx root, PoW, target ≤ limit,       target, execution,              changes, fees
//!                                  signatures in one batch             state root
//! ```
//!
//! Only an [`ExecutedBlock`] can be committed, so no block reaches storage
//! without passing every stage. Stateless checks need no chain data and can
//! run in parallel or before a block's parent is known; stateful checks need
//! the parent header, its ancestors' timestamps, and the parent state.

use crate::block::{Block, Header, transactions_root};
use crate::commitment::{StateUpdate, TreeState, compute_state_update};
use crate::consensus::{ConsensusParams, Target};
use crate::error::BlockError;
use crate::execution::execute_block;
use crate::primitives::{Balance, Hash, Timestamp};
use crate::state::{BlockEnv, BlockHashes, StateChanges};
use crate::transaction::verify_signatures_batch;
use jmt::storage::TreeReader;
use parity_scale_codec::{DecodeAll, Encode};
use std::collections::BTreeSet;

/// Stage 1: a structurally valid block (decoded exactly, within the size limit).
#[derive(Debug, Clone)]
pub struct UncheckedBlock {
    block: Block,
}

impl UncheckedBlock {
    /// Decodes a block, rejecting oversize input and trailing bytes.
    pub fn decode(bytes: &[u8], params: &ConsensusParams) -> Result<Self, BlockError> {
        let limit = usize::try_from(params.max_block_bytes).unwrap_or(usize::MAX);
        if bytes.len() > limit {
            return Err(BlockError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let block = Block::decode_all(&mut &bytes[..])
            .map_err(|e| BlockError::Undecodable(e.to_string()))?;
        Ok(UncheckedBlock { block })
    }

    /// Wraps an already decoded block, checking its encoded size.
    pub fn new(block: Block, params: &ConsensusParams) -> Result<Self, BlockError> {
        let size = block.encoded_size();
        let limit = usize::try_from(params.max_block_bytes).unwrap_or(usize::MAX);
        if size > limit {
            return Err(BlockError::TooLarge { size, limit });
        }
        Ok(UncheckedBlock { block })
    }

    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// Stage 2: checks that need nothing but the block and the chain's
    /// genesis hash and parameters.
    pub fn check_stateless(
        self,
        genesis: &Hash,
        params: &ConsensusParams,
    ) -> Result<StatelessBlock, BlockError> {
        let block = self.block;
        let limit = usize::try_from(params.max_block_transactions).unwrap_or(usize::MAX);
        if block.transactions.len() > limit {
            return Err(BlockError::TooManyTransactions {
                count: block.transactions.len(),
                limit,
            });
        }
        if block.header.target > params.pow_limit {
            return Err(BlockError::WrongTarget {
                expected: params.pow_limit,
                got: block.header.target,
            });
        }
        let hash = block.header.hash();
        if !block.header.target.is_met_by(&hash) {
            return Err(BlockError::InsufficientWork {
                hash,
                target: block.header.target,
            });
        }
        let tx_hashes: Vec<Hash> = block.transactions.iter().map(|t| t.hash()).collect();
        let mut seen = BTreeSet::new();
        for h in &tx_hashes {
            if !seen.insert(*h) {
                return Err(BlockError::DuplicateTransaction(*h));
            }
        }
        let computed = transactions_root(&tx_hashes);
        if computed != block.header.transactions_root {
            return Err(BlockError::TransactionsRootMismatch {
                claimed: block.header.transactions_root,
                computed,
            });
        }
        verify_signatures_batch(&block.transactions, genesis).map_err(|(index, source)| {
            BlockError::InvalidTransaction {
                index,
                hash: tx_hashes.get(index).copied().unwrap_or_default(),
                source,
            }
        })?;
        Ok(StatelessBlock {
            block,
            hash,
            tx_hashes,
        })
    }
}

/// What stateful checks need to know about the chain a block extends.
#[derive(Debug, Clone)]
pub struct ChainContext {
    /// The parent header.
    pub parent: Header,
    /// Median timestamp of the parent and up to ten of its ancestors.
    pub median_time_past: Timestamp,
    /// The target the block must carry (from [`crate::consensus::next_target`]).
    pub expected_target: Target,
    /// The validator's clock, ms since the epoch.
    pub now: Timestamp,
}

/// Stage 2 passed: the block is internally consistent and its work is real.
#[derive(Debug, Clone)]
pub struct StatelessBlock {
    block: Block,
    hash: Hash,
    tx_hashes: Vec<Hash>,
}

impl StatelessBlock {
    /// Re-admits a block that passed [`UncheckedBlock::check_stateless`]
    /// once and was then kept in the node's own block index, so a
    /// reorganisation does not verify its signatures and proof of work a
    /// second time under the chain's write lock. The node's disk is trusted
    /// as its memory is (the store checks its own integrity); never call
    /// this on bytes from anywhere else.
    pub fn from_trusted_store(block: Block) -> StatelessBlock {
        let hash = block.header.hash();
        let tx_hashes = block.transactions.iter().map(|t| t.hash()).collect();
        StatelessBlock {
            block,
            hash,
            tx_hashes,
        }
    }

    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The block hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Checks the header against its parent (number, timestamp, target).
    pub fn check_header_context(
        &self,
        ctx: &ChainContext,
        params: &ConsensusParams,
    ) -> Result<(), BlockError> {
        check_header_context(&self.block.header, ctx, params)
    }

    /// Stage 3: checks against the parent and its state, executing the
    /// block. `tree` must hold the state of the parent as version
    /// `parent.number`, and nothing above it; `history` answers the
    /// canonical hashes of the parent's chain (for lottery draws).
    pub fn check_stateful<R: TreeReader>(
        self,
        ctx: &ChainContext,
        tree: &R,
        history: &dyn BlockHashes,
        params: &ConsensusParams,
    ) -> Result<ExecutedBlock, BlockError> {
        check_header_context(&self.block.header, ctx, params)?;
        let header = &self.block.header;
        let state = TreeState::new(tree, ctx.parent.number);
        let env = BlockEnv {
            number: header.number,
            history,
        };
        let execution =
            execute_block(&state, &header.miner, &self.block.transactions, params, env)?;
        let update = compute_state_update(tree, &execution.changes, header.number)?;
        if update.root != header.state_root {
            return Err(BlockError::StateRootMismatch {
                claimed: header.state_root,
                computed: update.root,
            });
        }
        Ok(ExecutedBlock {
            block: self.block,
            hash: self.hash,
            tx_hashes: self.tx_hashes,
            changes: execution.changes,
            fees: execution.fees,
            update,
        })
    }
}

/// Header rules that depend on the parent.
pub fn check_header_context(
    header: &Header,
    ctx: &ChainContext,
    params: &ConsensusParams,
) -> Result<(), BlockError> {
    let parent_hash = ctx.parent.hash();
    if header.parent_hash != parent_hash {
        return Err(BlockError::WrongParent {
            expected: parent_hash,
            got: header.parent_hash,
        });
    }
    let expected_number = ctx.parent.number.saturating_add(1);
    if header.number != expected_number {
        return Err(BlockError::WrongNumber {
            expected: expected_number,
            got: header.number,
        });
    }
    if header.timestamp <= ctx.median_time_past {
        return Err(BlockError::TimestampTooOld {
            timestamp: header.timestamp,
            median: ctx.median_time_past,
        });
    }
    if header.timestamp > ctx.now.saturating_add(params.max_future_drift_ms) {
        return Err(BlockError::TimestampInFuture {
            timestamp: header.timestamp,
            now: ctx.now,
            drift_ms: params.max_future_drift_ms,
        });
    }
    if header.target != ctx.expected_target {
        return Err(BlockError::WrongTarget {
            expected: ctx.expected_target,
            got: header.target,
        });
    }
    Ok(())
}

/// Stage 3 passed: a valid block with the state writes it implies. Only
/// this type can be committed.
#[derive(Debug, Clone)]
pub struct ExecutedBlock {
    /// The block.
    pub block: Block,
    /// Its hash.
    pub hash: Hash,
    /// Its transactions' hashes, in order.
    pub tx_hashes: Vec<Hash>,
    /// State changed by the block.
    pub changes: StateChanges,
    /// Fees paid to the miner.
    pub fees: Balance,
    /// The state-tree update to persist.
    pub update: StateUpdate,
}

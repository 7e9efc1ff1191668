//! Building a block template from candidate transactions (for miners).
//!
//! Candidates are tried in the given order; one that fails against the
//! state so far is skipped and reported, and the template is built from the
//! rest. The result's header is complete except for the nonce.

use crate::block::{Block, Header, transactions_root};
use crate::commitment::{StateUpdate, TreeState, compute_state_update};
use crate::consensus::{ConsensusParams, Target};
use crate::error::{BlockError, TxError};
use crate::execution::{apply_transaction, credit_miner};
use crate::primitives::{AccountId, Balance, Hash, Timestamp};
use crate::state::{BlockEnv, BlockHashes, Overlay};
use crate::transaction::SignedTransaction;
use jmt::storage::TreeReader;
use parity_scale_codec::Encode;

/// A block ready for nonce search.
#[derive(Debug, Clone)]
pub struct Template {
    /// The block with nonce 0.
    pub block: Block,
    /// The state writes, valid for any nonce.
    pub update: StateUpdate,
    /// Fees collected.
    pub fees: Balance,
    /// Candidates left out, and why.
    pub rejected: Vec<(Hash, TxError)>,
}

/// Inputs of [`build_template`].
#[derive(Debug, Clone)]
pub struct TemplateInput {
    /// Header of the block to extend.
    pub parent: Header,
    /// Timestamp of the new block.
    pub timestamp: Timestamp,
    /// Its target.
    pub target: Target,
    /// Reward recipient.
    pub miner: AccountId,
}

/// Builds a template on `input.parent`, whose state `tree` holds as the
/// latest version. Signatures of candidates must already be verified.
pub fn build_template<R: TreeReader>(
    tree: &R,
    history: &dyn BlockHashes,
    input: TemplateInput,
    candidates: impl IntoIterator<Item = SignedTransaction>,
    params: &ConsensusParams,
) -> Result<Template, BlockError> {
    let state = TreeState::new(tree, input.parent.number);
    let number = input.parent.number.saturating_add(1);
    let mut overlay = Overlay::with_env(&state, BlockEnv { number, history });
    let mut included: Vec<SignedTransaction> = Vec::new();
    let mut rejected = Vec::new();
    let mut fees: Balance = 0;
    // Leave room for the header and the vector length prefix.
    let mut size: usize = crate::block::HEADER_BYTES.saturating_add(8);
    let max_size = usize::try_from(params.max_block_bytes).unwrap_or(usize::MAX);
    let max_count = usize::try_from(params.max_block_transactions).unwrap_or(usize::MAX);
    for t in candidates {
        if included.len() >= max_count {
            break;
        }
        let len = t.encoded_size();
        if size.saturating_add(len) > max_size {
            continue;
        }
        let checkpoint = overlay.checkpoint();
        match apply_transaction(&mut overlay, &t.tx, params) {
            Ok(fee) => match fees.checked_add(fee) {
                Some(f) => {
                    fees = f;
                    size = size.saturating_add(len);
                    included.push(t);
                }
                None => {
                    overlay.restore(checkpoint);
                    rejected.push((t.hash(), TxError::Overflow("total fees of the block")));
                }
            },
            Err(e) => {
                overlay.restore(checkpoint);
                rejected.push((t.hash(), e));
            }
        }
    }
    credit_miner(&mut overlay, &input.miner, params.block_reward, fees)?;
    let changes = overlay.into_changes();
    let update = compute_state_update(tree, &changes, number)?;
    let tx_hashes: Vec<Hash> = included.iter().map(|t| t.hash()).collect();
    let header = Header {
        parent_hash: input.parent.hash(),
        number,
        timestamp: input.timestamp,
        transactions_root: transactions_root(&tx_hashes),
        state_root: update.root,
        target: input.target,
        miner: input.miner,
        nonce: 0,
    };
    Ok(Template {
        block: Block {
            header,
            transactions: included,
        },
        update,
        fees,
        rejected,
    })
}

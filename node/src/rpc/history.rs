//! `chain_getHistory`: a page of the history index
//! ([`crate::storage::history`]) joined with the blocks it points at.

use super::api::{HistoryCursor, HistoryItem, HistoryPageView};
use crate::storage::history::{HistoryPosition, MINED};
use crate::storage::{Store, StoreResult};
use cachecash_runtime::{BlockNumber, Call, Hash, Header, SignedTransaction};

/// The name of a call in history entries (as in the call's JSON `type`).
fn kind(call: &Call) -> &'static str {
    match call {
        Call::Transfer { .. } => "transfer",
        Call::EscrowOpen { .. } => "escrowOpen",
        Call::EscrowTopUp { .. } => "escrowTopUp",
        Call::EscrowClose { .. } => "escrowClose",
        Call::TicketClaim { .. } => "ticketClaim",
        Call::DuplicateTicketProof { .. } => "duplicateTicketProof",
    }
}

/// One entry from its block and, unless mined, its transaction.
fn item(
    hash: Hash,
    header: &Header,
    index: u32,
    tx: Option<&SignedTransaction>,
) -> Option<HistoryItem> {
    let mut item = HistoryItem {
        block_number: header.number,
        block_hash: hash,
        timestamp: header.timestamp,
        index: None,
        transaction: None,
        kind: "mined".into(),
        account: header.miner,
        dest: None,
        amount: None,
        fee: None,
    };
    if index == MINED {
        return Some(item);
    }
    let tx = tx?;
    item.index = Some(index);
    item.transaction = Some(tx.hash());
    item.kind = kind(&tx.tx.call).into();
    item.account = tx.tx.signer;
    item.fee = Some(tx.tx.fee.to_string());
    match &tx.tx.call {
        Call::Transfer { dest, amount } => {
            item.dest = Some(*dest);
            item.amount = Some(amount.to_string());
        }
        Call::EscrowOpen { payment, .. } => item.amount = Some(payment.to_string()),
        _ => {}
    }
    Some(item)
}

/// A page of `subject`'s history, newest first. Entries whose block left
/// the canonical chain while the page was read are skipped.
pub fn page(
    store: &dyn Store,
    subject: &Hash,
    before: Option<HistoryCursor>,
    limit: u64,
) -> StoreResult<HistoryPageView> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let before = before.map(|c| HistoryPosition {
        number: c.block,
        index: c.index,
    });
    let records = store.history(&subject.0, before, limit)?;
    let next = (records.len() == limit)
        .then(|| records.last())
        .flatten()
        .map(|r| HistoryCursor {
            block: r.position.number,
            index: r.position.index,
        });
    let mut block: Option<(BlockNumber, Hash, Header, Vec<SignedTransaction>)> = None;
    let mut entries = Vec::with_capacity(records.len());
    for r in records {
        let number = r.position.number;
        if block.as_ref().is_none_or(|b| b.0 != number) {
            block = None;
            if let Some(hash) = store.canonical_hash(number)?
                && let (Some(h), Some(body)) = (store.header(&hash)?, store.body(&hash)?)
            {
                block = Some((number, hash, h.header, body));
            }
        }
        let Some((_, hash, header, body)) = &block else {
            continue;
        };
        let tx = usize::try_from(r.position.index)
            .ok()
            .and_then(|i| body.get(i));
        // The entry must still be the transaction it names.
        if r.tx.is_some() && tx.map(|t| t.hash()) != r.tx {
            continue;
        }
        entries.extend(item(*hash, header, r.position.index, tx));
    }
    Ok(HistoryPageView { entries, next })
}

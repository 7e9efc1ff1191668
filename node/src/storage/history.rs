//! The history index: for every account and escrow, the canonical blocks
//! and transactions that touched it, for explorers (`chain_getHistory`).
//!
//! # What is indexed
//!
//! A *subject* is a 32-byte id: an account or an escrow. A transaction
//! touches:
//! - its signer (every call);
//! - a transfer's receiving account;
//! - the escrow it opens (its id is derived from the genesis hash, the
//!   signer and the nonce), tops up or closes;
//! - the escrows whose tickets it claims, or whose duplicate tickets it
//!   proves.
//!
//! A block also touches its miner (the reward and the fees), recorded at
//! the index [`MINED`] (after every transaction of the block). The genesis
//! block pays no reward and records none.
//!
//! # Encoding (the `history` table)
//!
//! Key: subject (32 bytes) ‖ block number (u64 big-endian) ‖ index in the
//! block (u32 big-endian, [`MINED`] for the miner's entry): 44 bytes, so a
//! subject's entries are contiguous and sorted by position, and "newest
//! first from a position" is one reverse scan. Value: the transaction's
//! 32-byte hash, or nothing for a mined entry.
//!
//! # Invariants
//!
//! Entries exist for canonical blocks only: a commit adds a block's entries
//! in the same atomic write as the block, and a revert removes exactly the
//! keys the commit added (recomputed from the block), in the same write
//! that moves the head back. The index grows with the chain, by one small
//! entry per subject a transaction touches.

use super::{StoreError, StoreResult};
use cachecash_runtime::microcash::escrow_id;
use cachecash_runtime::{BlockNumber, Call, Hash, Header, SignedTransaction};
use std::collections::BTreeSet;

/// The index of a block's miner entry.
pub const MINED: u32 = u32::MAX;

/// Length of a key of the `history` table.
pub const KEY_BYTES: usize = 44;

/// Where an entry sits: the block and the index in it ([`MINED`] for the
/// miner's entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HistoryPosition {
    /// The block number.
    pub number: BlockNumber,
    /// The transaction's index, or [`MINED`].
    pub index: u32,
}

/// One entry of a subject's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryRecord {
    /// Where it sits.
    pub position: HistoryPosition,
    /// The transaction; `None` for the miner's entry.
    pub tx: Option<Hash>,
}

/// The key of `subject`'s entry at `position`.
pub fn key(subject: &[u8; 32], position: HistoryPosition) -> [u8; KEY_BYTES] {
    let mut k = [0u8; KEY_BYTES];
    k[..32].copy_from_slice(subject);
    k[32..40].copy_from_slice(&position.number.to_be_bytes());
    k[40..].copy_from_slice(&position.index.to_be_bytes());
    k
}

/// Decodes a key and its value into the subject and the record.
pub fn decode(key: &[u8], value: &[u8]) -> StoreResult<([u8; 32], HistoryRecord)> {
    let corrupt = |message: String| StoreError::Corrupt {
        what: format!("history {}", hex::encode(key)),
        message,
    };
    let (Ok(subject), Ok(number), Ok(index)) = (
        <[u8; 32]>::try_from(key.get(..32).unwrap_or_default()),
        <[u8; 8]>::try_from(key.get(32..40).unwrap_or_default()),
        <[u8; 4]>::try_from(key.get(40..).unwrap_or_default()),
    ) else {
        return Err(corrupt(format!(
            "the key is {} bytes, not {KEY_BYTES}",
            key.len()
        )));
    };
    let position = HistoryPosition {
        number: u64::from_be_bytes(number),
        index: u32::from_be_bytes(index),
    };
    let tx = match (position.index, value.len()) {
        (MINED, 0) => None,
        (i, 32) if i != MINED => <[u8; 32]>::try_from(value).ok().map(Hash),
        (_, n) => return Err(corrupt(format!("a value of {n} bytes at index {index:?}"))),
    };
    Ok((subject, HistoryRecord { position, tx }))
}

/// The subjects `tx` touches, each once.
pub fn subjects(genesis: &Hash, tx: &SignedTransaction) -> BTreeSet<[u8; 32]> {
    let t = &tx.tx;
    let mut out = BTreeSet::new();
    out.insert(t.signer.0);
    match &t.call {
        Call::Transfer { dest, .. } => {
            out.insert(dest.0);
        }
        Call::EscrowOpen { .. } => {
            out.insert(escrow_id(genesis, &t.signer, t.nonce).0);
        }
        Call::EscrowTopUp { escrow, .. } | Call::EscrowClose { escrow } => {
            out.insert(escrow.0);
        }
        Call::TicketClaim { claims } => {
            out.extend(claims.iter().map(|c| c.ticket.ticket.escrow.0));
        }
        Call::DuplicateTicketProof { first, .. } => {
            out.insert(first.ticket.escrow.0);
        }
    }
    out
}

/// Every `(key, value)` a canonical block adds to the index: its
/// transactions' subjects, and its miner unless it is genesis.
pub fn entries(
    genesis: &Hash,
    header: &Header,
    transactions: &[SignedTransaction],
    tx_hashes: &[Hash],
) -> StoreResult<Vec<([u8; KEY_BYTES], Vec<u8>)>> {
    let mut out = Vec::new();
    for (index, (tx, hash)) in transactions.iter().zip(tx_hashes).enumerate() {
        let index = u32::try_from(index)
            .ok()
            .filter(|i| *i != MINED)
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("block {}", header.number),
                message: format!("transaction index {index} does not fit the history index"),
            })?;
        let position = HistoryPosition {
            number: header.number,
            index,
        };
        for s in subjects(genesis, tx) {
            out.push((key(&s, position), hash.0.to_vec()));
        }
    }
    if header.number > 0 {
        let position = HistoryPosition {
            number: header.number,
            index: MINED,
        };
        out.push((key(&header.miner.0, position), Vec::new()));
    }
    Ok(out)
}

/// The key a scan of `subject`'s history newest first starts at
/// (inclusive) so that it yields the entries strictly before `before`, or
/// every entry when `before` is `None`; `None` when nothing lies before.
pub fn scan_start(subject: &[u8; 32], before: Option<HistoryPosition>) -> Option<[u8; KEY_BYTES]> {
    let last = match before {
        None => HistoryPosition {
            number: u64::MAX,
            index: MINED,
        },
        Some(p) => match p.index.checked_sub(1) {
            Some(index) => HistoryPosition {
                number: p.number,
                index,
            },
            None => HistoryPosition {
                number: p.number.checked_sub(1)?,
                index: MINED,
            },
        },
    };
    Some(key(subject, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keys_have_the_golden_layout_and_sort_by_position() {
        let subject = [0xab; 32];
        let k = key(
            &subject,
            HistoryPosition {
                number: 0x0102,
                index: 3,
            },
        );
        assert_eq!(
            hex::encode(k),
            "abababababababababababababababababababababababababababababababab\
             0000000000000102\
             00000003"
        );
        let mined = key(
            &subject,
            HistoryPosition {
                number: 0x0102,
                index: MINED,
            },
        );
        let next = key(
            &subject,
            HistoryPosition {
                number: 0x0103,
                index: 0,
            },
        );
        assert!(k < mined && mined < next);
        let (s, r) = decode(&mined, &[]).unwrap();
        assert_eq!((s, r.tx, r.position.index), (subject, None, MINED));
        let (_, r) = decode(&k, &[7; 32]).unwrap();
        assert_eq!(r.tx, Some(Hash([7; 32])));
    }

    #[test]
    fn malformed_history_records_are_reported_as_corrupt() {
        let k = key(
            &[1; 32],
            HistoryPosition {
                number: 1,
                index: 0,
            },
        );
        assert!(decode(&k[..40], &[0; 32]).is_err());
        assert!(decode(&k, &[0; 31]).is_err());
        let mined = key(
            &[1; 32],
            HistoryPosition {
                number: 1,
                index: MINED,
            },
        );
        assert!(decode(&mined, &[0; 32]).is_err());
    }

    #[test]
    fn a_scan_from_a_position_starts_just_before_it() {
        let s = [2; 32];
        let at = |number, index| Some(HistoryPosition { number, index });
        assert_eq!(scan_start(&s, at(5, 2)), Some(key(&s, at(5, 1).unwrap())));
        assert_eq!(
            scan_start(&s, at(5, 0)),
            Some(key(&s, at(4, MINED).unwrap()))
        );
        assert_eq!(scan_start(&s, at(0, 0)), None);
        assert_eq!(
            scan_start(&s, None),
            Some(key(&s, at(u64::MAX, MINED).unwrap()))
        );
    }
}

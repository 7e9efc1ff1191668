//! The history index on both backends: what a block adds, newest-first
//! pages, reverts, and the upgrade of a format 4 database.

use super::*;
use crate::storage::history::{HistoryPosition, HistoryRecord, MINED};

fn at(number: u64, index: u32) -> HistoryPosition {
    HistoryPosition { number, index }
}

fn positions(records: &[HistoryRecord]) -> Vec<HistoryPosition> {
    records.iter().map(|r| r.position).collect()
}

fn history_lists_what_touched_an_account_newest_first_in_pages(
    s: &dyn Store,
) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    let b1 = chain.extend_with_transfers(s, MINER, 2)?;
    let b2 = chain.extend_with_transfers(s, OTHER_MINER, 1)?;
    let alice = account(ALICE).0;
    let all = s.history(&alice, None, 100)?;
    assert_eq!(positions(&all), [at(2, 0), at(1, 1), at(1, 0)]);
    assert_eq!(all[0].tx, Some(b2.tx_hashes[0]));
    assert_eq!(all[2].tx, Some(b1.tx_hashes[0]));
    // The receiving account has the same entries.
    assert_eq!(
        positions(&s.history(&account(BOB).0, None, 100)?),
        positions(&all)
    );
    // Miners: one reward entry per block mined, without a transaction.
    let mined = s.history(&account(MINER).0, None, 100)?;
    assert_eq!(
        mined,
        [HistoryRecord {
            position: at(1, MINED),
            tx: None
        }]
    );
    assert_eq!(
        positions(&s.history(&account(OTHER_MINER).0, None, 100)?),
        [at(2, MINED)]
    );
    // Pages: each continues strictly before the last entry of the previous.
    let first = s.history(&alice, None, 2)?;
    assert_eq!(positions(&first), [at(2, 0), at(1, 1)]);
    let rest = s.history(&alice, Some(first[1].position), 2)?;
    assert_eq!(positions(&rest), [at(1, 0)]);
    assert!(s.history(&alice, Some(at(1, 0)), 2)?.is_empty());
    // An account nothing touched has no history.
    assert!(s.history(&[9; 32], None, 10)?.is_empty());
    Ok(())
}

fn a_reverted_block_leaves_no_history(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    chain.extend_with_transfers(s, MINER, 1)?;
    chain.extend_with_transfers(s, OTHER_MINER, 2)?;
    s.revert_head()?;
    assert_eq!(
        positions(&s.history(&account(ALICE).0, None, 10)?),
        [at(1, 0)]
    );
    assert!(s.history(&account(OTHER_MINER).0, None, 10)?.is_empty());
    // The replacement block's entries are its own.
    let b2 = chain.extend_with_transfers(s, MINER, 1)?;
    let alice = s.history(&account(ALICE).0, None, 10)?;
    assert_eq!(positions(&alice), [at(2, 0), at(1, 0)]);
    assert_eq!(alice[0].tx, Some(b2.tx_hashes[0]));
    Ok(())
}

on_both_backends!(
    history_lists_what_touched_an_account_newest_first_in_pages,
    a_reverted_block_leaves_no_history,
);

#[test]
fn a_format_4_database_is_upgraded_with_the_history_of_its_canonical_blocks() -> anyhow::Result<()>
{
    let dir = tempfile::TempDir::new()?;
    let chain = Chain::new();
    let subjects = [ALICE, BOB, MINER].map(|n| account(n).0);
    let before = {
        let s = RocksStore::open(dir.path())?;
        chain.init(&s)?;
        for i in 1..4 {
            chain.extend_with_transfers(&s, MINER, i)?;
        }
        subjects
            .iter()
            .map(|a| s.history(a, None, 100))
            .collect::<Result<Vec<_>, _>>()?
    };
    assert_eq!(before[0].len(), 6);
    {
        // What a version 4 node left: no history table content, version 4.
        let db = raw_db(dir.path());
        let history = db.cf_handle("history").context("history cf")?;
        db.delete_range_cf(history, &[0u8; 1][..], &[0xffu8; 45][..])?;
        let meta = db.cf_handle("meta").context("meta cf")?;
        db.put_cf(meta, b"format_version", 4u32.to_le_bytes())?;
    }
    {
        let s = RocksStore::open(dir.path())?;
        let after = subjects
            .iter()
            .map(|a| s.history(a, None, 100))
            .collect::<Result<Vec<_>, _>>()?;
        assert_eq!(after, before);
    }
    let db = raw_db(dir.path());
    let meta = db.cf_handle("meta").context("meta cf")?;
    assert_eq!(
        db.get_cf(meta, b"format_version")?,
        Some(FORMAT_VERSION.to_le_bytes().to_vec())
    );
    Ok(())
}

//! The storage test suite. Every behaviour test is a function over
//! `&dyn Store` and runs against both backends (`on_memory::*` and
//! `on_rocksdb::*`); RocksDB-only behaviour (persistence, format version,
//! open errors) is tested at the end. Blocks are real: built, verified and
//! executed by the runtime.

use super::*;
use anyhow::Context as _;
use cachecash_runtime::builder::{TemplateInput, build_template};
use cachecash_runtime::commitment::{read_account, root_at};
use cachecash_runtime::consensus::{MEDIAN_TIME_SPAN, median_time_past};
use cachecash_runtime::genesis::{GenesisConfig, build_genesis};
use cachecash_runtime::verify::{ChainContext, UncheckedBlock};
use cachecash_runtime::{Account, AccountId, Call, ConsensusParams, Target, Transaction};
use ed25519_dalek::SigningKey;
use primitive_types::U256;
use proptest::prelude::*;
use std::path::Path;

const GENESIS_TIME: u64 = 1_700_000_000_000;
const BLOCK_TIME: u64 = 1_000;
const INITIAL_BALANCE: u128 = 1_000_000;
const REWARD: u128 = 50;
const FEE: u128 = 1;

/// Funded at genesis.
const ALICE: u8 = 1;
/// Funded at genesis.
const BOB: u8 = 2;
/// Unfunded; mines.
const MINER: u8 = 3;
/// Unfunded; mines competing blocks.
const OTHER_MINER: u8 = 4;

fn params() -> ConsensusParams {
    ConsensusParams {
        target_block_time_ms: BLOCK_TIME,
        initial_target: Target::MAX,
        pow_limit: Target::MAX,
        retarget_window: 0,
        block_reward: REWARD,
        minimum_fee: FEE,
        max_future_drift_ms: 30_000,
        max_block_transactions: 100,
        max_block_bytes: 1 << 20,
        duplicate_reporter_share_percent: 50,
        fee_per_byte: 0,
    }
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn account(n: u8) -> AccountId {
    AccountId::from_signing_key(&key(n))
}

/// A dev chain and helpers that build real blocks on a store's head.
struct Chain {
    params: ConsensusParams,
    genesis: Genesis,
}

impl Chain {
    fn new() -> Self {
        Self::with_genesis_time(GENESIS_TIME)
    }

    fn with_genesis_time(timestamp: u64) -> Self {
        let params = params();
        let config = GenesisConfig {
            timestamp,
            balances: vec![
                (account(ALICE), INITIAL_BALANCE),
                (account(BOB), INITIAL_BALANCE),
            ],
        };
        let genesis = build_genesis(&params, &config).expect("dev genesis builds");
        Chain { params, genesis }
    }

    fn init(&self, s: &dyn Store) -> anyhow::Result<Head> {
        Ok(s.initialize(&self.genesis)?)
    }

    /// A transfer from `from` with its nonce at the head plus `nonce_offset`.
    fn transfer(
        &self,
        s: &dyn Store,
        from: u8,
        to: u8,
        amount: u128,
        nonce_offset: u64,
    ) -> anyhow::Result<SignedTransaction> {
        let head = s.head()?.context("store is not initialized")?;
        let nonce = read_account(&TreeView(s), &account(from), head.number)?
            .unwrap_or_default()
            .nonce;
        let tx = Transaction {
            signer: account(from),
            nonce: nonce + nonce_offset,
            fee: FEE,
            call: Call::Transfer {
                dest: account(to),
                amount,
            },
        };
        Ok(tx.sign(&key(from), &self.genesis.hash))
    }

    /// Builds, verifies and executes the next block on the store's head.
    fn build(
        &self,
        s: &dyn Store,
        miner: u8,
        txs: Vec<SignedTransaction>,
    ) -> anyhow::Result<ExecutedBlock> {
        let head = s.head()?.context("store is not initialized")?;
        let parent = s.header(&head.hash)?.context("head header")?.header;
        let timestamp = parent.timestamp + BLOCK_TIME;
        let template = build_template(
            &TreeView(s),
            &TreeView(s),
            TemplateInput {
                parent: parent.clone(),
                timestamp,
                target: Target::MAX,
                miner: account(miner),
            },
            txs,
            &self.params,
        )?;
        anyhow::ensure!(
            template.rejected.is_empty(),
            "template rejected transactions: {:?}",
            template.rejected
        );
        let first = head.number.saturating_sub(MEDIAN_TIME_SPAN as u64 - 1);
        let mut timestamps = Vec::new();
        for n in first..=head.number {
            let hash = s.canonical_hash(n)?.context("canonical hash")?;
            timestamps.push(
                s.header(&hash)?
                    .context("ancestor header")?
                    .header
                    .timestamp,
            );
        }
        let ctx = ChainContext {
            parent,
            median_time_past: median_time_past(&timestamps),
            expected_target: Target::MAX,
            now: timestamp,
        };
        let executed = UncheckedBlock::new(template.block, &self.params)?
            .check_stateless(&self.genesis.hash, &self.params)?
            .check_stateful(&ctx, &TreeView(s), &TreeView(s), &self.params)?;
        Ok(executed)
    }

    /// The cumulative work of `block` on top of its stored parent.
    fn total_work(&self, s: &dyn Store, block: &ExecutedBlock) -> anyhow::Result<[u8; 32]> {
        let parent = s
            .header(&block.block.header.parent_hash)?
            .context("parent header")?;
        let total = U256::from_big_endian(&parent.total_work) + block.block.header.target.work();
        Ok(total.to_big_endian())
    }

    fn commit(&self, s: &dyn Store, block: &ExecutedBlock) -> anyhow::Result<Head> {
        let work = self.total_work(s, block)?;
        Ok(s.commit_block(block, work)?)
    }

    /// Builds and commits the next block.
    fn extend(
        &self,
        s: &dyn Store,
        miner: u8,
        txs: Vec<SignedTransaction>,
    ) -> anyhow::Result<ExecutedBlock> {
        let block = self.build(s, miner, txs)?;
        self.commit(s, &block)?;
        Ok(block)
    }

    /// Extends with a block holding `count` transfers from Alice to Bob.
    fn extend_with_transfers(
        &self,
        s: &dyn Store,
        miner: u8,
        count: u64,
    ) -> anyhow::Result<ExecutedBlock> {
        let txs = (0..count)
            .map(|i| self.transfer(s, ALICE, BOB, 10 + u128::from(i), i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.extend(s, miner, txs)
    }
}

fn balance(s: &dyn Store, who: u8, version: u64) -> anyhow::Result<Option<u128>> {
    Ok(read_account(&TreeView(s), &account(who), version)?.map(|a| a.balance))
}

fn head(s: &dyn Store) -> anyhow::Result<Head> {
    s.head()?.context("store is not initialized")
}

/// Everything observable about a store's canonical chain, for comparisons.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    head: Head,
    blocks: Vec<(Hash, StoredHeader, Vec<SignedTransaction>)>,
    tx_locations: Vec<(Hash, Option<TxLocation>)>,
    roots: Vec<Hash>,
    accounts: Vec<Vec<Option<Account>>>,
}

fn snapshot(s: &dyn Store) -> anyhow::Result<Snapshot> {
    let head = head(s)?;
    let mut blocks = Vec::new();
    let mut tx_locations = Vec::new();
    let mut roots = Vec::new();
    let mut accounts = Vec::new();
    for n in 0..=head.number {
        let hash = s.canonical_hash(n)?.context("canonical hash")?;
        let header = s.header(&hash)?.context("header")?;
        let body = s.body(&hash)?.context("body")?;
        for tx in &body {
            tx_locations.push((tx.hash(), s.tx_location(&tx.hash())?));
        }
        blocks.push((hash, header, body));
        roots.push(root_at(&TreeView(s), n)?);
        accounts.push(
            [ALICE, BOB, MINER, OTHER_MINER]
                .iter()
                .map(|who| read_account(&TreeView(s), &account(*who), n))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    Ok(Snapshot {
        head,
        blocks,
        tx_locations,
        roots,
        accounts,
    })
}

// ---------------------------------------------------------------------------
// Behaviour tests, each run on both backends.
// ---------------------------------------------------------------------------

fn genesis_init_writes_block_zero_and_is_idempotent(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    let g = &chain.genesis;
    assert_eq!(s.head()?, None);

    let h = chain.init(s)?;
    assert_eq!(
        h,
        Head {
            hash: g.hash,
            number: 0
        }
    );
    assert_eq!(s.head()?, Some(h));
    let stored = s.header(&g.hash)?.context("genesis header")?;
    assert_eq!(stored.header, g.block.header);
    assert_eq!(stored.total_work, Target::MAX.work().to_big_endian());
    assert_eq!(U256::from_big_endian(&stored.total_work), U256::one());
    assert_eq!(s.body(&g.hash)?, Some(Vec::new()));
    assert_eq!(s.canonical_hash(0)?, Some(g.hash));
    assert_eq!(s.canonical_hash(1)?, None);
    assert_eq!(root_at(&TreeView(s), 0)?, g.block.header.state_root);
    assert_eq!(balance(s, ALICE, 0)?, Some(INITIAL_BALANCE));
    assert_eq!(balance(s, BOB, 0)?, Some(INITIAL_BALANCE));
    assert_eq!(balance(s, MINER, 0)?, None);

    // Re-initializing with the same genesis changes nothing.
    let before = snapshot(s)?;
    assert_eq!(chain.init(s)?, h);
    assert_eq!(snapshot(s)?, before);

    // On a longer chain it returns the current head, not genesis.
    let b1 = chain.extend(s, MINER, vec![])?;
    assert_eq!(
        chain.init(s)?,
        Head {
            hash: b1.hash,
            number: 1
        }
    );
    Ok(())
}

fn initialize_with_another_genesis_is_refused(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    let other = Chain::with_genesis_time(GENESIS_TIME + 1);
    assert_ne!(chain.genesis.hash, other.genesis.hash);
    chain.init(s)?;
    chain.extend(s, MINER, vec![])?;
    let before = snapshot(s)?;

    let err = other.init(s).expect_err("another genesis must be refused");
    let err = err.downcast::<StoreError>()?;
    match &err {
        StoreError::GenesisMismatch {
            found, expected, ..
        } => {
            assert_eq!(*found, chain.genesis.hash);
            assert_eq!(*expected, other.genesis.hash);
        }
        other => panic!("expected GenesisMismatch, got {other:?}"),
    }
    assert!(err.to_string().contains("purge-chain"), "{err}");
    assert_eq!(snapshot(s)?, before);
    Ok(())
}

fn uninitialized_store_refuses_writes(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    // Build a valid block 1 elsewhere.
    let elsewhere = MemoryStore::new();
    chain.init(&elsewhere)?;
    let b1 = chain.build(&elsewhere, MINER, vec![])?;

    assert!(matches!(
        s.commit_block(&b1, [0; 32]),
        Err(StoreError::Uninitialized)
    ));
    assert!(matches!(s.revert_head(), Err(StoreError::Uninitialized)));
    assert_eq!(s.head()?, None);
    assert_eq!(s.header(&b1.hash)?, None);
    Ok(())
}

fn commit_then_read_back(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    let t0 = chain.transfer(s, ALICE, BOB, 100, 0)?;
    let t1 = chain.transfer(s, ALICE, BOB, 200, 1)?;
    let t2 = chain.transfer(s, BOB, ALICE, 7, 0)?;
    let block = chain.build(s, MINER, vec![t0.clone(), t1.clone(), t2.clone()])?;
    let work = chain.total_work(s, &block)?;
    assert_eq!(U256::from_big_endian(&work), U256::from(2));

    let h = s.commit_block(&block, work)?;
    assert_eq!(
        h,
        Head {
            hash: block.hash,
            number: 1
        }
    );
    assert_eq!(s.head()?, Some(h));
    assert_eq!(
        s.header(&block.hash)?,
        Some(StoredHeader {
            header: block.block.header.clone(),
            total_work: work,
        })
    );
    assert_eq!(
        s.body(&block.hash)?,
        Some(vec![t0.clone(), t1.clone(), t2.clone()])
    );
    assert_eq!(s.canonical_hash(0)?, Some(chain.genesis.hash));
    assert_eq!(s.canonical_hash(1)?, Some(block.hash));
    assert_eq!(s.canonical_hash(2)?, None);
    for (index, tx) in [&t0, &t1, &t2].into_iter().enumerate() {
        assert_eq!(
            s.tx_location(&tx.hash())?,
            Some(TxLocation {
                block: block.hash,
                index: u32::try_from(index)?,
            })
        );
    }
    assert_eq!(block.tx_hashes, vec![t0.hash(), t1.hash(), t2.hash()]);
    assert_eq!(s.tx_location(&Hash([9; 32]))?, None);
    assert_eq!(s.header(&Hash([9; 32]))?, None);
    assert_eq!(s.body(&Hash([9; 32]))?, None);
    Ok(())
}

fn accounts_read_at_old_and_new_versions(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    let t = chain.transfer(s, ALICE, BOB, 1_000, 0)?;
    chain.extend(s, MINER, vec![t])?;
    let t = chain.transfer(s, BOB, ALICE, 300, 0)?;
    chain.extend(s, MINER, vec![t])?;

    let alice = |v| read_account(&TreeView(s), &account(ALICE), v);
    assert_eq!(
        alice(0)?,
        Some(Account {
            nonce: 0,
            balance: INITIAL_BALANCE
        })
    );
    assert_eq!(
        alice(1)?,
        Some(Account {
            nonce: 1,
            balance: INITIAL_BALANCE - 1_000 - FEE
        })
    );
    assert_eq!(
        alice(2)?,
        Some(Account {
            nonce: 1,
            balance: INITIAL_BALANCE - 1_000 - FEE + 300
        })
    );
    // Reads above the head see the head's state.
    assert_eq!(alice(u64::MAX)?, alice(2)?);

    assert_eq!(balance(s, BOB, 0)?, Some(INITIAL_BALANCE));
    assert_eq!(balance(s, BOB, 1)?, Some(INITIAL_BALANCE + 1_000));
    assert_eq!(
        balance(s, BOB, 2)?,
        Some(INITIAL_BALANCE + 1_000 - 300 - FEE)
    );
    assert_eq!(balance(s, MINER, 0)?, None);
    assert_eq!(balance(s, MINER, 1)?, Some(REWARD + FEE));
    assert_eq!(balance(s, MINER, 2)?, Some(2 * (REWARD + FEE)));
    assert_eq!(balance(s, OTHER_MINER, 2)?, None);
    Ok(())
}

fn state_root_after_commit_matches_header(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    let mut headers = vec![chain.genesis.block.header.clone()];
    for i in 0..4 {
        let block = chain.extend_with_transfers(s, MINER, i)?;
        assert_eq!(block.update.root, block.block.header.state_root);
        headers.push(block.block.header.clone());
        // Every version, old and new, keeps its root.
        for (n, header) in headers.iter().enumerate() {
            assert_eq!(root_at(&TreeView(s), u64::try_from(n)?)?, header.state_root);
        }
    }
    Ok(())
}

fn revert_removes_block_state_and_index(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    let b1 = chain.extend_with_transfers(s, MINER, 1)?;
    let at_b1 = snapshot(s)?;
    let b2 = chain.extend_with_transfers(s, MINER, 3)?;
    assert_eq!(head(s)?.number, 2);

    let parent = s.revert_head()?;
    assert_eq!(
        parent,
        Head {
            hash: b1.hash,
            number: 1
        }
    );
    assert_eq!(s.head()?, Some(parent));
    // The block stays in the index as a side block, still known valid.
    assert_eq!(
        s.header(&b2.hash)?.map(|h| h.header),
        Some(b2.block.header.clone())
    );
    assert_eq!(s.body(&b2.hash)?, Some(b2.block.transactions.clone()));
    assert_eq!(s.block_status(&b2.hash)?, Some(BlockStatus::Valid));
    assert_eq!(s.canonical_hash(2)?, None);
    for tx in &b2.tx_hashes {
        assert_eq!(s.tx_location(tx)?, None);
    }
    // Block 1's index is untouched.
    for (index, tx) in b1.tx_hashes.iter().enumerate() {
        assert_eq!(
            s.tx_location(tx)?,
            Some(TxLocation {
                block: b1.hash,
                index: u32::try_from(index)?
            })
        );
    }
    // The state is exactly block 1's again: no node or value of version 2
    // survives.
    assert_eq!(root_at(&TreeView(s), 1)?, b1.block.header.state_root);
    assert!(root_at(&TreeView(s), 2).is_err());
    for key in b2.update.batch.node_batch.nodes().keys() {
        assert_eq!(s.tree_node(key)?, None, "node {key:?} survived the revert");
    }
    for (_, key_hash) in b2.update.batch.node_batch.values().keys() {
        assert_eq!(
            s.tree_value(u64::MAX, *key_hash)?,
            s.tree_value(1, *key_hash)?
        );
    }
    assert_eq!(snapshot(s)?, at_b1);
    Ok(())
}

fn a_different_block_can_replace_a_reverted_one(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    let b1 = chain.extend_with_transfers(s, MINER, 2)?;
    s.revert_head()?;

    let b1b = chain.extend_with_transfers(s, OTHER_MINER, 1)?;
    assert_ne!(b1.hash, b1b.hash);
    assert_eq!(
        head(s)?,
        Head {
            hash: b1b.hash,
            number: 1
        }
    );
    assert_eq!(s.canonical_hash(1)?, Some(b1b.hash));
    assert!(s.header(&b1.hash)?.is_some(), "b1 stays in the index");
    assert_eq!(root_at(&TreeView(s), 1)?, b1b.block.header.state_root);
    assert_eq!(balance(s, MINER, 1)?, None);
    assert_eq!(balance(s, OTHER_MINER, 1)?, Some(REWARD + FEE));
    assert_eq!(balance(s, ALICE, 1)?, Some(INITIAL_BALANCE - 10 - FEE));
    // b1's transactions were re-mined in part: the first transfer (same
    // signer, nonce and content) is in b1b now, the second is in no block.
    assert_eq!(b1.tx_hashes.first(), b1b.tx_hashes.first());
    let first = b1b.tx_hashes.first().context("one transaction")?;
    assert_eq!(
        s.tx_location(first)?,
        Some(TxLocation {
            block: b1b.hash,
            index: 0
        })
    );
    let second = b1.tx_hashes.get(1).context("two transactions")?;
    assert_eq!(s.tx_location(second)?, None);

    // The chain keeps growing on the replacement.
    let b2 = chain.extend_with_transfers(s, MINER, 1)?;
    assert_eq!(b2.block.header.parent_hash, b1b.hash);
    assert_eq!(root_at(&TreeView(s), 2)?, b2.block.header.state_root);
    Ok(())
}

fn revert_of_genesis_is_refused(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    chain.extend(s, MINER, vec![])?;
    s.revert_head()?;
    let before = snapshot(s)?;
    assert!(matches!(s.revert_head(), Err(StoreError::RevertGenesis)));
    assert_eq!(snapshot(s)?, before);
    assert_eq!(head(s)?.hash, chain.genesis.hash);
    Ok(())
}

fn commit_not_on_head_is_refused(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    let b1 = chain.build(s, MINER, vec![])?;
    let b1b = chain.build(s, OTHER_MINER, vec![])?;
    chain.commit(s, &b1)?;
    let before = snapshot(s)?;

    // A sibling of the head, and the head itself again.
    for block in [&b1b, &b1] {
        match s.commit_block(block, [0; 32]) {
            Err(StoreError::NotOnHead {
                hash,
                number,
                head_hash,
                head_number,
            }) => {
                assert_eq!(hash, block.hash);
                assert_eq!(number, 1);
                assert_eq!(head_hash, b1.hash);
                assert_eq!(head_number, 1);
            }
            other => panic!("expected NotOnHead, got {other:?}"),
        }
    }
    // A block two above the head (built on a copy that is one ahead).
    let ahead = MemoryStore::new();
    chain.init(&ahead)?;
    chain.commit(&ahead, &b1)?;
    chain.extend(&ahead, MINER, vec![])?;
    let b3 = chain.build(&ahead, MINER, vec![])?;
    assert!(matches!(
        s.commit_block(&b3, [0; 32]),
        Err(StoreError::NotOnHead { number: 3, .. })
    ));

    assert_eq!(snapshot(s)?, before);
    assert_eq!(s.header(&b1b.hash)?, None);
    assert_eq!(s.header(&b3.hash)?, None);
    Ok(())
}

fn revert_and_recommit_many_blocks_round_trips(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    let mut blocks = Vec::new();
    let mut snapshots = vec![snapshot(s)?];
    for i in 0..6 {
        blocks.push(chain.extend_with_transfers(s, MINER, i % 3)?);
        snapshots.push(snapshot(s)?);
    }
    for expected in snapshots.iter().rev().skip(1) {
        s.revert_head()?;
        assert_eq!(&snapshot(s)?, expected);
    }
    assert!(matches!(s.revert_head(), Err(StoreError::RevertGenesis)));
    // The same executed blocks commit again and rebuild the same chain.
    for (block, expected) in blocks.iter().zip(snapshots.iter().skip(1)) {
        chain.commit(s, block)?;
        assert_eq!(&snapshot(s)?, expected);
    }
    Ok(())
}

fn concurrent_commits_of_one_block_succeed_once(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    let block = chain.build(s, MINER, vec![])?;
    let work = chain.total_work(s, &block)?;
    let results: Vec<StoreResult<Head>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| s.commit_block(&block, work)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("commit thread panicked"))
            .collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, StoreError::NotOnHead { .. }))
    );
    assert_eq!(head(s)?.number, 1);
    assert_eq!(root_at(&TreeView(s), 1)?, block.block.header.state_root);
    Ok(())
}

fn side_blocks_are_indexed_off_the_canonical_chain_and_pruned_below_the_window(
    s: &dyn Store,
) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    let b1 = chain.extend_with_transfers(s, MINER, 1)?;
    s.revert_head()?;
    let b1b = chain.build(s, OTHER_MINER, vec![])?;
    let work = chain.total_work(s, &b1b)?;
    chain.commit(s, &b1)?;
    let before = snapshot(s)?;

    s.store_block(&b1b.block, work, false)?;
    assert_eq!(s.block_status(&b1b.hash)?, Some(BlockStatus::Checked));
    assert_eq!(s.block_status(&b1.hash)?, Some(BlockStatus::Valid));
    assert_eq!(s.body(&b1b.hash)?, Some(b1b.block.transactions.clone()));
    assert_eq!(s.best_tip()?, None);
    // Storing a side block touches neither the canonical chain nor state.
    assert_eq!(snapshot(s)?, before);
    // Nothing at or above the cut-off height goes.
    assert_eq!(s.prune_side_blocks(1)?, 0);
    assert!(s.header(&b1b.hash)?.is_some());
    assert_eq!(s.prune_side_blocks(2)?, 1);
    assert_eq!(s.header(&b1b.hash)?, None);
    assert_eq!(s.body(&b1b.hash)?, None);
    assert_eq!(s.block_status(&b1b.hash)?, None);
    // The canonical block of that height is never pruned.
    assert_eq!(snapshot(s)?, before);
    assert_eq!(s.prune_side_blocks(u64::MAX)?, 0);
    Ok(())
}

fn best_tip_is_recorded_cleared_and_forgotten_when_invalid(s: &dyn Store) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    let b1 = chain.build(s, MINER, vec![])?;
    let work = chain.total_work(s, &b1)?;
    s.store_block(&b1.block, work, true)?;
    assert_eq!(s.best_tip()?, Some(b1.hash));
    s.clear_best_tip()?;
    assert_eq!(s.best_tip()?, None);
    s.store_block(&b1.block, work, true)?;
    assert_eq!(s.best_tip()?, Some(b1.hash));
    s.mark_invalid(&b1.hash)?;
    assert_eq!(s.block_status(&b1.hash)?, Some(BlockStatus::Invalid));
    assert_eq!(s.best_tip()?, None);
    // Storing it again changes nothing: it stays invalid.
    s.store_block(&b1.block, work, false)?;
    assert_eq!(s.block_status(&b1.hash)?, Some(BlockStatus::Invalid));
    // A block that is not stored cannot be marked.
    s.mark_invalid(&Hash([7; 32]))?;
    assert_eq!(s.block_status(&Hash([7; 32]))?, None);
    Ok(())
}

fn state_pruning_keeps_every_state_from_the_horizon_up_and_refuses_what_it_dropped(
    s: &dyn Store,
) -> anyhow::Result<()> {
    let chain = Chain::new();
    chain.init(s)?;
    for i in 0..8 {
        chain.extend_with_transfers(s, if i % 2 == 0 { MINER } else { OTHER_MINER }, 2)?;
    }
    let before = snapshot(s)?;
    assert_eq!(s.pruned_below()?, 0);
    let removed = s.prune_state(5)?;
    assert!(removed > 0, "eight blocks of transfers left stale nodes");
    assert_eq!(s.pruned_below()?, 5);
    assert_eq!(s.prune_state(5)?, 0, "pruning is idempotent");
    // Every state from the horizon up reads as before.
    for n in 5..=8u64 {
        let i = usize::try_from(n)?;
        assert_eq!(root_at(&TreeView(s), n)?, before.roots[i]);
        for (j, who) in [ALICE, BOB, MINER, OTHER_MINER].iter().enumerate() {
            assert_eq!(
                read_account(&TreeView(s), &account(*who), n)?,
                before.accounts[i][j],
                "account {who} at #{n}"
            );
        }
    }
    // Reverting down to the horizon works; below it is refused, clearly.
    for _ in 0..3 {
        s.revert_head()?;
    }
    assert_eq!(head(s)?.number, 5);
    assert!(matches!(
        s.revert_head(),
        Err(StoreError::StatePruned {
            number: 4,
            oldest: 5
        })
    ));
    // The chain keeps growing on the pruned store, with the right roots.
    let next = chain.extend_with_transfers(s, MINER, 3)?;
    assert_eq!(root_at(&TreeView(s), 6)?, next.block.header.state_root);
    // The horizon never passes the head.
    s.prune_state(u64::MAX)?;
    assert_eq!(s.pruned_below()?, 6);
    assert_eq!(root_at(&TreeView(s), 6)?, next.block.header.state_root);
    Ok(())
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_memory {
            $(
                #[test]
                fn $name() -> anyhow::Result<()> {
                    super::$name(&super::MemoryStore::new())
                }
            )*
        }

        mod on_rocksdb {
            $(
                #[test]
                fn $name() -> anyhow::Result<()> {
                    let dir = tempfile::TempDir::new()?;
                    let store = super::RocksStore::open(dir.path())?;
                    super::$name(&store)
                }
            )*
        }
    };
}

on_both_backends!(
    genesis_init_writes_block_zero_and_is_idempotent,
    initialize_with_another_genesis_is_refused,
    uninitialized_store_refuses_writes,
    commit_then_read_back,
    accounts_read_at_old_and_new_versions,
    state_root_after_commit_matches_header,
    revert_removes_block_state_and_index,
    a_different_block_can_replace_a_reverted_one,
    side_blocks_are_indexed_off_the_canonical_chain_and_pruned_below_the_window,
    best_tip_is_recorded_cleared_and_forgotten_when_invalid,
    state_pruning_keeps_every_state_from_the_horizon_up_and_refuses_what_it_dropped,
    revert_of_genesis_is_refused,
    commit_not_on_head_is_refused,
    revert_and_recommit_many_blocks_round_trips,
    concurrent_commits_of_one_block_succeed_once,
);

// ---------------------------------------------------------------------------
// RocksDB only.
// ---------------------------------------------------------------------------

/// Opens the database with a plain RocksDB handle, bypassing the store.
fn raw_db(path: &Path) -> rocksdb::DB {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = [
        "headers",
        "bodies",
        "canonical",
        "tx_index",
        "state_nodes",
        "state_values",
        "undo",
        "block_status",
        "side_blocks",
        "stale_nodes",
        "meta",
        "history",
    ];
    rocksdb::DB::open_cf(&opts, path, cfs).expect("raw open")
}

#[test]
fn rocksdb_reopen_persists_everything() -> anyhow::Result<()> {
    let dir = tempfile::TempDir::new()?;
    let chain = Chain::new();
    let before = {
        let s = RocksStore::open(dir.path())?;
        chain.init(&s)?;
        for i in 0..4 {
            chain.extend_with_transfers(&s, MINER, i)?;
        }
        s.revert_head()?;
        snapshot(&s)?
    };
    let s = RocksStore::open(dir.path())?;
    assert_eq!(s.path(), dir.path().display().to_string());
    assert_eq!(snapshot(&s)?, before);
    assert_eq!(chain.init(&s)?, before.head);
    // And the chain continues from where it was.
    let next = chain.extend_with_transfers(&s, MINER, 2)?;
    assert_eq!(head(&s)?.number, before.head.number + 1);
    assert_eq!(
        root_at(&TreeView(&s), before.head.number + 1)?,
        next.block.header.state_root
    );
    Ok(())
}

#[test]
fn rocksdb_genesis_mismatch_after_reopen() -> anyhow::Result<()> {
    let dir = tempfile::TempDir::new()?;
    Chain::new().init(&RocksStore::open(dir.path())?)?;
    let s = RocksStore::open(dir.path())?;
    let other = Chain::with_genesis_time(GENESIS_TIME + 1);
    let err = other
        .init(&s)
        .expect_err("must refuse")
        .downcast::<StoreError>()?;
    assert!(matches!(err, StoreError::GenesisMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
    Ok(())
}

#[test]
fn rocksdb_format_version_mismatch_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::TempDir::new()?;
    Chain::new().init(&RocksStore::open(dir.path())?)?;
    {
        let db = raw_db(dir.path());
        let meta = db.cf_handle("meta").context("meta cf")?;
        assert_eq!(
            db.get_cf(meta, b"format_version")?,
            Some(FORMAT_VERSION.to_le_bytes().to_vec())
        );
        db.put_cf(meta, b"format_version", (FORMAT_VERSION + 1).to_le_bytes())?;
    }
    match RocksStore::open(dir.path()) {
        Err(StoreError::FormatVersion {
            path,
            found,
            expected,
        }) => {
            assert_eq!(found, FORMAT_VERSION + 1);
            assert_eq!(expected, FORMAT_VERSION);
            assert_eq!(path, dir.path().display().to_string());
        }
        other => panic!("expected FormatVersion, got {other:?}"),
    }
    Ok(())
}

#[test]
fn rocksdb_older_formats_are_refused_with_resync_advice() -> anyhow::Result<()> {
    // Formats 3 and 4 changed the state layout and encoding: an older database's state
    // roots cannot be carried over, so it must be resynced, not reused.
    for old in [1u32, 2, 3] {
        let dir = tempfile::TempDir::new()?;
        {
            let s = RocksStore::open(dir.path())?;
            Chain::new().init(&s)?;
        }
        {
            let db = raw_db(dir.path());
            let meta = db.cf_handle("meta").context("meta cf")?;
            db.put_cf(meta, b"format_version", old.to_le_bytes())?;
        }
        match RocksStore::open(dir.path()) {
            Err(
                e @ StoreError::FormatVersion {
                    found, expected, ..
                },
            ) => {
                assert_eq!((found, expected), (old, FORMAT_VERSION));
                assert!(e.to_string().contains("purge-chain"), "{e}");
            }
            other => panic!("expected FormatVersion, got {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn block_status_encodings_are_stable() {
    assert_eq!(BlockStatus::Checked.encode(), [0]);
    assert_eq!(BlockStatus::Valid.encode(), [1]);
    assert_eq!(BlockStatus::Invalid.encode(), [2]);
}

#[test]
fn rocksdb_missing_format_version_with_data_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::TempDir::new()?;
    {
        let db = raw_db(dir.path());
        let headers = db.cf_handle("headers").context("headers cf")?;
        db.put_cf(headers, [1u8; 32], b"something")?;
    }
    match RocksStore::open(dir.path()) {
        Err(StoreError::Corrupt { what, message }) => {
            assert!(what.contains("format_version"), "{what}");
            assert!(message.contains("headers"), "{message}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    Ok(())
}

#[test]
fn rocksdb_open_creates_an_empty_versioned_database() -> anyhow::Result<()> {
    let dir = tempfile::TempDir::new()?;
    let path = dir.path().join("nested").join("db");
    {
        let s = RocksStore::open(&path)?;
        assert_eq!(s.head()?, None);
    }
    // Reopening an empty (never initialized) database is fine.
    let s = RocksStore::open(&path)?;
    assert_eq!(s.head()?, None);
    drop(s);
    let db = raw_db(&path);
    let meta = db.cf_handle("meta").context("meta cf")?;
    assert_eq!(
        db.get_cf(meta, b"format_version")?,
        Some(FORMAT_VERSION.to_le_bytes().to_vec())
    );
    Ok(())
}

#[test]
fn rocksdb_open_of_unusable_path_is_a_backend_error() -> anyhow::Result<()> {
    let dir = tempfile::TempDir::new()?;
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x")?;
    match RocksStore::open(&file) {
        Err(StoreError::Backend { path, message }) => {
            assert_eq!(path, file.display().to_string());
            assert!(!message.is_empty());
        }
        other => panic!("expected Backend, got {other:?}"),
    }
    Ok(())
}

#[test]
fn rocksdb_second_open_of_a_live_database_is_a_backend_error() -> anyhow::Result<()> {
    let dir = tempfile::TempDir::new()?;
    let _first = RocksStore::open(dir.path())?;
    assert!(matches!(
        RocksStore::open(dir.path()),
        Err(StoreError::Backend { .. })
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// Differential: both backends agree on random commit/revert sequences.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Commit a block by `miner` with `transfers` transfers.
    Commit { miner: u8, transfers: u64 },
    /// Revert the head (a no-op on genesis, where both must refuse).
    Revert,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (prop_oneof![Just(MINER), Just(OTHER_MINER)], 0u64..3)
            .prop_map(|(miner, transfers)| Op::Commit { miner, transfers }),
        2 => Just(Op::Revert),
    ]
}

fn apply(chain: &Chain, s: &dyn Store, op: &Op) -> anyhow::Result<Option<Hash>> {
    match op {
        Op::Commit { miner, transfers } => Ok(Some(
            chain.extend_with_transfers(s, *miner, *transfers)?.hash,
        )),
        Op::Revert => match s.revert_head() {
            Ok(h) => Ok(Some(h.hash)),
            Err(StoreError::RevertGenesis) => Ok(None),
            Err(e) => Err(e.into()),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn backends_agree_on_random_commit_revert_sequences(ops in prop::collection::vec(op(), 1..12)) {
        let chain = Chain::new();
        let memory = MemoryStore::new();
        let dir = tempfile::TempDir::new().expect("tempdir");
        let rocks = RocksStore::open(dir.path()).expect("open");
        chain.init(&memory).expect("init memory");
        chain.init(&rocks).expect("init rocks");
        for op in &ops {
            let a = apply(&chain, &memory, op).expect("memory");
            let b = apply(&chain, &rocks, op).expect("rocks");
            prop_assert_eq!(a, b);
            prop_assert_eq!(snapshot(&memory).expect("snapshot"), snapshot(&rocks).expect("snapshot"));
        }
    }
}

mod history;

//! A full or read-only disk, simulated by a store wrapper that fails every
//! write with the error the engine reports ("No space left on device",
//! "Read-only file system") while reads keep working: an import fails with a storage error and
//! changes nothing (no half block, no block marked invalid, the head where
//! it was), and once the disk accepts writes again the same blocks import,
//! including a heavier branch whose switch the full disk interrupted.

use cachecash_chain_spec::ChainSpec;
use cachecash_node::chain::{BlockOrigin, Chain, ImportError, ImportOutcome};
use cachecash_node::metrics::Metrics;
use cachecash_node::storage::history::{HistoryPosition, HistoryRecord};
use cachecash_node::storage::{
    BlockStatus, Head, MemoryStore, Store, StoreError, StoreResult, StoredHeader, TxLocation,
};
use cachecash_runtime::genesis::Genesis;
use cachecash_runtime::verify::ExecutedBlock;
use cachecash_runtime::{Block, BlockNumber, Hash, SignedTransaction};
use cachecash_tests::{dev, fast_dev_spec, memory_chain, mine_chain_block, spec_transfer};
use jmt::storage::{Node, NodeKey};
use jmt::{KeyHash, OwnedValue, Version};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A store whose writes fail with `fault` while `full` is set.
#[derive(Debug)]
struct FullDisk {
    inner: MemoryStore,
    full: AtomicBool,
    fault: &'static str,
}

const NO_SPACE: &str = "IO error: No space left on device";
const READ_ONLY: &str = "IO error: While appending to file: db/000012.log: Read-only file system";

impl FullDisk {
    fn check(&self) -> StoreResult<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::Backend {
                path: "test disk".into(),
                message: self.fault.into(),
            });
        }
        Ok(())
    }
}

impl Store for FullDisk {
    fn initialize(&self, genesis: &Genesis) -> StoreResult<Head> {
        self.check()?;
        self.inner.initialize(genesis)
    }
    fn head(&self) -> StoreResult<Option<Head>> {
        self.inner.head()
    }
    fn header(&self, hash: &Hash) -> StoreResult<Option<StoredHeader>> {
        self.inner.header(hash)
    }
    fn body(&self, hash: &Hash) -> StoreResult<Option<Vec<SignedTransaction>>> {
        self.inner.body(hash)
    }
    fn canonical_hash(&self, number: BlockNumber) -> StoreResult<Option<Hash>> {
        self.inner.canonical_hash(number)
    }
    fn tx_location(&self, tx: &Hash) -> StoreResult<Option<TxLocation>> {
        self.inner.tx_location(tx)
    }
    fn history(
        &self,
        subject: &[u8; 32],
        before: Option<HistoryPosition>,
        limit: usize,
    ) -> StoreResult<Vec<HistoryRecord>> {
        self.inner.history(subject, before, limit)
    }
    fn tree_node(&self, key: &NodeKey) -> StoreResult<Option<Node>> {
        self.inner.tree_node(key)
    }
    fn tree_value(&self, max_version: Version, key: KeyHash) -> StoreResult<Option<OwnedValue>> {
        self.inner.tree_value(max_version, key)
    }
    fn commit_block(&self, block: &ExecutedBlock, total_work: [u8; 32]) -> StoreResult<Head> {
        self.check()?;
        self.inner.commit_block(block, total_work)
    }
    fn revert_head(&self) -> StoreResult<Head> {
        self.check()?;
        self.inner.revert_head()
    }
    fn store_block(&self, block: &Block, total_work: [u8; 32], best_tip: bool) -> StoreResult<()> {
        self.check()?;
        self.inner.store_block(block, total_work, best_tip)
    }
    fn block_status(&self, hash: &Hash) -> StoreResult<Option<BlockStatus>> {
        self.inner.block_status(hash)
    }
    fn mark_invalid(&self, hash: &Hash) -> StoreResult<()> {
        self.check()?;
        self.inner.mark_invalid(hash)
    }
    fn best_tip(&self) -> StoreResult<Option<Hash>> {
        self.inner.best_tip()
    }
    fn clear_best_tip(&self) -> StoreResult<()> {
        self.check()?;
        self.inner.clear_best_tip()
    }
    fn prune_side_blocks(&self, below: BlockNumber) -> StoreResult<usize> {
        self.check()?;
        self.inner.prune_side_blocks(below)
    }
    fn prune_state(&self, below: BlockNumber) -> StoreResult<usize> {
        self.check()?;
        self.inner.prune_state(below)
    }
    fn pruned_below(&self) -> StoreResult<BlockNumber> {
        self.inner.pruned_below()
    }
    fn archive_mode(&self) -> StoreResult<Option<bool>> {
        self.inner.archive_mode()
    }
    fn set_archive_mode(&self, archive: bool) -> StoreResult<()> {
        self.check()?;
        self.inner.set_archive_mode(archive)
    }
}

fn open(spec: &ChainSpec) -> (Arc<FullDisk>, Chain) {
    open_with(spec, NO_SPACE)
}

fn open_with(spec: &ChainSpec, fault: &'static str) -> (Arc<FullDisk>, Chain) {
    let disk = Arc::new(FullDisk {
        inner: MemoryStore::new(),
        full: AtomicBool::new(false),
        fault,
    });
    let chain = Chain::open(
        disk.clone(),
        spec.consensus_params(),
        &spec.build_genesis().unwrap(),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    (disk, chain)
}

fn storage_errors(chain: &Chain) -> u64 {
    chain
        .metrics()
        .encode()
        .lines()
        .find(|l| l.starts_with("cachecash_storage_errors_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

fn is_storage_error(e: &ImportError) -> bool {
    e.to_string().contains("No space left on device")
}

#[test]
fn a_full_disk_fails_the_import_cleanly_and_the_block_imports_once_space_returns() {
    let spec = fast_dev_spec(150);
    let (disk, node) = open(&spec);
    let producer = memory_chain(&spec);
    let tx = spec_transfer(&spec, "alice", 0, dev("bob"), 7);
    let b1 = mine_chain_block(&producer, vec![tx.clone()], dev("ferdie"), 0);
    producer
        .import_block(b1.clone(), BlockOrigin::Mined)
        .unwrap();

    disk.full.store(true, Ordering::SeqCst);
    let before = node.head();
    let err = node
        .import_block(b1.clone(), BlockOrigin::Network)
        .unwrap_err();
    assert!(is_storage_error(&err), "{err}");
    // Nothing of the block was written, nothing was judged.
    assert_eq!(node.head().hash, before.hash);
    assert_eq!(node.store().block_status(&b1.hash()).unwrap(), None);
    assert_eq!(node.store().tx_location(&tx.hash()).unwrap(), None);
    let (bob, _, _) = node.account(&dev("bob"), None).unwrap();
    let (bob_at_genesis, _, _) = producer
        .account(
            &dev("bob"),
            Some(producer.canonical_hash(0).unwrap().unwrap()),
        )
        .unwrap();
    assert_eq!(bob, bob_at_genesis);

    // Space returns: the same block imports.
    disk.full.store(false, Ordering::SeqCst);
    assert!(matches!(
        node.import_block(b1.clone(), BlockOrigin::Network).unwrap(),
        ImportOutcome::Imported(_)
    ));
    assert_eq!(node.head().hash, b1.hash());
    assert!(node.store().tx_location(&tx.hash()).unwrap().is_some());
}

#[test]
fn a_branch_switch_cut_short_by_a_full_disk_completes_when_the_block_is_offered_again() {
    let spec = fast_dev_spec(150);
    let (disk, node) = open(&spec);
    // Our chain: two blocks; the other branch: three (more work), from genesis.
    let ours = memory_chain(&spec);
    let theirs = memory_chain(&spec);
    for i in 0..2 {
        let b = mine_chain_block(&ours, vec![], dev("dave"), i);
        ours.import_block(b.clone(), BlockOrigin::Mined).unwrap();
        node.import_block(b, BlockOrigin::Network).unwrap();
    }
    let branch: Vec<Block> = (0..3)
        .map(|i| {
            let b = mine_chain_block(&theirs, vec![], dev("eve"), 10 + i);
            theirs.import_block(b.clone(), BlockOrigin::Mined).unwrap();
            b
        })
        .collect();
    // The first two branch blocks are lighter or equal: stored as side blocks.
    for b in &branch[..2] {
        assert!(matches!(
            node.import_block(b.clone(), BlockOrigin::Network).unwrap(),
            ImportOutcome::SideChain { .. }
        ));
    }
    let head = node.head();
    // The third makes the branch heavier; the disk fills during the switch.
    // Its block is stored first, then the revert fails.
    let tip = branch[2].clone();
    node.store()
        .store_block(&tip, theirs.head().total_work.to_big_endian(), true)
        .unwrap();
    disk.full.store(true, Ordering::SeqCst);
    let err = node
        .import_block(tip.clone(), BlockOrigin::Network)
        .expect_err("no switch on a full disk");
    assert!(is_storage_error(&err), "{err}");
    assert_eq!(node.head().hash, head.hash, "the old chain stays whole");
    assert_ne!(
        node.store().block_status(&tip.hash()).unwrap(),
        Some(BlockStatus::Invalid)
    );

    // Space returns; the peer offers the tip again and the switch completes.
    disk.full.store(false, Ordering::SeqCst);
    assert!(matches!(
        node.import_block(tip.clone(), BlockOrigin::Network)
            .unwrap(),
        ImportOutcome::Imported(_)
    ));
    assert_eq!(node.head().hash, tip.hash());
    assert_eq!(node.head().header.number, 3);
}

#[test]
fn a_read_only_disk_fails_imports_cleanly_counts_them_and_the_chain_resumes_when_writable() {
    let spec = fast_dev_spec(150);
    let (disk, node) = open_with(&spec, READ_ONLY);
    let producer = memory_chain(&spec);
    let blocks: Vec<Block> = (0..3)
        .map(|i| {
            let b = mine_chain_block(&producer, vec![], dev("ferdie"), i);
            producer
                .import_block(b.clone(), BlockOrigin::Mined)
                .unwrap();
            b
        })
        .collect();
    node.import_block(blocks[0].clone(), BlockOrigin::Network)
        .unwrap();
    // The filesystem turns read-only (remounted after an I/O error).
    disk.full.store(true, Ordering::SeqCst);
    let head = node.head();
    // The next block, offered twice (two peers announce it): both imports
    // fail on the write, and nothing of the block is stored.
    for _ in 0..2 {
        let err = node
            .import_block(blocks[1].clone(), BlockOrigin::Network)
            .unwrap_err();
        assert!(err.to_string().contains("Read-only file system"), "{err}");
        assert!(
            !cachecash_node::network::import::is_peer_fault(&err),
            "not the peer's fault"
        );
        assert_eq!(node.store().block_status(&blocks[1].hash()).unwrap(), None);
    }
    // Its child waits for it, as for any missing parent.
    assert!(matches!(
        node.import_block(blocks[2].clone(), BlockOrigin::Network),
        Err(ImportError::UnknownParent { .. })
    ));
    // Every failure is counted for the operator; reads still work.
    assert_eq!(storage_errors(&node), 2);
    assert_eq!(node.head().hash, head.hash);
    assert!(node.store().body(&blocks[0].hash()).unwrap().is_some());
    // Writable again: the same blocks import, in order.
    disk.full.store(false, Ordering::SeqCst);
    for b in &blocks[1..] {
        assert!(matches!(
            node.import_block(b.clone(), BlockOrigin::Network).unwrap(),
            ImportOutcome::Imported(_)
        ));
    }
    assert_eq!(node.head().hash, blocks[2].hash());
    assert_eq!(storage_errors(&node), 2);
}

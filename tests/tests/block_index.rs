//! The block index on disk: every checked block is kept, canonical or not,
//! so a node reorganises to any heavier branch within the reorganisation
//! limit from its own disk (far deeper than any in-memory pool of full
//! blocks would reach), and a node killed in the middle of a
//! reorganisation ends on the heavier branch when it reopens.

use cachecash_chain_spec::ChainSpec;
use cachecash_node::chain::{BlockOrigin, Chain, ImportOutcome};
use cachecash_node::metrics::Metrics;
use cachecash_node::service::{Storage, open_chain};
use cachecash_node::storage::BlockStatus;
use cachecash_runtime::{AccountId, Block, SignedTransaction};
use cachecash_tests::{dev, fast_dev_spec, memory_chain, mine_chain_block, spec_transfer};
use parity_scale_codec::Encode;
use primitive_types::U256;
use std::path::Path;
use std::sync::Arc;

/// Blocks of at most 16 KiB, so that "full" blocks stay cheap to sign.
const BLOCK_BYTES: u32 = 16 * 1024;

fn spec() -> ChainSpec {
    spec_with_reorg_depth(1000)
}

fn spec_with_reorg_depth(depth: u64) -> ChainSpec {
    let mut v: serde_json::Value =
        serde_json::from_str(&fast_dev_spec(150).to_json(false).unwrap()).unwrap();
    v["consensus"]["maxBlockBytes"] = serde_json::Value::from(BLOCK_BYTES);
    v["maxReorgDepth"] = serde_json::Value::from(depth);
    ChainSpec::from_json_str(&v.to_string()).unwrap()
}

/// A chain in memory: the producer of one branch.
fn producer(spec: &ChainSpec) -> Chain {
    memory_chain(spec)
}

/// The node under test, on RocksDB under `base`, opened as the node
/// binary opens it (resuming an interrupted reorganisation).
fn node(spec: &ChainSpec, base: &Path) -> Arc<Chain> {
    open_chain(base, spec, &Storage::Rocks, Arc::new(Metrics::new())).unwrap()
}

fn transfer(spec: &ChainSpec, from: &str, nonce: u64, to: AccountId) -> SignedTransaction {
    spec_transfer(spec, from, nonce, to, 1)
}

/// Mines `count` blocks on `chain`, each filled to the size limit with
/// transfers from `from` (numbered on from `*nonce`), and returns them.
fn mine_full(
    spec: &ChainSpec,
    chain: &Chain,
    count: usize,
    from: &str,
    nonce: &mut u64,
    salt: u64,
) -> Vec<Block> {
    let per_block = {
        let size = transfer(spec, from, 0, dev("charlie")).encoded_size();
        (BLOCK_BYTES as usize - 512) / size
    };
    let mut blocks = Vec::with_capacity(count);
    for _ in 0..count {
        let txs: Vec<_> = (0..per_block)
            .map(|i| transfer(spec, from, *nonce + i as u64, dev("charlie")))
            .collect();
        *nonce += per_block as u64;
        let block = mine_chain_block(chain, txs, dev("ferdie"), salt);
        assert!(
            block.encoded_size() * 10 > BLOCK_BYTES as usize * 9,
            "blocks are full: {} bytes",
            block.encoded_size()
        );
        chain
            .import_block(block.clone(), BlockOrigin::File)
            .unwrap();
        blocks.push(block);
    }
    blocks
}

fn import_all(chain: &Chain, blocks: &[Block]) -> Vec<ImportOutcome> {
    blocks
        .iter()
        .map(|b| chain.import_block(b.clone(), BlockOrigin::Network).unwrap())
        .collect()
}

fn assert_canonical(chain: &Chain, blocks: &[Block]) {
    for b in blocks {
        assert_eq!(
            chain.canonical_hash(b.header.number).unwrap(),
            Some(b.hash()),
            "block #{} is canonical",
            b.header.number
        );
    }
    assert_eq!(chain.head().hash, blocks.last().unwrap().hash());
}

fn balance(chain: &Chain, who: &str) -> u128 {
    chain.account(&dev(who), None).unwrap().0.balance
}

#[test]
fn a_200_block_reorganisation_of_full_blocks_runs_from_the_block_index_both_ways_and_survives_a_restart()
 {
    let spec = spec();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (producer(&spec), producer(&spec));
    let (mut alice_nonce, mut bob_nonce) = (0, 0);
    let genesis_bob = balance(&a, "bob");
    let genesis_alice = balance(&a, "alice");

    // The node follows branch A: 200 full blocks of Alice's transfers.
    let branch_a = mine_full(&spec, &a, 200, "alice", &mut alice_nonce, 0);
    let n = node(&spec, dir.path());
    import_all(&n, &branch_a);
    assert_canonical(&n, &branch_a);
    assert!(balance(&n, "alice") < genesis_alice);

    // Branch B, mined apart with Bob's transfers, until it has more work.
    let mut branch_b = mine_full(&spec, &b, 200, "bob", &mut bob_nonce, 3);
    while b.head().total_work <= a.head().total_work {
        branch_b.extend(mine_full(&spec, &b, 1, "bob", &mut bob_nonce, 3));
    }
    let outcomes = import_all(&n, &branch_b);
    let (last, lighter) = outcomes.split_last().unwrap();
    assert!(
        lighter
            .iter()
            .all(|o| matches!(o, ImportOutcome::SideChain { .. })),
        "B's blocks are stored aside while A has more work"
    );
    assert!(matches!(last, ImportOutcome::Imported(_)), "{last:?}");
    assert_canonical(&n, &branch_b);
    assert_eq!(balance(&n, "alice"), genesis_alice);
    assert_eq!(balance(&n, "bob"), balance(&b, "bob"));
    assert!(balance(&n, "bob") < genesis_bob);
    // All of A is still on disk, known valid, and its transactions went
    // back to the mempool's queue.
    for block in &branch_a {
        assert_eq!(
            n.store().block_status(&block.hash()).unwrap(),
            Some(BlockStatus::Valid)
        );
        assert!(n.block(&block.hash()).unwrap().is_some());
    }
    let retracted = n.take_retracted();
    let a_txs: usize = branch_a.iter().map(|b| b.transactions.len()).sum();
    assert_eq!(retracted.len(), a_txs);

    // A restart keeps B and the whole index.
    drop(n);
    let n = node(&spec, dir.path());
    assert_canonical(&n, &branch_b);
    assert_eq!(balance(&n, "bob"), balance(&b, "bob"));

    // A grows past B: the node goes back to A, reading its 200 blocks from
    // the index; only the new ones arrive.
    let mut more_a = Vec::new();
    while a.head().total_work <= b.head().total_work {
        more_a.extend(mine_full(&spec, &a, 1, "alice", &mut alice_nonce, 0));
    }
    let outcomes = import_all(&n, &more_a);
    assert!(matches!(
        outcomes.last().unwrap(),
        ImportOutcome::Imported(_)
    ));
    let whole_a: Vec<Block> = branch_a.iter().chain(&more_a).cloned().collect();
    assert_canonical(&n, &whole_a);
    assert_eq!(balance(&n, "alice"), balance(&a, "alice"));
    assert_eq!(balance(&n, "bob"), genesis_bob);
    assert_eq!(
        n.head().total_work,
        a.head().total_work,
        "the node's cumulative work matches the producer's"
    );
}

#[test]
fn a_node_killed_between_the_revert_and_the_apply_of_a_reorganisation_ends_on_the_heavier_branch() {
    let spec = spec();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (producer(&spec), producer(&spec));
    let (mut alice_nonce, mut bob_nonce) = (0, 0);
    let branch_a = mine_full(&spec, &a, 10, "alice", &mut alice_nonce, 0);
    let mut branch_b = mine_full(&spec, &b, 10, "bob", &mut bob_nonce, 3);
    while b.head().total_work <= a.head().total_work {
        branch_b.extend(mine_full(&spec, &b, 1, "bob", &mut bob_nonce, 3));
    }
    let n = node(&spec, dir.path());
    import_all(&n, &branch_a);

    // What a kill leaves on disk once the reorganisation has stored the
    // heavier branch (recording its tip as the best) and reverted to the
    // common ancestor, but applied nothing yet: every step is one atomic
    // write, so this is a state a SIGKILL can leave.
    let store = n.store().clone();
    for (i, block) in branch_b.iter().enumerate() {
        let work = b.store().header(&block.hash()).unwrap().unwrap().total_work;
        store
            .store_block(block, work, i + 1 == branch_b.len())
            .unwrap();
    }
    for _ in 0..branch_a.len() {
        store.revert_head().unwrap();
    }
    assert_eq!(store.head().unwrap().unwrap().number, 0);
    drop((n, store));

    let n = node(&spec, dir.path());
    assert_canonical(&n, &branch_b);
    assert_eq!(balance(&n, "bob"), balance(&b, "bob"));
    assert_eq!(
        U256::from_big_endian(
            &n.store()
                .header(&n.head().hash)
                .unwrap()
                .unwrap()
                .total_work
        ),
        b.head().total_work
    );
    // A stays in the index for a later switch back.
    for block in &branch_a {
        assert!(n.block(&block.hash()).unwrap().is_some());
    }

    // An operator's revert is not undone by the next start.
    n.revert_to(2).unwrap();
    drop(n);
    let n = node(&spec, dir.path());
    assert_eq!(n.head().header.number, 2);
}

#[test]
fn a_pruning_node_keeps_the_states_of_its_reorganisation_window_and_can_still_reorganise_through_it()
 {
    let spec = spec_with_reorg_depth(10);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (producer(&spec), producer(&spec));
    let (mut alice_nonce, mut bob_nonce) = (0, 0);
    let shared = mine_full(&spec, &a, 20, "alice", &mut alice_nonce, 0);
    import_all(&b, &shared);
    let n = node(&spec, dir.path());
    import_all(&n, &shared);
    let branch_a = mine_full(&spec, &a, 10, "alice", &mut alice_nonce, 0);
    import_all(&n, &branch_a);
    assert_eq!(n.head().header.number, 30);
    let oldest = n.store().pruned_below().unwrap();
    assert_eq!(
        oldest, 20,
        "the states of the last 10 blocks and up are kept"
    );

    // Inside the window, historical reads answer; below it, a clear error.
    let at = |number: u64| {
        let hash = n.canonical_hash(number).unwrap().unwrap();
        n.account(&dev("alice"), Some(hash))
    };
    assert!(at(20).is_ok());
    assert!(at(25).is_ok());
    let e = at(19).unwrap_err().to_string();
    assert!(e.contains("pruned") && e.contains("archive"), "{e}");

    // A 10-block reorganisation, as deep as the window, still works.
    let mut branch_b = mine_full(&spec, &b, 10, "bob", &mut bob_nonce, 3);
    while b.head().total_work <= a.head().total_work {
        branch_b.extend(mine_full(&spec, &b, 1, "bob", &mut bob_nonce, 3));
    }
    import_all(&n, &branch_b);
    assert_canonical(&n, &branch_b);
    assert_eq!(balance(&n, "bob"), balance(&b, "bob"));
    assert_eq!(balance(&n, "alice"), balance(&b, "alice"));

    // An archive node of the same chain keeps every state.
    let archive_dir = tempfile::tempdir().unwrap();
    let archive = cachecash_node::service::open_chain_with(
        archive_dir.path(),
        &spec,
        &Storage::Rocks,
        Arc::new(Metrics::new()),
        Some(cachecash_node::chain::StatePruning::Archive),
    )
    .unwrap();
    import_all(&archive, &shared);
    import_all(&archive, &branch_a);
    assert_eq!(archive.store().pruned_below().unwrap(), 0);
    let first = archive.canonical_hash(1).unwrap().unwrap();
    assert!(archive.account(&dev("alice"), Some(first)).is_ok());

    // The mode is recorded: a maintenance command (no mode asked) keeps
    // the archive an archive while it imports more blocks.
    drop(archive);
    let archive = node(&spec, archive_dir.path());
    import_all(&archive, &branch_b);
    assert_eq!(archive.store().pruned_below().unwrap(), 0);
    drop(archive);
    // A pruning database cannot become an archive: its old states are gone.
    drop(n);
    let e = cachecash_node::service::open_chain_with(
        dir.path(),
        &spec,
        &Storage::Rocks,
        Arc::new(Metrics::new()),
        Some(cachecash_node::chain::StatePruning::Archive),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("cannot become an archive") && e.contains("purge-chain"),
        "{e}"
    );
}

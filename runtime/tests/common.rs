//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use cachecash_runtime::AccountId;
use cachecash_runtime::commitment::MemoryTree;
use cachecash_runtime::consensus::{ConsensusParams, Target};
use cachecash_runtime::genesis::{Genesis, GenesisConfig, build_genesis};
use ed25519_dalek::SigningKey;

pub fn params() -> ConsensusParams {
    ConsensusParams {
        target_block_time_ms: 1000,
        initial_target: Target::MAX,
        pow_limit: Target::MAX,
        retarget_window: 0,
        block_reward: 50,
        minimum_fee: 1,
        max_future_drift_ms: 30_000,
        max_block_transactions: 1000,
        max_block_bytes: 1 << 20,
        duplicate_reporter_share_percent: 50,
        fee_per_byte: 0,
    }
}

pub fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

pub fn account(i: u8) -> AccountId {
    AccountId::from_signing_key(&key(i))
}

pub fn genesis_with(params: &ConsensusParams, balances: &[(u8, u128)]) -> (Genesis, MemoryTree) {
    let g = build_genesis(
        params,
        &GenesisConfig {
            timestamp: 1_000,
            balances: balances.iter().map(|(i, b)| (account(*i), *b)).collect(),
        },
    )
    .unwrap();
    let mut tree = MemoryTree::new();
    tree.apply(&g.update.batch);
    (g, tree)
}

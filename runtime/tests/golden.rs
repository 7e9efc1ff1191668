//! Golden hex vectors of the wire and signing formats. A change here is a
//! consensus change: it needs a new format version, not an updated vector.

mod common;

use cachecash_runtime::block::{Header, transactions_root};
use cachecash_runtime::consensus::Target;
use cachecash_runtime::primitives::{AccountId, Hash};
use cachecash_runtime::state::Account;
use cachecash_runtime::{Call, Transaction};
use common::*;
use parity_scale_codec::Encode;

fn sample_tx() -> cachecash_runtime::SignedTransaction {
    Transaction {
        signer: account(1),
        nonce: 7,
        fee: 1_000_000,
        call: Call::Transfer {
            dest: account(2),
            amount: 1_500_000_000_000,
        },
    }
    .sign(&key(1), &Hash([0xab; 32]))
}

#[test]
fn transaction_encoding_is_stable() {
    assert_eq!(hex::encode(sample_tx().encode()), GOLDEN_TX);
    assert_eq!(sample_tx().hash().to_hex(), GOLDEN_TX_HASH);
}

#[test]
fn signing_payload_is_domain_genesis_and_encoding() {
    let t = sample_tx();
    let payload = t.tx.signing_payload(&Hash([0xab; 32]));
    assert!(payload.starts_with(b"cachecash/transaction/v1"));
    assert_eq!(&payload[24..56], &[0xab; 32]);
    assert_eq!(&payload[56..], &t.tx.encode()[..]);
}

#[test]
fn header_encoding_is_stable() {
    let h = Header {
        parent_hash: Hash([1; 32]),
        number: 42,
        timestamp: 1_767_225_600_000,
        transactions_root: transactions_root(&[Hash([3; 32])]),
        state_root: Hash([4; 32]),
        target: Target([0x0f; 32]),
        miner: AccountId([5; 32]),
        nonce: 0x0102_0304_0506_0708,
    };
    let enc = h.encode();
    assert_eq!(enc.len(), cachecash_runtime::block::HEADER_BYTES);
    assert_eq!(hex::encode(&enc), GOLDEN_HEADER);
    assert_eq!(h.hash().to_hex(), GOLDEN_HEADER_HASH);
    // The nonce is the last eight bytes, little-endian, for midstate mining.
    assert_eq!(
        &enc[enc.len() - 8..],
        &0x0102_0304_0506_0708u64.to_le_bytes()
    );
    let prefix = h.mining_prefix();
    assert_eq!(Header::hash_with_nonce(&prefix, h.nonce), h.hash());
}

#[test]
fn empty_transactions_root_is_sha256_of_nothing() {
    assert_eq!(
        transactions_root(&[]).to_hex(),
        "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn account_encoding_is_nonce_then_balance_little_endian() {
    let a = Account {
        nonce: 1,
        balance: 2,
    };
    assert_eq!(
        hex::encode(a.encode()),
        "010000000000000002000000000000000000000000000000"
    );
}

const GOLDEN_TX: &str = "";
const GOLDEN_TX_HASH: &str = "";
const GOLDEN_HEADER: &str = "";
const GOLDEN_HEADER_HASH: &str = "";

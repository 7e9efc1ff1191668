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

const GOLDEN_TX: &str = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c070000000000000040420f00000000000000000000000000008139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b3940098f73e5d010000000000000000000073906878ec783919adb3313412f988f8e5cbe29b6896e5b767929018d156522d8f0f041cbb2b7ede1aa54bf0c94a1949f20694e596c5fbf47b7777651b6b1e0c";
const GOLDEN_TX_HASH: &str = "0xe9bb198670bf6026c93281665f2fea75236210d78553335a39821697f89e86b8";
const GOLDEN_HEADER: &str = "01010101010101010101010101010101010101010101010101010101010101012a0000000000000000a8da769b010000acaa04663a8547a2f70c60cc18f9378796b13c4f9a08f70d6adae662365b30c604040404040404040404040404040404040404040404040404040404040404040f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f05050505050505050505050505050505050505050505050505050505050505050807060504030201";
const GOLDEN_HEADER_HASH: &str =
    "0x1bca7aad3c43b42e930be33e16b940fd18e0b8ded0e2d1f7c0a02125c7cbb980";

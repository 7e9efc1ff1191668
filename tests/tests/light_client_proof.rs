//! `state_getProof` answers verify against the header's state root with a
//! verifier written from docs/rpc.md ("Verifying a proof") alone: SHA-256,
//! hex, and the steps as documented — no node or runtime code.

use cachecash_node::service::Storage;
use cachecash_tests::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn bit(key: &[u8], i: usize) -> bool {
    key[i / 8] >> (7 - i % 8) & 1 == 1
}

/// The documented algorithm. `account` is the claimed (balance, nonce) or None for absent.
fn verify(
    state_root: &[u8],
    account_id: &[u8],
    account: Option<(u128, u64)>,
    proof: &Value,
) -> bool {
    let key = sha(&[account_id]);
    let siblings: Vec<Vec<u8>> = proof["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(unhex)
        .collect();
    let n = siblings.len();
    if n > 256 {
        return false;
    }
    let leaf = &proof["leaf"];
    let mut h: [u8; 32] = match (account, leaf.is_null()) {
        (Some((balance, nonce)), false) => {
            let mut value = nonce.to_le_bytes().to_vec();
            value.extend_from_slice(&balance.to_le_bytes());
            let value_hash = sha(&[&value]);
            if unhex(&leaf["keyHash"]) != key || unhex(&leaf["valueHash"]) != value_hash {
                return false;
            }
            sha(&[b"JMT::LeafNode", &key, &value_hash])
        }
        (Some(_), true) => return false,
        (None, false) => {
            let other = unhex(&leaf["keyHash"]);
            if other == key || (0..n).any(|i| bit(&other, i) != bit(&key, i)) {
                return false;
            }
            sha(&[b"JMT::LeafNode", &other, &unhex(&leaf["valueHash"])])
        }
        (None, true) => *b"SPARSE_MERKLE_PLACEHOLDER_HASH__",
    };
    for (i, s) in siblings.iter().enumerate() {
        h = if bit(&key, n - 1 - i) {
            sha(&[b"JMT::IntrnalNode", s, &h])
        } else {
            sha(&[b"JMT::IntrnalNode", &h, s])
        };
    }
    h.as_slice() == state_root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_proofs_verify_with_the_documented_algorithm() {
    let spec = fast_dev_spec(50);
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&spec, dir.path(), Storage::Memory, Some(dev("eve"))).await;
    let addr = node.rpc_addr().unwrap();
    wait_for_height(&node, 3, Duration::from_secs(30)).await;

    for (who, present) in [
        (dev("alice").to_hex(), true),
        (dev("eve").to_hex(), true),
        (format!("0x{}", "42".repeat(32)), false),
    ] {
        let p = rpc(addr, "state_getProof", vec![json!(who)]).await.unwrap();
        let header = rpc(addr, "chain_getHeader", vec![p["blockHash"].clone()])
            .await
            .unwrap();
        assert_eq!(header["stateRoot"], p["stateRoot"]);
        let root = unhex(&header["stateRoot"]);
        let id = unhex(&json!(who));
        let claimed = if present {
            let a = &p["account"];
            Some((
                a["balance"].as_str().unwrap().parse::<u128>().unwrap(),
                a["nonce"].as_u64().unwrap(),
            ))
        } else {
            assert!(p["account"].is_null());
            None
        };
        assert!(
            verify(&root, &id, claimed, &p["proof"]),
            "proof for {who} verifies"
        );
        // A wrong balance, a wrong presence claim or another root must fail.
        if let Some((b, n)) = claimed {
            assert!(!verify(&root, &id, Some((b + 1, n)), &p["proof"]));
            assert!(!verify(&root, &id, None, &p["proof"]));
        } else {
            assert!(!verify(&root, &id, Some((0, 0)), &p["proof"]));
        }
        let mut other_root = root.clone();
        other_root[0] ^= 1;
        assert!(!verify(&other_root, &id, claimed, &p["proof"]));
    }

    // Proofs at an older block verify against that block's root.
    let h1 = rpc(addr, "chain_getBlockHash", vec![json!(1)])
        .await
        .unwrap();
    let p = rpc(addr, "state_getProof", vec![json!(dev("eve")), h1.clone()])
        .await
        .unwrap();
    let header = rpc(addr, "chain_getHeader", vec![h1]).await.unwrap();
    let a = &p["account"];
    let claimed = Some((
        a["balance"].as_str().unwrap().parse::<u128>().unwrap(),
        a["nonce"].as_u64().unwrap(),
    ));
    assert!(verify(
        &unhex(&header["stateRoot"]),
        &unhex(&json!(dev("eve"))),
        claimed,
        &p["proof"]
    ));
    node.stop().await;
}

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

/// The documented algorithm for an account. `account` is the claimed
/// (balance, nonce) or None for absent.
fn verify(
    state_root: &[u8],
    account_id: &[u8],
    account: Option<(u128, u64)>,
    proof: &Value,
) -> bool {
    let key = sha(&[account_id]);
    let value = account.map(|(balance, nonce)| {
        let mut v = nonce.to_le_bytes().to_vec();
        v.extend_from_slice(&balance.to_le_bytes());
        v
    });
    verify_raw(state_root, &key, value.as_deref(), proof)
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

/// The documented algorithm for any key and raw value (accounts and
/// escrows).
fn verify_raw(state_root: &[u8], key: &[u8; 32], value: Option<&[u8]>, proof: &Value) -> bool {
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
    let mut h: [u8; 32] = match (value, leaf.is_null()) {
        (Some(v), false) => {
            let value_hash = sha(&[v]);
            if unhex(&leaf["keyHash"]) != key || unhex(&leaf["valueHash"]) != value_hash {
                return false;
            }
            sha(&[b"JMT::LeafNode", key, &value_hash])
        }
        (Some(_), true) => return false,
        (None, false) => {
            let other = unhex(&leaf["keyHash"]);
            if other == key || (0..n).any(|i| bit(&other, i) != bit(key, i)) {
                return false;
            }
            sha(&[b"JMT::LeafNode", &other, &unhex(&leaf["valueHash"])])
        }
        (None, true) => *b"SPARSE_MERKLE_PLACEHOLDER_HASH__",
    };
    for (i, s) in siblings.iter().enumerate() {
        h = if bit(key, n - 1 - i) {
            sha(&[b"JMT::IntrnalNode", s, &h])
        } else {
            sha(&[b"JMT::IntrnalNode", &h, s])
        };
    }
    h.as_slice() == state_root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_proofs_verify_with_the_documented_algorithm() {
    use cachecash_runtime::microcash::{Escrow, EscrowTerms, escrow_id};
    use parity_scale_codec::{DecodeAll, Encode};
    let spec = fast_dev_spec(50);
    let genesis = spec.genesis_hash().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&spec, dir.path(), Storage::Memory, Some(dev("eve"))).await;
    let addr = node.rpc_addr().unwrap();
    wait_for_height(&node, 1, Duration::from_secs(30)).await;
    let head = node.chain().head().header.number;
    let terms = EscrowTerms {
        signer: dev("alice"),
        face_value: 1_000,
        tickets_per_round: 4,
        winners_per_round: 2,
        round_length: 1_000,
        first_round: head / 1_000 + 1,
        last_round: head / 1_000 + 1,
        draw_delay: 1,
        claim_window: 10,
    };
    let open = escrow_open_tx(&spec, "alice", 0, &terms, 0, 1_000_000);
    let hex = format!("0x{}", hex::encode(open.encode()));
    rpc(addr, "author_submitTransaction", vec![json!(hex)])
        .await
        .unwrap();
    wait_for_inclusion(&node, open.hash(), Duration::from_secs(30)).await;
    let id = escrow_id(&genesis, &dev("alice"), 0);

    let key = sha(&[b"cachecash/state/escrow", id.as_bytes()]);
    let p = rpc(addr, "state_getEscrowProof", vec![json!(id)])
        .await
        .unwrap();
    assert_eq!(unhex(&p["keyHash"]), key);
    let header = rpc(addr, "chain_getHeader", vec![p["blockHash"].clone()])
        .await
        .unwrap();
    let root = unhex(&header["stateRoot"]);
    let value = unhex(&p["encodedEscrow"]);
    assert!(verify_raw(&root, &key, Some(&value), &p["proof"]));
    // The proven bytes are the escrow with the terms that were opened.
    let escrow = Escrow::decode_all(&mut &value[..]).unwrap();
    assert_eq!(escrow.terms, terms);
    assert_eq!(p["escrow"]["terms"]["faceValue"], json!("1000"));
    // Tampered terms, a false absence claim or another root fail.
    let mut forged = escrow.clone();
    forged.terms.face_value += 1;
    assert!(!verify_raw(
        &root,
        &key,
        Some(&forged.encode()),
        &p["proof"]
    ));
    assert!(!verify_raw(&root, &key, None, &p["proof"]));
    let mut other = root.clone();
    other[0] ^= 1;
    assert!(!verify_raw(&other, &key, Some(&value), &p["proof"]));

    // An escrow that was never opened is proven absent.
    let missing = format!("0x{}", "42".repeat(32));
    let p = rpc(addr, "state_getEscrowProof", vec![json!(missing)])
        .await
        .unwrap();
    assert!(p["escrow"].is_null() && p["encodedEscrow"].is_null());
    let header = rpc(addr, "chain_getHeader", vec![p["blockHash"].clone()])
        .await
        .unwrap();
    let key = sha(&[b"cachecash/state/escrow", &[0x42; 32]]);
    assert!(verify_raw(
        &unhex(&header["stateRoot"]),
        &key,
        None,
        &p["proof"]
    ));
    node.stop().await;
}

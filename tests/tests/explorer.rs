//! `chain_getHistory` on a real node: what touched an account or an escrow,
//! newest first, in pages, with the miner's rewards; bad pages refused.

use cachecash_node::service::Storage;
use cachecash_runtime::microcash::escrow_id;
use cachecash_tests::*;
use serde_json::{Value, json};
use std::time::Duration;

fn kinds(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_transfers_escrows_and_rewards_newest_first_in_pages() {
    let spec = fast_dev_spec(100);
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&spec, dir.path(), Storage::Memory, Some(dev("ferdie"))).await;
    let a = node.rpc_addr().unwrap();
    let genesis = spec.genesis_hash().unwrap();
    let bob = dev("bob");
    let mut last = None;
    for nonce in 0..3u64 {
        let tx = spec_transfer(&spec, "alice", nonce, bob, 1_000 + u128::from(nonce));
        submit_over_rpc(a, &tx).await;
        last = Some(tx.hash());
    }
    let terms = one_round_terms("alice");
    let open = escrow_open_tx(&spec, "alice", 3, &terms, 0, 1_000_000);
    submit_over_rpc(a, &open).await;
    wait_for_inclusion(&node, last.unwrap(), Duration::from_secs(30)).await;
    wait_for_inclusion(&node, open.hash(), Duration::from_secs(30)).await;

    let alice = json!(dev("alice"));
    let first = rpc(
        a,
        "chain_getHistory",
        vec![alice.clone(), json!(null), json!(2)],
    )
    .await
    .unwrap();
    assert_eq!(kinds(&first), ["escrowOpen", "transfer"], "{first}");
    let opened = &first["entries"][0];
    assert_eq!(opened["transaction"], json!(open.hash()));
    assert_eq!(
        opened["amount"],
        json!(terms.payment_required(1).unwrap().to_string())
    );
    let transfer = &first["entries"][1];
    assert_eq!(transfer["dest"], json!(bob));
    assert_eq!(transfer["amount"], json!("1002"));
    assert_eq!(transfer["account"], alice);
    assert!(
        !first["next"].is_null(),
        "a full page names the next: {first}"
    );
    let rest = rpc(
        a,
        "chain_getHistory",
        vec![alice.clone(), first["next"].clone(), json!(10)],
    )
    .await
    .unwrap();
    assert_eq!(kinds(&rest), ["transfer", "transfer"], "{rest}");
    assert_eq!(rest["entries"][1]["amount"], json!("1000"));
    assert!(rest["next"].is_null(), "the last page: {rest}");

    // The receiver sees the same transfers; the escrow sees its opening.
    let bobs = rpc(a, "chain_getHistory", vec![json!(bob)]).await.unwrap();
    assert_eq!(kinds(&bobs), ["transfer"; 3]);
    let id = json!(escrow_id(&genesis, &dev("alice"), 3));
    let escrow = rpc(a, "chain_getHistory", vec![id]).await.unwrap();
    assert_eq!(kinds(&escrow), ["escrowOpen"]);

    // The miner: one reward entry per block, newest first, no transaction.
    wait_for_height(&node, 3, Duration::from_secs(30)).await;
    let ferdie = rpc(
        a,
        "chain_getHistory",
        vec![json!(dev("ferdie")), json!(null), json!(3)],
    )
    .await
    .unwrap();
    assert_eq!(kinds(&ferdie), ["mined"; 3], "{ferdie}");
    let n0 = ferdie["entries"][0]["blockNumber"].as_u64().unwrap();
    let n1 = ferdie["entries"][1]["blockNumber"].as_u64().unwrap();
    assert!(n0 > n1, "newest first: {ferdie}");
    assert!(ferdie["entries"][0]["index"].is_null());
    assert!(ferdie["entries"][0]["transaction"].is_null());

    // Bad pages and subjects are refused with what to do.
    let e = rpc(
        a,
        "chain_getHistory",
        vec![alice.clone(), json!(null), json!(0)],
    )
    .await
    .unwrap_err();
    assert!(
        e.starts_with("-32602") && e.contains("limit must be 1 to 256"),
        "{e}"
    );
    let e = rpc(a, "chain_getHistory", vec![json!("0x12")])
        .await
        .unwrap_err();
    assert!(e.starts_with("-32602"), "{e}");
    let e = rpc(a, "chain_getHistory", vec![alice, json!({"block": "x"})])
        .await
        .unwrap_err();
    assert!(e.starts_with("-32602"), "{e}");
    node.stop().await;
}

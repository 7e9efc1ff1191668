//! A mining node accepts a transfer over RPC, and after a restart on the
//! same base path it has the same head and balances.

use cachecash_node::service::Storage;
use cachecash_runtime::primitives::encode_hex;
use cachecash_runtime::{Call, Transaction};
use cachecash_tests::*;
use parity_scale_codec::Encode;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mined_transfer_survives_restart_with_same_head_and_balances() {
    let spec = fast_dev_spec(100);
    let dir = tempfile::tempdir().unwrap();
    let genesis = spec.genesis_hash().unwrap();
    let alice = cachecash_chain_spec::dev_accounts::dev_signing_key("alice").unwrap();

    let node = start_node(&spec, dir.path(), Storage::Rocks, Some(dev("ferdie"))).await;
    let addr = node.rpc_addr().unwrap();
    wait_for_height(&node, 2, Duration::from_secs(30)).await;

    let tx = Transaction {
        signer: dev("alice"),
        nonce: 0,
        fee: 1_000_000,
        call: Call::Transfer {
            dest: dev("bob"),
            amount: 12_345,
        },
    }
    .sign(&alice, &genesis);
    let hash = rpc(
        addr,
        "author_submitTransaction",
        vec![json!(encode_hex(&tx.encode()))],
    )
    .await
    .unwrap();
    assert_eq!(hash, json!(tx.hash()));
    let block = wait_for_inclusion(&node, tx.hash(), Duration::from_secs(30)).await;
    let included = rpc(addr, "chain_getTransaction", vec![hash.clone()])
        .await
        .unwrap();
    assert_eq!(included["blockHash"], json!(block));

    // Replaying the same transaction is refused with a clear reason.
    let again = rpc(
        addr,
        "author_submitTransaction",
        vec![json!(encode_hex(&tx.encode()))],
    )
    .await;
    assert!(again.unwrap_err().contains("already included"));

    let bob = rpc(addr, "state_getBalance", vec![json!(dev("bob"))])
        .await
        .unwrap();
    assert_eq!(
        bob,
        json!((1_000_000_000_000_000_000u128 + 12_345).to_string())
    );
    node.stop().await;

    // Restart without mining: same head, same balances.
    let before_head = {
        let n = start_node(&spec, dir.path(), Storage::Rocks, None).await;
        let head = n.chain().head();
        let a = n.rpc_addr().unwrap();
        assert_eq!(
            rpc(a, "state_getBalance", vec![json!(dev("bob"))])
                .await
                .unwrap(),
            bob
        );
        let acct = rpc(a, "state_getAccount", vec![json!(dev("alice"))])
            .await
            .unwrap();
        assert_eq!(acct["nonce"], json!(1));
        let hdr = rpc(a, "chain_getHeader", vec![]).await.unwrap();
        assert_eq!(hdr["hash"], json!(head.hash));
        n.stop().await;
        head
    };
    let n = start_node(&spec, dir.path(), Storage::Rocks, None).await;
    assert_eq!(n.chain().head(), before_head);
    assert!(before_head.header.number >= 3);
    n.stop().await;
}

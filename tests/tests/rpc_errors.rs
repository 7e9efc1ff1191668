//! Bad input over RPC gets a JSON-RPC error that says what was wrong, and
//! the node keeps serving.

use cachecash_node::rpc::RpcMethods;
use cachecash_node::service::Storage;
use cachecash_runtime::primitives::encode_hex;
use cachecash_runtime::{Call, Transaction};
use cachecash_tests::*;
use parity_scale_codec::Encode;
use serde_json::json;

fn transfer(
    from: &str,
    nonce: u64,
    amount: u128,
    fee: u128,
    genesis: &cachecash_runtime::Hash,
) -> String {
    let key = cachecash_chain_spec::dev_accounts::dev_signing_key(from).unwrap();
    let tx = Transaction {
        signer: dev(from),
        nonce,
        fee,
        call: Call::Transfer {
            dest: dev("bob"),
            amount,
        },
    }
    .sign(&key, genesis);
    encode_hex(&tx.encode())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_invalid_requests_get_clear_errors() {
    let spec = fast_dev_spec(60_000);
    let dir = tempfile::tempdir().unwrap();
    let genesis = spec.genesis_hash().unwrap();
    let node = start_node(&spec, dir.path(), Storage::Memory, None).await;
    let a = node.rpc_addr().unwrap();

    let e = rpc(a, "author_submitTransaction", vec![json!("0xzz")])
        .await
        .unwrap_err();
    assert!(e.starts_with("-32602") && e.contains("not hex"), "{e}");
    let e = rpc(a, "author_submitTransaction", vec![json!("0x0102")])
        .await
        .unwrap_err();
    assert!(
        e.starts_with("-32602") && e.contains("do not decode"),
        "{e}"
    );
    let e = rpc(a, "state_getBalance", vec![json!("0x1234")])
        .await
        .unwrap_err();
    assert!(e.contains("expected exactly 32 bytes"), "{e}");
    let e = rpc(a, "state_getBalance", vec![]).await.unwrap_err();
    assert!(
        e.starts_with("-32602") && e.contains("No more params"),
        "{e}"
    );
    let e = rpc(
        a,
        "state_getBalance",
        vec![json!(dev("alice")), json!(format!("0x{}", "11".repeat(32)))],
    )
    .await
    .unwrap_err();
    assert!(e.starts_with("1011") && e.contains("unknown block"), "{e}");

    // Bad signature: signed for another chain.
    let other = cachecash_runtime::Hash([9; 32]);
    let e = rpc(
        a,
        "author_submitTransaction",
        vec![json!(transfer("alice", 0, 1, 1_000_000, &other))],
    )
    .await
    .unwrap_err();
    assert!(e.starts_with("1010") && e.contains("bad signature"), "{e}");
    // Insufficient balance.
    let e = rpc(
        a,
        "author_submitTransaction",
        vec![json!(transfer(
            "alice",
            0,
            u128::MAX / 2,
            1_000_000,
            &genesis
        ))],
    )
    .await
    .unwrap_err();
    assert!(e.contains("insufficient balance"), "{e}");
    // Fee below the minimum.
    let e = rpc(
        a,
        "author_submitTransaction",
        vec![json!(transfer("alice", 0, 1, 1, &genesis))],
    )
    .await
    .unwrap_err();
    assert!(e.contains("fee too low"), "{e}");
    // Future nonce.
    let e = rpc(
        a,
        "author_submitTransaction",
        vec![json!(transfer("alice", 5, 1, 1_000_000, &genesis))],
    )
    .await
    .unwrap_err();
    assert!(e.contains("future nonce"), "{e}");
    // A valid one, then its replay as a stale/duplicate.
    let ok = transfer("alice", 0, 1, 1_000_000, &genesis);
    rpc(a, "author_submitTransaction", vec![json!(ok)])
        .await
        .unwrap();
    let e = rpc(a, "author_submitTransaction", vec![json!(ok)])
        .await
        .unwrap_err();
    assert!(e.contains("already pending"), "{e}");
    let pending = rpc(a, "author_pendingTransactions", vec![]).await.unwrap();
    assert_eq!(pending.as_array().unwrap().len(), 1);
    // Paged, and bounded.
    let page = rpc(a, "author_pendingTransactions", vec![json!(1), json!(1)])
        .await
        .unwrap();
    assert_eq!(page.as_array().unwrap().len(), 0, "offset past the pool");
    let e = rpc(a, "author_pendingTransactions", vec![json!(100_000)])
        .await
        .unwrap_err();
    assert!(e.contains("limit must be 1 to 1024"), "{e}");

    // Every method is listed, and the node still serves.
    let methods = rpc(a, "rpc_methods", vec![]).await.unwrap();
    for m in [
        "chain_getHeader",
        "chain_getBlock",
        "chain_getBlockHash",
        "chain_subscribeNewHeads",
        "state_getBalance",
        "state_getAccount",
        "state_getProof",
        "author_submitTransaction",
        "author_pendingTransactions",
        "system_health",
        "system_version",
        "system_chain",
        "system_properties",
        "rpc_methods",
    ] {
        assert!(
            methods["methods"].as_array().unwrap().contains(&json!(m)),
            "{m} listed"
        );
    }
    let props = rpc(a, "system_properties", vec![]).await.unwrap();
    assert_eq!(props["tokenSymbol"], json!("CCH"));
    assert_eq!(
        rpc(a, "system_chain", vec![]).await.unwrap(),
        json!("Cachecash Test")
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_methods_are_refused_unless_allowed() {
    let spec = fast_dev_spec(60_000);
    let dir = tempfile::tempdir().unwrap();
    let safe = start_node_with(&spec, dir.path(), Storage::Memory, None, |c| {
        c.rpc_methods = RpcMethods::Safe
    })
    .await;
    let e = rpc(
        safe.rpc_addr().unwrap(),
        "author_removeTransaction",
        vec![json!(format!("0x{}", "00".repeat(32)))],
    )
    .await
    .unwrap_err();
    assert!(
        e.starts_with("1012") && e.contains("--rpc-methods unsafe"),
        "{e}"
    );
    // The dashboard's actions are unsafe too, refused before anything else.
    for (method, params) in [
        ("cache_claimNow", vec![]),
        (
            "publisher_closeEscrow",
            vec![json!(format!("0x{}", "00".repeat(32)))],
        ),
    ] {
        let e = rpc(safe.rpc_addr().unwrap(), method, params)
            .await
            .unwrap_err();
        assert!(
            e.starts_with("1012") && e.contains(method) && e.contains("--rpc-methods unsafe"),
            "{e}"
        );
    }
    safe.stop().await;
    let local = start_node(&spec, dir.path(), Storage::Memory, None).await;
    let r = rpc(
        local.rpc_addr().unwrap(),
        "author_removeTransaction",
        vec![json!(format!("0x{}", "00".repeat(32)))],
    )
    .await;
    assert_eq!(r.unwrap(), json!(false));
    // Allowed, but the node runs no CDN role: it says which to start.
    let e = rpc(local.rpc_addr().unwrap(), "cache_claimNow", vec![])
        .await
        .unwrap_err();
    assert!(e.starts_with("1015") && e.contains("--cache"), "{e}");
    local.stop().await;
}

/// The default policy (`--rpc-methods auto`) decides by the listener: a
/// node whose RPC listens on every interface serves only safe methods, to
/// remote callers and local ones alike, so that nobody on the network can
/// drop transactions from its pool or close its escrows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_methods_are_refused_by_default_on_a_public_listener() {
    let spec = fast_dev_spec(60_000);
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_with(&spec, dir.path(), Storage::Memory, None, |c| {
        c.rpc_addr = Some("0.0.0.0:0".parse().unwrap());
        assert_eq!(c.rpc_methods, RpcMethods::Auto);
    })
    .await;
    let bound = node.rpc_addr().unwrap();
    assert!(bound.ip().is_unspecified(), "{bound}");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], bound.port()));
    for (method, params) in [
        (
            "author_removeTransaction",
            vec![json!(format!("0x{}", "00".repeat(32)))],
        ),
        ("cache_claimNow", vec![]),
        (
            "publisher_closeEscrow",
            vec![json!(format!("0x{}", "00".repeat(32)))],
        ),
    ] {
        let e = rpc(addr, method, params).await.unwrap_err();
        assert!(
            e.starts_with("1012") && e.contains("--rpc-methods unsafe"),
            "{method}: {e}"
        );
    }
    // Safe methods are still served there, and the node keeps running.
    assert_eq!(
        rpc(addr, "system_chain", vec![]).await.unwrap(),
        json!("Cachecash Test")
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_methods_reject_bad_input_with_clear_errors() {
    use cachecash_runtime::microcash::escrow_id;
    let spec = fast_dev_spec(200);
    let dir = tempfile::tempdir().unwrap();
    let genesis = spec.genesis_hash().unwrap();
    let node = start_node(&spec, dir.path(), Storage::Memory, Some(dev("ferdie"))).await;
    let a = node.rpc_addr().unwrap();
    let unknown = json!(format!("0x{}", "42".repeat(32)));

    let e = rpc(a, "state_getEscrow", vec![json!("0xnothex")])
        .await
        .unwrap_err();
    assert!(e.starts_with("-32602") && e.contains("hex"), "{e}");
    assert_eq!(
        rpc(a, "state_getEscrow", vec![unknown.clone()])
            .await
            .unwrap(),
        json!(null)
    );
    let e = rpc(a, "escrow_getWinners", vec![unknown.clone(), json!(1)])
        .await
        .unwrap_err();
    assert!(e.starts_with("1013") && e.contains("does not exist"), "{e}");
    let e = rpc(a, "escrow_getWinners", vec![unknown.clone(), json!("one")])
        .await
        .unwrap_err();
    assert!(e.starts_with("-32602") && e.contains("expected u64"), "{e}");
    let e = rpc(a, "escrow_listByFunder", vec![json!("0x12")])
        .await
        .unwrap_err();
    assert!(e.starts_with("-32602"), "{e}");

    // An escrow to ask about: rounds outside it and numbers ≥ n are refused.
    let terms = one_round_terms("alice");
    let open = escrow_open_tx(&spec, "alice", 0, &terms, 0, 1_000_000);
    rpc(
        a,
        "author_submitTransaction",
        vec![json!(encode_hex(&open.encode()))],
    )
    .await
    .unwrap();
    wait_for_inclusion(&node, open.hash(), std::time::Duration::from_secs(30)).await;
    let id = json!(escrow_id(&genesis, &dev("alice"), 0));
    let e = rpc(a, "escrow_getWinners", vec![id.clone(), json!(7)])
        .await
        .unwrap_err();
    assert!(e.starts_with("-32602") && e.contains("outside"), "{e}");
    let e = rpc(a, "escrow_getClaim", vec![id.clone(), json!(1), json!(4)])
        .await
        .unwrap_err();
    assert!(e.starts_with("-32602") && e.contains("out of range"), "{e}");
    let ok = rpc(a, "escrow_getClaim", vec![id, json!(1), json!(3)])
        .await
        .unwrap();
    assert_eq!(ok["status"], json!("notDrawn"));
    node.stop().await;
}

/// One HTTP POST with curl: (status, body).
async fn post(url: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    // The body goes through a file: one argument is at most 128 KiB.
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), body).expect("body written");
    let data = format!("@{}", file.path().display());
    let out = cmd
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &data,
            url,
        ])
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_pages_from_foreign_origins_and_rebound_host_names_are_refused() {
    let spec = fast_dev_spec(60_000);
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&spec, dir.path(), Storage::Memory, None).await;
    let url = format!("http://{}", node.rpc_addr().unwrap());
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}"#;
    // Programs send no Origin; local pages may call.
    assert_eq!(post(&url, &[], call).await.0, 200);
    let (status, body) = post(&url, &["Origin: http://localhost:5173"], call).await;
    assert_eq!(status, 200, "{body}");
    // A page of another site, in the operator's browser, may not (the
    // unsafe methods are on for a loopback listener).
    let submit = r#"{"jsonrpc":"2.0","id":1,"method":"author_submitExtrinsic","params":["0x00"]}"#;
    let (status, body) = post(&url, &["Origin: https://evil.example"], submit).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("--rpc-cors"),
        "the refusal says how to allow it: {body}"
    );
    // DNS rebinding: the page's own host name now points at 127.0.0.1.
    let (status, _) = post(&url, &["Host: evil.example:9944"], call).await;
    assert_eq!(status, 403);
    // Batches are bounded.
    let batch = format!(
        "[{}]",
        (0..65)
            .map(|i| format!(
                r#"{{"jsonrpc":"2.0","id":{i},"method":"system_health","params":[]}}"#
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (_, body) = post(&url, &[], &batch).await;
    assert!(
        body.contains("exceeded") || body.contains("batch"),
        "{body}"
    );
    let ok = format!(
        "[{}]",
        (0..64)
            .map(|i| format!(
                r#"{{"jsonrpc":"2.0","id":{i},"method":"system_health","params":[]}}"#
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (status, body) = post(&url, &[], &ok).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        64
    );
    // And the node keeps serving.
    assert_eq!(post(&url, &[], call).await.0, 200);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_json_rpc_input_is_refused_with_clear_errors_and_the_server_stays_up() {
    let spec = fast_dev_spec(60_000);
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&spec, dir.path(), Storage::Memory, None).await;
    let addr = node.rpc_addr().unwrap();
    let url = format!("http://{addr}");
    let health = r#"{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}"#;
    let serves = || async { post(&url, &[], health).await.0 == 200 };

    // Malformed JSON: a parse error, not a dropped connection.
    let (_, body) = post(&url, &[], r#"{"jsonrpc":"2.0","id":1,"method":"#).await;
    assert!(body.contains("-32700"), "{body}");
    // A body over the 1 MiB limit is refused before it is parsed.
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"author_submitTransaction","params":["0x{}"]}}"#,
        "00".repeat(1024 * 1024)
    );
    let (status, body) = post(&url, &[], &huge).await;
    assert!(
        status == 413 || body.contains("too big") || body.contains("exceeded"),
        "{status} {body}"
    );
    assert!(serves().await);
    // Nesting far deeper than the parser allows: a method that reads its
    // parameters refuses them (serde's recursion limit), one that ignores
    // them answers; neither overflows the stack.
    let nested = |method: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":[{}{}]}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        )
    };
    let (_, body) = post(&url, &[], &nested("chain_getBlockHash")).await;
    assert!(body.contains("-32602") || body.contains("-32700"), "{body}");
    let (status, _) = post(&url, &[], &nested("system_health")).await;
    assert_eq!(status, 200);
    assert!(serves().await);
    // Wrong types: the parameter's problem is named.
    let e = rpc(addr, "state_getBalance", vec![json!(123)])
        .await
        .unwrap_err();
    assert!(e.starts_with("-32602") && e.contains("invalid type"), "{e}");
    let e = rpc(addr, "chain_getBlockHash", vec![json!({"n": 1})])
        .await
        .unwrap_err();
    assert!(e.starts_with("-32602"), "{e}");
    // An unknown method.
    let e = rpc(addr, "chain_dropEverything", vec![]).await.unwrap_err();
    assert!(e.starts_with("-32601"), "{e}");

    // A subscription flood on one WebSocket connection: the first 64 are
    // served, the rest refused, and the connection keeps answering calls.
    use cachecash_node::rpc::api::{ChainApiClient, SystemApiClient};
    let ws = jsonrpsee::ws_client::WsClientBuilder::default()
        .build(format!("ws://{addr}"))
        .await
        .unwrap();
    let mut subs = Vec::new();
    let mut refused = 0;
    for _ in 0..80 {
        match ws.subscribe_new_heads().await {
            Ok(s) => subs.push(s),
            Err(_) => refused += 1,
        }
    }
    assert_eq!(subs.len(), 64, "{refused} refused");
    assert_eq!(refused, 16);
    assert!(ws.health().await.is_ok());
    drop(subs);
    assert!(serves().await);
    node.stop().await;
}

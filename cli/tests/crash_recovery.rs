//! kill -9 at arbitrary instants leaves a database that opens at a
//! consistent head holding every acknowledged block.

use cachecash_node::metrics::Metrics;
use cachecash_node::service::{Storage, open_chain};
use cachecash_node::storage::TreeView;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fast_spec_file(dir: &std::path::Path) -> std::path::PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_cachecash"))
        .args(["export-chain-spec", "--chain", "dev"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["consensus"]["targetBlockTimeMs"] = 10.into();
    let path = dir.join("crash-spec.json");
    std::fs::write(&path, v.to_string()).unwrap();
    path
}

#[test]
fn sigkill_during_mining_never_loses_acknowledged_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = fast_spec_file(dir.path());
    let base = dir.path().join("base");
    let spec = cachecash_chain_spec::ChainSpec::load(spec_path.to_str().unwrap()).unwrap();
    // Deterministic but irregular kill delays (xorshift).
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut last_ack = 0u64;
    let rounds = 12;
    for round in 0..rounds {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cachecash"))
            .args([
                "--chain",
                spec_path.to_str().unwrap(),
                "--base-path",
                base.to_str().unwrap(),
            ])
            .args([
                "--mine",
                "--miner-account",
                "alice",
                "--no-rpc",
                "--port",
                "0",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Acknowledged blocks: those the miner logged as imported.
        let acked = Arc::new(Mutex::new(0u64));
        let acked2 = acked.clone();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("mined block number=").nth(1) {
                    let n: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
                    let mut a = acked2.lock().unwrap();
                    *a = (*a).max(n);
                }
            }
        });
        // Wait for the node to make progress past the previous round, then kill it.
        let deadline = Instant::now() + Duration::from_secs(60);
        while *acked.lock().unwrap() <= last_ack {
            assert!(
                Instant::now() < deadline,
                "round {round}: node made no progress"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "round {round}: node exited early"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 120));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let ack = *acked.lock().unwrap();

        let chain = open_chain(&base, &spec, &Storage::Rocks, Arc::new(Metrics::new()))
            .unwrap_or_else(|e| panic!("round {round}: database does not open after SIGKILL: {e}"));
        let head = chain.head();
        assert!(
            head.header.number >= ack,
            "round {round}: head #{} lost acknowledged block #{ack}",
            head.header.number
        );
        // Consistency: canonical index, headers and state agree at the head.
        assert_eq!(
            chain.canonical_hash(head.header.number).unwrap(),
            Some(head.hash)
        );
        let root = cachecash_runtime::commitment::root_at(
            &TreeView(chain.store().as_ref()),
            head.header.number,
        )
        .unwrap();
        assert_eq!(
            root, head.header.state_root,
            "round {round}: state root at head"
        );
        assert!(
            chain
                .store()
                .canonical_hash(head.header.number + 1)
                .unwrap()
                .is_none()
        );
        let parent = chain.header(&head.header.parent_hash).unwrap().unwrap();
        assert_eq!(parent.number + 1, head.header.number);
        last_ack = head.header.number;
        drop(chain);
    }
}

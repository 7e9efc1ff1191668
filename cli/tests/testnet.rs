//! `cachecash testnet` end to end: real child processes on loopback. The
//! demo object comes through the gateway byte-exact (fetched by curl),
//! caches get paid on chain, SIGTERM stops every node, and a second run
//! over the same directory resumes the same chain.

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(dir: &Path, caches: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cachecash"))
        .args(["testnet", "--caches", caches, "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cachecash testnet starts")
}

fn wait_ready(dir: &Path, child: &mut Child) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(150);
    loop {
        if let Ok(t) = std::fs::read_to_string(dir.join("ready.json"))
            && let Ok(v) = serde_json::from_str(&t)
        {
            return v;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let logs = std::fs::read_dir(dir.join("logs"))
                .map(|d| d.count())
                .unwrap_or(0);
            panic!(
                "the testnet exited early ({status}); {logs} logs in {}",
                dir.display()
            );
        }
        assert!(
            Instant::now() < end,
            "the testnet is not ready within 150 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rpc(url: &str, method: &str) -> Option<serde_json::Value> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": []});
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-H",
            "Content-Type: application/json",
            "-d",
        ])
        .arg(body.to_string())
        .arg(url)
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get("result").cloned()
}

fn head(ready: &serde_json::Value) -> u64 {
    rpc(ready["rpc"].as_str().unwrap(), "chain_getHeader")
        .and_then(|h| h["number"].as_u64())
        .unwrap_or(0)
}

fn stop(mut child: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "the testnet exits cleanly on SIGTERM: {status}"
            );
            return;
        }
        assert!(
            Instant::now() < end,
            "the testnet stops within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_testnet_serves_the_demo_through_the_gateway_pays_caches_stops_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start(dir.path(), "2");
    let ready = wait_ready(dir.path(), &mut child);
    let gateway = ready["gateway"].as_str().unwrap().to_string();

    // curl through the gateway, byte-exact against the origin.
    let out = dir.path().join("16MiB.bin");
    let status = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "120", "-o"])
        .arg(&out)
        .arg(format!("{gateway}/demo/16MiB.bin"))
        .status()
        .expect("curl runs");
    assert!(status.success());
    let origin = Path::new(ready["origin"].as_str().unwrap()).join("demo/16MiB.bin");
    assert_eq!(
        Sha256::digest(std::fs::read(&out).unwrap()),
        Sha256::digest(std::fs::read(origin).unwrap())
    );

    // The caches' winning tickets are claimed: their balances move.
    let caches: Vec<String> = ready["cachesRpc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let end = Instant::now() + Duration::from_secs(180);
    let paid = loop {
        let total: u128 = caches
            .iter()
            .filter_map(|c| rpc(c, "cache_earnings"))
            .filter_map(|e| e["balance"].as_str().and_then(|b| b.parse::<u128>().ok()))
            .sum();
        if total > 0 {
            break total;
        }
        assert!(
            Instant::now() < end,
            "no cache was paid within 180 s of serving 16 MiB"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(paid > 0);
    let before = head(&ready);
    assert!(before > 0);
    let publisher = ready["publisher"].clone();
    stop(child);
    assert!(
        !dir.path().join("ready.json").exists(),
        "ready.json is removed at stop"
    );
    assert!(
        rpc(ready["rpc"].as_str().unwrap(), "chain_getHeader").is_none(),
        "the mining node stopped with the testnet"
    );

    // A second run over the same directory resumes the same chain.
    let mut child = start(dir.path(), "2");
    let again = wait_ready(dir.path(), &mut child);
    assert_eq!(again["publisher"], publisher, "same keys");
    assert!(
        head(&again) >= before,
        "the chain resumed at #{} (was #{before})",
        head(&again)
    );
    stop(child);
}

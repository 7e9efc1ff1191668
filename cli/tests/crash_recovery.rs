//! kill -9 at arbitrary instants leaves a database that opens at a
//! consistent head holding every acknowledged block: a lone miner, and the
//! ledger's crash loop (a node mining and importing a peer's blocks).

use cachecash_node::Chain;
use cachecash_node::metrics::Metrics;
use cachecash_node::service::{Storage, open_chain};
use cachecash_node::storage::TreeView;
use cachecash_runtime::Hash;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fast_spec_file(dir: &std::path::Path) -> std::path::PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_cachecash"))
        .args(["export-chain-spec", "--chain", "dev"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
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
        std::thread::sleep(Duration::from_millis(next_seed(&mut seed) % 120));
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
        assert_head_consistent(&chain, round);
        last_ack = head.header.number;
        drop(chain);
    }
}

/// The head of a reopened chain is consistent: the canonical index ends at
/// it, its parent is stored one below it, and the state root recomputed
/// from the stored state equals the one in its header.
fn assert_head_consistent(chain: &Chain, round: u32) {
    let head = chain.head();
    assert_eq!(
        chain.canonical_hash(head.header.number).unwrap(),
        Some(head.hash),
        "round {round}: the canonical index disagrees with the head"
    );
    assert!(
        chain
            .canonical_hash(head.header.number + 1)
            .unwrap()
            .is_none(),
        "round {round}: a canonical entry above the head"
    );
    let root = cachecash_runtime::commitment::root_at(
        &TreeView(chain.store().as_ref()),
        head.header.number,
    )
    .unwrap();
    assert_eq!(
        root, head.header.state_root,
        "round {round}: the stored state does not match the head's state root"
    );
    let parent = chain.header(&head.header.parent_hash).unwrap().unwrap();
    assert_eq!(parent.number + 1, head.header.number);
}

/// A running node and the addresses it printed.
struct NodeProc {
    child: Child,
    rpc: String,
    p2p: String,
}

/// Starts a node on `base` (mining for `miner` if given); waits for its
/// RPC and p2p addresses.
fn start(
    spec: &std::path::Path,
    base: &std::path::Path,
    miner: Option<&str>,
    boot: Option<&str>,
) -> NodeProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cachecash"));
    cmd.args([
        "--chain",
        spec.to_str().unwrap(),
        "--base-path",
        base.to_str().unwrap(),
    ])
    .args(["--rpc-port", "0", "--port", "0"])
    .env("RUST_LOG", "info")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(m) = miner {
        cmd.args(["--mine", "--miner-account", m]);
    }
    if let Some(b) = boot {
        cmd.args(["--bootnodes", b]);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        // Drained to the end, so the node never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut rpc, mut p2p) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while rpc.is_none() || p2p.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("node on {} printed no addresses", base.display()));
        if let Some(rest) = line.split("JSON-RPC:").nth(1) {
            let url = rest.split_whitespace().next().unwrap();
            rpc = Some(url.trim_start_matches("http://").to_string());
        }
        if let Some(rest) = line.split("p2p address:").nth(1) {
            p2p = Some(rest.trim().to_string());
        }
    }
    NodeProc {
        child,
        rpc: rpc.unwrap(),
        p2p: p2p.unwrap(),
    }
}

/// One JSON-RPC call over a fresh HTTP/1.1 connection; `None` when the
/// node does not answer (it may be starting or just killed).
fn call(addr: &str, method: &str, params: Value) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let json = out.split("\r\n\r\n").nth(1)?;
    let v: Value = serde_json::from_str(json).ok()?;
    v.get("result").cloned()
}

/// The node's head as (number, hash).
fn head(addr: &str) -> Option<(u64, Hash)> {
    let h = call(addr, "chain_getHeader", json!([]))?;
    let number = h["number"].as_u64()?;
    let hash: Hash = serde_json::from_value(h["hash"].clone()).ok()?;
    Some((number, hash))
}

fn next_seed(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// The ledger's crash loop: a node that mines and imports a peer's blocks
/// is killed with SIGKILL at irregular moments, `CACHECASH_CRASH_ROUNDS`
/// times (10 by default, the CI form; 100 is the long form). A second
/// miner that never crashes keeps producing competing blocks, so kills
/// land during block production, import and reorganisation alike.
///
/// After every kill the victim's database must open; the last head the
/// victim reported over RPC must still be stored (the block index keeps
/// retracted blocks) and have no more work than the head, even when the
/// kill landed in the middle of a reorganisation (the node resumes the
/// switch when it reopens); every block from the head down to genesis
/// must be stored, linked and canonical; and the state root recomputed from the stored
/// state must equal the head's. At the end the victim restarts without
/// mining and follows the still-mining peer past its last pre-crash
/// height to within two blocks of the peer's head, importing the peer's
/// new blocks: it computes the same state roots as a node that never
/// crashed.
#[test]
fn sigkill_while_mining_and_importing_loses_no_committed_block_and_rejoins_the_peer() {
    let rounds: u32 = std::env::var("CACHECASH_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let spec_path = fast_spec_file(dir.path());
    let spec = cachecash_chain_spec::ChainSpec::load(spec_path.to_str().unwrap()).unwrap();
    let mut peer = start(&spec_path, &dir.path().join("peer"), Some("bob"), None);
    let victim_base = dir.path().join("victim");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut last_reported: Option<(u64, Hash)> = None;
    let mut kills_at = Vec::new();
    let mut stored_heights = Vec::new();
    for round in 0..rounds {
        let mut victim = start(&spec_path, &victim_base, Some("alice"), Some(&peer.p2p));
        // Run for an irregular time, polling the head the victim reports
        // (the node updates it only after the block is committed).
        let run_for = Duration::from_millis(150 + next_seed(&mut seed) % 900);
        let started = Instant::now();
        let mut seen = false;
        while started.elapsed() < run_for || !seen {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "round {round}: the victim's RPC never answered"
            );
            if let Some((n, h)) = head(&victim.rpc) {
                seen = true;
                last_reported = Some((n, h));
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        victim.child.kill().unwrap(); // SIGKILL
        victim.child.wait().unwrap();
        kills_at.push(last_reported.map(|(n, _)| n).unwrap_or(0));

        let chain = open_chain(
            &victim_base,
            &spec,
            &Storage::Rocks,
            Arc::new(Metrics::new()),
        )
        .unwrap_or_else(|e| panic!("round {round}: the database does not open after SIGKILL: {e}"));
        let head_now = chain.head();
        // The last head reported before the kill was committed: it is
        // still stored, and the head has at least its work. A kill in the
        // middle of a reorganisation reopens below it at first, and
        // opening the chain finishes the switch to the recorded best tip.
        let (reported_number, reported_hash) = last_reported.unwrap();
        let (_, work_then) = chain
            .header_with_work(&reported_hash)
            .unwrap()
            .unwrap_or_else(|| {
                panic!("round {round}: the last reported head #{reported_number} is gone")
            });
        let (_, work_now) = chain.header_with_work(&head_now.hash).unwrap().unwrap();
        assert!(
            work_now >= work_then,
            "round {round}: the head #{} has less work than the last head reported, #{reported_number}",
            head_now.header.number
        );
        // Every block from the head down to genesis is stored, canonical
        // and linked: nothing committed below the head was lost.
        let mut cursor = head_now.hash;
        let mut number = head_now.header.number;
        loop {
            let header = chain.header(&cursor).unwrap().unwrap_or_else(|| {
                panic!("round {round}: block #{number} below the head is missing")
            });
            assert!(
                chain.block(&cursor).unwrap().is_some(),
                "round {round}: body of #{number} missing"
            );
            assert_eq!(header.number, number);
            assert_eq!(
                chain.canonical_hash(number).unwrap(),
                Some(cursor),
                "round {round}: canonical index at #{number}"
            );
            if number == 0 {
                break;
            }
            cursor = header.parent_hash;
            number -= 1;
        }
        stored_heights.push(head_now.header.number);
        assert_head_consistent(&chain, round);
    }
    assert!(
        stored_heights.windows(2).any(|w| w[0] != w[1]),
        "the victim never advanced between kills: {stored_heights:?}"
    );

    // Rejoin: the victim restarts without mining and must follow the
    // peer, which keeps mining: importing the peer's new blocks means
    // computing the same state roots as a node that never crashed.
    let mut follower = start(&spec_path, &victim_base, None, Some(&peer.p2p));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let (Some((fnum, fhash)), Some((pnum, _))) = (head(&follower.rpc), head(&peer.rpc)) {
            let peers_block = call(&peer.rpc, "chain_getBlockHash", json!([fnum]));
            if fnum > kills_at.iter().copied().max().unwrap_or(0)
                && peers_block == Some(json!(fhash))
                && pnum.saturating_sub(fnum) <= 2
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the crashed node did not rejoin the peer's chain"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    follower.child.kill().unwrap();
    follower.child.wait().unwrap();
    peer.child.kill().unwrap();
    peer.child.wait().unwrap();
}

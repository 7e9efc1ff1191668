//! The MicroCash cycle driven through the `cachecash` binary against a
//! mining node: escrow open, ticket issue, check before and after the
//! draw, claim, show, and a refused early close.

mod common;
use common::cachecash;

use std::process::Child;
use std::time::{Duration, Instant};

/// A dev-type chain with 200 ms blocks, written to `dir`.
fn fast_dev_spec(dir: &std::path::Path) -> std::path::PathBuf {
    let (ok, out, _) = cachecash(&["export-chain-spec", "--chain", "dev"]);
    assert!(ok);
    let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["consensus"]["targetBlockTimeMs"] = 200.into();
    let path = dir.join("fast-dev.json");
    std::fs::write(&path, v.to_string()).unwrap();
    path
}

/// Kills the node when the test ends, pass or fail.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a mining node on an ephemeral RPC port; returns it and its URL,
/// read from the startup banner.
fn start_node(spec: &std::path::Path, base: &std::path::Path) -> (NodeProcess, String) {
    let args: Vec<&std::ffi::OsStr> = [
        "--chain".as_ref(),
        spec.as_os_str(),
        "--base-path".as_ref(),
        base.as_os_str(),
    ]
    .into_iter()
    .chain(
        [
            "--rpc-port",
            "0",
            "--port",
            "0",
            "--mine",
            "--miner-account",
            "ferdie",
        ]
        .map(std::ffi::OsStr::new),
    )
    .collect();
    let (child, url) = common::spawn_until_url(&args, "JSON-RPC:");
    (NodeProcess(child), url)
}

/// Runs `ticket check` until `pred` holds for its output, or panics at the deadline.
fn check_until(file: &str, url: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out, err) = cachecash(&["ticket", "check", file, "--rpc", url]);
        assert!(ok, "{err}");
        if pred(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached; last output:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn escrow_and_ticket_commands_run_the_whole_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let spec = fast_dev_spec(dir.path());
    let (_node, url) = start_node(&spec, &dir.path().join("base"));

    let (ok, out, err) = cachecash(&[
        "escrow",
        "open",
        "--from",
        "alice",
        "--face-value",
        "10CCH",
        "--tickets-per-round",
        "4",
        "--winners-per-round",
        "2",
        "--round-length",
        "4",
        "--rounds",
        "1",
        "--draw-delay",
        "1",
        "--claim-window",
        "500",
        "--penalty",
        "1CCH",
        "--rpc",
        &url,
    ]);
    assert!(ok, "{err}");
    let id = out
        .split("Escrow ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let round = out
        .split("rounds ")
        .nth(1)
        .and_then(|r| r.split("..=").next())
        .unwrap()
        .to_string();

    let (ok, _, err) = cachecash(&["escrow", "show", &id, "--rpc", &url]);
    assert!(ok, "{err}");
    let (ok, listed, err) = cachecash(&["escrow", "show", "--funder", "alice", "--rpc", &url]);
    assert!(ok, "{err}");
    assert!(listed.contains(&id), "{listed}");

    let tickets = dir.path().join("tickets.txt");
    let tickets = tickets.to_str().unwrap();
    let secret = format!("0x{}", "07".repeat(32));
    let (ok, _, err) = cachecash(&[
        "ticket",
        "issue",
        "--signer",
        "alice",
        "--escrow",
        &id,
        "--round",
        &round,
        "--numbers",
        "0-3",
        "--cache",
        "bob",
        "--client",
        "charlie",
        "--secret",
        &secret,
        "--batch",
        "--output",
        tickets,
        "--rpc",
        &url,
    ]);
    assert!(ok, "{err}");
    let lines: Vec<String> = std::fs::read_to_string(tickets)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 4);

    // Out-of-range numbers are refused before signing.
    let (ok, _, err) = cachecash(&[
        "ticket",
        "issue",
        "--signer",
        "alice",
        "--escrow",
        &id,
        "--round",
        &round,
        "--numbers",
        "4",
        "--cache",
        "bob",
        "--client",
        "charlie",
        "--rpc",
        &url,
    ]);
    assert!(!ok);
    assert!(err.contains("out of range"), "{err}");

    // After the draw, exactly two of the four win. Each ticket is checked
    // with its own RPC call while the node mines, so wait until none of the
    // four reports "not drawn" before judging the split.
    let report = check_until(tickets, &url, |o| {
        !o.contains("not drawn") && o.lines().filter(|l| l.contains("valid")).count() == 4
    });
    assert_eq!(report.matches("WINNING").count(), 2, "{report}");
    let winners: Vec<usize> = report
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("WINNING"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(report.matches("not a winner").count(), 2, "{report}");

    let mut claim = vec![
        "ticket", "claim", "--from", "bob", "--secret", &secret, "--rpc", &url,
    ];
    for &i in &winners {
        claim.push(&lines[i]);
    }
    let (ok, out, err) = cachecash(&claim);
    assert!(ok, "{err}");
    assert!(out.contains("Claimed 2 ticket(s)"), "{out}");
    check_until(tickets, &url, |o| o.matches("already claimed").count() == 2);

    // A wrong secret is refused with the reason.
    let wrong = format!("0x{}", "08".repeat(32));
    let (ok, _, err) = cachecash(&[
        "ticket",
        "claim",
        "--from",
        "bob",
        "--secret",
        &wrong,
        &lines[winners[0]],
        "--rpc",
        &url,
    ]);
    assert!(!ok);
    assert!(err.contains("preimage"), "{err}");

    // Secrets: one for all tickets or one per ticket; anything else is refused.
    let (ok, _, err) = cachecash(&[
        "ticket",
        "claim",
        "--from",
        "bob",
        "--secret",
        &format!("{secret},{wrong}"),
        &lines[winners[0]],
        "--rpc",
        &url,
    ]);
    assert!(!ok);
    assert!(err.contains("2 secrets for 1 tickets"), "{err}");

    // The signer issues number 0 a second time, to another client: the
    // cache they name proves it, and the penalty is forfeited.
    let twins = dir.path().join("twins.txt");
    let twins = twins.to_str().unwrap();
    let (ok, _, err) = cachecash(&[
        "ticket",
        "issue",
        "--signer",
        "alice",
        "--escrow",
        &id,
        "--round",
        &round,
        "--numbers",
        "0",
        "--cache",
        "bob",
        "--client",
        "dave",
        "--secret",
        &secret,
        "--output",
        twins,
        "--rpc",
        &url,
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = cachecash(&[
        "ticket",
        "prove-duplicate",
        "--from",
        "bob",
        &lines[0],
        &lines[1],
        "--rpc",
        &url,
    ]);
    assert!(!ok, "two different numbers are not a duplicate");
    assert!(err.contains("not a duplicate"), "{err}");
    let (ok, out, err) = cachecash(&[
        "ticket",
        "prove-duplicate",
        "--from",
        "bob",
        &lines[0],
        twins,
        "--rpc",
        &url,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("Duplicate proven"), "{out}");
    let (ok, shown, err) = cachecash(&["escrow", "show", &id, "--rpc", &url]);
    assert!(ok, "{err}");
    assert!(shown.contains("\"penalised\": true"), "{shown}");

    let (ok, _, err) = cachecash(&["escrow", "close", "--from", "alice", &id, "--rpc", &url]);
    assert!(!ok);
    assert!(err.contains("locked until block"), "{err}");
}

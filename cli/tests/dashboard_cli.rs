//! `cachecash run --dashboard`: what the binary says about who can reach
//! the dashboard, and that the page it names is served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A running `cachecash`, killed when dropped (also when a test fails).
struct Node {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    _base: tempfile::TempDir,
}

impl Node {
    /// Starts a dev node (mining, RPC and p2p on ephemeral ports) with
    /// `extra` flags, logging at `info`.
    fn start(extra: &[&str]) -> Node {
        let base = tempfile::tempdir().unwrap();
        let mut args: Vec<&std::ffi::OsStr> =
            ["--dev", "--port", "0", "--rpc-port", "0", "--base-path"]
                .iter()
                .map(std::ffi::OsStr::new)
                .collect();
        args.push(base.path().as_os_str());
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let (child, lines) = common::spawn_logged(&args);
        Node {
            child,
            lines,
            seen: Vec::new(),
            _base: base,
        }
    }

    /// Waits up to 60 s for a line of standard error holding `text`.
    fn line(&mut self, text: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(text) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "the node printed no line with {text:?} within 60 s; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text after `label` up to the next space.
fn word_after<'a>(line: &'a str, label: &str) -> &'a str {
    line.split(label)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"))
}

/// `GET path` from `host:port`; the response's body.
fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

#[test]
fn a_loopback_dashboard_says_it_is_reachable_only_from_this_machine_and_how_to_expose_it() {
    let mut node = Node::start(&["--dashboard", "127.0.0.1:0"]);
    let url = node.line("dashboard: http://");
    let addr = word_after(&url, "dashboard: http://").to_string();
    let port = addr
        .strip_prefix("127.0.0.1:")
        .unwrap_or_else(|| panic!("the dashboard is on loopback: {url}"));
    assert_ne!(port, "0", "the bound port is printed, not 0: {url}");
    assert!(url.contains("(read-only; "), "read-only by default: {url}");
    let reach = node.line("dashboard: reachable");
    for says in [
        "dashboard: reachable only from this machine;".to_string(),
        format!("--dashboard 0.0.0.0:{port} --rpc-external --rpc-cors http://HOST:{port}"),
        format!("ssh -L {port}:127.0.0.1:{port} -L RPC_PORT:127.0.0.1:RPC_PORT HOST"),
    ] {
        assert!(reach.contains(&says), "{says:?} in {reach:?}");
    }
    // The URL printed serves the page, which reads the RPC logged below.
    let rpc = node.line("JSON-RPC:");
    assert!(
        !node.seen.iter().any(|l| l.contains("beyond")),
        "no warning for loopback: {:?}",
        node.seen
    );
    let rpc_port = word_after(&rpc, "JSON-RPC:")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    assert!(get(&addr, "/").contains("<title>cachecash node</title>"));
    let config: serde_json::Value = serde_json::from_str(&get(&addr, "/config.json")).unwrap();
    assert_eq!(config["rpcPort"].to_string(), rpc_port, "{config}");
    assert_eq!(config["actions"], false, "{config}");
}

#[test]
fn a_dashboard_beyond_loopback_warns_and_says_what_the_page_needs() {
    let mut node = Node::start(&["--dashboard", "0.0.0.0:0"]);
    let url = node.line("dashboard: http://0.0.0.0:");
    let port = word_after(&url, "dashboard: http://0.0.0.0:").to_string();
    let warning = node.line("dashboard: warning:");
    for says in [
        format!("listening on 0.0.0.0:{port}, beyond this machine"),
        format!("keep it on loopback (--dashboard 127.0.0.1:{port})"),
        "--rpc-external".to_string(),
        format!("--rpc-cors http://HOST:{port}"),
    ] {
        assert!(warning.contains(&says), "{says:?} in {warning:?}");
    }
    assert!(!warning.contains("reachable only"), "{warning}");
    // The node's own log repeats it when the dashboard starts.
    node.line("the dashboard listens beyond loopback");
}

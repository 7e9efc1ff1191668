//! Helpers shared by the binary's end-to-end tests.

use std::process::Command;

/// Runs `cachecash ARGS`; returns (success, stdout, stderr).
#[allow(
    dead_code,
    reason = "each test binary uses its own share of the helpers"
)]
pub fn cachecash(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cachecash"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `cachecash ARGS` logging at `info`; its standard error arrives
/// line by line on the receiver (until the process closes it).
#[allow(
    dead_code,
    reason = "each test binary uses its own share of the helpers"
)]
pub fn spawn_logged(
    args: &[&std::ffi::OsStr],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cachecash"))
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keeps reading after the receiver is gone: a full pipe would
        // block the node's logging.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Starts `cachecash ARGS` (logging at `info`) and waits up to 60 s for the
/// banner line holding `label` (such as `JSON-RPC:` or `metrics:`);
/// returns the child and the URL printed after the label.
#[allow(
    dead_code,
    reason = "each test binary uses its own share of the helpers"
)]
pub fn spawn_until_url(
    args: &[&std::ffi::OsStr],
    label: &'static str,
) -> (std::process::Child, String) {
    let (child, lines) = spawn_logged(args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the node printed no {label} address within 60 s"));
        if let Some(rest) = line.split(label).nth(1)
            && let Some(url) = rest.split_whitespace().next()
            && url.starts_with("http")
        {
            return (child, url.to_string());
        }
    }
}

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
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split(label).nth(1)
                && let Some(url) = rest.split_whitespace().next()
                && url.starts_with("http")
            {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the node printed no {label} address within 60 s"));
    (child, url)
}

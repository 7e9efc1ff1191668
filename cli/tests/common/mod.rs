//! Helpers shared by the binary's end-to-end tests.

use std::process::Command;

/// Runs `cachecash ARGS`; returns (success, stdout, stderr).
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

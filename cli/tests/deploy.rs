//! The Kubernetes manifests in `deploy/kubernetes`: every object validates
//! against the Kubernetes schemas (`kubernetes-validate --strict`, from the
//! venv `.ci/setup` builds), and every flag they pass to `cachecash` is one
//! the binary accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .filter(|p| p.file_name().and_then(|n| n.to_str()) != Some("kustomization.yaml"))
        .collect();
    out.sort();
    assert!(out.len() >= 5, "manifests found: {out:?}");
    out
}

#[test]
fn every_kubernetes_object_validates_against_the_schemas() {
    let venv = std::env::var_os("CACHECASH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/cachecash-venv")
        });
    let tool = venv.join("bin/kubernetes-validate");
    assert!(
        tool.exists(),
        "no {}: run .ci/setup (it installs kubernetes-validate into the tools venv)",
        tool.display()
    );
    let out = Command::new(&tool)
        .args(["--strict", "-k", "1.30.0"])
        .args(manifests())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "validation failed:\n{text}");
    assert!(
        text.matches(" passed for resource ").count() >= 10,
        "every object was checked:\n{text}"
    );
}

#[test]
fn every_flag_the_manifests_pass_is_one_cachecash_accepts() {
    let help = |sub: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_cachecash"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let known = format!("{}{}", help("run"), help("gateway"));
    let mut flags = BTreeSet::new();
    for path in manifests() {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            // Container args are list items: `- --flag`.
            if let Some(flag) = line.trim_start().strip_prefix("- --") {
                let name = flag.split(['=', ' ']).next().unwrap_or(flag);
                flags.insert(format!("--{name}"));
            }
        }
    }
    assert!(flags.len() >= 15, "flags found: {flags:?}");
    for f in &flags {
        assert!(
            known.contains(&format!("{f} ")) || known.contains(&format!("{f}\n")),
            "the manifests pass {f}, which cachecash does not accept"
        );
    }
}

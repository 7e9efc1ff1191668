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

/// The Dockerfile's shape: a build stage and a slim runtime stage that
/// copies in the one binary and runs it as a non-root user; and the
/// runtime base provides every shared library the binary links. (No
/// Docker engine runs on the CI machine, so the image is checked by its
/// recipe and the binary's real dependencies rather than built.)
#[test]
fn the_docker_image_is_multi_stage_non_root_and_its_base_has_every_library_the_binary_links() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    assert!(froms[0].ends_with(" AS build"), "{froms:?}");
    assert_eq!(froms[1], "FROM debian:bookworm-slim");
    // The build stage builds the CLI package, which this test belongs to.
    assert!(
        text.contains("cargo build --release --locked -p cachecash-cli"),
        "the build command"
    );
    assert_eq!(env!("CARGO_PKG_NAME"), "cachecash-cli");
    let runtime: Vec<&str> = lines
        .iter()
        .copied()
        .skip_while(|l| !l.starts_with("FROM debian"))
        .collect();
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("COPY --from=build ") && l.ends_with("/usr/local/bin/cachecash")),
        "the one binary is copied in: {runtime:?}"
    );
    let user = runtime
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "runs as a numeric non-root user (Kubernetes' runAsNonRoot needs a number): {user}"
    );
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT [\"/usr/local/bin/cachecash\"")),
        "{runtime:?}"
    );
    // Every library the binary links comes from a package debian:bookworm-slim
    // ships (this machine is Debian bookworm, the image's base).
    let slim = ["libc6", "libgcc-s1", "libstdc++6"];
    let ldd = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_cachecash"))
        .output()
        .unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout).to_string();
    let libs: Vec<&str> = ldd
        .lines()
        .filter_map(|l| l.split("=>").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .collect();
    assert!(libs.iter().any(|l| l.contains("libc.so")), "{ldd}");
    for lib in libs {
        // dpkg knows a file by the path its package installed, which may be
        // the linked name or the resolved one, under /lib or /usr/lib.
        let real = std::fs::canonicalize(lib).unwrap().display().to_string();
        let candidates = [
            lib.to_string(),
            real.clone(),
            real.replacen("/usr/lib/", "/lib/", 1),
        ];
        let package = candidates
            .iter()
            .find_map(|path| {
                let out = Command::new("dpkg").args(["-S", path]).output().ok()?;
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                let name = text.split(':').next()?.trim().to_string();
                (out.status.success() && !name.is_empty()).then_some(name)
            })
            .unwrap_or_default();
        assert!(
            slim.contains(&package.as_str()),
            "{lib} ({real}) comes from '{package}', which debian:bookworm-slim lacks; add it to the Dockerfile's runtime stage"
        );
    }
}

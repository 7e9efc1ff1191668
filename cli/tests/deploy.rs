//! The deployment files in `deploy/`: the Kustomize directory
//! `deploy/kubernetes` renders (`kustomize build`, with node keys made by
//! `cachecash key generate`), every rendered object validates against the
//! Kubernetes schemas (`kubernetes-validate --strict`), every flag a
//! container passes is one its `cachecash` subcommand accepts, the probes
//! and scrape annotations point at ports the node serves, and the
//! Prometheus config in `deploy/grafana` scrapes those annotations.
//! `.ci/setup` installs the tools: kubernetes-validate into its venv, and
//! kustomize v5.5.0 into the venv's `bin` (or finds the one built into
//! `kubectl`).

use base64::Engine;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The tools venv `.ci/setup` builds.
fn venv() -> PathBuf {
    std::env::var_os("CACHECASH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/cachecash-venv")
        })
}

fn venv_tool(name: &str) -> PathBuf {
    let tool = venv().join("bin").join(name);
    assert!(
        tool.exists(),
        "no {}: run .ci/setup (it builds the tools venv)",
        tool.display()
    );
    tool
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A command that renders a Kustomize directory given as its last
/// argument: `kustomize build` (the venv's, then one on PATH), else
/// `kubectl kustomize`. Checked to be kustomize v5.
fn kustomize() -> Command {
    let pinned = venv().join("bin/kustomize");
    let bin = if pinned.is_file() {
        Some(pinned)
    } else {
        on_path("kustomize")
    };
    let (mut cmd, version) = if let Some(bin) = bin {
        let out = Command::new(&bin).arg("version").output().unwrap();
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mut cmd = Command::new(bin);
        cmd.arg("build");
        (cmd, version)
    } else {
        let kubectl = on_path("kubectl").expect(
            "neither kustomize nor kubectl found: run .ci/setup (it installs kustomize v5.5.0 into the tools venv)",
        );
        let out = Command::new(&kubectl)
            .args(["version", "--client"])
            .output()
            .unwrap();
        let version = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Kustomize Version: "))
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut cmd = Command::new(kubectl);
        cmd.arg("kustomize");
        (cmd, version)
    };
    assert!(
        version.starts_with("v5."),
        "{cmd:?} is kustomize '{version}', not v5: run .ci/setup (it installs kustomize v5.5.0 into the tools venv)"
    );
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// The long options `cachecash SUB --help` declares (`-d, --base-path
/// <PATH>`, `--cache`, `--dashboard [<ADDR>]`), not those its examples use.
fn declared_flags(sub: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_cachecash"))
        .args([sub, "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "`cachecash {sub}` is no subcommand");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = match line.split_once(", ") {
                Some((short, rest)) if short.len() == 2 && short.starts_with('-') => rest,
                _ => line,
            };
            let (flag, rest) = line.split_once(' ').unwrap_or((line, ""));
            let declaration = rest.is_empty()
                || rest.starts_with('<')
                || rest.starts_with('[')
                || rest.starts_with(' ');
            (flag.starts_with("--") && flag.len() > 2 && declaration).then(|| flag.to_string())
        })
        .collect()
}

/// `deploy/kubernetes` rendered with fresh keys: the YAML text, its
/// objects, and what went into it.
struct Rendered {
    yaml: String,
    objects: Vec<Value>,
    /// The key files the secretGenerator read, by file name.
    keys: BTreeMap<String, String>,
    /// The peer ids written into `cluster.env`, by variable.
    peer_ids: BTreeMap<String, String>,
    dir: tempfile::TempDir,
}

fn render() -> Rendered {
    let src = root().join("deploy/kubernetes");
    let dir = tempfile::tempdir().unwrap();
    // The tracked files only: an operator's own keys/ stays out.
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    // Every `NAME=keys/FILE` the secretGenerator reads, made as an operator
    // makes them (docs/deploy.md): `cachecash key generate -o keys/FILE`.
    let kustomization = std::fs::read_to_string(src.join("kustomization.yaml")).unwrap();
    let files: BTreeSet<&str> = kustomization
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- ")?.split_once('='))
        .filter_map(|(_, path)| path.strip_prefix("keys/"))
        .collect();
    assert_eq!(
        files,
        BTreeSet::from(["funder.key", "miner.key", "publisher.key"]),
        "the key files kustomization.yaml's secretGenerator reads"
    );
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let mut keys = BTreeMap::new();
    let mut peers = BTreeMap::new();
    for file in files {
        let path = dir.path().join("keys").join(file);
        let out = Command::new(env!("CARGO_BIN_EXE_cachecash"))
            .args(["key", "generate", "--json", "-o"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: Value = serde_json::from_slice(&out.stdout).unwrap();
        peers.insert(file, info["peerId"].as_str().unwrap().to_string());
        keys.insert(file.to_string(), std::fs::read_to_string(&path).unwrap());
    }
    // The peer ids of those keys in cluster.env, as step 3 of the walkthrough.
    let env_path = dir.path().join("cluster.env");
    let mut peer_ids = BTreeMap::new();
    let env: Vec<String> = std::fs::read_to_string(&env_path)
        .unwrap()
        .lines()
        .map(|l| {
            for (var, file) in [
                ("MINER_PEER_ID", "miner.key"),
                ("PUBLISHER_PEER_ID", "publisher.key"),
            ] {
                if l.starts_with(&format!("{var}=")) {
                    peer_ids.insert(var.to_string(), peers[file].clone());
                    return format!("{var}={}", peers[file]);
                }
            }
            l.to_string()
        })
        .collect();
    assert_eq!(peer_ids.len(), 2, "cluster.env sets both peer ids");
    std::fs::write(&env_path, env.join("\n") + "\n").unwrap();

    let out = kustomize().arg(dir.path()).output().unwrap();
    let yaml = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && !yaml.is_empty(),
        "kustomize could not render deploy/kubernetes:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The objects as JSON, read by the same YAML parser the validator uses.
    let mut py = Command::new(venv_tool("python"))
        .args([
            "-c",
            "import json, sys, yaml\njson.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the rendered YAML does not parse:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    Rendered {
        yaml,
        objects,
        keys,
        peer_ids,
        dir,
    }
}

fn id(o: &Value) -> String {
    format!(
        "{}/{}",
        o["kind"].as_str().unwrap_or("?"),
        o["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn find<'a>(r: &'a Rendered, kind: &str, name: &str) -> &'a Value {
    r.objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered"))
}

/// The pod templates' `cachecash` containers, with their workload's id.
fn containers(r: &Rendered) -> Vec<(String, &Value, &Value)> {
    let mut out = Vec::new();
    for o in &r.objects {
        let template = &o["spec"]["template"];
        for c in template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            out.push((format!("{} container {}", id(o), c["name"]), template, c));
        }
    }
    assert_eq!(out.len(), 4, "miner, caches, publisher, gateway");
    out
}

fn args(c: &Value) -> Vec<&str> {
    c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// The value after `flag` in a container's args (`--flag value` or
/// `--flag=value`).
fn arg_value<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| *a == flag);
    i.and_then(|i| args.get(i + 1).copied()).or_else(|| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("{flag}=")))
    })
}

#[test]
fn every_rendered_kubernetes_object_validates_against_the_schemas() {
    let r = render();
    let file = r.dir.path().join("rendered.yaml");
    std::fs::write(&file, &r.yaml).unwrap();
    let out = Command::new(venv_tool("kubernetes-validate"))
        .args(["--strict", "-k", "1.30.0"])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "validation failed:\n{text}");
    let rendered: BTreeSet<String> = r.objects.iter().map(id).collect();
    assert_eq!(
        text.matches(" passed for resource ").count(),
        r.objects.len(),
        "every rendered object was checked ({rendered:?}):\n{text}"
    );
    // The generated objects and the namespace are among them.
    for (kind, name) in [
        ("Namespace", "cachecash"),
        ("ConfigMap", "cachecash-chain"),
        ("ConfigMap", "cachecash-cluster"),
        ("Secret", "cachecash-miner-key"),
        ("Secret", "cachecash-publisher-keys"),
        ("NetworkPolicy", "cachecash-nodes"),
    ] {
        find(&r, kind, name);
    }
    assert!(r.objects.len() >= 16, "{rendered:?}");
    for o in &r.objects {
        if o["kind"] != "Namespace" {
            assert_eq!(o["metadata"]["namespace"], "cachecash", "{}", id(o));
        }
    }
    // The Secrets hold the key files as written, and cluster.env's values
    // reach the ConfigMap as strings.
    let decode = |s: &Value, key: &str| {
        // kustomize wraps the base64 at 70 columns; Kubernetes' decoder,
        // like Go's, skips the line breaks.
        let b64: String = s["data"][key]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    let publisher = find(&r, "Secret", "cachecash-publisher-keys");
    assert_eq!(decode(publisher, "node.key"), r.keys["publisher.key"]);
    assert_eq!(decode(publisher, "funder.key"), r.keys["funder.key"]);
    let miner = find(&r, "Secret", "cachecash-miner-key");
    assert_eq!(decode(miner, "node.key"), r.keys["miner.key"]);
    let cluster = &find(&r, "ConfigMap", "cachecash-cluster")["data"];
    for (var, peer) in &r.peer_ids {
        assert_eq!(&cluster[var], peer, "{var} in the cluster ConfigMap");
    }
}

#[test]
fn every_flag_a_container_passes_is_one_its_cachecash_subcommand_accepts() {
    let r = render();
    let mut declared: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let cluster = &find(&r, "ConfigMap", "cachecash-cluster")["data"];
    let mut checked = 0;
    for (what, _, c) in containers(&r) {
        let image = c["image"].as_str().unwrap();
        assert!(image.starts_with("cachecash:"), "{what} runs {image}");
        let args = args(c);
        let sub = args[0];
        let flags = declared
            .entry(sub.to_string())
            .or_insert_with(|| declared_flags(sub));
        // The variables the container defines: its env and the ConfigMap
        // it takes whole.
        let mut vars: BTreeSet<String> = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect();
        for from in c["envFrom"].as_array().into_iter().flatten() {
            assert_eq!(from["configMapRef"]["name"], "cachecash-cluster", "{what}");
            vars.extend(cluster.as_object().unwrap().keys().cloned());
        }
        for a in &args[1..] {
            if a.starts_with("--") {
                let flag = a.split('=').next().unwrap();
                assert!(
                    flags.contains(flag),
                    "{what} passes {flag}, which `cachecash {sub}` does not accept (see `cachecash {sub} --help`)"
                );
                checked += 1;
            }
            // Kubernetes leaves an undefined $(VAR) as it is.
            let mut rest = *a;
            while let Some(start) = rest.find("$(") {
                let tail = &rest[start + 2..];
                let end = tail.find(')').unwrap_or(tail.len());
                let name = &tail[..end];
                assert!(
                    vars.contains(name),
                    "{what} uses $({name}), which neither its env nor cluster.env defines"
                );
                rest = &tail[end..];
            }
        }
    }
    assert_eq!(
        declared.keys().map(String::as_str).collect::<Vec<_>>(),
        ["gateway", "run"],
        "the subcommands the containers run"
    );
    assert!(
        declared["run"].contains("--cache") && !declared["run"].contains("--listen"),
        "run's own options only: {:?}",
        declared["run"]
    );
    assert!(checked >= 45, "only {checked} flags checked");
}

#[test]
fn probes_and_scrape_annotations_point_at_ports_the_node_serves_and_prometheus_scrapes_them() {
    let r = render();
    for (what, template, c) in containers(&r) {
        let args = args(c);
        let port = |name: &str| {
            c["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{what} has no port named {name}"))["containerPort"]
                .as_u64()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            arg_value(&args, "--rpc-port"),
            Some(port("rpc").as_str()),
            "{what}"
        );
        assert!(
            args.contains(&"--rpc-external"),
            "{what}: probes come from outside the pod"
        );
        for (probe, path) in [
            ("readinessProbe", "/health/ready"),
            ("livenessProbe", "/health"),
        ] {
            let get = &c[probe]["httpGet"];
            assert_eq!(get["path"], path, "{what} {probe}");
            assert_eq!(get["port"], "rpc", "{what} {probe}");
        }
        let annotations = &template["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{what}");
        let metrics = arg_value(&args, "--prometheus-port").expect("--prometheus-port");
        assert_eq!(annotations["prometheus.io/port"], metrics, "{what}");
        assert_eq!(port("metrics"), metrics, "{what}");
        assert!(args.contains(&"--prometheus-external"), "{what}");
    }

    // deploy/grafana/prometheus.yml: a static job for one host, and a pod
    // job that keeps the pods annotated as above and scrapes their port.
    let out = Command::new(venv_tool("python"))
        .args([
            "-c",
            "import json, sys, yaml\njson.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(root().join("deploy/grafana/prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    let jobs = config["scrape_configs"].as_array().unwrap();
    assert!(
        jobs.iter()
            .any(|j| j["static_configs"][0]["targets"][0] == "127.0.0.1:9615"),
        "a static job for a single host"
    );
    let pods = jobs
        .iter()
        .find(|j| j["kubernetes_sd_configs"][0]["role"] == "pod")
        .expect("a kubernetes_sd_configs job with role: pod");
    let relabel = pods["relabel_configs"].as_array().unwrap();
    let keeps_scrape = relabel.iter().any(|r| {
        r["action"] == "keep"
            && r["regex"] == "true"
            && r["source_labels"][0] == "__meta_kubernetes_pod_annotation_prometheus_io_scrape"
    });
    assert!(
        keeps_scrape,
        "keeps pods annotated prometheus.io/scrape: \"true\""
    );
    let uses_port = relabel.iter().any(|r| {
        r["target_label"] == "__address__"
            && r["source_labels"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|s| s == "__meta_kubernetes_pod_annotation_prometheus_io_port")
            })
    });
    assert!(uses_port, "scrapes the port in prometheus.io/port");
    let namespaces = &pods["kubernetes_sd_configs"][0]["namespaces"]["names"];
    assert_eq!(
        namespaces[0],
        find(&r, "Namespace", "cachecash")["metadata"]["name"]
    );
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

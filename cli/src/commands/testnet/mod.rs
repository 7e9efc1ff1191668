//! `cachecash testnet`: a whole CDN on loopback with one command.
//!
//! Child processes of this binary, each a real node with its own RocksDB
//! under `--dir`: a mining node, N caches, a publisher on a directory
//! origin (the built-in demo content unless `--origin`), and an HTTP
//! gateway whose default publisher is that publisher. Ports and node keys
//! are chosen once and kept in `DIR/testnet.json` and `DIR/NAME/node_key`,
//! so a second run over the same directory resumes the same chain with the
//! same peers. Logs go to `DIR/logs/NAME.log`.
//!
//! Once the gateway serves the demo, the command writes `DIR/ready.json`
//! (addresses for scripts), prints what to try, and shows a status line
//! (head, bytes served, tickets, claims, cache balances) until Ctrl-C or
//! SIGTERM, which it passes to every child before it exits.

pub mod demo;
mod status;

use anyhow::Context;
use cachecash_node::network::PeerId;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Start a local CDN: a mining node, a publisher, caches and an HTTP
/// gateway, on loopback, until Ctrl-C.
///
/// Examples:
///   cachecash testnet                          # fresh temporary directory, demo content
///   cachecash testnet --dir ~/cch-testnet      # resumable: run it again to continue
///   cachecash testnet --origin ./www --caches 3
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct TestnetArgs {
    /// Where the nodes keep their chains, keys, ports and logs [default: a fresh temporary directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Caches to run.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub caches: u16,
    /// The publisher's origin directory [default: built-in demo content under DIR/origin].
    #[arg(long, value_name = "DIR")]
    pub origin: Option<PathBuf>,
    /// The gateway's HTTP port [default: a free port, kept in DIR/testnet.json].
    #[arg(long, value_name = "PORT")]
    pub gateway_port: Option<u16>,
    /// Seconds to wait for the network to come up.
    #[arg(long, default_value_t = 180)]
    pub startup_timeout: u64,
}

/// Ports of one node.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Ports {
    p2p: u16,
    rpc: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<u16>,
}

/// `DIR/testnet.json`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Layout {
    nodes: BTreeMap<String, Ports>,
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

impl Layout {
    fn load(dir: &Path) -> anyhow::Result<Layout> {
        let p = dir.join("testnet.json");
        match std::fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t).with_context(|| {
                format!("{} is not a testnet layout; use another --dir", p.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Layout::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    fn ports(&mut self, name: &str, http: bool) -> anyhow::Result<Ports> {
        if let Some(p) = self.nodes.get(name) {
            return Ok(*p);
        }
        let p = Ports {
            p2p: free_port()?,
            rpc: free_port()?,
            http: if http { Some(free_port()?) } else { None },
        };
        self.nodes.insert(name.to_string(), p);
        Ok(p)
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join("testnet.json"), serde_json::to_vec_pretty(self)?)
            .context("cannot write testnet.json")
    }
}

/// One child node.
struct Node {
    name: String,
    ports: Ports,
    peer: PeerId,
    child: Option<Child>,
    log: PathBuf,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("name", &self.name).finish()
    }
}

impl Node {
    fn addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.ports.p2p, self.peer)
    }

    fn rpc(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.rpc)
    }

    /// The last lines of its log, for an error message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

struct Testnet {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Testnet {
    /// Starts `name` with `args` (after the common node flags).
    fn spawn(
        &mut self,
        name: &str,
        ports: Ports,
        subcommand: &str,
        args: &[String],
    ) -> anyhow::Result<()> {
        let base = self.dir.join(name);
        let key = base.join("node_key");
        let keypair = cachecash_node::network::key::load_or_generate(&key)
            .with_context(|| format!("node key of {name}"))?;
        let peer = keypair.public().to_peer_id();
        let log = self.dir.join("logs").join(format!("{name}.log"));
        std::fs::create_dir_all(self.dir.join("logs"))?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        let mut cmd = Command::new(exe);
        cmd.arg(subcommand)
            .args(["--chain", "dev", "--base-path"])
            .arg(&base)
            .arg("--node-key-file")
            .arg(&key)
            .args(["--port", &ports.p2p.to_string()])
            .args(["--rpc-port", &ports.rpc.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start the {name} node"))?;
        self.nodes.push(Node {
            name: name.to_string(),
            ports,
            peer,
            child: Some(child),
            log,
        });
        Ok(())
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| &self.nodes[0])
    }

    /// A child that has exited, as an error.
    fn check_children(&mut self) -> anyhow::Result<()> {
        for n in &mut self.nodes {
            if let Some(status) = n.exited() {
                anyhow::bail!(
                    "the {} node exited ({status}); its log {} ends with:\n{}",
                    n.name,
                    n.log.display(),
                    n.log_tail()
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to every child, then SIGKILL to any still running after 20 s.
    fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        for n in &self.nodes {
            if let Some(c) = &n.child
                && let Ok(pid) = i32::try_from(c.id())
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                loop {
                    match c.try_wait() {
                        Ok(Some(_)) | Err(_) => break,
                        Ok(None) if Instant::now() >= deadline => {
                            let _ = c.kill();
                            let _ = c.wait();
                            break;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            }
        }
        let _ = std::fs::remove_file(self.dir.join("ready.json"));
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The publisher's escrow terms: short rounds and a high win rate, so that
/// claims land and balances move within a minute of a fetch.
const PUBLISHER_TOML: &str = r#"# Written by `cachecash testnet`; edit and restart to change.
[publisher]
bundle_chunks = 4

[publisher.terms]
face_value = "1CCH"
tickets_per_round = 1000
winners_per_round = 40
round_length = 10
rounds = 200
draw_delay = 2
claim_window = 30
top_up_rounds = 100
budget = "40000CCH"

[cache]
claim_depth = 2
"#;

/// Runs the testnet until Ctrl-C or SIGTERM.
pub fn run(args: TestnetArgs) -> anyhow::Result<()> {
    let (dir, _temp) = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            (d.canonicalize()?, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("cachecash-testnet-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let origin = match &args.origin {
        Some(o) => {
            if !o.is_dir() {
                anyhow::bail!("--origin {} is not a directory", o.display());
            }
            o.canonicalize()?
        }
        None => {
            let o = dir.join("origin");
            demo::write(&o).context("cannot write the demo content")?;
            o
        }
    };
    let mut layout = Layout::load(&dir)?;
    let mut gw_ports = layout.ports("gateway", true)?;
    if let Some(p) = args.gateway_port {
        gw_ports.http = Some(p);
        layout.nodes.insert("gateway".into(), gw_ports);
    }
    let config = dir.join("cdn.toml");
    if !config.exists() {
        std::fs::write(&config, PUBLISHER_TOML)?;
    }
    let mut net = Testnet {
        dir: dir.clone(),
        nodes: Vec::new(),
    };
    let rt = crate::shared::runtime()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.startup_timeout);
    eprintln!("cachecash testnet in {}", dir.display());

    // The mining node, then the caches, the publisher and the gateway.
    let p = layout.ports("miner", false)?;
    layout.save(&dir)?;
    net.spawn(
        "miner",
        p,
        "run",
        &["--mine".into(), "--miner-account".into(), "ferdie".into()],
    )?;
    let boot = net.node("miner").addr();
    let miner_rpc = net.node("miner").rpc();
    rt.block_on(status::wait_rpc(&miner_rpc, deadline, &mut net))?;
    let mut hires = Vec::new();
    for i in 0..args.caches {
        let name = format!("cache{i}");
        let p = layout.ports(&name, false)?;
        layout.save(&dir)?;
        net.spawn(
            &name,
            p,
            "run",
            &[
                "--bootnodes".into(),
                boot.clone(),
                "--cache".into(),
                "--cache-quota".into(),
                "1GiB".into(),
                "--cdn-config".into(),
                config.display().to_string(),
            ],
        )?;
        hires.push(net.node(&name).addr());
    }
    let p = layout.ports("publisher", false)?;
    layout.save(&dir)?;
    net.spawn(
        "publisher",
        p,
        "run",
        &[
            "--bootnodes".into(),
            boot.clone(),
            "--publisher".into(),
            "--origin".into(),
            origin.display().to_string(),
            "--funder".into(),
            "alice".into(),
            "--hire".into(),
            hires.join(","),
            "--cdn-config".into(),
            config.display().to_string(),
        ],
    )?;
    let publisher = net.node("publisher").peer;
    let publisher_addr = net.node("publisher").addr();
    let http = gw_ports.http.unwrap_or(8080);
    net.spawn(
        "gateway",
        gw_ports,
        "gateway",
        &[
            "--listen".into(),
            format!("127.0.0.1:{http}"),
            "--bootnodes".into(),
            boot.clone(),
            "--reserved-nodes".into(),
            publisher_addr.clone(),
            "--default-publisher".into(),
            publisher.to_string(),
        ],
    )?;
    let gateway = format!("http://127.0.0.1:{http}");
    let probe = if args.origin.is_none() {
        Some("/demo/hello.txt")
    } else {
        None
    };
    rt.block_on(status::wait_gateway(&gateway, probe, deadline, &mut net))?;
    let caches_rpc: Vec<String> = (0..args.caches)
        .map(|i| net.node(&format!("cache{i}")).rpc())
        .collect();
    let ready = serde_json::json!({
        "gateway": gateway,
        "publisher": publisher.to_string(),
        "bootnodes": [boot, publisher_addr],
        "rpc": miner_rpc,
        "publisherRpc": net.node("publisher").rpc(),
        "cachesRpc": caches_rpc,
        "origin": origin.display().to_string(),
    });
    std::fs::write(dir.join("ready.json"), serde_json::to_vec_pretty(&ready)?)?;
    let bootnode = ready["bootnodes"][1].as_str().unwrap_or_default();
    let mut tries = if args.origin.is_none() {
        format!(
            "  curl -o 16MiB.bin {gateway}/demo/16MiB.bin && sha256sum 16MiB.bin\n  \
             pip install --index-url {gateway}/simple/ {}\n  \
             cachecash fetch cachecash://{publisher}/demo/1MiB.bin -o 1MiB.bin --chain dev --bootnodes {bootnode}\n",
            demo::PACKAGE
        )
    } else {
        format!(
            "  curl -O {gateway}/PATH                  # any file under {}\n  \
             cachecash fetch cachecash://{publisher}/PATH -o out.bin --chain dev --bootnodes {bootnode}\n",
            origin.display()
        )
    };
    tries.push_str(&format!(
        "  cachecash cache earnings --rpc {}\n  cachecash wallet balance alice --rpc {miner_rpc}\n",
        caches_rpc.first().cloned().unwrap_or_default()
    ));
    println!(
        "\ncachecash testnet is up in {:.0} s: a miner, {} caches, a publisher and a gateway (logs in {}/logs)\n\n\
         Try:\n{tries}\nCtrl-C stops every node; run again with --dir {} to resume.\n",
        started.elapsed().as_secs_f64(),
        args.caches,
        dir.display(),
        dir.display(),
    );
    let result = rt.block_on(status::watch(&miner_rpc, &caches_rpc, &mut net));
    eprintln!("\nstopping the testnet…");
    net.stop();
    result
}

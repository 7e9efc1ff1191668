//! `cachecash key generate|inspect`.

use anyhow::Context;
use cachecash_runtime::AccountId;
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a new ed25519 key from the OS random source.
    ///
    /// Examples:
    ///   cachecash key generate
    ///   cachecash key generate --output ~/.cachecash/miner.key   # file mode 0600
    #[command(verbatim_doc_comment)]
    Generate {
        /// Write the secret seed to this file (mode 0600) instead of printing it.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the account of a key, or check an account id.
    ///
    /// KEY is a dev name (alice, bob, charlie, dave, eve, ferdie), a 0x
    /// 32-byte secret seed, a file holding one, or a 0x account id.
    ///
    /// Examples:
    ///   cachecash key inspect alice
    ///   cachecash key inspect ~/.cachecash/miner.key
    #[command(verbatim_doc_comment)]
    Inspect {
        /// The key or account.
        key: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a key command.
pub fn run(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Generate { output, json } => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)
                .map_err(|e| anyhow::anyhow!("OS random source failed: {e}"))?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let account = AccountId::from_signing_key(&key);
            let seed_hex = format!("0x{}", hex::encode(seed));
            if let Some(path) = &output {
                write_secret(path, &seed_hex)?;
            }
            let shown_seed = if output.is_some() {
                None
            } else {
                Some(seed_hex)
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"account": account, "peerId": peer_id(&account), "secretSeed": shown_seed, "file": output})
                );
            } else {
                println!("Account:     {account}");
                println!(
                    "Peer id:     {}  (as a node key: --node-key-file)",
                    peer_id(&account)
                );
                match (&shown_seed, &output) {
                    (Some(s), _) => {
                        println!("Secret seed: {s}\nKeep the seed secret: it controls the account.")
                    }
                    (None, Some(p)) => println!("Secret seed written to {}", p.display()),
                    _ => {}
                }
            }
            Ok(())
        }
        KeyCommand::Inspect { key, json } => {
            let (account, kind) = if let Ok(a) = AccountId::from_hex(&key) {
                if key.len() == 66 && std::path::Path::new(&key).exists() {
                    anyhow::bail!("'{key}' is both a file and an account id; rename the file");
                }
                // A 0x 32-byte value is ambiguous: report both readings.
                let from_seed =
                    AccountId::from_signing_key(&ed25519_dalek::SigningKey::from_bytes(&a.0));
                if !json {
                    println!("As an account id: {a} ({})", validity(&a));
                    println!("As a secret seed: account {from_seed}");
                    return Ok(());
                }
                (from_seed, "secretSeed")
            } else {
                let spec = cachecash_chain_spec::ChainSpec::dev();
                let k = spec
                    .resolve_signing_key(&key)
                    .with_context(|| format!("cannot read key '{key}'"))?;
                (AccountId::from_signing_key(&k), "key")
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"account": account, "peerId": peer_id(&account), "input": kind})
                );
            } else {
                println!("Account: {account}");
                println!("Peer id: {}", peer_id(&account));
            }
            Ok(())
        }
    }
}

/// The libp2p peer id of a node whose node key is this account's key.
fn peer_id(account: &AccountId) -> String {
    cachecash_node::cdn::peer_of(account)
        .map(|p| p.to_string())
        .unwrap_or_default()
}

fn validity(a: &AccountId) -> &'static str {
    match a.verifying_key() {
        Ok(_) => "a valid ed25519 public key",
        Err(_) => "NOT a valid ed25519 public key: it cannot sign",
    }
}

fn write_secret(path: &std::path::Path, seed_hex: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| {
        format!(
            "cannot create key file {} (it must not exist yet)",
            path.display()
        )
    })?;
    writeln!(f, "{seed_hex}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

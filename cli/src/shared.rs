//! Helpers shared by subcommands: chain and base-path options, logging,
//! the RPC client.

use anyhow::Context;
use cachecash_chain_spec::ChainSpec;
use clap::Args;
use std::path::PathBuf;

/// Options selecting a chain and its database.
#[derive(Debug, Clone, Args)]
pub struct ChainArgs {
    /// Chain: `dev`, `local`, or a chain-spec JSON file.
    #[arg(long, default_value = "dev", value_name = "CHAIN")]
    pub chain: String,
    /// Directory for databases and keys [default: ~/.local/share/cachecash].
    #[arg(long, short = 'd', value_name = "PATH")]
    pub base_path: Option<PathBuf>,
}

impl ChainArgs {
    /// Loads the chain spec.
    pub fn spec(&self) -> anyhow::Result<ChainSpec> {
        ChainSpec::load(&self.chain).with_context(|| format!("cannot load chain '{}'", self.chain))
    }

    /// The base path, defaulted.
    pub fn base_path(&self) -> anyhow::Result<PathBuf> {
        match &self.base_path {
            Some(p) => Ok(p.clone()),
            None => default_base_path(),
        }
    }
}

/// `$XDG_DATA_HOME/cachecash` or `~/.local/share/cachecash`.
pub fn default_base_path() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return Ok(PathBuf::from(x).join("cachecash"));
    }
    let home = std::env::var_os("HOME")
        .context("neither XDG_DATA_HOME nor HOME is set; pass --base-path")?;
    Ok(PathBuf::from(home).join(".local/share/cachecash"))
}

/// The filter when `RUST_LOG` is unset: `info`, except Kademlia's warning
/// that a lone node has nobody to bootstrap from, which it logs whenever a
/// listen address appears.
pub const DEFAULT_LOG_FILTER: &str = "info,libp2p_kad::behaviour=error";

/// Logs to stderr, filtered by `RUST_LOG` (default [`DEFAULT_LOG_FILTER`]).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// A current-thread-free multi-threaded runtime for commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Options for talking to a node.
#[derive(Debug, Clone, Args)]
pub struct RpcArgs {
    /// The node's JSON-RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:9944", value_name = "URL")]
    pub rpc: String,
}

/// A JSON-RPC client for a node.
pub struct NodeClient {
    client: jsonrpsee::http_client::HttpClient,
    url: String,
}

impl NodeClient {
    /// Connects (lazily) to `url`.
    pub fn new(url: &str) -> anyhow::Result<NodeClient> {
        let client = jsonrpsee::http_client::HttpClientBuilder::default()
            .request_timeout(std::time::Duration::from_secs(30))
            .build(url)
            .with_context(|| format!("invalid RPC URL '{url}'"))?;
        Ok(NodeClient {
            client,
            url: url.to_string(),
        })
    }

    /// Calls `method` with positional `params`.
    pub async fn call(
        &self,
        method: &str,
        params: Vec<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        use jsonrpsee::core::client::ClientT;
        let mut p = jsonrpsee::core::params::ArrayParams::new();
        for v in params {
            p.insert(v).context("cannot encode RPC parameters")?;
        }
        self.client
            .request::<serde_json::Value, _>(method, p)
            .await
            .map_err(|e| match e {
                jsonrpsee::core::client::Error::Call(obj) => {
                    anyhow::anyhow!("{method} failed: {}", obj.message())
                }
                other => anyhow::anyhow!(
                    "cannot reach the node at {} ({method}): {other}; is it running, with RPC on that address?",
                    self.url
                ),
            })
    }
}

/// A chain spec whose only use is name resolution under the node's chain
/// type: dev names resolve on Development and Local chains only.
fn resolver(chain_type: cachecash_chain_spec::ChainType) -> ChainSpec {
    let mut s = ChainSpec::dev();
    s.chain_type = chain_type;
    s
}

/// Resolves an account argument: a 0x hex account, or a dev-account name
/// when the node's chain is a Development or Local chain.
pub fn resolve_account(
    input: &str,
    facts: &ChainFacts,
) -> anyhow::Result<cachecash_runtime::AccountId> {
    Ok(resolver(facts.chain_type).resolve_account(input)?)
}

/// Resolves a signing-key argument: a dev-account name (Development and
/// Local chains), a 0x 32-byte secret seed, or a file holding one.
pub fn resolve_key(input: &str, facts: &ChainFacts) -> anyhow::Result<ed25519_dalek::SigningKey> {
    Ok(resolver(facts.chain_type).resolve_signing_key(input)?)
}

/// What a client needs to know about the node's chain.
#[derive(Debug, Clone)]
pub struct ChainFacts {
    /// Genesis hash (signatures commit to it).
    pub genesis: cachecash_runtime::Hash,
    /// `tokenDecimals`.
    pub decimals: u8,
    /// `tokenSymbol`.
    pub symbol: String,
    /// The chain's type (`system_chainType`), which decides whether dev
    /// account names resolve.
    pub chain_type: cachecash_chain_spec::ChainType,
}

/// Asks the node for its genesis hash and token properties.
pub async fn facts(client: &NodeClient) -> anyhow::Result<ChainFacts> {
    use serde_json::{Value, json};
    let g = client.call("chain_getBlockHash", vec![json!(0)]).await?;
    let genesis = cachecash_runtime::Hash::from_hex(g.as_str().unwrap_or_default())
        .context("the node returned no genesis hash")?;
    let props = client.call("system_properties", vec![]).await?;
    let chain_type = client.call("system_chainType", vec![]).await?;
    let chain_type =
        serde_json::from_value(chain_type).context("the node reported an unknown chain type")?;
    Ok(ChainFacts {
        chain_type,
        genesis,
        decimals: props
            .get("tokenDecimals")
            .and_then(Value::as_u64)
            .and_then(|d| u8::try_from(d).ok())
            .unwrap_or(12),
        symbol: props
            .get("tokenSymbol")
            .and_then(Value::as_str)
            .unwrap_or("CCH")
            .to_string(),
    })
}

/// The smallest fee a transaction carrying `call` may pay on the node's
/// chain: the flat minimum, or the per-byte price of its signed size if
/// that is more (a node that does not report `feePerByte` has none).
pub async fn minimum_fee(
    client: &NodeClient,
    call: &cachecash_runtime::Call,
) -> anyhow::Result<cachecash_runtime::Balance> {
    let v = client.call("state_getConsensusParams", vec![]).await?;
    let balance = |name: &str| {
        v.get(name)
            .and_then(serde_json::Value::as_str)
            .and_then(|s| s.parse::<cachecash_runtime::Balance>().ok())
    };
    let minimum = balance("minimumFee").context("the node did not report its minimum fee")?;
    let per_byte = balance("feePerByte").unwrap_or(0);
    // The size does not depend on the signer, nonce or fee values.
    let size = cachecash_runtime::Transaction {
        signer: cachecash_runtime::AccountId([0; 32]),
        nonce: 0,
        fee: 0,
        call: call.clone(),
    }
    .signed_size();
    let size =
        cachecash_runtime::Balance::try_from(size).unwrap_or(cachecash_runtime::Balance::MAX);
    Ok(per_byte.saturating_mul(size).max(minimum))
}

/// The signer's next nonce, counting its pending transactions.
pub async fn next_nonce(
    client: &NodeClient,
    signer: &cachecash_runtime::AccountId,
) -> anyhow::Result<u64> {
    use serde_json::{Value, json};
    let account = client.call("state_getAccount", vec![json!(signer)]).await?;
    let mut nonce = account.get("nonce").and_then(Value::as_u64).unwrap_or(0);
    // The pool answers in pages; read them all.
    const PAGE: u64 = 1024;
    let mut offset = 0u64;
    loop {
        let pending = client
            .call(
                "author_pendingTransactions",
                vec![json!(PAGE), json!(offset)],
            )
            .await?;
        let page = pending.as_array().cloned().unwrap_or_default();
        for t in &page {
            let is_signer =
                t.pointer("/tx/signer").and_then(Value::as_str) == Some(signer.to_hex().as_str());
            if let (true, Some(n)) = (is_signer, t.pointer("/tx/nonce").and_then(Value::as_u64)) {
                nonce = nonce.max(n.saturating_add(1));
            }
        }
        if (page.len() as u64) < PAGE {
            return Ok(nonce);
        }
        offset += PAGE;
    }
}

/// A submitted transaction.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// Its hash, as the node returned it.
    pub hash: String,
    /// The nonce used.
    pub nonce: u64,
}

/// Signs `call` with `key` at the signer's next nonce and submits it.
pub async fn submit(
    client: &NodeClient,
    facts: &ChainFacts,
    key: &ed25519_dalek::SigningKey,
    call: cachecash_runtime::Call,
    fee: cachecash_runtime::Balance,
) -> anyhow::Result<Submitted> {
    use parity_scale_codec::Encode;
    let signer = cachecash_runtime::AccountId::from_signing_key(key);
    let nonce = next_nonce(client, &signer).await?;
    let tx = cachecash_runtime::Transaction {
        signer,
        nonce,
        fee,
        call,
    }
    .sign(key, &facts.genesis);
    let hash = client
        .call(
            "author_submitTransaction",
            vec![serde_json::json!(
                cachecash_runtime::primitives::encode_hex(&tx.encode())
            )],
        )
        .await?;
    Ok(Submitted {
        hash: hash.as_str().unwrap_or_default().to_string(),
        nonce,
    })
}

/// Waits (polling the node, up to `timeout_s`) until the transaction is in
/// the canonical chain; returns `chain_getTransaction`'s answer.
pub async fn wait_included(
    client: &NodeClient,
    hash: &str,
    timeout_s: u64,
) -> anyhow::Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_s);
    loop {
        let found = client
            .call("chain_getTransaction", vec![serde_json::json!(hash)])
            .await?;
        if !found.is_null() {
            return Ok(found);
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "transaction {hash} was not included within {timeout_s} s; it may still be pending (see author_pendingTransactions) — is a miner running?"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// "Included in block #N (hash) at index I".
pub fn inclusion_line(found: &serde_json::Value) -> String {
    use serde_json::Value;
    format!(
        "Included in block #{} ({}) at index {}",
        found
            .get("blockNumber")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        found
            .get("blockHash")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        found.get("index").and_then(Value::as_u64).unwrap_or(0)
    )
}

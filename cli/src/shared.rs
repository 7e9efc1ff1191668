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

/// A JSON-RPC client for a node: the typed clients of the node's
/// namespaces (`cachecash_node::rpc::api`, `cdn`, `cache`, `publisher`)
/// over HTTP, with errors that say which call failed and why.
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

    /// The typed client: call the generated methods of the namespace
    /// traits on it, inside [`NodeClient::run`].
    pub fn api(&self) -> &jsonrpsee::http_client::HttpClient {
        &self.client
    }

    /// Awaits a typed call named `method`, turning its error into one
    /// that says what failed: the node's refusal (with the reason it
    /// gave), or an unreachable node.
    pub async fn run<T>(
        &self,
        method: &str,
        call: impl std::future::Future<Output = Result<T, jsonrpsee::core::client::Error>>,
    ) -> anyhow::Result<T> {
        call.await.map_err(|e| match e {
            jsonrpsee::core::client::Error::Call(obj) => match obj.data() {
                Some(data) => {
                    anyhow::anyhow!("{method} failed: {}: {}", obj.message(), data.get())
                }
                None => anyhow::anyhow!("{method} failed: {}", obj.message()),
            },
            jsonrpsee::core::client::Error::ParseError(p) => anyhow::anyhow!(
                "{method}: the node at {} answered in a shape this build does not know ({p}); is it the same cachecash version?",
                self.url
            ),
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
    use cachecash_node::rpc::api::{ChainApiClient, SystemApiClient};
    use serde_json::Value;
    let api = client.api();
    let genesis = client
        .run("chain_getBlockHash", api.block_hash(Some(0.into())))
        .await?
        .context("the node returned no genesis hash")?;
    let props = client.run("system_properties", api.properties()).await?;
    let chain_type = client.run("system_chainType", api.chain_type()).await?;
    let chain_type = serde_json::from_value(Value::String(chain_type))
        .context("the node reported an unknown chain type")?;
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

/// The node's consensus parameters.
pub async fn consensus(
    client: &NodeClient,
) -> anyhow::Result<cachecash_node::rpc::api::ConsensusView> {
    use cachecash_node::rpc::api::StateApiClient;
    client
        .run("state_getConsensusParams", client.api().consensus_params())
        .await
}

/// The smallest fee a transaction carrying `call` may pay on the node's
/// chain: the flat minimum, or the per-byte price of its signed size if
/// that is more.
pub async fn minimum_fee(
    client: &NodeClient,
    call: &cachecash_runtime::Call,
) -> anyhow::Result<cachecash_runtime::Balance> {
    let p = consensus(client).await?;
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
    Ok(p.fee_per_byte.saturating_mul(size).max(p.minimum_fee))
}

/// An account's balance and nonce at the best block.
pub async fn account(
    client: &NodeClient,
    id: &cachecash_runtime::AccountId,
) -> anyhow::Result<cachecash_node::rpc::api::AccountView> {
    use cachecash_node::rpc::api::StateApiClient;
    client
        .run("state_getAccount", client.api().account(*id, None))
        .await
}

/// An open escrow at the best block (`None`: never opened, or closed).
pub async fn escrow(
    client: &NodeClient,
    id: &cachecash_runtime::microcash::EscrowId,
) -> anyhow::Result<Option<cachecash_node::rpc::api::EscrowView>> {
    use cachecash_node::rpc::api::StateApiClient;
    client
        .run("state_getEscrow", client.api().escrow(*id, None))
        .await
}

/// The signer's next nonce, counting its pending transactions.
pub async fn next_nonce(
    client: &NodeClient,
    signer: &cachecash_runtime::AccountId,
) -> anyhow::Result<u64> {
    use cachecash_node::rpc::api::AuthorApiClient;
    let mut nonce = account(client, signer).await?.nonce;
    // The pool answers in pages; read them all.
    const PAGE: u64 = 1024;
    let mut offset = 0u64;
    loop {
        let page = client
            .run(
                "author_pendingTransactions",
                client.api().pending_transactions(Some(PAGE), Some(offset)),
            )
            .await?;
        for t in &page {
            let tx = &t.transaction.tx;
            if tx.signer == *signer {
                nonce = nonce.max(tx.nonce.saturating_add(1));
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
    pub hash: cachecash_runtime::Hash,
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
    use cachecash_node::rpc::api::AuthorApiClient;
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
        .run(
            "author_submitTransaction",
            client
                .api()
                .submit_transaction(cachecash_runtime::primitives::encode_hex(&tx.encode())),
        )
        .await?;
    Ok(Submitted { hash, nonce })
}

/// Waits (polling the node, up to `timeout_s`) until the transaction is in
/// the canonical chain; returns where it was included.
pub async fn wait_included(
    client: &NodeClient,
    hash: &cachecash_runtime::Hash,
    timeout_s: u64,
) -> anyhow::Result<cachecash_node::rpc::api::TransactionLookup> {
    use cachecash_node::rpc::api::ChainApiClient;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_s);
    loop {
        let found = client
            .run("chain_getTransaction", client.api().transaction(*hash))
            .await?;
        if let Some(found) = found {
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
pub fn inclusion_line(found: &cachecash_node::rpc::api::TransactionLookup) -> String {
    format!(
        "Included in block #{} ({}) at index {}",
        found.block_number.unwrap_or(0),
        found.block_hash,
        found.index
    )
}

//! JSON-RPC over HTTP and WebSocket on one port (jsonrpsee).
//!
//! Method names follow Substrate's legacy style; see `docs/rpc.md` for the
//! reference. Conventions: hashes, accounts and encoded data are `0x` hex;
//! balances are decimal strings; an omitted `at`/`hash` means the best
//! block. Errors are JSON-RPC errors whose message says what was wrong.
//!
//! Methods that read storage or check signatures (blocks, state, proofs,
//! escrows, transaction submission) run on the blocking pool
//! (`register_blocking_method`), so a flood of them cannot occupy the async
//! workers that drive the network, sync and the CDN services.
//!
//! Unsafe (node-changing) methods are served only when the policy allows:
//! `--rpc-methods auto` (default) allows them on a loopback listener only,
//! `safe` never, `unsafe` always. When denied they stay listed and answer
//! with an error explaining how to enable them.

use crate::chain::{Chain, ChainEvent, ReadError};
use crate::mempool::{Mempool, PoolError};
pub use crate::rpc_server::{RpcLimits, start};
use cachecash_runtime::microcash::{Escrow, EscrowId};
use cachecash_runtime::{AccountId, Block, Hash, Header, SignedTransaction};
use jsonrpsee::server::RpcModule;
use jsonrpsee::types::{ErrorObject, ErrorObjectOwned, Params};
use parity_scale_codec::Encode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

/// Error code: a parameter is malformed (bad hex, wrong length, undecodable).
pub const INVALID_PARAMS: i32 = -32602;
/// Error code: internal failure (storage).
pub const INTERNAL: i32 = -32603;
/// Error code: the transaction is invalid or refused by the pool.
pub const INVALID_TRANSACTION: i32 = 1010;
/// Error code: unknown block.
pub const UNKNOWN_BLOCK: i32 = 1011;
/// Error code: unsafe method denied by policy.
pub const UNSAFE_DENIED: i32 = 1012;
/// Error code: the escrow does not exist.
pub const UNKNOWN_ESCROW: i32 = 1013;
/// Default page of `author_pendingTransactions`.
pub const PENDING_PAGE: u64 = 256;
/// Largest page of `author_pendingTransactions`.
pub const MAX_PENDING_PAGE: u64 = 1024;
/// Default page of `escrow_listByFunder`.
pub const FUNDER_PAGE: u64 = 256;
/// Largest page of `escrow_listByFunder`.
pub const MAX_FUNDER_PAGE: u64 = 1024;
/// Error code: the node runs without networking.
pub const NO_NETWORK: i32 = 1014;

/// Which methods the server exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RpcMethods {
    /// Unsafe methods only on loopback listeners.
    #[default]
    Auto,
    /// Never unsafe methods.
    Safe,
    /// Always unsafe methods.
    Unsafe,
}

impl std::str::FromStr for RpcMethods {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(RpcMethods::Auto),
            "safe" => Ok(RpcMethods::Safe),
            "unsafe" => Ok(RpcMethods::Unsafe),
            other => Err(format!(
                "unknown --rpc-methods value '{other}'; use auto, safe or unsafe"
            )),
        }
    }
}

impl RpcMethods {
    /// Whether unsafe methods are served on `addr`.
    pub fn allows_unsafe(self, addr: &SocketAddr) -> bool {
        match self {
            RpcMethods::Auto => addr.ip().is_loopback(),
            RpcMethods::Safe => false,
            RpcMethods::Unsafe => true,
        }
    }
}

/// Static facts about the node served by `system_*`.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// Chain name from the chain spec.
    pub chain_name: String,
    /// Chain type from the chain spec (`Development`, `Local` or `Live`).
    pub chain_type: String,
    /// Chain spec `properties`.
    pub properties: Value,
    /// Node implementation version.
    pub version: String,
}

/// Shared state of the RPC handlers.
#[derive(Debug)]
pub struct RpcContext {
    /// The chain.
    pub chain: Arc<Chain>,
    /// The pool.
    pub pool: Arc<Mempool>,
    /// Static info.
    pub info: NodeInfo,
    /// Whether unsafe methods are allowed.
    pub allow_unsafe: bool,
    /// The network, if the node runs one.
    pub network: Option<crate::network::NetworkHandle>,
}

fn err(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObject::owned(code, message.into(), None::<()>)
}

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    err(INTERNAL, format!("internal error: {e}"))
}

fn read_err(e: ReadError) -> ErrorObjectOwned {
    match e {
        ReadError::UnknownBlock(_) => err(UNKNOWN_BLOCK, e.to_string()),
        other => internal(other),
    }
}

fn network(c: &RpcContext) -> Result<&crate::network::NetworkHandle, ErrorObjectOwned> {
    c.network.as_ref().ok_or_else(|| {
        err(
            NO_NETWORK,
            "this node runs without peer-to-peer networking; start it with networking on to use this method",
        )
    })
}

fn unsafe_allowed(c: &RpcContext, method: &str) -> Result<(), ErrorObjectOwned> {
    if c.allow_unsafe {
        Ok(())
    } else {
        Err(err(
            UNSAFE_DENIED,
            format!(
                "{method} is an unsafe method; it is served only on a localhost RPC listener unless the node runs with --rpc-methods unsafe"
            ),
        ))
    }
}

/// Parameters as a positional list (an object or absent params count as empty).
fn positional(params: &Params<'_>) -> Result<Vec<Value>, ErrorObjectOwned> {
    if params.as_str().is_none() {
        return Ok(Vec::new());
    }
    let v: Value = params.parse()?;
    match v {
        Value::Array(a) => Ok(a),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![other]),
    }
}

fn opt_str(args: &[Value], i: usize, name: &str) -> Result<Option<String>, ErrorObjectOwned> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(err(
            INVALID_PARAMS,
            format!("parameter {} ({name}) must be a string, got {other}", i + 1),
        )),
    }
}

fn req_str(args: &[Value], i: usize, name: &str) -> Result<String, ErrorObjectOwned> {
    opt_str(args, i, name)?.ok_or_else(|| {
        err(
            INVALID_PARAMS,
            format!("missing parameter {} ({name})", i + 1),
        )
    })
}

fn parse_hash(s: &str, name: &str) -> Result<Hash, ErrorObjectOwned> {
    Hash::from_hex(s).map_err(|e| err(INVALID_PARAMS, format!("{name}: {e}")))
}

fn parse_account(s: &str) -> Result<AccountId, ErrorObjectOwned> {
    AccountId::from_hex(s).map_err(|e| {
        err(
            INVALID_PARAMS,
            format!("account: {e} (an account is a 32-byte ed25519 public key)"),
        )
    })
}

fn opt_hash(args: &[Value], i: usize, name: &str) -> Result<Option<Hash>, ErrorObjectOwned> {
    opt_str(args, i, name)?
        .map(|s| parse_hash(&s, name))
        .transpose()
}

/// JSON of a header, with its hash.
pub fn header_json(header: &Header) -> Value {
    let mut v = serde_json::to_value(header).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("hash".into(), json!(header.hash()));
    }
    v
}

/// JSON of a transaction, with its hash and encoding.
pub fn transaction_json(tx: &SignedTransaction) -> Value {
    let mut v = serde_json::to_value(tx).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("hash".into(), json!(tx.hash()));
        m.insert(
            "encoded".into(),
            json!(cachecash_runtime::primitives::encode_hex(&tx.encode())),
        );
    }
    v
}

/// JSON of a block.
pub fn block_json(block: &Block) -> Value {
    json!({
        "header": header_json(&block.header),
        "transactions": block.transactions.iter().map(transaction_json).collect::<Vec<_>>(),
        "encoded": cachecash_runtime::primitives::encode_hex(&block.encode()),
    })
}

fn pool_err(e: PoolError) -> ErrorObjectOwned {
    match e {
        PoolError::Decode(d) => err(INVALID_PARAMS, d.to_string()),
        PoolError::Backend(b) => internal(b),
        other => err(INVALID_TRANSACTION, other.to_string()),
    }
}

/// Builds the RPC module.
pub fn module(
    ctx: RpcContext,
) -> Result<RpcModule<RpcContext>, jsonrpsee::core::RegisterMethodError> {
    let mut m = RpcModule::new(ctx);

    m.register_blocking_method("chain_getHeader", |p, c, _| {
        let args = positional(&p)?;
        let at = opt_hash(&args, 0, "hash")?;
        match at {
            None => Ok::<Value, ErrorObjectOwned>(header_json(&c.chain.head().header)),
            Some(h) => match c.chain.header(&h).map_err(internal)? {
                Some(header) => Ok(header_json(&header)),
                None => Ok(Value::Null),
            },
        }
    })?;

    m.register_blocking_method("chain_getBlock", |p, c, _| {
        let args = positional(&p)?;
        let hash = opt_hash(&args, 0, "hash")?.unwrap_or_else(|| c.chain.head().hash);
        match c.chain.block(&hash).map_err(internal)? {
            Some(b) => Ok::<Value, ErrorObjectOwned>(block_json(&b)),
            None => Ok(Value::Null),
        }
    })?;

    m.register_blocking_method("chain_getBlockHash", |p, c, _| {
        let args = positional(&p)?;
        let number = match args.first() {
            None | Some(Value::Null) => {
                return Ok::<Value, ErrorObjectOwned>(json!(c.chain.head().hash));
            }
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                err(
                    INVALID_PARAMS,
                    format!("block number {n} must be a non-negative integer"),
                )
            })?,
            Some(Value::String(s)) => {
                let parsed = match s.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => s.parse(),
                };
                parsed.map_err(|e| err(INVALID_PARAMS, format!("block number '{s}': {e}")))?
            }
            Some(other) => {
                return Err(err(
                    INVALID_PARAMS,
                    format!("block number must be an integer, got {other}"),
                ));
            }
        };
        Ok(json!(c.chain.canonical_hash(number).map_err(internal)?))
    })?;

    m.register_subscription(
        "chain_subscribeNewHeads",
        "chain_newHead",
        "chain_unsubscribeNewHeads",
        |_p, pending, c, _| async move {
            let mut events = c.chain.subscribe();
            let sink = pending.accept().await?;
            // Start with the current head, as Substrate does.
            let first = serde_json::value::to_raw_value(&header_json(&c.chain.head().header))?;
            sink.send(first).await?;
            loop {
                tokio::select! {
                    _ = sink.closed() => break,
                    ev = events.recv() => match ev {
                        Ok(ChainEvent::NewHead { header, .. }) => {
                            let msg = serde_json::value::to_raw_value(&header_json(&header))?;
                            sink.send(msg).await?;
                        }
                        Ok(ChainEvent::Reverted { .. }) => {
                            let msg = serde_json::value::to_raw_value(&header_json(&c.chain.head().header))?;
                            sink.send(msg).await?;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
            jsonrpsee::core::SubscriptionResult::Ok(())
        },
    )?;

    m.register_blocking_method("state_getBalance", |p, c, _| {
        let args = positional(&p)?;
        let account = parse_account(&req_str(&args, 0, "account")?)?;
        let at = opt_hash(&args, 1, "at")?;
        let (a, _, _) = c.chain.account(&account, at).map_err(read_err)?;
        Ok::<Value, ErrorObjectOwned>(json!(a.balance.to_string()))
    })?;

    m.register_blocking_method("state_getAccount", |p, c, _| {
        let args = positional(&p)?;
        let account = parse_account(&req_str(&args, 0, "account")?)?;
        let at = opt_hash(&args, 1, "at")?;
        let (a, _, _) = c.chain.account(&account, at).map_err(read_err)?;
        Ok::<Value, ErrorObjectOwned>(json!({"balance": a.balance.to_string(), "nonce": a.nonce}))
    })?;

    m.register_blocking_method("state_getProof", |p, c, _| {
        let args = positional(&p)?;
        let account = parse_account(&req_str(&args, 0, "account")?)?;
        let at = opt_hash(&args, 1, "at")?;
        let (a, proof, hash, header) = c.chain.account_proof(&account, at).map_err(read_err)?;
        Ok::<Value, ErrorObjectOwned>(json!({
            "blockHash": hash,
            "blockNumber": header.number,
            "stateRoot": header.state_root,
            "account": a.map(|a| json!({"balance": a.balance.to_string(), "nonce": a.nonce})),
            "encodedAccount": a.map(|a| cachecash_runtime::primitives::encode_hex(&a.encode())),
            "keyHash": Hash(cachecash_runtime::commitment::account_key(&account).0),
            "proof": proof,
        }))
    })?;

    m.register_blocking_method("chain_getTransaction", |p, c, _| {
        let args = positional(&p)?;
        let hash = parse_hash(&req_str(&args, 0, "hash")?, "hash")?;
        let Some(loc) = c.chain.store().tx_location(&hash).map_err(internal)? else {
            return Ok::<Value, ErrorObjectOwned>(Value::Null);
        };
        let block = c.chain.block(&loc.block).map_err(internal)?;
        let tx = block.as_ref().and_then(|b| {
            b.transactions
                .get(usize::try_from(loc.index).unwrap_or(usize::MAX))
        });
        Ok(json!({
            "blockHash": loc.block,
            "blockNumber": block.as_ref().map(|b| b.header.number),
            "index": loc.index,
            "transaction": tx.map(transaction_json),
        }))
    })?;

    m.register_method("state_getConsensusParams", |_p, c, _| {
        let p = c.chain.params();
        Ok::<Value, ErrorObjectOwned>(json!({
            "targetBlockTimeMs": p.target_block_time_ms,
            "initialTarget": p.initial_target,
            "powLimit": p.pow_limit,
            "retargetWindow": p.retarget_window,
            "blockReward": p.block_reward.to_string(),
            "minimumFee": p.minimum_fee.to_string(),
            "feePerByte": p.fee_per_byte.to_string(),
            "maxFutureDriftMs": p.max_future_drift_ms,
            "maxBlockTransactions": p.max_block_transactions,
            "maxBlockBytes": p.max_block_bytes,
            "duplicateReporterSharePercent": p.duplicate_reporter_share_percent,
        }))
    })?;

    m.register_blocking_method("author_submitTransaction", |p, c, _| {
        let args = positional(&p)?;
        let hex = req_str(&args, 0, "transaction")?;
        let bytes = cachecash_runtime::primitives::decode_hex(&hex)
            .map_err(|e| err(INVALID_PARAMS, format!("transaction: {e}")))?;
        let hash = c.pool.submit_encoded(&bytes).map_err(pool_err)?;
        Ok::<Value, ErrorObjectOwned>(json!(hash))
    })?;

    m.register_method("author_pendingTransactions", |p, c, _| {
        // Paged: a full pool would otherwise be one answer of hundreds of MiB.
        let args = positional(&p)?;
        let opt = |i: usize, name: &str, default: u64| match args.get(i) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => req_u64(&args, i, name),
        };
        let limit = opt(0, "limit", PENDING_PAGE)?;
        if limit == 0 || limit > MAX_PENDING_PAGE {
            return Err(err(
                INVALID_PARAMS,
                format!("limit must be 1 to {MAX_PENDING_PAGE}, got {limit}; page with offset"),
            ));
        }
        let offset = usize::try_from(opt(1, "offset", 0)?).unwrap_or(usize::MAX);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok::<Value, ErrorObjectOwned>(json!(
            c.pool
                .pending()
                .iter()
                .skip(offset)
                .take(limit)
                .map(|(_, t)| transaction_json(t))
                .collect::<Vec<_>>()
        ))
    })?;

    m.register_method("author_removeTransaction", |p, c, _| {
        unsafe_allowed(c, "author_removeTransaction")?;
        let args = positional(&p)?;
        let hash = parse_hash(&req_str(&args, 0, "hash")?, "hash")?;
        Ok::<Value, ErrorObjectOwned>(json!(c.pool.remove(&hash)))
    })?;

    m.register_method("system_health", |_p, c, _| {
        Ok::<Value, ErrorObjectOwned>(match &c.network {
            None => json!({"peers": 0, "isSyncing": false, "shouldHavePeers": false}),
            Some(n) => json!({
                "peers": n.peer_count(),
                "isSyncing": n.is_syncing(),
                "shouldHavePeers": n.should_have_peers(),
            }),
        })
    })?;
    m.register_method("system_peers", |_p, c, _| {
        let n = network(c)?;
        Ok::<Value, ErrorObjectOwned>(json!(n.peers()))
    })?;
    m.register_method("system_syncState", |_p, c, _| {
        Ok::<Value, ErrorObjectOwned>(match &c.network {
            Some(n) => {
                // The snapshot is refreshed every 250 ms; the head is live.
                let mut progress = n.sync_progress();
                progress.current_block = c.chain.head().header.number;
                progress.highest_block = progress.highest_block.max(progress.current_block);
                json!(progress)
            }
            None => {
                let best = c.chain.head().header.number;
                json!({"startingBlock": best, "currentBlock": best, "highestBlock": best})
            }
        })
    })?;
    m.register_method("system_localPeerId", |_p, c, _| {
        let n = network(c)?;
        Ok::<Value, ErrorObjectOwned>(json!(n.local_peer_id().to_string()))
    })?;
    m.register_method("system_localListenAddresses", |_p, c, _| {
        let n = network(c)?;
        Ok::<Value, ErrorObjectOwned>(json!(
            n.listen_addresses()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
        ))
    })?;
    m.register_async_method("system_addReservedPeer", |p, c, _| async move {
        unsafe_allowed(&c, "system_addReservedPeer")?;
        let args = positional(&p)?;
        let raw = req_str(&args, 0, "address")?;
        let addr: libp2p::Multiaddr = raw.parse().map_err(|e| {
            err(
                INVALID_PARAMS,
                format!("'{raw}' is not a multiaddress ({e}); write it as /ip4/ADDR/tcp/PORT/p2p/PEER_ID"),
            )
        })?;
        let n = network(&c)?;
        let peer = n
            .add_reserved_peer(addr)
            .await
            .map_err(|e| err(INVALID_PARAMS, e))?;
        Ok::<Value, ErrorObjectOwned>(json!(peer.to_string()))
    })?;
    m.register_async_method("system_removeReservedPeer", |p, c, _| async move {
        unsafe_allowed(&c, "system_removeReservedPeer")?;
        let args = positional(&p)?;
        let raw = req_str(&args, 0, "peerId")?;
        let peer: libp2p::PeerId = raw.parse().map_err(|e| {
            err(
                INVALID_PARAMS,
                format!("'{raw}' is not a peer id ({e}); system_peers lists them"),
            )
        })?;
        let n = network(&c)?;
        let removed = n.remove_reserved_peer(peer).await.map_err(internal)?;
        Ok::<Value, ErrorObjectOwned>(json!(removed))
    })?;
    m.register_method("system_version", |_p, c, _| {
        Ok::<Value, ErrorObjectOwned>(json!(c.info.version))
    })?;
    m.register_method("system_name", |_p, _c, _| {
        Ok::<Value, ErrorObjectOwned>(json!("cachecash"))
    })?;
    m.register_method("system_chain", |_p, c, _| {
        Ok::<Value, ErrorObjectOwned>(json!(c.info.chain_name))
    })?;
    m.register_method("system_chainType", |_p, c, _| {
        Ok::<Value, ErrorObjectOwned>(json!(c.info.chain_type))
    })?;
    m.register_method("system_properties", |_p, c, _| {
        Ok::<Value, ErrorObjectOwned>(c.info.properties.clone())
    })?;

    m.register_blocking_method("state_getEscrow", |p, c, _| {
        let args = positional(&p)?;
        let id = parse_hash(&req_str(&args, 0, "escrow id")?, "escrow id")?;
        let at = opt_hash(&args, 1, "at")?;
        let (escrow, _, _) = c.chain.escrow(&id, at).map_err(read_err)?;
        Ok::<Value, ErrorObjectOwned>(match escrow {
            None => Value::Null,
            Some(e) => escrow_json(&id, &e),
        })
    })?;

    m.register_blocking_method("escrow_listByFunder", |p, c, _| {
        let args = positional(&p)?;
        let funder = parse_account(&req_str(&args, 0, "funder")?)?;
        let at = opt_hash(&args, 1, "at")?;
        let start = opt_u64(&args, 2, "start")?.unwrap_or(0);
        let limit = opt_u64(&args, 3, "limit")?.unwrap_or(FUNDER_PAGE);
        if limit == 0 || limit > MAX_FUNDER_PAGE {
            return Err(err(
                INVALID_PARAMS,
                format!("limit must be 1 to {MAX_FUNDER_PAGE}, got {limit}; page with start"),
            ));
        }
        let ids = c
            .chain
            .funder_escrows(&funder, at, start, limit)
            .map_err(read_err)?;
        Ok::<Value, ErrorObjectOwned>(json!(ids))
    })?;

    m.register_blocking_method("escrow_getWinners", |p, c, _| {
        let args = positional(&p)?;
        let id = parse_hash(&req_str(&args, 0, "escrow id")?, "escrow id")?;
        let round = req_u64(&args, 1, "round")?;
        let draw = draw_status(&c.chain, &id, round)?;
        Ok::<Value, ErrorObjectOwned>(draw.to_json())
    })?;

    m.register_blocking_method("escrow_getClaim", |p, c, _| {
        let args = positional(&p)?;
        let id = parse_hash(&req_str(&args, 0, "escrow id")?, "escrow id")?;
        let round = req_u64(&args, 1, "round")?;
        let number = u32::try_from(req_u64(&args, 2, "number")?)
            .map_err(|_| err(INVALID_PARAMS, "number must fit in 32 bits"))?;
        let draw = draw_status(&c.chain, &id, round)?;
        if number >= draw.escrow.terms.tickets_per_round {
            return Err(err(
                INVALID_PARAMS,
                format!(
                    "ticket number {number} is out of range: the escrow issues numbers 0..{}",
                    draw.escrow.terms.tickets_per_round
                ),
            ));
        }
        let head = c.chain.head().header.number;
        let winner = draw.winners.as_ref().map(|w| w.contains(&number));
        let claimed = draw.escrow.is_claimed(round, number);
        let status = match (winner, claimed) {
            (_, true) => "claimed",
            (None, _) => "notDrawn",
            (Some(false), _) => "lost",
            (Some(true), false) if head >= draw.deadline => "expired",
            (Some(true), false) => "claimable",
        };
        Ok::<Value, ErrorObjectOwned>(json!({
            "escrow": id,
            "round": round,
            "number": number,
            "status": status,
            "winner": winner,
            "claimed": claimed,
            "drawHeight": draw.draw_height,
            "claimDeadline": draw.deadline,
        }))
    })?;

    let mut names: Vec<&'static str> = m.method_names().collect();
    names.push("rpc_methods");
    names.sort_unstable();
    m.register_method("rpc_methods", move |_p, _c, _| {
        Ok::<Value, ErrorObjectOwned>(json!({"methods": names}))
    })?;
    Ok(m)
}

fn opt_u64(args: &[Value], i: usize, name: &str) -> Result<Option<u64>, ErrorObjectOwned> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => req_u64(args, i, name).map(Some),
    }
}

fn req_u64(args: &[Value], i: usize, name: &str) -> Result<u64, ErrorObjectOwned> {
    match args.get(i) {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
            err(
                INVALID_PARAMS,
                format!(
                    "parameter {} ({name}) must be a non-negative integer, got {n}",
                    i + 1
                ),
            )
        }),
        None | Some(Value::Null) => Err(err(
            INVALID_PARAMS,
            format!("missing parameter {} ({name})", i + 1),
        )),
        Some(other) => Err(err(
            INVALID_PARAMS,
            format!(
                "parameter {} ({name}) must be an integer, got {other}",
                i + 1
            ),
        )),
    }
}

/// An escrow as JSON, with its id and derived heights.
pub fn escrow_json(id: &EscrowId, e: &Escrow) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("id".into(), json!(id));
        m.insert("unlockHeight".into(), json!(e.terms.unlock_height().ok()));
        m.insert(
            "paymentRequiredPerRound".into(),
            json!(e.terms.payment_required(1).ok().map(|b| b.to_string())),
        );
    }
    v
}

/// What the chain says about one round's draw.
struct DrawStatus {
    id: EscrowId,
    round: u64,
    escrow: Escrow,
    draw_height: u64,
    deadline: u64,
    seed: Option<Hash>,
    winners: Option<Vec<u32>>,
}

impl DrawStatus {
    fn to_json(&self) -> Value {
        json!({
            "escrow": self.id,
            "round": self.round,
            "drawHeight": self.draw_height,
            "claimDeadline": self.deadline,
            "drawn": self.winners.is_some(),
            "seed": self.seed,
            "winners": self.winners,
        })
    }
}

/// The draw of `round` of escrow `id` at the head (drawn once the draw
/// block is canonical), read at one head: the escrow and the draw block
/// come from the same chain (a reorganisation during the read retries it).
fn draw_status(chain: &Chain, id: &EscrowId, round: u64) -> Result<DrawStatus, ErrorObjectOwned> {
    for _ in 0..3 {
        let head = chain.head();
        let escrow = match chain.escrow(id, Some(head.hash)) {
            Ok((escrow, _, _)) => escrow,
            Err(ReadError::UnknownBlock(_)) => continue,
            Err(e) => return Err(read_err(e)),
        };
        let escrow = escrow.ok_or_else(|| {
            err(
                UNKNOWN_ESCROW,
                format!("escrow {id} does not exist at the best block (never opened, or closed)"),
            )
        })?;
        escrow
            .terms
            .check_slot(round, 0)
            .map_err(|e| err(INVALID_PARAMS, e.to_string()))?;
        let draw_height = escrow
            .terms
            .draw_height(round)
            .map_err(|e| err(INVALID_PARAMS, e.to_string()))?;
        let deadline = escrow
            .terms
            .claim_deadline(round)
            .map_err(|e| err(INVALID_PARAMS, e.to_string()))?;
        let seed = if draw_height <= head.header.number {
            chain.canonical_hash(draw_height).map_err(internal)?
        } else {
            None
        };
        // The seed is from the head's chain only if the head is still
        // canonical after reading it.
        if chain.canonical_hash(head.header.number).map_err(internal)? != Some(head.hash) {
            continue;
        }
        let winners = seed.map(|s| {
            cachecash_runtime::microcash::winners(
                &s,
                id,
                round,
                escrow.terms.tickets_per_round,
                escrow.terms.winners_per_round,
            )
        });
        return Ok(DrawStatus {
            id: *id,
            round,
            escrow,
            draw_height,
            deadline,
            seed,
            winners,
        });
    }
    Err(err(
        INTERNAL,
        "the chain reorganised during each of three reads; retry",
    ))
}

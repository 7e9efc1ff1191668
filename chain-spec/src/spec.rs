//! The chain-spec format, presets and resolution of account and key names.
//!
//! # Format
//!
//! A chain spec is a JSON object with the conventional keys:
//!
//! ```json
//! {
//!   "name": "Development",
//!   "id": "dev",
//!   "chainType": "Development",
//!   "bootNodes": [],
//!   "protocolId": "cch",
//!   "maxReorgDepth": 1000,
//!   "properties": { "tokenSymbol": "CCH", "tokenDecimals": 12 },
//!   "consensus": { "targetBlockTimeMs": 2000, "initialTarget": "0x00ff…", … },
//!   "genesis": { "plain": { "timestamp": 1764547200000,
//!                           "balances": [ { "account": "alice", "balance": "1000…" } ] } }
//! }
//! ```
//!
//! The genesis section has two forms:
//! - **plain** (`{"plain": …}`): balances name accounts by `0x` id or, on
//!   `Development` and `Local` chains, by dev name. Easy to write by hand.
//! - **raw** (`{"raw": …}`, with a top-level `genesisHash`): every account is
//!   a `0x` id and the spec states the genesis hash it must build. Export a
//!   raw spec (`cachecash export-chain-spec --raw`) for a long-lived network:
//!   a node refuses a raw spec whose content does not build its hash, so an
//!   edited or corrupted file can never silently start a different chain.
//!
//! Unknown keys are rejected everywhere, so a misspelt parameter is an
//! error rather than a silently ignored default.
//!
//! # Invariants
//!
//! - A spec returned by [`ChainSpec::load`] or [`ChainSpec::from_json_str`]
//!   has valid consensus parameters, a buildable genesis, and (when it states
//!   one) a genesis hash that matches its content.
//! - `id` is a safe path component: it names the database directory.
//! - Dev names resolve only on `Development` and `Local` chains: anyone can
//!   derive their keys, so they must never mean anything on a live chain.

use crate::dev_accounts;
use crate::error::ChainSpecError;
use cachecash_runtime::consensus::{ConsensusParams, Target};
use cachecash_runtime::genesis::{Genesis, GenesisConfig, build_genesis};
use cachecash_runtime::primitives::{AccountId, Balance, Hash, Timestamp};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One CCH in the smallest unit on the presets (12 decimals).
pub const CCH: Balance = 1_000_000_000_000;

/// Largest accepted `tokenDecimals`: 10^38 is the largest power of ten
/// below 2^128.
pub const MAX_TOKEN_DECIMALS: u8 = 38;

/// Default `maxReorgDepth`.
pub const DEFAULT_MAX_REORG_DEPTH: u64 = 1000;

/// Largest accepted `maxReorgDepth`: the window bounds the side blocks the
/// block index keeps and the states a pruning node keeps, so it stays a
/// few hours of blocks, not an unbounded history.
pub const MAX_MAX_REORG_DEPTH: u64 = 4000;

fn default_max_reorg_depth() -> u64 {
    DEFAULT_MAX_REORG_DEPTH
}

/// What kind of network a spec describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainType {
    /// A single developer's chain; dev names resolve.
    Development,
    /// A local test network of several nodes; dev names resolve.
    Local,
    /// A network that carries value; dev names are refused.
    Live,
}

impl ChainType {
    /// Whether dev-account names may be used on this chain.
    pub fn allows_dev_accounts(self) -> bool {
        matches!(self, ChainType::Development | ChainType::Local)
    }
}

impl std::fmt::Display for ChainType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChainType::Development => "Development",
            ChainType::Local => "Local",
            ChainType::Live => "Live",
        })
    }
}

/// The `properties` of a chain: how wallets display amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Properties {
    /// Ticker, "CCH" on the presets.
    pub token_symbol: String,
    /// Decimal places of one token: 1 token = 10^tokenDecimals units.
    pub token_decimals: u8,
}

/// The consensus parameters as written in JSON. See
/// [`ConsensusParams`] for the meaning of each; balances are decimal
/// strings in the smallest unit, targets 0x-prefixed 32-byte hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsensusConfig {
    /// Intended time between blocks, in milliseconds.
    pub target_block_time_ms: u64,
    /// Target of block 1 (and of every block when `retargetWindow` is 0).
    pub initial_target: Target,
    /// The easiest target retargeting may reach.
    pub pow_limit: Target,
    /// ASERT half-life in blocks; 0 disables retargeting.
    pub retarget_window: u64,
    /// Newly minted per block, paid to the miner.
    #[serde(with = "cachecash_runtime::serde_balance")]
    pub block_reward: Balance,
    /// Smallest fee a transaction may pay.
    #[serde(with = "cachecash_runtime::serde_balance")]
    pub minimum_fee: Balance,
    /// How far past a validator's clock a block timestamp may be, in ms.
    pub max_future_drift_ms: u64,
    /// Most transactions in one block.
    pub max_block_transactions: u32,
    /// Largest encoded block, in bytes.
    pub max_block_bytes: u32,
    /// Percentage of a forfeited penalty paid to the duplicate's reporter.
    pub duplicate_reporter_share_percent: u8,
    /// Fee per encoded byte of a signed transaction (above `minimumFee`);
    /// `"0"` when absent, the rule of specs written before it existed.
    #[serde(with = "cachecash_runtime::serde_balance", default = "zero_balance")]
    pub fee_per_byte: Balance,
}

fn zero_balance() -> Balance {
    0
}

impl ConsensusConfig {
    /// The runtime's parameter set.
    pub fn to_params(&self) -> ConsensusParams {
        ConsensusParams {
            target_block_time_ms: self.target_block_time_ms,
            initial_target: self.initial_target,
            pow_limit: self.pow_limit,
            retarget_window: self.retarget_window,
            block_reward: self.block_reward,
            minimum_fee: self.minimum_fee,
            max_future_drift_ms: self.max_future_drift_ms,
            max_block_transactions: self.max_block_transactions,
            max_block_bytes: self.max_block_bytes,
            duplicate_reporter_share_percent: self.duplicate_reporter_share_percent,
            fee_per_byte: self.fee_per_byte,
        }
    }

    /// The JSON form of a runtime parameter set.
    pub fn from_params(p: &ConsensusParams) -> ConsensusConfig {
        ConsensusConfig {
            target_block_time_ms: p.target_block_time_ms,
            initial_target: p.initial_target,
            pow_limit: p.pow_limit,
            retarget_window: p.retarget_window,
            block_reward: p.block_reward,
            minimum_fee: p.minimum_fee,
            max_future_drift_ms: p.max_future_drift_ms,
            max_block_transactions: p.max_block_transactions,
            max_block_bytes: p.max_block_bytes,
            duplicate_reporter_share_percent: p.duplicate_reporter_share_percent,
            fee_per_byte: p.fee_per_byte,
        }
    }
}

/// A plain genesis balance: the account is a 0x id or (dev/local) a dev name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlainBalance {
    /// `0x` account id, or a dev name on Development and Local chains.
    pub account: String,
    /// Initial balance in the smallest unit.
    #[serde(with = "cachecash_runtime::serde_balance")]
    pub balance: Balance,
}

/// A raw genesis account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawBalance {
    /// The account id.
    pub account: AccountId,
    /// Initial balance in the smallest unit.
    #[serde(with = "cachecash_runtime::serde_balance")]
    pub balance: Balance,
}

/// The genesis section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum GenesisSpec {
    /// Human-writable: accounts may be dev names where allowed.
    #[serde(rename_all = "camelCase")]
    Plain {
        /// Genesis timestamp, ms since the Unix epoch.
        timestamp: Timestamp,
        /// Initial balances.
        balances: Vec<PlainBalance>,
    },
    /// Resolved: accounts are ids, and the spec carries `genesisHash`.
    #[serde(rename_all = "camelCase")]
    Raw {
        /// Genesis timestamp, ms since the Unix epoch.
        timestamp: Timestamp,
        /// Initial accounts.
        accounts: Vec<RawBalance>,
    },
}

/// A chain specification. See the [module docs](self) for the format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChainSpec {
    /// Human-readable chain name (`system_chain`).
    pub name: String,
    /// Short identifier: names the database directory
    /// (`BASE/chains/ID/db`). Lower-case letters, digits, `-` and `_`.
    pub id: String,
    /// Development, Local or Live.
    pub chain_type: ChainType,
    /// Multiaddresses of nodes to connect to first.
    #[serde(default)]
    pub boot_nodes: Vec<String>,
    /// Short network protocol prefix.
    pub protocol_id: String,
    /// Deepest reorganisation a node performs, in blocks: a heavier branch
    /// forking deeper below the head is refused and needs an operator
    /// (`cachecash revert`). Node policy, not consensus: it is not part of
    /// the genesis hash. Default 1000.
    #[serde(default = "default_max_reorg_depth")]
    pub max_reorg_depth: u64,
    /// Token display properties.
    pub properties: Properties,
    /// Consensus parameters (committed to by the genesis hash).
    pub consensus: ConsensusConfig,
    /// Initial state.
    pub genesis: GenesisSpec,
    /// The genesis hash the content must build; required in raw specs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis_hash: Option<Hash>,
}

impl ChainSpec {
    /// The `dev` preset: one node, a fixed easy target (no retargeting), a
    /// block every 2 s, all dev accounts funded with 1,000,000 CCH.
    pub fn dev() -> ChainSpec {
        let target =
            Target::from_hex("0x00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
        let target = target.unwrap_or(Target::MAX);
        ChainSpec {
            name: "Development".into(),
            id: "dev".into(),
            chain_type: ChainType::Development,
            boot_nodes: Vec::new(),
            protocol_id: "cch".into(),
            max_reorg_depth: DEFAULT_MAX_REORG_DEPTH,
            properties: Properties {
                token_symbol: "CCH".into(),
                token_decimals: 12,
            },
            consensus: ConsensusConfig {
                target_block_time_ms: 2_000,
                initial_target: target,
                pow_limit: target,
                retarget_window: 0,
                block_reward: 50 * CCH,
                minimum_fee: 1_000_000,
                max_future_drift_ms: 15_000,
                max_block_transactions: 20_000,
                max_block_bytes: 4 * 1024 * 1024,
                duplicate_reporter_share_percent: 50,
                // Transactions up to 1,000 bytes pay the flat minimum;
                // larger ones pay by the byte (a 64 KiB one, 65.5×).
                fee_per_byte: 1_000,
            },
            genesis: dev_genesis(),
            genesis_hash: None,
        }
    }

    /// The `local` preset: a multi-node test network with real ASERT
    /// retargeting toward 5 s blocks, all dev accounts funded.
    pub fn local() -> ChainSpec {
        let initial =
            Target::from_hex("0x000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
        let limit =
            Target::from_hex("0x0000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
        ChainSpec {
            name: "Local Testnet".into(),
            id: "local".into(),
            chain_type: ChainType::Local,
            boot_nodes: Vec::new(),
            protocol_id: "cch".into(),
            max_reorg_depth: DEFAULT_MAX_REORG_DEPTH,
            properties: Properties {
                token_symbol: "CCH".into(),
                token_decimals: 12,
            },
            consensus: ConsensusConfig {
                target_block_time_ms: 5_000,
                initial_target: initial.unwrap_or(Target::MAX),
                pow_limit: limit.unwrap_or(Target::MAX),
                retarget_window: 60,
                block_reward: 50 * CCH,
                minimum_fee: 1_000_000,
                max_future_drift_ms: 60_000,
                max_block_transactions: 20_000,
                max_block_bytes: 4 * 1024 * 1024,
                duplicate_reporter_share_percent: 50,
                // Transactions up to 1,000 bytes pay the flat minimum;
                // larger ones pay by the byte (a 64 KiB one, 65.5×).
                fee_per_byte: 1_000,
            },
            genesis: dev_genesis(),
            genesis_hash: None,
        }
    }

    /// Loads `chain`: the preset `dev` or `local`, or the path of a JSON
    /// chain-spec file.
    pub fn load(chain: &str) -> Result<ChainSpec, ChainSpecError> {
        match chain {
            "dev" => Ok(ChainSpec::dev()),
            "local" => Ok(ChainSpec::local()),
            path => {
                let path = PathBuf::from(path);
                let text =
                    std::fs::read_to_string(&path).map_err(|error| ChainSpecError::ReadFile {
                        path: path.clone(),
                        error,
                    })?;
                ChainSpec::from_json_str(&text).map_err(|error| ChainSpecError::InFile {
                    path,
                    error: Box::new(error),
                })
            }
        }
    }

    /// Parses and validates a spec.
    pub fn from_json_str(text: &str) -> Result<ChainSpec, ChainSpecError> {
        let spec: ChainSpec = serde_json::from_str(text).map_err(ChainSpecError::from_json)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks everything [`ChainSpec::from_json_str`] promises.
    pub fn validate(&self) -> Result<(), ChainSpecError> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        validate_id(&self.id)?;
        if self.protocol_id.is_empty()
            || self.protocol_id.len() > 32
            || !self
                .protocol_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                "protocolId",
                "must be 1 to 32 lower-case letters, digits or '-', such as \"cch\"",
            ));
        }
        if self.max_reorg_depth == 0 || self.max_reorg_depth > MAX_MAX_REORG_DEPTH {
            return Err(invalid(
                "maxReorgDepth",
                format!(
                    "{} is out of range; use 1 to {MAX_MAX_REORG_DEPTH} blocks (default {DEFAULT_MAX_REORG_DEPTH})",
                    self.max_reorg_depth
                ),
            ));
        }
        for node in &self.boot_nodes {
            if !node.starts_with('/') || !node.contains("/p2p/") {
                return Err(invalid(
                    "bootNodes",
                    format!(
                        "'{node}' is not a multiaddress with a peer id; write it as /ip4/ADDR/tcp/PORT/p2p/PEER_ID"
                    ),
                ));
            }
        }
        if self.properties.token_symbol.trim().is_empty() {
            return Err(invalid("properties.tokenSymbol", "must not be empty"));
        }
        if self.properties.token_decimals > MAX_TOKEN_DECIMALS {
            return Err(invalid(
                "properties.tokenDecimals",
                format!(
                    "{} is too many: 10^{} does not fit a 128-bit balance; use at most {MAX_TOKEN_DECIMALS}",
                    self.properties.token_decimals, self.properties.token_decimals
                ),
            ));
        }
        self.consensus.to_params().validate()?;
        let genesis = self.build_genesis()?;
        match (&self.genesis, self.genesis_hash) {
            (GenesisSpec::Raw { .. }, None) => Err(invalid(
                "genesisHash",
                "a raw spec must state the genesis hash it builds; re-export it with `cachecash export-chain-spec --raw`",
            )),
            (_, Some(expected)) if expected != genesis.hash => {
                Err(ChainSpecError::GenesisHashMismatch {
                    expected,
                    actual: genesis.hash,
                })
            }
            _ => Ok(()),
        }
    }

    /// The runtime's consensus parameters.
    pub fn consensus_params(&self) -> ConsensusParams {
        self.consensus.to_params()
    }

    /// `properties` as JSON, as `system_properties` serves it.
    pub fn properties_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.properties).unwrap_or(serde_json::Value::Null)
    }

    /// The genesis accounts with names resolved.
    pub fn genesis_config(&self) -> Result<GenesisConfig, ChainSpecError> {
        match &self.genesis {
            GenesisSpec::Plain {
                timestamp,
                balances,
            } => {
                let balances = balances
                    .iter()
                    .map(|b| {
                        let account = self.resolve_account(&b.account)?;
                        if b.balance == 0 {
                            return Err(ChainSpecError::RawAccount {
                                account,
                                reason: "a zero balance funds nothing; remove the entry".into(),
                            });
                        }
                        Ok((account, b.balance))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(GenesisConfig {
                    timestamp: *timestamp,
                    balances,
                })
            }
            GenesisSpec::Raw {
                timestamp,
                accounts,
            } => {
                let balances = accounts
                    .iter()
                    .map(|a| {
                        if a.balance == 0 {
                            return Err(ChainSpecError::RawAccount {
                                account: a.account,
                                reason: "a zero balance funds nothing; remove the entry".into(),
                            });
                        }
                        Ok((a.account, a.balance))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(GenesisConfig {
                    timestamp: *timestamp,
                    balances,
                })
            }
        }
    }

    /// Builds the genesis block and state.
    pub fn build_genesis(&self) -> Result<Genesis, ChainSpecError> {
        let config = self.genesis_config()?;
        Ok(build_genesis(&self.consensus_params(), &config)?)
    }

    /// The genesis hash: the chain's identity.
    pub fn genesis_hash(&self) -> Result<Hash, ChainSpecError> {
        Ok(self.build_genesis()?.hash)
    }

    /// The same chain with a raw genesis and its `genesisHash`.
    pub fn to_raw(&self) -> Result<ChainSpec, ChainSpecError> {
        let config = self.genesis_config()?;
        let hash = build_genesis(&self.consensus_params(), &config)?.hash;
        let mut raw = self.clone();
        raw.genesis = GenesisSpec::Raw {
            timestamp: config.timestamp,
            accounts: config
                .balances
                .into_iter()
                .map(|(account, balance)| RawBalance { account, balance })
                .collect(),
        };
        raw.genesis_hash = Some(hash);
        Ok(raw)
    }

    /// Pretty JSON: as written (`raw = false`) or raw.
    pub fn to_json(&self, raw: bool) -> Result<String, ChainSpecError> {
        let spec = if raw { self.to_raw()? } else { self.clone() };
        serde_json::to_string_pretty(&spec).map_err(ChainSpecError::Serialize)
    }

    /// Resolves an account argument: a `0x` account id, or a dev name on
    /// Development and Local chains.
    pub fn resolve_account(&self, input: &str) -> Result<AccountId, ChainSpecError> {
        let input = input.trim();
        if input.starts_with("0x") {
            return AccountId::from_hex(input).map_err(|e| ChainSpecError::InvalidAccount {
                input: input.to_string(),
                reason: format!("{e}; an account id is 0x followed by 64 hex digits"),
            });
        }
        if let Some(name) = dev_accounts::canonical_dev_name(input) {
            self.check_dev_names(name, "pass the account's 0x id (64 hex digits)")?;
            return dev_accounts::dev_account(name).ok_or_else(|| ChainSpecError::InvalidAccount {
                input: input.to_string(),
                reason: "the dev account cannot be derived".into(),
            });
        }
        Err(ChainSpecError::InvalidAccount {
            input: input.to_string(),
            reason: self.account_forms(),
        })
    }

    /// Resolves a signing-key argument: a dev name (Development and Local
    /// chains), a `0x` 32-byte secret seed, or the path of a file holding
    /// one (as `cachecash key generate --output` writes it).
    pub fn resolve_signing_key(&self, input: &str) -> Result<SigningKey, ChainSpecError> {
        let trimmed = input.trim();
        if let Some(name) = dev_accounts::canonical_dev_name(trimmed) {
            self.check_dev_names(
                name,
                "pass a 0x secret seed or a key file made by `cachecash key generate --output FILE`",
            )?;
            return dev_accounts::dev_signing_key(name).ok_or_else(|| ChainSpecError::InvalidKey {
                reason: "the dev key cannot be derived".into(),
            });
        }
        if trimmed.starts_with("0x") && !Path::new(trimmed).exists() {
            return parse_seed(trimmed).map_err(|reason| ChainSpecError::InvalidKey { reason });
        }
        let path = Path::new(trimmed);
        if path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|e| ChainSpecError::KeyFile {
                path: path.to_path_buf(),
                reason: format!("cannot read it: {e}"),
            })?;
            return parse_seed(text.trim()).map_err(|reason| ChainSpecError::KeyFile {
                path: path.to_path_buf(),
                reason,
            });
        }
        let names = if self.chain_type.allows_dev_accounts() {
            "a dev account name (alice, bob, charlie, dave, eve, ferdie), "
        } else {
            ""
        };
        Err(ChainSpecError::InvalidKey {
            reason: format!(
                "it is not {names}a 0x secret seed (64 hex digits), or an existing key file; \
                 make one with `cachecash key generate --output FILE`"
            ),
        })
    }

    fn check_dev_names(&self, name: &str, instead: &'static str) -> Result<(), ChainSpecError> {
        if self.chain_type.allows_dev_accounts() {
            Ok(())
        } else {
            Err(ChainSpecError::DevNameNotAllowed {
                name: name.to_string(),
                chain_type: self.chain_type,
                instead,
            })
        }
    }

    fn account_forms(&self) -> String {
        if self.chain_type.allows_dev_accounts() {
            "expected a 0x account id (64 hex digits) or a dev account name (alice, bob, charlie, dave, eve, ferdie)"
                .into()
        } else {
            "expected a 0x account id (64 hex digits)".into()
        }
    }
}

/// The presets' genesis: every dev account with 1,000,000 CCH, at
/// 2025-12-01T00:00:00Z.
fn dev_genesis() -> GenesisSpec {
    GenesisSpec::Plain {
        timestamp: 1_764_547_200_000,
        balances: dev_accounts::DEV_ACCOUNT_NAMES
            .iter()
            .map(|name| PlainBalance {
                account: (*name).to_string(),
                balance: 1_000_000 * CCH,
            })
            .collect(),
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ChainSpecError {
    ChainSpecError::InvalidField {
        field,
        reason: reason.into(),
    }
}

fn validate_id(id: &str) -> Result<(), ChainSpecError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "id",
            format!(
                "'{id}' must be 1 to 64 lower-case letters, digits, '-' or '_' (it names the database directory)"
            ),
        ))
    }
}

/// Parses a `0x` 32-byte secret seed. The error never echoes the input.
fn parse_seed(s: &str) -> Result<SigningKey, String> {
    let hex = s
        .strip_prefix("0x")
        .ok_or_else(|| "a secret seed is 0x followed by 64 hex digits".to_string())?;
    if hex.len() != 64 {
        return Err(format!(
            "a secret seed is 0x followed by 64 hex digits, but {} digits were given",
            hex.len()
        ));
    }
    let mut seed = [0u8; 32];
    hex::decode_to_slice(hex, &mut seed).map_err(|_| {
        "a secret seed is 0x followed by 64 hex digits, but it holds a non-hex character"
            .to_string()
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_have_distinct_genesis() {
        let dev = ChainSpec::dev();
        let local = ChainSpec::local();
        dev.validate().unwrap();
        local.validate().unwrap();
        assert_ne!(dev.genesis_hash().unwrap(), local.genesis_hash().unwrap());
        assert_eq!(dev.properties_json()["tokenSymbol"], "CCH");
        assert_eq!(dev.properties_json()["tokenDecimals"], 12);
    }

    #[test]
    fn plain_and_raw_exports_round_trip_to_the_same_genesis() {
        for spec in [ChainSpec::dev(), ChainSpec::local()] {
            let expected = spec.genesis_hash().unwrap();
            for raw in [false, true] {
                let text = spec.to_json(raw).unwrap();
                let back = ChainSpec::from_json_str(&text).unwrap();
                assert_eq!(back.genesis_hash().unwrap(), expected);
                assert_eq!(back.genesis_hash.is_some(), raw);
            }
        }
    }

    #[test]
    fn edited_raw_spec_is_refused_with_hash_mismatch() {
        let text = ChainSpec::local().to_json(true).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["consensus"]["blockReward"] = "1".into();
        let err = ChainSpec::from_json_str(&v.to_string()).unwrap_err();
        assert!(
            matches!(err, ChainSpecError::GenesisHashMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn raw_spec_without_genesis_hash_is_refused() {
        let text = ChainSpec::local().to_json(true).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove("genesisHash");
        let err = ChainSpec::from_json_str(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("genesisHash"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named_in_errors() {
        let mut v: serde_json::Value =
            serde_json::from_str(&ChainSpec::dev().to_json(false).unwrap()).unwrap();
        v["consensus"]["blockTime"] = 5.into();
        let err = ChainSpec::from_json_str(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("blockTime"), "{err}");

        let mut v: serde_json::Value =
            serde_json::from_str(&ChainSpec::dev().to_json(false).unwrap()).unwrap();
        v["id"] = "../../etc".into();
        let err = ChainSpec::from_json_str(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid `id`"), "{err}");

        let err = ChainSpec::from_json_str("{ not json").unwrap_err();
        assert!(matches!(err, ChainSpecError::Syntax(_)), "{err}");
    }

    #[test]
    fn dev_names_are_refused_on_live_chains() {
        let mut spec = ChainSpec::dev();
        spec.chain_type = ChainType::Live;
        let err = spec.resolve_account("alice").unwrap_err();
        assert!(
            matches!(err, ChainSpecError::DevNameNotAllowed { .. }),
            "{err}"
        );
        assert!(spec.resolve_signing_key("bob").is_err());
        // A live spec naming dev accounts in genesis is invalid.
        assert!(matches!(
            spec.validate(),
            Err(ChainSpecError::DevNameNotAllowed { .. })
        ));
        // Ids and seeds still work.
        let alice = ChainSpec::dev().resolve_account("alice").unwrap();
        assert_eq!(spec.resolve_account(&alice.to_hex()).unwrap(), alice);
    }

    #[test]
    fn signing_keys_resolve_from_names_seeds_and_files() {
        let spec = ChainSpec::dev();
        let alice = spec.resolve_signing_key("Alice").unwrap();
        let seed = format!("0x{}", hex::encode(alice.to_bytes()));
        assert_eq!(
            spec.resolve_signing_key(&seed).unwrap().to_bytes(),
            alice.to_bytes()
        );

        let dir = std::env::temp_dir().join(format!("cachecash-spec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("alice.key");
        std::fs::write(&file, format!("{seed}\n")).unwrap();
        let from_file = spec.resolve_signing_key(file.to_str().unwrap()).unwrap();
        assert_eq!(from_file.to_bytes(), alice.to_bytes());
        std::fs::write(&file, "garbage").unwrap();
        let err = spec
            .resolve_signing_key(file.to_str().unwrap())
            .unwrap_err();
        assert!(matches!(err, ChainSpecError::KeyFile { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();

        let secret = "0x1234";
        let err = spec.resolve_signing_key(secret).unwrap_err().to_string();
        assert!(
            !err.contains(secret),
            "the secret must not be echoed: {err}"
        );
    }

    #[test]
    fn missing_file_error_names_the_path_and_the_choices() {
        let err = ChainSpec::load("/nonexistent/spec.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/spec.json"), "{err}");
        assert!(err.contains("dev"), "{err}");
    }
}

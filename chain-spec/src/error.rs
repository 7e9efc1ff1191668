//! Errors of loading, validating and using a chain spec.
//!
//! Every message names what is wrong and, where the user can fix it, what to
//! pass instead. Messages are complete on their own: wrapped causes are
//! rendered into the message rather than exposed as [`std::error::Error::source`],
//! so `anyhow`'s `{:#}` does not print them twice.
//!
//! Messages about secret keys never echo the secret.

use crate::spec::ChainType;
use cachecash_runtime::consensus::ParamsError;
use cachecash_runtime::genesis::GenesisError;
use cachecash_runtime::{AccountId, Hash};
use std::path::PathBuf;

/// Why a chain spec cannot be loaded, validated, built or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainSpecError {
    /// The chain-spec file cannot be read.
    #[error(
        "cannot read chain spec file '{path}': {error}; --chain takes `dev`, `local`, or the path of a chain-spec JSON file"
    )]
    ReadFile {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The chain-spec file was read but its content is invalid.
    #[error("chain spec '{path}': {error}")]
    InFile {
        /// The path given.
        path: PathBuf,
        /// What is wrong with the content.
        error: Box<ChainSpecError>,
    },
    /// The text is not JSON (syntax error or truncated input).
    #[error("not valid JSON: {0}")]
    Syntax(serde_json::Error),
    /// The JSON does not describe a chain spec (unknown or missing key,
    /// wrong type, bad hex, bad balance, ...). serde's message names the
    /// key and the line and column.
    #[error("invalid chain spec: {0}")]
    Schema(serde_json::Error),
    /// The spec cannot be written as JSON.
    #[error("cannot serialize the chain spec: {0}")]
    Serialize(serde_json::Error),
    /// A top-level field has an unusable value.
    #[error("invalid `{field}`: {reason}")]
    InvalidField {
        /// The JSON key.
        field: &'static str,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The consensus parameters cannot work.
    #[error("invalid consensus parameters: {0}")]
    Params(ParamsError),
    /// Genesis cannot be built from the spec.
    #[error("invalid genesis: {0}")]
    Genesis(GenesisError),
    /// A raw genesis account cannot be used.
    #[error("invalid raw genesis account {account}: {reason}")]
    RawAccount {
        /// The account.
        account: AccountId,
        /// What is wrong.
        reason: String,
    },
    /// A raw spec's state and parameters do not build its `genesisHash`.
    #[error(
        "raw genesis hash mismatch: the spec says genesisHash {expected} but its accounts, timestamp and \
         consensus parameters build {actual}; the file was edited or corrupted (the consensus parameters \
         are part of the genesis hash, so they cannot change in a raw spec), or it was exported by an \
         incompatible cachecash version"
    )]
    GenesisHashMismatch {
        /// `genesisHash` in the spec.
        expected: Hash,
        /// The hash of the genesis the spec builds.
        actual: Hash,
    },
    /// A dev-account name was used on a chain that has no dev accounts.
    #[error(
        "'{name}' is a dev account name, but dev accounts exist only on Development and Local chains \
         and this chain is {chain_type}; {instead}"
    )]
    DevNameNotAllowed {
        /// The name given.
        name: String,
        /// The chain's type.
        chain_type: ChainType,
        /// What to pass instead.
        instead: &'static str,
    },
    /// An account argument cannot be resolved.
    #[error("invalid account '{input}': {reason}")]
    InvalidAccount {
        /// The input (an account id is public, so it is echoed).
        input: String,
        /// What is wrong and what to pass instead.
        reason: String,
    },
    /// A signing-key argument cannot be resolved. The input is not echoed:
    /// it may be a secret.
    #[error("invalid signing key: {reason}")]
    InvalidKey {
        /// What is wrong and what to pass instead.
        reason: String,
    },
    /// A key file cannot be read or does not hold a secret seed.
    #[error("key file '{path}': {reason}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong and what the file must hold.
        reason: String,
    },
}

impl From<ParamsError> for ChainSpecError {
    fn from(e: ParamsError) -> Self {
        ChainSpecError::Params(e)
    }
}

impl From<GenesisError> for ChainSpecError {
    fn from(e: GenesisError) -> Self {
        match e {
            // Report parameter problems as such, not as "invalid genesis".
            GenesisError::Params(p) => ChainSpecError::Params(p),
            other => ChainSpecError::Genesis(other),
        }
    }
}

impl ChainSpecError {
    /// Classifies a serde_json error from parsing a spec.
    pub(crate) fn from_json(e: serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ChainSpecError::Syntax(e)
            }
            serde_json::error::Category::Data | serde_json::error::Category::Io => {
                ChainSpecError::Schema(e)
            }
        }
    }
}

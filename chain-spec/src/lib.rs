//! # cachecash-chain-spec
//!
//! A chain specification says everything a node must agree on to join a
//! chain: its name and identifier, its consensus parameters, its genesis
//! balances, and where to find peers. The genesis hash — which commits to
//! the parameters as well as to the initial state — identifies the chain.
//!
//! - [`spec`]: the JSON format, the `dev` and `local` presets, loading,
//!   raw export, genesis building and name resolution.
//! - [`dev_accounts`]: the well-known development accounts.
//! - [`error`]: every way loading or using a spec can fail.
//!
//! The format is documented for operators in `docs/chain-spec.md`.

pub mod dev_accounts;
pub mod error;
pub mod spec;

pub use error::ChainSpecError;
pub use spec::{ChainSpec, ChainType, ConsensusConfig, GenesisSpec, Properties};

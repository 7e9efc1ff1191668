//! # cachecash-node
//!
//! The node around the pure runtime: it owns I/O, threads and time.
//!
//! ```text
//!            ┌──────────── RPC (jsonrpsee, HTTP+WS) ────────────┐
//!            │                                                   │
//!   miner ──▶ Chain::import_block ──▶ Store::commit_block ──▶ ChainEvent ──▶ mempool, RPC subscriptions
//!   thread    (runtime verification    (one atomic batch)
//!              stages)
//! ```
//!
//! - [`storage`]: the [`storage::Store`] trait, RocksDB and memory backends.
//! - [`chain`]: the import pipeline, head, fork-choice work, revert.
//! - [`mempool`]: admission, bounds, eviction, ordering, re-validation.
//! - [`miner`]: proof-of-work on its own thread.
//! - [`network`]: libp2p: discovery, gossip, headers-first sync, bans.
//! - [`cdn`]: the CDN services (publisher, cache, client) over libp2p streams.
//! - [`rpc`]: the JSON-RPC server.
//! - [`metrics`]: Prometheus metrics.
//! - [`service`]: configuration, startup, shutdown, hosted modules.

pub mod blockfile;
pub mod cdn;
pub mod chain;
pub mod dashboard;
pub mod ledger;
pub mod mempool;
pub mod metrics;
pub mod miner;
pub mod network;
pub mod rpc;
pub mod rpc_access;
pub mod rpc_server;
pub mod service;
pub mod storage;

pub use chain::{BlockOrigin, Chain, ChainEvent, ImportError, ImportOutcome};
pub use mempool::{Mempool, PoolError, PoolLimits};
pub use service::{Node, NodeConfig, NodeModule, Storage};

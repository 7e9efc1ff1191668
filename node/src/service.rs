//! The node service: wires storage, chain, mempool, miner, RPC, metrics and
//! hosted modules, and stops them in reverse order.
//!
//! Modules ([`NodeModule`]) are the seam for the CDN services (publisher,
//! cache, gateway, dashboard): each receives a [`ModuleContext`] with the
//! ledger interface ([`ModuleContext::ledger`]), the network (where it
//! registers its own protocols, [`ModuleContext::register_protocol`]) and
//! the RPC registry, and runs until the node stops. Start and stop are
//! async and awaited in order (stop in reverse), and stop waits for the
//! module's tasks.

use crate::chain::Chain;
use crate::mempool::{Mempool, PoolLimits};
use crate::metrics::{self, Metrics};
use crate::miner::Miner;
use crate::network::{NetworkConfig, NetworkError, NetworkHandle};
use crate::rpc::{self, NodeInfo, RpcContext, RpcLimits, RpcMethods};
use crate::storage::{MemoryStore, RocksStore, Store, StoreError};
use cachecash_chain_spec::ChainSpec;
use cachecash_runtime::AccountId;
use cachecash_runtime::genesis::GenesisError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where blocks and state live.
#[derive(Clone, Debug)]
pub enum Storage {
    /// RocksDB under the base path.
    Rocks,
    /// Memory only (tests).
    Memory,
}

/// Everything needed to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The chain.
    pub spec: ChainSpec,
    /// Base directory; the database is at `<base>/chains/<id>/db`.
    pub base_path: PathBuf,
    /// Storage backend.
    pub storage: Storage,
    /// RPC listen address; `None` disables RPC.
    pub rpc_addr: Option<SocketAddr>,
    /// Unsafe-method policy.
    pub rpc_methods: RpcMethods,
    /// RPC limits.
    pub rpc_limits: RpcLimits,
    /// Prometheus listen address; `None` disables metrics serving.
    pub prometheus_addr: Option<SocketAddr>,
    /// Mine, paying rewards to this account.
    pub mine: Option<AccountId>,
    /// Mempool limits.
    pub pool_limits: PoolLimits,
    /// Peer-to-peer networking; `None` runs the node alone.
    pub network: Option<NetworkConfig>,
    /// How much state history to keep; `None` keeps the database's own
    /// mode (pruning for a new one).
    pub state_pruning: Option<crate::chain::StatePruning>,
}

/// Why the node did not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Chain spec's genesis is invalid.
    #[error("the chain spec's genesis is invalid: {0}")]
    Genesis(String),
    /// Storage failed to open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener could not bind.
    #[error(
        "could not listen for {what} on {addr}: {source}; pick another port or stop the process using it"
    )]
    Bind {
        /// RPC or metrics.
        what: &'static str,
        /// Address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The network could not start.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The miner thread could not start.
    #[error("could not start the miner thread: {0}")]
    Miner(std::io::Error),
    /// The database prunes state and an archive node was asked for.
    #[error(
        "the database at {path} prunes old states (it was run with --state-pruning window), so it cannot become an archive node: its older states are gone; purge it (`cachecash purge-chain`) and resync with --state-pruning archive"
    )]
    NotAnArchive {
        /// The base path.
        path: String,
    },
    /// A module failed to start.
    #[error("module {name} failed to start: {message}")]
    Module {
        /// Module name.
        name: &'static str,
        /// Why.
        message: String,
    },
}

impl From<GenesisError> for NodeError {
    fn from(e: GenesisError) -> Self {
        NodeError::Genesis(e.to_string())
    }
}

/// What a hosted module gets from the node.
#[derive(Debug, Clone)]
pub struct ModuleContext {
    /// The ledger.
    pub chain: Arc<Chain>,
    /// The transaction pool.
    pub pool: Arc<Mempool>,
    /// The network, when the node runs one.
    pub network: Option<NetworkHandle>,
    /// Where the CDN roles publish their state for `cdn_*` RPC.
    pub cdn: Arc<crate::cdn::rpc::CdnRegistry>,
    /// The bound JSON-RPC address, when the node serves RPC.
    pub rpc_addr: Option<SocketAddr>,
}

impl ModuleContext {
    /// The async ledger interface of modules.
    pub fn ledger(&self) -> Arc<dyn crate::ledger::LedgerClient> {
        Arc::new(crate::ledger::ChainLedger::new(
            self.chain.clone(),
            self.pool.clone(),
        ))
    }

    /// The network, or the error naming `module` that needs it.
    pub fn network_for(&self, module: &'static str) -> Result<NetworkHandle, ModuleError> {
        self.network
            .clone()
            .ok_or(ModuleError::NeedsNetwork { module })
    }

    /// Registers a libp2p stream protocol of the module: `name` (such as
    /// `cdn/cache/1`) is namespaced by the chain's genesis, and inbound
    /// streams for it arrive on the returned receiver. No edit of the
    /// node's shared network behaviour is needed; a protocol can be
    /// registered once per node.
    pub fn register_protocol(
        &self,
        module: &'static str,
        name: &str,
    ) -> Result<(libp2p::StreamProtocol, libp2p_stream::IncomingStreams), ModuleError> {
        let protocol = crate::network::protocol::protocol_name(&self.chain.genesis_hash(), name);
        self.register_stream_protocol(module, protocol)
    }

    /// [`ModuleContext::register_protocol`] for a full protocol name.
    pub fn register_stream_protocol(
        &self,
        module: &'static str,
        protocol: libp2p::StreamProtocol,
    ) -> Result<(libp2p::StreamProtocol, libp2p_stream::IncomingStreams), ModuleError> {
        let incoming = self
            .network_for(module)?
            .stream_control()
            .accept(protocol.clone())
            .map_err(|_| ModuleError::ProtocolInUse {
                protocol: protocol.to_string(),
            })?;
        Ok((protocol, incoming))
    }
}

/// Why a module could not start. The node stops the modules started
/// before it and reports this.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The module needs peer-to-peer networking, which is off.
    #[error("{module} needs peer-to-peer networking; do not run it with networking off")]
    NeedsNetwork {
        /// The module.
        module: &'static str,
    },
    /// Another module (or a second instance) serves the protocol already.
    #[error(
        "protocol {protocol} is already served on this node; run one instance of the role per node"
    )]
    ProtocolInUse {
        /// The protocol name.
        protocol: String,
    },
    /// Any other reason, said in full.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for ModuleError {
    fn from(message: String) -> Self {
        ModuleError::Failed(message)
    }
}

impl From<&str> for ModuleError {
    fn from(message: &str) -> Self {
        ModuleError::Failed(message.to_string())
    }
}

/// A service hosted by the node (the CDN roles, the gateway, the
/// dashboard).
///
/// Lifecycle: the node awaits [`NodeModule::start`] of each module in
/// order once its ledger, network and RPC run; a module starts its tasks
/// there and returns. At shutdown the node awaits [`NodeModule::stop`] in
/// reverse order, before the network and the RPC server go down; a module
/// stops its tasks, waits for them to end ([`stop_tasks`]) and flushes what
/// it holds.
#[async_trait::async_trait]
pub trait NodeModule: Send + std::fmt::Debug {
    /// Name for logs.
    fn name(&self) -> &'static str;
    /// Starts the module's tasks.
    async fn start(&mut self, ctx: &ModuleContext) -> Result<(), ModuleError>;
    /// Stops them and waits until they are gone.
    async fn stop(&mut self);
}

/// Aborts `tasks` and waits until each has ended, so whatever they hold
/// (files, databases, connections) is released when this returns.
pub async fn stop_tasks(tasks: impl IntoIterator<Item = tokio::task::JoinHandle<()>>) {
    let tasks: Vec<_> = tasks.into_iter().collect();
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Database directory for `spec` under `base`.
pub fn database_path(base: &Path, spec: &ChainSpec) -> PathBuf {
    base.join("chains").join(&spec.id).join("db")
}

/// Opens the store for `spec` under `base`.
pub fn open_store(
    base: &Path,
    spec: &ChainSpec,
    storage: &Storage,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match storage {
        Storage::Memory => Arc::new(MemoryStore::new()),
        Storage::Rocks => {
            let path = database_path(base, spec);
            std::fs::create_dir_all(&path).map_err(|e| StoreError::Backend {
                path: path.display().to_string(),
                message: format!("cannot create the database directory: {e}"),
            })?;
            Arc::new(RocksStore::open(&path)?)
        }
    })
}

/// Opens the chain (storage + genesis) without starting services; used by
/// maintenance commands (revert, export, import).
pub fn open_chain(
    base: &Path,
    spec: &ChainSpec,
    storage: &Storage,
    metrics: Arc<Metrics>,
) -> Result<Arc<Chain>, NodeError> {
    open_chain_with(base, spec, storage, metrics, None)
}

/// [`open_chain`] with a state pruning mode. The mode is recorded in the
/// database: `None` keeps the recorded one (maintenance commands never
/// change it), an archive database may switch to pruning, and a pruning
/// one cannot become an archive (its older states are gone).
pub fn open_chain_with(
    base: &Path,
    spec: &ChainSpec,
    storage: &Storage,
    metrics: Arc<Metrics>,
    state_pruning: Option<crate::chain::StatePruning>,
) -> Result<Arc<Chain>, NodeError> {
    use crate::chain::StatePruning;
    let genesis = spec
        .build_genesis()
        .map_err(|e| NodeError::Genesis(e.to_string()))?;
    let store = open_store(base, spec, storage)?;
    let recorded = store.archive_mode()?;
    let mode = match (recorded, state_pruning) {
        (Some(false), Some(StatePruning::Archive)) => {
            return Err(NodeError::NotAnArchive {
                path: base.display().to_string(),
            });
        }
        (_, Some(mode)) => mode,
        (Some(true), None) => StatePruning::Archive,
        (Some(false) | None, None) => StatePruning::Window,
    };
    let archive = mode == StatePruning::Archive;
    if recorded != Some(archive) {
        if recorded == Some(true) {
            tracing::info!(target: "cachecash::storage", "this archive database starts pruning old states now");
        }
        store.set_archive_mode(archive)?;
    }
    if store.memory().is_some() {
        let weak = Arc::downgrade(&store);
        metrics.memory().add_db(
            "chain",
            Arc::new(move || weak.upgrade().and_then(|s| s.memory()).unwrap_or_default()),
        );
    }
    let chain = Chain::open(store, spec.consensus_params(), &genesis, metrics)?
        .with_max_reorg_depth(spec.max_reorg_depth)
        .with_state_pruning(mode);
    // A crash in the middle of a reorganisation left both branches in the
    // block index: finish the switch to the heavier one. A branch that
    // turns out invalid is marked so and the node stays where it is.
    match chain.resume_best_tip() {
        Ok(Some(head)) => {
            tracing::info!(target: "cachecash::import", number = head.number, hash = %head.hash, "resumed an interrupted reorganisation")
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(target: "cachecash::import", "could not resume the interrupted reorganisation: {e}")
        }
    }
    Ok(Arc::new(chain))
}

/// Tasks aborted when dropped, unless taken out first.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    chain: Arc<Chain>,
    pool: Arc<Mempool>,
    rpc: Option<(SocketAddr, jsonrpsee::server::ServerHandle)>,
    prometheus: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    miner: Option<Miner>,
    network: Option<NetworkHandle>,
    network_tasks: Vec<tokio::task::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    modules: Vec<Box<dyn NodeModule>>,
}

impl Node {
    /// Starts every service. Must run inside a tokio runtime.
    pub async fn start(
        config: NodeConfig,
        modules: Vec<Box<dyn NodeModule>>,
    ) -> Result<Node, NodeError> {
        let metrics = Arc::new(Metrics::new());
        let chain = open_chain_with(
            &config.base_path,
            &config.spec,
            &config.storage,
            metrics.clone(),
            config.state_pruning,
        )?;
        let pool = Arc::new(Mempool::new(chain.clone(), config.pool_limits));
        let tasks = vec![tokio::spawn(crate::mempool::maintain(
            pool.clone(),
            chain.subscribe(),
        ))];

        let (network, network_tasks) = match config.network {
            None => (None, Vec::new()),
            Some(net) => {
                let (handle, tasks) =
                    crate::network::start(net, chain.clone(), pool.clone()).await?;
                (Some(handle), tasks)
            }
        };
        // If a later step fails, the network stops with the rest (it holds
        // the port and the chain, and with it the database lock).
        let mut network_tasks = AbortOnDrop(network_tasks);
        let mut tasks = AbortOnDrop(tasks);

        let cdn = Arc::new(crate::cdn::rpc::CdnRegistry::default());
        let rpc = match config.rpc_addr {
            None => None,
            Some(addr) => {
                let ctx = RpcContext {
                    chain: chain.clone(),
                    pool: pool.clone(),
                    info: NodeInfo {
                        chain_name: config.spec.name.clone(),
                        chain_type: config.spec.chain_type.to_string(),
                        properties: config.spec.properties_json(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                    },
                    allow_unsafe: config.rpc_methods.allows_unsafe(&addr),
                    network: network.clone(),
                };
                let (bound, handle) = rpc::start(addr, ctx, config.rpc_limits.clone(), {
                    use crate::cdn::rpc::CdnApiServer;
                    use crate::cdn::settle_rpc::{CacheApiServer, PublisherApiServer};
                    let mut m: jsonrpsee::Methods =
                        crate::cdn::rpc::CdnRpc::new(cdn.clone()).into_rpc().into();
                    let settle = crate::cdn::settle_rpc::SettleRpc::new(
                        cdn.clone(),
                        Arc::new(crate::cdn::ledger::ChainLedger::new(
                            chain.clone(),
                            pool.clone(),
                        )),
                    )
                    .allow_unsafe(config.rpc_methods.allows_unsafe(&addr));
                    m.merge(CacheApiServer::into_rpc(settle.clone()))
                        .map_err(|e| NodeError::Module {
                            name: "rpc",
                            message: e.to_string(),
                        })?;
                    m.merge(PublisherApiServer::into_rpc(settle)).map_err(|e| {
                        NodeError::Module {
                            name: "rpc",
                            message: e.to_string(),
                        }
                    })?;
                    m
                })
                .await
                .map_err(|source| NodeError::Bind {
                    what: "JSON-RPC",
                    addr,
                    source,
                })?;
                Some((bound, handle))
            }
        };
        let prometheus =
            match config.prometheus_addr {
                None => None,
                Some(addr) => Some(metrics::serve(metrics.clone(), addr).await.map_err(
                    |source| NodeError::Bind {
                        what: "Prometheus metrics",
                        addr,
                        source,
                    },
                )?),
            };
        let ctx = ModuleContext {
            chain: chain.clone(),
            pool: pool.clone(),
            network: network.clone(),
            cdn,
            rpc_addr: rpc.as_ref().map(|(bound, _)| *bound),
        };
        let mut started: Vec<Box<dyn NodeModule>> = Vec::new();
        for mut m in modules {
            if let Err(e) = m.start(&ctx).await {
                for s in started.iter_mut().rev() {
                    s.stop().await;
                }
                return Err(NodeError::Module {
                    name: m.name(),
                    message: e.to_string(),
                });
            }
            started.push(m);
        }
        let miner = match config.mine {
            None => None,
            Some(account) => {
                let syncing = network
                    .as_ref()
                    .map(|n| n.syncing_flag())
                    .unwrap_or_default();
                Some(
                    Miner::start(chain.clone(), pool.clone(), account, syncing)
                        .map_err(NodeError::Miner)?,
                )
            }
        };
        Ok(Node {
            chain,
            pool,
            rpc,
            prometheus,
            miner,
            network,
            network_tasks: std::mem::take(&mut network_tasks.0),
            tasks: std::mem::take(&mut tasks.0),
            modules: started,
        })
    }

    /// The chain.
    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    /// The pool.
    pub fn pool(&self) -> &Arc<Mempool> {
        &self.pool
    }

    /// The network handle, when networking is on.
    pub fn network(&self) -> Option<&NetworkHandle> {
        self.network.as_ref()
    }

    /// The bound RPC address.
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.rpc.as_ref().map(|(a, _)| *a)
    }

    /// The bound metrics address.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus.as_ref().map(|(a, _)| *a)
    }

    /// Stops every service, miner first, and waits for the RPC server.
    pub async fn stop(mut self) {
        if let Some(mut m) = self.miner.take() {
            tokio::task::block_in_place(|| m.stop());
        }
        for m in self.modules.iter_mut().rev() {
            m.stop().await;
        }
        // The swarm task goes first: no more blocks arrive while the rest
        // winds down, and its connections close.
        self.network = None;
        for t in self.network_tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        if let Some((_, handle)) = self.rpc.take() {
            let _ = handle.stop();
            handle.stopped().await;
        }
        if let Some((_, h)) = self.prometheus.take() {
            h.abort();
            let _ = h.await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        // RPC connections and subscriptions wind down on their own tasks and
        // hold the chain until they do. Wait for them (bounded), so the
        // database is closed — and its lock released — when `stop` returns.
        let Node { chain, pool, .. } = self;
        drop(pool);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&chain) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        if Arc::strong_count(&chain) > 1 {
            tracing::warn!(
                "the chain is still referenced after shutdown; the database closes when the last user exits"
            );
        }
    }
}

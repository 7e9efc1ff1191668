//! Hosted modules: a module registers its own libp2p protocol through its
//! context (no edit of the node's network behaviour) and serves it to
//! another node; the node awaits each module's stop, which waits for the
//! module's tasks to end; a module that cannot start fails the node's
//! start with its reason and stops the modules started before it.

use cachecash_node::service::{ModuleContext, ModuleError, NodeError, stop_tasks};
use cachecash_node::{Node, NodeModule};
use cachecash_tests::{fast_dev_spec, start_networked, start_with_modules};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const ECHO: &str = "test/echo/1";

/// Echoes one 5-byte message per stream on its own protocol.
#[derive(Debug, Default)]
struct EchoModule {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Set when the serving task has ended (dropped).
    ended: Arc<AtomicBool>,
}

/// Sets its flag when dropped: the task holding it has ended.
struct EndFlag(Arc<AtomicBool>);

impl Drop for EndFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl NodeModule for EchoModule {
    fn name(&self) -> &'static str {
        "echo"
    }

    async fn start(&mut self, ctx: &ModuleContext) -> Result<(), ModuleError> {
        let (_, mut incoming) = ctx.register_protocol("echo", ECHO)?;
        let flag = EndFlag(self.ended.clone());
        self.tasks.push(tokio::spawn(async move {
            let _flag = flag;
            while let Some((_, mut stream)) = incoming.next().await {
                let mut buf = [0u8; 5];
                if stream.read_exact(&mut buf).await.is_ok() {
                    let _ = stream.write_all(&buf).await;
                    let _ = stream.close().await;
                }
            }
        }));
        Ok(())
    }

    async fn stop(&mut self) {
        stop_tasks(self.tasks.drain(..)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_serves_its_own_protocol_and_its_tasks_end_when_the_node_stops() {
    let spec = fast_dev_spec(200);
    let dir = tempfile::tempdir().unwrap();
    let echo = EchoModule::default();
    let ended = echo.ended.clone();
    let server = start_with_modules(
        &spec,
        &dir.path().join("a"),
        None,
        vec![],
        vec![Box::new(echo)],
    )
    .await;
    let server_peer = server.network().unwrap().local_peer_id();
    let client = start_networked(
        &spec,
        &dir.path().join("b"),
        cachecash_node::Storage::Memory,
        None,
        vec![cachecash_tests::p2p_addr(&server)],
    )
    .await;
    let protocol =
        cachecash_node::network::protocol::protocol_name(&spec.genesis_hash().unwrap(), ECHO);
    let mut control = client.network().unwrap().stream_control();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let echoed = loop {
        match control.open_stream(server_peer, protocol.clone()).await {
            Ok(mut s) => {
                s.write_all(b"hello").await.unwrap();
                let mut back = Vec::new();
                s.read_to_end(&mut back).await.unwrap();
                break back;
            }
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no echo stream within 20 s: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(echoed, b"hello");
    assert!(!ended.load(Ordering::SeqCst));
    server.stop().await;
    assert!(
        ended.load(Ordering::SeqCst),
        "the node's stop returned before the module's task ended"
    );
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_cannot_start_fails_the_node_and_stops_the_modules_before_it() {
    let spec = fast_dev_spec(200);
    let dir = tempfile::tempdir().unwrap();
    let first = EchoModule::default();
    let first_ended = first.ended.clone();
    // The second instance asks for the protocol the first one holds.
    let modules: Vec<Box<dyn NodeModule>> = vec![Box::new(first), Box::new(EchoModule::default())];
    let mut net = cachecash_node::network::NetworkConfig::loopback(
        dir.path().join("network").join("secret_ed25519"),
    );
    net.bootnodes = vec![];
    let config = cachecash_node::NodeConfig {
        spec: spec.clone(),
        base_path: dir.path().to_path_buf(),
        storage: cachecash_node::Storage::Memory,
        rpc_addr: None,
        rpc_methods: Default::default(),
        rpc_limits: Default::default(),
        prometheus_addr: None,
        mine: None,
        pool_limits: Default::default(),
        network: Some(net),
        state_pruning: Default::default(),
    };
    match Node::start(config, modules).await {
        Err(e @ NodeError::Module { name: "echo", .. }) => {
            let text = e.to_string();
            assert!(text.contains("already served"), "{text}");
            assert!(text.contains(ECHO), "{text}");
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a node with two modules on one protocol started"),
    }
    assert!(
        first_ended.load(Ordering::SeqCst),
        "the module started before the failing one was not stopped"
    );
}

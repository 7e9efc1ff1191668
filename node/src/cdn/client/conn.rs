//! The client's links to caches: one task and one long-lived chunk stream
//! per cache (or a small fixed pool of them, for a gateway whose many
//! sessions share its links), fed by a bounded queue of jobs. A job sends the request,
//! reads the doubly-encrypted chunk, hands over the L1 and reads the outer
//! key, all within one deadline. A failed link is dropped and reopened for
//! the next job.

use crate::cdn::framing::{FrameError, read_body, read_msg, write_msg};
use crate::network::NetworkHandle;
use cachecash_cdn::bundle::CacheRequest;
use cachecash_cdn::keys::SessionKey;
use cachecash_cdn::messages::{ChunkReply, ChunkRequest, Fault, text, wire_text};
use cachecash_runtime::AccountId;
use cachecash_runtime::microcash::SignedTicket;
use libp2p::{PeerId, Stream, StreamProtocol};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Jobs queued per cache.
const QUEUE: usize = 16;

/// A fetched chunk, still under the inner layer once the outer key is applied.
#[derive(Debug)]
pub struct Fetched {
    /// The doubly-encrypted bytes.
    pub data: Vec<u8>,
    /// The outer session key the cache released.
    pub outer: SessionKey,
    /// Time to the first byte.
    pub ttfb: Duration,
    /// Time to the last byte.
    pub transfer: Duration,
}

/// One chunk to fetch.
#[derive(Debug)]
pub struct Job {
    /// The request for the cache.
    pub request: CacheRequest,
    /// The L1 handed over after the data.
    pub l1: SignedTicket,
    /// Expected size.
    pub size: u32,
    /// Where the result goes.
    pub reply: oneshot::Sender<Result<Fetched, Fault>>,
}

/// The client's cache links.
#[derive(Debug)]
pub struct Links {
    network: NetworkHandle,
    protocol: StreamProtocol,
    deadline: Duration,
    per_cache: usize,
    next: std::sync::atomic::AtomicUsize,
    links: parking_lot::Mutex<HashMap<(AccountId, usize), mpsc::Sender<Job>>>,
}

impl Links {
    /// Links over `network`, each job bounded by `deadline`.
    pub fn new(network: NetworkHandle, protocol: StreamProtocol, deadline: Duration) -> Links {
        Links::with_streams(network, protocol, deadline, 1)
    }

    /// Links with up to `per_cache` streams to each cache, used in turn:
    /// for a node whose concurrent sessions share one set of links (the
    /// gateway), within a cache's per-peer stream limit.
    pub fn with_streams(
        network: NetworkHandle,
        protocol: StreamProtocol,
        deadline: Duration,
        per_cache: usize,
    ) -> Links {
        Links {
            network,
            protocol,
            deadline,
            per_cache: per_cache.max(1),
            next: Default::default(),
            links: Default::default(),
        }
    }

    /// Queues a job for `cache`; the result arrives on the job's reply.
    pub async fn submit(&self, cache: AccountId, job: Job) {
        let Some(peer) = crate::cdn::peer_of(&cache) else {
            let _ = job.reply.send(Err(Fault::Refused(wire_text(
                "the cache key is not a peer key",
            ))));
            return;
        };
        let slot = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.per_cache;
        let tx = {
            let mut links = self.links.lock();
            match links.get(&(cache, slot)) {
                Some(tx) if !tx.is_closed() => tx.clone(),
                _ => {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(link(
                        self.network.clone(),
                        self.protocol.clone(),
                        peer,
                        self.deadline,
                        rx,
                    ));
                    links.insert((cache, slot), tx.clone());
                    tx
                }
            }
        };
        if let Err(e) = tx.send(job).await {
            let _ = e.0.reply.send(Err(Fault::Stalled));
        }
    }
}

async fn link(
    network: NetworkHandle,
    protocol: StreamProtocol,
    peer: PeerId,
    deadline: Duration,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut stream: Option<Stream> = None;
    while let Some(job) = jobs.recv().await {
        let started = Instant::now();
        let result = tokio::time::timeout(deadline, async {
            // A stream dropped by the cache's busy accept queue fails at
            // once: retry such a fresh stream a few times.
            let mut attempt = 0u32;
            loop {
                let fresh = stream.is_none();
                let r = exchange(&network, &protocol, peer, &mut stream, &job, started).await;
                match r {
                    Err(Fault::Stalled) if fresh && attempt < crate::cdn::STREAM_RETRIES => {
                        attempt += 1;
                        stream = None;
                        tokio::time::sleep(crate::cdn::retry_backoff(attempt)).await;
                    }
                    other => return other,
                }
            }
        })
        .await;
        let result = match result {
            Ok(Ok(f)) => Ok(f),
            Ok(Err(fault)) => Err(fault),
            Err(_) => Err(Fault::Stalled),
        };
        if result.is_err() {
            // The link may be out of step (a body unread); start afresh.
            stream = None;
        }
        let _ = job.reply.send(result);
    }
}

async fn exchange(
    network: &NetworkHandle,
    protocol: &StreamProtocol,
    peer: PeerId,
    slot: &mut Option<Stream>,
    job: &Job,
    started: Instant,
) -> Result<Fetched, Fault> {
    // Reads and writes are bounded by the job deadline around this call.
    let t = Duration::from_secs(3600);
    if slot.is_none() {
        let mut control = network.stream_control();
        let s = control
            .open_stream(peer, protocol.clone())
            .await
            .map_err(|_| Fault::Stalled)?;
        *slot = Some(s);
    }
    let Some(stream) = slot.as_mut() else {
        return Err(Fault::Stalled);
    };
    let stalled = |_: FrameError| Fault::Stalled;
    write_msg(stream, &ChunkRequest::Get(Box::new(job.request.clone())), t)
        .await
        .map_err(stalled)?;
    let len = match read_msg::<_, ChunkReply>(stream, t)
        .await
        .map_err(stalled)?
    {
        ChunkReply::Data { len } => len,
        ChunkReply::Refused(r) => return Err(Fault::Refused(r)),
        ChunkReply::OuterKey(_) => {
            return Err(Fault::Refused(wire_text("answered a Get with a key")));
        }
    };
    if len != job.size {
        // Out of step with the cache: drop the link.
        return Err(Fault::Refused(wire_text(&format!(
            "announced {len} bytes for a chunk of {}",
            job.size
        ))));
    }
    let ttfb = started.elapsed();
    let mut data = vec![0u8; len as usize];
    read_body(stream, &mut data, t).await.map_err(stalled)?;
    let transfer = started.elapsed();
    write_msg(stream, &ChunkRequest::L1(Box::new(job.l1.clone())), t)
        .await
        .map_err(stalled)?;
    match read_msg::<_, ChunkReply>(stream, t)
        .await
        .map_err(stalled)?
    {
        ChunkReply::OuterKey(outer) => Ok(Fetched {
            data,
            outer,
            ttfb,
            transfer,
        }),
        ChunkReply::Refused(r) => {
            tracing::debug!(target: "cachecash::cdn", %peer, "L1 refused: {}", text(&r));
            Err(Fault::Refused(r))
        }
        ChunkReply::Data { .. } => Err(Fault::Refused(wire_text("answered an L1 with data"))),
    }
}

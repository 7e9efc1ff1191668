//! Relaying paid bundles to their caches: each L2 claim and secret goes to
//! every cache of the bundle, which needs them to prove (and later claim)
//! its ticket.
//!
//! # Design
//!
//! One bounded queue and one worker per cache; the worker keeps one
//! long-lived stream of the cache protocol and sends the relays on it one
//! after another (request, reply), reopening it after a failure.
//!
//! Why not a stream per relay, in its own task, as before: under load (150
//! clients, ~800 relays/s) the per-relay streams exceeded the cache's
//! per-peer stream limit, the cache dropped them, and the retrying tasks
//! piled up without bound: the publisher grew by 2–3 MiB/s and the caches
//! held tens of thousands of unproven tickets. With a queue per cache the
//! publisher's memory for relays is bounded by `QUEUE` per cache, and a
//! session that relays faster than a cache accepts waits for room
//! (backpressure on the client's next bundle) instead of piling up work.
//!
//! A relay that still fails after `ATTEMPTS` link attempts is dropped and
//! counted (`cdn_publisher_relays_failed`): the cache then holds that
//! ticket unproven, and the client's own L1 still shows the chunk was
//! delivered.

use super::Publisher;
use crate::cdn::framing::{read_msg, write_msg};
use cachecash_cdn::messages::{ControlRequest, OfferReply, SecretRelay, text};
use cachecash_runtime::AccountId;
use libp2p::Stream;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// Relays waiting per cache.
pub const QUEUE: usize = 256;
/// Link attempts per relay.
const ATTEMPTS: u32 = 4;

/// The per-cache relay queues.
#[derive(Debug, Default)]
pub struct Relays {
    queues: parking_lot::Mutex<HashMap<AccountId, mpsc::Sender<SecretRelay>>>,
}

impl Relays {
    /// Queues `msg` for `cache`, waiting while its queue is full. Starts the
    /// cache's worker on first use (and again if it ended).
    pub async fn send(&self, p: &Publisher, cache: AccountId, msg: SecretRelay) {
        let mut msg = msg;
        // Twice: a worker that just idled out has closed its queue.
        for _ in 0..2 {
            let tx = self.queue(p, cache);
            match tx.send(msg).await {
                Ok(()) => return,
                Err(mpsc::error::SendError(m)) => msg = m,
            }
        }
        p.state.counters.relays_failed.inc();
    }

    fn queue(&self, p: &Publisher, cache: AccountId) -> mpsc::Sender<SecretRelay> {
        let mut q = self.queues.lock();
        match q.get(&cache) {
            Some(tx) if !tx.is_closed() => tx.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(worker(p.clone(), cache, rx));
                q.insert(cache, tx.clone());
                tx
            }
        }
    }

    /// Relays queued now, over every cache.
    pub fn backlog(&self) -> usize {
        self.queues
            .lock()
            .values()
            .map(|tx| QUEUE - tx.capacity())
            .sum()
    }
}

/// Sends one cache's relays in order over a long-lived stream.
async fn worker(p: Publisher, cache: AccountId, mut rx: mpsc::Receiver<SecretRelay>) {
    let mut stream: Option<Stream> = None;
    // Idle workers end after a while; the next relay starts a new one.
    let idle = Duration::from_secs(60);
    loop {
        let msg = match tokio::time::timeout(idle, rx.recv()).await {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => return,
        };
        let mut attempt = 0u32;
        loop {
            match relay_on(&p, cache, &mut stream, &msg).await {
                Ok(()) => {
                    p.state.counters.relayed.inc();
                    break;
                }
                Err(Failure::Refused(e)) => {
                    tracing::debug!(target: "cachecash::cdn", %cache, "relay refused: {e}");
                    p.state.counters.relays_failed.inc();
                    break;
                }
                Err(Failure::Link(e)) => {
                    stream = None;
                    attempt += 1;
                    if attempt >= ATTEMPTS {
                        tracing::debug!(target: "cachecash::cdn", %cache, "relay failed: {e}");
                        p.state.counters.relays_failed.inc();
                        break;
                    }
                    tokio::time::sleep(crate::cdn::retry_backoff(attempt + 1)).await;
                }
            }
        }
    }
}

enum Failure {
    Link(String),
    Refused(String),
}

async fn relay_on(
    p: &Publisher,
    cache: AccountId,
    stream: &mut Option<Stream>,
    msg: &SecretRelay,
) -> Result<(), Failure> {
    let t = p.state.config.io_timeout;
    let link = |e: String| Failure::Link(e);
    if stream.is_none() {
        let peer = crate::cdn::peer_of(&cache)
            .ok_or_else(|| Failure::Refused("cache key is not a peer key".into()))?;
        let mut control = p.network.stream_control();
        let s = tokio::time::timeout(
            t,
            control.open_stream(peer, crate::cdn::cache_protocol(&p.ledger.genesis())),
        )
        .await
        .map_err(|_| link("dial timed out".into()))?
        .map_err(|e| link(e.to_string()))?;
        *stream = Some(s);
    }
    let s = stream.as_mut().ok_or_else(|| link("no stream".into()))?;
    write_msg(s, &ControlRequest::Relay(msg.clone()), t)
        .await
        .map_err(|e| link(e.to_string()))?;
    match read_msg::<_, OfferReply>(s, t)
        .await
        .map_err(|e| link(e.to_string()))?
    {
        OfferReply::Accepted => Ok(()),
        // A cache's rate limit closes the stream: that relay is retried
        // after a back-off on a new one, not dropped.
        OfferReply::Refused(r) if text(&r).starts_with(crate::cdn::limits::RATE_LIMITED) => {
            Err(Failure::Link(text(&r)))
        }
        OfferReply::Refused(r) => Err(Failure::Refused(text(&r))),
    }
}

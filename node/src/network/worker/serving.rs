//! Serving the sync protocol: requests are answered from storage on the
//! blocking pool (status, headers after a locator, blocks by hash, within
//! the response bounds), several at once, and every peer has an upload
//! budget.
//!
//! # Fair upload
//!
//! At most [`PARALLEL_SERVES`] requests are answered at once, and at most
//! [`PARALLEL_SERVES_PER_PEER`] of them for one peer, so a peer asking for
//! large block batches cannot hold every slot. Each answer's encoded size
//! is charged to its peer's byte bucket ([`SERVE_BYTES_PER_SECOND`],
//! bursts of twice that); while the bucket is in debt the peer's requests
//! are refused with the time to wait, and the other peers keep being
//! served. An honest syncing peer downloads from several peers and
//! retries refused requests after a pause, so the budget slows one peer
//! without stalling anyone.

use super::*;
use tokio::task::JoinSet;

/// Requests answered at once.
pub(super) const PARALLEL_SERVES: usize = 8;
/// Requests of one peer answered at once (an honest syncing peer has at
/// most two block requests, one header request and one status request
/// out at a time).
pub(super) const PARALLEL_SERVES_PER_PEER: u32 = 4;
/// Bytes of answers per second a peer may take, on average.
pub(super) const SERVE_BYTES_PER_SECOND: u64 = 16 * 1024 * 1024;
/// Peers whose serving state is kept before idle ones are forgotten.
const MAX_TRACKED_PEERS: usize = 1024;

/// One peer's upload budget: a token bucket in bytes that may go into
/// debt by one answer (the size is known only once it is built).
#[derive(Debug)]
pub(super) struct ByteBudget {
    tokens: f64,
    rate: f64,
    last: Instant,
    in_flight: u32,
}

impl ByteBudget {
    pub(super) fn new(bytes_per_second: u64, now: Instant) -> ByteBudget {
        let rate = bytes_per_second as f64;
        ByteBudget {
            tokens: rate * 2.0,
            rate,
            last: now,
            in_flight: 0,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate * 2.0);
        self.last = now;
    }

    /// `Ok` if a request may start now, or how long to wait.
    pub(super) fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 0.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(-self.tokens / self.rate))
        }
    }

    /// Charges an answer of `bytes`.
    pub(super) fn charge(&mut self, bytes: usize, now: Instant) {
        self.refill(now);
        self.tokens -= bytes as f64;
    }

    fn idle(&self) -> bool {
        self.in_flight == 0 && self.tokens >= self.rate * 2.0
    }
}

/// The encoded size of an answer, as charged to the budget.
fn answer_bytes(response: &SyncResponse) -> usize {
    match response {
        SyncResponse::Blocks(blocks) => blocks.iter().map(Vec::len).sum(),
        other => other.encoded_size(),
    }
}

/// Answers sync requests from storage on the blocking pool, several at
/// once, within each peer's budget (see the module docs). Generic over the
/// response channel so tests can drive it without a swarm.
pub(super) async fn serve<C: Send + 'static>(
    chain: Arc<Chain>,
    mut requests: mpsc::Receiver<(PeerId, C, SyncRequest)>,
    responses: mpsc::Sender<(C, SyncResponse)>,
    bytes_per_second: u64,
) {
    let mut running: JoinSet<(PeerId, C, SyncResponse)> = JoinSet::new();
    let mut peers: HashMap<PeerId, ByteBudget> = HashMap::new();
    loop {
        tokio::select! {
            Some(done) = running.join_next(), if !running.is_empty() => {
                let Ok((peer, channel, response)) = done else {
                    // A panicked answer: its channel is gone with it, and
                    // the requester times out.
                    continue;
                };
                if let Some(budget) = peers.get_mut(&peer) {
                    budget.in_flight = budget.in_flight.saturating_sub(1);
                    budget.charge(answer_bytes(&response), Instant::now());
                }
                tracing::trace!(target: "cachecash::network", %peer, "served a sync request");
                if responses.send((channel, response)).await.is_err() {
                    break;
                }
            }
            request = requests.recv(), if running.len() < PARALLEL_SERVES => {
                let Some((peer, channel, request)) = request else {
                    break;
                };
                let now = Instant::now();
                if peers.len() >= MAX_TRACKED_PEERS {
                    peers.retain(|_, b| {
                        b.refill(now);
                        !b.idle()
                    });
                }
                let budget = peers
                    .entry(peer)
                    .or_insert_with(|| ByteBudget::new(bytes_per_second, now));
                let refusal = if budget.in_flight >= PARALLEL_SERVES_PER_PEER {
                    Some(format!(
                        "busy: at most {PARALLEL_SERVES_PER_PEER} of your requests are served at once; retry when one is answered"
                    ))
                } else {
                    budget.admit(now).err().map(|wait| {
                        format!(
                            "upload budget of {} MiB/s used up; retry in {} ms",
                            bytes_per_second / (1024 * 1024),
                            wait.as_millis().max(1)
                        )
                    })
                };
                if let Some(why) = refusal {
                    if responses.send((channel, SyncResponse::Refused(why))).await.is_err() {
                        break;
                    }
                    continue;
                }
                budget.in_flight = budget.in_flight.saturating_add(1);
                let chain = chain.clone();
                running.spawn(async move {
                    let response = tokio::task::spawn_blocking(move || answer(&chain, request))
                        .await
                        .unwrap_or_else(|e| SyncResponse::Refused(format!("internal error: {e}")));
                    (peer, channel, response)
                });
            }
            else => break,
        }
    }
}

/// Our status.
pub(super) fn status(chain: &Chain) -> Status {
    let head = chain.head();
    Status {
        genesis: chain.genesis_hash(),
        best_number: head.header.number,
        best_hash: head.hash,
        total_work: head.total_work.to_big_endian(),
    }
}

/// The answer to one sync request.
pub(super) fn answer(chain: &Chain, request: SyncRequest) -> SyncResponse {
    let result: Result<SyncResponse, crate::storage::StoreError> = (|| {
        Ok(match request {
            SyncRequest::Status(_) => SyncResponse::Status(status(chain)),
            SyncRequest::Headers { locator, max } => {
                let mut start = None;
                for h in &locator {
                    if let Some(header) = chain.header(h)?
                        && chain.canonical_hash(header.number)? == Some(*h)
                    {
                        start = Some(header.number);
                        break;
                    }
                }
                let mut headers = Vec::new();
                if let Some(n) = start {
                    let max = u64::from(max.min(MAX_HEADERS));
                    let end = chain.head().header.number.min(n.saturating_add(max));
                    let mut prev = chain.canonical_hash(n)?;
                    for number in n.saturating_add(1)..=end {
                        // Stop where a concurrent reorganisation broke the
                        // sequence: the client gets a linked prefix.
                        match chain.header_by_number(number)? {
                            Some(h) if Some(h.parent_hash) == prev => {
                                prev = Some(h.hash());
                                headers.push(h);
                            }
                            _ => break,
                        }
                    }
                }
                SyncResponse::Headers(headers)
            }
            SyncRequest::Blocks { hashes } => {
                let mut blocks = Vec::new();
                let mut bytes = 0usize;
                for h in hashes.iter().take(MAX_BLOCKS as usize) {
                    let Some(block) = chain.block(h)? else {
                        break;
                    };
                    let encoded = block.encode();
                    bytes = bytes.saturating_add(encoded.len());
                    if !blocks.is_empty() && bytes > SOFT_RESPONSE_BYTES {
                        break;
                    }
                    blocks.push(encoded);
                }
                SyncResponse::Blocks(blocks)
            }
            SyncRequest::HeadersByRange { start, count } => {
                let count = u64::from(count.min(MAX_HEADERS));
                let mut headers = Vec::new();
                let mut prev: Option<Hash> = None;
                for number in start..start.saturating_add(count) {
                    match chain.header_by_number(number)? {
                        // Stop where a concurrent reorganisation broke the
                        // sequence.
                        Some(h) if prev.is_none_or(|p| p == h.parent_hash) => {
                            prev = Some(h.hash());
                            headers.push(h);
                        }
                        _ => break,
                    }
                }
                SyncResponse::Headers(headers)
            }
            SyncRequest::BlocksByRange { start, count } => {
                let count = u64::from(count.min(MAX_BLOCKS));
                let mut hashes = Vec::new();
                for number in start..start.saturating_add(count) {
                    match chain.canonical_hash(number)? {
                        Some(h) => hashes.push(h),
                        None => break,
                    }
                }
                return Ok(answer(chain, SyncRequest::Blocks { hashes }));
            }
            SyncRequest::HeadersByHash { hashes } => {
                let mut headers = Vec::new();
                for h in hashes.iter().take(MAX_BLOCKS as usize) {
                    match chain.header(h)? {
                        Some(header) => headers.push(header),
                        None => break,
                    }
                }
                SyncResponse::Headers(headers)
            }
        })
    })();
    result.unwrap_or_else(|e| SyncResponse::Refused(format!("storage error: {e}")))
}

/// Block locator from our canonical chain.
pub(super) fn locator_of(chain: &Chain) -> Vec<Hash> {
    let head = chain.head().header.number;
    protocol::locator_heights(head)
        .into_iter()
        .filter_map(|n| chain.canonical_hash(n).ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStore;

    fn chain() -> Arc<Chain> {
        let spec = cachecash_chain_spec::ChainSpec::dev();
        Arc::new(
            Chain::open(
                Arc::new(MemoryStore::new()),
                spec.consensus_params(),
                &spec.build_genesis().unwrap(),
                Arc::new(Metrics::new()),
            )
            .unwrap(),
        )
    }

    fn status_request(chain: &Chain) -> SyncRequest {
        SyncRequest::Status(status(chain))
    }

    #[test]
    fn a_budget_in_debt_refuses_until_it_has_refilled() {
        let start = Instant::now();
        let mut b = ByteBudget::new(1000, start);
        assert!(b.admit(start).is_ok());
        b.charge(2500, start);
        let wait = b.admit(start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.admit(start + Duration::from_millis(499)).is_err());
        assert!(b.admit(start + Duration::from_millis(501)).is_ok());
        // Refill stops at the burst (two seconds' worth).
        let later = start + Duration::from_secs(60);
        b.refill(later);
        assert!(b.idle());
        b.charge(2000, later);
        assert!(b.admit(later).is_ok());
        b.charge(1, later);
        assert!(b.admit(later).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_past_its_upload_budget_is_refused_while_another_is_served() {
        let chain = chain();
        let one_answer = answer_bytes(&answer(&chain, status_request(&chain)));
        // A budget of ten answers per second: bursts of twenty.
        let rate = u64::try_from(one_answer * 10).unwrap();
        let (requests_tx, requests_rx) = mpsc::channel(64);
        let (responses_tx, mut responses_rx) = mpsc::channel(64);
        let server = tokio::spawn(serve(chain.clone(), requests_rx, responses_tx, rate));
        let (greedy, honest) = (PeerId::random(), PeerId::random());
        // The greedy peer asks one request at a time, as fast as answers
        // come back, until it is refused.
        let mut served = 0u32;
        let refusal = loop {
            requests_tx
                .send((greedy, 0u32, status_request(&chain)))
                .await
                .unwrap();
            match responses_rx.recv().await.unwrap() {
                (0, SyncResponse::Status(_)) => served += 1,
                (0, SyncResponse::Refused(why)) => break why,
                other => panic!("unexpected {other:?}"),
            }
            assert!(served < 100, "the budget never ran out");
        };
        assert!(
            (20..=22).contains(&served),
            "{served} answers before the refusal"
        );
        assert!(refusal.contains("upload budget"), "{refusal}");
        assert!(refusal.contains("retry in"), "{refusal}");
        // Another peer is served at once.
        requests_tx
            .send((honest, 1u32, status_request(&chain)))
            .await
            .unwrap();
        assert!(matches!(
            responses_rx.recv().await.unwrap(),
            (1, SyncResponse::Status(_))
        ));
        drop(requests_tx);
        server.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_peer_cannot_hold_more_than_its_share_of_the_serving_slots() {
        let chain = chain();
        let (requests_tx, requests_rx) = mpsc::channel(64);
        let (responses_tx, mut responses_rx) = mpsc::channel(64);
        let server = tokio::spawn(serve(
            chain.clone(),
            requests_rx,
            responses_tx,
            u64::MAX / 4,
        ));
        let greedy = PeerId::random();
        // Many requests at once: some are refused as busy, none waits
        // behind another peer's slots, and every request gets an answer.
        let n = 32u32;
        for i in 0..n {
            requests_tx
                .send((greedy, i, status_request(&chain)))
                .await
                .unwrap();
        }
        let mut busy = 0;
        for _ in 0..n {
            if let (_, SyncResponse::Refused(why)) = responses_rx.recv().await.unwrap() {
                assert!(why.starts_with("busy"), "{why}");
                busy += 1;
            }
        }
        assert!(
            busy > 0,
            "a burst past the per-peer slots is refused in part"
        );
        drop(requests_tx);
        server.await.unwrap();
    }
}

//! The sync protocol's events and driver: status exchange, requests
//! served and answered, header rounds against the peer with the most work
//! (checked, and its claimed work held to account), body downloads spread
//! over peers, and hand-over to the importer (see [`super::super::sync`]).

use super::*;

/// A header batch verified on the blocking pool.
#[derive(Debug)]
pub(super) struct HeaderCheck {
    peer: PeerId,
    last: Header,
    full: bool,
    verified: Result<sync::VerifiedHeaders, sync::HeaderError>,
}

impl Worker {
    /// The cumulative work `peer`'s status claims, if any.
    pub(super) fn claimed_work(&self, peer: &PeerId) -> Option<U256> {
        self.peers
            .get(peer)
            .and_then(|p| p.status.as_ref())
            .map(|s| U256::from_big_endian(&s.total_work))
    }

    /// A header round that did not deliver the work `peer`'s status
    /// claimed. The first time, its status is refreshed (an honest peer's
    /// chain may have moved under the read); twice in a row, the claim was
    /// a lie and the peer is banned. Either way this round ends.
    pub(super) fn false_claim(&mut self, peer: PeerId, detail: String) {
        let times = match self.peers.get_mut(&peer) {
            Some(p) => {
                p.false_claims = p.false_claims.saturating_add(1);
                p.status = None;
                p.false_claims
            }
            None => return,
        };
        if times >= MAX_FALSE_CLAIMS {
            self.ban(peer, "claimed work not delivered", &detail);
            return;
        }
        tracing::debug!(target: "cachecash::network", %peer, "{detail}; refreshing its status");
        self.back_off(peer);
        self.request_status(peer);
    }

    pub(super) fn on_headers(&mut self, peer: PeerId, headers: Vec<Header>) {
        let Some(last) = headers.last().cloned() else {
            // Our locator ends at genesis, which every peer on this chain
            // has: no header after it means its best chain is part of ours.
            // A claim of more work than ours was false.
            if self
                .claimed_work(&peer)
                .is_some_and(|w| w > self.our_work())
            {
                self.false_claim(
                    peer,
                    "its status claims more work than ours, but it has no header beyond our chain"
                        .into(),
                );
                return;
            }
            // Its status is stale; refresh before asking again.
            self.back_off(peer);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.status = None;
            }
            self.request_status(peer);
            return;
        };
        // Verifying up to 2,000 headers (proof of work, storage reads for
        // the context) runs on the blocking pool, never on the swarm task;
        // the round waits for it.
        let full = headers.len() >= MAX_HEADERS as usize;
        self.sync.verifying_headers = Some(peer);
        let chain = self.chain.clone();
        let checks = self.header_checks.clone();
        tokio::spawn(async move {
            let verified = tokio::task::spawn_blocking(move || {
                sync::verify_headers(&chain, headers, crate::chain::now_ms())
            })
            .await
            .unwrap_or_else(|e| {
                Err(sync::HeaderError::Store(format!(
                    "header verification failed: {e}"
                )))
            });
            let _ = checks
                .send(HeaderCheck {
                    peer,
                    last,
                    full,
                    verified,
                })
                .await;
        });
    }

    /// Continues a header round once its batch is verified.
    pub(super) fn on_header_check(&mut self, check: HeaderCheck) {
        let HeaderCheck {
            peer,
            last,
            full,
            verified,
        } = check;
        if self.sync.verifying_headers != Some(peer) {
            // The round was abandoned meanwhile.
            return;
        }
        self.sync.verifying_headers = None;
        // A batch that ends at the peer's head proves its chain's work:
        // less than its status claimed means the claim was false.
        if let Ok(v) = &verified
            && v.complete
            && !full
            && let Some(claimed) = self.claimed_work(&peer)
            && v.tip_work < claimed
        {
            let detail = format!(
                "its headers end at #{} with work {}, less than the {} its status claimed",
                last.number, v.tip_work, claimed
            );
            self.false_claim(peer, detail);
            return;
        }
        if let Ok(v) = &verified
            && v.complete
            && let Some(p) = self.peers.get_mut(&peer)
            && p.status
                .as_ref()
                .is_some_and(|s| v.tip_work >= U256::from_big_endian(&s.total_work) || full)
        {
            p.false_claims = 0;
        }
        match verified.map(|v| v.new) {
            Ok(new) if new.is_empty() => {
                // All known (our locator is sparse where we forked): ask
                // again from the last one, a bounded number of times.
                if self.sync.reasks < MAX_REASKS {
                    self.sync.reasks = self.sync.reasks.saturating_add(1);
                    let mut locator = vec![last.hash()];
                    locator.extend(
                        locator_of(&self.chain)
                            .into_iter()
                            .take(protocol::MAX_LOCATOR - 1),
                    );
                    let id = self.swarm.behaviour_mut().sync.send_request(
                        &peer,
                        Incoming::Request(SyncRequest::Headers {
                            locator,
                            max: MAX_HEADERS,
                        }),
                    );
                    self.sync.headers_request = Some((id, peer));
                } else {
                    // It keeps claiming more work without showing any:
                    // leave it until its status is refreshed.
                    self.back_off(peer);
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.status = None;
                    }
                }
            }
            Ok(new) => {
                tracing::debug!(target: "cachecash::network", %peer, from = new[0].number, count = new.len(), "downloading blocks");
                if let Some(s) = self.peers.get_mut(&peer).and_then(|p| p.status.as_mut())
                    && s.best_number < last.number
                {
                    s.best_number = last.number;
                }
                self.sync.begin_bodies(&new);
            }
            Err(sync::HeaderError::Store(e)) => {
                tracing::warn!(target: "cachecash::network", "cannot check headers: {e}");
            }
            Err(e @ sync::HeaderError::InFuture { .. }) => {
                // Clock skew (ours or theirs) is not misbehaviour.
                tracing::warn!(target: "cachecash::network", %peer, "deferring sync: {e}");
                self.back_off(peer);
            }
            Err(sync::HeaderError::Unattached { .. }) => {
                // Our head moved (reorganisation) since the locator was
                // built, or the peer's chain forks below it: try later.
                tracing::debug!(target: "cachecash::network", %peer, "headers did not attach; retrying");
                self.back_off(peer);
            }
            Err(e) => self.ban(peer, "invalid headers", &e.to_string()),
        }
    }

    pub(super) fn on_blocks(
        &mut self,
        peer: PeerId,
        asked: Vec<(u64, Hash)>,
        blocks: Vec<Vec<u8>>,
    ) {
        if blocks.len() > asked.len() {
            self.sync.requeue(asked);
            self.ban(
                peer,
                "wrong sync response",
                "sent more blocks than asked for",
            );
            return;
        }
        let served = blocks.len();
        for ((number, hash), bytes) in asked.iter().zip(blocks) {
            let got = Header::decode(&mut &bytes[..]).map(|h| h.hash());
            if got.as_ref() != Ok(hash) {
                let detail = format!("sent another block for #{number}");
                self.sync.requeue(asked);
                self.ban(peer, "wrong block", &detail);
                return;
            }
            self.sync.add_ready(
                *number,
                Ready {
                    hash: *hash,
                    peer,
                    bytes,
                },
            );
        }
        if served < asked.len() {
            // A short response is either the size limit (ask again) or a
            // peer without the blocks (its chain moved): if it sent none,
            // ask others.
            if served == 0 {
                if let Some(p) = self.peers.get_mut(&peer)
                    && let Some(s) = p.status.as_mut()
                {
                    s.best_number = asked[0].0.saturating_sub(1);
                }
                self.back_off(peer);
                if self.round_peer_failed(peer) {
                    return;
                }
            }
            self.sync.requeue(asked[served..].to_vec());
        }
        if served > 0 {
            self.progressed(peer);
        }
    }

    /// The peer whose headers this round downloads would not serve their
    /// bodies (refused, or had none): abandon the round, so the next one
    /// starts from another peer while this one is backed off. Without this
    /// a peer that serves headers without end and never a body, while
    /// claiming the most work, would hold the round (and so every honest
    /// sync) for ever. True when the round was abandoned.
    fn round_peer_failed(&mut self, peer: PeerId) -> bool {
        if self.sync.round_peer != Some(peer) {
            return false;
        }
        tracing::debug!(target: "cachecash::network", %peer, "the round's header peer does not serve their bodies; abandoning the round");
        self.sync.reset();
        self.sync.round_peer = None;
        true
    }

    pub(super) fn our_work(&self) -> U256 {
        self.chain.head().total_work
    }

    /// Starts rounds, schedules body requests, feeds the importer.
    pub(super) fn drive_sync(&mut self) {
        let now = Instant::now();
        // A new round: headers from the available peer with the most work.
        if !self.sync.active() {
            let ours = self.our_work();
            let best = self
                .peers
                .iter()
                .filter(|(_, p)| p.available(now))
                .filter_map(|(id, p)| {
                    p.status
                        .as_ref()
                        .map(|s| (id, U256::from_big_endian(&s.total_work)))
                })
                .filter(|(_, w)| *w > ours)
                .max_by_key(|(_, w)| *w)
                .map(|(id, _)| *id);
            if let Some(peer) = best {
                let request = SyncRequest::Headers {
                    locator: locator_of(&self.chain),
                    max: MAX_HEADERS,
                };
                let id = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, Incoming::Request(request));
                self.sync.headers_request = Some((id, peer));
                self.sync.round_peer = Some(peer);
                self.sync.reasks = 0;
            }
            return;
        }
        // Body requests, spread over available peers whose chain reaches
        // the batch.
        while let Some(batch) = self.sync.next_batch() {
            let last = batch.last().map(|(n, _)| *n).unwrap_or(0);
            let reaches = |p: &Peer| p.status.as_ref().is_some_and(|s| s.best_number >= last);
            let peer = self
                .peers
                .iter()
                .filter(|(_, p)| reaches(p) && p.available(now))
                .map(|(id, _)| *id)
                .filter(|id| self.sync.inflight_to(id) < sync::MAX_INFLIGHT_PER_PEER)
                .min_by_key(|id| self.sync.inflight_to(id));
            let Some(peer) = peer else {
                self.sync.requeue(batch);
                if self.sync.inflight.is_empty() && !self.peers.values().any(reaches) {
                    // Nobody has the rest: abandon the round (blocks
                    // above the gap are useless without it).
                    tracing::debug!(target: "cachecash::network", "no peer has block #{last}; abandoning the sync round");
                    self.sync.reset();
                }
                break;
            };
            let hashes = batch.iter().map(|(_, h)| *h).collect();
            let id = self
                .swarm
                .behaviour_mut()
                .sync
                .send_request(&peer, Incoming::Request(SyncRequest::Blocks { hashes }));
            self.sync.inflight.insert(id, (peer, batch));
        }
        // Hand downloaded blocks to the importer, in order, a bounded
        // number of jobs at a time.
        while self.sync.import_jobs.len() < sync::MAX_IMPORT_JOBS {
            let batch = self.sync.take_importable();
            if batch.is_empty() {
                break;
            }
            let n = batch.len();
            let bytes = batch.iter().map(|r| r.bytes.len()).sum();
            match self.jobs.try_send(Job::Sync(batch)) {
                Ok(()) => self.sync.job_started(n, bytes),
                Err(job) => {
                    if let Job::Sync(batch) = *job {
                        self.sync.untake(batch);
                    }
                    break;
                }
            }
        }
    }

    pub(super) fn on_sync_event(&mut self, event: request_response::Event<Incoming, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request: Incoming::Request(request),
                    channel,
                    ..
                } => self.on_request(peer, request, channel),
                request_response::Message::Request {
                    request: Incoming::Malformed(why),
                    channel,
                    ..
                } => {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, SyncResponse::Refused(why.clone()));
                    self.ban(peer, "malformed sync request", &why);
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.on_response(peer, request_id, response),
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(target: "cachecash::network", %peer, "sync request failed: {error}");
                if matches!(error, request_response::OutboundFailure::Io(ref e) if e.kind() == std::io::ErrorKind::InvalidData)
                {
                    self.ban(peer, "malformed sync response", &error.to_string());
                }
                self.request_failed(peer, request_id);
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                // Malformed requests arrive as `Incoming::Malformed`; what
                // is left here (timeouts, closed connections, our own write
                // errors) is no proof of misbehaviour.
                tracing::debug!(target: "cachecash::network", %peer, "inbound sync request failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    pub(super) fn request_failed(&mut self, peer: PeerId, id: OutboundRequestId) {
        if let Some(reply) = self.user_requests.remove(&id) {
            let _ = reply.send(Err(format!("the request to {peer} failed")));
            return;
        }
        self.back_off(peer);
        if self.status_requests.remove(&id).is_some() {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.status_pending = false;
            }
        } else if self.sync.headers_request.is_some_and(|(rid, _)| rid == id) {
            self.sync.headers_request = None;
        } else if let Some((_, blocks)) = self.sync.inflight.remove(&id) {
            self.sync.requeue(blocks);
        }
    }

    pub(super) fn on_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let allowed = self.peers.get_mut(&peer).is_none_or(|p| p.requests.take());
        if !allowed {
            let _ = self.swarm.behaviour_mut().sync.send_response(
                channel,
                SyncResponse::Refused(format!(
                    "rate limit: at most {REQUESTS_PER_SECOND} requests per second"
                )),
            );
            self.strike(peer, "sync rate limit");
            return;
        }
        if let SyncRequest::Status(theirs) = &request {
            self.record_status(peer, theirs.clone());
        }
        match self.serve.try_send((peer, channel, request)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full((_, channel, _)))
            | Err(mpsc::error::TrySendError::Closed((_, channel, _))) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, SyncResponse::Refused("busy; retry later".into()));
            }
        }
    }

    pub(super) fn record_status(&mut self, peer: PeerId, theirs: Status) {
        if theirs.genesis != self.genesis {
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.status = Some(theirs);
            p.status_at = Instant::now();
        }
    }

    pub(super) fn on_response(
        &mut self,
        peer: PeerId,
        id: OutboundRequestId,
        response: SyncResponse,
    ) {
        if let Some(reply) = self.user_requests.remove(&id) {
            let _ = reply.send(Ok(response));
            return;
        }
        if self.status_requests.remove(&id).is_some() {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.status_pending = false;
            }
            match response {
                SyncResponse::Status(s) => self.record_status(peer, s),
                SyncResponse::Refused(why) => {
                    tracing::debug!(target: "cachecash::network", %peer, "status refused: {why}")
                }
                _ => self.ban(
                    peer,
                    "wrong sync response",
                    "answered a status request with other data",
                ),
            }
            return;
        }
        if self.sync.headers_request.is_some_and(|(rid, _)| rid == id) {
            self.sync.headers_request = None;
            match response {
                SyncResponse::Headers(headers) => self.on_headers(peer, headers),
                SyncResponse::Refused(why) => {
                    tracing::debug!(target: "cachecash::network", %peer, "headers refused: {why}");
                    self.back_off(peer);
                }
                _ => self.ban(
                    peer,
                    "wrong sync response",
                    "answered a headers request with other data",
                ),
            }
            return;
        }
        if let Some((_, asked)) = self.sync.inflight.remove(&id) {
            match response {
                SyncResponse::Blocks(blocks) => self.on_blocks(peer, asked, blocks),
                SyncResponse::Refused(why) => {
                    tracing::debug!(target: "cachecash::network", %peer, "blocks refused: {why}");
                    self.sync.requeue(asked);
                    self.back_off(peer);
                    self.round_peer_failed(peer);
                }
                _ => {
                    self.sync.requeue(asked);
                    self.ban(
                        peer,
                        "wrong sync response",
                        "answered a blocks request with other data",
                    );
                }
            }
        }
    }
}

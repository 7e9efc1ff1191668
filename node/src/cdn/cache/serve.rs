//! The cache's stream handlers: offers and relays (cache protocol), chunk
//! requests and L1s (chunk protocol), and fills from publishers.

use super::tickets::{Hire, TicketState};
use super::{CacheState, check_escrow};
use crate::cdn::framing::{FrameError, read_body, read_msg, write_body, write_msg};
use crate::cdn::ledger::Ledger;
use crate::cdn::limits::{RATE_LIMITED, Verdict};
use crate::network::NetworkHandle;
use cachecash_cdn::bundle::CacheRequest;
use cachecash_cdn::layers::TwoLayerCipher;
use cachecash_cdn::manifest::chunk_digest;
use cachecash_cdn::messages::{
    ChunkReply, ChunkRequest, ControlRequest, EscrowOffer, FillReply, FillRequest, OfferReply,
    SecretRelay, text, wire_text,
};
use cachecash_runtime::AccountId;
use futures::StreamExt;
use libp2p::{PeerId, Stream};
use std::sync::Arc;

/// Why a fill failed.
enum FillFailure {
    /// The link failed (worth a retry).
    Link(String),
    /// The publisher refused, or sent bad data.
    Refused(String),
}

/// Bytes encrypted and written per step when serving a chunk.
const SERVE_PIECE: usize = 64 * 1024;

/// Everything a cache handler needs.
#[derive(Debug, Clone)]
pub struct CacheService {
    pub(super) state: Arc<CacheState>,
    pub(super) ledger: Arc<dyn Ledger>,
    pub(super) network: NetworkHandle,
    pub(super) me: AccountId,
}

impl CacheService {
    /// Bans a peer that broke the protocol.
    fn punish(&self, peer: PeerId, what: &'static str, e: &FrameError) {
        if e.is_violation() {
            self.network.ban_peer(peer, what, e.to_string());
        }
    }

    /// Serves the cache protocol: an offer per stream, or a stream of relays.
    pub async fn accept_control(self, mut incoming: libp2p_stream::IncomingStreams) {
        while let Some((peer, stream)) = incoming.next().await {
            let Some(slot) = self.state.streams.try_enter(peer) else {
                self.state.counters.streams_refused.inc();
                continue;
            };
            let svc = self.clone();
            tokio::spawn(async move {
                svc.control_stream(peer, stream).await;
                drop(slot);
            });
        }
    }

    /// One control stream: an offer, or relays one after another (the
    /// publisher keeps a stream per cache for its relays) until the
    /// publisher closes it or it idles out.
    async fn control_stream(&self, peer: PeerId, mut stream: Stream) {
        let t = self.state.config.io_timeout;
        let mut first = true;
        loop {
            let wait = if first {
                t
            } else {
                self.state.config.idle_timeout
            };
            let request: ControlRequest = match read_msg(&mut stream, wait).await {
                Ok(r) => r,
                Err(e) => return self.punish(peer, "cdn_malformed", &e),
            };
            first = false;
            match self.charge(peer, "control requests") {
                Verdict::Allowed => {}
                Verdict::Limited => {
                    let why = format!(
                        "{} at most {} control requests per second per peer; slow down",
                        RATE_LIMITED,
                        self.state.control_rate.rate()
                    );
                    let _ = write_msg(&mut stream, &OfferReply::Refused(wire_text(&why)), t).await;
                    return;
                }
                Verdict::Flooding => return,
            }
            let reply = match request {
                ControlRequest::Offer(offer) => {
                    let reply = match self.on_offer(peer, offer) {
                        Ok(()) => OfferReply::Accepted,
                        Err(reason) => {
                            tracing::info!(target: "cachecash::cdn", %peer, "offer refused: {reason}");
                            OfferReply::Refused(wire_text(&reason))
                        }
                    };
                    let _ = write_msg(&mut stream, &reply, t).await;
                    let _ =
                        tokio::time::timeout(t, futures::AsyncWriteExt::close(&mut stream)).await;
                    return;
                }
                ControlRequest::Relay(relay) => match self.on_relay(peer, &relay) {
                    Ok(()) => OfferReply::Accepted,
                    Err(reason) => {
                        tracing::debug!(target: "cachecash::cdn", %peer, "relay refused: {reason}");
                        OfferReply::Refused(wire_text(&reason))
                    }
                },
                ControlRequest::Fill(_) | ControlRequest::Open(_) => {
                    self.network.ban_peer(
                        peer,
                        "cdn_protocol",
                        "sent a publisher request on the cache protocol".into(),
                    );
                    return;
                }
            };
            if write_msg(&mut stream, &reply, t).await.is_err() {
                return;
            }
        }
    }

    fn on_offer(&self, peer: PeerId, offer: EscrowOffer) -> Result<(), String> {
        if crate::cdn::account_of(&peer) != Some(offer.signer) {
            return Err(
                "the offer's ticket signer is not the offering peer's key; a publisher offers only escrows it signs for".into(),
            );
        }
        let escrow = check_escrow(self.ledger.as_ref(), &offer.escrow, &self.state)?;
        if escrow.terms.signer != offer.signer {
            return Err(format!(
                "escrow {} names ticket signer {}, not the offer's {}",
                offer.escrow, escrow.terms.signer, offer.signer
            ));
        }
        if let Some(old) = self
            .state
            .tickets
            .hire(&offer.escrow)
            .map_err(|e| e.to_string())?
            && (old.inner != offer.inner || old.outer != offer.outer)
        {
            // Keys never change for an escrow: held tickets depend on them.
            return Err(format!(
                "already hired for escrow {} with other keys",
                offer.escrow
            ));
        }
        self.state
            .tickets
            .save_hire(&Hire {
                escrow: offer.escrow,
                signer: offer.signer,
                inner: offer.inner,
                outer: offer.outer,
                since: crate::cdn::unix_now(),
            })
            .map_err(|e| e.to_string())?;
        tracing::info!(target: "cachecash::cdn", escrow = %offer.escrow, publisher = %peer, "hired");
        Ok(())
    }

    fn on_relay(&self, peer: PeerId, relay: &SecretRelay) -> Result<(), String> {
        let hire = self
            .state
            .tickets
            .hire(&relay.escrow)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("not hired for escrow {}", relay.escrow))?;
        if crate::cdn::account_of(&peer) != Some(hire.signer) {
            return Err("only the escrow's publisher relays secrets".into());
        }
        let keys = hire.keys();
        let inner = keys.inner_session(&relay.client, relay.sequence);
        for (key, ticket) in self
            .state
            .tickets
            .bundle(&relay.escrow, &relay.client, relay.sequence)
            .map_err(|e| e.to_string())?
        {
            let Some(l1) = &ticket.l1 else { continue };
            if ticket.state == TicketState::Proven {
                continue;
            }
            ticket
                .request
                .verify_l2_claim(&l1.ticket, &relay.claim, &inner)
                .map_err(|e| format!("the relayed L2 does not prove the held ticket: {e}"))?;
            self.state
                .tickets
                .prove(&key, &ticket, &relay.claim)
                .map_err(|e| e.to_string())?;
            self.state.counters.l2_received.inc();
        }
        Ok(())
    }

    /// Serves the chunk protocol: a long-lived stream per client.
    pub async fn accept_chunks(self, mut incoming: libp2p_stream::IncomingStreams) {
        while let Some((peer, stream)) = incoming.next().await {
            let Some(slot) = self.state.streams.try_enter(peer) else {
                self.state.counters.streams_refused.inc();
                continue;
            };
            let svc = self.clone();
            tokio::spawn(async move {
                svc.chunk_stream(peer, stream).await;
                drop(slot);
            });
        }
    }

    async fn chunk_stream(&self, peer: PeerId, mut stream: Stream) {
        let t = self.state.config.io_timeout;
        let Some(client) = crate::cdn::account_of(&peer) else {
            return;
        };
        let mut next: Option<ChunkRequest> = None;
        loop {
            let request = match next.take() {
                Some(r) => r,
                None => match read_msg(&mut stream, self.state.config.idle_timeout).await {
                    Ok(r) => r,
                    Err(e) => return self.punish(peer, "cdn_malformed", &e),
                },
            };
            let flow = match request {
                ChunkRequest::Get(request) => {
                    self.serve_get(peer, &mut stream, &client, request).await
                }
                ChunkRequest::L1(_) => Err(Some(ChunkReply::Refused(wire_text(
                    "no chunk is waiting for an L1 on this stream; send Get first",
                )))),
            };
            match flow {
                Ok(following) => next = following,
                // The link failed: close it.
                Err(None) => return,
                Err(Some(reply)) => {
                    if let ChunkReply::Refused(r) = &reply {
                        self.state.counters.refused.inc();
                        tracing::debug!(target: "cachecash::cdn", %peer, "refused: {}", text(r));
                    }
                    if write_msg(&mut stream, &reply, t).await.is_err() {
                        return;
                    }
                    // Refusals are rare for an honest client and each one
                    // cost a lookup or a signature check: they draw on the
                    // peer's control rate, so a stream of bad requests is
                    // closed and, kept up, gets the peer banned.
                    if self.charge(peer, "refused chunk requests") != Verdict::Allowed {
                        return;
                    }
                }
            }
        }
    }

    /// Draws one request of `peer` on its control rate: past the rate it
    /// is counted, and a peer that keeps on (sending `what`) is banned.
    fn charge(&self, peer: PeerId, what: &str) -> Verdict {
        let verdict = self.state.control_rate.check(peer);
        if verdict != Verdict::Allowed {
            self.state.counters.rate_limited.inc();
        }
        if verdict == Verdict::Flooding {
            self.network.ban_peer(
                peer,
                "cdn_rate_limit",
                format!("kept sending {what} past its rate"),
            );
        }
        verdict
    }

    /// Serves one `Get`: checks it, sends the chunk, then waits for its L1
    /// and releases the outer key. The request is verified once, and the
    /// verified form (through which alone the key can be released) lives
    /// across the wait. Returns the next request when the client sent
    /// something other than the L1; `Err(Some(reply))` is sent back,
    /// `Err(None)` closes the link.
    async fn serve_get(
        &self,
        peer: PeerId,
        stream: &mut Stream,
        client: &AccountId,
        request: Box<CacheRequest>,
    ) -> Result<Option<ChunkRequest>, Option<ChunkReply>> {
        let refuse = |reason: String| Some(ChunkReply::Refused(wire_text(&reason)));
        let t = self.state.config.io_timeout;
        let r = &request.remainder;
        if r.client != *client {
            return Err(refuse(
                "the bundle is for another client key; fetch over the connection of the key the bundle names".into(),
            ));
        }
        let hire = self
            .state
            .tickets
            .hire(&r.escrow)
            .map_err(|e| refuse(e.to_string()))?
            .ok_or_else(|| refuse(format!("this cache is not hired for escrow {}", r.escrow)))?;
        let verified = request
            .verify(&self.me, &hire.signer)
            .map_err(|e| refuse(format!("bad request: {e}")))?;
        let escrow = check_escrow(self.ledger.as_ref(), &r.escrow, &self.state).map_err(refuse)?;
        let data = self.chunk_data(&hire, &request).await.map_err(refuse)?;
        if !self
            .state
            .tickets
            .begin(&request)
            .map_err(|e| refuse(e.to_string()))?
        {
            return Err(refuse(
                "this bundle position was already served to this client; ask the publisher for a new bundle".into(),
            ));
        }
        let bytes = data.len() as u64;
        if let Err(e) = self.send_chunk(stream, &request, &hire, data).await {
            tracing::debug!(target: "cachecash::cdn", %peer, "chunk not delivered: {e}");
            return Err(None);
        }
        let following = match read_msg(stream, self.state.config.idle_timeout).await {
            Ok(m) => m,
            Err(e) => {
                self.punish(peer, "cdn_malformed", &e);
                return Err(None);
            }
        };
        let l1 = match following {
            ChunkRequest::L1(l1) => l1,
            // The client moved on without the L1: the chunk stays unpaid.
            other => return Ok(Some(other)),
        };
        let reply = match self.release(&verified, &escrow, &hire, &l1, bytes) {
            Ok(key) => ChunkReply::OuterKey(key),
            Err(reason) => {
                tracing::info!(target: "cachecash::cdn", %peer, "L1 refused: {reason}");
                ChunkReply::Refused(wire_text(&reason))
            }
        };
        if write_msg(stream, &reply, t).await.is_err() {
            return Err(None);
        }
        Ok(None)
    }

    /// The plaintext of a chunk: from the store, or filled from the publisher.
    async fn chunk_data(&self, hire: &Hire, request: &CacheRequest) -> Result<Vec<u8>, String> {
        let id = request.request.chunk_id;
        let data = match self.load(&id).await? {
            Some(d) => {
                self.state.counters.hits.inc();
                d
            }
            None => {
                self.state.counters.misses.inc();
                self.fill(hire, request).await?
            }
        };
        if data.len() as u64 != u64::from(request.request.size) {
            return Err("the stored chunk does not have the requested size".into());
        }
        Ok(data)
    }
    async fn load(&self, id: &cachecash_runtime::Hash) -> Result<Option<Vec<u8>>, String> {
        let state = self.state.clone();
        let id = *id;
        tokio::task::spawn_blocking(move || state.store.get(&id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("chunk store read failed: {e}"))
    }

    async fn send_chunk(
        &self,
        stream: &mut Stream,
        request: &CacheRequest,
        hire: &Hire,
        mut data: Vec<u8>,
    ) -> Result<(), FrameError> {
        let t = self.state.config.io_timeout;
        let r = &request.remainder;
        let mut cipher = TwoLayerCipher::for_cache(
            &hire.keys(),
            &r.client,
            r.sequence,
            &request.request.at(&r.object),
        );
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        write_msg(stream, &ChunkReply::Data { len }, t).await?;
        for piece in data.chunks_mut(SERVE_PIECE) {
            cipher.apply(piece);
            write_body(stream, piece, t).await?;
        }
        self.state.counters.chunks_served.inc();
        self.state.counters.bytes_served.inc_by(u64::from(len));
        Ok(())
    }

    /// Checks the L1 of the chunk just served, stores it, and returns the
    /// outer key.
    fn release(
        &self,
        verified: &cachecash_cdn::VerifiedRequest<'_>,
        escrow: &cachecash_runtime::microcash::Escrow,
        hire: &Hire,
        l1: &cachecash_runtime::microcash::SignedTicket,
        bytes: u64,
    ) -> Result<cachecash_cdn::SessionKey, String> {
        let request = verified.request();
        let key = verified
            .release_outer_key(l1, &hire.signer, &hire.keys())
            .map_err(|e| format!("bad L1: {e}"))?;
        let t = &l1.ticket;
        super::may_still_win(&escrow.terms, t.round, t.number, self.ledger.head_number())?;
        if self
            .state
            .tickets
            .number_taken(&request.remainder.escrow, t.round, t.number, request)
            .map_err(|e| e.to_string())?
        {
            self.report_duplicate(l1);
            return Err(format!(
                "ticket number {} of round {} is already held under another bundle; the publisher reused it",
                t.number, t.round
            ));
        }
        self.state
            .tickets
            .hold(request, l1, bytes)
            .map_err(|e| e.to_string())?;
        self.state.counters.keys_released.inc();
        Ok(key)
    }
    /// Proves a duplicate ticket number, if `l1` is one (see
    /// [`super::settle::report_duplicate`]).
    fn report_duplicate(&self, l1: &cachecash_runtime::microcash::SignedTicket) {
        super::settle::report_duplicate(
            &self.state,
            self.ledger.as_ref(),
            &self.network.signing_key(),
            l1,
        );
    }

    /// Fills a missing chunk from the escrow's publisher: one fill per chunk
    /// at a time, checked against the chunk id before it is stored.
    async fn fill(&self, hire: &Hire, request: &CacheRequest) -> Result<Vec<u8>, String> {
        let id = request.request.chunk_id;
        let lock = self
            .state
            .fills
            .lock()
            .entry(id)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        let result = async {
            let _guard = lock.lock().await;
            // Another request filled it while this one waited.
            if let Some(d) = self.load(&id).await? {
                return Ok(d);
            }
            let begun = std::time::Instant::now();
            let data = self.fetch_fill(hire, request).await?;
            self.state
                .counters
                .fill_seconds
                .observe(begun.elapsed().as_secs_f64());
            let state = self.state.clone();
            let stored = data.clone();
            tokio::task::spawn_blocking(move || state.store.insert(&id, &stored))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("chunk store write failed: {e}"))?;
            self.state.counters.fills.inc();
            Ok(data)
        }
        .await;
        let mut fills = self.state.fills.lock();
        if fills.get(&id).is_some_and(|l| Arc::strong_count(l) <= 2) {
            fills.remove(&id);
        }
        result
    }

    async fn fetch_fill(&self, hire: &Hire, request: &CacheRequest) -> Result<Vec<u8>, String> {
        // A burst of inbound streams can overflow the publisher's accept
        // queue, which drops a stream right after it opens: retry those.
        let mut attempt = 0u32;
        loop {
            match self.fill_once(hire, request).await {
                Err(FillFailure::Link(e)) if attempt < crate::cdn::STREAM_RETRIES => {
                    attempt += 1;
                    tracing::debug!(target: "cachecash::cdn", attempt, "fill link failed, retrying: {e}");
                    tokio::time::sleep(crate::cdn::retry_backoff(attempt)).await;
                }
                Err(FillFailure::Link(e)) => {
                    return Err(format!("fill from the publisher failed: {e}"));
                }
                Err(FillFailure::Refused(e)) => return Err(e),
                Ok(data) => return Ok(data),
            }
        }
    }

    async fn fill_once(&self, hire: &Hire, request: &CacheRequest) -> Result<Vec<u8>, FillFailure> {
        let t = self.state.config.io_timeout;
        let publisher = crate::cdn::peer_of(&hire.signer).ok_or_else(|| {
            FillFailure::Refused("the escrow's signer is not a valid peer key".into())
        })?;
        let mut control = self.network.stream_control();
        let mut stream = control
            .open_stream(
                publisher,
                crate::cdn::publisher_protocol(&self.ledger.genesis()),
            )
            .await
            .map_err(|e| {
                FillFailure::Link(format!("cannot reach the publisher {publisher}: {e}"))
            })?;
        let fill = FillRequest {
            escrow: hire.escrow,
            object: request.remainder.object,
            chunk_index: request.request.chunk_index,
            chunk_id: request.request.chunk_id,
        };
        let err = |e: FrameError| FillFailure::Link(e.to_string());
        write_msg(&mut stream, &ControlRequest::Fill(fill), t)
            .await
            .map_err(err)?;
        match read_msg::<_, FillReply>(&mut stream, t)
            .await
            .map_err(err)?
        {
            // Past this cache's request rate at the publisher: a back-off
            // and a retry, not a failed fill.
            FillReply::Refused(reason) if text(&reason).starts_with(RATE_LIMITED) => {
                Err(FillFailure::Link(text(&reason)))
            }
            FillReply::Refused(reason) => Err(FillFailure::Refused(format!(
                "the publisher refused the fill: {}",
                text(&reason)
            ))),
            FillReply::Data { len } => {
                if len != request.request.size {
                    return Err(FillFailure::Refused(format!(
                        "the publisher announced {len} bytes for a chunk of {}",
                        request.request.size
                    )));
                }
                let mut data = vec![0u8; len as usize];
                read_body(&mut stream, &mut data, t).await.map_err(err)?;
                let _ = futures::AsyncWriteExt::close(&mut stream).await;
                if chunk_digest(&data) != request.request.chunk_id {
                    return Err(FillFailure::Refused(
                        "the publisher's fill does not match the chunk id; not stored".into(),
                    ));
                }
                Ok(data)
            }
        }
    }
}

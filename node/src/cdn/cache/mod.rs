//! The cache role: hired by publishers for their escrows, it serves
//! doubly-encrypted chunks to clients and keeps the tickets it earns.
//!
//! # Flow
//!
//! 1. **Hire** (control `Offer`): the offering peer must be the escrow's
//!    ticket signer; the escrow must exist on chain, be funded, not be
//!    penalised, still have rounds to draw, and carry at least the cache's
//!    minimum penalty deposit. The keys are stored ([`tickets::Hire`]).
//! 2. **Serve** (chunk `Get`): the request must name this cache, be for the
//!    connection's own client key (so tickets and keys are bound to the
//!    connection that fetched), verify against the escrow's signer
//!    ([`cachecash_cdn::CacheRequest::verify`]), pass the chain checks,
//!    and not be a replay. The chunk comes from the store or is filled from
//!    the publisher (checked against its id, coalesced), and goes out
//!    encrypted in one pass under both layers.
//! 3. **L1** (chunk `L1`): checked against the verified request, its round's
//!    draw block must not be mined yet, its number must be in range and
//!    unused among held tickets; it is stored, synced, and only then is the
//!    outer key released.
//! 4. **Relay** (control `Relay`, from the publisher): the L2 and secret are
//!    verified against each held L1 of the bundle and the cache's inner key;
//!    the ticket becomes redeemable.
//!
//! Malformed or oversized messages get the peer banned; every other refusal
//! is answered with its reason, and the cache keeps serving others.

pub mod claimer;
pub mod serve;
pub mod settle;
pub mod store;
pub mod tickets;

use super::kv::Kv;
use super::ledger::Ledger;
use crate::service::{ModuleContext, ModuleError, NodeModule, stop_tasks};
use cachecash_runtime::microcash::{Escrow, EscrowId};
use cachecash_runtime::{AccountId, Balance};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A cache's configuration.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Directory for the chunk store and the ticket database.
    pub dir: PathBuf,
    /// Byte quota of the chunk store.
    pub quota: u64,
    /// Smallest penalty deposit an escrow must carry to be served.
    pub min_penalty: Balance,
    /// Also require the escrow's safe penalty
    /// ([`EscrowTerms::safe_penalty`](cachecash_runtime::microcash::EscrowTerms::safe_penalty)
    /// at the chain's reporter share): the deposit that makes duplicating
    /// tickets, front-running winners included, cost the publisher more than
    /// it gains. On by default; turn it off only for tests of other rules.
    pub require_safe_penalty: bool,
    /// Most concurrent streams per peer (control and chunk together; a
    /// client or gateway keeps a small fixed pool of chunk streams).
    pub max_streams_per_peer: usize,
    /// Control requests (offers, secret relays) per second per peer; a
    /// publisher relays one secret per bundle served.
    pub control_rate: u32,
    /// Deadline of each read and write on a stream.
    pub io_timeout: Duration,
    /// How long an idle chunk stream is kept.
    pub idle_timeout: Duration,
    /// Settlement of the tickets it earns.
    pub claimer: claimer::ClaimerConfig,
}

impl CacheConfig {
    /// Defaults for a cache in `dir` with `quota` bytes.
    pub fn new(dir: PathBuf, quota: u64) -> CacheConfig {
        CacheConfig {
            dir,
            quota,
            min_penalty: 0,
            require_safe_penalty: true,
            max_streams_per_peer: 8,
            control_rate: 2_000,
            io_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            claimer: claimer::ClaimerConfig::default(),
        }
    }
}

/// Counters of a running cache, exported as `cachecash_cdn_cache_*`.
#[derive(Debug)]
pub struct CacheCounters {
    /// Chunks served (data sent).
    pub chunks_served: Counter,
    /// Bytes served.
    pub bytes_served: Counter,
    /// Store hits.
    pub hits: Counter,
    /// Store misses.
    pub misses: Counter,
    /// Fills from publishers.
    pub fills: Counter,
    /// Outer keys released (L1s held).
    pub keys_released: Counter,
    /// Verified L2 claims received.
    pub l2_received: Counter,
    /// Requests refused.
    pub refused: Counter,
    /// Seconds per fill from a publisher.
    pub fill_seconds: Histogram,
    /// Tickets drawn as winners.
    pub tickets_won: Counter,
    /// Winners not yet paid or given up, as of the claimer's last pass:
    /// drawn winners waiting for their secret or fee, and claims in flight.
    pub tickets_pending: Gauge,
    /// Tickets drawn as losers.
    pub tickets_lost: Counter,
    /// Winners never paid.
    pub tickets_expired: Counter,
    /// Winners paid and final.
    pub tickets_final: Counter,
    /// Claim transactions submitted.
    pub claims_submitted: Counter,
    /// Claims seen landing in a block.
    pub claims_landed: Counter,
    /// Claims the pool refused.
    pub claims_failed: Counter,
    /// Cachecoin earned by final claims (smallest unit).
    pub earned: Counter,
    /// Fees paid by final claims (smallest unit).
    pub fees_spent: Counter,
    /// Duplicate-ticket proofs submitted.
    pub duplicates_reported: Counter,
    /// Streams dropped because their peer held its share.
    pub streams_refused: Counter,
    /// Control requests refused for their peer's rate.
    pub rate_limited: Counter,
}

impl Default for CacheCounters {
    fn default() -> Self {
        CacheCounters {
            chunks_served: Counter::default(),
            bytes_served: Counter::default(),
            hits: Counter::default(),
            misses: Counter::default(),
            fills: Counter::default(),
            keys_released: Counter::default(),
            l2_received: Counter::default(),
            refused: Counter::default(),
            tickets_won: Counter::default(),
            tickets_pending: Gauge::default(),
            tickets_lost: Counter::default(),
            tickets_expired: Counter::default(),
            tickets_final: Counter::default(),
            claims_submitted: Counter::default(),
            claims_landed: Counter::default(),
            claims_failed: Counter::default(),
            earned: Counter::default(),
            fees_spent: Counter::default(),
            duplicates_reported: Counter::default(),
            streams_refused: Counter::default(),
            rate_limited: Counter::default(),
            fill_seconds: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16),
            ),
        }
    }
}

impl CacheCounters {
    fn register(&self, metrics: &crate::metrics::Metrics) {
        let c = |name: &str, help: &str, m: &Counter| metrics.register(name, help, m.clone());
        c(
            "cdn_cache_chunks_served",
            "Chunks served by the cache",
            &self.chunks_served,
        );
        c(
            "cdn_cache_bytes_served",
            "Bytes served by the cache",
            &self.bytes_served,
        );
        c(
            "cdn_cache_hits",
            "Chunk requests found in the store",
            &self.hits,
        );
        c(
            "cdn_cache_misses",
            "Chunk requests missing from the store",
            &self.misses,
        );
        c(
            "cdn_cache_streams_refused",
            "Streams dropped because their peer held max_streams_per_peer",
            &self.streams_refused,
        );
        c(
            "cdn_cache_rate_limited",
            "Control requests refused for their peer's rate",
            &self.rate_limited,
        );
        c(
            "cdn_cache_fills",
            "Chunks filled from publishers",
            &self.fills,
        );
        c(
            "cdn_cache_tickets_held",
            "L1 tickets stored (outer keys released)",
            &self.keys_released,
        );
        c(
            "cdn_cache_l2_received",
            "Verified L2 claims received",
            &self.l2_received,
        );
        c("cdn_cache_refused", "Chunk requests refused", &self.refused);
        for (name, help, m) in [
            (
                "settle_tickets_won",
                "Tickets drawn as winners",
                &self.tickets_won,
            ),
            (
                "settle_tickets_lost",
                "Tickets drawn as losers",
                &self.tickets_lost,
            ),
            (
                "settle_tickets_expired",
                "Winning tickets never paid",
                &self.tickets_expired,
            ),
            (
                "settle_tickets_final",
                "Winning tickets paid, claim final",
                &self.tickets_final,
            ),
            (
                "settle_claims_submitted",
                "Claim transactions submitted",
                &self.claims_submitted,
            ),
            (
                "settle_claims_landed",
                "Claim transactions seen in a block",
                &self.claims_landed,
            ),
            (
                "settle_claims_failed",
                "Claim transactions refused by the pool",
                &self.claims_failed,
            ),
            (
                "settle_earned",
                "Cachecoin earned by final claims (smallest unit)",
                &self.earned,
            ),
            (
                "settle_fees_spent",
                "Fees paid by final claims (smallest unit)",
                &self.fees_spent,
            ),
            (
                "settle_duplicates_reported",
                "Duplicate-ticket proofs submitted",
                &self.duplicates_reported,
            ),
        ] {
            c(name, help, m);
        }
        metrics.register(
            "settle_tickets_pending",
            "Winning tickets not yet final or expired, as of the claimer's last pass",
            self.tickets_pending.clone(),
        );
        metrics.register(
            "cdn_cache_fill_seconds",
            "Seconds per fill from a publisher",
            self.fill_seconds.clone(),
        );
    }
}

/// The cache's state, shared by its tasks and readable by tests and RPC.
#[derive(Debug)]
pub struct CacheState {
    /// Configuration.
    pub config: CacheConfig,
    /// Chunks.
    pub store: store::ChunkStore,
    /// Hires and tickets.
    pub tickets: tickets::Tickets,
    /// Counters.
    pub counters: CacheCounters,
    /// The cache's account (its node key), once started.
    pub account: std::sync::OnceLock<AccountId>,
    /// The chain's duplicate-reporter share (percent), once started.
    reporter_share: std::sync::OnceLock<u8>,
    fills: parking_lot::Mutex<
        std::collections::HashMap<cachecash_runtime::Hash, Arc<tokio::sync::Mutex<()>>>,
    >,
    /// Live streams per peer (control and chunk together).
    pub streams: Arc<crate::cdn::limits::PeerSlots>,
    /// Control request rate per peer.
    pub control_rate: crate::cdn::limits::RateLimits,
    /// "Claim now" requests, answered by the claimer with its pass.
    pub claim_now: crate::cdn::actions::Requests<(), Result<claimer::PassSummary, String>>,
}

/// The cache module.
#[derive(Debug)]
pub struct CacheModule {
    state: Arc<CacheState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl CacheModule {
    /// Opens the cache's store and database (they survive restarts).
    pub fn open(config: CacheConfig) -> Result<CacheModule, String> {
        let store =
            store::ChunkStore::open(&config.dir.join("chunks"), config.quota).map_err(|e| {
                format!(
                    "cannot open the chunk store in {}: {e}",
                    config.dir.display()
                )
            })?;
        let kv = Kv::open(&config.dir.join("db")).map_err(|e| e.to_string())?;
        let streams = crate::cdn::limits::PeerSlots::new(config.max_streams_per_peer);
        let control_rate = crate::cdn::limits::RateLimits::new(config.control_rate);
        Ok(CacheModule {
            state: Arc::new(CacheState {
                config,
                store,
                tickets: tickets::Tickets::new(kv),
                counters: CacheCounters::default(),
                account: Default::default(),
                reporter_share: Default::default(),
                fills: Default::default(),
                streams,
                control_rate,
                claim_now: crate::cdn::actions::Requests::new("the claimer"),
            }),
            tasks: Vec::new(),
        })
    }

    /// The shared state.
    pub fn state(&self) -> Arc<CacheState> {
        self.state.clone()
    }
}

#[async_trait::async_trait]
impl NodeModule for CacheModule {
    fn name(&self) -> &'static str {
        "cache"
    }

    async fn start(&mut self, ctx: &ModuleContext) -> Result<(), ModuleError> {
        let network = ctx.network_for("the cache")?;
        let ledger: Arc<dyn Ledger> = Arc::new(super::ledger::ChainLedger::new(
            ctx.chain.clone(),
            ctx.pool.clone(),
        ));
        let me = AccountId(network.signing_key().verifying_key().to_bytes());
        let _ = self
            .state
            .reporter_share
            .set(ctx.chain.params().duplicate_reporter_share_percent);
        let svc = serve::CacheService {
            state: self.state.clone(),
            ledger: ledger.clone(),
            network: network.clone(),
            me,
        };
        let genesis = ledger.genesis();
        let (_, incoming_control) =
            ctx.register_stream_protocol("the cache", super::cache_protocol(&genesis))?;
        let (_, incoming_chunks) =
            ctx.register_stream_protocol("the cache", super::chunk_protocol(&genesis))?;
        self.tasks
            .push(tokio::spawn(svc.clone().accept_control(incoming_control)));
        self.tasks
            .push(tokio::spawn(svc.accept_chunks(incoming_chunks)));
        let state = self.state.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(tickets::SYNC_INTERVAL);
            loop {
                tick.tick().await;
                let s = state.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.tickets.sync()).await {
                    tracing::error!(target: "cachecash::cdn", "ticket log sync failed: {e}");
                }
            }
        }));
        // Settlement: claim the winners.
        let claimer = claimer::Claimer::new(
            self.state.clone(),
            ledger.clone(),
            network.signing_key(),
            self.state.config.claimer.clone(),
        );
        self.tasks.push(tokio::spawn(claimer::run(
            claimer,
            Duration::from_secs(2),
            ctx.ledger().head_events(1),
            self.state.claim_now.take_receiver(),
        )));
        // Discovery: announce this cache in the DHT with a signed advert,
        // and again before they expire.
        let announce = network.clone();
        let key = super::caches_key(&genesis);
        let state = self.state.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(super::ANNOUNCE_INTERVAL);
            loop {
                tick.tick().await;
                announce.provide(key.clone());
                match advert(&state, &announce, &genesis) {
                    Ok((k, v)) => announce.put_record(k, v, 2 * super::ANNOUNCE_INTERVAL),
                    Err(e) => {
                        tracing::warn!(target: "cachecash::cdn", "cannot build the cache advert: {e}")
                    }
                }
            }
        }));
        let _ = self.state.account.set(me);
        let _ = ctx.cdn.cache.set(self.state.clone());
        self.state.counters.register(ctx.chain.metrics());
        let weak = Arc::downgrade(&self.state);
        ctx.chain.metrics().memory().add_db(
            "cdn_cache",
            Arc::new(move || {
                weak.upgrade()
                    .map(|s| s.tickets.kv.memory())
                    .unwrap_or_default()
            }),
        );
        tracing::info!(target: "cachecash::cdn", cache = %me, dir = %self.state.config.dir.display(), quota = self.state.config.quota, "cache started");
        Ok(())
    }

    async fn stop(&mut self) {
        stop_tasks(self.tasks.drain(..)).await;
        if let Err(e) = self.state.tickets.sync() {
            tracing::error!(target: "cachecash::cdn", "ticket log sync at stop failed: {e}");
        }
    }
}

/// Checks that an escrow may be served: it exists, is funded, is neither
/// penalised nor closed, still has a round to draw, and carries at least
/// the cache's penalty floor ([`CacheState::penalty_floor`]).
pub fn check_escrow(
    ledger: &dyn Ledger,
    id: &EscrowId,
    state: &CacheState,
) -> Result<Escrow, String> {
    let escrow = ledger
        .escrow(id)?
        .ok_or_else(|| format!("escrow {id} does not exist on chain (never opened, or closed)"))?;
    if escrow.penalised {
        return Err(format!(
            "escrow {id} was penalised for duplicate tickets; its tickets are not served"
        ));
    }
    if escrow.closed {
        return Err(format!(
            "escrow {id} was closed by its funder; its tickets can no longer be paid"
        ));
    }
    let one_round = escrow
        .terms
        .face_value
        .saturating_mul(Balance::from(escrow.terms.winners_per_round));
    if escrow.payment < one_round {
        return Err(format!(
            "escrow {id} holds {} of payment, less than one round's winners ({one_round})",
            escrow.payment
        ));
    }
    let floor = state.penalty_floor(&escrow.terms);
    if escrow.penalty < floor {
        return Err(format!(
            "escrow {id} carries a penalty deposit of {}, below the {floor} this cache requires \
             (its min_penalty, and the safe penalty of the escrow's terms: a smaller deposit \
             would let the publisher profit from duplicate or front-running tickets); top up \
             its penalty",
            escrow.penalty
        ));
    }
    let last_draw = escrow
        .terms
        .draw_height(escrow.terms.last_round)
        .map_err(|e| e.to_string())?;
    if ledger.head_number() >= last_draw {
        return Err(format!(
            "escrow {id} has drawn its last round (block {last_draw}); it issues no more valid tickets"
        ));
    }
    Ok(escrow)
}

/// This cache's signed advert and its DHT key: where it listens, its quota
/// and free room, the escrows it is hired for, valid for two announce
/// intervals.
fn advert(
    state: &CacheState,
    network: &crate::network::NetworkHandle,
    genesis: &cachecash_runtime::Hash,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    use cachecash_cdn::advert::{
        CacheAdvert, MAX_ADDR_BYTES, MAX_ADVERT_ADDRS, MAX_ADVERT_ESCROWS, advert_key,
    };
    use parity_scale_codec::Encode;
    let key = network.signing_key();
    let cache = AccountId(key.verifying_key().to_bytes());
    let usage = state.store.usage();
    let mut escrows: Vec<EscrowId> = state
        .tickets
        .hires()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|h| h.escrow)
        .collect();
    // The newest hires matter most to a publisher.
    escrows.reverse();
    escrows.truncate(MAX_ADVERT_ESCROWS);
    let now = super::unix_now();
    let signed = CacheAdvert {
        cache,
        genesis: *genesis,
        addrs: network
            .listen_addresses()
            .into_iter()
            .map(|a| a.to_vec())
            .filter(|a| a.len() <= MAX_ADDR_BYTES)
            .take(MAX_ADVERT_ADDRS)
            .collect(),
        quota: usage.quota,
        free: usage.quota.saturating_sub(usage.bytes),
        escrows,
        issued: now,
        expires: now.saturating_add(2 * super::ANNOUNCE_INTERVAL.as_secs()),
    }
    .sign(&key);
    Ok((advert_key(genesis, &cache), signed.encode()))
}

/// Whether a ticket of `round` and `number` may still win at chain head
/// `head`: its slot is within the terms and its round's draw block is not
/// mined yet. This is the rule that bounds grinding: the seed does not exist
/// while the round's tickets are still accepted, so only the draw block's
/// miner can learn the winners early, and withholding a block costs it the
/// block reward (docs/microcash.md §7, docs/reliability.md).
pub fn may_still_win(
    terms: &cachecash_runtime::microcash::EscrowTerms,
    round: u64,
    number: u32,
    head: u64,
) -> Result<(), String> {
    terms
        .check_slot(round, number)
        .map_err(|e| format!("the L1 cannot win: {e}"))?;
    let draw = terms.draw_height(round).map_err(|e| e.to_string())?;
    if head >= draw {
        return Err(format!(
            "the L1's round {round} was drawn at block {draw}; it cannot win any more"
        ));
    }
    Ok(())
}

impl CacheState {
    /// The smallest penalty deposit an escrow with `terms` must carry to be
    /// served: `min_penalty`, and the terms' safe penalty when required
    /// (unreachable terms need an unreachable deposit).
    pub fn penalty_floor(&self, terms: &cachecash_runtime::microcash::EscrowTerms) -> Balance {
        let safe = match (self.config.require_safe_penalty, self.reporter_share.get()) {
            (true, Some(&share)) => terms.safe_penalty(share).unwrap_or(Balance::MAX),
            _ => 0,
        };
        self.config.min_penalty.max(safe)
    }

    /// Hit ratio so far (0 when nothing was asked).
    pub fn hit_ratio(&self) -> f64 {
        let h = self.counters.hits.get() as f64;
        let m = self.counters.misses.get() as f64;
        if h + m == 0.0 { 0.0 } else { h / (h + m) }
    }
}

#[cfg(test)]
mod tests {
    use super::claimer::memory::{MemLedger, rig};
    use super::*;

    fn with(escrow: &Escrow, id: EscrowId) -> MemLedger {
        MemLedger {
            escrow: escrow.clone(),
            id,
            chain: Default::default(),
        }
    }

    #[test]
    fn an_l1_is_refused_once_its_rounds_draw_block_is_mined() {
        let dir = tempfile::tempdir().unwrap();
        let r = rig(dir.path(), 1, 8, 2).unwrap();
        let terms = &r.ledger.escrow.terms;
        let draw = terms.draw_height(1).unwrap();
        // Until the draw block exists the seed is unknown to all but its
        // miner: the ticket is taken.
        may_still_win(terms, 1, 3, draw - 1).unwrap();
        let err = may_still_win(terms, 1, 3, draw).unwrap_err();
        assert!(err.contains("cannot win any more"), "{err}");
        let err = may_still_win(terms, 1, 8, 0).unwrap_err();
        assert!(err.contains("cannot win"), "{err}");
        let err = may_still_win(terms, 2, 0, 0).unwrap_err();
        assert!(err.contains("cannot win"), "{err}");
    }

    #[test]
    fn escrows_below_their_safe_penalty_penalised_or_closed_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let r = rig(dir.path(), 1, 8, 2).unwrap();
        let state = &r.state;
        let _ = state.reporter_share.set(50);
        let (id, mut e) = (r.ledger.id, r.ledger.escrow.clone());
        let safe = e.terms.safe_penalty(50).unwrap();
        assert!(safe > 0);
        e.penalty = safe - 1;
        let err = check_escrow(&with(&e, id), &id, state).unwrap_err();
        assert!(err.contains("safe penalty"), "{err}");
        e.penalty = safe;
        check_escrow(&with(&e, id), &id, state).unwrap();
        let mut penalised = e.clone();
        penalised.penalised = true;
        let err = check_escrow(&with(&penalised, id), &id, state).unwrap_err();
        assert!(err.contains("penalised"), "{err}");
        let mut closed = e.clone();
        closed.closed = true;
        let err = check_escrow(&with(&closed, id), &id, state).unwrap_err();
        assert!(err.contains("closed"), "{err}");
        // The operator's floor applies on top of the safe penalty.
        let dir2 = tempfile::tempdir().unwrap();
        let mut config = CacheConfig::new(dir2.path().to_path_buf(), 1 << 20);
        config.min_penalty = safe + 1;
        let strict = CacheModule::open(config).unwrap().state();
        let _ = strict.reporter_share.set(50);
        assert_eq!(strict.penalty_floor(&e.terms), safe + 1);
        assert!(check_escrow(&with(&e, id), &id, &strict).is_err());
        // Turned off, only min_penalty counts.
        let dir3 = tempfile::tempdir().unwrap();
        let mut config = CacheConfig::new(dir3.path().to_path_buf(), 1 << 20);
        config.require_safe_penalty = false;
        let lax = CacheModule::open(config).unwrap().state();
        let _ = lax.reporter_share.set(50);
        e.penalty = 0;
        check_escrow(&with(&e, id), &id, &lax).unwrap();
    }
}

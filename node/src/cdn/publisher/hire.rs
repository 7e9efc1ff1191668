//! Hiring caches and tracking their health.
//!
//! Caches come from the configuration (`--hire`) and, with discovery on,
//! from the DHT: every cache announces a Kademlia provider record under
//! [`crate::cdn::caches_key`]; the publisher looks them up and offers to
//! those it has not hired, up to its limit. The offer itself dials the cache
//! back, so only reachable caches are hired.
//!
//! Each configured cache gets an [`EscrowOffer`] with its own master keys
//! (derived from the escrow secret and the cache's account) over the
//! authenticated cache protocol. An offer that goes through proves the
//! cache reachable at that address. Caches that refuse or cannot be reached
//! are retried every few seconds; the roster changes without touching the
//! escrow.
//!
//! # Sybil caches
//!
//! Every hired cache gets an equal share of the placement table, so a party
//! that runs many cache keys would win more bundles by minting keys. Caches
//! found by discovery are therefore limited per network address
//! ([`network_of`]: an IPv4 address or an IPv6 /64) to
//! `discover_per_address` (1 by default), judged by the address the offer
//! reached; one beyond the limit is not hired (`hires_declined`). Caches the
//! operator configures are exempt. Keys are free but addresses are not, so
//! this bounds a Sybil's share by the addresses it controls.
//!
//! Health is transient: a blame benches a cache for a while (longer for
//! proven corruption), never for ever (the prototype's UNUSABLE mark).

use super::Publisher;
use super::escrow::ActiveEscrow;
use super::placement::{Table, placement_key};
use crate::cdn::framing::{read_msg, write_msg};
use cachecash_cdn::messages::{ControlRequest, EscrowOffer, OfferReply, text};
use cachecash_runtime::AccountId;
use cachecash_runtime::microcash::EscrowId;
use libp2p::{Multiaddr, PeerId};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a cache is benched after a stall or refusal.
pub const BENCH_STALL: Duration = Duration::from_secs(30);
/// How long a cache is benched after proven corruption.
pub const BENCH_CORRUPT: Duration = Duration::from_secs(600);
/// How often unhired caches are retried.
const RETRY: Duration = Duration::from_secs(3);

/// A hired cache.
#[derive(Debug, Clone)]
pub struct Hired {
    /// Its peer id.
    pub peer: PeerId,
    /// Where it was reached.
    pub addrs: Vec<Multiaddr>,
    /// Benched until then.
    pub bench_until: Option<Instant>,
    /// Blames against it.
    pub blames: u64,
    /// The network it was discovered at (`None`: configured by the operator).
    pub discovered_at: Option<std::net::IpAddr>,
    /// Escrows it accepted, newest last (the current one and a few retired
    /// ones; bounded by [`super::RETIRED_KEPT`] + 1).
    pub escrows: Vec<EscrowId>,
}

/// The network an address belongs to for the per-address hiring limit: the
/// IPv4 address itself, or the /64 prefix of an IPv6 address (one host's
/// usual allocation); `None` for addresses without an IP.
pub fn network_of(addr: &Multiaddr) -> Option<std::net::IpAddr> {
    use libp2p::multiaddr::Protocol;
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(std::net::IpAddr::V4(ip)),
        Protocol::Ip6(ip) => {
            let prefix = u128::from(ip) & !((1u128 << 64) - 1);
            Some(std::net::IpAddr::V6(std::net::Ipv6Addr::from(prefix)))
        }
        _ => None,
    })
}

/// The hired caches and the placement table over them.
#[derive(Debug, Default)]
pub struct Roster {
    inner: RwLock<RosterInner>,
}

#[derive(Debug, Default)]
struct RosterInner {
    caches: HashMap<AccountId, Hired>,
    table: Option<Arc<Table>>,
    key: Option<cachecash_runtime::Hash>,
}

impl Roster {
    /// Whether `account` is hired.
    pub fn is_hired(&self, account: &AccountId) -> bool {
        self.inner.read().caches.contains_key(account)
    }

    /// Whether `account` is hired and accepted `escrow`.
    pub fn is_hired_for(&self, account: &AccountId, escrow: &EscrowId) -> bool {
        self.inner
            .read()
            .caches
            .get(account)
            .is_some_and(|h| h.escrows.contains(escrow))
    }

    /// Records that hired cache `account` accepted `escrow` too.
    pub fn accepted(&self, account: &AccountId, escrow: EscrowId) {
        if let Some(h) = self.inner.write().caches.get_mut(account)
            && !h.escrows.contains(&escrow)
        {
            h.escrows.push(escrow);
            let excess = h.escrows.len().saturating_sub(super::RETIRED_KEPT + 1);
            h.escrows.drain(..excess);
        }
    }

    /// Hired caches.
    pub fn hired(&self) -> Vec<(AccountId, Hired)> {
        self.inner
            .read()
            .caches
            .iter()
            .map(|(a, h)| (*a, h.clone()))
            .collect()
    }

    /// Number of hired caches.
    pub fn len(&self) -> usize {
        self.inner.read().caches.len()
    }

    /// Whether no cache is hired.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&self, account: AccountId, hired: Hired, key: cachecash_runtime::Hash) {
        let mut inner = self.inner.write();
        // The placement key is the first escrow's: a rotation does not
        // reshuffle where objects live.
        let key = *inner.key.get_or_insert(key);
        if inner.caches.insert(account, hired).is_none() {
            let all = inner.caches.keys().copied().collect();
            inner.table = Some(Arc::new(Table::new(key, all)));
        }
    }

    /// The placement table.
    pub fn table(&self) -> Option<Arc<Table>> {
        self.inner.read().table.clone()
    }

    /// How many discovered caches are hired at `network`.
    pub fn discovered_at(&self, network: std::net::IpAddr) -> usize {
        self.inner
            .read()
            .caches
            .values()
            .filter(|h| h.discovered_at == Some(network))
            .count()
    }

    /// Whether a cache may be placed now.
    pub fn is_healthy(&self, account: &AccountId) -> bool {
        self.inner
            .read()
            .caches
            .get(account)
            .is_some_and(|h| h.bench_until.is_none_or(|t| t <= Instant::now()))
    }

    /// Benches a cache for `d`.
    pub fn bench(&self, account: &AccountId, d: Duration) {
        if let Some(h) = self.inner.write().caches.get_mut(account) {
            h.bench_until = Some(Instant::now() + d);
            h.blames = h.blames.saturating_add(1);
        }
    }

    /// Addresses of a cache, for clients.
    pub fn addrs(&self, account: &AccountId) -> Vec<Multiaddr> {
        self.inner
            .read()
            .caches
            .get(account)
            .map(|h| h.addrs.clone())
            .unwrap_or_default()
    }
}

/// Advert lookups a hiring pass runs at once.
const ADVERT_LOOKUPS: usize = 8;

/// The addresses in `cache`'s current signed advert in the DHT, or why it
/// has none that counts (none found, forged, foreign, expired).
async fn advert_of(publisher: &Publisher, cache: AccountId) -> Result<Vec<Multiaddr>, String> {
    use cachecash_cdn::advert::{SignedCacheAdvert, advert_key};
    let genesis = publisher.ledger.genesis();
    let values = publisher
        .network
        .records(advert_key(&genesis, &cache))
        .await?;
    let now = crate::cdn::unix_now();
    let mut why = String::from("no signed advert found in the DHT");
    let mut best: Option<SignedCacheAdvert> = None;
    for v in values {
        match SignedCacheAdvert::decode_bounded(&v) {
            Ok(signed) => match signed.verify(&cache, &genesis, now) {
                Ok(a) => {
                    if best.as_ref().is_none_or(|b| b.advert.issued < a.issued) {
                        best = Some(signed.clone());
                    }
                }
                Err(e) => why = format!("its advert does not count: {e}"),
            },
            Err(e) => why = format!("its advert does not decode: {e}"),
        }
    }
    let advert = best.ok_or(why)?.advert;
    Ok(advert
        .addrs
        .iter()
        .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
        .take(crate::cdn::MAX_PEER_ADDRS)
        .collect())
}

/// Keeps every configured cache (and discovered ones, up to the limits)
/// hired for the current escrow; returns never. A cache hired for an
/// earlier escrow is offered the current one (after a rotation).
pub async fn keep_hired(publisher: Publisher) {
    loop {
        let Some(escrow) = publisher.state.escrow() else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let key = placement_key(escrow.secret.as_bytes());
        let mut candidates: Vec<(PeerId, Option<Multiaddr>)> = Vec::new();
        for addr in publisher.state.config.caches.clone() {
            match crate::network::split_peer_id(&addr) {
                Some((peer, base)) => candidates.push((peer, Some(base))),
                None => {
                    tracing::warn!(target: "cachecash::cdn", %addr, "cache address has no /p2p/PEER_ID; skipped");
                }
            }
        }
        let limit = publisher.state.config.discover;
        if limit > 0 && publisher.state.caches.len() < limit {
            let me = publisher.network.local_peer_id();
            match publisher
                .network
                .providers(crate::cdn::caches_key(&publisher.ledger.genesis()))
                .await
            {
                Ok(found) => {
                    for peer in found.into_iter().filter(|p| *p != me) {
                        if !candidates.iter().any(|(p, _)| *p == peer) {
                            candidates.push((peer, None));
                        }
                    }
                }
                Err(e) => tracing::debug!(target: "cachecash::cdn", "cache discovery failed: {e}"),
            }
        }
        // Adverts of the discovered candidates not hired yet, looked up a
        // few at a time: a lookup can take the DHT's whole query time, and
        // fake providers must not hold up the real ones behind them.
        let mut adverts: std::collections::HashMap<AccountId, Result<Vec<Multiaddr>, String>> = {
            use futures::StreamExt;
            let wanted: Vec<AccountId> = candidates
                .iter()
                .filter(|(_, base)| base.is_none())
                .filter_map(|(peer, _)| crate::cdn::account_of(peer))
                .filter(|a| !publisher.state.caches.is_hired(a))
                .collect();
            let publisher = &publisher;
            futures::stream::iter(wanted)
                .map(|account| async move { (account, advert_of(publisher, account).await) })
                .buffer_unordered(ADVERT_LOOKUPS)
                .collect()
                .await
        };
        for (peer, base) in candidates {
            if limit > 0
                && publisher.state.caches.len() >= limit.max(publisher.state.config.caches.len())
            {
                break;
            }
            let Some(account) = crate::cdn::account_of(&peer) else {
                continue;
            };
            if publisher.state.caches.is_hired(&account) {
                if !publisher.state.caches.is_hired_for(&account, &escrow.id) {
                    match offer(&publisher, &escrow, peer, account, None).await {
                        Ok(()) => publisher.state.caches.accepted(&account, escrow.id),
                        Err(e) => {
                            tracing::info!(target: "cachecash::cdn", cache = %peer, escrow = %escrow.id, "cache has not accepted the current escrow yet: {e}")
                        }
                    }
                }
                continue;
            }
            let configured = base.is_some();
            if !configured {
                // A discovered cache is tried only with a current advert
                // signed by its own key; its addresses are where to dial.
                let advert = adverts
                    .remove(&account)
                    .unwrap_or_else(|| Err("its advert was not looked up".into()));
                match advert {
                    Ok(addrs) => {
                        if !addrs.is_empty() {
                            publisher.network.add_addresses(peer, addrs).await;
                        }
                    }
                    Err(reason) => {
                        publisher.state.counters.hires_declined.inc();
                        tracing::info!(target: "cachecash::cdn", cache = %peer, "discovered cache not hired: {reason}");
                        continue;
                    }
                }
            }
            match offer(&publisher, &escrow, peer, account, base.clone()).await {
                Ok(()) => {
                    // Where the offer reached it, for clients.
                    let addrs: Vec<Multiaddr> = match base {
                        Some(b) => vec![b],
                        None => publisher
                            .network
                            .peers()
                            .into_iter()
                            .filter(|p| p.peer_id == peer.to_string() && !p.inbound)
                            .filter_map(|p| p.address.parse().ok())
                            .collect(),
                    };
                    let discovered_at = if configured {
                        None
                    } else {
                        // Judged by any connection to it: an inbound one's
                        // remote address is the cache's address too.
                        let seen: Vec<Multiaddr> = publisher
                            .network
                            .peers()
                            .into_iter()
                            .filter(|p| p.peer_id == peer.to_string())
                            .filter_map(|p| p.address.parse().ok())
                            .collect();
                        let Some(network) = addrs.iter().chain(&seen).find_map(network_of) else {
                            tracing::info!(target: "cachecash::cdn", cache = %peer, "discovered cache not hired: no IP address to judge it by");
                            continue;
                        };
                        let per = publisher.state.config.discover_per_address;
                        if publisher.state.caches.discovered_at(network) >= per {
                            publisher.state.counters.hires_declined.inc();
                            tracing::info!(target: "cachecash::cdn", cache = %peer, %network, "discovered cache not hired: {per} cache(s) at its address already hired");
                            continue;
                        }
                        Some(network)
                    };
                    publisher.state.caches.add(
                        account,
                        Hired {
                            peer,
                            addrs,
                            bench_until: None,
                            blames: 0,
                            discovered_at,
                            escrows: vec![escrow.id],
                        },
                        key,
                    );
                    tracing::info!(target: "cachecash::cdn", cache = %peer, escrow = %escrow.id, "cache hired");
                }
                Err(e) => {
                    tracing::info!(target: "cachecash::cdn", cache = %peer, "cache not hired yet: {e}");
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Offers `escrow` to cache `peer` (dialling `addr` when given); `Ok` once
/// it accepted.
pub(super) async fn offer(
    publisher: &Publisher,
    escrow: &ActiveEscrow,
    peer: PeerId,
    account: AccountId,
    addr: Option<Multiaddr>,
) -> Result<(), String> {
    let t = publisher.state.config.io_timeout;
    match addr {
        Some(a) => publisher.network.add_addresses(peer, vec![a]).await,
        None => publisher.network.find_peer(peer),
    }
    let mut control = publisher.network.stream_control();
    let mut stream = tokio::time::timeout(
        t,
        control.open_stream(
            peer,
            crate::cdn::cache_protocol(&publisher.ledger.genesis()),
        ),
    )
    .await
    .map_err(|_| "dial timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let keys = escrow.secret.cache_keys(&escrow.id, &account);
    let msg = ControlRequest::Offer(EscrowOffer {
        escrow: escrow.id,
        signer: publisher.me,
        inner: keys.inner,
        outer: keys.outer,
    });
    write_msg(&mut stream, &msg, t)
        .await
        .map_err(|e| e.to_string())?;
    match read_msg::<_, OfferReply>(&mut stream, t)
        .await
        .map_err(|e| e.to_string())?
    {
        OfferReply::Accepted => Ok(()),
        OfferReply::Refused(r) => Err(format!("refused: {}", text(&r))),
    }
}

//! Malformed and oversized messages on each CDN protocol, written by hand
//! on raw streams by a plain node ("mallory"): the service that reads them
//! bans the sender (reason `cdn_malformed`, counted in its metrics) and
//! refuses its new streams, no state of the CDN changes, and an honest
//! client still fetches byte-exact through the same services afterwards.
//!
//! Every CDN message is framed `u32 LE length ‖ SCALE value`
//! (`cachecash_node::cdn::framing`). A length past the message type's
//! `MAX_BYTES` is refused before a byte of the body is read; a body that
//! does not decode, carries trailing bytes or breaks a cap is malformed.
//! Every protocol answers both with a ban: none merely throttles them.

use cachecash_cdn::codec::{WireMessage, decode_bounded};
use cachecash_cdn::error::DecodeError;
use cachecash_cdn::keys::MasterKey;
use cachecash_cdn::messages::{ChunkRequest, ControlRequest, EscrowOffer, OpenRequest};
use cachecash_node::Node;
use cachecash_node::cdn::cache::store::StoreUsage;
use cachecash_node::cdn::cache::tickets::{HeldTicket, Hire};
use cachecash_node::cdn::publisher::catalog::CatalogEntry;
use cachecash_node::cdn::publisher::origin::Origin;
use cachecash_runtime::microcash::EscrowId;
use cachecash_runtime::{AccountId, Hash};
use cachecash_tests::cdn::*;
use cachecash_tests::*;
use futures::AsyncWriteExt;
use libp2p::StreamProtocol;
use parity_scale_codec::Encode;
use std::time::Duration;

const IO: Duration = Duration::from_secs(10);

/// The CDN protocols a peer can write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A cache's control protocol (offers, relays).
    CacheControl,
    /// A cache's chunk protocol.
    Chunks,
    /// The publisher's control protocol (fills, sessions).
    Publisher,
}

/// `body` in a frame that announces its true length.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A frame whose announced length and body are both one byte past `T`'s
/// limit.
fn oversized<T: WireMessage>() -> Vec<u8> {
    frame(&vec![0u8; T::MAX_BYTES + 1])
}

/// The state of every CDN service that a peer's messages could change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    catalog: Vec<CatalogEntry>,
    /// Hired caches: account, blames, escrows accepted.
    hired: Vec<(AccountId, u64, Vec<EscrowId>)>,
    /// Sessions, bundles, secrets, relays, fills, refused fills, rate limited.
    publisher: [u64; 7],
    caches: Vec<CacheSnapshot>,
}

#[derive(Debug, PartialEq)]
struct CacheSnapshot {
    hires: Vec<Hire>,
    tickets: Vec<HeldTicket>,
    /// Chunks served, keys released, L2s received, refusals, rate limited.
    counters: [u64; 5],
    store: StoreUsage,
}

fn snapshot(net: &Net) -> Snapshot {
    let p = net.state();
    let mut hired: Vec<_> = p
        .caches
        .hired()
        .into_iter()
        .map(|(a, h)| (a, h.blames, h.escrows))
        .collect();
    hired.sort_by_key(|(a, _, _)| *a);
    let c = &p.counters;
    Snapshot {
        catalog: p.catalog.entries().unwrap(),
        hired,
        publisher: [
            c.sessions.get(),
            c.bundles.get(),
            c.secrets.get(),
            c.relayed.get(),
            c.fills.get(),
            c.fills_refused.get(),
            c.rate_limited.get(),
        ],
        caches: net
            .caches
            .iter()
            .map(|(_, s, _)| {
                let c = &s.counters;
                CacheSnapshot {
                    hires: s.tickets.hires().unwrap(),
                    tickets: s.tickets.all().unwrap(),
                    counters: [
                        c.chunks_served.get(),
                        c.keys_released.get(),
                        c.l2_received.get(),
                        c.refused.get(),
                        c.rate_limited.get(),
                    ],
                    store: s.store.usage(),
                }
            })
            .collect(),
    }
}

/// A CDN with an object fetched once (so the catalog, the caches' stores
/// and tickets hold something to protect), every ticket proven, and
/// mallory: a plain node that knows where the publisher and the first
/// cache listen.
struct Hostile {
    net: Net,
    mallory: Node,
    body: Vec<u8>,
    /// The origin directory, read on every session.
    _origin: tempfile::TempDir,
}

impl Hostile {
    async fn start() -> Hostile {
        let dir = tempfile::tempdir().unwrap();
        let body = random_bytes(300_000);
        std::fs::write(dir.path().join("obj"), &body).unwrap();
        let net = setup(Origin::Dir(dir.path().to_path_buf()), 2).await;
        let (out, _) = net.fetch("/obj", None).await.expect("the first fetch");
        assert!(out == body, "the first fetch is byte-exact");
        let caches: Vec<_> = net.caches.iter().map(|(_, s, _)| s.clone()).collect();
        wait_until("every ticket of the first fetch proven", DEADLINE, || {
            caches.iter().all(|s| {
                let c = s.tickets.counts().unwrap();
                c.held == 0 && c.serving == 0 && c.proven > 0
            })
        })
        .await;
        let mallory = start_with_modules(
            &net.spec,
            &net.dir.path().join("mallory"),
            None,
            vec![p2p_addr(&net.chain)],
            vec![],
        )
        .await;
        for node in [&net.caches[0].0, net.publisher.as_ref().unwrap()] {
            let mut at = p2p_addr(node);
            at.pop();
            let peer = node.network().unwrap().local_peer_id();
            mallory
                .network()
                .unwrap()
                .add_addresses(peer, vec![at])
                .await;
        }
        Hostile {
            net,
            mallory,
            body,
            _origin: dir,
        }
    }

    /// The node serving `target` and the protocol's name.
    fn target(&self, target: Target) -> (&Node, StreamProtocol) {
        let genesis = self.net.spec.genesis_hash().unwrap();
        match target {
            Target::CacheControl => (
                &self.net.caches[0].0,
                cachecash_node::cdn::cache_protocol(&genesis),
            ),
            Target::Chunks => (
                &self.net.caches[0].0,
                cachecash_node::cdn::chunk_protocol(&genesis),
            ),
            Target::Publisher => (
                self.net.publisher.as_ref().unwrap(),
                cachecash_node::cdn::publisher_protocol(&genesis),
            ),
        }
    }
}

/// Mallory writes `bytes` to `target` on a raw stream. The target bans
/// it for `cdn_malformed` (one ban, in its metrics), drops its connection
/// and refuses its next stream; nothing of the CDN's state changes; and an
/// honest client then fetches the object byte-exact through the target.
async fn the_sender_is_banned_and_nothing_else_changes(target: Target, bytes: Vec<u8>) {
    let h = Hostile::start().await;
    let (node, protocol) = h.target(target);
    let peer = node.network().unwrap().local_peer_id();
    let before = snapshot(&h.net);
    let (malformed_bans, all_bans) = (bans(node, Some("cdn_malformed")), bans(node, None));
    let mut control = h.mallory.network().unwrap().stream_control();
    let mut stream = control.open_stream(peer, protocol.clone()).await.unwrap();
    // The target may reset the stream before it took every byte: the ban
    // below is the proof that it read them.
    let _ = stream.write_all(&bytes).await;
    let _ = stream.flush().await;
    let me = h.mallory.network().unwrap().local_peer_id().to_string();
    let network = node.network().unwrap().clone();
    wait_until("the target banned mallory", DEADLINE, || {
        bans(node, Some("cdn_malformed")) > malformed_bans
            && !network.peers().iter().any(|p| p.peer_id == me)
    })
    .await;
    assert_eq!(
        (bans(node, Some("cdn_malformed")), bans(node, None)),
        (malformed_bans + 1, all_bans + 1),
        "one ban, counted under its reason"
    );
    let again = tokio::time::timeout(IO, control.open_stream(peer, protocol)).await;
    assert!(
        matches!(again, Ok(Err(_))),
        "the target refuses a banned peer's new stream: {again:?}"
    );
    assert_eq!(snapshot(&h.net), before, "the CDN's state is untouched");
    // Honest clients are still served, by the same services.
    let served = h.net.caches[0].1.counters.chunks_served.get();
    let sessions = h.net.state().counters.sessions.get();
    let (out, report) = h.net.fetch("/obj", None).await.expect("honest fetch");
    assert!(out == h.body, "the honest fetch is byte-exact");
    assert!(report.blames.is_empty(), "{:?}", report.blames);
    assert_eq!(h.net.state().counters.sessions.get(), sessions + 1);
    if target != Target::Publisher {
        let account = cachecash_node::cdn::account_of(&peer).unwrap();
        assert!(
            report.per_cache.get(&account).is_some_and(|n| *n > 0),
            "the attacked cache served the honest fetch: {:?}",
            report.per_cache
        );
        assert!(h.net.caches[0].1.counters.chunks_served.get() > served);
    }
    h.mallory.stop().await;
    h.net.stop().await;
}

/// An offer with a byte after its end: the decoder refuses trailing bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cache_control_message_with_trailing_bytes_gets_the_sender_banned() {
    let offer = ControlRequest::Offer(EscrowOffer {
        escrow: Hash([1; 32]),
        signer: AccountId([2; 32]),
        inner: MasterKey::from_bytes([3; 32]),
        outer: MasterKey::from_bytes([4; 32]),
    })
    .encode();
    assert!(decode_bounded::<ControlRequest>(&offer).is_ok());
    let body = [offer, vec![0]].concat();
    assert!(matches!(
        decode_bounded::<ControlRequest>(&body),
        Err(DecodeError::Malformed { .. })
    ));
    the_sender_is_banned_and_nothing_else_changes(Target::CacheControl, frame(&body)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_cache_control_message_gets_the_sender_banned() {
    the_sender_is_banned_and_nothing_else_changes(
        Target::CacheControl,
        oversized::<ControlRequest>(),
    )
    .await;
}

/// A chunk `Get` whose request is cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_truncated_chunk_request_gets_the_sender_banned() {
    let body = [vec![0u8], vec![0x11; 64]].concat();
    assert!(matches!(
        decode_bounded::<ChunkRequest>(&body),
        Err(DecodeError::Malformed { .. })
    ));
    the_sender_is_banned_and_nothing_else_changes(Target::Chunks, frame(&body)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_chunk_request_gets_the_sender_banned() {
    the_sender_is_banned_and_nothing_else_changes(Target::Chunks, oversized::<ChunkRequest>())
        .await;
}

/// A session `Open` that decodes but breaks a cap (a window of zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publisher_request_out_of_bounds_gets_the_sender_banned() {
    let body = ControlRequest::Open(OpenRequest {
        path: b"/obj".to_vec(),
        range: None,
        window: 0,
    })
    .encode();
    assert!(matches!(
        decode_bounded::<ControlRequest>(&body),
        Err(DecodeError::OutOfBounds { .. })
    ));
    the_sender_is_banned_and_nothing_else_changes(Target::Publisher, frame(&body)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_publisher_request_gets_the_sender_banned() {
    the_sender_is_banned_and_nothing_else_changes(Target::Publisher, oversized::<ControlRequest>())
        .await;
}

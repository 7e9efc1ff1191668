//! Floods on the CDN protocols from a hostile peer (a node of its own that
//! speaks the wire format by hand): streams past its share are dropped,
//! requests past its rate are refused and then get it banned, and honest
//! clients are served byte-exact meanwhile.

use cachecash_cdn::messages::{ControlRequest, EscrowOffer, OfferReply, OpenRequest, SessionReply};
use cachecash_node::Node;
use cachecash_node::cdn::framing::{FrameError, read_msg, write_msg};
use cachecash_node::cdn::limits::STRIKES_BEFORE_BAN;
use cachecash_node::cdn::publisher::origin::Origin;
use cachecash_tests::cdn::*;
use cachecash_tests::*;
use libp2p::StreamProtocol;
use parity_scale_codec::Decode;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);
const IO: Duration = Duration::from_secs(5);

/// A node of its own, told where `target` listens.
async fn flooder(net: &Net, target: &Node) -> Node {
    let node = start_with_modules(
        &net.spec,
        &net.dir.path().join("flooder"),
        None,
        vec![p2p_addr(&net.chain)],
        vec![],
    )
    .await;
    let mut at = p2p_addr(target);
    at.pop();
    node.network()
        .unwrap()
        .add_addresses(target.network().unwrap().local_peer_id(), vec![at])
        .await;
    node
}

/// How a request flood went.
#[derive(Debug, Default)]
struct Outcome {
    answered: usize,
    rate_limited: usize,
    /// Streams that could not be opened (the target banned the flooder).
    shut_out: bool,
}

/// Sends `request` on a new stream of `protocol` to `target`, again and
/// again, reading one reply of type `R` each time, until the target shuts
/// the flooder out or `limit` requests were sent.
async fn flood_requests<
    Q: cachecash_cdn::codec::WireMessage,
    R: cachecash_cdn::codec::WireMessage,
>(
    from: &Node,
    target: &Node,
    protocol: StreamProtocol,
    request: Q,
    limit: usize,
    is_rate_limited: impl Fn(&R) -> bool,
) -> Outcome {
    let peer = target.network().unwrap().local_peer_id();
    let mut control = from.network().unwrap().stream_control();
    let mut out = Outcome::default();
    for _ in 0..limit {
        let Ok(Ok(mut s)) =
            tokio::time::timeout(IO, control.open_stream(peer, protocol.clone())).await
        else {
            out.shut_out = true;
            break;
        };
        if write_msg(&mut s, &request, IO).await.is_err() {
            continue;
        }
        match read_msg::<_, R>(&mut s, IO).await {
            Ok(r) if is_rate_limited(&r) => out.rate_limited += 1,
            Ok(_) => out.answered += 1,
            Err(_) => {}
        }
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_flooding_a_cache_with_streams_is_held_to_its_share_and_others_are_served() {
    use cachecash_cdn::messages::ChunkReply;
    let dir = tempfile::tempdir().unwrap();
    let body = random_bytes(1 << 20);
    std::fs::write(dir.path().join("obj"), &body).unwrap();
    let net = setup(Origin::Dir(dir.path().to_path_buf()), 2).await;
    let genesis = net.spec.genesis_hash().unwrap();
    let (cache_node, cache_state, _) = &net.caches[0];
    let cache = cache_node.network().unwrap().local_peer_id();
    let share = cache_state.config.max_streams_per_peer;
    // The flooder opens three times its share of chunk streams and sends
    // nothing on them.
    let flooder = flooder(&net, cache_node).await;
    let mut control = flooder.network().unwrap().stream_control();
    let mut streams = Vec::new();
    for _ in 0..3 * share {
        streams.push(
            control
                .open_stream(cache, cachecash_node::cdn::chunk_protocol(&genesis))
                .await
                .unwrap(),
        );
    }
    // The cache keeps its share open and drops the rest at once.
    let mut dropped = 0;
    let mut held = 0;
    for s in &mut streams {
        match read_msg::<_, ChunkReply>(s, Duration::from_secs(2)).await {
            Err(FrameError::Timeout(_)) => held += 1,
            Err(_) => dropped += 1,
            Ok(reply) => panic!("a reply to no request: {reply:?}"),
        }
    }
    assert_eq!((held, dropped), (share, 2 * share));
    // Counted by the cache (a stream the network layer dropped before the
    // cache saw it, when its accept queue was full, is not).
    let refused = cache_state.counters.streams_refused.get();
    assert!((1..=2 * share as u64).contains(&refused), "{refused}");
    // Meanwhile an honest client is served in full.
    let (out, _) = net.fetch("/obj", None).await.expect("the honest fetch");
    assert_eq!(out, body);
    drop(streams);
    flooder.stop().await;
    net.stop().await;
}

/// The publisher's sessions are a shared pool; a peer holding streams open
/// without a word is held to `max_streams_per_peer` of them, so the pool
/// stays open to everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_flooding_the_publisher_with_streams_is_held_to_its_share_and_others_are_served() {
    const SHARE: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let body = random_bytes(1 << 20);
    std::fs::write(dir.path().join("obj"), &body).unwrap();
    let net = setup_tuned(
        Origin::Dir(dir.path().to_path_buf()),
        2,
        plan(),
        |_| {},
        |p| p.max_streams_per_peer = SHARE,
    )
    .await;
    let genesis = net.spec.genesis_hash().unwrap();
    let publisher_node = net.publisher.as_ref().unwrap();
    let state = net.state.clone().unwrap();
    let publisher = publisher_node.network().unwrap().local_peer_id();
    let flooder = flooder(&net, publisher_node).await;
    let mut control = flooder.network().unwrap().stream_control();
    let mut streams = Vec::new();
    for _ in 0..3 * SHARE {
        streams.push(
            control
                .open_stream(publisher, cachecash_node::cdn::publisher_protocol(&genesis))
                .await
                .unwrap(),
        );
    }
    // Read them all at once: the publisher ends a silent stream after its
    // I/O time-out, so the held ones must be seen before that.
    let replies = futures::future::join_all(
        streams
            .iter_mut()
            .map(|s| read_msg::<_, SessionReply>(s, Duration::from_secs(2))),
    )
    .await;
    let (mut held, mut dropped) = (0, 0);
    for r in replies {
        match r {
            Err(FrameError::Timeout(_)) => held += 1,
            Err(_) => dropped += 1,
            Ok(reply) => panic!("a reply to no request: {reply:?}"),
        }
    }
    assert_eq!((held, dropped), (SHARE, 2 * SHARE));
    let refused = state.counters.streams_refused.get();
    assert!((1..=2 * SHARE as u64).contains(&refused), "{refused}");
    // The honest client opens its session while the flooder holds its share.
    let (out, _) = net.fetch("/obj", None).await.expect("the honest fetch");
    assert_eq!(out, body);
    drop(streams);
    flooder.stop().await;
    net.stop().await;
}

/// Two caches and a publisher serving one 256 KiB object `/obj`, the roles
/// tuned by `cache` and `publisher`; the object's bytes and the origin
/// directory (kept alive for the test).
async fn small_net(
    cache: impl Fn(&mut cachecash_node::cdn::cache::CacheConfig),
    publisher: impl FnOnce(&mut cachecash_node::cdn::publisher::PublisherConfig),
) -> (Net, Vec<u8>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let body = random_bytes(256 << 10);
    std::fs::write(dir.path().join("obj"), &body).unwrap();
    let net = setup_tuned(
        Origin::Dir(dir.path().to_path_buf()),
        2,
        plan(),
        cache,
        publisher,
    )
    .await;
    (net, body, dir)
}

/// Floods `target` with `request` past its rate from a node of its own:
/// the first burst is answered, then (what `is_rate_limited` recognises)
/// refused, then the flooder is shut out and its ban counted. How the
/// flood went.
async fn flood_until_banned<
    Q: cachecash_cdn::codec::WireMessage,
    R: cachecash_cdn::codec::WireMessage,
>(
    net: &Net,
    target: &Node,
    protocol: StreamProtocol,
    request: Q,
    is_rate_limited: impl Fn(&R) -> bool,
) -> Outcome {
    let flooder = flooder(net, target).await;
    let outcome = flood_requests::<_, R>(
        &flooder,
        target,
        protocol,
        request,
        4 * STRIKES_BEFORE_BAN as usize,
        is_rate_limited,
    )
    .await;
    assert!(
        outcome.answered > 0,
        "the first burst is answered: {outcome:?}"
    );
    assert!(outcome.shut_out, "then banned: {outcome:?}");
    wait_until("the flooder's ban is counted", LONG, || {
        bans(target, Some("cdn_rate_limit")) >= 1
    })
    .await;
    flooder.stop().await;
    outcome
}

/// An honest client fetches `/obj` byte-exact after a flood.
async fn honest_fetch(net: &Net, body: &[u8]) {
    let (out, _) = net.fetch("/obj", None).await.expect("the honest fetch");
    assert_eq!(out, body);
}

/// Session opens past the per-peer rate are answered "unavailable: rate
/// limit" (a client backs off and retries); a peer that keeps on is banned.
/// An honest client is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_opening_sessions_past_its_rate_is_refused_then_banned_and_others_are_served() {
    let (net, body, _dir) = small_net(|_| {}, |p| p.request_rate = 5).await;
    let genesis = net.spec.genesis_hash().unwrap();
    let publisher_node = net.publisher.as_ref().unwrap();
    let state = net.state.clone().unwrap();
    let open = ControlRequest::Open(OpenRequest {
        path: b"/obj".to_vec(),
        range: None,
        window: 1,
    });
    let outcome = flood_until_banned::<_, SessionReply>(
        &net,
        publisher_node,
        cachecash_node::cdn::publisher_protocol(&genesis),
        open,
        |r| matches!(r, SessionReply::Error { message, .. } if text(message).starts_with("rate limit:")),
    )
    .await;
    assert!(
        outcome.rate_limited > 0,
        "refused for the rate: {outcome:?}"
    );
    assert!(state.counters.rate_limited.get() >= outcome.rate_limited as u64);
    honest_fetch(&net, &body).await;
    net.stop().await;
}

/// Escrow offers (each one a ledger read at the cache) past the per-peer
/// control rate are refused, and a peer that keeps on is banned; the
/// cache's hires are untouched and an honest client is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_flooding_a_cache_with_offers_past_its_rate_is_refused_then_banned() {
    let (net, body, _dir) = small_net(|c| c.control_rate = 5, |_| {}).await;
    let genesis = net.spec.genesis_hash().unwrap();
    let (cache_node, cache_state, _) = &net.caches[0];
    let hires = cache_state.tickets.hires().unwrap();
    // An offer of an escrow that does not exist, for a signer that is not
    // the flooder: refused on its merits while within the rate.
    let offer = ControlRequest::Offer(EscrowOffer::decode(&mut &[7u8; 128][..]).unwrap());
    let outcome = flood_until_banned::<_, OfferReply>(
        &net,
        cache_node,
        cachecash_node::cdn::cache_protocol(&genesis),
        offer,
        |r| matches!(r, OfferReply::Refused(why) if text(why).starts_with("rate limit:")),
    )
    .await;
    assert!(
        outcome.rate_limited > 0,
        "refused for the rate: {outcome:?}"
    );
    assert_eq!(
        cache_state.tickets.hires().unwrap(),
        hires,
        "no hire changed"
    );
    honest_fetch(&net, &body).await;
    net.stop().await;
}

/// Chunk requests the cache refuses (here an L1 with no chunk waiting for
/// it) draw on the peer's control rate: past it the stream is closed, and a
/// peer that keeps on is banned. An honest client is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_sending_refused_chunk_requests_past_its_rate_is_cut_off_then_banned() {
    use cachecash_cdn::messages::{ChunkReply, ChunkRequest};
    use cachecash_runtime::microcash::{Ticket, sign_ticket};
    let (net, body, _dir) = small_net(|c| c.control_rate = 5, |_| {}).await;
    let genesis = net.spec.genesis_hash().unwrap();
    let (cache_node, cache_state, _) = &net.caches[0];
    let held = held(cache_state);
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let l1 = sign_ticket(
        &key,
        Ticket {
            escrow: Default::default(),
            round: 0,
            number: 0,
            cache: Default::default(),
            client: Default::default(),
            chunk: Default::default(),
            secret_hash: Default::default(),
        },
    );
    // Refusals on the merits come first; past the rate the stream closes.
    flood_until_banned::<_, ChunkReply>(
        &net,
        cache_node,
        cachecash_node::cdn::chunk_protocol(&genesis),
        ChunkRequest::L1(Box::new(l1)),
        |_| false,
    )
    .await;
    assert!(cache_state.counters.rate_limited.get() >= u64::from(STRIKES_BEFORE_BAN));
    assert_eq!(
        cachecash_tests::cdn::held(cache_state),
        held,
        "no ticket changed"
    );
    honest_fetch(&net, &body).await;
    net.stop().await;
}

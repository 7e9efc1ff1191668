//! The CDN services end to end, in process on loopback: a mining node, a
//! publisher with a real HTTP (or directory) origin, five caches and a
//! client, each its own libp2p node.

use cachecash_cdn::messages::{ControlRequest, ErrorKind, FillReply, FillRequest};
use cachecash_node::Node;
use cachecash_node::cdn::cache::CacheState;
use cachecash_node::cdn::cache::tickets::TicketState;
use cachecash_node::cdn::client::{FetchError, FetchOptions, FetchRequest, fetch};
use cachecash_node::cdn::framing::{read_msg, write_msg};
use cachecash_node::cdn::ledger::ChainLedger;
use cachecash_node::cdn::publisher::origin::Origin;
use cachecash_tests::cdn::*;
use cachecash_tests::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_64_mib_object_arrives_byte_exact_through_five_caches_paid_by_tickets() {
    let body = random_bytes(64 << 20);
    let digest = Sha256::digest(&body);
    let url = http_origin(HashMap::from([("big.bin".to_string(), body)])).await;
    let net = setup(Origin::Http(url), 5).await;
    let (out, report) = net.fetch("/big.bin", None).await.expect("fetch succeeds");
    assert_eq!(out.len(), 64 << 20);
    assert_eq!(
        Sha256::digest(&out),
        digest,
        "the object arrived byte-exact"
    );
    assert!(
        report.blames.is_empty(),
        "no cache failed: {:?}",
        report.blames
    );
    assert_eq!(report.per_cache.len(), 5, "every cache served chunks");
    for (_, state, _) in &net.caches {
        let served = state.counters.chunks_served.get();
        assert!(served > 0);
        assert_eq!(held(state), served, "a held ticket for every chunk served");
    }
    let total: u64 = net
        .caches
        .iter()
        .map(|(_, s, _)| s.counters.chunks_served.get())
        .sum();
    assert_eq!(total, 512);
    // Every secret reaches the caches: every ticket becomes redeemable.
    let caches: Vec<Arc<CacheState>> = net.caches.iter().map(|(_, s, _)| s.clone()).collect();
    wait_until("every ticket proven", DEADLINE, || {
        caches.iter().all(|s| {
            let c = s.tickets.counts().unwrap();
            c.held == 0 && c.serving == 0 && c.proven > 0
        })
    })
    .await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edge_sized_objects_and_odd_ranges_arrive_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [0usize, 1, 15, 131_072, 131_073, 3 * 131_072 + 77];
    let mut files = HashMap::new();
    for s in sizes {
        let data = random_bytes(s);
        std::fs::write(dir.path().join(format!("f{s}")), &data).unwrap();
        files.insert(s, data);
    }
    let net = setup(Origin::Dir(dir.path().to_path_buf()), 5).await;
    for s in sizes {
        let (out, _) = net
            .fetch(&format!("/f{s}"), None)
            .await
            .expect("fetch succeeds");
        assert_eq!(out, files[&s], "object of {s} bytes");
    }
    let big = &files[&(3 * 131_072 + 77)];
    for (a, b) in [
        (0u64, 1u64),
        (7, 8),
        (131_071, 131_073),
        (100, 300_000),
        (393_216, 393_293),
    ] {
        let (out, _) = net
            .fetch(&format!("/f{}", 3 * 131_072 + 77), Some((a, b)))
            .await
            .expect("ranged fetch succeeds");
        assert_eq!(out, big[a as usize..b as usize], "range {a}-{b}");
    }
    let err = net.fetch("/f15", Some((10, 16))).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Publisher {
                kind: ErrorKind::BadRequest,
                ..
            }
        ),
        "{err}"
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn origin_errors_and_path_escapes_reach_the_client_clearly() {
    let url = http_origin(HashMap::new()).await;
    let net = setup(Origin::Http(url), 2).await;
    let cases = [
        ("/status/404", ErrorKind::NotFound, "does not exist"),
        ("/status/500", ErrorKind::Upstream, "500"),
        ("/slow", ErrorKind::Upstream, "timed out"),
        ("/../etc/passwd", ErrorKind::BadRequest, "refused"),
        ("/a/%2e%2e/b", ErrorKind::BadRequest, "refused"),
        ("//evil.example/x", ErrorKind::BadRequest, "refused"),
    ];
    for (path, kind, text) in cases {
        match net.fetch(path, None).await {
            Err(FetchError::Publisher { kind: k, message }) => {
                assert_eq!(k, kind, "{path}: {message}");
                assert!(message.contains(text), "{path}: {message}");
            }
            other => panic!("{path}: expected a publisher error, got {other:?}"),
        }
    }
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_that_is_not_a_hired_cache_gets_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), random_bytes(1000)).unwrap();
    let net = setup(Origin::Dir(dir.path().to_path_buf()), 2).await;
    // A fetch catalogues the object, so its id and chunk id are real.
    net.fetch("/x", None).await.unwrap();
    let entry = &net.state().catalog.entries().unwrap()[0];
    let fill = FillRequest {
        escrow: net.state().escrow().unwrap().id,
        object: entry.object(),
        chunk_index: 0,
        chunk_id: entry.manifest.manifest.chunks[0],
    };
    let mut control = net.client.network().unwrap().stream_control();
    let genesis = net.spec.genesis_hash().unwrap();
    let mut s = control
        .open_stream(
            net.publisher_peer(),
            cachecash_node::cdn::publisher_protocol(&genesis),
        )
        .await
        .unwrap();
    let t = Duration::from_secs(5);
    write_msg(&mut s, &ControlRequest::Fill(fill), t)
        .await
        .unwrap();
    match read_msg::<_, FillReply>(&mut s, t).await.unwrap() {
        FillReply::Refused(r) => assert!(String::from_utf8_lossy(&r).contains("not a cache hired")),
        FillReply::Data { .. } => panic!("plaintext went to a peer that is not a hired cache"),
    }
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cache_that_corrupts_bytes_is_blamed_and_the_fetch_completes() {
    let dir = tempfile::tempdir().unwrap();
    let body = random_bytes(4 << 20);
    std::fs::write(dir.path().join("obj"), &body).unwrap();
    let net = setup(Origin::Dir(dir.path().to_path_buf()), 5).await;
    // First fetch fills every cache.
    let (out, _) = net.fetch("/obj", None).await.unwrap();
    assert_eq!(out, body);
    // Rot every chunk on one cache's disk.
    let bad = &net.caches[0];
    let chunks = bad.2.join("cache").join("chunks");
    let mut rotted = 0;
    for e in std::fs::read_dir(&chunks).unwrap() {
        let p = e.unwrap().path();
        let mut d = std::fs::read(&p).unwrap();
        for b in d.iter_mut().step_by(997) {
            *b ^= 0x5a;
        }
        std::fs::write(&p, d).unwrap();
        rotted += 1;
    }
    assert!(rotted > 0, "the cache held chunks");
    let (out, report) = net.fetch("/obj", None).await.expect("fetch completes");
    assert_eq!(out, body, "byte-exact despite the corrupt cache");
    assert!(!report.blames.is_empty(), "the corrupt cache was blamed");
    let bad_account =
        cachecash_node::cdn::account_of(&bad.0.network().unwrap().local_peer_id()).unwrap();
    assert!(
        !net.state().caches.is_healthy(&bad_account),
        "the publisher benched the corrupt cache after checking the evidence"
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cache_killed_mid_fetch_is_replaced_and_the_fetch_completes() {
    let dir = tempfile::tempdir().unwrap();
    let body = random_bytes(16 << 20);
    std::fs::write(dir.path().join("obj"), &body).unwrap();
    let mut net = setup(Origin::Dir(dir.path().to_path_buf()), 5).await;
    let victim = net.caches.remove(2);
    let served = victim.1.clone();
    let killer = tokio::spawn(async move {
        let end = tokio::time::Instant::now() + DEADLINE;
        while served.counters.chunks_served.get() < 3 && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        victim.0.stop().await;
    });
    let options = FetchOptions {
        chunk_timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let (out, report) = net
        .fetch_with("/obj", None, &options)
        .await
        .expect("fetch completes");
    killer.await.unwrap();
    assert_eq!(out, body);
    assert!(!report.blames.is_empty(), "the dead cache was blamed");
    net.stop().await;
}

/// The publisher killed in the middle of a fetch: the fetch fails with a
/// clear error rather than hanging, and after a restart on the same
/// database the retried fetch completes byte-exact. The restarted
/// publisher never hands out a bundle sequence it used before the restart
/// (its counters are durable), so no (key, IV) pair repeats; each sequence
/// belongs to one bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publisher_restarted_mid_fetch_never_reuses_a_sequence_and_the_fetch_completes() {
    let dir = tempfile::tempdir().unwrap();
    let body = random_bytes(32 << 20);
    std::fs::write(dir.path().join("obj"), &body).unwrap();
    let mut net = setup(Origin::Dir(dir.path().to_path_buf()), 3).await;
    let client = net.client.network().unwrap().local_peer_id();
    let client = cachecash_node::cdn::account_of(&client).unwrap();
    let sequences = |net: &Net| -> Vec<(u64, cachecash_runtime::Hash)> {
        net.caches
            .iter()
            .flat_map(|(_, s, _)| s.tickets.all().unwrap())
            .filter(|t| t.request.remainder.client == client)
            .map(|t| (t.request.remainder.sequence, t.request.digest()))
            .collect()
    };
    let publisher = net.publisher.take().unwrap();
    let request = FetchRequest {
        publisher: publisher.network().unwrap().local_peer_id(),
        path: "/obj".into(),
        range: None,
    };
    let ledger = Arc::new(ChainLedger::new(
        net.client.chain().clone(),
        net.client.pool().clone(),
    ));
    let caches: Vec<_> = net.caches.iter().map(|(_, s, _)| s.clone()).collect();
    let mut out = Vec::new();
    let options = FetchOptions::default();
    let fetching = fetch(
        net.client.network().unwrap(),
        ledger.clone(),
        &request,
        &mut out,
        &options,
        None,
    );
    let kill = async {
        // Once the first bundle's tickets are held, the publisher goes.
        wait_until("a bundle of the fetch is served", DEADLINE, || {
            caches.iter().any(|c| held(c) > 0)
        })
        .await;
        publisher.stop().await;
    };
    let (first, ()) = tokio::join!(tokio::time::timeout(DEADLINE, fetching), kill);
    let first = first.expect("the interrupted fetch ends instead of hanging");
    assert!(
        first.is_err(),
        "the publisher died mid-fetch: {:?}",
        first.map(|_| ())
    );
    let before = sequences(&net);
    assert!(!before.is_empty());
    // Restart on the same database and key.
    net.restart_publisher().await;
    let (again, report) = net.fetch("/obj", None).await.expect("the retried fetch");
    assert!(again == body, "the retried fetch is byte-exact");
    assert!(report.blames.is_empty(), "{:?}", report.blames);
    let all = sequences(&net);
    let last_before = before.iter().map(|(s, _)| *s).max().unwrap();
    let after: Vec<u64> = all
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| !before.iter().any(|(b, _)| b == s))
        .collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|s| *s > last_before),
        "sequences after the restart start past every one before it"
    );
    let mut bundles: HashMap<u64, cachecash_runtime::Hash> = HashMap::new();
    for (seq, digest) in all {
        assert_eq!(
            *bundles.entry(seq).or_insert(digest),
            digest,
            "sequence {seq} used twice"
        );
    }
    net.stop().await;
}

/// The spool of an HTTP origin's objects stays within its quota: pulling a
/// third 1 MiB object into a 2.5 MiB spool evicts the least recently used
/// one, and fetching the evicted object again pulls it anew, byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_origin_spool_keeps_to_its_quota_and_evicted_objects_are_pulled_again() {
    let files: HashMap<String, Vec<u8>> = (0..3)
        .map(|i| (format!("o{i}"), random_bytes(1 << 20)))
        .collect();
    let url = http_origin(files.clone()).await;
    let net = setup_tuned(
        Origin::Http(url),
        2,
        plan(),
        |_| {},
        |p| {
            p.spool_quota = 5 << 19;
            p.spool_min_idle = Duration::ZERO;
        },
    )
    .await;
    let state = net.state.clone().unwrap();
    let spool = state.config.dir.join("spool");
    let spooled = || -> u64 {
        std::fs::read_dir(&spool)
            .unwrap()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    };
    for name in ["o0", "o1", "o2"] {
        let (out, _) = net.fetch(&format!("/{name}"), None).await.unwrap();
        assert!(out == files[name], "{name} byte-exact");
        assert!(spooled() <= 5 << 19, "the spool holds {} bytes", spooled());
    }
    // o0 was the least recently used: gone from the spool, and pulled again.
    let o0 = state
        .catalog
        .entries()
        .unwrap()
        .into_iter()
        .find(|e| e.path == "/o0")
        .unwrap();
    assert!(!o0.file().exists(), "o0 was evicted");
    let (out, _) = net.fetch("/o0", None).await.unwrap();
    assert!(out == files["o0"], "o0 byte-exact after its eviction");
    assert!(o0.file().exists(), "o0 is spooled again");
    assert!(spooled() <= 5 << 19);
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarts_keep_the_catalog_and_tickets_and_never_reuse_a_number() {
    let dir = tempfile::tempdir().unwrap();
    let body = random_bytes(2 << 20);
    std::fs::write(dir.path().join("obj"), &body).unwrap();
    let mut net = setup(Origin::Dir(dir.path().to_path_buf()), 3).await;
    net.fetch("/obj", None).await.unwrap();
    let numbers = |net: &Net| -> Vec<(u64, u32)> {
        net.caches
            .iter()
            .flat_map(|(_, s, _)| s.tickets.all().unwrap())
            .filter_map(|t| t.l1.map(|l| (l.ticket.round, l.ticket.number)))
            .collect()
    };
    let before = numbers(&net);
    // Publisher restart: same base path, same key, same database.
    let boot = vec![p2p_addr(&net.chain)];
    let state = net.restart_publisher().await;
    assert_eq!(
        state.catalog.entries().unwrap().len(),
        1,
        "the catalog persisted"
    );
    // Cache restart: its store and tickets survive.
    let (node, old, base) = net.caches.remove(0);
    let mut same_addr = p2p_addr(&node);
    same_addr.pop();
    let tickets_before = old.tickets.all().unwrap().len();
    assert!(tickets_before > 0);
    node.stop().await;
    // The database closes when the last handle goes.
    wait_until("the old cache released its database", DEADLINE, || {
        Arc::strong_count(&old) == 1
    })
    .await;
    drop(old);
    let (node, cstate) = start_cache(&net.spec, &base, boot, 1 << 30, Some(same_addr)).await;
    assert_eq!(cstate.tickets.all().unwrap().len(), tickets_before);
    // A cache serves only escrows its own chain knows: let it sync first.
    let escrow_id = state.escrow().unwrap().id;
    let cache_chain = node.chain().clone();
    wait_until("the restarted cache synced the escrow", DEADLINE, || {
        matches!(cache_chain.escrow(&escrow_id, None), Ok((Some(_), _, _)))
    })
    .await;
    assert!(cstate.store.usage().chunks > 0, "the chunk store survived");
    net.caches.insert(0, (node, cstate, base));
    let (out, report) = net.fetch("/obj", None).await.expect("fetch after restarts");
    assert_eq!(out, body);
    // A reused bundle sequence would reuse keystreams, and caches refuse a
    // (client, sequence, position) they served before: no refusal happened.
    assert!(report.blames.is_empty(), "{:?}", report.blames);
    // Every ticket of one sequence belongs to one bundle (one digest).
    let mut bundles: HashMap<u64, cachecash_runtime::Hash> = HashMap::new();
    for t in net
        .caches
        .iter()
        .flat_map(|(_, s, _)| s.tickets.all().unwrap())
    {
        let d = t.request.digest();
        let seen = *bundles.entry(t.request.remainder.sequence).or_insert(d);
        assert_eq!(
            seen, d,
            "sequence {} was used by two bundles",
            t.request.remainder.sequence
        );
    }
    let after = numbers(&net);
    let mut all = after.clone();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), after.len(), "no ticket number was issued twice");
    assert!(after.len() > before.len());
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_withholds_secrets_stalls_and_its_caches_still_get_them() {
    use cachecash_cdn::messages::SessionReply;
    use cachecash_node::cdn::client::bundle::{Context, Outcome, process};
    use cachecash_node::cdn::client::conn::Links;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("obj"), random_bytes(10 * 131_072)).unwrap();
    let net = setup(Origin::Dir(dir.path().to_path_buf()), 3).await;
    let network = net.client.network().unwrap().clone();
    let t = Duration::from_secs(10);
    let genesis = net.spec.genesis_hash().unwrap();
    let (stream, info) = net.open_session_by_hand("/obj", 2).await;
    let (mut rd, wr) = futures::AsyncReadExt::split(stream);
    let mut bundles = Vec::new();
    for _ in 0..2 {
        match read_msg::<_, SessionReply>(&mut rd, t).await.unwrap() {
            SessionReply::Bundle(b) => bundles.push(*b),
            other => panic!("expected a bundle, got {other:?}"),
        }
    }
    let chain = net.client.chain().clone();
    wait_until("the escrow reached the client's chain", DEADLINE, || {
        matches!(chain.escrow(&info.escrow, None), Ok((Some(_), _, _)))
    })
    .await;
    let escrow = chain.escrow(&info.escrow, None).unwrap().0.unwrap();
    let ctx = Context {
        me: cachecash_node::cdn::account_of(&network.local_peer_id()).unwrap(),
        signer: escrow.terms.signer,
        manifest: Arc::new(info.manifest.manifest.clone()),
        options: FetchOptions::default(),
        links: Arc::new(Links::new(
            network.clone(),
            cachecash_node::cdn::chunk_protocol(&genesis),
            t,
        )),
        network: network.clone(),
        started: std::time::Instant::now(),
    };
    let mut served = 0;
    for b in bundles {
        served += b.bundle.chunks.len() as u64;
        match process(&ctx, b).await {
            Outcome::Done { .. } => {}
            other => panic!("the bundle should have been served: {other:?}"),
        }
    }
    // The secrets are withheld: the publisher issues nothing more.
    let third = tokio::time::timeout(
        Duration::from_secs(2),
        read_msg::<_, SessionReply>(&mut rd, DEADLINE),
    )
    .await;
    assert!(
        third.is_err(),
        "a third bundle came without payment: {third:?}"
    );
    let caches: Vec<Arc<CacheState>> = net.caches.iter().map(|(_, s, _)| s.clone()).collect();
    let count = |state: TicketState| -> u64 {
        caches
            .iter()
            .map(|s| {
                s.tickets
                    .all()
                    .unwrap()
                    .iter()
                    .filter(|t| t.state == state)
                    .count() as u64
            })
            .sum()
    };
    assert_eq!(
        count(TicketState::Held),
        served,
        "every served chunk's L1 is held"
    );
    assert_eq!(count(TicketState::Proven), 0);
    // The client leaves without paying; the publisher relays the secrets.
    drop((rd, wr));
    wait_until(
        "the publisher relayed the withheld secrets",
        DEADLINE,
        || count(TicketState::Proven) == served,
    )
    .await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpc_reports_each_roles_status_and_refuses_roles_not_run() {
    use cachecash_node::cdn::rpc::{CdnApiServer, CdnRegistry, CdnRpc};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("obj"), random_bytes(200_000)).unwrap();
    let net = setup(Origin::Dir(dir.path().to_path_buf()), 2).await;
    net.fetch("/obj", None).await.unwrap();
    let registry = Arc::new(CdnRegistry::default());
    let _ = registry.cache.set(net.caches[0].1.clone());
    let _ = registry.publisher.set(net.state().clone());
    let module = CdnRpc::new(registry).into_rpc();
    let cache: serde_json::Value = module
        .call("cdn_cacheStatus", jsonrpsee::rpc_params![])
        .await
        .unwrap();
    assert!(cache["chunksServed"].as_u64().unwrap() > 0, "{cache}");
    assert_eq!(cache["hires"].as_array().unwrap().len(), 1);
    let publisher: serde_json::Value = module
        .call("cdn_publisherStatus", jsonrpsee::rpc_params![])
        .await
        .unwrap();
    assert_eq!(publisher["catalog"][0]["path"], "/obj", "{publisher}");
    assert_eq!(publisher["caches"].as_array().unwrap().len(), 2);
    let empty = CdnRpc::new(Arc::new(CdnRegistry::default())).into_rpc();
    let err = empty
        .call::<_, serde_json::Value>("cdn_cacheStatus", jsonrpsee::rpc_params![])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--cache"), "{err}");
    net.stop().await;
}

/// Sends `request` to `cache` on a fresh chunk stream from `from`; the
/// cache's refusal, or `None` when it served data.
async fn ask_cache(
    from: &Node,
    genesis: &cachecash_runtime::Hash,
    cache: libp2p::PeerId,
    request: &cachecash_cdn::bundle::CacheRequest,
) -> Option<String> {
    use cachecash_cdn::messages::{ChunkReply, ChunkRequest};
    let t = Duration::from_secs(10);
    let mut control = from.network().unwrap().stream_control();
    let mut s = control
        .open_stream(cache, cachecash_node::cdn::chunk_protocol(genesis))
        .await
        .unwrap();
    write_msg(&mut s, &ChunkRequest::Get(Box::new(request.clone())), t)
        .await
        .unwrap();
    match read_msg::<_, ChunkReply>(&mut s, t).await.unwrap() {
        ChunkReply::Data { len } => {
            let mut body = vec![0u8; len as usize];
            cachecash_node::cdn::framing::read_body(&mut s, &mut body, t)
                .await
                .unwrap();
            None
        }
        ChunkReply::Refused(r) => Some(String::from_utf8_lossy(&r).into_owned()),
        other => panic!("unexpected reply {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bundle_replayed_by_another_client_or_twice_is_refused() {
    use cachecash_cdn::messages::SessionReply;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), random_bytes(300_000)).unwrap();
    let net = setup(Origin::Dir(dir.path().to_path_buf()), 2).await;
    let genesis = net.spec.genesis_hash().unwrap();
    // Client A opens a session by hand and takes its first bundle.
    let t = Duration::from_secs(10);
    let (mut s, info) = net.open_session_by_hand("/x", 1).await;
    let SessionReply::Bundle(issued) = read_msg::<_, SessionReply>(&mut s, t).await.unwrap() else {
        panic!("then a bundle");
    };
    assert_eq!(issued.bundle.remainder.escrow, info.escrow);
    let request = issued.bundle.cache_request(0).unwrap();
    let cache_account = issued.caches[0].account;
    let (cache_node, _, _) = net
        .caches
        .iter()
        .find(|(n, _, _)| {
            cachecash_node::cdn::account_of(&n.network().unwrap().local_peer_id())
                == Some(cache_account)
        })
        .expect("the bundle names a hired cache");
    let cache = cache_node.network().unwrap().local_peer_id();
    // Client B, another key on the same network, replays A's bundle: refused.
    let thief = start_with_modules(
        &net.spec,
        &net.dir.path().join("thief"),
        None,
        vec![p2p_addr(&net.chain)],
        vec![],
    )
    .await;
    let mut at = p2p_addr(cache_node);
    at.pop();
    for node in [&thief, &net.client] {
        node.network()
            .unwrap()
            .add_addresses(cache, vec![at.clone()])
            .await;
    }
    let refused = ask_cache(&thief, &genesis, cache, &request)
        .await
        .expect("a bundle for another client is refused");
    assert!(refused.contains("another client key"), "{refused}");
    // A gets its chunk once; the same bundle position again is a replay.
    assert_eq!(
        ask_cache(&net.client, &genesis, cache, &request).await,
        None
    );
    let refused = ask_cache(&net.client, &genesis, cache, &request)
        .await
        .expect("a bundle position served once is not served again");
    assert!(refused.contains("already served"), "{refused}");
    thief.stop().await;
    net.stop().await;
}

//! Discovery: caches announce themselves in the DHT with signed adverts,
//! and a publisher with `discover_caches` hires those whose advert counts,
//! within the Sybil bound per address.

use cachecash_node::Node;
use cachecash_node::cdn::cache::CacheState;
use cachecash_node::cdn::client::{FetchOptions, FetchRequest, fetch};
use cachecash_node::cdn::ledger::ChainLedger;
use cachecash_node::cdn::publisher::escrow::EscrowSource;
use cachecash_node::cdn::publisher::origin::Origin;
use cachecash_node::cdn::publisher::{PublisherConfig, PublisherModule};
use cachecash_tests::cdn::*;
use cachecash_tests::*;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publisher_hires_caches_it_discovers_in_the_dht() {
    // Loopback: every cache shares 127.0.0.1, so allow three per address.
    let (dir, spec, chain, caches, publisher, state, body) = discovery_net(3, 3).await;
    wait_until("three caches discovered and hired", DEADLINE, || {
        state.escrow().is_some() && state.caches.len() == 3
    })
    .await;
    let boot = vec![p2p_addr(&chain)];
    let client = start_with_modules(&spec, &dir.path().join("client"), None, boot, vec![]).await;
    let ledger = Arc::new(ChainLedger::new(
        client.chain().clone(),
        client.pool().clone(),
    ));
    let mut out = Vec::new();
    fetch(
        client.network().unwrap(),
        ledger,
        &FetchRequest {
            publisher: publisher.network().unwrap().local_peer_id(),
            path: "/obj".into(),
            range: None,
        },
        &mut out,
        &FetchOptions::default(),
        None,
    )
    .await
    .expect("fetch through discovered caches");
    assert_eq!(out, body);
    client.stop().await;
    publisher.stop().await;
    for (n, _) in caches {
        n.stop().await;
    }
    chain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sybil_caches_behind_one_address_are_hired_once() {
    // Three cache keys on one address (127.0.0.1), one hire per address:
    // the publisher hires one of them and declines the others on every
    // discovery pass, so minting keys wins no more bundles.
    let (_dir, _spec, chain, caches, publisher, state, _) = discovery_net(3, 1).await;
    wait_until(
        "one cache hired, the others declined twice each",
        DEADLINE,
        || state.escrow().is_some() && state.counters.hires_declined.get() >= 4,
    )
    .await;
    let hired = state.caches.hired();
    assert_eq!(hired.len(), 1, "{hired:?}");
    assert_eq!(
        hired[0].1.discovered_at,
        Some(std::net::IpAddr::from([127, 0, 0, 1]))
    );
    // Only the hired cache is in the placement table.
    let table = state.caches.table().expect("a placement table");
    assert_eq!(table.caches(), [hired[0].0]);
    publisher.stop().await;
    for (n, _) in caches {
        n.stop().await;
    }
    chain.stop().await;
}

/// Three cache nodes run under one key (one account, one peer id) on three
/// addresses beside the three honest caches, with the address bound out of
/// the way: the publisher hires the key once, its placement table holds it
/// once, and over a fetch no bundle names it twice, so it serves no more
/// positions than one honest cache does. (The publisher's policy: a hire,
/// a placement share and a bundle position belong to an account.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sybil_caches_under_one_key_are_hired_once_and_get_one_caches_share() {
    use std::collections::{BTreeSet, HashMap};
    let (dir, spec, chain, caches, publisher, state, _) = discovery_net(8, 8).await;
    let key = hex::encode([0x5b; 32]);
    let mut sybils = Vec::new();
    for i in 0..3 {
        let base = dir.path().join(format!("sybil{i}"));
        std::fs::create_dir_all(base.join("network")).unwrap();
        std::fs::write(base.join("network").join("secret_ed25519"), &key).unwrap();
        // A node keeps at most two connections per peer id: the third
        // sybil joins through a cache rather than the miner.
        let boot = if i < 2 {
            p2p_addr(&chain)
        } else {
            p2p_addr(&caches[0].0)
        };
        sybils.push(start_cache(&spec, &base, vec![boot], 1 << 30, None).await);
    }
    let peer = sybils[0].0.network().unwrap().local_peer_id();
    let addrs: BTreeSet<_> = sybils.iter().map(|(n, _)| p2p_addr(n)).collect();
    assert_eq!(addrs.len(), 3, "three addresses");
    assert!(
        addrs
            .iter()
            .all(|a| a.iter().last() == p2p_addr(&sybils[0].0).iter().last()),
        "one peer id: {addrs:?}"
    );
    let sybil = cachecash_node::cdn::account_of(&peer).unwrap();
    wait_until(
        "the honest caches and the sybil key hired",
        DEADLINE,
        || state.escrow().is_some() && state.caches.len() == 4 && state.caches.is_hired(&sybil),
    )
    .await;
    let table = state.caches.table().expect("a placement table");
    assert_eq!(table.caches().len(), 4);
    assert_eq!(table.caches().iter().filter(|a| **a == sybil).count(), 1);
    // A fetch of 32 chunks: eight bundles.
    let body = random_bytes(32 * 131_072);
    std::fs::write(dir.path().join("origin").join("big"), &body).unwrap();
    let client = start_with_modules(
        &spec,
        &dir.path().join("client"),
        None,
        vec![p2p_addr(&chain)],
        vec![],
    )
    .await;
    learn_publisher(&client, &publisher).await;
    let me = cachecash_node::cdn::account_of(&client.network().unwrap().local_peer_id()).unwrap();
    let ledger = Arc::new(ChainLedger::new(
        client.chain().clone(),
        client.pool().clone(),
    ));
    let mut out = Vec::new();
    let report = fetch(
        client.network().unwrap(),
        ledger,
        &FetchRequest {
            publisher: publisher.network().unwrap().local_peer_id(),
            path: "/big".into(),
            range: None,
        },
        &mut out,
        &FetchOptions::default(),
        None,
    )
    .await
    .expect("fetch through the hired caches");
    assert!(out == body, "the fetch is byte-exact");
    assert_eq!(state.caches.len(), 4, "the sybil key is still hired once");
    // The positions of this client's bundles, per account, from the
    // tickets every node of every cache holds.
    let mut positions: HashMap<_, BTreeSet<(u64, u8)>> = HashMap::new();
    for (_, s) in caches.iter().chain(&sybils) {
        for t in s.tickets.all().unwrap() {
            if t.request.remainder.client == me {
                positions
                    .entry(t.request.request.cache)
                    .or_default()
                    .insert((t.request.remainder.sequence, t.request.position));
            }
        }
    }
    let of_sybil = positions.get(&sybil).cloned().unwrap_or_default();
    let sequences: BTreeSet<u64> = of_sybil.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        sequences.len(),
        of_sybil.len(),
        "a bundle names the sybil key at most once: {of_sybil:?}"
    );
    let honest = positions
        .iter()
        .filter(|(a, _)| **a != sybil)
        .map(|(_, p)| p.len())
        .max()
        .unwrap_or(0);
    assert!(
        of_sybil.len() <= honest,
        "the sybil key served {} positions, an honest cache at most {honest}",
        of_sybil.len()
    );
    let served = report.per_cache.get(&sybil).copied().unwrap_or(0);
    assert!(
        served <= state.counters.bundles.get(),
        "{served} chunks from the sybil key over {} bundles issued",
        state.counters.bundles.get()
    );
    client.stop().await;
    publisher.stop().await;
    for (n, _) in caches.into_iter().chain(sybils) {
        n.stop().await;
    }
    chain.stop().await;
}

/// A miner, three caches announcing themselves in the DHT, and a publisher
/// hiring by discovery only, up to `discover` caches and `per_address` per
/// network address.
#[allow(clippy::type_complexity)]
async fn discovery_net(
    discover: usize,
    per_address: usize,
) -> (
    tempfile::TempDir,
    cachecash_chain_spec::ChainSpec,
    Node,
    Vec<(Node, Arc<CacheState>)>,
    Node,
    Arc<cachecash_node::cdn::publisher::PublisherState>,
    Vec<u8>,
) {
    let spec = fast_dev_spec(100);
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    let body = random_bytes(600_000);
    std::fs::write(origin.join("obj"), &body).unwrap();
    let chain = start_miner(&spec, &dir.path().join("chain")).await;
    let boot = vec![p2p_addr(&chain)];
    let mut caches = Vec::new();
    for i in 0..3 {
        let base = dir.path().join(format!("cache{i}"));
        caches.push(start_cache(&spec, &base, boot.clone(), 1 << 30, None).await);
    }
    // No --hire: the publisher finds the caches' provider records.
    let alice = cachecash_chain_spec::dev_accounts::dev_signing_key("alice").unwrap();
    let mut config = PublisherConfig::new(
        dir.path().join("publisher").join("publisher"),
        Origin::Dir(origin),
        EscrowSource::Open {
            funder: Arc::new(alice),
            plan: plan(),
        },
    );
    config.discover = discover;
    config.discover_per_address = per_address;
    let module = PublisherModule::new(config);
    let handle = module.handle();
    let publisher = start_with_modules(
        &spec,
        &dir.path().join("publisher"),
        None,
        boot,
        vec![Box::new(module)],
    )
    .await;
    let state = handle.get().cloned().unwrap();
    (dir, spec, chain, caches, publisher, state, body)
}

/// A peer that announces itself as a cache with an advert signed by
/// another key (or none that counts) is never hired; the real caches are.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_whose_advert_is_forged_is_not_hired() {
    use cachecash_cdn::advert::{CacheAdvert, advert_key};
    use parity_scale_codec::Encode;
    let (dir, spec, chain, caches, publisher, state, _) = discovery_net(4, 4).await;
    let genesis = spec.genesis_hash().unwrap();
    // A plain node announces itself as a cache, with an advert in its name
    // signed by some other key.
    let impostor = start_with_modules(
        &spec,
        &dir.path().join("impostor"),
        None,
        vec![p2p_addr(&chain)],
        vec![],
    )
    .await;
    let net = impostor.network().unwrap().clone();
    let me = cachecash_node::cdn::account_of(&net.local_peer_id()).unwrap();
    let other = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = CacheAdvert {
        cache: me,
        genesis,
        addrs: net.listen_addresses().iter().map(|a| a.to_vec()).collect(),
        quota: 1 << 40,
        free: 1 << 40,
        escrows: vec![],
        issued: now,
        expires: now + 600,
    }
    .sign(&other);
    net.provide(cachecash_node::cdn::caches_key(&genesis));
    net.put_record(
        advert_key(&genesis, &me),
        forged.encode(),
        Duration::from_secs(600),
    );
    wait_until(
        "the three caches hired and the impostor declined twice",
        DEADLINE,
        || state.caches.len() == 3 && state.counters.hires_declined.get() >= 2,
    )
    .await;
    assert!(!state.caches.is_hired(&me), "the impostor is not hired");
    impostor.stop().await;
    publisher.stop().await;
    for (n, _) in caches {
        n.stop().await;
    }
    chain.stop().await;
}

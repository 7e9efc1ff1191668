//! Every metric the Grafana dashboards in `deploy/grafana/` query exists in
//! the metrics of running nodes: a miner, a publisher, caches, a client
//! and a gateway (the text each serves at `/metrics`).

use cachecash_node::cdn::publisher::origin::Origin;
use cachecash_tests::cdn::*;
use std::collections::BTreeSet;
use std::path::Path;

/// `cachecash_*` names in a PromQL expression.
fn names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("cachecash_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == "expr" || k == "query" {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    exprs(x, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_grafana_dashboards_query_is_exported_by_a_running_node() {
    let origin = tempfile::tempdir().unwrap();
    std::fs::write(origin.path().join("a.bin"), random_bytes(300_000)).unwrap();
    let net = setup(Origin::Dir(origin.path().to_path_buf()), 2).await;
    let publisher = net.publisher_peer();
    let gw = net
        .start_gateway(|c| c.default_publisher = Some(publisher))
        .await;
    net.fetch("/a.bin", None).await.unwrap();
    let r = reqwest::get(format!("{}/a.bin", gw.url())).await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 300_000);
    // Families and types as each node's /metrics text declares them.
    let mut declared = BTreeSet::new();
    let mut nodes = vec![&net.chain, &net.client, &gw.node];
    nodes.extend(net.publisher.iter());
    nodes.extend(net.caches.iter().map(|(n, _, _)| n));
    for n in nodes {
        for line in n.chain().metrics().encode().lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    declared.insert((name.to_string(), kind.to_string()));
                }
            }
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana");
    let mut checked = 0;
    let mut missing = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut all = Vec::new();
        exprs(&v, &mut all);
        for e in all {
            for name in names(&e) {
                // A query names a sample: a counter's `_total`, a
                // histogram's `_bucket`/`_sum`/`_count`, or a gauge itself.
                let ok = declared.iter().any(|(family, kind)| match kind.as_str() {
                    "counter" => name == format!("{family}_total"),
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{family}{s}")),
                    _ => &name == family,
                });
                if !ok {
                    missing.insert(name);
                }
                checked += 1;
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboards query metrics no node exports: {missing:?}"
    );
    assert!(checked >= 40, "only {checked} metric references checked");
    gw.node.stop().await;
    net.stop().await;
}

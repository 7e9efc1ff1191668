//! The HTTP gateway with real, unmodified clients: curl, pip and a
//! python-tuf client fetch through a chain, a publisher, caches and a
//! gateway node, all in process on loopback. Nothing comes from the
//! internet: the wheel, the index and the TUF repository are built here.
//! The Python tools come from the venv `.ci/setup` creates; without it the
//! tests fail and say so.

use cachecash_node::cdn::publisher::origin::Origin;
use cachecash_tests::cdn::*;
use cachecash_tests::wait_until;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What curl saw.
#[derive(Debug)]
struct Seen {
    status: u16,
    headers: HashMap<String, String>,
    version: String,
    body: Vec<u8>,
}

/// Runs curl with `args` on `url` and returns the last response.
async fn curl(url: &str, args: &[&str]) -> Seen {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "60", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .await
        .expect("curl runs (.ci/setup installs it)");
    assert!(
        out.status.success(),
        "curl {args:?} {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&head).unwrap();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().to_string();
    let mut parts = first.split_whitespace();
    let version = parts.next().unwrap_or_default().to_string();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Seen {
        status,
        headers,
        version,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_gets_whole_objects_ranges_heads_and_304s_byte_exact_through_the_gateway() {
    let origin = tempfile::tempdir().unwrap();
    let big = random_bytes(3 * 1024 * 1024 + 123);
    std::fs::write(origin.path().join("big.bin"), &big).unwrap();
    std::fs::create_dir_all(origin.path().join("docs")).unwrap();
    std::fs::write(origin.path().join("docs/index.html"), b"<p>docs</p>\n").unwrap();
    std::fs::write(origin.path().join("hello.txt"), b"hello, gateway\n").unwrap();
    std::fs::write(origin.path().join("empty.bin"), b"").unwrap();
    let net = setup(Origin::Dir(origin.path().to_path_buf()), 4).await;
    let publisher = net.publisher_peer();
    let gw = net
        .start_gateway(|c| {
            c.aliases.insert("files".into(), publisher);
        })
        .await;
    let base = format!("{}/{publisher}", gw.url());

    // The whole object, with the origin's validators.
    let whole = curl(&format!("{base}/big.bin"), &[]).await;
    assert_eq!(whole.status, 200, "{whole:?}");
    assert_eq!(sha(&whole.body), sha(&big), "byte-exact against the origin");
    assert_eq!(whole.headers["content-length"], big.len().to_string());
    assert_eq!(whole.headers["accept-ranges"], "bytes");
    let etag = whole.headers["etag"].clone();
    let last_modified = whole.headers["last-modified"].clone();
    assert!(etag.starts_with('"'), "a quoted ETag: {etag}");

    // A range, a suffix range, an open range, an unsatisfiable one.
    let r = curl(&format!("{base}/big.bin"), &["-r", "1000-200999"]).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.headers["content-range"],
        format!("bytes 1000-200999/{}", big.len())
    );
    assert_eq!(r.body, big[1000..201_000]);
    let r = curl(&format!("{base}/big.bin"), &["-r", "-100"]).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &big[big.len() - 100..])
    );
    let tail = big.len() - 5000;
    let r = curl(&format!("{base}/big.bin"), &["-r", &format!("{tail}-")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &big[tail..]));
    let r = curl(&format!("{base}/big.bin"), &["-r", "99999999-"]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.headers["content-range"], format!("bytes */{}", big.len()));

    // HEAD and conditional requests.
    let h = curl(&format!("{base}/big.bin"), &["-I"]).await;
    assert_eq!(h.status, 200);
    assert_eq!(h.headers["content-length"], big.len().to_string());
    assert_eq!(h.headers["etag"], etag);
    let c = curl(
        &format!("{base}/big.bin"),
        &["-H", &format!("If-None-Match: {etag}")],
    )
    .await;
    assert_eq!((c.status, c.body.len()), (304, 0));
    assert_eq!(c.headers["etag"], etag);
    let c = curl(
        &format!("{base}/big.bin"),
        &["-H", &format!("If-Modified-Since: {last_modified}")],
    )
    .await;
    assert_eq!(c.status, 304);
    let c = curl(
        &format!("{base}/big.bin"),
        &["-H", "If-None-Match: \"something-else\""],
    )
    .await;
    assert_eq!((c.status, c.body.len()), (200, big.len()));

    // An alias, a directory index, an empty object, HTTP/2.
    let a = curl(&format!("{}/files/hello.txt", gw.url()), &[]).await;
    assert_eq!(
        (a.status, a.body.as_slice()),
        (200, &b"hello, gateway\n"[..])
    );
    assert_eq!(a.headers["content-type"], "text/plain");
    let d = curl(&format!("{base}/docs/"), &[]).await;
    assert_eq!((d.status, d.body.as_slice()), (200, &b"<p>docs</p>\n"[..]));
    assert_eq!(d.headers["content-type"], "text/html");
    let e = curl(&format!("{base}/empty.bin"), &[]).await;
    assert_eq!((e.status, e.body.len()), (200, 0));
    assert_eq!(e.headers["content-length"], "0");
    let h2 = curl(&format!("{base}/big.bin"), &["--http2-prior-knowledge"]).await;
    assert_eq!((h2.version.as_str(), h2.status), ("HTTP/2", 200));
    assert_eq!(sha(&h2.body), sha(&big));

    // Many clients at once share the gateway's links to the caches; each
    // gets its object byte-exact.
    let many: Vec<_> = (0..24)
        .map(|i| {
            let url = format!("{base}/big.bin");
            tokio::spawn(async move {
                let range = format!("{}-{}", i * 100_000, i * 100_000 + 65_535);
                (i, curl(&url, &["-r", &range]).await)
            })
        })
        .collect();
    for t in many {
        let (i, r) = t.await.unwrap();
        assert_eq!(r.status, 206, "concurrent request {i}: {r:?}");
        assert_eq!(r.body, big[i * 100_000..i * 100_000 + 65_536]);
    }

    // Errors: a missing object, an unknown publisher, a method.
    let m = curl(&format!("{base}/missing.bin"), &[]).await;
    assert_eq!(m.status, 404);
    assert!(String::from_utf8_lossy(&m.body).contains("does not exist"));
    let u = curl(&format!("{}/nobody/x", gw.url()), &[]).await;
    assert_eq!(u.status, 404);
    assert!(String::from_utf8_lossy(&u.body).contains("unknown publisher"));
    let p = curl(&format!("{base}/big.bin"), &["-X", "POST"]).await;
    assert_eq!(p.status, 405);

    // Every request is counted; none is left in progress.
    wait_until("no gateway request in progress", DEADLINE, || {
        gw.counters.active.get() == 0
    })
    .await;
    assert!(gw.counters.bytes.get() >= 2 * big.len() as u64);
    gw.node.stop().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn origin_failures_map_to_statuses_and_a_client_that_leaves_ends_its_fetch() {
    let big = random_bytes(16 * 1024 * 1024);
    let files = HashMap::from([("big.bin".to_string(), big.clone())]);
    let origin = http_origin(files).await;
    let net = setup(Origin::parse(&origin).unwrap(), 4).await;
    let publisher = net.publisher_peer();
    let gw = net
        .start_gateway(|c| {
            c.default_publisher = Some(publisher);
            c.fetch.session_timeout = Duration::from_secs(5);
            c.fetch.chunk_timeout = Duration::from_secs(1);
            c.pipe_bytes = 64 * 1024;
        })
        .await;
    let r = curl(&format!("{}/status/500", gw.url()), &[]).await;
    assert_eq!(r.status, 502, "origin failure → 502: {r:?}");
    let r = curl(&format!("{}/status/404", gw.url()), &[]).await;
    assert_eq!(r.status, 404, "origin 404 → 404");
    let r = curl(&format!("{}/big.bin", gw.url()), &[]).await;
    assert_eq!(sha(&r.body), sha(&big));
    assert_eq!(r.headers["cache-control"], "max-age=60", "passed through");

    // A client that reads a little and disconnects cancels the fetch.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < 200 * 1024 {
        got += s.read(&mut buf[got..]).await.unwrap();
    }
    assert_eq!(gw.counters.active.get(), 1, "the fetch is running");
    drop(s);
    wait_until(
        "the gateway ends the fetch of a client that left",
        DEADLINE,
        || gw.counters.active.get() == 0,
    )
    .await;
    let sent = gw.counters.bytes.get();
    assert!(
        sent < 2 * big.len() as u64,
        "the abandoned fetch stopped early ({sent} bytes sent in all)"
    );

    // No cache answers: a timeout status, not a hang or a 200.
    let mut net = net;
    for (n, _, _) in net.caches.drain(..) {
        n.stop().await;
    }
    let r = curl(&format!("{}/big.bin", gw.url()), &["-r", "0-99"]).await;
    assert_eq!(r.status, 504, "no cache answering → 504: {r:?}");
    gw.node.stop().await;
    net.stop().await;
}

/// The Python of the tools venv (`.ci/setup`).
fn python() -> PathBuf {
    let p = std::env::var_os("CACHECASH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/cachecash-venv/bin/python")
        });
    assert!(
        p.exists(),
        "no Python tools venv at {}: run .ci/setup (or set CACHECASH_PYTHON)",
        p.display()
    );
    p
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/gateway")
        .join(name)
}

/// Runs a command, failing the test with its output unless it succeeds.
async fn run(cmd: &mut tokio::process::Command) -> String {
    let out = cmd
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_INDEX_URL")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .env("PIP_NO_INPUT", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unmodified_pip_installs_a_package_through_the_gateway_and_sees_a_new_version() {
    let py = python();
    let origin = tempfile::tempdir().unwrap();
    run(tokio::process::Command::new(&py)
        .arg(fixture("pep503.py"))
        .arg(origin.path())
        .arg("1.0"))
    .await;
    let net = setup(Origin::Dir(origin.path().to_path_buf()), 4).await;
    let publisher = net.publisher_peer();
    let gw = net
        .start_gateway(|c| c.default_publisher = Some(publisher))
        .await;
    let index = format!("{}/simple/", gw.url());
    let work = tempfile::tempdir().unwrap();
    let venv = work.path().join("venv");
    run(tokio::process::Command::new(&py)
        .args(["-m", "venv"])
        .arg(&venv))
    .await;
    let vpy = venv.join("bin/python");
    let install = |upgrade: bool| {
        let mut c = tokio::process::Command::new(&vpy);
        c.args(["-m", "pip", "install", "--no-cache-dir", "--index-url"])
            .arg(&index);
        if upgrade {
            c.arg("--upgrade");
        }
        c.arg("demo-pkg");
        c
    };
    run(&mut install(false)).await;
    let v =
        run(tokio::process::Command::new(&vpy)
            .args(["-c", "import demo_pkg; print(demo_pkg.VERSION)"]))
        .await;
    assert_eq!(v.trim(), "1.0");

    // A new version at the origin: the index is revalidated, pip sees it.
    run(tokio::process::Command::new(&py)
        .arg(fixture("pep503.py"))
        .arg(origin.path())
        .arg("2.0"))
    .await;
    run(&mut install(true)).await;
    let v =
        run(tokio::process::Command::new(&vpy)
            .args(["-c", "import demo_pkg; print(demo_pkg.VERSION)"]))
        .await;
    assert_eq!(v.trim(), "2.0");
    gw.node.stop().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tuf_client_verifies_targets_sees_new_metadata_and_rejects_tampering_through_the_gateway()
{
    let py = python();
    let origin = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let repo = |cmd: &str| {
        let mut c = tokio::process::Command::new(&py);
        c.arg(fixture("tuf_repo.py"))
            .arg(cmd)
            .arg(origin.path())
            .arg(keys.path());
        c
    };
    run(&mut repo("init")).await;
    let net = setup(Origin::Dir(origin.path().to_path_buf()), 4).await;
    let publisher = net.publisher_peer();
    let gw = net.start_gateway(|_| {}).await;
    let base = format!("{}/{publisher}", gw.url());
    let work = tempfile::tempdir().unwrap();
    let root = origin.path().join("metadata/1.root.json");
    let client = || {
        let mut c = tokio::process::Command::new(&py);
        c.arg(fixture("tuf_client.py"))
            .arg(&base)
            .arg(&root)
            .arg(work.path())
            .arg("hello.txt");
        c
    };
    let parse = |s: &str| -> serde_json::Value { serde_json::from_str(s.trim()).unwrap() };
    let first = parse(&run(&mut client()).await);
    assert_eq!(first["timestamp"], 1);
    let expected = std::fs::read(origin.path().join("targets/hello.txt")).unwrap();
    assert_eq!(first["target"], hex::encode(&expected), "verified target");

    // New timestamp and snapshot: the client sees them (nothing pinned).
    run(&mut repo("bump")).await;
    let second = parse(&run(&mut client()).await);
    assert_eq!(
        (second["timestamp"].clone(), second["snapshot"].clone()),
        (2.into(), 2.into())
    );

    // A tampered target at the origin is served by the CDN byte-exact, and
    // rejected by the TUF client.
    std::fs::write(origin.path().join("targets/hello.txt"), b"evil bytes\n").unwrap();
    let out = client().output().await.unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v = parse(&String::from_utf8_lossy(&out.stdout));
    assert!(v["rejected"].as_str().unwrap().contains("Mismatch"), "{v}");
    gw.node.stop().await;
    net.stop().await;
}

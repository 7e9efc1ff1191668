//! The binary's `/metrics` reports where its memory goes: jemalloc's own
//! statistics (the allocator the binary installs) and each RocksDB
//! database's memtables and block cache, the chain's and the cache role's.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `GET /metrics`; the body.
fn get(url: &str) -> String {
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

fn value(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn metrics_report_the_allocator_and_every_database_of_a_cache_node() {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&std::ffi::OsStr> = ["--chain", "dev", "--base-path"]
        .map(std::ffi::OsStr::new)
        .into_iter()
        .chain([dir.path().as_os_str()])
        .chain(
            [
                "--port",
                "0",
                "--no-rpc",
                "--prometheus-port",
                "0",
                "--cache",
            ]
            .map(std::ffi::OsStr::new),
        )
        .collect();
    let (mut child, url) = common::spawn_until_url(&args, "metrics:");
    let deadline = Instant::now() + Duration::from_secs(60);
    // The cache role registers its database when it starts, after the
    // metrics server: wait for it.
    let mut text = String::new();
    while Instant::now() < deadline {
        text = get(&url);
        if text.contains("db=\"cdn_cache\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let allocated = value(&text, "cachecash_allocator_allocated_bytes").expect(&text);
    let resident = value(&text, "cachecash_allocator_resident_bytes").unwrap();
    assert!(
        allocated > 1e6,
        "a running node holds more than 1 MB: {allocated}"
    );
    assert!(resident >= allocated, "{resident} < {allocated}");
    for db in ["chain", "cdn_cache"] {
        for what in ["memtable", "block_cache", "table_readers"] {
            let sample = format!("cachecash_rocksdb_{what}_bytes{{db=\"{db}\"}}");
            assert!(value(&text, &sample).is_some(), "{sample} missing:\n{text}");
        }
    }
    // An open RocksDB always holds a memtable arena.
    assert!(value(&text, "cachecash_rocksdb_memtable_bytes{db=\"chain\"}").unwrap() > 0.0);
}

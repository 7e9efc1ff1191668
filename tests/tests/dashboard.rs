//! The web dashboard in a real browser: a cache node serving the dashboard
//! next to a chain, a publisher and a client, all in process; headless
//! Chromium driven by ChromeDriver (`.ci/setup` installs both) loads the
//! pages, runs their script against the node's RPC WebSocket, and the test
//! reads the rendered DOM.
//!
//! Screenshots (the test's artifacts) go to `CARGO_TARGET_TMPDIR/dashboard/`,
//! that is `$CARGO_TARGET_DIR/tmp/dashboard/` (`target/tmp/dashboard/` by
//! default): one PNG per page, replaced on every run; the test prints the
//! directory and checks each file is a PNG.

use cachecash_node::cdn::cache::{CacheConfig, CacheModule};
use cachecash_node::cdn::client::{FetchOptions, FetchRequest, fetch};
use cachecash_node::cdn::ledger::ChainLedger;
use cachecash_node::cdn::publisher::origin::Origin;
use cachecash_node::dashboard::DashboardModule;
use cachecash_tests::cdn::*;
use cachecash_tests::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Markup planted in the chain's name: the page must show it as text.
const PLANTED: &str = "<img src=x onerror=\"document.title='owned'\">Test chain";

/// An object path that is markup once its entities are decoded.
const PLANTED_PATH: &str = "&lt;b&gt;planted.bin";

/// The screenshots the test saves, in the order it takes them.
const SHOTS: [&str; 8] = [
    "chain",
    "cache",
    "explore-block",
    "explore-transaction",
    "explore-account",
    "explore-escrow",
    "publisher",
    "publisher-close-refused",
];

/// The eight bytes every PNG file starts with.
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The number written right after `marker` in `dom`, if any.
fn number_after(dom: &str, marker: &str) -> Option<u64> {
    let rest = dom.split(marker).nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `n` with a comma between groups of three digits, as the page writes it.
fn grouped(n: &str) -> String {
    let mut out = String::new();
    for (i, c) in n.chars().enumerate() {
        if i > 0 && (n.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Where the screenshots go: `$CARGO_TARGET_DIR/tmp/dashboard/`.
fn shots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard")
}

/// Panics unless `path` holds a non-empty PNG image.
fn assert_png(path: &std::path::Path) {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("screenshot {} was not saved: {e}", path.display()));
    assert!(
        bytes.len() > PNG_MAGIC.len() && bytes.starts_with(PNG_MAGIC),
        "screenshot {} is not a PNG ({} bytes)",
        path.display(),
        bytes.len()
    );
}

/// Headless Chromium driven over WebDriver (ChromeDriver), as a user's
/// browser would run the page.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    shots: PathBuf,
    _driver: tokio::process::Child,
}

impl Browser {
    async fn start() -> Browser {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(tool).exists(),
                "no {tool}: run .ci/setup (it installs Debian's chromium and chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let end = tokio::time::Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                tokio::time::Instant::now() < end,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"]
            }
        }}});
        let v = Self::send(&http, http.post(format!("{base}/session")), Some(caps)).await;
        let session = v["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_string();
        let shots = shots_dir();
        std::fs::create_dir_all(&shots).unwrap();
        // Screenshots from an earlier run must not pass for this run's.
        for name in SHOTS {
            let _ = std::fs::remove_file(shots.join(format!("{name}.png")));
        }
        println!("dashboard screenshots: {}", shots.display());
        Browser {
            http,
            base,
            session,
            shots,
            _driver: driver,
        }
    }

    async fn send(
        _http: &reqwest::Client,
        req: reqwest::RequestBuilder,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(b.to_string()),
            None => req,
        };
        let text = req.send().await.unwrap().text().await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["value"].clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    /// Opens `url` and waits until the page source satisfies `ready`.
    async fn page(&self, url: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
        Self::send(
            &self.http,
            self.http.post(self.url("/url")),
            Some(serde_json::json!({ "url": url })),
        )
        .await;
        self.wait_for(what, ready).await
    }

    /// Saves a screenshot of the page as `name`.png in the artifacts
    /// directory, and checks it is a PNG.
    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        assert!(SHOTS.contains(&name), "{name} is not listed in SHOTS");
        let v = Self::send(&self.http, self.http.get(self.url("/screenshot")), None).await;
        let b64 = v
            .as_str()
            .unwrap_or_else(|| panic!("the browser took no screenshot of {name}: {v}"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_else(|e| panic!("the screenshot of {name} is not base64: {e}"));
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|e| panic!("cannot save {}: {e}", path.display()));
        assert_png(&path);
        println!("screenshot: {}", path.display());
    }

    /// Replaces what the explorer's search box holds with `text` and
    /// presses Enter.
    async fn search(&self, text: &str) {
        let found = Self::send(
            &self.http,
            self.http.post(self.url("/element")),
            Some(serde_json::json!({ "using": "css selector", "value": "#search input" })),
        )
        .await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no search box on the explorer page: {found}"))
            .to_string();
        Self::send(
            &self.http,
            self.http.post(self.url(&format!("/element/{id}/clear"))),
            Some(serde_json::json!({})),
        )
        .await;
        // U+E007 is WebDriver's Enter key.
        Self::send(
            &self.http,
            self.http.post(self.url(&format!("/element/{id}/value"))),
            Some(serde_json::json!({ "text": format!("{text}\u{E007}") })),
        )
        .await;
    }

    /// Clicks the element at `css` (retrying while a redraw replaces it)
    /// until the page asks for confirmation; accepts it and returns the
    /// question.
    async fn click_and_confirm(&self, css: &str) -> String {
        let end = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found = Self::send(
                &self.http,
                self.http.post(self.url("/element")),
                Some(serde_json::json!({ "using": "css selector", "value": css })),
            )
            .await;
            if let Some(id) = found
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(|v| v.as_str())
            {
                Self::send(
                    &self.http,
                    self.http.post(self.url(&format!("/element/{id}/click"))),
                    Some(serde_json::json!({})),
                )
                .await;
                let text =
                    Self::send(&self.http, self.http.get(self.url("/alert/text")), None).await;
                if let Some(question) = text.as_str() {
                    Self::send(
                        &self.http,
                        self.http.post(self.url("/alert/accept")),
                        Some(serde_json::json!({})),
                    )
                    .await;
                    return question.to_string();
                }
            }
            assert!(
                tokio::time::Instant::now() < end,
                "no confirmation after clicking {css}: {found}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the current page satisfies `ready`, without reloading.
    async fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let end = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let v = Self::send(&self.http, self.http.get(self.url("/source")), None).await;
            let source = v.as_str().unwrap_or_default().to_string();
            if ready(&source) {
                return source;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "{what}: not shown within 30 s; the page is:\n{source}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn close(self) {
        let _ = self.http.delete(self.url("")).send().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_shows_the_live_head_a_caches_service_and_explorer_lookups_in_a_browser() {
    let mut v: serde_json::Value =
        serde_json::from_str(&fast_dev_spec(200).to_json(false).unwrap()).unwrap();
    v["name"] = serde_json::Value::from(PLANTED);
    let spec = cachecash_chain_spec::ChainSpec::from_json_str(&v.to_string()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let chain = start_miner(&spec, &dir.path().join("chain")).await;
    let boot = vec![p2p_addr(&chain)];
    // The cache node serves the dashboard.
    let dashboard = DashboardModule::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dash = format!("http://{}", dashboard.local_addr());
    let cache_base = dir.path().join("cache");
    let cache = CacheModule::open(CacheConfig::new(cache_base.join("cache"), 1 << 30)).unwrap();
    let cache_node = start_with_modules(
        &spec,
        &cache_base,
        None,
        boot.clone(),
        vec![Box::new(cache), Box::new(dashboard)],
    )
    .await;
    let origin = tempfile::tempdir().unwrap();
    let body = random_bytes(1 << 20);
    std::fs::write(origin.path().join("one.bin"), &body).unwrap();
    // An object whose path is markup once entities are decoded (`<` and
    // `>` are not path characters, `&` and `;` are): a page that parsed
    // text as HTML would show a bold element instead of the path.
    let planted = random_bytes(4 << 10);
    std::fs::write(origin.path().join(PLANTED_PATH), &planted).unwrap();
    // The publisher node serves a dashboard with actions on.
    let publisher_dashboard = DashboardModule::bind("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .with_actions(true);
    let publisher_dash = format!("http://{}", publisher_dashboard.local_addr());
    let (publisher, state) = start_publisher_with_modules(
        &spec,
        &dir.path().join("publisher"),
        boot.clone(),
        Origin::Dir(origin.path().to_path_buf()),
        vec![p2p_addr(&cache_node)],
        plan(),
        |_| {},
        vec![Box::new(publisher_dashboard)],
    )
    .await;
    wait_until("escrow open and the cache hired", DEADLINE, || {
        state.escrow().is_some() && state.caches.len() == 1
    })
    .await;
    let client = start_with_modules(&spec, &dir.path().join("client"), None, boot, vec![]).await;
    learn_publisher(&client, &publisher).await;
    let publisher_peer = publisher.network().unwrap().local_peer_id();
    for (path, expect) in [
        ("/one.bin".to_string(), &body),
        (format!("/{PLANTED_PATH}"), &planted),
    ] {
        let mut out = Vec::new();
        fetch(
            client.network().unwrap(),
            Arc::new(ChainLedger::new(
                client.chain().clone(),
                client.pool().clone(),
            )),
            &FetchRequest {
                publisher: publisher_peer,
                path,
                range: None,
            },
            &mut out,
            &FetchOptions::default(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(&out, expect);
    }
    // A transfer for the explorer to find by its hash: bob pays dave 1.5 CCH.
    let chain_rpc = chain.rpc_addr().unwrap();
    let cache_rpc = cache_node.rpc_addr().unwrap();
    let bob = rpc(
        chain_rpc,
        "state_getAccount",
        vec![dev("bob").to_string().into()],
    )
    .await
    .unwrap();
    let nonce = bob["nonce"].as_u64().expect("bob's nonce");
    let tx = transfer(&chain, "bob", nonce, dev("dave"), 3 * UNIT / 2);
    let tx_hash = tx.hash();
    submit_over_rpc(chain_rpc, &tx).await;
    wait_for_inclusion(&cache_node, tx_hash, DEADLINE).await;
    let found = rpc(
        cache_rpc,
        "chain_getTransaction",
        vec![tx_hash.to_string().into()],
    )
    .await
    .unwrap();
    let tx_block = found["blockNumber"].as_u64().expect("the transfer's block");

    let browser = Browser::start().await;
    // Chain page: the live head, recent blocks, the planted name as text.
    let before = cache_node.chain().head().header.number;
    let dom = browser
        .page(&format!("{dash}/#/chain"), "the chain page", |d| {
            d.contains("live · block #") && d.contains("Recent blocks")
        })
        .await;
    let after = cache_node.chain().head().header.number;
    browser.screenshot("chain").await;
    // The head the page shows is the node's: between the heads read before
    // and after the page was read (blocks keep coming meanwhile).
    let live = number_after(&dom, "live · block #").expect("the live head's number");
    assert!(
        (before..=after).contains(&live),
        "the live head #{live} is the node's (#{before} to #{after}): {dom}"
    );
    let shown = number_after(&dom, "<dt>block</dt><dd>#").expect("the head section's block");
    assert!(
        (before..=after).contains(&shown),
        "the head section's block #{shown} is the node's (#{before} to #{after}): {dom}"
    );
    // Its difficulty, from that block's target: 2^256 / (target + 1).
    let hash = rpc(cache_rpc, "chain_getBlockHash", vec![shown.into()])
        .await
        .unwrap();
    let header = rpc(cache_rpc, "chain_getHeader", vec![hash]).await.unwrap();
    let target = cachecash_runtime::Target::from_hex(header["target"].as_str().unwrap()).unwrap();
    let difficulty = format!(
        "<dt>difficulty</dt><dd>{} expected hashes per block (target {})</dd>",
        grouped(&target.work().to_string()),
        target.to_hex()
    );
    assert!(dom.contains(&difficulty), "{difficulty} is shown: {dom}");
    assert!(!dom.contains("<dt>target</dt>"), "no bare target: {dom}");
    assert!(
        dom.contains("&lt;img src=x onerror="),
        "the planted markup is shown as text: {dom}"
    );
    assert!(
        !dom.contains("<img src=\"x\""),
        "and never parsed as markup"
    );

    // Cache page: bytes served and the tickets the fetch left.
    let dom = browser
        .page(&format!("{dash}/#/cache"), "the cache page", |d| {
            d.contains("Earnings") && d.contains("Tickets</h3>")
        })
        .await;
    browser.screenshot("cache").await;
    assert!(
        dom.contains("<dt>served</dt><dd>1.0 MiB in "),
        "bytes served: {dom}"
    );
    assert!(
        [">held<", ">proven<", ">lost<", ">won<", ">final<"]
            .iter()
            .any(|s| dom.contains(s)),
        "tickets by state: {dom}"
    );
    assert!(
        !dom.contains("claim-now") && !dom.contains("<button"),
        "read-only by default: no action offered: {dom}"
    );

    // Explorer: a block by number; an account.
    browser
        .page(&format!("{dash}/#/explore/1"), "block #1", |d| {
            d.contains("Block #1")
        })
        .await;
    browser.screenshot("explore-block").await;
    // A transaction by its hash, typed into the search box (which new
    // heads leave alone): its fields and a link to its block.
    browser.search(&tx_hash.to_string()).await;
    let dom = browser
        .wait_for("the transfer", |d| d.contains("Transaction</h3>"))
        .await;
    browser.screenshot("explore-transaction").await;
    let bob = dev("bob");
    let dave = dev("dave");
    for shown in [
        format!("<dt>hash</dt><dd>{tx_hash}</dd>"),
        format!("<dt>block</dt><dd><a href=\"#/explore/{tx_block}\">#{tx_block}</a></dd>"),
        format!("<dt>signer</dt><dd><a href=\"#/explore/{bob}\">{bob}</a></dd>"),
        format!("<dt>nonce</dt><dd>{nonce}</dd>"),
        "<dt>call</dt><dd>transfer</dd>".to_string(),
        format!("<dt>dest</dt><dd><a href=\"#/explore/{dave}\">{dave}</a></dd>"),
        "<dt>amount</dt><dd>1.5 CCH</dd>".to_string(),
    ] {
        assert!(dom.contains(&shown), "the transfer shows {shown}: {dom}");
    }
    // Its block lists it with its signer and call.
    let dom = browser
        .page(
            &format!("{dash}/#/explore/{tx_block}"),
            "the transfer's block",
            |d| d.contains(&format!("Block #{tx_block}<")),
        )
        .await;
    assert!(
        dom.contains(&format!(">{tx_hash}</a>"))
            && dom.contains(&format!(">{bob}</a>"))
            && dom.contains(">transfer<"),
        "the block lists the transfer: {dom}"
    );
    let alice = hex::encode(dev("alice").0);
    let dom = browser
        .page(
            &format!("{dash}/#/explore/0x{alice}"),
            "alice's account",
            |d| d.contains("Account</h3>"),
        )
        .await;
    let balance = dom
        .split("<dt>balance</dt><dd>")
        .nth(1)
        .and_then(|r| r.split(" CCH</dd>").next())
        .and_then(|b| b.parse::<f64>().ok());
    assert!(
        balance.is_some_and(|b| b > 900_000.0),
        "alice's balance (funded at genesis, less her escrow): {dom}"
    );
    // Her history: the escrow the publisher opened with her key.
    let dom = browser
        .page(
            &format!("{dash}/#/explore/0x{alice}"),
            "alice's history",
            |d| d.contains("History</h3>") && d.contains(">escrowOpen<"),
        )
        .await;
    browser.screenshot("explore-account").await;
    let escrow = state.escrow().unwrap().id;
    assert!(dom.contains("Account</h3>"), "{dom}");
    // The escrow: its record and its history.
    browser
        .page(&format!("{dash}/#/explore/{escrow}"), "the escrow", |d| {
            d.contains("Escrow</h3>") && d.contains(">escrowOpen<")
        })
        .await;
    browser.screenshot("explore-escrow").await;
    // The miner's history: its rewards.
    let ferdie = hex::encode(dev("ferdie").0);
    browser
        .page(
            &format!("{dash}/#/explore/0x{ferdie}"),
            "the miner's history",
            |d| d.contains(">mined<"),
        )
        .await;

    // The publisher's page: catalog, hired cache, escrows, and (actions
    // on) a close button that asks first and shows the node's answer.
    let dom = browser
        .page(
            &format!("{publisher_dash}/#/publisher"),
            "the publisher page",
            |d| d.contains("Caches hired") && d.contains("/one.bin") && d.contains(">Close<"),
        )
        .await;
    browser.screenshot("publisher").await;
    assert!(dom.contains(">healthy<"), "the hired cache's health: {dom}");
    // The planted path is shown as the text it is, never as markup.
    assert!(
        dom.contains("/&amp;lt;b&amp;gt;planted.bin"),
        "the planted path as text: {dom}"
    );
    assert!(!dom.contains("<b>planted"), "and never parsed as markup");
    let question = browser.click_and_confirm("td button").await;
    assert!(
        question.contains(&format!("Close escrow {escrow}?")),
        "the action asks first: {question}"
    );
    let unlock = state.escrow().unwrap().terms().unlock_height().unwrap();
    browser
        .wait_for("the refused close", |d| {
            d.contains("publisher_closeEscrow refused: ")
                && d.contains(&format!("cannot be closed before block #{unlock}"))
        })
        .await;
    browser.screenshot("publisher-close-refused").await;
    browser.close().await;
    for name in SHOTS {
        assert_png(&shots_dir().join(format!("{name}.png")));
    }

    client.stop().await;
    publisher.stop().await;
    cache_node.stop().await;
    chain.stop().await;
}

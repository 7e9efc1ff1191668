//! The web dashboard in a real browser: a cache node serving the dashboard
//! next to a chain, a publisher and a client, all in process; headless
//! Chromium driven by ChromeDriver (`.ci/setup` installs both) loads the
//! pages, runs their script against the node's RPC WebSocket, and the test
//! reads the rendered DOM.
//! Screenshots go to `CARGO_TARGET_TMPDIR/dashboard/`.

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
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
        std::fs::create_dir_all(&shots).unwrap();
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

    /// Saves a screenshot as `name`.png.
    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let v = Self::send(&self.http, self.http.get(self.url("/screenshot")), None).await;
        if let Some(b64) = v.as_str()
            && let Ok(png) = base64::engine::general_purpose::STANDARD.decode(b64)
        {
            std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        }
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

    let browser = Browser::start().await;
    // Chain page: the live head, recent blocks, the planted name as text.
    let dom = browser
        .page(&format!("{dash}/#/chain"), "the chain page", |d| {
            d.contains("live · block #") && d.contains("Recent blocks")
        })
        .await;
    browser.screenshot("chain").await;
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

    client.stop().await;
    publisher.stop().await;
    cache_node.stop().await;
    chain.stop().await;
}

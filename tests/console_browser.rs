//! The console in a real browser: headless Chromium, driven through ChromeDriver, watches the
//! teaching scenario and sees both agents, then the teaching of service1 to A as it happens
//! (the page is not reloaded: the update arrives as a server-sent event). It saves a
//! screenshot (`target/tmp/console.png`; `docs/console.png` is one).
//!
//! Chromium and ChromeDriver are Debian's `chromium` and `chromium-driver`;
//! `.ci/install-browser` installs them when they are missing (as root), and this test runs it
//! first.

#[path = "support/teaching_pair.rs"]
mod teaching_pair;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use selflet::SourceFile;
use selflet::console::Console;
use teaching_pair::teaching_pair;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PATIENCE: Duration = Duration::from_secs(60);

/// ChromeDriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let installed = Command::new(format!("{ROOT}/.ci/install-browser"))
            .status()
            .expect("runs .ci/install-browser");
        assert!(
            installed.success(),
            "installing chromium and chromium-driver failed"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless Chromium session with a fresh profile; ChromeDriver may take a moment to
    /// listen.
    async fn session(&self, profile: &std::path::Path) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(connector.clone())
                .capabilities(caps.clone())
                .connect(&self.url)
                .await
            {
                Ok(client) => return client,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no WebDriver session: {last:?}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn present(client: &Client, css: &str) -> bool {
    !client.find_all(Locator::Css(css)).await.unwrap().is_empty()
}

async fn wait_for(client: &Client, css: &str) {
    client
        .wait()
        .at_most(PATIENCE)
        .every(Duration::from_millis(100))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("the page shows no `{css}`: {e}"));
}

const LEARNED: &str = r#"#timeline li[data-topic="service.learned"][data-agent="a"]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_both_agents_then_the_teaching_of_service1_as_it_happens() {
    let driver = Driver::start();
    let console = Console::new();
    let (a, b) = teaching_pair(&console, Duration::from_millis(500), false).await;
    let addr = console.serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    let profile = std::env::temp_dir().join(format!("selflet-chromium-{}", std::process::id()));
    let client = driver.session(&profile).await;
    client.goto(&format!("http://{addr}/")).await.unwrap();

    wait_for(
        &client,
        r#"#agents tr[data-agent="a"][data-state="running"]"#,
    )
    .await;
    wait_for(
        &client,
        r#"#agents tr[data-agent="b"][data-state="running"]"#,
    )
    .await;
    wait_for(&client, r#"#graph [data-node="a"]"#).await;
    assert!(
        !present(&client, LEARNED).await,
        "nothing is taught before A has its policy"
    );
    // A mark that a reload would wipe: the teaching must arrive on this very page.
    client
        .execute("window.selfletProbe = 1;", vec![])
        .await
        .unwrap();

    // Listing 1 of the paper: from now on a frequent service is asked for in can-teach mode.
    let policy = SourceFile::read(format!("{ROOT}/policies/teach_frequent.rhai")).unwrap();
    a.load_policy(policy).unwrap();
    wait_for(&client, &format!(r#"{LEARNED}[data-service="service1"]"#)).await;
    wait_for(
        &client,
        r#"#graph line[data-edge="teach"][data-from="b"][data-to="a"]"#,
    )
    .await;
    wait_for(
        &client,
        r#"#agents tr[data-agent="a"] .learned[data-service="service1"]"#,
    )
    .await;
    let probe = client
        .execute("return window.selfletProbe;", vec![])
        .await
        .unwrap();
    assert_eq!(probe, serde_json::json!(1), "the page was not reloaded");
    // The rule that reacted is in the timeline, in the teaching's trace.
    let fired = client
        .find(Locator::Css(
            r#"#timeline li[data-topic="policy.fired"][data-agent="a"]"#,
        ))
        .await
        .unwrap();
    let learned = client
        .find(Locator::Css(&format!(
            r#"{LEARNED}[data-service="service1"]"#
        )))
        .await
        .unwrap();
    let trace_of = async |e: &fantoccini::elements::Element| e.attr("data-trace").await.unwrap();
    let learned_trace = trace_of(&learned).await.unwrap_or_default();
    assert_eq!(learned_trace.len(), 16, "the teaching carries a trace");
    let rules = client
        .find_all(Locator::Css(&format!(
            r#"#timeline li[data-topic="policy.fired"][data-trace="{learned_trace}"]"#
        )))
        .await
        .unwrap();
    assert_eq!(rules.len(), 1, "one rule firing led to this teaching");
    assert!(
        fired
            .text()
            .await
            .unwrap()
            .contains("learn frequent remote services")
    );

    // All three teachings, for the screenshot.
    for s in ["service2", "service3"] {
        wait_for(&client, &format!(r#"{LEARNED}[data-service="{s}"]"#)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let png = client.screenshot().await.unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png");
    std::fs::write(&shot, &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!("screenshot: {}", shot.display());

    client.close().await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(profile);
}

//! A headless Chromium driven over the W3C WebDriver protocol, for the web
//! console's tests.
//!
//! [`Browser::start`] runs Debian's `chromedriver` (`/usr/bin/chromedriver`,
//! driving `/usr/bin/chromium`; `tests/run.sh` installs both) on a free
//! loopback port with a throwaway profile, opens one session, and ends both
//! when dropped. The WebDriver client is `fantoccini`; this wraps the
//! handful of its commands the tests use (navigate, find elements by CSS
//! selector, type, click, read text and the page source, cookies,
//! screenshots) as blocking calls.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A Chromium session (and the chromedriver that runs it). The tests are
/// synchronous: each command runs to completion on a runtime of its own.
pub struct Browser {
    driver: Child,
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    _profile: tempfile::TempDir,
}

/// An element on the current page.
#[derive(Clone, Debug)]
pub struct Element(fantoccini::elements::Element);

impl Browser {
    /// Starts chromedriver and a headless Chromium with no network beyond
    /// loopback traffic the tests make (no sync, updates, QUIC or
    /// background requests).
    pub fn start() -> Browser {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "{CHROMEDRIVER} and {CHROMIUM} are needed (tests/run.sh installs Debian's chromium and chromium-driver)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1366,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen.
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = loop {
            let connected = rt.block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities.clone())
                    .connect(&url),
            );
            match connected {
                Ok(client) => break client,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "no WebDriver session from chromedriver: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        Browser {
            driver,
            rt,
            client: Some(client),
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the session is open until drop")
    }

    /// Runs one command; panics with the driver's message on an error.
    fn run<T, E: std::fmt::Display>(&self, what: &str, f: impl Future<Output = Result<T, E>>) -> T {
        self.rt
            .block_on(f)
            .unwrap_or_else(|e| panic!("WebDriver {what}: {e}"))
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.run("goto", self.client().goto(url));
    }

    /// The URL of the current page.
    pub fn url(&self) -> String {
        self.run("current url", self.client().current_url())
            .to_string()
    }

    /// The current page's serialized DOM.
    pub fn source(&self) -> String {
        self.run("source", self.client().source())
    }

    /// Every element matching a CSS selector (possibly none).
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.run("find elements", self.client().find_all(Locator::Css(css)))
            .into_iter()
            .map(Element)
            .collect()
    }

    /// The one element matching a CSS selector; panics (with the page's
    /// text) when there is none.
    pub fn find(&self, css: &str) -> Element {
        self.find_all(css).into_iter().next().unwrap_or_else(|| {
            panic!(
                "no element {css:?} on {}:\n{}",
                self.url(),
                self.body_text()
            )
        })
    }

    /// The visible text of an element.
    pub fn text(&self, e: &Element) -> String {
        self.run("element text", e.0.text())
    }

    /// The visible text of the page's body.
    pub fn body_text(&self) -> String {
        match self.find_all("body").first() {
            Some(b) => self.text(b),
            None => String::new(),
        }
    }

    /// Types `text` into an input.
    pub fn type_into(&self, e: &Element, text: &str) {
        self.run("clear", e.0.clear());
        self.run("send keys", e.0.send_keys(text));
    }

    /// Clicks an element.
    pub fn click(&self, e: &Element) {
        self.run("click", e.0.click());
    }

    /// Clicks a button that submits its form and waits until the page it
    /// was on is gone (a click can return before the navigation starts);
    /// the next command then waits for the new page to load.
    pub fn submit(&self, e: &Element) {
        self.click(e);
        let deadline = Instant::now() + Duration::from_secs(60);
        // The old page's element goes stale once the new page replaces it.
        while self.rt.block_on(e.0.tag_name()).is_ok() {
            assert!(
                Instant::now() < deadline,
                "the page did not change after a submit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every cookie the browser holds for the current page, in WebDriver's
    /// terms (`name`, `value`, `path`, `httpOnly`, `secure`, `sameSite`).
    pub fn cookies(&self) -> Vec<Value> {
        self.run("cookies", self.client().get_all_cookies())
            .into_iter()
            .map(|c| {
                json!({
                    "name": c.name(),
                    "value": c.value(),
                    "path": c.path(),
                    "httpOnly": c.http_only().unwrap_or(false),
                    "secure": c.secure().unwrap_or(false),
                    "sameSite": c.same_site().map(|s| s.to_string()),
                })
            })
            .collect()
    }

    /// Forgets every cookie of the current page's site.
    pub fn delete_cookies(&self) {
        self.run("delete cookies", self.client().delete_all_cookies());
    }

    /// Saves a PNG of the window to `dir/name.png` and returns its path.
    pub fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let png = self.run("screenshot", self.client().screenshot());
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

//! A headless Chromium driven over the W3C WebDriver protocol, for the web
//! console's tests.
//!
//! [`Browser::start`] runs Debian's `chromedriver` (`/usr/bin/chromedriver`,
//! driving `/usr/bin/chromium`; `tests/run.sh` installs both) on a free
//! loopback port with a throwaway profile, opens one session, and ends both
//! when dropped. The client is the handful of WebDriver commands the tests
//! use, over the blocking `reqwest` client the other tests already build:
//! navigate, find elements by CSS selector, type, click, read text and the
//! page source, cookies, screenshots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A Chromium session (and the chromedriver that runs it).
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

/// An element on the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

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
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            http,
            _profile: tempfile::tempdir().expect("a temporary profile directory"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = browser._profile.path().display().to_string();
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
            format!("--user-data-dir={profile}"),
        ];
        let answer = browser.command(
            reqwest::Method::POST,
            "/session",
            json!({
                "capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                }}
            }),
        );
        browser.session = answer["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
    }

    /// Sends one WebDriver command; panics with the driver's message on an
    /// error answer. Returns `value`.
    fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if method == reqwest::Method::POST {
            request = request.json(&body);
        }
        let r = request
            .send()
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = r.status();
        let v: Value = r
            .json()
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: not JSON: {e}"));
        assert!(
            status.is_success(),
            "WebDriver {method} {path} failed ({status}): {}",
            v["value"]
        );
        v["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn post(&self, rest: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, &self.session_path(rest), body)
    }

    fn get(&self, rest: &str) -> Value {
        self.command(reqwest::Method::GET, &self.session_path(rest), Value::Null)
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    /// The URL of the current page.
    pub fn url(&self) -> String {
        self.get("/url").as_str().unwrap_or_default().to_owned()
    }

    /// The current page's serialized DOM.
    pub fn source(&self) -> String {
        self.get("/source").as_str().unwrap_or_default().to_owned()
    }

    /// Every element matching a CSS selector (possibly none).
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.post(
            "/elements",
            json!({ "using": "css selector", "value": css }),
        )
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_owned())))
                .collect()
        })
        .unwrap_or_default()
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
        self.get(&format!("/element/{}/text", e.0))
            .as_str()
            .unwrap_or_default()
            .to_owned()
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
        self.post(&format!("/element/{}/clear", e.0), json!({}));
        self.post(&format!("/element/{}/value", e.0), json!({ "text": text }));
    }

    /// Clicks an element.
    pub fn click(&self, e: &Element) {
        self.post(&format!("/element/{}/click", e.0), json!({}));
    }

    /// Clicks a button that submits its form and waits until the page it
    /// was on is gone (a click can return before the navigation starts);
    /// the next command then waits for the new page to load.
    pub fn submit(&self, e: &Element) {
        self.click(e);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let still_there = self
                .http
                .get(format!(
                    "{}{}",
                    self.base,
                    self.session_path(&format!("/element/{}/name", e.0))
                ))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if !still_there {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page did not change after a submit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every cookie the browser holds for the current page, as WebDriver
    /// reports them (`name`, `value`, `httpOnly`, `secure`, `sameSite`, …).
    pub fn cookies(&self) -> Vec<Value> {
        self.get("/cookie").as_array().cloned().unwrap_or_default()
    }

    /// Forgets every cookie of the current page's site.
    pub fn delete_cookies(&self) {
        self.command(
            reqwest::Method::DELETE,
            &self.session_path("/cookie"),
            Value::Null,
        );
    }

    /// Saves a PNG of the window to `dir/name.png` and returns its path.
    pub fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let b64 = self.get("/screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("a screenshot"))
            .expect("a base64 screenshot");
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .http
                .delete(format!("{}/session/{}", self.base, self.session))
                .send();
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

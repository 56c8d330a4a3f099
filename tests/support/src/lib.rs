//! Support for Vigil's integration tests (`tests/*.rs`, run as the
//! `vigil-host` package's integration tests so they can start the real
//! `vigil` binary).
//!
//! - Hostile guests built from `tests/guests/` as real components:
//!   [`GUEST_LOOP`], [`GUEST_TRAP`], … (paths to `.wasm` files).
//! - [`fixture`]: paths of the JSON Lines fixtures in `tests/fixtures/`.
//! - [`Workdir`]: a temporary directory with a config file, an audit log,
//!   and helpers to read the audit records back.
//! - [`fake_idp`]: a fake Okta / Microsoft Graph / webhook HTTP server on
//!   loopback that records every request and injects faults.
//! - [`nats`]: a throwaway NATS server with JetStream on loopback.
//! - [`registry`]: a throwaway OCI registry (Debian's `docker-registry`)
//!   on loopback.
//! - [`browser`]: a headless Chromium driven through chromedriver (the web
//!   console's tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

pub mod browser;
pub mod fake_idp;
pub mod nats;
pub mod process;
pub mod registry;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fixture file in `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    let path = repo_root().join("tests/fixtures").join(name);
    assert!(path.exists(), "fixture {} is missing", path.display());
    path
}

/// A temporary directory holding a test's config, audit log and cache.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Default for Workdir {
    fn default() -> Self {
        Self::new()
    }
}

impl Workdir {
    pub fn new() -> Self {
        Workdir {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn audit_path(&self) -> PathBuf {
        self.path().join("audit.jsonl")
    }

    /// Writes `vigil.toml`: the audit log and cache inside this directory,
    /// followed by `body`.
    pub fn config(&self, body: &str) -> PathBuf {
        let path = self.path().join("vigil.toml");
        let text = format!("audit_path = \"audit.jsonl\"\ncache_dir = \"cache\"\n{body}\n");
        std::fs::write(&path, text).expect("write vigil.toml");
        path
    }

    /// Every audit record, parsed.
    pub fn audit_records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.audit_path()).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }

    /// Audit records of one `type`.
    pub fn records_of(&self, kind: &str) -> Vec<Value> {
        self.audit_records()
            .into_iter()
            .filter(|r| r["type"] == kind)
            .collect()
    }
}

/// Runs the `vigil` binary at `bin` (the test's `env!("CARGO_BIN_EXE_vigil")`)
/// in `cwd`, with compiled components cached under `cache_home`.
pub fn vigil(bin: &str, args: &[&str], cwd: &Path, cache_home: &Path) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env("XDG_CACHE_HOME", cache_home)
        .env("VIGIL_LOG", "info")
        .output()
        .expect("run vigil")
}

/// Lossy UTF-8 of a process's output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Workdir {
    /// `vigil run --config vigil.toml --events EVENTS` in this directory,
    /// with `config_body` written to `vigil.toml` (see [`Workdir::config`]).
    pub fn run(&self, bin: &str, config_body: &str, events: &Path, cache_home: &Path) -> Output {
        let config = self.config(config_body);
        let args = [
            "run",
            "--config",
            config.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ];
        vigil(bin, &args, self.path(), cache_home)
    }
}

/// `(action, target, decision)` of every `action` record, in order.
pub fn action_triples(records: &[Value]) -> Vec<(String, String, String)> {
    records
        .iter()
        .filter(|r| r["type"] == "action")
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default().to_owned(),
                r["target"].as_str().unwrap_or_default().to_owned(),
                r["decision"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

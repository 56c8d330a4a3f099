//! Starts a throwaway Docker registry (Debian's `docker-registry`, distribution 2.8) for tests.
//!
//! Each call starts its own `docker-registry serve` on 127.0.0.1 with a free port and a temporary
//! storage directory, waits until `GET /v2/` answers, and returns a guard that kills it when
//! dropped. It never uses the system service that the Debian package installs on :5000.
//!
//! Needs `/usr/bin/docker-registry` (`apt-get install -y docker-registry`); the path can be
//! overridden with `DOCKER_REGISTRY_BIN`.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const DEFAULT_BINARY: &str = "/usr/bin/docker-registry";
/// The registry starts in well under a second; this only bounds a broken start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// A port picked free may be taken before the registry binds it; then try another.
const START_ATTEMPTS: usize = 5;

/// A running test registry; dropping it kills the process and deletes its storage.
pub struct RegistryGuard {
    /// `127.0.0.1:<port>`, the registry part of references (`{addr}/acme/pack:1.0`).
    pub addr: String,
    child: Child,
    dir: TempDir,
}

impl RegistryGuard {
    /// What the registry logged so far (warnings and per-request errors), for failing tests.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for RegistryGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an anonymous registry.
pub fn start_registry() -> RegistryGuard {
    start(None)
}

/// Starts a registry that demands HTTP basic auth; `htpasswd_line` is `user:<bcrypt hash>` as
/// written by `htpasswd -nbB` (the registry reads only bcrypt).
pub fn start_registry_with_htpasswd(htpasswd_line: &str) -> RegistryGuard {
    start(Some(htpasswd_line))
}

fn start(htpasswd_line: Option<&str>) -> RegistryGuard {
    let binary = std::env::var_os("DOCKER_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BINARY));
    assert!(
        binary.exists(),
        "{} is missing: install it with `apt-get install -y docker-registry`",
        binary.display()
    );
    let mut last_failure = String::new();
    for _ in 0..START_ATTEMPTS {
        let dir = tempfile::Builder::new()
            .prefix("vigil-registry-")
            .tempdir()
            .expect("create registry temp dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        fs::write(&config, config_yaml(&dir, &addr, htpasswd_line)).expect("write config");
        if let Some(line) = htpasswd_line {
            fs::write(dir.path().join("htpasswd"), format!("{line}\n")).expect("write htpasswd");
        }
        let log = fs::File::create(dir.path().join("registry.log")).expect("create log");
        let child = Command::new(&binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut guard = RegistryGuard { addr, child, dir };
        match wait_until_ready(&mut guard) {
            Ok(()) => return guard,
            Err(reason) => {
                last_failure = format!("{reason}\n--- registry log ---\n{}", guard.log())
            }
        }
    }
    panic!("the test registry did not start after {START_ATTEMPTS} attempts: {last_failure}");
}

/// Registry 2.8 configuration: loopback only, filesystem storage in the temp dir, and nothing
/// that reaches out (no notifications, proxy, redis, reporting; health checks and upload purging
/// off, access log off to keep test output short).
fn config_yaml(dir: &TempDir, addr: &str, htpasswd_line: Option<&str>) -> String {
    let storage = dir.path().join("storage");
    let auth = match htpasswd_line {
        Some(_) => format!(
            "auth:\n  htpasswd:\n    realm: vigil-test\n    path: {}\n",
            dir.path().join("htpasswd").display()
        ),
        None => String::new(),
    };
    format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  secret: vigil-test-secret
health:
  storagedriver:
    enabled: false
{auth}",
        storage = storage.display()
    )
}

/// Asks the kernel for a free loopback port; the listener is closed before the registry binds.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port()
}

/// Polls `GET /v2/` until the registry answers (200, or 401 when it wants credentials), failing
/// early if the process exits (for instance because the port was taken meanwhile).
fn wait_until_ready(guard: &mut RegistryGuard) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = guard.child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("docker-registry exited with {status}"));
        }
        if let Some(code) = v2_status(&guard.addr)
            && (code == 200 || code == 401)
        {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(20));
    }
    Err(format!("GET /v2/ on {} did not answer in time", guard.addr))
}

/// The HTTP status of `GET /v2/`, if something answers on `addr`.
fn v2_status(addr: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

//! A throwaway NATS server with JetStream (Debian's `nats-server`) on
//! loopback: its own free port and temporary store, killed on drop; it can
//! be stopped and started again on the same port and store (an outage).
//!
//! Needs `nats-server` (`apt-get install -y nats-server`; `tests/run.sh`
//! installs it); `NATS_SERVER_BIN` overrides the path. It never uses the
//! machine's own server on :4222.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct NatsGuard {
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

/// Starts a server with JetStream.
pub fn start_nats() -> NatsGuard {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut guard = NatsGuard {
        url: format!("nats://127.0.0.1:{port}"),
        port,
        dir: tempfile::tempdir().expect("a temporary directory"),
        child: None,
    };
    guard.start();
    guard
}

impl NatsGuard {
    /// (Re)starts the server on its port and store, and waits until it
    /// accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the NATS server is already running");
        let store = self.dir.path().join("store");
        let log = std::fs::File::create(self.dir.path().join("nats.log")).expect("log file");
        let child = Command::new(binary())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); install it with `apt-get install nats-server`",
                    binary().display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.log().contains("Server is ready")
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nats-server exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (its store stays for a restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for NatsGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

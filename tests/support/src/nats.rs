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
    /// More `nats-server` arguments (e.g. `--auth TOKEN`).
    extra: Vec<String>,
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
    start_nats_with(&[])
}

/// Starts a server with JetStream and these further arguments.
pub fn start_nats_with(extra: &[&str]) -> NatsGuard {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut guard = NatsGuard {
        url: format!("nats://127.0.0.1:{port}"),
        port,
        extra: extra.iter().map(|a| a.to_string()).collect(),
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
            .args(&self.extra)
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

    /// Publishes `payload` on `subject` with plain NATS (a stream whose
    /// subjects match stores it), as any client could: the tests use it to
    /// put messages Vigil did not write on its subjects.
    pub fn publish(&self, subject: &str, payload: &[u8]) {
        let mut c = RawClient::connect(self.port);
        let mut frame = format!("PUB {subject} {}\r\n", payload.len()).into_bytes();
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        c.send(&frame);
        c.ping();
    }

    /// Sends a request (e.g. to the JetStream API, `$JS.API.…`) and returns
    /// the answer's payload.
    pub fn request(&self, subject: &str, payload: &[u8]) -> String {
        let inbox = "_INBOX.vigil-test";
        let mut sub = self.subscribe(inbox);
        let mut frame = format!("PUB {subject} {inbox} {}\r\n", payload.len()).into_bytes();
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        sub.client.send(&frame);
        let answer = sub
            .next(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no answer to {subject}"));
        String::from_utf8_lossy(&answer.payload).into_owned()
    }

    /// Subscribes to `subject` (wildcards allowed) with plain NATS.
    pub fn subscribe(&self, subject: &str) -> RawSubscription {
        let mut c = RawClient::connect(self.port);
        c.send(format!("SUB {subject} 1\r\n").as_bytes());
        c.ping();
        RawSubscription { client: c }
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

/// A minimal client of the NATS text protocol (INFO/CONNECT/PUB/SUB/PING):
/// enough to publish and receive without a client library.
struct RawClient {
    reader: std::io::BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawClient {
    fn connect(port: u16) -> RawClient {
        use std::io::BufRead;
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to nats-server");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        let mut reader = std::io::BufReader::new(stream);
        let mut info = String::new();
        reader.read_line(&mut info).expect("INFO from nats-server");
        assert!(info.starts_with("INFO"), "{info}");
        let mut c = RawClient { reader, writer };
        c.send(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"lang\":\"test\",\"version\":\"0\"}\r\n");
        c
    }

    fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.writer.write_all(bytes).expect("write to nats-server");
    }

    /// Waits for the server's PONG: everything sent before was processed.
    fn ping(&mut self) {
        use std::io::BufRead;
        self.send(b"PING\r\n");
        loop {
            let mut line = String::new();
            self.reader
                .read_line(&mut line)
                .expect("PONG from nats-server");
            assert!(!line.starts_with("-ERR"), "nats-server: {line}");
            if line.starts_with("PONG") {
                return;
            }
        }
    }
}

/// A message received on a [`RawSubscription`].
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub subject: String,
    /// The header block as sent (`NATS/1.0\r\nName: value\r\n…`), empty
    /// without headers.
    pub headers: String,
    pub payload: Vec<u8>,
}

impl RawMessage {
    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

pub struct RawSubscription {
    client: RawClient,
}

impl RawSubscription {
    /// The next message, waiting up to `timeout` (`None` if none came).
    pub fn next(&mut self, timeout: Duration) -> Option<RawMessage> {
        use std::io::{BufRead, Read};
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.client
                .reader
                .get_ref()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut line = String::new();
            match self.client.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(_) => return None,
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.first().copied() {
                Some("PING") => self.client.send(b"PONG\r\n"),
                // MSG <subject> <sid> [reply] <bytes>
                Some("MSG") => {
                    let len: usize = parts.last()?.parse().ok()?;
                    let mut body = vec![0; len + 2];
                    self.client.reader.read_exact(&mut body).ok()?;
                    body.truncate(len);
                    return Some(RawMessage {
                        subject: parts[1].to_owned(),
                        headers: String::new(),
                        payload: body,
                    });
                }
                // HMSG <subject> <sid> [reply] <header bytes> <total bytes>
                Some("HMSG") => {
                    let total: usize = parts[parts.len() - 1].parse().ok()?;
                    let head: usize = parts[parts.len() - 2].parse().ok()?;
                    let mut body = vec![0; total + 2];
                    self.client.reader.read_exact(&mut body).ok()?;
                    body.truncate(total);
                    let payload = body.split_off(head);
                    return Some(RawMessage {
                        subject: parts[1].to_owned(),
                        headers: String::from_utf8_lossy(&body).into_owned(),
                        payload,
                    });
                }
                _ => {}
            }
        }
    }
}

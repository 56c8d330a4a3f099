//! A `vigil` process a test started: its stderr collected into a log, its
//! address read from the `vigil: listening on SCHEME://ADDR` line, SIGTERM
//! and SIGKILL, and a kill when the test ends (also on a failed assert).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long a start may take (the first start compiles the components).
const START_TIMEOUT: Duration = Duration::from_secs(300);

pub struct VigilProcess {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl VigilProcess {
    /// Spawns `command` (stdin and stdout closed, stderr collected) and
    /// waits until it listens on `scheme`; fails with the exit status and
    /// the log if it exits or takes longer than five minutes first.
    pub fn spawn(mut command: Command, scheme: &str) -> VigilProcess {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vigil");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        let prefix = format!("vigil: listening on {scheme}://");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Other lines (`vigil: admin listening on …`) stay in the
                // log for the test to read.
                if let Some(addr) = line.strip_prefix(&prefix) {
                    let _ = tx.send(addr.trim().to_owned());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx.recv_timeout(START_TIMEOUT);
        let mut p = VigilProcess {
            child,
            base: String::new(),
            log,
        };
        match addr {
            Ok(addr) => {
                p.base = format!("{scheme}://{addr}");
                p
            }
            Err(_) => {
                let _ = p.child.kill();
                let status = p.wait(Duration::from_secs(10));
                panic!("vigil did not start ({status}):\n{}", p.log());
            }
        }
    }

    /// `SCHEME://ADDR` of the main listener.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the process wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGHUP (the service reloads).
    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// SIGSTOP: the process freezes where it is (what it was sent stays
    /// unanswered), as a replica that hangs or is about to die mid-batch.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// `kill -9`, and reaps the process.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status (failing after two minutes).
    pub fn stop(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait(Duration::from_secs(120))
    }

    /// The exit status, failing with the log if it takes longer than
    /// `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "vigil did not exit within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: a signal to our own child process.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }
}

impl Drop for VigilProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

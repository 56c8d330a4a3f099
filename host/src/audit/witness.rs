//! Witnesses: copies of every checkpoint kept outside the log's reach, so
//! that a log cut back past a checkpoint (even with a forged, or an old but
//! genuinely signed, head file) is caught by comparing the two.
//!
//! - A **witness file** (`[audit] witness_file`, on another volume) gets each
//!   checkpoint record appended as the exact line the log holds, fsync'd. At
//!   start, Vigil refuses to append to a log that ends before the witness's
//!   last checkpoint; `vigil audit verify --witness FILE` compares them all.
//! - A **witness URL** (`[audit] witness_url`, https or loopback) gets each
//!   checkpoint line POSTed as `application/json`, from a thread of its own so
//!   a slow witness never holds up the pipeline (deliveries queue up to
//!   [`QUEUE`]; three attempts each). A checkpoint is signed, so the receiver
//!   can check it with the public key; no shared secret is needed.
//! - A **publisher** ([`CheckpointPublisher`], in a cluster: a NATS
//!   JetStream publish on `vigil.audit.<replica>`) gets each checkpoint line
//!   the same way: queued (up to [`QUEUE`]) for a thread of its own, three
//!   attempts each.
//!
//! Invariants: a checkpoint is shipped only after the log holding it was
//! fsync'd, so a witness never holds a checkpoint that a crash could take
//! from the log (a witness ahead of the log always means records were cut).
//! A failed delivery never stops the pipeline: it is logged, counted, and the
//! next checkpoint record says how many deliveries failed since the last one
//! (`witness_failed`). One witness file serves one log.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;
use std::time::{Duration, Instant};

/// Checkpoints waiting for the witness URL (or the publisher); more are
/// dropped (and counted).
pub const QUEUE: usize = 256;
/// Time allowed for one POST to the witness URL.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing the log waits for queued deliveries.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Where checkpoints are shipped, as configured.
#[derive(Clone, Debug, Default)]
pub struct WitnessConfig {
    pub file: Option<PathBuf>,
    /// Validated (https, or http on loopback). It may carry a credential, so it
    /// is never logged.
    pub url: Option<reqwest::Url>,
    /// Called with each checkpoint line, from a thread of its own.
    pub publish: Option<CheckpointPublisher>,
}

impl WitnessConfig {
    /// Whether any witness is configured.
    pub fn any(&self) -> bool {
        self.file.is_some() || self.url.is_some() || self.publish.is_some()
    }
}

/// The signature of a publisher's callback.
type PublishFn = dyn Fn(&[u8]) -> Result<(), String> + Send + Sync;

/// A third witness: a callback that publishes one checkpoint line (the
/// exact bytes the log holds, without the newline) somewhere out of the
/// log's reach, e.g. to a NATS JetStream subject. It is called from the
/// log's publishing thread, never from the pipeline, so it may block (with
/// a timeout of its own: closing the log waits at most 10 s for the queue);
/// an `Err` is a failed attempt, its text is logged.
#[derive(Clone)]
pub struct CheckpointPublisher {
    name: String,
    publish: Arc<PublishFn>,
}

impl CheckpointPublisher {
    /// A publisher called `name` in log messages (e.g. the subject).
    pub fn new(
        name: impl Into<String>,
        publish: impl Fn(&[u8]) -> Result<(), String> + Send + Sync + 'static,
    ) -> CheckpointPublisher {
        CheckpointPublisher {
            name: name.into(),
            publish: Arc::new(publish),
        }
    }

    /// The name given to [`CheckpointPublisher::new`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Publishes one checkpoint line.
    pub fn publish(&self, line: &[u8]) -> Result<(), String> {
        (self.publish)(line)
    }
}

impl std::fmt::Debug for CheckpointPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointPublisher")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The running witnesses of one open log.
#[derive(Debug)]
pub(crate) struct Witnesses {
    file: Option<(PathBuf, File)>,
    url: Option<Queued>,
    publish: Option<Queued>,
    /// Failed deliveries since the last checkpoint (file, URL, publisher).
    failed: Arc<AtomicU64>,
}

/// A witness fed through a bounded queue by a thread of its own.
#[derive(Debug)]
struct Queued {
    /// For messages: "audit witness URL", "audit checkpoint publisher …".
    label: String,
    sender: Option<SyncSender<Vec<u8>>>,
    done: Receiver<()>,
}

impl Witnesses {
    /// Opens the witness file (creating it) and starts the URL thread.
    pub fn start(config: &WitnessConfig) -> io::Result<Witnesses> {
        let file = match &config.file {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let mut f = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create(true)
                    .open(path)?;
                // A line torn by a crash is ended, so the next checkpoint
                // starts on a line of its own (the fragment is reported as
                // unreadable by `verify --witness`).
                let len = f.metadata()?.len();
                if len > 0 {
                    let mut last = [0u8; 1];
                    f.seek(SeekFrom::Start(len - 1))?;
                    f.read_exact(&mut last)?;
                    if last[0] != b'\n' {
                        f.write_all(b"\n")?;
                    }
                }
                Some((path.clone(), f))
            }
            None => None,
        };
        let failed = Arc::new(AtomicU64::new(0));
        let url = config.url.clone().map(|url| {
            let failed = failed.clone();
            Queued::start("audit witness URL".to_owned(), "audit-witness", move |r| {
                deliver_all(&url, &r, &failed);
            })
        });
        let publish = config.publish.clone().map(|publisher| {
            let failed = failed.clone();
            Queued::start(
                format!("audit checkpoint publisher {}", publisher.name()),
                "audit-publish",
                move |r| publish_all(&publisher, &r, &failed),
            )
        });
        Ok(Witnesses {
            file,
            url,
            publish,
            failed,
        })
    }

    /// Ships one checkpoint line (without its newline) to every witness.
    pub fn ship(&mut self, line: &[u8]) {
        if let Some((path, file)) = &mut self.file {
            let written = file
                .write_all(line)
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_data());
            if let Err(e) = written {
                self.failed.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(witness = %path.display(), "cannot write the audit witness file: {e}");
            }
        }
        for queued in [&self.url, &self.publish].into_iter().flatten() {
            queued.enqueue(line, &self.failed);
        }
    }

    /// Failed deliveries not yet reported (tests).
    #[cfg(test)]
    pub fn pending_failures(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// Failed deliveries since the last call (reset to 0).
    pub fn take_failures(&self) -> u64 {
        self.failed.swap(0, Ordering::SeqCst)
    }
}

impl Drop for Witnesses {
    /// Lets queued URL deliveries and publications finish, for at most
    /// [`CLOSE_WAIT`] in all.
    fn drop(&mut self) {
        let deadline = Instant::now() + CLOSE_WAIT;
        // Both queues are closed first, so they drain side by side.
        for queued in [&mut self.url, &mut self.publish].into_iter().flatten() {
            queued.sender = None;
        }
        for queued in [&self.url, &self.publish].into_iter().flatten() {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = queued.done.recv_timeout(left);
        }
    }
}

impl Queued {
    /// Starts thread `thread_name` running `deliver` on the queue's
    /// receiving end until the queue is closed.
    fn start(
        label: String,
        thread_name: &str,
        deliver: impl FnOnce(Receiver<Vec<u8>>) + Send + 'static,
    ) -> Queued {
        let (sender, receiver) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let (done_tx, done) = mpsc::channel();
        let who = label.clone();
        thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                // A panic must not end deliveries quietly: it is said
                // once here, and every later line counts as a failed
                // delivery (the queue's receiver is gone).
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    deliver(receiver)
                }));
                if let Err(panic) = run {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(
                        "{who}: the delivery thread panicked ({what}); later checkpoints count as failed deliveries"
                    );
                }
                let _ = done_tx.send(());
            })
            .expect("spawning a thread succeeds");
        Queued {
            label,
            sender: Some(sender),
            done,
        }
    }

    /// Queues one line; a full queue or a stopped thread is a failed
    /// delivery (counted, logged), never a wait.
    fn enqueue(&self, line: &[u8], failed: &AtomicU64) {
        let Some(sender) = &self.sender else {
            return;
        };
        match sender.try_send(line.to_vec()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                failed.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(
                    "{}: {QUEUE} checkpoints already waiting; this one is dropped",
                    self.label
                );
            }
            Err(TrySendError::Disconnected(_)) => {
                failed.fetch_add(1, Ordering::SeqCst);
                tracing::warn!("{}: the delivery thread has stopped", self.label);
            }
        }
    }
}

/// Calls the publisher for each queued line, three attempts each.
fn publish_all(publisher: &CheckpointPublisher, receiver: &Receiver<Vec<u8>>, failed: &AtomicU64) {
    for line in receiver.iter() {
        let mut last_error = String::new();
        let mut published = false;
        for attempt in 0..3u32 {
            if attempt > 0 {
                thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
            }
            match publisher.publish(&line) {
                Ok(()) => {
                    published = true;
                    break;
                }
                Err(e) => last_error = e,
            }
        }
        if !published {
            failed.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(
                publisher = %publisher.name(),
                "audit checkpoint not published after 3 attempts: {last_error}"
            );
        }
    }
}

fn deliver_all(url: &reqwest::Url, receiver: &Receiver<Vec<u8>>, failed: &AtomicU64) {
    // Built on this thread: the blocking client runs its own runtime.
    let client = match reqwest::blocking::Client::builder()
        .timeout(POST_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("audit witness URL: cannot build an HTTP client: {e}");
            for _ in receiver.iter() {
                failed.fetch_add(1, Ordering::SeqCst);
            }
            return;
        }
    };
    for line in receiver.iter() {
        let mut last_error = String::new();
        let mut delivered = false;
        for attempt in 0..3u32 {
            if attempt > 0 {
                thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
            }
            let sent = client
                .post(url.clone())
                .header("content-type", "application/json")
                .body(line.clone())
                .send();
            match sent {
                Ok(r) if r.status().is_success() => {
                    delivered = true;
                    break;
                }
                Ok(r) => last_error = format!("HTTP {}", r.status().as_u16()),
                // `without_url`: the URL may be a credential.
                Err(e) => last_error = e.without_url().to_string(),
            }
        }
        if !delivered {
            failed.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(
                "audit witness URL: checkpoint not delivered after 3 attempts: {last_error}"
            );
        }
    }
}

/// One checkpoint as a witness file holds it.
#[derive(Debug, Clone)]
pub(crate) struct WitnessEntry {
    /// Line in the witness file, from 1.
    pub line: u64,
    pub seq: u64,
    pub hash: String,
    /// The record, without `hash` (for checking its signature).
    pub record: serde_json::Map<String, serde_json::Value>,
}

/// A witness file's checkpoints, in file order.
#[derive(Debug, Default)]
pub(crate) struct WitnessFile {
    pub entries: Vec<WitnessEntry>,
    /// Lines that are not JSON at all (a write torn by a crash of the witness
    /// volume): skipped and reported, since a lost witness line only loses
    /// evidence, never forges it.
    pub unreadable_lines: Vec<u64>,
}

/// Reads a witness file: one checkpoint record per line. A record that is
/// not a checkpoint, or whose hash does not match its content, is an error
/// naming the file and line (the file was altered, or is not a witness file).
pub(crate) fn read_witness(path: &Path) -> Result<WitnessFile, String> {
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = WitnessFile::default();
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if line.is_empty() {
            continue;
        }
        if serde_json::from_slice::<serde_json::Value>(&line).is_err() {
            out.unreadable_lines.push(line_no);
            continue;
        }
        let record = super::parse_record(&line).map_err(|reason| {
            format!(
                "{} line {line_no}: not a checkpoint record: {reason}",
                path.display()
            )
        })?;
        if record.kind.as_deref() != Some("checkpoint") {
            return Err(format!(
                "{} line {line_no}: a record of type {:?}, not a checkpoint",
                path.display(),
                record.kind.unwrap_or_default()
            ));
        }
        if record.computed_hash != record.hash {
            return Err(format!(
                "{} line {line_no}: checkpoint seq {} does not match its own hash: the witness \
                 file was altered",
                path.display(),
                record.seq
            ));
        }
        out.entries.push(WitnessEntry {
            line: line_no,
            seq: record.seq,
            hash: record.hash,
            record: record.map,
        });
    }
    Ok(out)
}

/// The `seq` of the witness file's last checkpoint (in file order), `None`
/// for a missing or empty file. Reads the whole witness file, which holds one
/// line per checkpoint (a thousandth of the log at the default interval).
pub(crate) fn last_witnessed_seq(path: &Path) -> Result<Option<u64>, String> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(read_witness(path)?.entries.last().map(|e| e.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A delivery thread that panics: said, and every later line is a
    // counted failure instead of vanishing.
    #[test]
    fn a_panicking_delivery_thread_turns_later_lines_into_failures() {
        let queued = Queued::start("test witness".into(), "vigil-test-witness", |receiver| {
            let _ = receiver.recv();
            panic!("boom");
        });
        let failed = AtomicU64::new(0);
        queued.enqueue(b"first", &failed);
        queued
            .done
            .recv_timeout(Duration::from_secs(30))
            .expect("the thread ends");
        queued.enqueue(b"second", &failed);
        assert_eq!(failed.load(Ordering::SeqCst), 1);
    }
}

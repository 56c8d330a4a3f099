//! The file tail: a long-running source that follows a growing JSON Lines
//! file, such as a SIEM export (`[[sources]] type = "tail"`).
//!
//! # Reading
//! The file is polled every `poll_ms` (no inotify: polling works the same on
//! every platform and filesystem, network mounts included, at the cost of
//! up to `poll_ms` of latency). Each poll reads whatever was appended since
//! the last one. A line without its newline yet is held until the rest
//! arrives. Lines longer than `max_line_bytes` are skipped without ever
//! being held whole and counted, as [`super::LineReader`] does; lines that
//! are not UTF-8 or do not normalize are counted and logged with their line
//! number and byte offset, and never stop the tail. Line numbers count from
//! where reading began (the first line read is 1, also when starting at the
//! end or at a saved position) and restart at 1 in a new file.
//!
//! `from = "end"` (the default) starts at the end of the file as it is when
//! the tail starts; `from = "start"` reads it whole first. A file that does
//! not exist yet is waited for, and read from its start when it appears.
//!
//! # Rotation
//! Each poll compares the file open with the one at `path`:
//! - **renamed and recreated** (`logrotate` `create`; on Unix the inode or
//!   device at the path changed): the old file is read to its end first (a
//!   last line without newline is taken as complete), then the new one is
//!   opened and read from its start;
//! - **truncated** (`copytruncate`; the open file got shorter than the
//!   position): reading restarts at the start of the file; a partial line
//!   held from before is dropped;
//! - **removed** and not recreated yet: the open file is kept and read
//!   until a new one appears.
//!
//! Polling has the usual limits: a file rotated twice, or truncated and
//! regrown past the old position, between two polls is not noticed as
//! such; lines written to the old file after it was renamed *and* after the
//! switch are lost. Without inodes (non-Unix) only truncation is detected.
//!
//! # Position
//! The position (device, inode and the offset after the last complete line)
//! is saved in the state store under `tail:<path>:position` once the
//! batch's events are processed — by the batch's `on_done`, as the Okta
//! poller saves its cursor (see [`super::cursor`]). After a restart the
//! tail continues at that offset if the file at `path` is the same one and
//! at least that long; if it was rotated or truncated meanwhile, the file
//! now there is read from its start (lines the old file got after the
//! saved position are then not read). At most the batch in flight when the
//! process stopped is read again; its events' ids (the Okta `uuid`, or a
//! hash of the line) make the duplicates harmless to the executor.

pub use crate::config::{TailConfig, TailFrom};
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use super::Line;
use super::cursor::{SourceState, pause};
use super::queue::{Batch, QueueSender, Shutdown};
use crate::model::Event;
use crate::normalize::Normalizer;

/// At most this many bytes are read per [`Tail::read_available`] call, so a
/// large backlog is processed in bounded steps.
const MAX_READ_PER_CALL: usize = 4 * 1024 * 1024;
/// At most this many events per batch.
const MAX_BATCH_EVENTS: usize = 1000;

/// Identifies one file on disk: device and inode on Unix (zeros elsewhere,
/// where only truncation is detected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    FileId {
        dev: m.dev(),
        ino: m.ino(),
    }
}

#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> FileId {
    FileId { dev: 0, ino: 0 }
}

/// A place in a file: after the last complete line consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

impl Position {
    /// `dev:ino:offset`, as saved in the state store.
    pub fn encode(&self) -> String {
        format!("{}:{}:{}", self.dev, self.ino, self.offset)
    }

    pub fn decode(s: &str) -> Option<Position> {
        let mut it = s.split(':').map(|p| p.parse::<u64>().ok());
        let p = Position {
            dev: it.next()??,
            ino: it.next()??,
            offset: it.next()??,
        };
        it.next().is_none().then_some(p)
    }
}

/// One line read, with its number and the position just after it.
#[derive(Debug)]
pub struct TailLine {
    pub line_no: u64,
    /// Byte offset of the line's start in its file.
    pub offset: u64,
    pub line: Line,
    pub end: Position,
}

/// Counters since the tail started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TailStats {
    pub lines: u64,
    pub events: u64,
    /// Lines over `max_line_bytes`.
    pub oversized: u64,
    /// Lines that are not UTF-8 or do not normalize.
    pub malformed: u64,
    pub rotations: u64,
    pub truncations: u64,
}

/// The file being read.
struct Open {
    file: File,
    id: FileId,
    /// Bytes read from the file so far.
    read: u64,
    /// Offset where the line being assembled starts.
    line_start: u64,
}

/// Follows one file; see the module docs. Knows nothing of the queue:
/// [`spawn`] drives it.
pub struct Tail {
    path: PathBuf,
    limit: usize,
    from: TailFrom,
    resume: Option<Position>,
    /// True until the first attempt to open the file.
    first_open: bool,
    open: Option<Open>,
    /// The line being assembled (no newline seen yet).
    partial: Vec<u8>,
    /// Set while skipping an oversized line: its bytes so far.
    oversized: Option<usize>,
    line_no: u64,
    waiting_logged: bool,
    pub stats: TailStats,
}

impl Tail {
    /// A tail of `path` with lines of at most `max_line_bytes`. `resume` is
    /// a saved position: used when the file at `path` is still that file.
    pub fn new(
        path: impl Into<PathBuf>,
        from: TailFrom,
        max_line_bytes: usize,
        resume: Option<Position>,
    ) -> Tail {
        Tail {
            path: path.into(),
            limit: max_line_bytes,
            from,
            resume,
            first_open: true,
            open: None,
            partial: Vec::new(),
            oversized: None,
            line_no: 0,
            waiting_logged: false,
            stats: TailStats::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file now if it exists, so that `from = "end"` means the
    /// end at this moment rather than at the first poll. Otherwise the
    /// first [`Tail::read_available`] opens it.
    pub fn open_if_present(&mut self) -> Result<()> {
        if self.open.is_none() {
            self.open_path()?;
        }
        Ok(())
    }

    /// Every complete line appended since the last call (at most about
    /// 4 MiB of them; call again at once when the result is not empty),
    /// following rotation and truncation. Empty when there is nothing new
    /// or the file does not exist (yet).
    pub fn read_available(&mut self) -> Result<Vec<TailLine>> {
        let mut out = Vec::new();
        if self.open.is_none() && !self.open_path()? {
            return Ok(out);
        }
        // What is at the path now, looked at *before* draining the open
        // file, so that anything written to the old file before a rename is
        // read before switching.
        let at_path = match std::fs::metadata(&self.path) {
            Ok(m) => Some(file_id(&m)),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot stat {}", self.path.display()));
            }
        };
        self.check_truncation()?;
        let budget = self.drain(&mut out, MAX_READ_PER_CALL)?;
        if budget == 0 {
            // Budget used up: more may be waiting; look at rotation later.
            return Ok(out);
        }
        let current = self.open.as_ref().map(|o| o.id);
        if let (Some(now), Some(cur)) = (at_path, current)
            && now != cur
        {
            self.finish_file(&mut out);
            tracing::info!(path = %self.path.display(), "file rotated; reading the new file");
            self.stats.rotations += 1;
            self.open = None;
            if self.open_path()? {
                self.drain(&mut out, budget)?;
            }
        }
        Ok(out)
    }

    /// Opens the file at `path`; false when it does not exist.
    fn open_path(&mut self) -> Result<bool> {
        let first = std::mem::replace(&mut self.first_open, false);
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if !self.waiting_logged {
                    tracing::info!(path = %self.path.display(), "waiting for the file to appear");
                    self.waiting_logged = true;
                }
                return Ok(false);
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot open {}", self.path.display()));
            }
        };
        self.waiting_logged = false;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot stat {}", self.path.display()))?;
        let id = file_id(&meta);
        let start = match self.resume.take() {
            Some(p) if p.dev == id.dev && p.ino == id.ino && meta.len() >= p.offset => {
                tracing::info!(path = %self.path.display(), offset = p.offset, "resuming at the saved position");
                p.offset
            }
            Some(_) => {
                tracing::info!(
                    path = %self.path.display(),
                    "the file was rotated or truncated since the saved position; reading it from the start"
                );
                0
            }
            None if first && self.from == TailFrom::End => meta.len(),
            None => 0,
        };
        let mut file = file;
        file.seek(SeekFrom::Start(start))
            .with_context(|| format!("cannot seek in {}", self.path.display()))?;
        self.open = Some(Open {
            file,
            id,
            read: start,
            line_start: start,
        });
        self.partial.clear();
        self.oversized = None;
        self.line_no = 0;
        Ok(true)
    }

    /// Restarts at offset 0 when the open file got shorter than what was
    /// read (copytruncate).
    fn check_truncation(&mut self) -> Result<()> {
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        let len = open
            .file
            .metadata()
            .with_context(|| format!("cannot stat {}", self.path.display()))?
            .len();
        if len < open.read {
            tracing::info!(
                path = %self.path.display(),
                was = open.read,
                now = len,
                "file truncated; reading it from the start"
            );
            open.file
                .seek(SeekFrom::Start(0))
                .with_context(|| format!("cannot seek in {}", self.path.display()))?;
            open.read = 0;
            open.line_start = 0;
            self.partial.clear();
            self.oversized = None;
            self.line_no = 0;
            self.stats.truncations += 1;
        }
        Ok(())
    }

    /// Reads the open file to its end or until `budget` bytes were read;
    /// returns the budget left (0: stopped early).
    fn drain(&mut self, out: &mut Vec<TailLine>, mut budget: usize) -> Result<usize> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if budget == 0 {
                return Ok(0);
            }
            let open = self.open.as_mut().expect("drain needs an open file");
            let want = buf.len().min(budget);
            let n = match open.file.read(&mut buf[..want]) {
                Ok(0) => return Ok(budget),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot read {}", self.path.display()));
                }
            };
            budget -= n;
            self.feed(&buf[..n], out);
        }
    }

    /// Splits freshly read bytes into lines.
    fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<TailLine>) {
        while !bytes.is_empty() {
            let (segment, ended) = match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            let consumed = segment.len() + usize::from(ended);
            bytes = &bytes[consumed..];
            self.open.as_mut().expect("open").read += consumed as u64;
            if let Some(len) = &mut self.oversized {
                *len += consumed;
            } else if self.partial.len() + segment.len() > self.limit + 1 {
                // Over the limit even if it ends in `\r`: stop keeping it.
                self.oversized = Some(self.partial.len() + consumed);
                self.partial = Vec::new();
            } else {
                self.partial.extend_from_slice(segment);
            }
            if ended {
                self.end_line_into(out);
            }
        }
    }

    /// Emits the line assembled so far (its newline was read, or its file
    /// was rotated away).
    fn end_line_into(&mut self, out: &mut Vec<TailLine>) {
        let open = self.open.as_mut().expect("open");
        let offset = open.line_start;
        open.line_start = open.read;
        let end = Position {
            dev: open.id.dev,
            ino: open.id.ino,
            offset: open.read,
        };
        self.line_no += 1;
        self.stats.lines += 1;
        let line = if let Some(len) = self.oversized.take() {
            self.stats.oversized += 1;
            Line::TooLong {
                len,
                limit: self.limit,
            }
        } else {
            let mut bytes = std::mem::take(&mut self.partial);
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            if bytes.len() > self.limit {
                self.stats.oversized += 1;
                Line::TooLong {
                    len: bytes.len() + 1,
                    limit: self.limit,
                }
            } else {
                match String::from_utf8(bytes) {
                    Ok(s) => Line::Text(s),
                    Err(_) => Line::NotUtf8,
                }
            }
        };
        out.push(TailLine {
            line_no: self.line_no,
            offset,
            line,
            end,
        });
    }

    /// The old file of a rotation will not grow: its last line counts even
    /// without a newline.
    fn finish_file(&mut self, out: &mut Vec<TailLine>) {
        if !self.partial.is_empty() || self.oversized.is_some() {
            self.end_line_into(out);
        }
    }
}

/// The state-store key of a tail's position.
pub fn position_key(path: &Path) -> String {
    format!("tail:{}:position", path.display())
}

/// Events of consecutive lines, and the position after the last of them.
#[derive(Debug)]
pub struct TailBatch {
    pub events: Vec<Event>,
    pub end: Position,
}

/// Normalizes lines into batches of at most 1000 events; counts and logs
/// (with line number and byte offset) the lines that yield nothing. Every
/// line's position ends up in some batch, so a run of bad lines still moves
/// the saved position.
pub fn normalize_lines(
    normalizer: &Normalizer,
    path: &Path,
    lines: Vec<TailLine>,
    stats: &mut TailStats,
) -> Vec<TailBatch> {
    let mut batches = Vec::new();
    let mut events = Vec::new();
    let mut report = crate::normalize::LineReport::default();
    let mut end = None;
    for l in lines {
        let reason = match l.line {
            // Per element: a bad event of a multi-record line costs only
            // itself, as in every other file source.
            Line::Text(text) => {
                match normalizer.normalize_line_report(&text, &mut events, &mut report) {
                    Ok(n) => {
                        stats.events += n as u64;
                        stats.malformed += report.rejected.len() as u64;
                        for e in &report.rejected {
                            tracing::warn!(path = %path.display(), line = l.line_no, "skipped: {e}");
                        }
                        for d in &report.dropped {
                            tracing::warn!(path = %path.display(), line = l.line_no, field = %d.path, "dropped a field: {}", d.message);
                        }
                        report.clear();
                        None
                    }
                    Err(e) => {
                        stats.malformed += 1;
                        Some(e.to_string())
                    }
                }
            }
            Line::TooLong { len, limit } => Some(format!(
                "line of {len} bytes exceeds max_line_bytes = {limit}"
            )),
            Line::NotUtf8 => {
                stats.malformed += 1;
                Some("line is not valid UTF-8".to_owned())
            }
        };
        if let Some(reason) = reason {
            tracing::warn!(
                path = %path.display(),
                line = l.line_no,
                offset = l.offset,
                "skipped: {reason}"
            );
        }
        end = Some(l.end);
        if events.len() >= MAX_BATCH_EVENTS {
            batches.push(TailBatch {
                events: std::mem::take(&mut events),
                end: l.end,
            });
            end = None;
        }
    }
    if let Some(end) = end {
        batches.push(TailBatch { events, end });
    }
    batches
}

/// `[[sources]] type = "tail"` as a [`Source`](super::Source).
pub struct TailSource<'a>(pub &'a TailConfig);

impl super::Source for TailSource<'_> {
    fn name(&self) -> String {
        format!("tail:{}", self.0.path.display())
    }

    fn spawn(&self, ctx: &super::SourceContext<'_>) -> Result<JoinHandle<()>> {
        spawn(
            self.0,
            ctx.max_line_bytes,
            ctx.state_path,
            ctx.queue.clone(),
            ctx.shutdown.clone(),
        )
    }
}

/// Starts following `config.path` on its own thread. The state store is
/// opened and the saved position loaded first, so a bad state path fails
/// here. The thread ends at shutdown or when the queue closes; read errors
/// are logged and retried.
pub fn spawn(
    config: &TailConfig,
    max_line_bytes: usize,
    state_path: &Path,
    queue: QueueSender,
    shutdown: Shutdown,
) -> Result<JoinHandle<()>> {
    let state = SourceState::open(state_path)?;
    let key = position_key(&config.path);
    let resume = match state.load(&key)? {
        None => None,
        Some(s) => {
            let p = Position::decode(&s);
            if p.is_none() {
                tracing::warn!(key, value = s, "ignoring an unreadable saved tail position");
            }
            p
        }
    };
    let mut tail = Tail::new(config.path.clone(), config.from, max_line_bytes, resume);
    tail.open_if_present()?;
    let poll = Duration::from_millis(config.poll_ms);
    std::thread::Builder::new()
        .name(format!("tail:{}", config.path.display()))
        .spawn(move || run(tail, state, poll, &queue, &shutdown))
        .with_context(|| format!("cannot start the tail thread for {}", config.path.display()))
}

/// The tail loop: read what is new, hand it over in batches whose
/// `on_done` saves the position, sleep `poll` when there was nothing.
pub fn run(
    mut tail: Tail,
    state: SourceState,
    poll: Duration,
    queue: &QueueSender,
    shutdown: &Shutdown,
) {
    let normalizer = Normalizer::default();
    let source = format!("tail:{}", tail.path().display());
    let key = position_key(tail.path());
    let mut failures_in_a_row = 0u32;
    while !shutdown.is_stopping() {
        let wait = match tail.read_available() {
            Ok(lines) if lines.is_empty() => poll,
            Ok(lines) => {
                failures_in_a_row = 0;
                let path = tail.path().to_path_buf();
                for b in normalize_lines(&normalizer, &path, lines, &mut tail.stats) {
                    let on_done = state.saver(key.clone(), b.end.encode());
                    if queue
                        .send(Batch::new(source.clone(), b.events).on_done(on_done))
                        .is_err()
                    {
                        tracing::info!(source, "queue closed; tail stops");
                        return;
                    }
                }
                Duration::ZERO
            }
            Err(e) => {
                failures_in_a_row += 1;
                tracing::error!(source, failures_in_a_row, "cannot read: {e:#}");
                // A file that cannot be read is unlikely to be fixed in
                // milliseconds: back off up to a minute.
                (poll * failures_in_a_row.min(240)).min(Duration::from_secs(60))
            }
        };
        if !wait.is_zero() && !pause(shutdown, wait) {
            break;
        }
    }
    tracing::info!(source, stats = ?tail.stats, "tail stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[TailLine]) -> Vec<String> {
        lines
            .iter()
            .map(|l| match &l.line {
                Line::Text(t) => t.clone(),
                Line::TooLong { len, .. } => format!("too long: {len}"),
                Line::NotUtf8 => "not utf-8".into(),
            })
            .collect()
    }

    fn append(path: &Path, bytes: &[u8]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    // A partial line is held until its newline arrives; CRLF is stripped.
    #[test]
    fn partial_lines_wait_for_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        append(&p, b"");
        let mut t = Tail::new(&p, TailFrom::Start, 1024, None);
        append(&p, b"one\r\ntw");
        assert_eq!(texts(&t.read_available().unwrap()), ["one"]);
        assert!(t.read_available().unwrap().is_empty());
        append(&p, b"o\n");
        let lines = t.read_available().unwrap();
        assert_eq!(texts(&lines), ["two"]);
        assert_eq!(
            (lines[0].line_no, lines[0].offset, lines[0].end.offset),
            (2, 5, 9)
        );
    }

    // from = end skips what is there at start; a file created later is read whole.
    #[test]
    fn from_end_skips_existing_content_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        append(&p, b"old\n");
        let mut t = Tail::new(&p, TailFrom::End, 1024, None);
        assert!(t.read_available().unwrap().is_empty());
        append(&p, b"new\n");
        assert_eq!(texts(&t.read_available().unwrap()), ["new"]);

        let q = dir.path().join("later.jsonl");
        let mut t = Tail::new(&q, TailFrom::End, 1024, None);
        assert!(t.read_available().unwrap().is_empty());
        append(&q, b"first\n");
        assert_eq!(texts(&t.read_available().unwrap()), ["first"]);
    }

    // An oversized line is reported with its full length, even split across reads.
    #[test]
    fn oversized_lines_are_skipped_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        append(&p, b"");
        let mut t = Tail::new(&p, TailFrom::Start, 5, None);
        append(&p, b"ok\n0123456");
        assert_eq!(texts(&t.read_available().unwrap()), ["ok"]);
        append(&p, b"789ab\n12345\n123456\n");
        assert_eq!(
            texts(&t.read_available().unwrap()),
            ["too long: 13", "12345", "too long: 7"]
        );
        assert_eq!(t.stats.oversized, 2);
    }

    // A saved position on the same file resumes there; on another file, from its start.
    #[test]
    fn resume_only_on_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        append(&p, b"a\nb\n");
        let mut t = Tail::new(&p, TailFrom::Start, 1024, None);
        let lines = t.read_available().unwrap();
        let after_a = lines[0].end;
        assert_eq!(Position::decode(&after_a.encode()), Some(after_a));
        let mut t = Tail::new(&p, TailFrom::End, 1024, Some(after_a));
        assert_eq!(texts(&t.read_available().unwrap()), ["b"]);
        let elsewhere = Position {
            ino: after_a.ino.wrapping_add(1),
            ..after_a
        };
        let mut t = Tail::new(&p, TailFrom::End, 1024, Some(elsewhere));
        assert_eq!(texts(&t.read_available().unwrap()), ["a", "b"]);
        assert_eq!(Position::decode("1:2"), None);
    }
}

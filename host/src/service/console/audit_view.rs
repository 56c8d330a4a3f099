//! The audit log as the console reads it: pages of records, newest first,
//! read backwards from a byte offset in bounded chunks, and the chain's
//! verification state, kept up to date incrementally.
//!
//! Memory and time are bounded per page view whatever the log's size: a
//! page reads at most [`MAX_SCAN_BYTES`] of the log (then offers to go on
//! from where it stopped), holds one chunk (`audit::backwards`) and one record at a time,
//! and shows a record longer than [`MAX_SHOWN_RECORD`] as its size only.
//! Offsets in links are line starts; any other offset is refused.
//!
//! Verification reuses the verifier's [`ChainWalker`] (the checks of
//! `vigil audit verify`, without signatures, witness or head comparison)
//! and remembers where it stopped: each view hashes only the records
//! appended since. Before going on it re-reads the last verified record,
//! so a log replaced, shortened or rewritten at its end is verified again
//! from the start. Records in the middle that change after they were
//! verified are not seen until then; `vigil audit verify` re-reads
//! everything.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::audit::ChainWalker;
use crate::audit::backwards::Backwards;

/// At most this much of the log is read for one page.
pub const MAX_SCAN_BYTES: u64 = 8 * 1024 * 1024;
/// Records longer than this are listed by size only (the cap on new
/// records is 1 MiB by default; older logs may hold larger ones).
pub const MAX_SHOWN_RECORD: u64 = 2 * 1024 * 1024;
/// Records on one page.
pub const PAGE_ROWS: usize = 50;

/// Which records a page shows. Empty fields do not filter.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filter {
    /// The record's `rule`, exactly.
    pub rule: String,
    /// Part of the record's `target`, `subject` or `by` (case-insensitive).
    pub user: String,
    /// The record's `decision`, exactly.
    pub decision: String,
    /// The record's `type`, exactly.
    pub kind: String,
    /// Records written at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Records written before this time.
    pub to: Option<DateTime<Utc>>,
}

/// Fields a user filter looks at.
const USER_FIELDS: [&str; 3] = ["target", "subject", "by"];

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// A cheap test on the raw line: false only when the record certainly
    /// does not match (a rule id that does not occur in it).
    fn may_match(&self, line: &[u8]) -> bool {
        let plain = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
        };
        for exact in [&self.rule, &self.decision, &self.kind] {
            if !exact.is_empty()
                && plain(exact)
                && memchr::memmem::find(line, exact.as_bytes()).is_none()
            {
                return false;
            }
        }
        true
    }

    fn matches(&self, record: &Map<String, Value>) -> bool {
        let text = |key: &str| record.get(key).and_then(Value::as_str).unwrap_or("");
        if !self.rule.is_empty() && text("rule") != self.rule {
            return false;
        }
        if !self.decision.is_empty() && text("decision") != self.decision {
            return false;
        }
        if !self.kind.is_empty() && text("type") != self.kind {
            return false;
        }
        if !self.user.is_empty() {
            let needle = self.user.to_lowercase();
            if !USER_FIELDS
                .iter()
                .any(|f| text(f).to_lowercase().contains(&needle))
            {
                return false;
            }
        }
        if self.from.is_some() || self.to.is_some() {
            let Some(t) = record_time(record) else {
                return false;
            };
            if self.from.is_some_and(|from| t < from) || self.to.is_some_and(|to| t >= to) {
                return false;
            }
        }
        true
    }
}

fn record_time(record: &Map<String, Value>) -> Option<DateTime<Utc>> {
    let t = record.get("time")?.as_str()?;
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Reads a time filter: RFC 3339, or (as a browser's `datetime-local`
/// sends it) `YYYY-MM-DDTHH:MM[:SS]` or `YYYY-MM-DD`, taken as UTC.
pub fn parse_time(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(Some(d.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(Some(d.and_utc()));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|d| d.and_utc()));
    }
    Err(format!(
        "{t:?} is not a time: use 2026-03-01T10:00 (UTC) or RFC 3339"
    ))
}

/// One line of the log as a page shows it.
#[derive(Debug)]
pub struct Row {
    /// Where the line starts.
    pub offset: u64,
    /// Its length without the newline.
    pub len: u64,
    /// The record, or why it cannot be shown.
    pub record: Result<Map<String, Value>, String>,
}

/// A page of records, newest first.
#[derive(Debug)]
pub struct AuditPage {
    pub rows: Vec<Row>,
    /// Where to go on for older records (`before=`), if there may be any.
    pub more: Option<u64>,
    /// Bytes of the log looked at.
    pub scanned: u64,
    /// The log's size when read.
    pub file_len: u64,
}

/// Why a page cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("cannot read the audit log {}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
    #[error("offset {0} is not the start of a record in the audit log")]
    BadOffset(u64),
}

/// Reads one page of `path`: records ending at or before `before` (the
/// end of the log when `None`), newest first, that match `filter`; at most
/// `max_rows` of them, looking at no more than `max_scan` bytes.
pub fn read_page(
    path: &Path,
    before: Option<u64>,
    filter: &Filter,
    max_rows: usize,
    max_scan: u64,
) -> Result<AuditPage, PageError> {
    let io_err = |cause| PageError::Io {
        path: path.to_owned(),
        cause,
    };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    let mut chunk = Backwards::new(&file);
    // The end: a line start. At the log's end, a last line still being
    // written (no newline yet) is left for the next view.
    let end = match before {
        Some(b) if b > len => return Err(PageError::BadOffset(b)),
        Some(0) => 0,
        Some(b) => {
            if chunk.byte(b - 1).map_err(io_err)? != b'\n' {
                return Err(PageError::BadOffset(b));
            }
            b
        }
        None => match chunk.last_newline_before(len).map_err(io_err)? {
            Some(nl) => nl + 1,
            None => 0,
        },
    };
    let mut page = AuditPage {
        rows: Vec::new(),
        more: None,
        scanned: 0,
        file_len: len,
    };
    // `cursor`: the newline that ends the next line to read (the line is
    // [start, cursor)); lines are read until the start of the log.
    let mut next_end = end;
    while next_end > 0 {
        if page.rows.len() >= max_rows || page.scanned >= max_scan {
            page.more = Some(next_end);
            break;
        }
        let cursor = next_end - 1;
        let start = match chunk.last_newline_before(cursor).map_err(io_err)? {
            Some(nl) => nl + 1,
            None => 0,
        };
        let line_len = cursor - start;
        page.scanned += line_len + 1;
        next_end = start;
        let record = if line_len > MAX_SHOWN_RECORD {
            Err(format!(
                "a record of {line_len} bytes, too large to show here (read it with `jq` or `vigil audit verify`)"
            ))
        } else {
            let mut buf = vec![0u8; line_len as usize];
            file.read_exact_at(&mut buf, start).map_err(io_err)?;
            if !filter.may_match(&buf) {
                continue;
            }
            serde_json::from_slice::<Map<String, Value>>(&buf)
                .map_err(|e| format!("not a JSON record: {e}"))
        };
        match &record {
            Ok(r) => {
                // Records are appended in time order: nothing older can
                // be newer than `from`.
                if let (Some(from), Some(t)) = (filter.from, record_time(r))
                    && t < from
                {
                    break;
                }
                if !filter.matches(r) {
                    continue;
                }
            }
            // Unreadable lines are shown only when nothing filters (they
            // cannot be tested against a filter).
            Err(_) if !filter.is_empty() => continue,
            Err(_) => {}
        }
        page.rows.push(Row {
            offset: start,
            len: line_len,
            record,
        });
    }
    Ok(page)
}

/// The chain's state as the console shows it.
#[derive(Debug, Clone)]
pub struct ChainStatus {
    /// What was verified: records, last seq and hash, checkpoints, reseals.
    pub walker: ChainWalker,
    /// Bytes of the log verified (whole records).
    pub verified_bytes: u64,
    /// The log's size when last looked at.
    pub file_len: u64,
    /// Where the chain breaks: the byte offset of the first bad record and
    /// why (as `vigil audit verify` says it).
    pub broken: Option<(u64, String)>,
    /// A verification is under way (the page shows progress).
    pub running: bool,
    /// Why verification started over, if it did.
    pub note: Option<String>,
    /// The log could not be read.
    pub error: Option<String>,
}

struct VerifyState {
    walker: ChainWalker,
    /// End of the last verified record.
    offset: u64,
    /// Start of the last verified record.
    last_start: u64,
    /// (device, inode) of the file verified.
    file_id: Option<(u64, u64)>,
    file_len: u64,
    broken: Option<(u64, String)>,
    note: Option<String>,
    error: Option<String>,
}

impl VerifyState {
    fn new() -> Self {
        VerifyState {
            walker: ChainWalker::new(),
            offset: 0,
            last_start: 0,
            file_id: None,
            file_len: 0,
            broken: None,
            note: None,
            error: None,
        }
    }
}

/// The verification cache of one log (see the module documentation).
pub struct VerifyCache {
    path: PathBuf,
    state: Mutex<VerifyState>,
    running: AtomicBool,
}

/// Records verified between two progress updates others can see.
const PROGRESS_EVERY: u64 = 10_000;

impl VerifyCache {
    pub fn new(path: PathBuf) -> Self {
        VerifyCache {
            path,
            state: Mutex::new(VerifyState::new()),
            running: AtomicBool::new(false),
        }
    }

    /// What is known now.
    pub fn status(&self) -> ChainStatus {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        ChainStatus {
            walker: s.walker.clone(),
            verified_bytes: s.offset,
            file_len: s.file_len,
            broken: s.broken.clone(),
            running: self.running.load(Ordering::SeqCst),
            note: s.note.clone(),
            error: s.error.clone(),
        }
    }

    /// Verifies what was appended since the last call (or everything, the
    /// first time or when the log was replaced). Returns the bytes it
    /// hashed; 0 at once when another call is already under way.
    pub fn catch_up(&self) -> u64 {
        if self.running.swap(true, Ordering::SeqCst) {
            return 0;
        }
        let hashed = match self.catch_up_inner() {
            Ok(n) => n,
            Err(e) => {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                s.error = Some(format!("cannot read {}: {e}", self.path.display()));
                0
            }
        };
        self.running.store(false, Ordering::SeqCst);
        hashed
    }

    fn catch_up_inner(&self) -> io::Result<u64> {
        let mut file = File::open(&self.path)?;
        let meta = file.metadata()?;
        let id = (meta.dev(), meta.ino());
        let len = meta.len();
        // Work on a copy; others see progress as it is published.
        let mut s = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.error = None;
            let restart = match s.file_id {
                Some(old) if old != id => Some("the log file was replaced"),
                _ if len < s.offset => Some("the log is shorter than what was verified"),
                _ => None,
            };
            if let Some(why) = restart {
                *s = VerifyState::new();
                s.note = Some(format!("{why}; verified again from the start"));
            }
            s.file_id = Some(id);
            s.file_len = len;
            if s.broken.is_some() {
                return Ok(0);
            }
            VerifyState {
                walker: s.walker.clone(),
                offset: s.offset,
                last_start: s.last_start,
                file_id: s.file_id,
                file_len: len,
                broken: None,
                note: s.note.clone(),
                error: None,
            }
        };
        // The last verified record must still be there, unchanged.
        if s.offset > 0 && !self.still_verified(&file, &s)? {
            let seq = s.walker.last_seq;
            s = VerifyState::new();
            s.file_id = Some(id);
            s.file_len = len;
            s.note = Some(format!(
                "record seq {seq} changed after it was verified; verified again from the start"
            ));
        }
        file.seek(SeekFrom::Start(s.offset))?;
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        let mut hashed = 0u64;
        let mut since_publish = 0u64;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)? as u64;
            if n == 0 || buf.last() != Some(&b'\n') {
                // The end, or a record still being written.
                break;
            }
            buf.pop();
            let start = s.offset;
            match s.walker.step(&buf, &[]) {
                Ok(_) => {
                    s.offset += n;
                    s.last_start = start;
                    hashed += n;
                }
                Err(e) => {
                    s.broken = Some((start, e.to_string()));
                    break;
                }
            }
            since_publish += 1;
            if since_publish >= PROGRESS_EVERY {
                since_publish = 0;
                self.publish(&s);
            }
        }
        self.publish(&s);
        Ok(hashed)
    }

    /// Whether the record at `last_start..offset` still has the hash the
    /// walker ended on.
    fn still_verified(&self, file: &File, s: &VerifyState) -> io::Result<bool> {
        let len = s.offset - s.last_start;
        if len == 0 || len > 64 * 1024 * 1024 {
            return Ok(len != 0);
        }
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, s.last_start)?;
        if buf.pop() != Some(b'\n') {
            return Ok(false);
        }
        Ok(crate::audit::parse_record(&buf)
            .is_ok_and(|r| r.hash == s.walker.last_hash && r.computed_hash == r.hash))
    }

    fn publish(&self, s: &VerifyState) {
        let mut shared = self.state.lock().unwrap_or_else(|e| e.into_inner());
        shared.walker.clone_from(&s.walker);
        shared.offset = s.offset;
        shared.last_start = s.last_start;
        shared.file_id = s.file_id;
        shared.file_len = s.file_len;
        shared.broken.clone_from(&s.broken);
        shared.note.clone_from(&s.note);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, Entry};

    /// A log of `n` records (`rule` r0/r1 alternating, `target` uN,
    /// `decision` approved for every third), synced.
    fn log_with(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        append(&path, 0, n);
        (dir, path)
    }

    fn append(path: &Path, from: u64, n: u64) {
        let mut log = AuditLog::open(path).unwrap();
        for i in from..from + n {
            let decision = if i % 3 == 0 { "approved" } else { "rejected" };
            log.append(
                Entry::new("approval")
                    .rule(format!("r{}", i % 2))
                    .field("target", format!("u{i}"))
                    .field("decision", decision),
            )
            .unwrap();
        }
        log.finish().unwrap();
    }

    fn seqs(page: &AuditPage) -> Vec<u64> {
        page.rows
            .iter()
            .map(|r| r.record.as_ref().unwrap()["seq"].as_u64().unwrap())
            .collect()
    }

    // Pages go backwards from the end; following `more` visits every
    // record exactly once, newest first, down to seq 1.
    #[test]
    fn pages_walk_the_log_backwards() {
        let (_d, path) = log_with(23);
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let page = read_page(&path, before, &Filter::default(), 10, u64::MAX).unwrap();
            assert!(page.rows.len() <= 10);
            all.extend(seqs(&page));
            match page.more {
                Some(m) => before = Some(m),
                None => break,
            }
        }
        assert_eq!(all, (1..=23).rev().collect::<Vec<_>>());
    }

    // Lines longer than one chunk are found whole.
    #[test]
    fn records_longer_than_a_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for i in 0..3 {
            log.append(Entry::new("finding").field(
                "details",
                "x".repeat(crate::audit::backwards::CHUNK * 2 + i),
            ))
            .unwrap();
        }
        log.finish().unwrap();
        let page = read_page(&path, None, &Filter::default(), 10, u64::MAX).unwrap();
        assert_eq!(seqs(&page), vec![3, 2, 1]);
    }

    // The scan budget ends a page early; `more` goes on from there.
    #[test]
    fn scan_budget_bounds_a_page() {
        let (_d, path) = log_with(40);
        let page = read_page(&path, None, &Filter::default(), 100, 1).unwrap();
        assert_eq!(seqs(&page), vec![40]);
        let next = read_page(&path, page.more, &Filter::default(), 100, 1).unwrap();
        assert_eq!(seqs(&next), vec![39]);
    }

    // A record too large to show is listed by size; a torn last line is
    // left out; an offset inside a line is refused.
    #[test]
    fn oversized_torn_and_bad_offsets() {
        let (_d, path) = log_with(2);
        let size_before = std::fs::metadata(&path).unwrap().len();
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            let big = format!(
                "{{\"seq\":3,\"x\":\"{}\"}}\n",
                "y".repeat(MAX_SHOWN_RECORD as usize)
            );
            f.write_all(big.as_bytes()).unwrap();
            f.write_all(b"{\"seq\":4,\"torn").unwrap();
        }
        let page = read_page(&path, None, &Filter::default(), 10, u64::MAX).unwrap();
        assert_eq!(page.rows.len(), 3);
        assert!(
            page.rows[0]
                .record
                .as_ref()
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(page.rows[0].offset, size_before);
        assert!(matches!(
            read_page(&path, Some(5), &Filter::default(), 10, u64::MAX),
            Err(PageError::BadOffset(5))
        ));
        assert!(matches!(
            read_page(&path, Some(u64::MAX), &Filter::default(), 10, u64::MAX),
            Err(PageError::BadOffset(_))
        ));
        // An empty log is an empty page.
        std::fs::write(&path, "").unwrap();
        let page = read_page(&path, None, &Filter::default(), 10, u64::MAX).unwrap();
        assert!(page.rows.is_empty() && page.more.is_none());
    }

    // Rule, user, decision and type filters narrow the rows.
    #[test]
    fn filters_narrow_the_rows() {
        let (_d, path) = log_with(12);
        let f = Filter {
            rule: "r0".into(),
            ..Filter::default()
        };
        let page = read_page(&path, None, &f, 50, u64::MAX).unwrap();
        assert_eq!(seqs(&page), vec![11, 9, 7, 5, 3, 1]);
        let f = Filter {
            decision: "approved".into(),
            ..Filter::default()
        };
        let page = read_page(&path, None, &f, 50, u64::MAX).unwrap();
        assert_eq!(seqs(&page), vec![10, 7, 4, 1]);
        let f = Filter {
            user: "U1".into(),
            ..Filter::default()
        };
        let page = read_page(&path, None, &f, 50, u64::MAX).unwrap();
        // u1, u10, u11 (seq = i + 1).
        assert_eq!(seqs(&page), vec![12, 11, 2]);
        let f = Filter {
            kind: "finding".into(),
            ..Filter::default()
        };
        assert!(
            read_page(&path, None, &f, 50, u64::MAX)
                .unwrap()
                .rows
                .is_empty()
        );
    }

    // A time range keeps records inside it; `from` stops the scan.
    #[test]
    fn time_filters() {
        let (_d, path) = log_with(3);
        let now = Utc::now();
        let f = Filter {
            from: Some(now + chrono::Duration::hours(1)),
            ..Filter::default()
        };
        let page = read_page(&path, None, &f, 50, u64::MAX).unwrap();
        assert!(page.rows.is_empty());
        assert!(page.scanned < std::fs::metadata(&path).unwrap().len());
        let f = Filter {
            to: Some(now + chrono::Duration::hours(1)),
            from: Some(now - chrono::Duration::hours(1)),
            ..Filter::default()
        };
        assert_eq!(
            read_page(&path, None, &f, 50, u64::MAX).unwrap().rows.len(),
            3
        );
        assert!(parse_time("2026-03-01T10:00").unwrap().is_some());
        assert!(parse_time("2026-03-01").unwrap().is_some());
        assert!(parse_time("2026-03-01T10:00:00+02:00").unwrap().is_some());
        assert!(parse_time("").unwrap().is_none());
        assert!(parse_time("yesterday").is_err());
    }

    // The cache verifies everything once, then only what was appended.
    #[test]
    fn verification_is_incremental() {
        let (_d, path) = log_with(20);
        let cache = VerifyCache::new(path.clone());
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(cache.catch_up(), len);
        let s = cache.status();
        assert_eq!((s.walker.last_seq, s.verified_bytes), (20, len));
        assert!(s.broken.is_none() && !s.running);
        // Nothing new: nothing hashed.
        assert_eq!(cache.catch_up(), 0);
        append(&path, 20, 5);
        let grown = std::fs::metadata(&path).unwrap().len();
        assert_eq!(cache.catch_up(), grown - len);
        assert_eq!(cache.status().walker.last_seq, 25);
    }

    // A record edited before the end breaks the chain at its line, named
    // as `vigil audit verify` names it.
    #[test]
    fn a_broken_chain_is_reported_at_its_record() {
        let (_d, path) = log_with(5);
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replacen("\"u2\"", "\"u9\"", 1);
        std::fs::write(&path, &edited).unwrap();
        let cache = VerifyCache::new(path.clone());
        cache.catch_up();
        let s = cache.status();
        let (offset, why) = s.broken.unwrap();
        assert_eq!(s.walker.last_seq, 2);
        assert_eq!(offset, s.verified_bytes);
        assert!(why.contains("seq 3") && why.contains("modified"), "{why}");
        let verify = crate::audit::verify(&path).unwrap_err().to_string();
        assert_eq!(why, verify);
    }

    // The last verified record rewritten afterwards: verified again from
    // the start, which finds the change.
    #[test]
    fn a_rewritten_end_is_verified_again() {
        let (_d, path) = log_with(4);
        let cache = VerifyCache::new(path.clone());
        cache.catch_up();
        assert_eq!(cache.status().walker.last_seq, 4);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"u3\"", "\"u8\"", 1)).unwrap();
        cache.catch_up();
        let s = cache.status();
        assert!(s.note.unwrap().contains("seq 4 changed"));
        assert!(s.broken.unwrap().1.contains("seq 4"));
    }
}

//! Checking an audit log: [`verify`] walks the hash chain from the first
//! record and compares the end against the head file. The format is described
//! in the [module documentation](crate::audit).

use super::{GENESIS_HASH, Head, head_path, parse_record};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of records in the log.
    pub records: u64,
    /// `seq` of the last record; 0 for an empty log.
    pub last_seq: u64,
    /// `hash` of the last record, or 64 zeros for an empty log.
    pub head_hash: String,
    /// Whether a head file existed and matched. Without one, records cut from
    /// the end of the log cannot be detected.
    pub head_file_checked: bool,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain intact: {} records, last seq {}, last hash {}; ",
            self.records, self.last_seq, self.head_hash
        )?;
        if self.head_file_checked {
            write!(f, "head file matches")
        } else {
            write!(
                f,
                "head file absent, so records cut from the end of the log cannot be detected"
            )
        }
    }
}

/// The first problem found in a log. Line numbers count from 1; in an intact
/// log line N holds seq N.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The log or head file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line is not a well-formed record (not JSON, missing chain fields, a
    /// torn last line, or not in the exact form Vigil writes).
    #[error("line {line} is not a valid audit record: {reason}")]
    Malformed { line: u64, reason: String },
    /// Records are missing: the seq jumps forward.
    #[error("{}", missing_message(.line, .expected, .found))]
    Missing {
        line: u64,
        expected: u64,
        found: u64,
    },
    /// A record is out of place: reordered or duplicated.
    #[error(
        "line {line} has seq {found}, expected {expected}: records were reordered or duplicated"
    )]
    Sequence {
        line: u64,
        expected: u64,
        found: u64,
    },
    /// A record's `prev_hash` is not the previous record's `hash`.
    #[error(
        "record seq {seq} (line {line}) does not follow the record before it: its prev_hash is not that record's hash"
    )]
    BrokenLink { line: u64, seq: u64 },
    /// A record's content does not match its `hash`.
    #[error("record seq {seq} (line {line}) was modified: hash mismatch")]
    Edited { line: u64, seq: u64 },
    /// The log ends before the record the head file names.
    #[error(
        "the log ends at seq {last_seq} but the head file records seq {head_seq}: records were cut from the tail"
    )]
    TruncatedTail { head_seq: u64, last_seq: u64 },
    /// The record the head file names has a different hash: the log was
    /// rewritten (or the head file replaced).
    #[error(
        "record seq {seq} does not have the hash the head file records: the log (or its head file) was rewritten"
    )]
    HeadMismatch { seq: u64 },
    /// The head file exists but cannot be understood.
    #[error("the head file is unreadable: {reason}")]
    HeadFile { reason: String },
}

fn missing_message(line: &u64, expected: &u64, found: &u64) -> String {
    if found - expected == 1 {
        format!("record seq {expected} missing: line {line} has seq {found}")
    } else {
        format!(
            "records seq {expected} to {} missing: line {line} has seq {found}",
            found - 1
        )
    }
}

/// Verifies the audit log at `path`: every record's `seq`, `prev_hash` and
/// `hash`, in order, stopping at the first bad record; then, if `<path>.head`
/// exists, that the log still holds the record it names. Streams the file, so
/// memory use does not grow with the log. An empty log is valid.
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    let head = read_head(path)?;
    let io_err = |source| VerifyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io_err)?);
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut last_seq = 0u64;
    let mut last_hash = GENESIS_HASH.to_owned();

    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io_err)? == 0 {
            break;
        }
        line += 1;
        if buf.pop() != Some(b'\n') {
            return Err(VerifyError::Malformed {
                line,
                reason: "the line is incomplete (no trailing newline), most likely a write torn by a crash"
                    .to_owned(),
            });
        }
        let record =
            parse_record(&buf).map_err(|reason| VerifyError::Malformed { line, reason })?;
        let expected = last_seq + 1;
        if record.seq != expected {
            // A jump forward is a gap, unless the next line holds the expected
            // record, in which case two records were swapped.
            let swapped =
                record.seq > expected && next_seq(&mut reader).map_err(io_err)? == Some(expected);
            return Err(if record.seq > expected && !swapped {
                VerifyError::Missing {
                    line,
                    expected,
                    found: record.seq,
                }
            } else {
                VerifyError::Sequence {
                    line,
                    expected,
                    found: record.seq,
                }
            });
        }
        if record.prev_hash != last_hash {
            return Err(VerifyError::BrokenLink {
                line,
                seq: record.seq,
            });
        }
        if record.computed_hash != record.hash {
            return Err(VerifyError::Edited {
                line,
                seq: record.seq,
            });
        }
        if !record.canonical {
            return Err(VerifyError::Malformed {
                line,
                reason: format!(
                    "record seq {} is not in the exact form Vigil writes (extra whitespace, \
                     reordered or duplicated keys): the line was altered",
                    record.seq
                ),
            });
        }
        if let Some(head) = &head
            && head.seq == record.seq
            && head.hash != record.hash
        {
            return Err(VerifyError::HeadMismatch { seq: record.seq });
        }
        last_seq = record.seq;
        last_hash = record.hash;
    }

    if let Some(head) = &head {
        if head.seq > last_seq {
            return Err(VerifyError::TruncatedTail {
                head_seq: head.seq,
                last_seq,
            });
        }
        if head.seq == 0 && head.hash != GENESIS_HASH {
            return Err(VerifyError::HeadMismatch { seq: 0 });
        }
    }
    Ok(VerifyReport {
        records: last_seq,
        last_seq,
        head_hash: last_hash,
        head_file_checked: head.is_some(),
    })
}

/// Reads `<log>.head`, or `None` if there is none.
fn read_head(log: &Path) -> Result<Option<Head>, VerifyError> {
    let head_file = head_path(log);
    match fs::read(&head_file) {
        Ok(text) => serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| VerifyError::HeadFile {
                reason: format!("{}: {e}", head_file.display()),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(VerifyError::Io {
            path: head_file,
            source,
        }),
    }
}

/// The `seq` of the next line, if it has one. Only used to tell a gap from a
/// swap, so anything unreadable simply counts as "no seq".
fn next_seq(reader: &mut impl BufRead) -> io::Result<Option<u64>> {
    let mut buf = Vec::new();
    reader.read_until(b'\n', &mut buf)?;
    let map: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(buf.trim_ascii_end()).ok();
    Ok(map.and_then(|m| m.get("seq").and_then(serde_json::Value::as_u64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::log::{AuditLog, Entry};
    use serde_json::{Map, Value};

    /// Writes `n` synced records and returns the directory guard and log path.
    fn log_with(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for i in 1..=n {
            log.append(
                Entry::new("action")
                    .rule("disable-stale-keys")
                    .event(format!("evt-{i}"))
                    .field("target", format!("key-{i}")),
            )
            .unwrap();
        }
        log.sync().unwrap();
        (dir, path)
    }

    fn read_lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    // An intact log verifies; the report names the last record.
    #[test]
    fn intact_log_verifies() {
        let (_dir, path) = log_with(10);
        let report = verify(&path).unwrap();
        assert_eq!((report.records, report.last_seq), (10, 10));
        assert!(report.head_file_checked);
        let last: Map<String, Value> = serde_json::from_str(&read_lines(&path)[9]).unwrap();
        assert_eq!(last["hash"], report.head_hash.as_str());
    }

    // An empty log is valid with zero records.
    #[test]
    fn empty_log_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        fs::write(&path, "").unwrap();
        let report = verify(&path).unwrap();
        assert_eq!(report.records, 0);
        assert_eq!(report.head_hash, GENESIS_HASH);
        assert!(!report.head_file_checked);
    }

    // Changing one field value in record 7 is reported as an edit of seq 7.
    #[test]
    fn detects_edited_record() {
        let (_dir, path) = log_with(10);
        let mut lines = read_lines(&path);
        assert!(lines[6].contains(r#""target":"key-7""#));
        lines[6] = lines[6].replace(r#""target":"key-7""#, r#""target":"key-0""#);
        write_lines(&path, &lines);
        let err = verify(&path).unwrap_err();
        assert!(
            matches!(err, VerifyError::Edited { line: 7, seq: 7 }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "record seq 7 (line 7) was modified: hash mismatch"
        );
    }

    // Deleting line 5 shows up as a gap: seq 5 missing, line 5 has seq 6.
    #[test]
    fn detects_deleted_record() {
        let (_dir, path) = log_with(10);
        let mut lines = read_lines(&path);
        lines.remove(4);
        write_lines(&path, &lines);
        let err = verify(&path).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::Missing {
                    line: 5,
                    expected: 5,
                    found: 6
                }
            ),
            "{err}"
        );
        assert_eq!(err.to_string(), "record seq 5 missing: line 5 has seq 6");
    }

    // Swapping lines 4 and 5 is reported as out of order, not as a gap.
    #[test]
    fn detects_swapped_records() {
        let (_dir, path) = log_with(10);
        let mut lines = read_lines(&path);
        lines.swap(3, 4);
        write_lines(&path, &lines);
        let err = verify(&path).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::Sequence {
                    line: 4,
                    expected: 4,
                    found: 5
                }
            ),
            "{err}"
        );
        assert!(err.to_string().starts_with("line 4 has seq 5, expected 4"));
    }

    // Cutting the last 2 records is caught by the head file.
    #[test]
    fn detects_cut_tail_with_head_file() {
        let (_dir, path) = log_with(10);
        let lines = read_lines(&path);
        write_lines(&path, &lines[..8]);
        let err = verify(&path).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::TruncatedTail {
                    head_seq: 10,
                    last_seq: 8
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "the log ends at seq 8 but the head file records seq 10: records were cut from the tail"
        );
    }

    // Documented limitation: without the head file the same cut leaves a valid
    // chain, and the report says the head file was not checked.
    #[test]
    fn cut_tail_without_head_file_passes_as_chain() {
        let (_dir, path) = log_with(10);
        let lines = read_lines(&path);
        write_lines(&path, &lines[..8]);
        fs::remove_file(head_path(&path)).unwrap();
        let report = verify(&path).unwrap();
        assert_eq!((report.records, report.last_seq), (8, 8));
        assert!(!report.head_file_checked);
        assert!(report.to_string().contains("head file absent"));
    }

    // A log replaced by a different, internally valid chain fails the head check.
    #[test]
    fn detects_rewritten_log_via_head() {
        let (_dir, path) = log_with(3);
        let other_dir = tempfile::tempdir().unwrap();
        let other = other_dir.path().join("forged.jsonl");
        let mut forged = AuditLog::open(&other).unwrap();
        for _ in 0..3 {
            forged.append(Entry::new("finding")).unwrap();
        }
        drop(forged);
        fs::copy(&other, &path).unwrap();
        let err = verify(&path).unwrap_err();
        assert!(matches!(err, VerifyError::HeadMismatch { seq: 3 }), "{err}");
    }

    // A record re-hashed after editing, but pointing at the wrong predecessor,
    // is a broken link.
    #[test]
    fn detects_broken_link() {
        let (_dir, path) = log_with(3);
        let mut lines = read_lines(&path);
        let mut rec: Map<String, Value> = serde_json::from_str(&lines[1]).unwrap();
        let forged_prev = "f".repeat(64);
        rec.insert("prev_hash".into(), forged_prev.clone().into());
        rec.remove("hash");
        let hash = crate::audit::record_hash(&forged_prev, &rec);
        rec.insert("hash".into(), hash.into());
        lines[1] = serde_json::to_string(&rec).unwrap();
        write_lines(&path, &lines);
        let err = verify(&path).unwrap_err();
        assert!(
            matches!(err, VerifyError::BrokenLink { line: 2, seq: 2 }),
            "{err}"
        );
    }

    // A duplicate key slipped in before the real one parses to the same record
    // (JSON keeps the last), so the hash still matches; the canonical-form
    // check catches it.
    #[test]
    fn detects_duplicate_key_injection() {
        let (_dir, path) = log_with(3);
        let mut lines = read_lines(&path);
        lines[1] = lines[1].replacen('{', r#"{"target":"key-0","#, 1);
        write_lines(&path, &lines);
        let err = verify(&path).unwrap_err();
        assert!(
            matches!(err, VerifyError::Malformed { line: 2, .. }),
            "{err}"
        );
    }

    // A torn last line is malformed, naming the line.
    #[test]
    fn detects_torn_last_line() {
        let (_dir, path) = log_with(3);
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str(r#"{"event_id":"evt-4""#);
        fs::write(&path, text).unwrap();
        let err = verify(&path).unwrap_err();
        assert!(
            matches!(err, VerifyError::Malformed { line: 4, .. }),
            "{err}"
        );
    }

    // An unparseable head file is reported as such.
    #[test]
    fn detects_bad_head_file() {
        let (_dir, path) = log_with(3);
        fs::write(head_path(&path), "garbage").unwrap();
        let err = verify(&path).unwrap_err();
        assert!(matches!(err, VerifyError::HeadFile { .. }), "{err}");
    }
}

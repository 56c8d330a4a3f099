//! Checking an audit log: [`verify_with`] walks the hash chain from the
//! first record, checks every checkpoint's signature (given public keys),
//! compares the end against the head file (and its signature), and compares
//! the log with a witness file and with the newest checkpoint its replica
//! published. The format is described in the [module
//! documentation](crate::audit).
//!
//! What fails: any break in the chain; a non-empty log without a head file;
//! a head that names a record the log does not have; with public keys, a
//! checkpoint or head not signed by one of them; with a witness, a
//! witnessed checkpoint the log no longer holds; with published
//! checkpoints, one published by the log's replica that the log no longer
//! holds (or one not signed by the keys). What is reported but does
//! not fail: reseals, records cut to the size cap, and (with keys) records
//! at the end covered by no signature yet (normal right after a crash).

use super::signing::{CHECKPOINT_CONTEXT, PublicKey};
use super::witness::{WitnessEntry, read_witness};
use super::{GENESIS_HASH, Head, cap, head_path, parse_record};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

/// What to check besides the chain and the head file.
#[derive(Debug, Default, Clone)]
pub struct VerifyOptions {
    /// Check every checkpoint and the head against these keys (any of them:
    /// several cover a key rotation). Empty: signatures are not checked.
    pub public_keys: Vec<PublicKey>,
    /// Compare the log with this witness file.
    pub witness: Option<PathBuf>,
    /// Checkpoints replicas published (the newest of each, see
    /// [`super::nats`]): those of the replica the log names must be in it.
    /// Those of other replicas are ignored.
    pub published: Vec<PublishedCheckpoint>,
}

/// A checkpoint a replica published (to `vigil.audit.<replica>`), checked
/// to be a checkpoint record of that replica that matches its own hash.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedCheckpoint {
    pub replica: String,
    pub seq: u64,
    pub hash: String,
    /// The record, without `hash` (for checking its signature).
    record: Map<String, Value>,
}

impl PublishedCheckpoint {
    /// Reads a published message (the checkpoint line as JSON) found for
    /// `replica`. The error is a reason for a message: not a checkpoint, not
    /// matching its own hash (altered), or naming another replica.
    pub fn from_value(replica: &str, message: &Value) -> Result<PublishedCheckpoint, String> {
        let record = parse_record(message.to_string().as_bytes())
            .map_err(|reason| format!("not a checkpoint record: {reason}"))?;
        if record.kind.as_deref() != Some("checkpoint") {
            return Err(format!(
                "a record of type {:?}, not a checkpoint",
                record.kind.unwrap_or_default()
            ));
        }
        if record.computed_hash != record.hash {
            return Err(format!(
                "checkpoint seq {} does not match its own hash: it was altered",
                record.seq
            ));
        }
        match record.map.get("replica").and_then(Value::as_str) {
            Some(named) if named == replica => {}
            Some(named) => {
                return Err(format!(
                    "checkpoint seq {} names replica {named:?}, not {replica:?}",
                    record.seq
                ));
            }
            None => {
                return Err(format!("checkpoint seq {} names no replica", record.seq));
            }
        }
        Ok(PublishedCheckpoint {
            replica: replica.to_owned(),
            seq: record.seq,
            hash: record.hash,
            record: record.map,
        })
    }
}

/// A `resealed` record found in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResealNote {
    pub seq: u64,
    pub time: String,
    pub by: String,
    pub cause: String,
    pub reason: String,
}

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of records in the log.
    pub records: u64,
    /// `seq` of the last record; 0 for an empty log.
    pub last_seq: u64,
    /// `hash` of the last record, or 64 zeros for an empty log.
    pub head_hash: String,
    /// Whether a head file existed and matched (always, for a non-empty log:
    /// a missing head fails).
    pub head_file_checked: bool,
    /// `seq` the head file names (it may lag the log after a crash).
    pub head_seq: u64,
    /// The key id whose signature on the head was verified (with keys).
    pub head_signed_by: Option<String>,
    /// `checkpoint` records in the log.
    pub checkpoints: u64,
    /// Whether their signatures were checked (public keys were given).
    pub signatures_checked: bool,
    /// `seq` of the last checkpoint.
    pub last_checkpoint: Option<u64>,
    /// With keys: the records at the end covered by neither a checkpoint nor
    /// the signed head, `(first, last)`.
    pub unsigned_tail: Option<(u64, u64)>,
    /// Every reseal, in order.
    pub reseals: Vec<ResealNote>,
    /// Records written truncated to the size cap.
    pub truncated_records: u64,
    /// With a witness: checkpoints compared, and witness lines that were not
    /// JSON (skipped).
    pub witness: Option<(u64, Vec<u64>)>,
    /// The replicas the checkpoints name (`replica`), in the order they
    /// first appear; empty for a log of no cluster (unnamed). More than one
    /// only if the replica was renamed.
    pub replicas: Vec<String>,
    /// Published checkpoints of those replicas found in the log: replica
    /// and seq.
    pub published: Vec<(String, u64)>,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain intact: {} records, last seq {}, last hash {}; ",
            self.records, self.last_seq, self.head_hash
        )?;
        if !self.head_file_checked {
            write!(f, "empty log without a head file")?;
        } else if self.head_seq < self.last_seq {
            write!(
                f,
                "head file matches seq {} (it lags the log, as after a crash)",
                self.head_seq
            )?;
        } else {
            write!(f, "head file matches")?;
        }
        if let Some(key) = &self.head_signed_by {
            write!(f, ", signed by key {key}")?;
        }
        if self.checkpoints > 0 || self.signatures_checked {
            write!(f, "\ncheckpoints: {}", self.checkpoints)?;
            if let Some(seq) = self.last_checkpoint {
                write!(f, " (last at seq {seq})")?;
            }
            if self.signatures_checked {
                write!(f, ", every signature verified")?;
            } else {
                write!(f, ", signatures not checked (pass --pubkey)")?;
            }
        }
        if let Some((first, last)) = self.unsigned_tail {
            write!(
                f,
                "\nwarning: records seq {first} to {last} are covered by no signature yet (normal \
                 only right after a crash, before Vigil restarts): anyone able to write the log \
                 could have appended them"
            )?;
        }
        if let Some((compared, unreadable)) = &self.witness {
            write!(
                f,
                "\nwitness: all {compared} witnessed checkpoints are in the log"
            )?;
            if !unreadable.is_empty() {
                write!(
                    f,
                    " ({} unreadable witness lines skipped: {:?})",
                    unreadable.len(),
                    unreadable
                )?;
            }
        }
        for (replica, seq) in &self.published {
            write!(
                f,
                "\npublished: checkpoint seq {seq} of replica {replica} is in the log"
            )?;
        }
        for r in &self.reseals {
            write!(
                f,
                "\nresealed at seq {} on {} by {}: {} (reason: {})",
                r.seq, r.time, r.by, r.cause, r.reason
            )?;
        }
        if self.truncated_records > 0 {
            write!(
                f,
                "\ntruncated records: {} (over the size cap when written; see `{}`)",
                self.truncated_records,
                cap::MARKER
            )?;
        }
        Ok(())
    }
}

/// The first problem found in a log. Line numbers count from 1; in an intact
/// log line N holds seq N.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The log or head file could not be read.
    /// The OS error is in the message, not also a `source`, so a printed
    /// error chain names it once.
    #[error("cannot read {}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
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
    /// The log has records but no head file.
    #[error(
        "the log has {last_seq} records but no head file: records may have been cut from its end \
         and the head deleted (`vigil audit reseal` accepts the log as it is, on the record)"
    )]
    HeadMissing { last_seq: u64 },
    /// With public keys: the head is unsigned, signed by another key, or
    /// its signature does not verify.
    #[error("the head file {reason}: it was not written by the holder of the key (forged head)")]
    HeadSignature { reason: String },
    /// With public keys: a checkpoint's signature fails.
    #[error("checkpoint seq {seq} (line {line}) {reason}")]
    Checkpoint { line: u64, seq: u64, reason: String },
    /// The witness file cannot be read, or was altered.
    #[error("witness: {reason}")]
    WitnessFile { reason: String },
    /// The witness holds a checkpoint past the end of the log.
    #[error(
        "the witness holds checkpoint seq {seq} (witness line {witness_line}) but the log ends at \
         seq {last_seq}: records were cut from the log"
    )]
    WitnessMissing {
        seq: u64,
        witness_line: u64,
        last_seq: u64,
    },
    /// The log's record at a witnessed seq is not the witnessed checkpoint.
    #[error(
        "record seq {seq} is not the checkpoint the witness holds for that seq (witness line \
         {witness_line}): the log was cut and rewritten from there on{}",
        if *.resealed { " (the log was resealed after the cut)" } else { "" }
    )]
    WitnessMismatch {
        seq: u64,
        witness_line: u64,
        resealed: bool,
    },
    /// The log's replica published a checkpoint past the end of the log.
    #[error(
        "replica {replica} published checkpoint seq {seq} (on {}) but the log ends at seq \
         {last_seq}: records were cut from the log",
        super::nats::subject(replica)
    )]
    PublishedMissing {
        replica: String,
        seq: u64,
        last_seq: u64,
    },
    /// The log's record at a published seq is not the published checkpoint.
    #[error(
        "record seq {seq} is not the checkpoint replica {replica} published for that seq (on \
         {}): the log was cut and rewritten from there on{}",
        super::nats::subject(replica),
        if *.resealed { " (the log was resealed after the cut)" } else { "" }
    )]
    PublishedMismatch {
        replica: String,
        seq: u64,
        resealed: bool,
    },
    /// With public keys: the checkpoint the log's replica published is not
    /// signed by one of them.
    #[error(
        "the checkpoint replica {replica} published (seq {seq}, on {}) {reason}: it was not \
         written by the holder of the key",
        super::nats::subject(replica)
    )]
    PublishedSignature {
        replica: String,
        seq: u64,
        reason: String,
    },
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

/// Verifies the chain and the head file of the log at `path` (no
/// signatures, no witness). See [`verify_with`].
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    verify_with(path, &VerifyOptions::default())
}

/// Verifies the audit log at `path`: every record's `seq`, `prev_hash` and
/// `hash`, in order, stopping at the first bad record; that `<path>.head`
/// exists (for a non-empty log) and the log still holds the record it
/// names; with `options.public_keys`, every checkpoint's and the head's
/// signature; with `options.witness`, that every witnessed checkpoint is in
/// the log. Streams the file, so memory use does not grow with the log. An
/// empty log is valid.
pub fn verify_with(path: &Path, options: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    verify_member(path, options).1
}

/// [`verify_with`], also returning the replicas the log's checkpoints name
/// (in the order they first appear), as far as it was read: a log in a set
/// is reported under its replica's name even when it fails.
pub fn verify_member(
    path: &Path,
    options: &VerifyOptions,
) -> (Vec<String>, Result<VerifyReport, VerifyError>) {
    let mut replicas = Vec::new();
    let result = verify_inner(path, options, &mut replicas);
    (replicas, result)
}

fn verify_inner(
    path: &Path,
    options: &VerifyOptions,
    replicas: &mut Vec<String>,
) -> Result<VerifyReport, VerifyError> {
    let keys = &options.public_keys;
    let head = read_head(path)?;
    let witness = match &options.witness {
        Some(w) => Some(read_witness(w).map_err(|reason| VerifyError::WitnessFile { reason })?),
        None => None,
    };
    // Witnessed checkpoints by seq (a seq can appear twice after a reseal).
    let mut witnessed: BTreeMap<u64, Vec<&WitnessEntry>> = BTreeMap::new();
    if let Some(w) = &witness {
        for entry in &w.entries {
            if !keys.is_empty() {
                let prev = entry
                    .record
                    .get("prev_hash")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                check_checkpoint(&entry.record, entry.seq, prev, keys).map_err(|reason| {
                    VerifyError::WitnessFile {
                        reason: format!(
                            "line {}: checkpoint seq {} {reason}: the witness file was altered",
                            entry.line, entry.seq
                        ),
                    }
                })?;
            }
            witnessed.entry(entry.seq).or_default().push(entry);
        }
    }
    // The hashes of the records at published seqs (a handful: one per
    // replica), compared once the log has said which replica it is.
    let published_seqs: BTreeSet<u64> = options.published.iter().map(|p| p.seq).collect();
    let mut at_published: BTreeMap<u64, String> = BTreeMap::new();

    let io_err = |source| VerifyError::Io {
        path: path.to_owned(),
        cause: source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io_err)?);
    let mut buf = Vec::new();
    let mut chain = ChainWalker::new();

    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io_err)? == 0 {
            break;
        }
        if buf.pop() != Some(b'\n') {
            return Err(VerifyError::Malformed {
                line: chain.line + 1,
                reason: "the line is incomplete (no trailing newline), most likely a write torn by a crash"
                    .to_owned(),
            });
        }
        let record = match chain.step(&buf, keys) {
            Ok(record) => record,
            // A jump forward is a gap, unless the next line holds the
            // expected record, in which case two records were swapped.
            Err(VerifyError::Missing {
                line,
                expected,
                found,
            }) if next_seq(&mut reader).map_err(io_err)? == Some(expected) => {
                return Err(VerifyError::Sequence {
                    line,
                    expected,
                    found,
                });
            }
            Err(e) => return Err(e),
        };
        if let Some(head) = &head
            && head.seq == record.seq
            && head.hash != record.hash
        {
            return Err(VerifyError::HeadMismatch { seq: record.seq });
        }
        if record.kind.as_deref() == Some("checkpoint")
            && let Some(name) = record.map.get("replica").and_then(Value::as_str)
            && !replicas.iter().any(|r| r == name)
        {
            replicas.push(name.to_owned());
        }
        if let Some(entries) = witnessed.get(&record.seq)
            && let Some(entry) = entries.iter().find(|e| e.hash != record.hash)
        {
            return Err(VerifyError::WitnessMismatch {
                seq: record.seq,
                witness_line: entry.line,
                resealed: !chain.reseals.is_empty(),
            });
        }
        if published_seqs.contains(&record.seq) {
            at_published.insert(record.seq, record.hash.clone());
        }
    }
    let ChainWalker {
        last_seq,
        last_hash,
        checkpoints,
        last_checkpoint,
        reseals,
        truncated_records,
        ..
    } = chain;

    match &head {
        None if last_seq > 0 => return Err(VerifyError::HeadMissing { last_seq }),
        None => {}
        Some(head) => {
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
    }
    if let Some((&seq, entries)) = witnessed.range(last_seq + 1..).next() {
        return Err(VerifyError::WitnessMissing {
            seq,
            witness_line: entries[0].line,
            last_seq,
        });
    }
    let mut published = Vec::new();
    for p in &options.published {
        if !replicas.contains(&p.replica) {
            continue;
        }
        if !keys.is_empty() {
            let prev = p
                .record
                .get("prev_hash")
                .and_then(Value::as_str)
                .unwrap_or_default();
            check_checkpoint(&p.record, p.seq, prev, keys).map_err(|reason| {
                VerifyError::PublishedSignature {
                    replica: p.replica.clone(),
                    seq: p.seq,
                    reason,
                }
            })?;
        }
        match at_published.get(&p.seq) {
            None => {
                return Err(VerifyError::PublishedMissing {
                    replica: p.replica.clone(),
                    seq: p.seq,
                    last_seq,
                });
            }
            Some(hash) if *hash != p.hash => {
                return Err(VerifyError::PublishedMismatch {
                    replica: p.replica.clone(),
                    seq: p.seq,
                    resealed: !reseals.is_empty(),
                });
            }
            Some(_) => published.push((p.replica.clone(), p.seq)),
        }
    }
    let mut head_signed_by = None;
    let mut unsigned_tail = None;
    if !keys.is_empty()
        && let Some(head) = &head
    {
        let key = head
            .key_id
            .as_ref()
            .and_then(|id| keys.iter().find(|k| k.key_id() == id))
            .unwrap_or(&keys[0]);
        head.check_signature(key)
            .map_err(|reason| VerifyError::HeadSignature { reason })?;
        head_signed_by = Some(key.key_id().to_owned());
        let covered = head.seq.max(last_checkpoint.unwrap_or(0));
        if covered < last_seq {
            unsigned_tail = Some((covered + 1, last_seq));
        }
    }
    Ok(VerifyReport {
        records: last_seq,
        last_seq,
        head_hash: last_hash,
        head_file_checked: head.is_some(),
        head_seq: head.as_ref().map_or(0, |h| h.seq),
        head_signed_by,
        checkpoints,
        signatures_checked: !keys.is_empty(),
        last_checkpoint,
        unsigned_tail,
        reseals,
        truncated_records,
        witness: witness.map(|w| (w.entries.len() as u64, w.unreadable_lines)),
        replicas: replicas.clone(),
        published,
    })
}

/// The streaming part of a verification: checks one line after another
/// against the chain so far (`seq` in order, `prev_hash` linking to the
/// previous record, `hash` matching the content, canonical form, and with
/// keys, checkpoint signatures) and counts what it passes. [`verify_with`]
/// runs it over a whole log; the web console keeps one and feeds it only
/// the lines appended since it last looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainWalker {
    /// Lines checked so far (the next line is `line + 1`).
    pub line: u64,
    /// `seq` of the last record checked; 0 before any.
    pub last_seq: u64,
    /// `hash` of the last record checked (64 zeros before any).
    pub last_hash: String,
    /// `checkpoint` records passed.
    pub checkpoints: u64,
    /// `seq` of the last checkpoint passed.
    pub last_checkpoint: Option<u64>,
    /// Every reseal passed, in order.
    pub reseals: Vec<ResealNote>,
    /// Records passed that were written truncated to the size cap.
    pub truncated_records: u64,
}

impl Default for ChainWalker {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainWalker {
    /// At the start of a log.
    pub fn new() -> Self {
        ChainWalker {
            line: 0,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_owned(),
            checkpoints: 0,
            last_checkpoint: None,
            reseals: Vec::new(),
            truncated_records: 0,
        }
    }

    /// Checks the next line (without its newline) and moves past it.
    /// A `seq` ahead of the expected one is reported as
    /// [`VerifyError::Missing`] (the caller may look further to tell a swap
    /// from a gap), one behind as [`VerifyError::Sequence`]. On an error
    /// the walker is left where it was.
    pub(crate) fn step(
        &mut self,
        line_bytes: &[u8],
        keys: &[PublicKey],
    ) -> Result<super::ParsedRecord, VerifyError> {
        let line = self.line + 1;
        let record =
            parse_record(line_bytes).map_err(|reason| VerifyError::Malformed { line, reason })?;
        let expected = self.last_seq + 1;
        if record.seq > expected {
            return Err(VerifyError::Missing {
                line,
                expected,
                found: record.seq,
            });
        }
        if record.seq != expected {
            return Err(VerifyError::Sequence {
                line,
                expected,
                found: record.seq,
            });
        }
        if record.prev_hash != self.last_hash {
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
        match record.kind.as_deref() {
            Some("checkpoint") => {
                if !keys.is_empty() {
                    check_checkpoint(&record.map, record.seq, &record.prev_hash, keys).map_err(
                        |reason| VerifyError::Checkpoint {
                            line,
                            seq: record.seq,
                            reason,
                        },
                    )?;
                }
                self.checkpoints += 1;
                self.last_checkpoint = Some(record.seq);
            }
            Some("resealed") => self.reseals.push(reseal_note(record.seq, &record.map)),
            _ => {}
        }
        if record.map.contains_key(cap::MARKER) {
            self.truncated_records += 1;
        }
        self.line = line;
        self.last_seq = record.seq;
        self.last_hash.clone_from(&record.hash);
        Ok(record)
    }
}

/// Checks a checkpoint record's signature against the key it names, which
/// must be among `keys`. Returns the reason it fails.
fn check_checkpoint(
    record: &Map<String, Value>,
    seq: u64,
    prev_hash: &str,
    keys: &[PublicKey],
) -> Result<(), String> {
    let field = |name: &str| {
        record
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("has no `{name}`"))
    };
    let key_id = field("key_id")?;
    let sig = field("sig")?;
    let time = field("time")?;
    let Some(key) = keys.iter().find(|k| k.key_id() == key_id) else {
        let given: Vec<&str> = keys.iter().map(PublicKey::key_id).collect();
        return Err(format!(
            "is signed by key id {key_id}, not by the given public key (key id {})",
            given.join(", ")
        ));
    };
    key.verify(CHECKPOINT_CONTEXT, seq, prev_hash, time, sig)
}

fn reseal_note(seq: u64, record: &Map<String, Value>) -> ResealNote {
    let text = |name: &str| {
        record
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    ResealNote {
        seq,
        time: text("time"),
        by: text("by"),
        cause: text("cause"),
        reason: text("reason"),
    }
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
            cause: source,
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

    // The same cut with the head file deleted fails too: a non-empty log
    // without a head is never reported as intact.
    #[test]
    fn cut_tail_without_head_file_fails() {
        let (_dir, path) = log_with(10);
        let lines = read_lines(&path);
        write_lines(&path, &lines[..8]);
        fs::remove_file(head_path(&path)).unwrap();
        let err = verify(&path).unwrap_err();
        assert!(
            matches!(err, VerifyError::HeadMissing { last_seq: 8 }),
            "{err}"
        );
        assert!(err.to_string().contains("no head file"), "{err}");
        assert!(err.to_string().contains("vigil audit reseal"), "{err}");
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
        let hash = crate::audit::record_hash(&forged_prev, &mut rec);
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

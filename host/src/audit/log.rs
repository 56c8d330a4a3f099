//! Writing the audit log: [`AuditLog`] appends hash-chained records, makes
//! them durable on [`AuditLog::sync`], signs checkpoints and the head file
//! when it has a key, and ships checkpoints to the witnesses. The format is
//! described in the [module documentation](crate::audit).
//!
//! Invariants:
//! - a log is only continued from a sound last record and a head file that
//!   matches it (present, not ahead, same hash, signed by the configured key
//!   if there is one, and not behind the witness file); otherwise opening
//!   fails naming the recovery (`vigil audit reseal`), never silently;
//! - the head file exists from the moment the log does (an empty log gets a
//!   head for seq 0), so a missing head always means deletion;
//! - no record is larger than `max_record_bytes` (see [`super::cap`]);
//! - a checkpoint reaches a witness only after the log holding it is fsync'd.

use super::cap;
use super::options::AuditOptions;
use super::signing::{AuditSigner, CHECKPOINT_CONTEXT, HEAD_CONTEXT};
use super::witness::{self, Witnesses};
use super::{
    GENESIS_HASH, Head, RESERVED_FIELDS, RESERVED_TYPES, canonical_bytes, head_path, parse_record,
    record_hash,
};
use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors from opening or writing the audit log. Every message names the file
/// (and line, where there is one), since operators act on these directly.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing the log or its head file failed. The OS error is
    /// in the message, not also a `source`, so a printed error chain names
    /// it once.
    #[error("audit log {}: I/O error: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
    /// The last line of the log is not a valid record, so the chain cannot be
    /// continued.
    #[error(
        "audit log {} is damaged at line {line}: {reason}; run `vigil audit verify {}` for details \
         (to start a new log, move the log and its .head file aside and keep them as evidence)",
        path.display(), path.display()
    )]
    Corrupt {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    /// The head file does not match the log (typically: records were cut from
    /// the end), so continuing would hide the damage.
    #[error(
        "audit log {} does not match its head file: {reason}; Vigil will not append to it. {}",
        path.display(), recovery(path)
    )]
    HeadMismatch { path: PathBuf, reason: String },
    /// The log has records but no head file: the head was deleted, most
    /// likely together with records cut from the end.
    #[error(
        "audit log {} has records but no head file ({}): records may have been cut from its end \
         and the head deleted; Vigil will not append to it. {}",
        path.display(), head_path(path).display(), recovery(path)
    )]
    HeadMissing { path: PathBuf },
    /// The head file's signature does not fit the configured key.
    #[error(
        "audit log {}: the head file {reason}; Vigil will not append to it. {}",
        path.display(), recovery(path)
    )]
    HeadSignature { path: PathBuf, reason: String },
    /// The witness holds a checkpoint past the end of the log: records were cut.
    #[error(
        "audit log {} ends at seq {last_seq} but its witness {} holds a checkpoint for seq \
         {witness_seq}: records were cut from the log; Vigil will not append to it. {}",
        path.display(), witness.display(), recovery(path)
    )]
    WitnessAhead {
        path: PathBuf,
        witness: PathBuf,
        witness_seq: u64,
        last_seq: u64,
    },
    /// The witness file cannot be read or is not a witness file.
    #[error("audit witness: {reason}")]
    Witness { reason: String },
    /// Another process has the log open for appending.
    #[error(
        "audit log {} is locked by another process; only one Vigil instance may write a log at a time",
        path.display()
    )]
    Locked { path: PathBuf },
    /// The caller passed a field the log sets itself. This is a bug in the
    /// caller, not bad input.
    #[error("audit field `{0}` is reserved: the audit log sets it itself")]
    ReservedField(String),
    /// The caller asked for a record type only the log writes (a bug in the
    /// caller).
    #[error("audit record type `{0}` is reserved: only the audit log writes it")]
    ReservedType(String),
    /// `reseal` found nothing to reseal.
    #[error(
        "audit log {} matches its head file (and its signing key and witness): there is nothing \
         to reseal",
        path.display()
    )]
    NothingToReseal { path: PathBuf },
    /// `reseal` refuses: the damage is not one a reseal may accept.
    #[error("cannot reseal audit log {}: {reason}", path.display())]
    ResealRefused { path: PathBuf, reason: String },
}

/// The recovery an operator is pointed to when a log cannot be continued.
fn recovery(path: &Path) -> String {
    format!(
        "Check it with `vigil audit verify {p}` and keep a copy of the log and its .head file as \
         evidence; then either accept the log as it now is with `vigil audit reseal {p} --by NAME \
         --reason TEXT` (add `--config vigil.toml` when [audit] signs; the reseal is recorded in \
         the log), or move the log and its .head file aside to start a new log",
        p = path.display()
    )
}

/// One record to append: its type, the rule and event it concerns, and any
/// further fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The record's `type`, e.g. `"finding"` or `"action"`.
    pub kind: &'static str,
    /// The rule the record is about, if any.
    pub rule: Option<String>,
    /// The identity event the record is about, if any.
    pub event_id: Option<String>,
    /// Further fields; must not use the [reserved](super::RESERVED_FIELDS) keys.
    pub fields: Map<String, Value>,
}

impl Entry {
    /// A record of type `kind` with no rule, event or further fields.
    pub fn new(kind: &'static str) -> Self {
        Entry {
            kind,
            rule: None,
            event_id: None,
            fields: Map::new(),
        }
    }

    /// Sets the rule the record is about.
    pub fn rule(mut self, id: impl Into<String>) -> Self {
        self.rule = Some(id.into());
        self
    }

    /// Sets the identity event the record is about.
    pub fn event(mut self, id: impl Into<String>) -> Self {
        self.event_id = Some(id.into());
        self
    }

    /// Adds a further field (replacing an earlier one with the same key).
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }
}

/// How `open` treats the head file and witness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadCheck {
    /// Refuse a log that does not match its head, key or witness.
    Enforce,
    /// `reseal` only: the caller has checked the chain itself and records
    /// why the head is being replaced.
    Reseal,
}

/// An audit log open for appending. Holds an exclusive lock on the file for
/// its lifetime.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    writer: BufWriter<File>,
    last_seq: u64,
    head_hash: String,
    /// Records were appended since the last successful sync.
    dirty: bool,
    /// A write failed part-way: the file may end in a partial line, so
    /// appending more would bury the damage in the middle of the log.
    failed: bool,
    /// The file's length at the last successful sync (or open): where a
    /// failed write is cut back to (see [`AuditLog::cut_back`]).
    synced_len: u64,
    /// Bytes appended since then (buffered or written).
    unsynced_len: u64,
    signer: Option<AuditSigner>,
    checkpoint_records: u64,
    checkpoint_every: Duration,
    max_record_bytes: usize,
    witnesses: Option<Witnesses>,
    /// Named in every checkpoint (`replica`), when set.
    replica: Option<String>,
    /// Records (other than checkpoints) since the last checkpoint, or 1 when
    /// the log was opened on records no checkpoint covers yet.
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Checkpoint lines appended but not yet fsync'd, hence not yet shipped.
    unshipped: Vec<Vec<u8>>,
}

impl AuditLog {
    /// Opens the log at `path` for appending with the default options (no
    /// signing key, no witness, 1 MiB record cap), creating it (and its
    /// parent directories) if needed. See [`AuditLog::open_with`].
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        Self::open_with(path, AuditOptions::default())
    }

    /// Opens the log at `path` for appending, creating it (and its parent
    /// directories) if needed. If the log has records, the chain continues
    /// from the last one.
    ///
    /// Refuses with [`AuditError::Corrupt`] if the last line is not a valid
    /// record (torn write, hand edit); with [`AuditError::HeadMissing`] if the
    /// log has records but no head file; with [`AuditError::HeadMismatch`] if
    /// the head file records more than the log holds or another hash; with
    /// [`AuditError::HeadSignature`] if the head is not signed by the
    /// configured key (or is signed while no key is configured); with
    /// [`AuditError::WitnessAhead`] if the witness file holds a checkpoint past
    /// the log's end; and with [`AuditError::Locked`] if another process has
    /// the log open.
    pub fn open_with(path: &Path, options: AuditOptions) -> Result<AuditLog, AuditError> {
        Self::open_inner(path, options, HeadCheck::Enforce)
    }

    pub(crate) fn open_inner(
        path: &Path,
        options: AuditOptions,
        check: HeadCheck,
    ) -> Result<AuditLog, AuditError> {
        let io_err = |source| AuditError::Io {
            path: path.to_owned(),
            cause: source,
        };
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent {
            fs::create_dir_all(dir).map_err(io_err)?;
        }
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(AuditError::Locked {
                    path: path.to_owned(),
                });
            }
            // Some filesystems (e.g. certain network mounts) cannot lock;
            // running unlocked there beats not running at all.
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {}
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        if !existed {
            // Make the new file's directory entry durable too.
            sync_dir(parent).map_err(io_err)?;
        }

        let tail = read_tail(&mut file, path)?;
        let synced_len = file.metadata().map_err(io_err)?.len();
        let mut head_present = true;
        if check == HeadCheck::Enforce {
            head_present = check_head_file(path, &tail, options.signer.as_ref())?;
            if let Some(witness_file) = &options.witness.file {
                let witnessed = witness::last_witnessed_seq(witness_file)
                    .map_err(|reason| AuditError::Witness { reason })?;
                if let Some(w) = witnessed
                    && w > tail.seq
                {
                    return Err(AuditError::WitnessAhead {
                        path: path.to_owned(),
                        witness: witness_file.clone(),
                        witness_seq: w,
                        last_seq: tail.seq,
                    });
                }
            }
        }
        let witnesses = if options.witness.any() {
            Some(
                Witnesses::start(&options.witness).map_err(|source| AuditError::Io {
                    path: options.witness.file.clone().unwrap_or_default(),
                    cause: source,
                })?,
            )
        } else {
            None
        };
        let pending =
            options.signer.is_some() && tail.seq > 0 && tail.kind.as_deref() != Some("checkpoint");
        let mut log = AuditLog {
            path: path.to_owned(),
            writer: BufWriter::new(file),
            last_seq: tail.seq,
            head_hash: tail.hash,
            dirty: false,
            failed: false,
            synced_len,
            unsynced_len: 0,
            signer: options.signer,
            checkpoint_records: options.checkpoint_records.max(1),
            checkpoint_every: Duration::from_secs(options.checkpoint_secs),
            max_record_bytes: options.max_record_bytes.max(cap::MIN_RECORD_BYTES),
            witnesses,
            replica: options.replica,
            since_checkpoint: u64::from(pending),
            last_checkpoint: Instant::now(),
            unshipped: Vec::new(),
        };
        if !head_present || (log.last_seq == 0 && check == HeadCheck::Enforce) {
            // A new (or still empty) log gets its head at once, so that from
            // now on a missing head can only mean one was deleted.
            log.write_head()?;
        }
        Ok(log)
    }

    /// Appends one record to the write buffer and returns its `seq`. The
    /// record is not durable until [`sync`](Self::sync). A record larger
    /// than the cap is written truncated, with a marker (see [`super::cap`]).
    ///
    /// Fails with [`AuditError::ReservedField`] or
    /// [`AuditError::ReservedType`] (and appends nothing) if `entry` uses a
    /// key or type the log sets itself.
    pub fn append(&mut self, entry: Entry) -> Result<u64, AuditError> {
        if let Some(key) = entry
            .fields
            .keys()
            .find(|k| RESERVED_FIELDS.contains(&k.as_str()))
        {
            return Err(AuditError::ReservedField(key.clone()));
        }
        if RESERVED_TYPES.contains(&entry.kind) {
            return Err(AuditError::ReservedType(entry.kind.to_owned()));
        }
        let mut fields = Map::new();
        if let Some(rule) = entry.rule {
            fields.insert("rule".into(), rule.into());
        }
        if let Some(event_id) = entry.event_id {
            fields.insert("event_id".into(), event_id.into());
        }
        for (key, mut value) in entry.fields {
            stabilize_floats(&mut value);
            fields.insert(key, value);
        }
        self.append_internal(entry.kind, fields)
    }

    /// Appends a record of any type, including the reserved ones (the log's
    /// own checkpoints and reseals).
    pub(crate) fn append_internal(
        &mut self,
        kind: &str,
        fields: Map<String, Value>,
    ) -> Result<u64, AuditError> {
        self.check_usable()?;
        let seq = self.last_seq + 1;
        let mut record = fields;
        record.insert("seq".into(), seq.into());
        record.insert("time".into(), now().into());
        record.insert("type".into(), kind.into());
        self.write_record(record)?;
        self.since_checkpoint += 1;
        if self.signer.is_some() && self.since_checkpoint >= self.checkpoint_records {
            self.checkpoint()?;
        }
        Ok(seq)
    }

    /// Chains and writes a complete record (with `seq`, `time`, `type`),
    /// cutting it to the size cap first if needed. Returns the line written,
    /// without its newline.
    fn write_record(&mut self, mut record: Map<String, Value>) -> Result<Vec<u8>, AuditError> {
        let seq = self.last_seq + 1;
        record.insert("prev_hash".into(), self.head_hash.clone().into());
        let mut hash = record_hash(&self.head_hash, &mut record);
        // Inserted last so that, even with serde_json's preserve_order, the
        // verifier's "parse, remove hash, re-serialize" yields the bytes hashed.
        record.insert("hash".into(), hash.clone().into());
        let mut line = canonical_bytes(&mut record);
        if line.len() > self.max_record_bytes {
            // Rare: the size is known only once serialized, so the normal
            // path pays nothing for the check.
            record.remove("hash");
            record.remove("prev_hash");
            cap::fit(&mut record, self.max_record_bytes);
            tracing::warn!(
                seq,
                bytes = line.len(),
                cap = self.max_record_bytes,
                "audit record over the size cap: written truncated, with a record_truncated marker"
            );
            record.insert("prev_hash".into(), self.head_hash.clone().into());
            hash = record_hash(&self.head_hash, &mut record);
            record.insert("hash".into(), hash.clone().into());
            line = canonical_bytes(&mut record);
        }
        line.push(b'\n');
        if let Err(e) = self.writer.write_all(&line) {
            self.cut_back();
            return Err(self.io_err(e));
        }
        self.unsynced_len += line.len() as u64;
        line.pop();
        self.last_seq = seq;
        self.head_hash = hash;
        self.dirty = true;
        Ok(line)
    }

    /// Appends a signed `checkpoint` record now (see [`super::signing`] for
    /// what it signs). Does nothing without a signing key.
    pub fn checkpoint(&mut self) -> Result<(), AuditError> {
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        self.check_usable()?;
        let seq = self.last_seq + 1;
        let time = now();
        let sig = signer.sign(CHECKPOINT_CONTEXT, seq, &self.head_hash, &time);
        let mut record = Map::new();
        record.insert("seq".into(), seq.into());
        record.insert("time".into(), time.into());
        record.insert("type".into(), "checkpoint".into());
        record.insert("key_id".into(), signer.key_id().into());
        record.insert("sig".into(), sig.into());
        if let Some(replica) = &self.replica {
            record.insert("replica".into(), replica.clone().into());
        }
        let failures = self.witnesses.as_ref().map_or(0, Witnesses::take_failures);
        if failures > 0 {
            record.insert("witness_failed".into(), failures.into());
        }
        let line = self.write_record(record)?;
        if self.witnesses.is_some() {
            self.unshipped.push(line);
        }
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Appends a checkpoint if the log signs and records are waiting for
    /// one; returns whether the log now ends with a checkpoint.
    pub(crate) fn checkpoint_pending(&mut self) -> Result<bool, AuditError> {
        if self.signer.is_none() {
            return Ok(false);
        }
        if self.since_checkpoint > 0 {
            self.checkpoint()?;
        }
        Ok(true)
    }

    /// Ends a run: with a key, a closing checkpoint for the records waiting
    /// for one, then [`sync`](Self::sync). The log stays usable. Dropping the
    /// log does the same, best effort; call this to see errors (and before
    /// reporting the log's last `seq`, which the checkpoint advances).
    pub fn finish(&mut self) -> Result<(), AuditError> {
        self.checkpoint_pending()?;
        self.sync()
    }

    /// Makes every appended record durable: flushes and fsyncs the log, ships
    /// new checkpoints to the witnesses, then atomically replaces the head
    /// file (signed, with a key) with the newest record's `seq` and `hash`.
    /// With a key, first appends a checkpoint if records are waiting for one
    /// and `checkpoint_secs` have passed since the last. Call this before
    /// executing any action a record announces. Does nothing if nothing was
    /// appended since the last sync and no checkpoint is due.
    pub fn sync(&mut self) -> Result<(), AuditError> {
        if self.signer.is_some()
            && self.since_checkpoint > 0
            && self.last_checkpoint.elapsed() >= self.checkpoint_every
        {
            self.checkpoint()?;
        }
        if !self.dirty {
            return Ok(());
        }
        self.check_usable()?;
        let flushed = self
            .writer
            .flush()
            .and_then(|()| self.writer.get_ref().sync_data());
        if let Err(e) = flushed {
            self.cut_back();
            return Err(self.io_err(e));
        }
        self.synced_len += self.unsynced_len;
        self.unsynced_len = 0;
        // Only now, with the checkpoint durable in the log, may a witness
        // hold it: a witness ahead of the log must always mean a cut.
        if let Some(witnesses) = &mut self.witnesses {
            for line in self.unshipped.drain(..) {
                witnesses.ship(&line);
            }
        }
        // The log is durable before the head file claims it, so the head never
        // points past what is on disk.
        self.write_head()?;
        self.dirty = false;
        Ok(())
    }

    /// Writes the head file for the newest record, signed when there is a key.
    fn write_head(&mut self) -> Result<(), AuditError> {
        let time = now();
        let (key_id, sig) = match &self.signer {
            Some(s) => (
                Some(s.key_id().to_owned()),
                Some(s.sign(HEAD_CONTEXT, self.last_seq, &self.head_hash, &time)),
            ),
            None => (None, None),
        };
        let head = Head {
            seq: self.last_seq,
            hash: self.head_hash.clone(),
            time: Some(time),
            key_id,
            sig,
        };
        write_head_file(&self.path, &head).map_err(|source| AuditError::Io {
            path: head_path(&self.path),
            cause: source,
        })
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `seq` of the newest record (appended, not necessarily synced); 0 if
    /// the log is empty.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// `hash` of the newest record (appended, not necessarily synced); 64
    /// zeros if the log is empty.
    pub fn head_hash(&self) -> &str {
        &self.head_hash
    }

    /// The signing key's id, if the log signs.
    pub fn key_id(&self) -> Option<&str> {
        self.signer.as_ref().map(AuditSigner::key_id)
    }

    /// Witness deliveries that failed since the last checkpoint (tests).
    #[cfg(test)]
    pub(crate) fn pending_witness_failures(&self) -> u64 {
        self.witnesses
            .as_ref()
            .map_or(0, Witnesses::pending_failures)
    }

    /// After a failed write (a full disk): marks the log failed, drops what
    /// is still buffered and cuts the file back to its length at the last
    /// sync, so it ends on a whole record again and the next start can open
    /// it. Nothing durable is lost: records after the last sync were never
    /// acknowledged by a sync, and the pipeline keeps them in its store
    /// outbox until one succeeds. Truncating needs no free space; if it
    /// fails anyway, the next open reports the torn line.
    fn cut_back(&mut self) {
        self.failed = true;
        let Ok(clone) = self.writer.get_ref().try_clone() else {
            return;
        };
        // Swap in an empty writer so the old buffer is discarded, never
        // flushed after the cut.
        let old = std::mem::replace(&mut self.writer, BufWriter::new(clone));
        let (file, _discarded) = old.into_parts();
        let cut = file
            .set_len(self.synced_len)
            .and_then(|()| file.sync_data());
        match cut {
            Ok(()) => tracing::error!(
                path = %self.path.display(),
                len = self.synced_len,
                "audit log write failed; cut back to the last synced record"
            ),
            Err(e) => tracing::error!(
                path = %self.path.display(),
                "audit log write failed and the partial record could not be cut off: {e}"
            ),
        }
        self.unsynced_len = 0;
    }

    fn check_usable(&self) -> Result<(), AuditError> {
        if self.failed {
            return Err(self.io_err(io::Error::other(
                "an earlier write failed, so the log may end in a partial record; \
                 reopen it (which checks the last line) before appending more",
            )));
        }
        Ok(())
    }

    fn io_err(&self, source: io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            cause: source,
        }
    }
}

impl Drop for AuditLog {
    /// Best-effort closing checkpoint (with a key, when records are waiting
    /// for one) and sync, so records appended since the last sync are not
    /// lost on an orderly exit and the log ends signed. Errors cannot be
    /// reported from here; callers that care call [`AuditLog::sync`]
    /// themselves.
    fn drop(&mut self) {
        if !self.failed {
            if self.signer.is_some() && self.since_checkpoint > 0 {
                let _ = self.checkpoint();
            }
            let _ = self.sync();
        }
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The last record of a log, as `open` needs it.
pub(crate) struct Tail {
    pub seq: u64,
    pub hash: String,
    pub kind: Option<String>,
}

/// Finds the last record of an open log (seq 0 and [`GENESIS_HASH`] for an
/// empty log). Reads backwards from the end to the last line's start, then
/// that line once, so opening costs time linear in the last line's length,
/// whatever the size of the log.
fn read_tail(file: &mut File, path: &Path) -> Result<Tail, AuditError> {
    let io_err = |source| AuditError::Io {
        path: path.to_owned(),
        cause: source,
    };
    let len = file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Ok(Tail {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
            kind: None,
        });
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1)).map_err(io_err)?;
    file.read_exact(&mut last).map_err(io_err)?;
    let corrupt = |file: &mut File, reason: String| -> AuditError {
        // Rare path: only now pay for counting lines, to name the exact one.
        match count_newlines(file) {
            Ok(newlines) => AuditError::Corrupt {
                path: path.to_owned(),
                line: if last[0] == b'\n' {
                    newlines
                } else {
                    newlines + 1
                },
                reason,
            },
            Err(e) => io_err(e),
        }
    };
    if last[0] != b'\n' {
        // Appending after a partial line would glue the next record onto it.
        return Err(corrupt(
            file,
            "the last line is incomplete (no trailing newline), most likely a write torn by a crash"
                .to_owned(),
        ));
    }
    let line = read_last_line(file, len).map_err(io_err)?;
    let record = match parse_record(&line) {
        Ok(record) => record,
        Err(reason) => return Err(corrupt(file, format!("not a valid record: {reason}"))),
    };
    if record.computed_hash != record.hash {
        return Err(corrupt(
            file,
            format!("record seq {} was modified: hash mismatch", record.seq),
        ));
    }
    if !record.canonical {
        return Err(corrupt(
            file,
            format!(
                "record seq {} is not in the form Vigil writes: it was altered",
                record.seq
            ),
        ));
    }
    Ok(Tail {
        seq: record.seq,
        hash: record.hash,
        kind: record.kind,
    })
}

/// Reads the last line of a file of `len` bytes that ends in `\n`, without
/// that newline. Looks backwards one chunk at a time only to *find* the
/// line's start (each byte looked at once), then reads the line in one
/// piece: linear in the line's length. (Prepending each chunk to the bytes
/// gathered so far, as this once did, copied the line again for every chunk:
/// quadratic, 177 s for a 48 MiB line.)
fn read_last_line(file: &mut File, len: u64) -> io::Result<Vec<u8>> {
    let end = len - 1; // exclude the trailing newline
    let start = super::backwards::Backwards::new(file)
        .last_newline_before(end)?
        .map_or(0, |nl| nl + 1);
    let mut line = vec![0u8; (end - start) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut line)?;
    Ok(line)
}

fn count_newlines(file: &mut File) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(file);
    let mut count = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(count);
        }
        count += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}

/// Reads `<log>.head`: `None` if there is none; an unreadable head is a
/// [`AuditError::HeadMismatch`].
pub(crate) fn read_head_file(path: &Path) -> Result<Option<Head>, AuditError> {
    let head_file = head_path(path);
    let text = match fs::read(&head_file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuditError::Io {
                path: head_file,
                cause: source,
            });
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| AuditError::HeadMismatch {
            path: path.to_owned(),
            reason: format!("head file {} is unreadable: {e}", head_file.display()),
        })
}

/// Refuses to continue a log that does not fit its head file: appending
/// would overwrite the head and erase the evidence that records were cut (or
/// that the head was forged). Returns whether a head file exists; a missing
/// one is only accepted for an empty log.
fn check_head_file(
    path: &Path,
    tail: &Tail,
    signer: Option<&AuditSigner>,
) -> Result<bool, AuditError> {
    let mismatch = |reason: String| AuditError::HeadMismatch {
        path: path.to_owned(),
        reason,
    };
    let Some(head) = read_head_file(path)? else {
        if tail.seq == 0 {
            return Ok(false);
        }
        return Err(AuditError::HeadMissing {
            path: path.to_owned(),
        });
    };
    if head.seq > tail.seq {
        return Err(mismatch(format!(
            "the log ends at seq {} but the head file records seq {}: records were cut from the tail",
            tail.seq, head.seq
        )));
    }
    // When the head is older than the last record (a crash between writing
    // records and rewriting the head) its record is somewhere earlier in the
    // log; finding it would mean reading the log, which `vigil audit verify`
    // does. The common case, head == last record, is checked here.
    if head.seq == tail.seq && head.hash != tail.hash {
        return Err(mismatch(format!(
            "record seq {} has a different hash than the head file records: the log was rewritten",
            tail.seq
        )));
    }
    if tail.seq == 0 {
        // An empty log: nothing to protect; the head is rewritten as
        // configured.
        return Ok(true);
    }
    let signature_problem = match (signer, &head.sig) {
        (Some(signer), _) => head.check_signature(&signer.public_key()).err().map(|r| {
            format!(
                "{r}, but the configured signing key is key id {} (if you just enabled or \
                 changed the key, reseal to record that)",
                signer.key_id()
            )
        }),
        (None, Some(_)) => Some(format!(
            "is signed (key id {}) but no [audit] signing_key_file is configured: continuing \
             would silently stop signing",
            head.key_id.as_deref().unwrap_or("?")
        )),
        (None, None) => None,
    };
    match signature_problem {
        Some(reason) => Err(AuditError::HeadSignature {
            path: path.to_owned(),
            reason,
        }),
        None => Ok(true),
    }
}

/// Atomically replaces `<log>.head`: readers see the old or the new head,
/// never a partial one.
fn write_head_file(log: &Path, head: &Head) -> io::Result<()> {
    let final_path = head_path(log);
    let mut tmp_name = final_path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp_path = PathBuf::from(tmp_name);
    // A fixed temporary name is safe: the log's lock ensures a single writer.
    let mut tmp = File::create(&tmp_path)?;
    let json = serde_json::to_vec(head).map_err(io::Error::other)?;
    tmp.write_all(&json)?;
    tmp.write_all(b"\n")?;
    tmp.sync_all()?;
    drop(tmp);
    fs::rename(&tmp_path, &final_path)?;
    // Make the rename itself durable.
    sync_dir(final_path.parent().filter(|p| !p.as_os_str().is_empty()))
}

/// Fsyncs a directory so entries created or renamed in it survive a crash.
/// Only meaningful (and only possible) on Unix.
fn sync_dir(dir: Option<&Path>) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Replaces every float in `value` by one that survives a JSON round trip
/// unchanged. serde_json's default float parsing is fast but not always
/// exact, so a float could be written as text that reads back as a
/// neighbouring value, and the verifier would then compute a different hash
/// for an untouched record. Moving such a float by that last bit at write
/// time keeps the chain verifiable.
fn stabilize_floats(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let mut current = value.clone();
            for _ in 0..4 {
                let text = canonical_json(&current);
                let reread: Value =
                    serde_json::from_str(&text).expect("serde_json reads back its own output");
                if reread == current {
                    *value = current;
                    return;
                }
                current = reread;
            }
            // No stable form found (not known to happen): keep the number's
            // text, which at least records what the caller meant.
            *value = Value::String(canonical_json(value));
        }
        Value::Array(items) => items.iter_mut().for_each(stabilize_floats),
        Value::Object(map) => map.values_mut().for_each(stabilize_floats),
        _ => {}
    }
}

fn canonical_json(value: &Value) -> String {
    serde_json::to_string(value).expect("serializing a JSON value to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify::verify;

    fn finding(n: u64) -> Entry {
        Entry::new("finding")
            .rule("mfa-disabled")
            .event(format!("evt-{n}"))
            .field("user", format!("user{n}"))
    }

    fn write_records(path: &Path, n: u64) {
        let mut log = AuditLog::open(path).unwrap();
        for i in 1..=n {
            assert_eq!(log.append(finding(i)).unwrap(), i);
        }
        log.sync().unwrap();
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn record(line: &str) -> Map<String, Value> {
        serde_json::from_str(line).unwrap()
    }

    // A log written and synced verifies, and each line has the documented shape.
    #[test]
    fn append_sync_verify_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!(log.last_seq(), 0);
        assert_eq!(log.head_hash(), GENESIS_HASH);
        assert_eq!(
            log.append(Entry::new("action").rule("r1").event("e1").field("n", 1.5))
                .unwrap(),
            1
        );
        assert_eq!(log.append(Entry::new("rule-fault")).unwrap(), 2);
        log.sync().unwrap();
        let head = log.head_hash().to_owned();
        assert_eq!(log.path(), path);
        drop(log);

        let lines = lines(&path);
        assert_eq!(lines.len(), 2);
        let first = record(&lines[0]);
        assert_eq!(first["seq"], 1);
        assert_eq!(first["type"], "action");
        assert_eq!(first["rule"], "r1");
        assert_eq!(first["event_id"], "e1");
        assert_eq!(first["n"], 1.5);
        assert_eq!(first["prev_hash"], GENESIS_HASH);
        let time = first["time"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok());
        assert!(time.ends_with('Z') && time.len() == "2026-11-28T01:02:03.123Z".len());
        let second = record(&lines[1]);
        assert_eq!(second["prev_hash"], first["hash"]);
        assert!(!second.contains_key("rule") && !second.contains_key("event_id"));
        assert_eq!(second["hash"], head.as_str());

        let report = verify(&path).unwrap();
        assert_eq!(report.records, 2);
        assert_eq!(report.last_seq, 2);
        assert_eq!(report.head_hash, head);
        assert!(report.head_file_checked);
    }

    // Reopening continues the chain: seq and hash pick up where they left off.
    #[test]
    fn reopen_continues_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_records(&path, 3);
        let hash3 = record(&lines(&path)[2])["hash"]
            .as_str()
            .unwrap()
            .to_owned();

        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!(log.last_seq(), 3);
        assert_eq!(log.head_hash(), hash3);
        assert_eq!(log.append(finding(4)).unwrap(), 4);
        log.sync().unwrap();
        drop(log);

        assert_eq!(record(&lines(&path)[3])["prev_hash"], hash3.as_str());
        let report = verify(&path).unwrap();
        assert_eq!((report.records, report.last_seq), (4, 4));
    }

    // Records appended without an explicit sync are synced on drop.
    #[test]
    fn drop_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        log.append(finding(1)).unwrap();
        drop(log);
        assert_eq!(lines(&path).len(), 1);
        assert!(verify(&path).unwrap().head_file_checked);
    }

    // A torn last line (crash mid-write) is refused on open, naming the line.
    #[test]
    fn torn_last_line_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_records(&path, 3);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"event_id":"evt-4","hash":"ab"#)
            .unwrap();
        drop(file);

        let err = AuditLog::open(&path).unwrap_err();
        assert!(
            matches!(&err, AuditError::Corrupt { path: p, line: 4, .. } if p == &path),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("line 4") && msg.contains("vigil audit verify"),
            "{msg}"
        );
    }

    // A complete but hand-edited last line is refused too.
    #[test]
    fn edited_last_line_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_records(&path, 3);
        let text = fs::read_to_string(&path).unwrap().replace("user3", "userX");
        fs::write(&path, text).unwrap();

        let err = AuditLog::open(&path).unwrap_err();
        assert!(matches!(err, AuditError::Corrupt { line: 3, .. }), "{err}");
    }

    // A log shorter than its head file is refused: continuing would hide the cut.
    #[test]
    fn truncated_log_refused_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_records(&path, 5);
        let kept = lines(&path)[..3].join("\n") + "\n";
        fs::write(&path, kept).unwrap();

        let err = AuditLog::open(&path).unwrap_err();
        assert!(matches!(err, AuditError::HeadMismatch { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("ends at seq 3 but the head file records seq 5")
        );
    }

    // Reserved keys are rejected and nothing is written.
    #[test]
    fn reserved_field_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for key in RESERVED_FIELDS {
            let err = log.append(Entry::new("finding").field(key, 1)).unwrap_err();
            assert!(
                matches!(&err, AuditError::ReservedField(k) if k == key),
                "{err}"
            );
        }
        assert_eq!(log.last_seq(), 0);
        assert_eq!(log.append(Entry::new("finding")).unwrap(), 1);
    }

    // After sync the head file holds the last record's seq and hash, replaced
    // via a temporary file that does not linger.
    #[test]
    fn head_file_rewritten_on_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let head_file = head_path(&path);
        let mut log = AuditLog::open(&path).unwrap();
        // A new log has a head from the start (seq 0), so that a missing
        // head can only mean deletion.
        let genesis: Head = serde_json::from_slice(&fs::read(&head_file).unwrap()).unwrap();
        assert_eq!((genesis.seq, genesis.hash.as_str()), (0, GENESIS_HASH));
        assert!(genesis.sig.is_none());
        let before = fs::read(&head_file).unwrap();
        log.sync().unwrap();
        assert_eq!(
            fs::read(&head_file).unwrap(),
            before,
            "sync with nothing appended is a no-op"
        );

        for round in 1..=2u64 {
            log.append(finding(round)).unwrap();
            log.sync().unwrap();
            let head: Head = serde_json::from_slice(&fs::read(&head_file).unwrap()).unwrap();
            let last = record(lines(&path).last().unwrap());
            assert_eq!(head.seq, round);
            assert_eq!(last["seq"], round);
            assert_eq!(last["hash"], head.hash.as_str());
            assert_eq!(head.hash, log.head_hash());
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "no leftover temporary file: {names:?}");
    }

    // A second writer on the same log is refused while the first holds it.
    #[test]
    fn second_writer_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let first = AuditLog::open(&path).unwrap();
        let err = AuditLog::open(&path).unwrap_err();
        assert!(matches!(err, AuditError::Locked { .. }), "{err}");
        drop(first);
        AuditLog::open(&path).unwrap();
    }

    // A long last line (spanning several read chunks) is found when reopening.
    #[test]
    fn reopen_with_long_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        log.append(finding(1)).unwrap();
        log.append(Entry::new("finding").field("blob", "x".repeat(20_000)))
            .unwrap();
        drop(log);
        let log = AuditLog::open(&path).unwrap();
        assert_eq!(log.last_seq(), 2);
    }

    // Floats are stored so that they read back exactly: the chain verifies.
    #[test]
    fn floats_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for f in [
            0.1,
            1e-300,
            2.2250738585072014e-308,
            1.7976931348623157e308,
            123456.789e-7,
        ] {
            log.append(
                Entry::new("finding")
                    .field("score", f)
                    .field("nested", serde_json::json!([{"f": f}])),
            )
            .unwrap();
        }
        drop(log);
        assert!(matches!(verify(&path), Ok(r) if r.records == 5));
    }
}

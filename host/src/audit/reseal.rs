//! `vigil audit reseal`: the deliberate, recorded way to continue a log that
//! Vigil refuses to append to because its head file is missing, no longer
//! matches (records were cut), is not signed as configured (a key was
//! enabled, changed or removed), or is behind the witness.
//!
//! A reseal never changes a byte already in the log. It
//! 1. takes the log's lock (so no Vigil is writing it),
//! 2. verifies the whole chain, and refuses if any record is damaged (a
//!    reseal accepts a log whose *end* is in question, never one whose
//!    records were altered: that log is evidence, to be moved aside),
//! 3. refuses if there is nothing to reseal,
//! 4. appends a `resealed` record naming who (`by`), why (`reason`, the
//!    operator's words), the `cause` Vigil found, the `previous_head` (what
//!    the old head file said, or `null` if it was missing) and the `log_end`
//!    it accepted (`seq` and `hash` of the last record before the reseal),
//! 5. with a signing key, appends a checkpoint right after it (so the reseal
//!    itself is signed and reaches the witnesses), then syncs, which writes
//!    a new head (signed with the key).
//!
//! So the cut stays visible forever: `vigil audit verify` lists every reseal,
//! and a witness that saw checkpoints past the cut keeps failing
//! `verify --witness` (a reseal never hides a loss a witness proves).

use std::path::Path;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::log::{AuditError, AuditLog, HeadCheck, read_head_file};
use super::options::AuditOptions;
use super::verify::{VerifyError, verify};
use super::{head_path, witness};

/// What a reseal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResealReport {
    /// `seq` of the `resealed` record.
    pub seq: u64,
    /// Why the log needed it, as Vigil found it.
    pub cause: String,
    /// Whether a signed checkpoint followed it.
    pub checkpointed: bool,
}

/// Reseals the log at `path` (see the module documentation). `by` and
/// `reason` are required and recorded.
pub fn reseal(
    path: &Path,
    options: AuditOptions,
    by: &str,
    reason: &str,
) -> Result<ResealReport, AuditError> {
    let refused = |reason: String| AuditError::ResealRefused {
        path: path.to_owned(),
        reason,
    };
    if by.trim().is_empty() || reason.trim().is_empty() {
        return Err(refused(
            "--by and --reason must name who reseals and why: the reseal is recorded".to_owned(),
        ));
    }
    if !path.exists() {
        return Err(refused("the log does not exist".to_owned()));
    }
    let signer_key = options.signer.as_ref().map(|s| s.public_key());
    let witness_file = options.witness.file.clone();
    // Locks the log; checks only that its last line is a sound record.
    let mut log = AuditLog::open_inner(path, options, HeadCheck::Reseal)?;

    let mut causes = Vec::new();
    match verify(path) {
        Ok(_) => {}
        Err(VerifyError::HeadMissing { .. }) => causes.push("the head file was missing".to_owned()),
        Err(e @ (VerifyError::TruncatedTail { .. } | VerifyError::HeadMismatch { .. })) => {
            causes.push(format!("the head file did not match: {e}"))
        }
        Err(VerifyError::HeadFile { reason }) => {
            causes.push(format!("the head file was unreadable: {reason}"))
        }
        Err(e) => {
            return Err(refused(format!(
                "its chain is damaged ({e}); a reseal only accepts an intact chain whose end is in \
                 question. Keep the log and its .head file as evidence and move both aside to \
                 start a new log"
            )));
        }
    }
    // Read the old head whatever state it is in, to record it.
    let old_head = match read_head_file(path) {
        Ok(head) => head,
        Err(AuditError::HeadMismatch { .. }) => None,
        Err(e) => return Err(e),
    };
    let old_head_bytes = std::fs::read(head_path(path)).ok();
    if causes.is_empty() {
        let head = old_head.as_ref();
        match (&signer_key, head.and_then(|h| h.sig.as_ref())) {
            (Some(key), _) => {
                if let Some(Err(problem)) = head.map(|h| h.check_signature(key)) {
                    causes.push(format!(
                        "the head file {problem}; the configured signing key is key id {}",
                        key.key_id()
                    ));
                }
            }
            (None, Some(_)) => causes.push(format!(
                "the head file was signed (key id {}) and no signing key is configured any more",
                head.and_then(|h| h.key_id.as_deref()).unwrap_or("?")
            )),
            (None, None) => {}
        }
    }
    if let Some(file) = &witness_file {
        let witnessed =
            witness::last_witnessed_seq(file).map_err(|reason| AuditError::Witness { reason })?;
        if let Some(w) = witnessed
            && w > log.last_seq()
        {
            causes.push(format!(
                "the witness {} holds a checkpoint for seq {w}, past the log's end at seq {}",
                file.display(),
                log.last_seq()
            ));
        }
    }
    if causes.is_empty() || (log.last_seq() == 0 && old_head.as_ref().is_none_or(|h| h.seq == 0)) {
        return Err(AuditError::NothingToReseal {
            path: path.to_owned(),
        });
    }

    let previous_head = match (&old_head, &old_head_bytes) {
        (Some(h), _) => json!({
            "seq": h.seq,
            "hash": h.hash,
            "time": h.time,
            "key_id": h.key_id,
        }),
        // Unreadable: its fingerprint, so a kept copy can be matched.
        (None, Some(bytes)) => json!({
            "unreadable_sha256": hex::encode(Sha256::digest(bytes)),
            "bytes": bytes.len(),
        }),
        (None, None) => Value::Null,
    };
    let cause = causes.join("; ");
    let mut fields = Map::new();
    fields.insert("by".into(), by.trim().into());
    fields.insert("reason".into(), reason.trim().into());
    fields.insert("cause".into(), cause.clone().into());
    fields.insert("previous_head".into(), previous_head);
    fields.insert(
        "log_end".into(),
        json!({"seq": log.last_seq(), "hash": log.head_hash()}),
    );
    let seq = log.append_internal("resealed", fields)?;
    let checkpointed = log.checkpoint_pending()?;
    log.sync()?;
    Ok(ResealReport {
        seq,
        cause,
        checkpointed,
    })
}

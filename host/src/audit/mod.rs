//! The audit log: a tamper-evident, append-only record of everything Vigil
//! decided and did.
//!
//! # File format
//!
//! The log is a [JSON Lines](https://jsonlines.org) file: one JSON object per
//! line, each line ending in `\n`. Every record has these fields:
//!
//! | field      | meaning                                                        |
//! |------------|----------------------------------------------------------------|
//! | `seq`      | record number: 1 for the first record, +1 for each record after |
//! | `time`     | when the record was appended, UTC, RFC 3339 with milliseconds (`2026-11-28T01:02:03.123Z`) |
//! | `type`     | what happened: `finding`, `action`, `action-result`, `rule-fault`, `rule-quarantined`, … |
//! | `rule`     | the rule involved (absent if none)                             |
//! | `event_id` | the identity event involved (absent if none)                   |
//! | …          | further fields specific to the record type                     |
//! | `prev_hash`| `hash` of the previous record (64 zeros for record 1)          |
//! | `hash`     | this record's hash, see below                                  |
//!
//! Lines are written in canonical form: keys sorted, no whitespace (exactly
//! what `serde_json` produces for a map). So line *n* always holds record
//! `seq` *n*, and the log can be read with any JSON tool, e.g.
//! `jq 'select(.type == "action")' audit.jsonl`.
//!
//! # Hash chain
//!
//! `hash` is the lowercase hex SHA-256 of
//!
//! ```text
//! prev_hash (64 hex characters) + "\n" + canonical JSON of the record without its `hash` field
//! ```
//!
//! Because each record includes the previous record's hash, changing,
//! deleting, inserting or reordering any record breaks the chain from that
//! point on, and `vigil audit verify` reports the first record that does not
//! fit: its line, its `seq`, and what is wrong with it.
//!
//! # Head file
//!
//! A chain alone cannot reveal records cut from the *end* of the log: what is
//! left is still a valid chain. So after every sync the log also writes
//! `<log>.head` (e.g. `audit.jsonl.head`) containing
//! `{"seq":N,"hash":"…","time":"…"}` for the newest durable record (plus
//! `key_id` and `sig` with a signing key). The head file is replaced
//! atomically (write a temporary file, fsync, rename), so it is always either
//! the old or the new head, never a mix. A new log gets a head for seq 0 when
//! it is created, so a log with records and no head means the head was
//! deleted: `vigil audit verify` fails on it, and Vigil refuses to append to
//! it, as to a log shorter than its head, with another hash at the head's
//! seq, with a head not signed by the configured key, or behind its witness.
//! The recovery is [`reseal`](mod@reseal): deliberate (`--by`, `--reason`), refused on a
//! damaged chain, and recorded in the log.
//!
//! # Signed checkpoints and witnesses
//!
//! Someone who can rewrite both the log and an unsigned head can forge a
//! consistent history. With an ed25519 key kept away from the log
//! ([`signing`]), `checkpoint` records every N records or M seconds sign the
//! chain so far, and every head is signed; `vigil audit verify --pubkey`
//! checks them without the private key, so a re-hashed history or a forged
//! head is caught. Checkpoints can also be shipped to a [`witness`] file or
//! URL, which catches a log cut back to an older signed point. What is and
//! is not detected is tabled in the README ("The audit log").
//!
//! # Replicas
//!
//! In a cluster each replica keeps its own log, a chain of its own. With
//! `[cluster]` configured (see [`AuditOptions::replica`]) every `checkpoint`
//! record also carries `"replica": "<name>"`, so a log says whose chain it
//! is; it is an ordinary field, covered by the record's `hash` like any
//! other (the signature is unchanged: it commits to the chain before the
//! checkpoint, and the next checkpoint or the signed head commits to this
//! one). Without `[cluster]` checkpoints have no `replica` field. The
//! checkpoints can also be published to a NATS JetStream stream (subject
//! `vigil.audit.<replica>`, see [`witness::CheckpointPublisher`] and
//! [`nats`]); `vigil audit verify a.jsonl b.jsonl … --nats URL` verifies a
//! set of replica logs and checks that each replica's newest published
//! checkpoint is still in its log.
//!
//! # Durability
//!
//! Appending a record only buffers it. A record is durable once the log has
//! been synced (flushed and fsynced, and the head file rewritten). Vigil syncs
//! before executing any action a record announces, so the log never lags
//! behind what was done: after a crash the log may show an action that was
//! announced but never carried out (its `action-result` is missing), never the
//! other way round. The head file may lag the log by the records appended
//! after the last sync; that is normal and not reported as an error.
//!
//! Only one process may append to a log at a time (an exclusive lock is taken
//! when it is opened), since two writers would fork the chain.
//!
//! # Damage
//!
//! If the last line of the log is not a valid record (a write torn by a crash
//! or power loss, or a hand edit), Vigil refuses to append and names the file
//! and line. Run `vigil audit verify <log>` to see what is wrong; to start over,
//! move the log *and* its head file aside so the damaged copy is kept as
//! evidence.
//!
//! # Size
//!
//! No record is larger than `[audit] max_record_bytes`; a larger one is
//! written truncated with a marker ([`cap`]). Opening reads only the last
//! line, in time linear in its length.

pub mod backwards;
pub mod cap;
pub mod log;
pub mod nats;
pub mod options;
pub mod reseal;
pub mod signing;
pub mod verify;
pub mod witness;

#[cfg(test)]
mod tests;

pub use log::{AuditError, AuditLog, Entry};
pub use options::AuditOptions;
pub use reseal::{ResealReport, reseal};
pub use signing::{AuditSigner, KeyError, PublicKey, keygen};
pub use verify::{
    ChainWalker, PublishedCheckpoint, VerifyError, VerifyOptions, VerifyReport, verify,
    verify_member, verify_with,
};
pub use witness::CheckpointPublisher;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// `prev_hash` of the first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Keys the log sets itself; callers may not supply them as extra fields.
pub const RESERVED_FIELDS: [&str; 8] = [
    "seq",
    "time",
    "type",
    "rule",
    "event_id",
    "prev_hash",
    "hash",
    cap::MARKER,
];

/// Record types only the log itself writes: a caller cannot forge a
/// checkpoint or a reseal through [`AuditLog::append`].
pub const RESERVED_TYPES: [&str; 2] = ["checkpoint", "resealed"];

/// The head file written next to the log: `<log>.head`.
pub fn head_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

/// Contents of the head file: the newest durable record, when the head was
/// written, and with a signing key, the key id and signature over those
/// (see [`signing`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

impl Head {
    /// Checks the head's signature against `key` (whose id it must carry).
    /// The error is a reason for a message.
    pub(crate) fn check_signature(&self, key: &PublicKey) -> Result<(), String> {
        let (Some(key_id), Some(sig), Some(time)) = (&self.key_id, &self.sig, &self.time) else {
            return Err("is not signed".to_owned());
        };
        if key_id != key.key_id() {
            return Err(format!(
                "is signed by key id {key_id}, not by key id {}",
                key.key_id()
            ));
        }
        key.verify(signing::HEAD_CONTEXT, self.seq, &self.hash, time, sig)
            .map_err(|reason| format!("has a bad signature: {reason}"))
    }
}

/// Canonical bytes of a record: compact JSON with keys in the map's order
/// (sorted, with serde_json's default BTreeMap). The writer emits exactly these
/// bytes, so the verifier can reproduce them by parsing and re-serializing.
///
/// Takes `&mut` only to serialize through `Value`'s `Display`, which is code
/// compiled inside serde_json: `serde_json::to_vec(&map)` would be
/// monomorphized into this crate, whose dev profile is unoptimized, and
/// there it costs ~3.5 s for a 48 MiB record instead of ~0.1 s. The bytes
/// are the same; the map is moved out and back (no copy).
pub(crate) fn canonical_bytes(record: &mut Map<String, Value>) -> Vec<u8> {
    let value = Value::Object(std::mem::take(record));
    let text = value.to_string();
    if let Value::Object(map) = value {
        *record = map;
    }
    text.into_bytes()
}

/// The chain hash of a record: SHA-256 over `prev` + "\n" + canonical bytes of
/// the record without its `hash` field (but with `prev_hash`). Used by both
/// the writer and the verifier, so they cannot drift apart.
pub(crate) fn record_hash(prev: &str, record_without_hash: &mut Map<String, Value>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_bytes(record_without_hash));
    hex::encode(hasher.finalize())
}

/// One line of the log, parsed and re-hashed, but not yet checked against its
/// neighbours (that is the caller's job: the verifier checks every link, the
/// writer only needs the last record to be sound).
pub(crate) struct ParsedRecord {
    pub seq: u64,
    pub prev_hash: String,
    /// The `hash` stored in the line.
    pub hash: String,
    /// The hash recomputed from the line's content.
    pub computed_hash: String,
    /// Whether the line is byte-for-byte what the writer would have produced.
    /// A line can carry a correct hash yet differ textually (e.g. a duplicate
    /// key inserted before the real one, which JSON parsers silently drop
    /// but a human reading the file would see), so this is checked too.
    pub canonical: bool,
    /// The record's `type`, if it is a string.
    pub kind: Option<String>,
    /// The record without its `hash`.
    pub map: Map<String, Value>,
}

/// Parses one line (without its trailing newline). The error is a reason
/// suitable for a "line N: reason" message.
pub(crate) fn parse_record(line: &[u8]) -> Result<ParsedRecord, String> {
    let mut map: Map<String, Value> =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let seq = map
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or("`seq` is missing or not a non-negative integer")?;
    let prev_hash = map
        .get("prev_hash")
        .and_then(Value::as_str)
        .ok_or("`prev_hash` is missing or not a string")?
        .to_owned();
    let canonical = canonical_bytes(&mut map) == line;
    let hash = match map.remove("hash") {
        Some(Value::String(h)) => h,
        _ => return Err("`hash` is missing or not a string".to_owned()),
    };
    let computed_hash = record_hash(&prev_hash, &mut map);
    let kind = map.get("type").and_then(Value::as_str).map(str::to_owned);
    Ok(ParsedRecord {
        seq,
        prev_hash,
        hash,
        computed_hash,
        canonical,
        kind,
        map,
    })
}

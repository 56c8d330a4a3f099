//! `[audit]`: signed checkpoints, witnesses and the record size cap of the
//! audit log (whose path stays the top-level `audit_path`). Validated with
//! the rest of the file; the key file itself is read and checked when the
//! log is opened (`audit::AuditOptions::from_config`), since listing rules
//! or checking connectors must not need it.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Deserialize;

/// Default `checkpoint_records`.
pub const DEFAULT_CHECKPOINT_RECORDS: u64 = 1000;
/// Default `checkpoint_secs`.
pub const DEFAULT_CHECKPOINT_SECS: u64 = 60;
/// Smallest accepted `max_record_bytes`: room for a record's fixed fields,
/// the truncation marker and some content.
pub const MIN_RECORD_BYTES: usize = 4096;
/// Default `max_record_bytes`: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Largest accepted `max_record_bytes`: 64 MiB.
const MAX_RECORD_BYTES_LIMIT: usize = 64 * 1024 * 1024;

/// `[audit]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The ed25519 private key (PKCS#8 PEM, from `vigil audit keygen`) that
    /// signs checkpoints and the head file. Must be readable by its owner
    /// only and outside the log's directory. None: nothing is signed.
    pub signing_key_file: Option<PathBuf>,
    /// A checkpoint after this many records (with a key).
    pub checkpoint_records: u64,
    /// A checkpoint at the first sync this many seconds after the previous
    /// one, when records are waiting for one (with a key).
    pub checkpoint_secs: u64,
    /// Largest record written whole; a larger one is written truncated with
    /// a `record_truncated` marker.
    pub max_record_bytes: usize,
    /// A file, on another volume, that gets a copy of every checkpoint.
    pub witness_file: Option<PathBuf>,
    /// A URL (https, or http on loopback) every checkpoint is POSTed to.
    pub witness_url: Option<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            signing_key_file: None,
            checkpoint_records: DEFAULT_CHECKPOINT_RECORDS,
            checkpoint_secs: DEFAULT_CHECKPOINT_SECS,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            witness_file: None,
            witness_url: None,
        }
    }
}

impl AuditConfig {
    pub(super) fn validate(&self) -> Result<()> {
        if !(1..=1_000_000).contains(&self.checkpoint_records) {
            bail!(
                "audit.checkpoint_records is {}; it must be between 1 and 1000000",
                self.checkpoint_records
            );
        }
        if !(1..=86_400).contains(&self.checkpoint_secs) {
            bail!(
                "audit.checkpoint_secs is {}; it must be between 1 and 86400",
                self.checkpoint_secs
            );
        }
        if !(MIN_RECORD_BYTES..=MAX_RECORD_BYTES_LIMIT).contains(&self.max_record_bytes) {
            bail!(
                "audit.max_record_bytes is {}; it must be between {MIN_RECORD_BYTES} and \
                 {MAX_RECORD_BYTES_LIMIT}",
                self.max_record_bytes
            );
        }
        if self.signing_key_file.is_none() {
            for (key, set) in [
                ("witness_file", self.witness_file.is_some()),
                ("witness_url", self.witness_url.is_some()),
            ] {
                if set {
                    bail!(
                        "audit.{key} needs audit.signing_key_file: witnesses receive signed \
                         checkpoints, which only exist with a key (`vigil audit keygen --out FILE`)"
                    );
                }
            }
        }
        if let Some(url) = &self.witness_url {
            super::connectors::secure_url("audit.witness_url", url, false)?;
        }
        Ok(())
    }

    pub(super) fn resolve_paths(&mut self, resolve: impl Fn(&mut PathBuf)) {
        for p in [&mut self.signing_key_file, &mut self.witness_file]
            .into_iter()
            .flatten()
        {
            resolve(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    // The defaults hold with no [audit] table.
    #[test]
    fn defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.audit.checkpoint_records, 1000);
        assert_eq!(c.audit.checkpoint_secs, 60);
        assert_eq!(c.audit.max_record_bytes, 1024 * 1024);
        assert!(c.audit.signing_key_file.is_none());
    }

    // Each bad value is refused naming the key.
    #[test]
    fn bad_values_name_the_key() {
        for (body, key) in [
            ("checkpoint_records = 0", "audit.checkpoint_records"),
            ("checkpoint_secs = 0", "audit.checkpoint_secs"),
            ("max_record_bytes = 100", "audit.max_record_bytes"),
            (
                "witness_file = \"/w/witness.jsonl\"",
                "audit.witness_file needs",
            ),
            (
                "signing_key_file = \"/k\"\nwitness_url = \"http://example.com/w\"",
                "audit.witness_url",
            ),
            ("checkpoint_record = 5", "checkpoint_record"),
        ] {
            let err = Config::parse(&format!("[audit]\n{body}\n")).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(key), "{body}: {msg}");
        }
        // A plain-http witness URL never quotes the URL (it may be a credential).
        let err = Config::parse(
            "[audit]\nsigning_key_file = \"/k\"\nwitness_url = \"http://example.com/secret-token\"\n",
        )
        .unwrap_err();
        assert!(!format!("{err:#}").contains("secret-token"), "{err:#}");
    }

    // Relative key and witness paths are taken relative to the config file.
    #[test]
    fn paths_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.toml");
        std::fs::write(
            &path,
            "[audit]\nsigning_key_file = \"keys/audit.key\"\nwitness_file = \"w/witness.jsonl\"\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(
            c.audit.signing_key_file.unwrap(),
            dir.path().join("keys/audit.key")
        );
        assert_eq!(
            c.audit.witness_file.unwrap(),
            dir.path().join("w/witness.jsonl")
        );
    }
}

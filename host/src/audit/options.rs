//! What an open audit log does besides chaining records: sign checkpoints
//! and the head file, ship checkpoints to witnesses, cap record sizes.
//! [`AuditOptions::from_config`] turns the `[audit]` table into these,
//! loading and checking the key file (private to its owner, outside the
//! log's directory) and the witness file's place (outside the log's
//! directory; a warning when on the log's file system).

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::signing::AuditSigner;
use super::witness::WitnessConfig;
use crate::config::AuditConfig;

use crate::config::audit::{
    DEFAULT_CHECKPOINT_RECORDS, DEFAULT_CHECKPOINT_SECS, DEFAULT_MAX_RECORD_BYTES,
};

/// How an [`AuditLog`](super::AuditLog) signs, witnesses and caps.
#[derive(Debug)]
pub struct AuditOptions {
    /// Signs checkpoints and the head file; `None`: neither is signed.
    pub signer: Option<AuditSigner>,
    /// A checkpoint after this many records...
    pub checkpoint_records: u64,
    /// ...or at the first sync this many seconds after the last checkpoint,
    /// when records are waiting for one (and when the log is closed).
    pub checkpoint_secs: u64,
    /// Largest record written whole; larger ones are cut (see
    /// [`super::cap`]).
    pub max_record_bytes: usize,
    /// Where checkpoints are shipped.
    pub witness: WitnessConfig,
    /// The replica whose chain this log is (`[cluster] replica`): every
    /// checkpoint record names it in a `replica` field. `None` (one
    /// machine): checkpoints carry no such field.
    pub replica: Option<String>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            signer: None,
            checkpoint_records: DEFAULT_CHECKPOINT_RECORDS,
            checkpoint_secs: DEFAULT_CHECKPOINT_SECS,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            witness: WitnessConfig::default(),
            replica: None,
        }
    }
}

impl AuditOptions {
    /// The options of a (validated) `[audit]` table for the log at `log`.
    /// Errors name the key (`audit.signing_key_file`, …) and the file.
    /// `replica` and `witness.publish` come from elsewhere (`[cluster]`) and
    /// are left unset.
    pub fn from_config(config: &AuditConfig, log: &Path) -> Result<AuditOptions> {
        let log_dir = log
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // The checks below compare real paths, so the directory must exist;
        // opening the log would create it anyway.
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        let signer = match &config.signing_key_file {
            Some(key) => Some(
                AuditSigner::load(key, log)
                    .context("audit.signing_key_file: cannot use the key")?,
            ),
            None => None,
        };
        if let Some(file) = &config.witness_file {
            check_witness_place(file, log_dir)?;
        }
        let url = match &config.witness_url {
            Some(url) => Some(crate::config::connectors::secure_url(
                "audit.witness_url",
                url,
                false,
            )?),
            None => None,
        };
        Ok(AuditOptions {
            signer,
            checkpoint_records: config.checkpoint_records,
            checkpoint_secs: config.checkpoint_secs,
            max_record_bytes: config.max_record_bytes,
            witness: WitnessConfig {
                file: config.witness_file.clone(),
                url,
                publish: None,
            },
            replica: None,
        })
    }
}

/// A witness inside the log's directory proves nothing (whoever cuts the log
/// cuts it too): refused. On the same file system it still survives a
/// careless cut, but not a lost disk: warned.
fn check_witness_place(file: &Path, log_dir: &Path) -> Result<()> {
    let witness_dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(witness_dir).with_context(|| {
        format!(
            "audit.witness_file: cannot create {}",
            witness_dir.display()
        )
    })?;
    let witness_real = std::fs::canonicalize(witness_dir).with_context(|| {
        format!(
            "audit.witness_file: cannot resolve {}",
            witness_dir.display()
        )
    })?;
    let log_real = std::fs::canonicalize(log_dir)
        .with_context(|| format!("cannot resolve {}", log_dir.display()))?;
    if witness_real.starts_with(&log_real) {
        bail!(
            "audit.witness_file: {} is inside the audit log's directory {}; a witness must be \
             out of reach of whoever can cut the log (another volume or host)",
            file.display(),
            log_real.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let same_fs = std::fs::metadata(&witness_real)
            .and_then(|w| std::fs::metadata(&log_real).map(|l| w.dev() == l.dev()))
            .unwrap_or(false);
        if same_fs {
            tracing::warn!(
                witness = %file.display(),
                "audit.witness_file is on the same file system as the audit log; put it on \
                 another volume so it survives the loss of the log's"
            );
        }
    }
    Ok(())
}

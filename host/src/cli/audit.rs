//! `vigil audit verify`, `vigil audit reseal` and `vigil audit keygen`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::setup;
use crate::audit::{self, AuditOptions, PublicKey, VerifyOptions};

/// Verifies the chain, the head, and with `--pubkey` / `--witness` the
/// signatures and the witness. Exit 1 on the first problem.
pub fn verify(path: &Path, pubkeys: &[PathBuf], witness: Option<&Path>) -> Result<ExitCode> {
    let public_keys = pubkeys
        .iter()
        .map(|p| PublicKey::load(p).context("--pubkey"))
        .collect::<Result<Vec<_>>>()?;
    let options = VerifyOptions {
        public_keys,
        witness: witness.map(Path::to_owned),
        published: Vec::new(),
    };
    match audit::verify_with(path, &options) {
        Ok(report) => {
            println!("ok: {report}");
            println!("head: {}", report.head_hash);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAILED: {}: {e}", path.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Accepts a log whose head is missing or no longer fits, on the record.
pub fn reseal(path: &Path, by: &str, reason: &str, config: Option<&Path>) -> Result<ExitCode> {
    let options = match config {
        Some(c) => {
            let config = setup::load_config(Some(c))?;
            setup::audit_options(&config, path)
                .with_context(|| format!("invalid [audit] in {}", c.display()))?
        }
        None => AuditOptions::default(),
    };
    let report = audit::reseal(path, options, by, reason)?;
    println!(
        "resealed {}: record seq {} says who, why and what the old head said",
        path.display(),
        report.seq
    );
    println!("cause: {}", report.cause);
    if report.checkpointed {
        println!("a signed checkpoint follows it; the new head is signed");
    } else {
        println!(
            "not signed: no signing key (pass --config with an [audit] signing_key_file to sign)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a new ed25519 key pair for `[audit] signing_key_file`.
pub fn keygen(out: &Path) -> Result<ExitCode> {
    let made = audit::keygen(out)?;
    println!("private key: {} (mode 0600)", made.private_key.display());
    println!("public key:  {}", made.public_key.display());
    println!("key id:      {}", made.key_id);
    println!(
        "Set [audit] signing_key_file to the private key (outside the log's directory); give the \
         public key to whoever runs `vigil audit verify --pubkey`."
    );
    Ok(ExitCode::SUCCESS)
}

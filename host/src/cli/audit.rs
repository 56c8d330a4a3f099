//! `vigil audit verify`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::audit;

pub fn verify(path: &Path) -> Result<ExitCode> {
    match audit::verify(path) {
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

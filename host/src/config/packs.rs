//! `[packs]`: where installed rule packs live and whose signatures are
//! trusted (see `crate::pack`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PacksConfig {
    /// Installed packs (`vigil pack install` writes here; every pack found
    /// is loaded). Relative to the config file.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Publisher public keys (PEM files from `vigil pack keygen`); a pack
    /// must be signed by one of them. Several at once for a rotation.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// Accept unsigned packs. For local development only: loud at every
    /// load. A pack signed by an unknown key or with a bad signature is
    /// refused whatever this says.
    #[serde(default)]
    pub allow_unsigned: bool,
    /// Registries (`host[:port]`) reached over plain HTTP (a loopback test
    /// registry); every other registry is HTTPS.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
}

fn default_dir() -> PathBuf {
    PathBuf::from("packs")
}

impl Default for PacksConfig {
    fn default() -> Self {
        PacksConfig {
            dir: default_dir(),
            trusted_keys: Vec::new(),
            allow_unsigned: false,
            insecure_registries: Vec::new(),
        }
    }
}

impl PacksConfig {
    pub(super) fn validate(&self) -> Result<()> {
        if self.dir.as_os_str().is_empty() {
            bail!("packs.dir is empty");
        }
        for (i, r) in self.insecure_registries.iter().enumerate() {
            if r.is_empty() || r.contains('/') || r.chars().any(char::is_whitespace) {
                bail!("packs.insecure_registries[{i}]: {r:?} is not a host[:port]");
            }
        }
        Ok(())
    }

    pub(super) fn resolve_paths(&mut self, resolve: impl Fn(&mut PathBuf)) {
        resolve(&mut self.dir);
        for key in &mut self.trusted_keys {
            resolve(key);
        }
    }
}

//! Compiled components on disk, keyed by a hash of the component bytes and
//! of the engine's compatibility hash, so a restart skips compilation
//! (seconds for a Python or JavaScript rule) and an upgraded engine never
//! loads stale code.
//!
//! Loading a cached artifact runs native code that wasmtime produced: the
//! cache directory must be writable only by the user running Vigil. Files
//! are written to a temporary name and renamed, so a crash never leaves a
//! half-written artifact under a valid name; an artifact that fails to load
//! is recompiled and replaced.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ComponentCache {
    dir: PathBuf,
    /// Identifies the engine's configuration and version.
    engine_key: String,
}

impl ComponentCache {
    pub fn open(dir: &Path, engine: &Engine) -> Result<ComponentCache> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ComponentCache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn path_for(&self, bytes: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(bytes));
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of `bytes`, if there is a usable one.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> Option<Component> {
        let path = self.path_for(bytes);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store` below from wasmtime's own
        // serialization, under a name that commits to the input bytes and
        // the engine configuration; the directory is the operator's.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable cached component: {e}");
                None
            }
        }
    }

    pub fn store(&self, bytes: &[u8], component: &Component) -> Result<()> {
        let path = self.path_for(bytes);
        let artifact = component.serialize().map_err(anyhow::Error::from)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(&artifact)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        Ok(())
    }
}

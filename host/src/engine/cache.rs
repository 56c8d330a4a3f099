//! Compiled components on disk, keyed by a hash of the component bytes and
//! of the engine's compatibility hash, so a restart skips compilation
//! (seconds for a Python or JavaScript rule) and an upgraded engine never
//! loads stale code.
//!
//! Loading a cached artifact maps native code that wasmtime produced as
//! executable, so whoever can write the cache can run code as Vigil. The
//! cache is therefore only used when the directory is owned by the user
//! running Vigil and not writable by group or others, every ancestor
//! directory is owned by that user or root and not writable by group or
//! others unless sticky (like `/tmp`: others cannot rename our directory
//! away there), and each artifact is a regular file owned by that user and
//! not writable by others. Otherwise [`ComponentCache::open`] fails with a
//! message naming the directory and the fix, and the engine runs **without
//! the cache** (a warning; rules are compiled at every start): the cache is
//! only an optimisation, so a permission mistake costs start-up time, never
//! availability and never code from someone else. A directory Vigil creates
//! itself is created with mode 0700.
//!
//! Files are written to a temporary name and renamed, so a crash never
//! leaves a half-written artifact under a valid name; an artifact that fails
//! to load is recompiled and replaced.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The compiled-component cache in one trusted directory.
pub struct ComponentCache {
    dir: PathBuf,
    /// Identifies the engine's configuration and version.
    engine_key: String,
}

impl ComponentCache {
    /// Opens (creating, mode 0700) the cache in `dir`, after checking that
    /// only the user running Vigil can put files there (see the module
    /// documentation). The error names the directory and what to change.
    pub fn open(dir: &Path, engine: &Engine) -> Result<ComponentCache> {
        create_private_dir(dir)
            .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
        check_trusted_dir(dir)?;
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
        if let Err(e) = check_trusted_file(&path) {
            tracing::warn!("ignoring cached component: {e:#}");
            return None;
        }
        // SAFETY: the file was written by `store` below from wasmtime's own
        // serialization, under a name that commits to the input bytes and
        // the engine configuration, in a directory (and as a file) that only
        // the user running Vigil can write, as checked above and in `open`.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable cached component: {e}");
                None
            }
        }
    }

    /// Writes the compilation of `bytes` to the cache.
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

/// `create_dir_all`, with the directories it creates private (0700).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Refuses a cache directory that anyone but the user running Vigil (and
/// root, for ancestors) could have written to or could swap.
#[cfg(unix)]
fn check_trusted_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = euid();
    let real = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot resolve cache directory {}", dir.display()))?;
    let meta = std::fs::metadata(&real)
        .with_context(|| format!("cannot read cache directory {}", real.display()))?;
    if meta.uid() != me {
        bail!(
            "cache directory {} is owned by uid {}, not by the user running Vigil (uid {me}): it \
             holds native code Vigil would run; use a directory of your own (cache_dir), or \
             `chown` it",
            real.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "cache directory {} is writable by group or others (mode {:04o}): it holds native \
             code Vigil would run; `chmod go-w {}` (or 700)",
            real.display(),
            meta.mode() & 0o7777,
            real.display()
        );
    }
    for ancestor in real.ancestors().skip(1) {
        let meta = std::fs::metadata(ancestor)
            .with_context(|| format!("cannot read {}", ancestor.display()))?;
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.uid() != me && meta.uid() != 0 {
            bail!(
                "cache directory {}: its parent {} is owned by uid {}, who could replace the \
                 cache; use a cache_dir under directories owned by you or root",
                real.display(),
                ancestor.display(),
                meta.uid()
            );
        }
        if meta.mode() & 0o022 != 0 && !sticky {
            bail!(
                "cache directory {}: its parent {} is writable by group or others (mode {:04o}), \
                 so the cache could be swapped for another; use a cache_dir under directories \
                 only you (or root) can write",
                real.display(),
                ancestor.display(),
                meta.mode() & 0o7777
            );
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_trusted_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

/// A cached artifact must be a regular file (not a link) of ours that no one
/// else can write.
#[cfg(unix)]
fn check_trusted_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.file_type().is_file() {
        bail!("{} is not a regular file", path.display());
    }
    if meta.uid() != euid() || meta.mode() & 0o022 != 0 {
        bail!(
            "{} is owned by uid {} with mode {:04o}: only a file of the user running Vigil, \
             writable by no one else, is loaded",
            path.display(),
            meta.uid(),
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_trusted_file(_path: &Path) -> Result<()> {
    Ok(())
}

/// The effective user id.
#[cfg(unix)]
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, chown};

    fn engine() -> Engine {
        Engine::default()
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    // A private directory of ours is used; one Vigil creates is 0700.
    #[test]
    fn private_dir_accepted_and_created_0700() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/cache");
        ComponentCache::open(&dir, &engine()).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    // A directory writable by others (0777) or by the group (0775) is
    // refused, naming the directory, the mode and the fix.
    #[test]
    fn dir_writable_by_others_refused() {
        for mode in [0o777, 0o775] {
            let base = tempfile::tempdir().unwrap();
            let dir = base.path().join("cache");
            std::fs::create_dir(&dir).unwrap();
            chmod(&dir, mode);
            let err = ComponentCache::open(&dir, &engine()).err().unwrap();
            let msg = format!("{err:#}");
            assert!(msg.contains("writable by group or others"), "{msg}");
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(msg.contains("cache"), "{msg}");
        }
    }

    // A parent writable by others (without the sticky bit) is refused too:
    // the cache directory could be renamed away and replaced.
    #[test]
    fn parent_writable_by_others_refused() {
        let base = tempfile::tempdir().unwrap();
        let parent = base.path().join("shared");
        std::fs::create_dir(&parent).unwrap();
        chmod(&parent, 0o777);
        let dir = parent.join("cache");
        let err = ComponentCache::open(&dir, &engine()).err().unwrap();
        assert!(format!("{err:#}").contains("its parent"), "{err:#}");
        // With the sticky bit (like /tmp), others cannot rename it: accepted.
        chmod(&parent, 0o1777);
        ComponentCache::open(&dir, &engine()).unwrap();
    }

    // A directory owned by another user is refused (needs root to chown;
    // skipped with a message otherwise).
    #[test]
    fn dir_owned_by_another_user_refused() {
        if euid() != 0 {
            eprintln!("skipped: chown to another uid needs root");
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o755);
        chown(&dir, Some(54321), None).unwrap();
        let err = ComponentCache::open(&dir, &engine()).err().unwrap();
        assert!(format!("{err:#}").contains("owned by uid 54321"), "{err:#}");
    }

    // An artifact planted by another user (or left writable) is not loaded,
    // even in a trusted directory.
    #[test]
    fn foreign_artifact_not_loaded() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("cache");
        let engine = engine();
        let cache = ComponentCache::open(&dir, &engine).unwrap();
        // The smallest component: magic, component-model version, layer 1.
        let wasm = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
        let component = Component::new(&engine, wasm).unwrap();
        cache.store(&wasm, &component).unwrap();
        assert!(
            cache.load(&engine, &wasm).is_some(),
            "a sound artifact loads"
        );
        let path = cache.path_for(&wasm);
        chmod(&path, 0o666);
        assert!(cache.load(&engine, &wasm).is_none(), "writable by others");
        chmod(&path, 0o644);
        if euid() == 0 {
            chown(&path, Some(54321), None).unwrap();
            assert!(cache.load(&engine, &wasm).is_none(), "owned by another uid");
        }
    }
}

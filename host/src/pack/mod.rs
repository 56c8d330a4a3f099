//! Vendor rule packs: a signed manifest plus the rule components it pins.
//!
//! A pack travels in three forms holding the same files
//! (`manifest.json`, `manifest.sig` when signed, `rules/<id>.wasm`):
//! a directory, a single `.vpack` file (a tar archive, for air-gapped
//! installs) and an OCI artifact ([`oci`]). In memory it is [`PackFiles`].
//!
//! Trust is checked the same way at install and every time the host loads
//! a pack ([`verify`]), failing closed, each refusal naming the check:
//! 1. the manifest parses and validates ([`manifest`]);
//! 2. it is signed (`manifest.sig`), unless `[packs] allow_unsigned`;
//! 3. by a key in `[packs] trusted_keys`;
//! 4. the ed25519 signature over the manifest's sha256 verifies;
//! 5. every component is present, nothing else is, and each one's sha256
//!    is the manifest's.
//!
//! The host then loads exactly the bytes it hashed, and refuses a
//! component whose metadata differs from its manifest entry
//! (`ManifestRule::check_loaded`). Installed packs live under
//! `[packs] dir` ([`installed`]).

pub mod installed;
pub mod manifest;
pub mod oci;

use std::io::Read;
use std::path::{Component, Path};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{AuditSigner, PublicKey};
pub use manifest::{Manifest, ManifestRule};

/// Domain separation for pack signatures (see [`sign`]).
pub const SIGNATURE_CONTEXT: &str = "vigil-pack-manifest-v1";

/// The largest component accepted, in bytes.
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;
/// The largest whole pack accepted, in bytes.
pub const MAX_PACK_BYTES: u64 = 256 * 1024 * 1024;

/// File names inside a pack.
pub const MANIFEST_FILE: &str = "manifest.json";
pub const SIGNATURE_FILE: &str = "manifest.sig";

/// A pack's files in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackFiles {
    /// The pack manifest (JSON), exactly as signed.
    pub manifest: Vec<u8>,
    /// The signature file (JSON), if the pack is signed.
    pub signature: Option<Vec<u8>>,
    /// Each rule component: (relative path as named in the manifest, bytes).
    pub components: Vec<(String, Vec<u8>)>,
}

/// `manifest.sig`: which key signed which manifest digest.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    pub algorithm: String,
    /// The signing key's id (first 8 bytes of its public key's sha256).
    pub key_id: String,
    /// sha256 of `manifest.json`, hex.
    pub manifest_sha256: String,
    /// ed25519 over `vigil-pack-manifest-v1\n<key id>\n<manifest sha256>`.
    pub signature: String,
}

/// What may load packs: the trusted publisher keys and whether unsigned
/// packs are accepted (local development only).
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub keys: Vec<PublicKey>,
    pub allow_unsigned: bool,
}

/// How a verified pack is trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// Signed by this trusted key id.
    Key(String),
    /// Unsigned, accepted because `allow_unsigned = true`.
    Unsigned,
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key(id) => write!(f, "signed by key {id}"),
            Signer::Unsigned => write!(f, "UNSIGNED (allowed by [packs] allow_unsigned)"),
        }
    }
}

/// A pack whose every check passed.
#[derive(Clone, Debug)]
pub struct VerifiedPack {
    pub manifest: Manifest,
    pub signer: Signer,
    /// sha256 of `manifest.json`.
    pub digest: String,
    /// The files that passed (an install writes exactly these).
    pub files: PackFiles,
}

impl VerifiedPack {
    /// The component of `rule` (an id from the manifest).
    pub fn component(&self, rule: &str) -> Option<&[u8]> {
        let file = &self.manifest.rule(rule)?.file;
        self.files
            .components
            .iter()
            .find(|(path, _)| path == file)
            .map(|(_, bytes)| bytes.as_slice())
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Runs every check of the module documentation, in order; the error
/// names the pack and the check that failed.
pub fn verify(files: PackFiles, trust: &Trust) -> Result<VerifiedPack> {
    let manifest = Manifest::parse(&files.manifest)?;
    let label = manifest.label();
    let digest = sha256_hex(&files.manifest);
    let signer = match &files.signature {
        None if trust.allow_unsigned => {
            tracing::warn!(
                pack = %label,
                "pack is NOT SIGNED and is accepted only because [packs] allow_unsigned = true; \
                 never use this outside local development"
            );
            Signer::Unsigned
        }
        None => bail!(
            "pack {label} is not signed (no {SIGNATURE_FILE}): sign it with `vigil pack sign`, \
             or for local development only set [packs] allow_unsigned = true"
        ),
        Some(bytes) => {
            let sig: SignatureFile = serde_json::from_slice(bytes).map_err(|e| {
                anyhow::anyhow!("pack {label}: {SIGNATURE_FILE} is not a pack signature: {e}")
            })?;
            if sig.algorithm != "ed25519" {
                bail!(
                    "pack {label}: {SIGNATURE_FILE} uses algorithm {:?}; only ed25519 is accepted",
                    sig.algorithm
                );
            }
            let Some(key) = trust.keys.iter().find(|k| k.key_id() == sig.key_id) else {
                let trusted: Vec<&str> = trust.keys.iter().map(|k| k.key_id()).collect();
                bail!(
                    "pack {label} is signed by key {}, which is not trusted ([packs] \
                     trusted_keys: {})",
                    sig.key_id,
                    if trusted.is_empty() {
                        "none".to_owned()
                    } else {
                        trusted.join(", ")
                    }
                );
            };
            if sig.manifest_sha256 != digest {
                bail!(
                    "pack {label}: the signature is for manifest sha256 {}, but manifest.json \
                     has sha256 {digest}: the manifest was altered after signing",
                    sig.manifest_sha256
                );
            }
            key.verify_message(SIGNATURE_CONTEXT, &digest, &sig.signature)
                .map_err(|reason| {
                    anyhow::anyhow!("pack {label}: signature by key {}: {reason}", sig.key_id)
                })?;
            Signer::Key(sig.key_id)
        }
    };
    contents(&files, &manifest)?;
    Ok(VerifiedPack {
        manifest,
        signer,
        digest,
        files,
    })
}

/// Checks 1 and 5 only (a well-formed manifest and components that match
/// it), whoever signed: what a publisher checks before pushing.
pub fn check_unsigned(files: &PackFiles) -> Result<Manifest> {
    let manifest = Manifest::parse(&files.manifest)?;
    contents(files, &manifest)?;
    Ok(manifest)
}

/// Every component present with its manifest digest, nothing else.
fn contents(files: &PackFiles, manifest: &Manifest) -> Result<()> {
    let label = manifest.label();
    for rule in &manifest.rules {
        let Some((_, bytes)) = files.components.iter().find(|(p, _)| *p == rule.file) else {
            bail!("pack {label}: component {} is missing", rule.file);
        };
        let actual = sha256_hex(bytes);
        if actual != rule.sha256 {
            bail!(
                "pack {label}: component {} has sha256 {actual}, the manifest says {}: the \
                 component was altered",
                rule.file,
                rule.sha256
            );
        }
    }
    if let Some((extra, _)) = files
        .components
        .iter()
        .find(|(p, _)| !manifest.rules.iter().any(|r| r.file == *p))
    {
        bail!("pack {label}: {extra} is not named by the manifest");
    }
    Ok(())
}

/// Signs the manifest of `files` with `key`, replacing any signature.
pub fn sign(files: &mut PackFiles, key: &AuditSigner) -> Result<String> {
    Manifest::parse(&files.manifest)?;
    let digest = sha256_hex(&files.manifest);
    let sig = SignatureFile {
        algorithm: "ed25519".to_owned(),
        key_id: key.key_id().to_owned(),
        signature: key.sign_message(SIGNATURE_CONTEXT, &digest),
        manifest_sha256: digest,
    };
    let mut bytes = serde_json::to_vec_pretty(&sig).expect("a signature serializes");
    bytes.push(b'\n');
    files.signature = Some(bytes);
    Ok(sig.key_id)
}

/// Whether `path` names a single-file pack.
pub fn is_vpack(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "vpack")
}

impl PackFiles {
    /// Reads a pack directory or `.vpack` file. Sizes are capped before
    /// anything is read whole.
    pub fn read(path: &Path) -> Result<PackFiles> {
        if is_vpack(path) {
            read_vpack(path).with_context(|| format!("cannot read the pack {}", path.display()))
        } else {
            read_dir(path).with_context(|| format!("cannot read the pack {}", path.display()))
        }
    }

    /// Writes a pack directory (created if missing; the pack's files are
    /// replaced) or a `.vpack` file (replaced atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        if is_vpack(path) {
            write_vpack(self, path)
        } else {
            write_dir(self, path)
        }
        .with_context(|| format!("cannot write the pack {}", path.display()))
    }

    fn total_bytes(&self) -> u64 {
        (self.manifest.len()
            + self.signature.as_ref().map_or(0, Vec::len)
            + self.components.iter().map(|(_, b)| b.len()).sum::<usize>()) as u64
    }

    /// Adds one file found in a directory or archive, by its relative path.
    fn add(&mut self, name: &str, bytes: Vec<u8>) -> Result<()> {
        match name {
            MANIFEST_FILE => self.manifest = bytes,
            SIGNATURE_FILE => self.signature = Some(bytes),
            _ => {
                check_component_path(name)?;
                if self.components.iter().any(|(p, _)| p == name) {
                    bail!("{name} appears twice");
                }
                self.components.push((name.to_owned(), bytes));
            }
        }
        if self.total_bytes() > MAX_PACK_BYTES {
            bail!("the pack is larger than {MAX_PACK_BYTES} bytes");
        }
        Ok(())
    }
}

/// A component's place in a pack: `rules/<file>.wasm`, nothing else.
pub fn check_component_path(name: &str) -> Result<()> {
    let ok = name.strip_prefix("rules/").is_some_and(|file| {
        file.ends_with(".wasm")
            && !file.contains('/')
            && !file.contains('\\')
            && !file.starts_with('.')
            && !file.chars().any(char::is_control)
            && Path::new(name)
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
    });
    if !ok {
        bail!("{name:?} is not a pack file (manifest.json, manifest.sig or rules/<id>.wasm)");
    }
    Ok(())
}

fn read_limited(reader: impl Read, name: &str, limit: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        bail!("{name} is larger than {limit} bytes");
    }
    Ok(bytes)
}

fn limit_for(name: &str) -> u64 {
    if name == MANIFEST_FILE || name == SIGNATURE_FILE {
        manifest::MAX_MANIFEST_BYTES as u64
    } else {
        MAX_COMPONENT_BYTES
    }
}

fn read_dir(dir: &Path) -> Result<PackFiles> {
    let mut files = PackFiles::default();
    let manifest = dir.join(MANIFEST_FILE);
    let open = |p: &Path| std::fs::File::open(p).with_context(|| format!("{}", p.display()));
    files.add(
        MANIFEST_FILE,
        read_limited(open(&manifest)?, MANIFEST_FILE, limit_for(MANIFEST_FILE))?,
    )?;
    let sig = dir.join(SIGNATURE_FILE);
    if sig.exists() {
        files.add(
            SIGNATURE_FILE,
            read_limited(open(&sig)?, SIGNATURE_FILE, limit_for(SIGNATURE_FILE))?,
        )?;
    }
    let rules = dir.join("rules");
    if rules.is_dir() {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&rules).with_context(|| rules.display().to_string())? {
            let entry = entry?;
            // Symlinks are not followed: a pack holds its own files.
            if !entry.file_type()?.is_file() {
                bail!(
                    "{} is not a regular file",
                    rules.join(entry.file_name()).display()
                );
            }
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for name in names {
            let rel = format!("rules/{name}");
            check_component_path(&rel)?;
            let bytes = read_limited(open(&rules.join(&name))?, &rel, MAX_COMPONENT_BYTES)?;
            files.add(&rel, bytes)?;
        }
    }
    Ok(files)
}

fn write_dir(files: &PackFiles, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("rules"))?;
    let rules = dir.join("rules");
    // Components of an earlier build that this one no longer has would be
    // refused as "not named by the manifest".
    for entry in std::fs::read_dir(&rules)? {
        let entry = entry?;
        let rel = format!("rules/{}", entry.file_name().to_string_lossy());
        if !files.components.iter().any(|(p, _)| *p == rel) {
            std::fs::remove_file(entry.path())?;
        }
    }
    for (rel, bytes) in &files.components {
        check_component_path(rel)?;
        write_atomic(&dir.join(rel), bytes)?;
    }
    write_atomic(&dir.join(MANIFEST_FILE), &files.manifest)?;
    let sig = dir.join(SIGNATURE_FILE);
    match &files.signature {
        Some(bytes) => write_atomic(&sig, bytes)?,
        None if sig.exists() => std::fs::remove_file(&sig)?,
        None => {}
    }
    Ok(())
}

fn read_vpack(path: &Path) -> Result<PackFiles> {
    let file = std::fs::File::open(path)?;
    let mut archive = tar::Archive::new(file);
    let mut files = PackFiles::default();
    for entry in archive.entries()? {
        let entry = entry?;
        let kind = entry.header().entry_type();
        let name = entry.path()?.to_string_lossy().into_owned();
        if kind.is_dir() && name.trim_end_matches('/') == "rules" {
            continue;
        }
        if !kind.is_file() {
            bail!("{name} is not a regular file (links and devices are refused)");
        }
        let limit = limit_for(&name);
        if entry.header().size()? > limit {
            bail!("{name} is larger than {limit} bytes");
        }
        let bytes = read_limited(entry, &name, limit)?;
        files.add(&name, bytes)?;
    }
    if files.manifest.is_empty() {
        bail!("it holds no {MANIFEST_FILE}");
    }
    Ok(files)
}

fn write_vpack(files: &PackFiles, path: &Path) -> Result<()> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut append = |name: &str, bytes: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // Fixed times: the same pack gives the same bytes.
        header.set_mtime(0);
        builder.append_data(&mut header, name, bytes)?;
        Ok(())
    };
    append(MANIFEST_FILE, &files.manifest)?;
    if let Some(sig) = &files.signature {
        append(SIGNATURE_FILE, sig)?;
    }
    for (rel, bytes) in &files.components {
        check_component_path(rel)?;
        append(rel, bytes)?;
    }
    let bytes = builder.into_inner()?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it and renames
/// it over `path`: a reader sees the old file or the new one, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests;

//! Installed packs: the `[packs] dir` directory.
//!
//! ```text
//! <dir>/<pack name>/state.json          current version, history, acknowledged kinds
//! <dir>/<pack name>/<version>/manifest.json, manifest.sig, rules/<id>.wasm
//! ```
//!
//! A version's directory is written whole under a temporary name and then
//! renamed into place, and `state.json` is replaced atomically, so a host
//! reloading while `vigil pack install` runs sees the old pack or the new
//! one, never half of one. Installed files are checked again at every load
//! ([`super::verify`]): whoever can write this directory still cannot make
//! the host run an unsigned or altered rule.
//!
//! **Acknowledged kinds.** Per rule, the action kinds the operator has
//! seen: every kind a rule declares when its pack is first installed. An
//! upgrade whose rule declares a kind not acknowledged yet *holds* that
//! kind: a grant for it in `[[rules]] allow` does not apply until
//! `vigil pack accept <pack>`, so an upgrade never inherits power the
//! operator did not see disclosed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{Manifest, PackFiles, Trust, VerifiedPack, manifest, write_atomic};
use crate::model::ActionKind;

const STATE_FILE: &str = "state.json";

/// `<dir>/<name>/state.json`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PackState {
    /// The version the host loads.
    pub current: String,
    /// Versions that were current before, oldest first (what `rollback`
    /// goes back to).
    #[serde(default)]
    pub history: Vec<String>,
    /// Rule id → action kinds the operator has acknowledged.
    #[serde(default)]
    pub acknowledged: BTreeMap<String, Vec<String>>,
}

/// An installed pack's current version, verified.
#[derive(Clone, Debug)]
pub struct InstalledPack {
    pub pack: VerifiedPack,
    /// Rule id → declared kinds not acknowledged yet (withheld from grants).
    pub held: BTreeMap<String, Vec<ActionKind>>,
}

/// What an install changed.
#[derive(Debug)]
pub struct Installed {
    /// The manifest that was current before, if any.
    pub previous: Option<Manifest>,
    /// Rule id → kinds held until `vigil pack accept`.
    pub held: BTreeMap<String, Vec<ActionKind>>,
    pub dir: PathBuf,
}

/// The packs directory.
#[derive(Clone, Debug)]
pub struct PacksDir {
    root: PathBuf,
}

impl PacksDir {
    pub fn new(root: impl Into<PathBuf>) -> PacksDir {
        PacksDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Names of the installed packs, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot list {}", self.root.display()));
            }
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if manifest::check_name(&name).is_ok() && entry.path().join(STATE_FILE).is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The state of pack `name`, if installed.
    pub fn state(&self, name: &str) -> Result<Option<PackState>> {
        manifest::check_name(name)?;
        let path = self.root.join(name).join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let state: PackState = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a pack state file: {e}", path.display()))?;
        manifest::parse_version(&state.current)
            .with_context(|| format!("{}: current", path.display()))?;
        Ok(Some(state))
    }

    /// Installed versions of `name`, sorted.
    pub fn versions(&self, name: &str) -> Result<Vec<String>> {
        manifest::check_name(name)?;
        let mut versions = Vec::new();
        let dir = self.root.join(name);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries {
                let v = entry?.file_name().to_string_lossy().into_owned();
                if manifest::parse_version(&v).is_ok() {
                    versions.push(v);
                }
            }
        }
        versions.sort_by_key(|v| manifest::parse_version(v).ok());
        Ok(versions)
    }

    fn version_dir(&self, name: &str, version: &str) -> PathBuf {
        self.root.join(name).join(version)
    }

    /// Reads and verifies the current version of `name`.
    pub fn load(&self, name: &str, trust: &Trust) -> Result<InstalledPack> {
        let state = self
            .state(name)?
            .with_context(|| format!("pack {name} is not installed in {}", self.root.display()))?;
        let dir = self.version_dir(name, &state.current);
        let files = PackFiles::read(&dir)?;
        let pack = super::verify(files, trust)
            .with_context(|| format!("installed pack {}", dir.display()))?;
        if pack.manifest.name != name || pack.manifest.version != state.current {
            bail!(
                "{} holds {}, not {name} {}",
                dir.display(),
                pack.manifest.label(),
                state.current
            );
        }
        let held = held(&pack.manifest, &state);
        Ok(InstalledPack { pack, held })
    }

    /// Every installed pack, verified; the first failure is the error.
    pub fn load_all(&self, trust: &Trust) -> Result<Vec<InstalledPack>> {
        self.names()?
            .iter()
            .map(|name| self.load(name, trust))
            .collect()
    }

    /// Installs a verified pack and makes its version current. The same
    /// version installed again with other content is refused: a version
    /// names one set of bytes.
    pub fn install(&self, pack: &VerifiedPack) -> Result<Installed> {
        let (m, files) = (&pack.manifest, &pack.files);
        let dir = self.version_dir(&m.name, &m.version);
        let pack_root = self.root.join(&m.name);
        std::fs::create_dir_all(&pack_root)
            .with_context(|| format!("cannot create {}", pack_root.display()))?;
        if dir.exists() {
            let existing = PackFiles::read(&dir)?;
            if existing.manifest != files.manifest {
                bail!(
                    "{} is already installed with a different manifest (sha256 {} here, {} \
                     now): a version names one set of bytes; publish a new version, or \
                     `vigil pack remove {} --version {}` first",
                    m.label(),
                    super::sha256_hex(&existing.manifest),
                    pack.digest,
                    m.name,
                    m.version
                );
            }
            // The same manifest: the signature may be new (a rotation);
            // rewrite the files so the directory matches what was checked.
            files.write(&dir)?;
        } else {
            let tmp = tempfile::Builder::new()
                .prefix(".installing-")
                .tempdir_in(&pack_root)
                .with_context(|| format!("cannot create a directory in {}", pack_root.display()))?;
            files.write(tmp.path())?;
            let tmp = tmp.keep();
            std::fs::rename(&tmp, &dir)
                .with_context(|| format!("cannot move the pack into {}", dir.display()))?;
        }
        let old = self.state(&m.name)?;
        let previous = match &old {
            Some(s) if s.current != m.version => {
                PackFiles::read(&self.version_dir(&m.name, &s.current))
                    .ok()
                    .and_then(|f| Manifest::parse(&f.manifest).ok())
            }
            _ => None,
        };
        let mut state = old.clone().unwrap_or_default();
        if old.is_some() && state.current != m.version {
            let prev = std::mem::take(&mut state.current);
            state.history.retain(|v| *v != prev && *v != m.version);
            state.history.push(prev);
        }
        state.current = m.version.clone();
        // A rule seen for the first time: what it declares is disclosed
        // now, with no grant; known rules keep what was acknowledged.
        for rule in &m.rules {
            state
                .acknowledged
                .entry(rule.id.clone())
                .or_insert_with(|| rule.actions.clone());
        }
        self.write_state(&m.name, &state)?;
        Ok(Installed {
            previous,
            held: held(m, &state),
            dir,
        })
    }

    /// Makes the version that was current before the current one current
    /// again; returns (from, to).
    pub fn rollback(&self, name: &str, trust: &Trust) -> Result<(String, String)> {
        let mut state = self
            .state(name)?
            .with_context(|| format!("pack {name} is not installed"))?;
        let Some(to) = state.history.pop() else {
            bail!("pack {name} has no earlier version to roll back to");
        };
        // The version rolled back to must still pass every check.
        let dir = self.version_dir(name, &to);
        super::verify(PackFiles::read(&dir)?, trust)
            .with_context(|| format!("cannot roll back to {}", dir.display()))?;
        let from = std::mem::replace(&mut state.current, to.clone());
        self.write_state(name, &state)?;
        Ok((from, to))
    }

    /// Acknowledges every kind the current version declares; returns what
    /// was held.
    pub fn accept(&self, name: &str, trust: &Trust) -> Result<BTreeMap<String, Vec<ActionKind>>> {
        let installed = self.load(name, trust)?;
        let mut state = self.state(name)?.expect("loaded above");
        for rule in &installed.pack.manifest.rules {
            state
                .acknowledged
                .insert(rule.id.clone(), rule.actions.clone());
        }
        self.write_state(name, &state)?;
        Ok(installed.held)
    }

    /// Removes a whole pack, or one version that is not current.
    pub fn remove(&self, name: &str, version: Option<&str>) -> Result<()> {
        let state = self
            .state(name)?
            .with_context(|| format!("pack {name} is not installed"))?;
        match version {
            Some(v) => {
                manifest::parse_version(v)?;
                if v == state.current {
                    bail!(
                        "{name} {v} is the current version; remove the whole pack, or roll \
                         back first"
                    );
                }
                let dir = self.version_dir(name, v);
                if !dir.is_dir() {
                    bail!("{name} {v} is not installed");
                }
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
                let mut state = state;
                state.history.retain(|h| h != v);
                self.write_state(name, &state)
            }
            None => {
                // Renamed away first: a reload never sees half a pack.
                let dir = self.root.join(name);
                let gone = self
                    .root
                    .join(format!(".removing-{name}-{}", std::process::id()));
                std::fs::rename(&dir, &gone)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
                std::fs::remove_dir_all(&gone)
                    .with_context(|| format!("cannot remove {}", gone.display()))
            }
        }
    }

    fn write_state(&self, name: &str, state: &PackState) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(state).expect("state serializes");
        bytes.push(b'\n');
        write_atomic(&self.root.join(name).join(STATE_FILE), &bytes)
    }
}

/// Declared kinds not acknowledged, per rule (rules with none left out).
fn held(m: &Manifest, state: &PackState) -> BTreeMap<String, Vec<ActionKind>> {
    let mut held = BTreeMap::new();
    for rule in &m.rules {
        let seen = state.acknowledged.get(&rule.id);
        let new: Vec<ActionKind> = rule
            .action_kinds()
            .into_iter()
            .filter(|k| !seen.is_some_and(|s| s.iter().any(|a| a == k.name())))
            .collect();
        if !new.is_empty() {
            held.insert(rule.id.clone(), new);
        }
    }
    held
}

/// What an upgrade changes, one line per difference, for the operator.
pub fn diff(old: &Manifest, new: &Manifest) -> Vec<String> {
    let mut lines = Vec::new();
    for rule in &new.rules {
        let Some(before) = old.rule(&rule.id) else {
            lines.push(format!(
                "+ rule {} {} (new: no grants until you grant it)",
                rule.id, rule.version
            ));
            continue;
        };
        if before.version != rule.version {
            lines.push(format!(
                "~ rule {} {} -> {}",
                rule.id, before.version, rule.version
            ));
        }
        for s in rule
            .subscribes
            .iter()
            .filter(|s| !before.subscribes.contains(s))
        {
            lines.push(format!("  + {} subscribes to {s}", rule.id));
        }
        for s in before
            .subscribes
            .iter()
            .filter(|s| !rule.subscribes.contains(s))
        {
            lines.push(format!("  - {} no longer subscribes to {s}", rule.id));
        }
        for a in rule.actions.iter().filter(|a| !before.actions.contains(a)) {
            lines.push(format!("  + {} may request {a}", rule.id));
        }
        for a in before.actions.iter().filter(|a| !rule.actions.contains(a)) {
            lines.push(format!("  - {} no longer requests {a}", rule.id));
        }
        if before.sha256 != rule.sha256 && before.version == rule.version {
            lines.push(format!(
                "~ rule {} {}: the component changed but its version did not",
                rule.id, rule.version
            ));
        }
    }
    for rule in &old.rules {
        if new.rule(&rule.id).is_none() {
            lines.push(format!("- rule {} (removed)", rule.id));
        }
    }
    lines
}

//! The pack manifest (`manifest.json`): who made the pack, and per rule
//! what it is, what it subscribes to, which actions it may request, and the
//! sha256 of its component.
//!
//! The manifest is what a publisher signs and what an operator reads before
//! granting anything, so it is parsed strictly: unknown fields, unsafe file
//! names, malformed digests, unknown action kinds and duplicate rule ids are
//! refused, each error naming the field. `vigil pack build` writes it from
//! the components' own metadata; the host checks at load that each
//! component still reports what its entry says (`check_loaded`).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::model::{ActionKind, Metadata};

/// The `schema` value of this manifest format.
pub const SCHEMA: &str = "vigil-pack/1";

/// The most rules one pack may hold.
pub const MAX_RULES: usize = 256;

/// The largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// A pack manifest.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// `[a-z0-9-]`, 1 to 64 characters: the directory it is installed in
    /// and the `pack = "<name>/<rule id>"` prefix in `[[rules]]`.
    pub name: String,
    /// `MAJOR.MINOR.PATCH`, optionally `-pre`.
    pub version: String,
    pub publisher: String,
    #[serde(default)]
    pub description: String,
    /// The oldest Vigil that can run the pack.
    pub min_host_version: String,
    pub rules: Vec<ManifestRule>,
}

/// One rule of a pack.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManifestRule {
    /// The id the component's metadata reports.
    pub id: String,
    /// The rule's own version (from its metadata).
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// The `vigil:rule` contract version the component imports.
    pub wit: String,
    /// The component inside the pack: always `rules/<id>.wasm`.
    pub file: String,
    /// Lowercase hex sha256 of the component's bytes.
    pub sha256: String,
    pub size: u64,
    /// Event kinds the rule subscribes to.
    pub subscribes: Vec<String>,
    /// Every action kind the rule may request.
    pub actions: Vec<String>,
    /// What the rule keys its state by (`actor`, `ip`, `global`, …).
    pub partition: String,
    /// Default settings (the operator's `[rules.config]` overrides them).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Documentation for operators (Markdown).
    #[serde(default)]
    pub docs: String,
}

impl Manifest {
    /// Parses and validates manifest bytes.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            bail!(
                "manifest.json is {} bytes; at most {MAX_MANIFEST_BYTES} are accepted",
                bytes.len()
            );
        }
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| anyhow::anyhow!("manifest.json is not a valid pack manifest: {e}"))?;
        manifest.validate().context("manifest.json")?;
        Ok(manifest)
    }

    /// The canonical bytes written for this manifest (pretty JSON, a final
    /// newline): what is hashed and signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        bytes.push(b'\n');
        bytes
    }

    /// `name version` for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    pub fn rule(&self, id: &str) -> Option<&ManifestRule> {
        self.rules.iter().find(|r| r.id == id)
    }

    fn validate(&self) -> Result<()> {
        if self.schema != SCHEMA {
            bail!(
                "schema is {:?}; this Vigil reads {SCHEMA:?} manifests",
                self.schema
            );
        }
        check_name(&self.name).context("name")?;
        parse_version(&self.version).context("version")?;
        if self.publisher.trim().is_empty() {
            bail!("publisher is empty");
        }
        let min = parse_version(&self.min_host_version).context("min_host_version")?;
        let host = parse_version(env!("CARGO_PKG_VERSION")).expect("the crate version parses");
        if min > host {
            bail!(
                "the pack needs Vigil {} or later (min_host_version); this is {}",
                self.min_host_version,
                env!("CARGO_PKG_VERSION")
            );
        }
        if self.rules.is_empty() {
            bail!("rules is empty: a pack holds at least one rule");
        }
        if self.rules.len() > MAX_RULES {
            bail!(
                "rules has {} entries; at most {MAX_RULES} are accepted",
                self.rules.len()
            );
        }
        for (i, rule) in self.rules.iter().enumerate() {
            rule.validate()
                .with_context(|| format!("rules[{i}] ({:?})", rule.id))?;
            if self.rules[..i].iter().any(|r| r.id == rule.id) {
                bail!("rules[{i}]: rule id {:?} appears twice", rule.id);
            }
        }
        Ok(())
    }
}

impl ManifestRule {
    /// The entry for a component whose metadata and contract were read by
    /// loading it.
    pub fn describe(meta: &Metadata, wit: &str, bytes: &[u8]) -> ManifestRule {
        ManifestRule {
            id: meta.id.clone(),
            version: meta.version.clone(),
            description: meta.description.clone(),
            wit: wit.to_owned(),
            file: format!("rules/{}.wasm", meta.id),
            sha256: super::sha256_hex(bytes),
            size: bytes.len() as u64,
            subscribes: meta.subscribes.clone(),
            actions: meta.actions.iter().map(|k| k.name().to_owned()).collect(),
            partition: meta.partition.name().to_owned(),
            config: BTreeMap::new(),
            docs: String::new(),
        }
    }

    /// The declared action kinds.
    pub fn action_kinds(&self) -> Vec<ActionKind> {
        // Validated: every name is known.
        self.actions
            .iter()
            .filter_map(|a| ActionKind::from_name(a))
            .collect()
    }

    /// Refuses a component whose metadata or contract (`wit`, the version
    /// it imports) does not match its entry: the disclosure an operator
    /// read must be what runs.
    pub fn check_loaded(&self, meta: &Metadata, wit: &str) -> Result<()> {
        if wit != self.wit {
            bail!(
                "the component imports contract {wit}; the manifest says {}",
                self.wit
            );
        }
        if meta.id != self.id {
            bail!(
                "the component reports id {:?}; the manifest says {:?}",
                meta.id,
                self.id
            );
        }
        if meta.version != self.version {
            bail!(
                "the component reports version {:?}; the manifest says {:?}",
                meta.version,
                self.version
            );
        }
        if meta.subscribes != self.subscribes {
            bail!(
                "the component subscribes to {:?}; the manifest discloses {:?}",
                meta.subscribes,
                self.subscribes
            );
        }
        let declared = self.action_kinds();
        let undisclosed: Vec<&str> = meta
            .actions
            .iter()
            .filter(|k| !declared.contains(k))
            .map(|k| k.name())
            .collect();
        if !undisclosed.is_empty() {
            bail!(
                "the component may request {} which the manifest does not disclose",
                undisclosed.join(", ")
            );
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        check_rule_id(&self.id)?;
        if self.file != format!("rules/{}.wasm", self.id) {
            bail!(
                "file is {:?}; a rule's component is always \"rules/{}.wasm\"",
                self.file,
                self.id
            );
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            bail!("sha256 {:?} is not 64 lowercase hex digits", self.sha256);
        }
        if self.subscribes.is_empty() {
            bail!("subscribes is empty");
        }
        for (j, name) in self.actions.iter().enumerate() {
            if ActionKind::from_name(name).is_none() {
                bail!("actions[{j}]: unknown action kind {name:?}");
            }
        }
        if self.version.trim().is_empty() {
            bail!("version is empty");
        }
        Ok(())
    }
}

/// A pack name: `[a-z0-9-]`, 1 to 64 characters, not starting with `-`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!("{name:?} is not a pack name (1 to 64 of a-z, 0-9 and -, not starting with -)");
    }
    Ok(())
}

/// A rule id as the host accepts it (letters, digits, `-`, `_`, `.`), and
/// safe as a file name.
pub fn check_rule_id(id: &str) -> Result<()> {
    let ok = (1..=128).contains(&id.len())
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        bail!("{id:?} is not a rule id (letters, digits, - _ ., not starting with .)");
    }
    Ok(())
}

/// `MAJOR.MINOR.PATCH[-pre]` → the three numbers (a pre-release sorts as
/// its release: packs compare versions only for `min_host_version`).
pub fn parse_version(v: &str) -> Result<(u64, u64, u64)> {
    let core = v.split_once('-').map_or(v, |(core, _)| core);
    let parts: Vec<&str> = core.split('.').collect();
    let parsed: Option<Vec<u64>> = parts.iter().map(|p| p.parse().ok()).collect();
    match parsed.as_deref() {
        Some([a, b, c]) if !v.contains('+') => Ok((*a, *b, *c)),
        _ => bail!("{v:?} is not a version (MAJOR.MINOR.PATCH, optionally -pre)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            schema: SCHEMA.into(),
            name: "acme-mfa".into(),
            version: "1.2.0".into(),
            publisher: "Acme".into(),
            description: String::new(),
            min_host_version: "0.1.0".into(),
            rules: vec![ManifestRule {
                id: "acme-flood".into(),
                version: "1.0.0".into(),
                description: String::new(),
                wit: "0.3.0".into(),
                file: "rules/acme-flood.wasm".into(),
                sha256: "a".repeat(64),
                size: 1,
                subscribes: vec!["user.mfa.*".into()],
                actions: vec!["suspend-user".into()],
                partition: "actor".into(),
                config: BTreeMap::new(),
                docs: String::new(),
            }],
        }
    }

    #[test]
    fn round_trips_and_refuses_what_is_unsafe() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);

        let refused = |f: &dyn Fn(&mut Manifest), want: &str| {
            let mut m = sample();
            f(&mut m);
            let err = format!("{:#}", Manifest::parse(&m.to_bytes()).unwrap_err());
            assert!(err.contains(want), "{err}");
        };
        refused(&|m| m.schema = "x".into(), "schema");
        refused(&|m| m.name = "../etc".into(), "not a pack name");
        refused(&|m| m.version = "1.2".into(), "not a version");
        refused(
            &|m| m.min_host_version = "99.0.0".into(),
            "needs Vigil 99.0.0",
        );
        refused(&|m| m.rules[0].file = "../x.wasm".into(), "rules[0]");
        refused(&|m| m.rules[0].sha256 = "AB".into(), "64 lowercase hex");
        refused(
            &|m| m.rules[0].actions = vec!["format-disk".into()],
            "unknown action kind",
        );
        refused(
            &|m| {
                let r = m.rules[0].clone();
                m.rules.push(r)
            },
            "appears twice",
        );
        let text = String::from_utf8(sample().to_bytes())
            .unwrap()
            .replace("\"schema\"", "\"extra\": 1, \"schema\"");
        let err = format!("{:#}", Manifest::parse(text.as_bytes()).unwrap_err());
        assert!(err.contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.2.3").unwrap(), (1, 2, 3));
        assert_eq!(parse_version("1.2.3-rc.1").unwrap(), (1, 2, 3));
        assert!(parse_version("1.2").is_err());
        assert!(parse_version("1.x.3").is_err());
    }
}

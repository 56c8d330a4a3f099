//! `vigil pack …`: build, sign, verify, publish and install vendor rule
//! packs (see `crate::pack`).
//!
//! The publisher's side: `keygen`, `init`, `build` (reads each rule's
//! metadata from its component: nothing is kept by hand twice), `sign`,
//! `verify`, `push`. The operator's: `pull`, `verify`, `install` (prints
//! what every rule subscribes to and may request; grants nothing), `list`,
//! `accept`, `rollback`, `remove`. A running service picks up a change of
//! the packs directory by itself (`service::reload`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::setup;
use crate::audit::{AuditSigner, PublicKey};
use crate::config::Config;
use crate::engine::VigilEngine;
use crate::pack::installed::{self, PacksDir};
use crate::pack::oci::{self, RegistryOptions};
use crate::pack::{self, Manifest, ManifestRule, PackFiles, Trust, VerifiedPack};
use crate::rules::assemble;

/// `pack.toml`: what a publisher writes by hand. Everything a rule says
/// about itself (id, version, subscriptions, actions) is read from its
/// component by `build`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackSource {
    name: String,
    version: String,
    publisher: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_min_host")]
    min_host_version: String,
    #[serde(default)]
    rules: Vec<RuleSourceEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSourceEntry {
    /// The component, relative to `pack.toml`.
    component: PathBuf,
    /// Operator documentation (Markdown), relative to `pack.toml`.
    #[serde(default)]
    docs: Option<PathBuf>,
    /// Default settings.
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
}

fn default_min_host() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

pub fn keygen(out: &Path) -> Result<ExitCode> {
    let made = crate::audit::keygen(out)?;
    println!(
        "wrote {} (private, mode 0600: keep it offline) and {} (public: give it to operators \
         for [packs] trusted_keys); key id {}",
        made.private_key.display(),
        made.public_key.display(),
        made.key_id
    );
    Ok(ExitCode::SUCCESS)
}

pub fn init(dir: &Path, name: &str, publisher: &str) -> Result<ExitCode> {
    pack::manifest::check_name(name)?;
    let file = dir.join("pack.toml");
    if file.exists() {
        bail!("{} already exists", file.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = format!(
        "# A Vigil rule pack: `vigil pack build {dir}` reads this file and the\n\
         # components it names, and writes the signed-to-be pack.\n\
         name = {name:?}\n\
         version = \"0.1.0\"\n\
         publisher = {publisher:?}\n\
         description = \"\"\n\
         min_host_version = {min:?}\n\
         \n\
         # One entry per rule: its component (from `vigil build`), optional\n\
         # operator docs and default settings.\n\
         # [[rules]]\n\
         # component = \"rules/my-rule.wasm\"\n\
         # docs = \"docs/my-rule.md\"\n\
         # [rules.config]\n\
         # threshold = 5\n",
        dir = dir.display(),
        min = default_min_host(),
    );
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    println!("wrote {}", file.display());
    Ok(ExitCode::SUCCESS)
}

/// Builds `dir/pack.toml` (or the built-in pack) into `out`.
pub fn build(dir: Option<&Path>, out: Option<&Path>, builtin: bool) -> Result<ExitCode> {
    let engine = setup::engine(&Config::builtin_default())?;
    let (mut manifest, components) = if builtin {
        let mut rules = Vec::new();
        let mut components = Vec::new();
        for b in crate::builtin::PACK {
            let entry = describe(&engine, &format!("builtin:{}", b.id), b.wasm)?;
            components.push((entry.file.clone(), b.wasm.to_vec()));
            rules.push(entry);
        }
        let manifest = Manifest {
            schema: pack::manifest::SCHEMA.to_owned(),
            name: "vigil-builtin".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            publisher: "Vigil".to_owned(),
            description: "The rules compiled into the vigil binary.".to_owned(),
            min_host_version: env!("CARGO_PKG_VERSION").to_owned(),
            rules,
        };
        (manifest, components)
    } else {
        let dir = dir.unwrap_or(Path::new("."));
        let file = dir.join("pack.toml");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let source: PackSource = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid {}: {e}", file.display()))?;
        if source.rules.is_empty() {
            bail!(
                "{}: no [[rules]]: a pack holds at least one rule",
                file.display()
            );
        }
        let mut rules = Vec::new();
        let mut components = Vec::new();
        for (i, r) in source.rules.iter().enumerate() {
            let at = format!("{} rules[{i}]", file.display());
            let path = dir.join(&r.component);
            let bytes = std::fs::read(&path)
                .with_context(|| format!("{at}: cannot read {}", path.display()))?;
            let mut entry = describe(&engine, &path.display().to_string(), &bytes)
                .with_context(|| at.clone())?;
            if let Some(docs) = &r.docs {
                let p = dir.join(docs);
                entry.docs = std::fs::read_to_string(&p)
                    .with_context(|| format!("{at}.docs: cannot read {}", p.display()))?;
            }
            entry.config = crate::config::config_strings(&r.config);
            components.push((entry.file.clone(), bytes));
            rules.push(entry);
        }
        let manifest = Manifest {
            schema: pack::manifest::SCHEMA.to_owned(),
            name: source.name,
            version: source.version,
            publisher: source.publisher,
            description: source.description,
            min_host_version: source.min_host_version,
            rules,
        };
        (manifest, components)
    };
    manifest.rules.sort_by(|a, b| a.id.cmp(&b.id));
    let files = PackFiles {
        manifest: manifest.to_bytes(),
        signature: None,
        components,
    };
    // The result must pass the checks every reader makes.
    let manifest = pack::check_unsigned(&files).context("the built pack")?;
    let out = match out {
        Some(o) => o.to_owned(),
        None => dir.unwrap_or(Path::new(".")).join("dist"),
    };
    files.write(&out)?;
    println!(
        "built {} ({} rules, manifest sha256 {}) into {}; next: `vigil pack sign {} --key <key>`",
        manifest.label(),
        manifest.rules.len(),
        pack::sha256_hex(&files.manifest),
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn sign(path: &Path, key: &Path) -> Result<ExitCode> {
    let mut files = PackFiles::read(path)?;
    pack::check_unsigned(&files)?;
    let signer = AuditSigner::load_private(key)?;
    let key_id = pack::sign(&mut files, &signer)?;
    files.write(path)?;
    println!("signed {} with key {key_id}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// The trust to verify with: `--key` files if given, else the config's.
fn trust_for(keys: &[PathBuf], config: Option<&Path>) -> Result<Trust> {
    if !keys.is_empty() {
        let keys = keys
            .iter()
            .map(|k| PublicKey::load(k).map_err(anyhow::Error::from))
            .collect::<Result<Vec<_>>>()?;
        return Ok(Trust {
            keys,
            allow_unsigned: false,
        });
    }
    let config = setup::load_config(config)?;
    assemble::trust(&config)
}

pub fn verify(source: &str, keys: &[PathBuf], config: Option<&Path>) -> Result<ExitCode> {
    let cfg = setup::load_config(config)?;
    let files = fetch(source, &cfg)?;
    let trust = trust_for(keys, config)?;
    let pack = pack::verify(files, &trust)?;
    check_components(&pack, &cfg)?;
    println!("{source}: verified");
    disclose(&pack);
    Ok(ExitCode::SUCCESS)
}

pub fn push(path: &Path, reference: &str, config: Option<&Path>) -> Result<ExitCode> {
    let cfg = setup::load_config(config)?;
    let files = PackFiles::read(path)?;
    let manifest = pack::check_unsigned(&files)?;
    if files.signature.is_none() {
        eprintln!(
            "vigil: warning: {} is not signed; operators will refuse it unless they allow \
             unsigned packs",
            manifest.label()
        );
    }
    let digest = oci::push(reference, &files, &registry_options(&cfg))?;
    println!(
        "pushed {} to {reference}: digest {digest} (pull by it to pin exactly these bytes)",
        manifest.label()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn pull(reference: &str, out: &Path, config: Option<&Path>) -> Result<ExitCode> {
    let cfg = setup::load_config(config)?;
    let files = oci::pull(reference, &registry_options(&cfg))?;
    let manifest = pack::check_unsigned(&files)?;
    files.write(out)?;
    println!(
        "pulled {} into {} ({}); check it with `vigil pack verify {}`",
        manifest.label(),
        out.display(),
        if files.signature.is_some() {
            "signed"
        } else {
            "UNSIGNED"
        },
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn install(source: &str, config: Option<&Path>) -> Result<ExitCode> {
    let cfg = setup::load_config(config)?;
    let files = fetch(source, &cfg)?;
    let trust = assemble::trust(&cfg)?;
    let pack = pack::verify(files, &trust).context("refused")?;
    check_components(&pack, &cfg)?;
    let dir = PacksDir::new(&cfg.packs.dir);
    let done = dir.install(&pack)?;
    let m = &pack.manifest;
    match &done.previous {
        Some(old) => {
            println!("upgraded {} {} -> {}", m.name, old.version, m.version);
            for line in installed::diff(old, m) {
                println!("  {line}");
            }
        }
        None => println!("installed {}", m.label()),
    }
    disclose(&pack);
    if !done.held.is_empty() {
        println!(
            "\nHeld (granted nowhere until `vigil pack accept {}`):",
            m.name
        );
        for (rule, kinds) in &done.held {
            let kinds: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            println!("  {rule}: {}", kinds.join(", "));
        }
    }
    println!(
        "\nInto {}. Nothing is granted: rules not listed in [[rules]] run audit-only with no \
         grants. To grant one:\n  [[rules]]\n  pack = \"{}/{}\"\n  allow = []\nA running \
         service reloads by itself.",
        done.dir.display(),
        m.name,
        m.rules[0].id
    );
    Ok(ExitCode::SUCCESS)
}

pub fn list(config: Option<&Path>) -> Result<ExitCode> {
    let cfg = setup::load_config(config)?;
    let ids = crate::builtin::ids();
    println!(
        "vigil-builtin {} (compiled in): {}",
        env!("CARGO_PKG_VERSION"),
        ids.join(", ")
    );
    let dir = PacksDir::new(&cfg.packs.dir);
    let trust = assemble::trust(&cfg)?;
    for name in dir.names()? {
        let versions = dir.versions(&name)?;
        match dir.load(&name, &trust) {
            Ok(p) => {
                let m = &p.pack.manifest;
                println!(
                    "{} (installed: {}) by {}, {}",
                    m.label(),
                    versions.join(", "),
                    m.publisher,
                    p.pack.signer
                );
                for r in &m.rules {
                    let held = p
                        .held
                        .get(&r.id)
                        .map(|k| {
                            let k: Vec<&str> = k.iter().map(|k| k.name()).collect();
                            format!(" [held: {}]", k.join(", "))
                        })
                        .unwrap_or_default();
                    println!(
                        "  {} {}: may request {}{held}",
                        r.id,
                        r.version,
                        list_or_none(&r.actions)
                    );
                }
            }
            // A pack that fails its checks is listed with why: the host
            // would refuse to start with it.
            Err(e) => println!(
                "{name} (installed: {}): REFUSED: {e:#}",
                versions.join(", ")
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn accept(name: &str, config: Option<&Path>) -> Result<ExitCode> {
    let cfg = setup::load_config(config)?;
    let held = PacksDir::new(&cfg.packs.dir).accept(name, &assemble::trust(&cfg)?)?;
    if held.is_empty() {
        println!("{name}: nothing was held");
    }
    for (rule, kinds) in held {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        println!("{name}/{rule}: {} may now be granted", kinds.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn rollback(name: &str, config: Option<&Path>) -> Result<ExitCode> {
    let cfg = setup::load_config(config)?;
    let (from, to) = PacksDir::new(&cfg.packs.dir).rollback(name, &assemble::trust(&cfg)?)?;
    println!("{name}: rolled back from {from} to {to}");
    Ok(ExitCode::SUCCESS)
}

pub fn remove(name: &str, version: Option<&str>, config: Option<&Path>) -> Result<ExitCode> {
    let cfg = setup::load_config(config)?;
    PacksDir::new(&cfg.packs.dir).remove(name, version)?;
    match version {
        Some(v) => println!("removed {name} {v}"),
        None => println!("removed {name}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A pack directory, a `.vpack` file, or an OCI reference.
fn fetch(source: &str, cfg: &Config) -> Result<PackFiles> {
    let path = Path::new(source);
    if path.exists() {
        return PackFiles::read(path);
    }
    if pack::is_vpack(path) || !source.contains('/') {
        bail!("{source}: no such pack directory or .vpack file");
    }
    oci::pull(source, &registry_options(cfg))
}

fn registry_options(cfg: &Config) -> RegistryOptions {
    let basic_auth = match (
        std::env::var("VIGIL_REGISTRY_USER"),
        std::env::var("VIGIL_REGISTRY_PASSWORD"),
    ) {
        (Ok(u), Ok(p)) if !u.is_empty() => Some((u, p)),
        _ => None,
    };
    RegistryOptions {
        insecure: cfg.packs.insecure_registries.clone(),
        basic_auth,
        ..RegistryOptions::default()
    }
}

/// Loads each component to check it reports what its manifest entry says
/// (the disclosure must be what runs).
fn check_components(pack: &VerifiedPack, cfg: &Config) -> Result<()> {
    let engine = setup::engine(cfg)?;
    for entry in &pack.manifest.rules {
        let origin = format!("{}/{}", pack.manifest.name, entry.id);
        let bytes = pack
            .component(&entry.id)
            .expect("verified: every rule has its component");
        let (meta, contract) =
            crate::rules::read_metadata(engine.clone(), &origin, bytes.to_vec())?;
        entry
            .check_loaded(&meta, contract.version())
            .with_context(|| format!("rule {origin} does not match the manifest"))?;
    }
    Ok(())
}

/// The manifest entry of a component, from what loading it reports.
fn describe(engine: &Arc<VigilEngine>, origin: &str, bytes: &[u8]) -> Result<ManifestRule> {
    let (meta, contract) = crate::rules::read_metadata(engine.clone(), origin, bytes.to_vec())?;
    Ok(ManifestRule::describe(&meta, contract.version(), bytes))
}

/// What each rule subscribes to and may request.
fn disclose(pack: &VerifiedPack) {
    let m = &pack.manifest;
    println!("{} by {} ({})", m.label(), m.publisher, pack.signer);
    for r in &m.rules {
        println!(
            "  rule {} {} (contract {}, partition {})",
            r.id, r.version, r.wit, r.partition
        );
        println!("    subscribes to: {}", r.subscribes.join(", "));
        println!("    may request:   {}", list_or_none(&r.actions));
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "nothing".to_owned()
    } else {
        v.join(", ")
    }
}

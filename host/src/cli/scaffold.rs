//! `vigil new NAME --lang rust|python|js`: a rule project that builds with
//! `vigil build` and passes its own fixture out of the box.
//!
//! Every language gets the same small rule (denied pushes in a burst →
//! escalate), a fixture, a `vigil.toml` that runs it, and a README saying
//! how. The templates live in `host/templates/` and are compiled into the
//! binary, as are the WIT and the Python and JavaScript helpers, so a
//! project needs no Vigil checkout (except, until `vigil-sdk` is published,
//! for Rust: its `Cargo.toml` points at the SDK of the checkout `vigil` was
//! built from).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::Lang;

/// The contract the Python and JavaScript helpers build against: still
/// 0.2.0 (they cannot yet ask for `restore-policy` or `assign-app-policy`,
/// which came with 0.3.0; Rust rules build against 0.3.0 through
/// `vigil-sdk`).
pub const WIT: &str = include_str!("../../../wit/since_v0.2.0/rule.wit");
pub const PYTHON_SDK: &str = include_str!("../../../plugin-sdk/python/vigil.py");
pub const JS_SDK: &str = include_str!("../../../plugin-sdk/js/vigil.js");
pub const JS_SDK_TYPES: &str = include_str!("../../../plugin-sdk/js/vigil.d.ts");

const RUST_CARGO: &str = include_str!("../../templates/rust/Cargo.toml");
const RUST_LIB: &str = include_str!("../../templates/rust/src/lib.rs");
const PYTHON_APP: &str = include_str!("../../templates/python/app.py");
const JS_RULE: &str = include_str!("../../templates/js/rule.js");
const CONFIG: &str = include_str!("../../templates/common/vigil.toml");
const README: &str = include_str!("../../templates/common/README.md");
const FIXTURE: &str = include_str!("../../templates/common/fixtures/events.jsonl");

/// The Rust SDK of the checkout this binary was built from.
fn rust_sdk_path() -> PathBuf {
    let baked = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
    std::fs::canonicalize(&baked).unwrap_or(baked)
}

pub fn new(name: &str, lang: Lang, parent: &Path) -> Result<ExitCode> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || name.starts_with('-')
    {
        bail!("rule name {name:?}: use lower-case letters, digits and dashes (e.g. my-rule)");
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} already exists; choose another name or remove it",
            dir.display()
        );
    }
    let sdk = rust_sdk_path();
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{sdk_path}}", &sdk.display().to_string())
            .replace("{{lang_name}}", lang.display())
            .replace("{{build_tool}}", lang.build_tool())
            .replace("{{test_line}}", lang.test_line())
    };
    let mut files: Vec<(&str, String)> = vec![
        ("vigil.toml", fill(CONFIG)),
        ("README.md", fill(README)),
        ("fixtures/events.jsonl", FIXTURE.to_owned()),
    ];
    match lang {
        Lang::Rust => {
            files.push(("Cargo.toml", fill(RUST_CARGO)));
            files.push(("src/lib.rs", fill(RUST_LIB)));
            files.push((".gitignore", "/target\n/build\n".into()));
            if !sdk.join("Cargo.toml").exists() {
                eprintln!(
                    "vigil: warning: the Rust SDK was not found at {}; edit the vigil-sdk path in Cargo.toml",
                    sdk.display()
                );
            }
        }
        Lang::Python => {
            files.push(("app.py", fill(PYTHON_APP)));
            files.push((".gitignore", "/build\n__pycache__/\n".into()));
        }
        Lang::Js => {
            files.push(("rule.js", fill(JS_RULE)));
            // The helper is vendored: componentize-js bundles relative imports.
            files.push(("vigil.js", JS_SDK.to_owned()));
            files.push(("vigil.d.ts", JS_SDK_TYPES.to_owned()));
            files.push((".gitignore", "/build\n/node_modules\n".into()));
        }
    }
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("created {} rule project {}", lang.display(), dir.display());
    println!(
        "next: cd {} && vigil build . && vigil run --config vigil.toml --events fixtures/events.jsonl",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

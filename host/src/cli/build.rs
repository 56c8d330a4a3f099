//! `vigil build PATH`: builds a rule project of any language into a
//! component at `PATH/build/<dir name>.wasm` (or `-o FILE`).
//!
//! The language is detected from the project: `Cargo.toml` → Rust
//! (`cargo build --target wasm32-wasip2 --release`), `app.py` → Python
//! (`componentize-py`), `rule.js` → JavaScript (`componentize-js`). The WIT
//! and the Python helper are written to a temporary directory from copies
//! compiled into `vigil`, so they always match the host. A missing tool is
//! named, with how to install it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use super::Lang;
use super::scaffold::{PYTHON_SDK, WIT};

/// componentize-py and componentize-js versions Vigil is tested with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
pub const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";

pub fn build(project: &Path, out: Option<&Path>) -> Result<ExitCode> {
    let project = std::fs::canonicalize(project)
        .with_context(|| format!("no rule project at {}", project.display()))?;
    let lang = detect(&project)?;
    let name = project
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rule".into());
    let out = match out {
        Some(o) => o.to_path_buf(),
        None => project.join("build").join(format!("{name}.wasm")),
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let support = tempfile::tempdir().context("cannot create a temporary directory")?;
    let wit = support.path().join("wit");
    std::fs::create_dir_all(&wit)?;
    std::fs::write(wit.join("rule.wit"), WIT)?;

    match lang {
        Lang::Rust => build_rust(&project, &out)?,
        Lang::Python => {
            let sdk = support.path().join("python");
            std::fs::create_dir_all(&sdk)?;
            std::fs::write(sdk.join("vigil.py"), PYTHON_SDK)?;
            let tool = find_tool("VIGIL_COMPONENTIZE_PY", "componentize-py", &project).ok_or_else(
                || {
                    anyhow::anyhow!(
                        "componentize-py is not installed (needed to build Python rules): \
                     install it with `pip install {COMPONENTIZE_PY}`, or set VIGIL_COMPONENTIZE_PY"
                    )
                },
            )?;
            let mut cmd = Command::new(tool);
            cmd.arg("-d")
                .arg(&wit)
                .args(["-w", "rule", "componentize", "-p"])
                .arg(&sdk)
                .arg("-p")
                .arg(&project)
                .arg("app")
                .arg("-o")
                .arg(&out);
            run(cmd, "componentize-py")?;
        }
        Lang::Js => {
            let tool = find_tool("VIGIL_COMPONENTIZE_JS", "componentize-js", &project).ok_or_else(
                || {
                    anyhow::anyhow!(
                        "componentize-js is not installed (needed to build JavaScript rules): \
                     install it with `npm install -g {COMPONENTIZE_JS}` (or in the project), \
                     or set VIGIL_COMPONENTIZE_JS"
                    )
                },
            )?;
            let mut cmd = Command::new(tool);
            // componentize-js lets the build read files only inside its
            // working directory: run it from the repository the project is
            // in, so relative imports of shared helpers resolve.
            cmd.current_dir(source_root(&project));
            // Vigil provides no wasi:http: the fetch features must be off.
            cmd.arg(project.join("rule.js"))
                .arg("--wit")
                .arg(&wit)
                .args(["-n", "rule", "-d", "http", "fetch-event", "-o"])
                .arg(&out);
            run(cmd, "componentize-js")?;
        }
    }
    if !out.exists() {
        bail!(
            "the {} build reported success but wrote no {}",
            lang.display(),
            out.display()
        );
    }
    println!(
        "built {} ({} bytes)",
        out.display(),
        std::fs::metadata(&out)?.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn detect(project: &Path) -> Result<Lang> {
    if project.join("Cargo.toml").exists() {
        Ok(Lang::Rust)
    } else if project.join("app.py").exists() {
        Ok(Lang::Python)
    } else if project.join("rule.js").exists() {
        Ok(Lang::Js)
    } else {
        bail!(
            "{} is not a rule project: expected Cargo.toml (Rust), app.py (Python) or rule.js (JavaScript)",
            project.display()
        )
    }
}

/// The nearest ancestor holding `.git`, or the project itself.
fn source_root(project: &Path) -> &Path {
    project
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .unwrap_or(project)
}

/// The tool from `env_var`, the project's `node_modules/.bin`, or `PATH`.
fn find_tool(env_var: &str, name: &str, project: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p));
    }
    let local = project.join("node_modules/.bin").join(name);
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn run(mut cmd: Command, tool: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {tool}"))?;
    if !status.success() {
        bail!("{tool} failed ({status}); its output is above");
    }
    Ok(())
}

fn build_rust(project: &Path, out: &Path) -> Result<()> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(project.join("Cargo.toml"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run cargo (needed to build Rust rules)")?;
    if !output.status.success() {
        bail!(
            "cargo build failed ({}); its output is above. If the wasm32-wasip2 target is missing, \
             run `rustup target add wasm32-wasip2`",
            output.status
        );
    }
    // The cdylib artifact of the project's own package.
    let manifest = project.join("Cargo.toml");
    let wasm = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "cargo built no .wasm for {}: is the crate a cdylib?",
                project.display()
            )
        })?;
    std::fs::copy(&wasm, out)
        .with_context(|| format!("cannot copy {} to {}", wasm.display(), out.display()))?;
    Ok(())
}

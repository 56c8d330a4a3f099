//! Builds Rust Vigil rules into WebAssembly components from a build script.
//!
//! The host embeds the built-in rule pack and the integration tests embed
//! hostile guests; both need `.wasm` components built for `wasm32-wasip2`
//! while the outer `cargo` is running. This runs a nested `cargo build` with
//! its own target directory (sharing the outer one would deadlock on Cargo's
//! build-directory lock) under the outer target directory, so guests are
//! built incrementally and only when their sources change.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Wasm target rules are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// A nested build of one or more rule crates of a Cargo workspace.
pub struct GuestBuild {
    manifest: PathBuf,
    packages: Vec<String>,
    profile: String,
    watch: Vec<PathBuf>,
}

impl GuestBuild {
    /// `manifest` is the `Cargo.toml` of the workspace holding the rule crates.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        GuestBuild {
            manifest: manifest.into(),
            packages: Vec::new(),
            profile: "release".into(),
            watch: Vec::new(),
        }
    }

    /// A rule crate to build (its package name).
    pub fn package(mut self, name: &str) -> Self {
        self.packages.push(name.to_owned());
        self
    }

    /// The Cargo profile to build with (default `release`).
    pub fn profile(mut self, profile: &str) -> Self {
        self.profile = profile.to_owned();
        self
    }

    /// A file or directory whose change must rebuild the guests (sources,
    /// the SDK, the WIT files).
    pub fn watch(mut self, path: impl Into<PathBuf>) -> Self {
        self.watch.push(path.into());
        self
    }

    /// Builds the packages and copies each component to `OUT_DIR`. Returns
    /// `(package, path)` pairs in the order the packages were given.
    ///
    /// Panics with a message saying what failed: this runs in build scripts,
    /// where a panic is how a build step reports failure.
    pub fn build(self) -> Vec<(String, PathBuf)> {
        for path in &self.watch {
            println!("cargo:rerun-if-changed={}", path.display());
        }
        ensure_target_installed();
        let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
        let target_dir = guest_target_dir(&out_dir);
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--manifest-path")
            .arg(&self.manifest)
            .arg("--target")
            .arg(TARGET)
            .arg("--profile")
            .arg(&self.profile)
            .arg("--target-dir")
            .arg(&target_dir);
        for p in &self.packages {
            cmd.arg("-p").arg(p);
        }
        // The outer build's flags and wrappers are for the host target
        // (clippy sets a workspace wrapper; coverage sets RUSTFLAGS): a guest
        // build must not inherit them.
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "CARGO_PRIMARY_PACKAGE",
            "RUSTDOCFLAGS",
        ] {
            cmd.env_remove(var);
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("could not run cargo to build rule components: {e}"));
        if !status.success() {
            panic!(
                "building rule components {:?} for {TARGET} failed (see the cargo output above). \
                 If the target is missing, run `rustup target add {TARGET}` \
                 (rust-toolchain.toml lists it, so rustup normally installs it).",
                self.packages
            );
        }

        let profile_dir = match self.profile.as_str() {
            "dev" | "test" => "debug",
            "release" | "bench" => "release",
            other => other,
        };
        self.packages
            .iter()
            .map(|p| {
                // Libraries are named with underscores, binaries keep dashes.
                let dir = target_dir.join(TARGET).join(profile_dir);
                let file = [p.replace('-', "_"), p.clone()]
                    .into_iter()
                    .map(|stem| format!("{stem}.wasm"))
                    .find(|f| dir.join(f).exists())
                    .unwrap_or_else(|| {
                        panic!(
                            "rule component {p} was not produced in {} (is the crate a `cdylib`?)",
                            dir.display()
                        )
                    });
                let copy = out_dir.join(&file);
                std::fs::copy(dir.join(&file), &copy)
                    .unwrap_or_else(|e| panic!("cannot copy {file} to {}: {e}", out_dir.display()));
                (p.clone(), copy)
            })
            .collect()
    }
}

/// Installs the Wasm target through rustup when the toolchain lacks it.
/// `rust-toolchain.toml` lists the target, but rustup only honours that when
/// it installs the toolchain itself, not for a toolchain already present.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib").join(TARGET).exists()) {
        return;
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &toolchain]);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => println!("cargo:warning=`rustup target add {TARGET}` failed ({s})"),
        Err(e) => println!("cargo:warning=cannot run rustup to add {TARGET}: {e}"),
    }
}

/// `<outer target dir>/wasm-guests`, found from `OUT_DIR`
/// (`<target>/<profile>/build/<pkg>-<hash>/out`), so every build script of
/// the workspace shares one incremental guest build.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("wasm-guests");
    }
    out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent())
        .map(|target| target.join("wasm-guests"))
        .unwrap_or_else(|| out_dir.join("wasm-guests"))
}

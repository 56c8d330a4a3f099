//! Builds the built-in rule pack (`plugins/`) into WebAssembly components
//! and writes `$OUT_DIR/pack.rs`, the table `src/builtin.rs` embeds in the
//! `vigil` binary. This list is the one place that says what the pack is.

use std::fmt::Write;
use std::path::PathBuf;

use vigil_sdk_build::GuestBuild;

/// The built-in rules, by package name (also their rule id).
const PACK: &[&str] = &[
    "mfa-push-fatigue",
    "mfa-policy-guard",
    "mfa-bypass",
    "mfa-factor-reset-takeover",
    "impossible-travel",
    "password-spray",
    "mfa-enrollment-gap",
    "account-brute-force",
    "mfa-factor-tampering",
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    let mut build = GuestBuild::new(root.join("Cargo.toml"))
        .profile("guest")
        .watch(root.join("plugins"))
        .watch(root.join("plugin-sdk/src"))
        .watch(root.join("plugin-sdk/Cargo.toml"))
        .watch(root.join("wit"));
    for package in PACK {
        build = build.package(package);
    }
    let mut table = String::from("pub const PACK: &[BuiltinRule] = &[\n");
    for (package, path) in build.build() {
        writeln!(
            table,
            "    BuiltinRule {{ id: {package:?}, wasm: include_bytes!({:?}) }},",
            path.display().to_string()
        )
        .unwrap();
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("pack.rs");
    std::fs::write(out, table).unwrap();
}

//! Builds the built-in rule pack (`plugins/`) into WebAssembly components
//! that `src/builtin.rs` embeds in the `vigil` binary.

use std::path::PathBuf;

use vigil_sdk_build::GuestBuild;

/// The built-in rules, by package name (also their rule id).
const PACK: &[&str] = &["mfa-push-fatigue"];

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
    build.build();
}

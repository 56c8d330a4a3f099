//! Builds the hostile test guests in `tests/guests/` into components and
//! writes their paths as constants (`GUEST_LOOP`, …) for the tests.

use std::fmt::Write;
use std::path::PathBuf;

use vigil_sdk_build::GuestBuild;

const GUESTS: &[&str] = &[
    "guest-loop",
    "guest-recursion",
    "guest-memory-hog",
    "guest-trap",
    "guest-forbidden",
    "guest-protected",
    "guest-huge-output",
    "guest-state-hog",
    "guest-state-bloat",
    "guest-wrong-world",
    "guest-requester",
    "guest-wait",
    "guest-amplify",
    "guest-event-reader",
    "guest-stale-event",
    "guest-sequencer",
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../..")
        .canonicalize()
        .unwrap();
    let mut build = GuestBuild::new(root.join("Cargo.toml"))
        .profile("guest")
        .watch(root.join("tests/guests"))
        .watch(root.join("plugin-sdk/src"))
        .watch(root.join("wit"));
    for g in GUESTS {
        build = build.package(g);
    }
    let mut consts = String::new();
    for (package, path) in build.build() {
        let name = package.replace('-', "_").to_uppercase();
        writeln!(consts, "/// The `{package}` component.").unwrap();
        writeln!(
            consts,
            "pub const {name}: &str = {:?};",
            path.display().to_string()
        )
        .unwrap();
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guests.rs");
    std::fs::write(out, consts).unwrap();
}

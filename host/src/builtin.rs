//! The built-in rule pack: components built from `plugins/` by `build.rs`
//! and compiled into the binary, so a configuration that names no rule
//! files still runs the whole pack. `build.rs` holds the list.

/// One built-in rule.
pub struct BuiltinRule {
    /// The id the rule's metadata must report.
    pub id: &'static str,
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/pack.rs"));

pub fn find(id: &str) -> Option<&'static BuiltinRule> {
    PACK.iter().find(|r| r.id == id)
}

/// The ids, for messages.
pub fn ids() -> Vec<&'static str> {
    PACK.iter().map(|r| r.id).collect()
}

//! The built-in rule pack: components built from `plugins/` by `build.rs`
//! and compiled into the binary, so a configuration that names no rule
//! files still runs the whole pack.

/// One built-in rule.
pub struct BuiltinRule {
    /// The id the rule's metadata must report.
    pub id: &'static str,
    pub wasm: &'static [u8],
}

pub const PACK: &[BuiltinRule] = &[BuiltinRule {
    id: "mfa-push-fatigue",
    wasm: include_bytes!(concat!(env!("OUT_DIR"), "/mfa_push_fatigue.wasm")),
}];

pub fn find(id: &str) -> Option<&'static BuiltinRule> {
    PACK.iter().find(|r| r.id == id)
}

/// The ids, for messages.
pub fn ids() -> Vec<&'static str> {
    PACK.iter().map(|r| r.id).collect()
}

//! `vigil-sdk`: write Vigil detection and remediation rules in Rust.
//!
//! A rule is a type implementing [`Rule`] plus one [`export_rule!`] line. It
//! talks to the host only through the [`Host`] trait, so the same code runs
//! as a WebAssembly component inside Vigil ([`WasmHost`], calling the WIT
//! imports) and natively in `cargo test` against [`testing::MockHost`].
//!
//! ```ignore
//! use vigil_sdk::*;
//!
//! struct MyRule;
//! impl Rule for MyRule {
//!     fn metadata() -> Metadata { /* id, version, subscriptions, actions */ }
//!     fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
//!         /* use host.counter_add(..), host.request(..) */
//!     }
//! }
//! export_rule!(MyRule);
//! ```
//!
//! The SDK is pinned to one version of the WIT contract, [`WIT_VERSION`]; the
//! host reads the version from the component's import names.

#[cfg(feature = "semantics")]
pub mod state_store;

/// Whether a `subscribes` pattern from a rule's metadata matches an event
/// kind: an exact kind, a prefix ending in `*` (`user.mfa.*`), or `*`.
#[cfg(feature = "semantics")]
pub fn subscribes(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

/// The partition of a partition key's value (an actor id, a user id, a
/// client IP): a stable 64-bit FNV-1a hash, compared without ASCII case.
/// The host picks a rule's shard and tags its state keys with it; the mock
/// host checks a rule's state keys against it. Stable across versions:
/// stored state is handed back to shards by these numbers.
#[cfg(feature = "semantics")]
pub fn partition_of(value: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    value.bytes().fold(OFFSET, |h, b| {
        (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(PRIME)
    })
}

#[cfg(feature = "guest")]
mod guest;
#[cfg(feature = "guest")]
pub use guest::*;

#[cfg(all(test, feature = "semantics"))]
mod tests {
    use super::subscribes;

    #[test]
    fn subscription_patterns() {
        // Exact, prefix and catch-all.
        assert!(subscribes(
            "user.mfa.okta_verify.deny_push",
            "user.mfa.okta_verify.deny_push"
        ));
        assert!(!subscribes("user.mfa", "user.mfa.okta_verify.deny_push"));
        assert!(subscribes("user.mfa.*", "user.mfa.okta_verify.deny_push"));
        assert!(!subscribes("user.mfa.*", "user.session.start"));
        assert!(subscribes("*", "anything"));
    }
}

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

#[cfg(feature = "state")]
pub mod state_store;

#[cfg(feature = "guest")]
mod guest;
#[cfg(feature = "guest")]
pub use guest::*;

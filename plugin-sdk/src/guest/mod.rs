//! The guest side: WIT bindings, the [`Rule`] and [`Host`] traits, the
//! component export macro, the [`Event`] a rule reads and typed helpers
//! over the generated types.

mod event;
pub mod testing;

pub use event::{Event, EventData};

/// Bindings generated from `wit/` by wit-bindgen. Rule authors rarely need
/// this module directly: the types are re-exported at the crate root.
pub mod bindings {
    wit_bindgen::generate!({
        world: "rule",
        path: "../wit/since_v0.3.0",
        pub_export_macro: true,
        export_macro_name: "__export_rule",
        default_bindings_module: "vigil_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

pub use bindings::vigil::rule::log::Level;
pub use bindings::vigil::rule::types::{
    Action, ActionKind, AppPolicy, BlockIp, Decision, Denial, DenialReason, EventClass, Finding,
    Geo, GroupMembership, Message, Metadata, Outcome, PartitionKey, Principal, Receipt, Severity,
    SuspendUser,
};

/// The WIT contract version this SDK was built against.
pub const WIT_VERSION: &str = "0.3.0";

/// A detection and remediation rule.
///
/// Rules keep no memory of their own between events: everything that must
/// outlive one event goes through the host's state (`counter_add`,
/// `distinct_add`, `set`), which is on event time whatever the arrival
/// order (see `vigil_sdk::state_store`).
pub trait Rule {
    /// What the rule is, which events it reads (kinds, and optionally
    /// outcomes and classes), what its state is keyed by and which action
    /// kinds it may ask for. Called once when the host loads the rule.
    fn metadata() -> Metadata;

    /// Called for each event the rule subscribes to. The event's fields
    /// are fetched from the host when first read. Returns the findings to
    /// audit, or an error (audited as a rule fault).
    fn on_event(host: &mut dyn Host, event: &Event<'_>) -> Result<Vec<Finding>, String>;
}

/// Everything a rule can ask of the host. Scoped to the calling rule.
pub trait Host {
    /// Ask for an action. The host's policy gate decides; a denial comes back
    /// as a value the rule can inspect, never as a trap.
    fn request(&mut self, action: &Action) -> Result<Receipt, Denial>;
    /// Add to a counter; returns the largest total of any `window_ms` window
    /// around the current event (in time order: the last `window_ms`),
    /// whatever order events arrive in. Remember that a rule fired in a
    /// counter, not a value, to fire once per burst in any order.
    fn counter_add(&mut self, key: &str, window_ms: u64, delta: u32) -> u64;
    /// A counter's largest total of any `window_ms` window around the
    /// current event.
    fn counter_get(&mut self, key: &str, window_ms: u64) -> u64;
    /// Record a member; returns the most distinct members of any `window_ms`
    /// window around the current event.
    fn distinct_add(&mut self, key: &str, member: &str, window_ms: u64) -> u64;
    /// The most distinct members of any `window_ms` window around the
    /// current event.
    fn distinct_count(&mut self, key: &str, window_ms: u64) -> u64;
    /// The value in effect at the current event's time: set at or before
    /// it, not expired, not deleted. A value set by a later event is
    /// invisible.
    fn get(&mut self, key: &str) -> Option<String>;
    /// Store a value from the current event's time on (until a value set
    /// later in event time), optionally expiring `ttl_ms` after it.
    fn set(&mut self, key: &str, value: &str, ttl_ms: Option<u64>);
    /// Delete the value from the current event's time on; earlier events
    /// still see it.
    fn delete(&mut self, key: &str);
    /// A log line, tagged by the host with the rule id.
    fn log(&mut self, level: Level, message: &str);
    /// A setting from the operator's configuration for this rule.
    fn config(&mut self, key: &str) -> Option<String>;
}

/// Typed access to configuration values with defaults.
pub trait HostConfigExt: Host {
    /// A numeric setting, or `default` when unset. A value that is set but not
    /// a number is an error naming the key, so a typo is not silently ignored.
    fn config_u64(&mut self, key: &str, default: u64) -> Result<u64, String> {
        match self.config(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("config `{key}` must be a whole number, got {v:?}")),
        }
    }
}

impl<H: Host + ?Sized> HostConfigExt for H {}

/// The host as seen from inside a WebAssembly component: calls the WIT imports.
pub struct WasmHost;

impl Host for WasmHost {
    fn request(&mut self, action: &Action) -> Result<Receipt, Denial> {
        bindings::vigil::rule::actions::request(action)
    }
    fn counter_add(&mut self, key: &str, window_ms: u64, delta: u32) -> u64 {
        bindings::vigil::rule::state::counter_add(key, window_ms, delta)
    }
    fn counter_get(&mut self, key: &str, window_ms: u64) -> u64 {
        bindings::vigil::rule::state::counter_get(key, window_ms)
    }
    fn distinct_add(&mut self, key: &str, member: &str, window_ms: u64) -> u64 {
        bindings::vigil::rule::state::distinct_add(key, member, window_ms)
    }
    fn distinct_count(&mut self, key: &str, window_ms: u64) -> u64 {
        bindings::vigil::rule::state::distinct_count(key, window_ms)
    }
    fn get(&mut self, key: &str) -> Option<String> {
        bindings::vigil::rule::state::get(key)
    }
    fn set(&mut self, key: &str, value: &str, ttl_ms: Option<u64>) {
        bindings::vigil::rule::state::set(key, value, ttl_ms)
    }
    fn delete(&mut self, key: &str) {
        bindings::vigil::rule::state::delete(key)
    }
    fn log(&mut self, level: Level, message: &str) {
        bindings::vigil::rule::log::log(level, message)
    }
    fn config(&mut self, key: &str) -> Option<String> {
        // A rule's configuration is fixed for the life of its instance, so
        // each key crosses the component boundary once, not on every event.
        thread_local! {
            static CONFIG: std::cell::RefCell<std::collections::HashMap<String, Option<String>>> =
                Default::default();
        }
        CONFIG.with_borrow_mut(|cache| {
            cache
                .entry(key.to_owned())
                .or_insert_with(|| bindings::vigil::rule::config::get(key))
                .clone()
        })
    }
}

/// Exports a [`Rule`] as the component's `metadata` and `on-event`.
///
/// Expands to nothing on native targets, so the rule crate also builds (and
/// is unit-tested) natively.
#[macro_export]
macro_rules! export_rule {
    ($rule:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct VigilRuleExport;
            impl $crate::bindings::Guest for VigilRuleExport {
                fn metadata() -> $crate::Metadata {
                    <$rule as $crate::Rule>::metadata()
                }
                fn on_event(
                    event: &$crate::bindings::vigil::rule::types::Event,
                ) -> ::core::result::Result<::std::vec::Vec<$crate::Finding>, ::std::string::String>
                {
                    <$rule as $crate::Rule>::on_event(
                        &mut $crate::WasmHost,
                        &$crate::Event::from_host(event),
                    )
                }
            }
    $crate::bindings::__export_rule!(VigilRuleExport with_types_in $crate::bindings);
        };
    };
}

impl Action {
    /// The kind of this action, as granted in configuration.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::SuspendUser(_) => ActionKind::SuspendUser,
            Action::RevokeSessions(_) => ActionKind::RevokeSessions,
            Action::ResetFactors(_) => ActionKind::ResetFactors,
            Action::ActivatePolicy(_) => ActionKind::ActivatePolicy,
            Action::AddToGroup(_) => ActionKind::AddToGroup,
            Action::BlockIp(_) => ActionKind::BlockIp,
            Action::Notify(_) => ActionKind::Notify,
            Action::Escalate(_) => ActionKind::Escalate,
            Action::RestorePolicy(_) => ActionKind::RestorePolicy,
            Action::AssignAppPolicy(_) => ActionKind::AssignAppPolicy,
        }
    }
}

/// What became of an action request, for a finding's details:
/// `dry-run (act-…)`, `accepted (act-…)`, or `denied (not-granted): why`.
/// The same text as `vigil.describe` in the Python and JavaScript helpers.
pub fn describe(answer: &Result<Receipt, Denial>) -> String {
    match answer {
        Ok(r) => format!("{} ({})", r.decision.name(), r.action_id),
        Err(d) => format!("denied ({}): {}", d.reason.name(), d.message),
    }
}

impl Decision {
    /// The name used in the audit log: `accepted`, `dry-run`, …
    pub fn name(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::DryRun => "dry-run",
            Decision::PendingApproval => "pending-approval",
            Decision::Duplicate => "duplicate",
        }
    }
}

impl DenialReason {
    /// The reason used in the audit log: `not-granted`, `protected`, …
    pub fn name(self) -> &'static str {
        match self {
            DenialReason::NotGranted => "not-granted",
            DenialReason::ProtectedTarget => "protected",
            DenialReason::BudgetExceeded => "budget",
            DenialReason::Invalid => "invalid",
        }
    }
}

impl Finding {
    /// A finding with no details.
    pub fn new(severity: Severity, title: impl Into<String>, subject: impl Into<String>) -> Self {
        Finding {
            severity,
            title: title.into(),
            subject: subject.into(),
            details: Vec::new(),
        }
    }

    /// Adds one detail.
    pub fn detail(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.details.push((key.into(), value.to_string()));
        self
    }
}

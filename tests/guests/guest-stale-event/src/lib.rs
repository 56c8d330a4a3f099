//! Hostile guest for contract v0.2: tries to read an event it was not
//! given. It implements the generated bindings directly (the SDK offers no
//! way to do this): with config `mode = "stale"` it keeps the handle of
//! each call's event and, on the next call, reads through that old handle;
//! with `mode = "forge"` it reads through a handle number it made up. Both
//! must trap (a rule fault) without reading anything, and the rule's next
//! calls and its neighbours must run normally.

use std::sync::atomic::{AtomicU32, Ordering};

use vigil_sdk::bindings::vigil::rule::{config, types};
use vigil_sdk::{Finding, Metadata, PartitionKey, Severity};

/// The previous call's event handle (0: none yet). Lost with the instance
/// when a call traps, so stale reads happen every other call.
static STASHED: AtomicU32 = AtomicU32::new(0);

struct Guest;

impl vigil_sdk::bindings::Guest for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "stale-event".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: reads through stale or forged event handles".into(),
            subscribes: vec!["*".into()],
            outcomes: vec![],
            classes: vec![],
            actions: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(event: &types::Event) -> Result<Vec<Finding>, String> {
        let target = match config::get("mode").as_deref() {
            Some("forge") => 0x7fff,
            _ => STASHED.swap(event.handle(), Ordering::SeqCst),
        };
        if target == 0 {
            return Ok(vec![Finding {
                severity: Severity::Info,
                title: "kept a handle".into(),
                subject: event.id(),
                details: vec![],
            }]);
        }
        // SAFETY: deliberately unsound — the point of this guest. The
        // wrapper is forgotten so its drop never runs.
        let other = unsafe { types::Event::from_handle(target) };
        let id = other.id();
        std::mem::forget(other);
        Ok(vec![Finding {
            severity: Severity::Critical,
            title: "read an event it was not given".into(),
            subject: id,
            details: vec![],
        }])
    }
}

vigil_sdk::bindings::__export_rule!(Guest with_types_in vigil_sdk::bindings);

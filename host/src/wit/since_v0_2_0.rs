//! `vigil:rule@0.2.0` (`wit/since_v0.2.0`): the event is a resource the
//! host keeps; `on-event` borrows it and the rule reads fields through
//! getters, so only what it reads crosses the boundary. The metadata adds
//! outcome and class filters and the partition key.
//!
//! The handle passed to a call is a borrow whose representation is the
//! call's number (`RuleState::call_seq`): a getter checks it against the
//! call in progress, so no handle reads another call's event. That code is
//! shared with later versions (`super::event_resource!`).

wasmtime::component::bindgen!({
    world: "rule",
    path: "../wit/since_v0.2.0",
    imports: {
        "vigil:rule/state": trappable,
        "vigil:rule/actions": trappable,
        "vigil:rule/types": trappable,
    },
});

use vigil::rule::types;

super::shared_interfaces!();
super::event_resource!();

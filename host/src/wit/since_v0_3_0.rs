//! `vigil:rule@0.3.0` (`wit/since_v0.3.0`): 0.2.0 plus two action kinds,
//! `restore-policy` (write a policy back as the approved MFA baseline
//! holds it) and `assign-app-policy` (put an application under an MFA
//! policy the operator named). The event resource and everything else is
//! 0.2.0's (`super::event_resource!`).

wasmtime::component::bindgen!({
    world: "rule",
    path: "../wit/since_v0.3.0",
    imports: {
        "vigil:rule/state": trappable,
        "vigil:rule/actions": trappable,
        "vigil:rule/types": trappable,
    },
});

use vigil::rule::types;

super::shared_interfaces!(
    kinds: {
        types::ActionKind::RestorePolicy => model::ActionKind::RestorePolicy,
        types::ActionKind::AssignAppPolicy => model::ActionKind::AssignAppPolicy,
    },
    actions: {
        types::Action::RestorePolicy(p) => model::Action::RestorePolicy(p),
        types::Action::AssignAppPolicy(a) => model::Action::AssignAppPolicy(model::AppPolicy {
            app: a.app,
            policy: a.policy,
        }),
    }
);
super::event_resource!();

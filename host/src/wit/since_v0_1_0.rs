//! `vigil:rule@0.1.0` (`wit/since_v0.1.0`, frozen): the event is a record
//! passed whole to `on-event`, the metadata has no filters and no
//! partition key (a v0.1 rule is judged as `global`: one instance sees all
//! its events, as it always did).

use std::sync::Arc;

use wasmtime::Store;

wasmtime::component::bindgen!({
    world: "rule",
    path: "../wit/since_v0.1.0",
    imports: {
        "vigil:rule/state": trappable,
        "vigil:rule/actions": trappable,
    },
});

use vigil::rule::types;

super::shared_interfaces!();

impl types::Host for RuleState {}

pub fn call_metadata(
    rule: &Rule,
    store: &mut Store<RuleState>,
) -> wasmtime::Result<model::Metadata> {
    let m = rule.call_metadata(store)?;
    Ok(model::Metadata {
        id: m.id,
        version: m.version,
        description: m.description,
        subscribes: m.subscribes,
        outcomes: Vec::new(),
        classes: Vec::new(),
        actions: m.actions.into_iter().map(action_kind_from).collect(),
        partition: model::PartitionKey::Global,
    })
}

pub fn call_on_event(
    rule: &Rule,
    store: &mut Store<RuleState>,
    event: &Arc<model::Event>,
) -> wasmtime::Result<Result<Vec<model::Finding>, String>> {
    let e = event_to(event);
    Ok(findings_from(rule.call_on_event(store, &e)?))
}

/// The whole event, as v0.1 lowers it into the guest.
fn event_to(e: &model::Event) -> types::Event {
    types::Event {
        id: e.id.clone(),
        source: e.source.clone(),
        kind: e.kind.clone(),
        class: class_to(e.class),
        time: e.time,
        actor: e.actor.as_ref().map(principal_to),
        targets: e.targets.iter().map(principal_to).collect(),
        outcome: outcome_to(e.outcome),
        outcome_reason: e.outcome_reason.clone(),
        client_ip: e.client_ip.clone(),
        geo: e.geo.as_ref().map(geo_to),
        user_agent: e.user_agent.clone(),
        factor: e.factor.clone(),
        attributes: e.attributes.clone(),
    }
}

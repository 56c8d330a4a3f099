//! `vigil:rule@0.2.0` (`wit/since_v0.2.0`): the event is a resource the
//! host keeps; `on-event` borrows it and the rule reads fields through
//! getters, so only what it reads crosses the boundary. The metadata adds
//! outcome and class filters and the partition key.
//!
//! The handle passed to a call is a borrow whose representation is the
//! call's number (`RuleState::call_seq`): a getter checks it against the
//! call in progress, so no handle reads another call's event.

use wasmtime::Store;
use wasmtime::component::Resource;

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
        outcomes: m.outcomes.into_iter().map(outcome_from).collect(),
        classes: m.classes.into_iter().map(class_from).collect(),
        actions: m.actions.into_iter().map(action_kind_from).collect(),
        partition: match m.partition {
            types::PartitionKey::Actor => model::PartitionKey::Actor,
            types::PartitionKey::SubjectUser => model::PartitionKey::SubjectUser,
            types::PartitionKey::ClientIp => model::PartitionKey::ClientIp,
            types::PartitionKey::Global => model::PartitionKey::Global,
        },
    })
}

/// Calls `on-event` with a borrow of the store's current event.
pub fn call_on_event(
    rule: &Rule,
    store: &mut Store<RuleState>,
) -> wasmtime::Result<Result<Vec<model::Finding>, String>> {
    let handle = Resource::<types::Event>::new_borrow(store.data().call_seq);
    Ok(findings_from(rule.call_on_event(store, handle)?))
}

fn outcome_from(o: types::Outcome) -> model::Outcome {
    match o {
        types::Outcome::Success => model::Outcome::Success,
        types::Outcome::Failure => model::Outcome::Failure,
        types::Outcome::Unknown => model::Outcome::Unknown,
    }
}

fn class_from(c: types::EventClass) -> model::EventClass {
    match c {
        types::EventClass::Authentication => model::EventClass::Authentication,
        types::EventClass::MfaChallenge => model::EventClass::MfaChallenge,
        types::EventClass::FactorChange => model::EventClass::FactorChange,
        types::EventClass::PolicyChange => model::EventClass::PolicyChange,
        types::EventClass::AccountChange => model::EventClass::AccountChange,
        types::EventClass::Session => model::EventClass::Session,
        types::EventClass::Other => model::EventClass::Other,
    }
}

impl RuleState {
    /// The event a handle names: the current call's, or a trap.
    fn event_of(&self, handle: &Resource<types::Event>) -> wasmtime::Result<&model::Event> {
        match &self.event {
            Some(event) if handle.rep() == self.call_seq && !handle.owned() => Ok(event),
            _ => Err(wasmtime::Error::msg(
                "an event handle was used outside the on-event call it was passed to",
            )),
        }
    }
}

impl types::Host for RuleState {}

impl types::HostEvent for RuleState {
    fn id(&mut self, e: Resource<types::Event>) -> wasmtime::Result<String> {
        Ok(self.event_of(&e)?.id.clone())
    }
    fn source(&mut self, e: Resource<types::Event>) -> wasmtime::Result<String> {
        Ok(self.event_of(&e)?.source.clone())
    }
    fn kind(&mut self, e: Resource<types::Event>) -> wasmtime::Result<String> {
        Ok(self.event_of(&e)?.kind.clone())
    }
    fn class(&mut self, e: Resource<types::Event>) -> wasmtime::Result<types::EventClass> {
        Ok(class_to(self.event_of(&e)?.class))
    }
    fn time(&mut self, e: Resource<types::Event>) -> wasmtime::Result<i64> {
        Ok(self.event_of(&e)?.time)
    }
    fn actor(&mut self, e: Resource<types::Event>) -> wasmtime::Result<Option<types::Principal>> {
        Ok(self.event_of(&e)?.actor.as_ref().map(principal_to))
    }
    fn targets(&mut self, e: Resource<types::Event>) -> wasmtime::Result<Vec<types::Principal>> {
        Ok(self
            .event_of(&e)?
            .targets
            .iter()
            .map(principal_to)
            .collect())
    }
    fn outcome(&mut self, e: Resource<types::Event>) -> wasmtime::Result<types::Outcome> {
        Ok(outcome_to(self.event_of(&e)?.outcome))
    }
    fn outcome_reason(&mut self, e: Resource<types::Event>) -> wasmtime::Result<Option<String>> {
        Ok(self.event_of(&e)?.outcome_reason.clone())
    }
    fn client_ip(&mut self, e: Resource<types::Event>) -> wasmtime::Result<Option<String>> {
        Ok(self.event_of(&e)?.client_ip.clone())
    }
    fn geo(&mut self, e: Resource<types::Event>) -> wasmtime::Result<Option<types::Geo>> {
        Ok(self.event_of(&e)?.geo.as_ref().map(geo_to))
    }
    fn user_agent(&mut self, e: Resource<types::Event>) -> wasmtime::Result<Option<String>> {
        Ok(self.event_of(&e)?.user_agent.clone())
    }
    fn factor(&mut self, e: Resource<types::Event>) -> wasmtime::Result<Option<String>> {
        Ok(self.event_of(&e)?.factor.clone())
    }
    fn attribute(
        &mut self,
        e: Resource<types::Event>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.event_of(&e)?.attribute(&name).map(str::to_owned))
    }
    fn attributes(&mut self, e: Resource<types::Event>) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.event_of(&e)?.attributes.clone())
    }
    fn raw(
        &mut self,
        e: Resource<types::Event>,
        pointer: String,
    ) -> wasmtime::Result<Result<Option<String>, String>> {
        let max = self.ctx.max_raw_bytes;
        let event = self.event_of(&e)?;
        Ok(match &event.raw {
            None => Ok(None),
            Some(record) => record.get(&pointer, max).map_err(|e| e.to_string()),
        })
    }
    fn drop(&mut self, e: Resource<types::Event>) -> wasmtime::Result<()> {
        // The host only lends events; an owned handle cannot exist.
        debug_assert!(!e.owned());
        Ok(())
    }
}

//! The `vigil:rule` contract versions this host implements, one adapter
//! each (the layout of Zed's extension host): `since_v0_1_0`,
//! `since_v0_2_0` and `since_v0_3_0` hold the code generated from
//! `wit/since_v0.X.0/`, the
//! per-interface `Host` implementations and the conversions to and from
//! `crate::model`. Generated types never leave this module.
//!
//! The loader reads the version a component's imports name
//! ([`Contract::of_imports`]) and instantiates it with that version's
//! adapter; every version is linked into the one shared linker (the
//! import names carry the version, so they never collide). What the
//! interfaces do is version-independent and lives in `crate::host_api`;
//! an adapter only converts.

mod since_v0_1_0;
mod since_v0_2_0;
mod since_v0_3_0;

use std::sync::Arc;

use anyhow::{Result, bail};
use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use crate::host_api::RuleState;
use crate::model::{Event, Finding, Metadata};

/// The WIT package every version belongs to.
pub const WIT_PACKAGE: &str = "vigil:rule";

/// A contract version this host implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Contract {
    V0_1_0,
    V0_2_0,
    V0_3_0,
}

impl Contract {
    /// Every version, oldest first.
    pub const ALL: [Contract; 3] = [Contract::V0_1_0, Contract::V0_2_0, Contract::V0_3_0];
    /// What `vigil new` and the SDKs build against.
    pub const LATEST: Contract = Contract::V0_3_0;

    /// `0.1.0`, `0.2.0`.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1_0 => "0.1.0",
            Contract::V0_2_0 => "0.2.0",
            Contract::V0_3_0 => "0.3.0",
        }
    }

    /// `vigil:rule@0.1.0 to vigil:rule@0.2.0`, for refusals.
    pub fn supported_range() -> String {
        let first = Contract::ALL[0];
        format!(
            "{WIT_PACKAGE}@{} to {WIT_PACKAGE}@{}",
            first.version(),
            Contract::LATEST.version()
        )
    }

    /// The version named by a component's import names
    /// (`vigil:rule/actions@0.2.0`). A component that imports nothing of
    /// Vigil's is a v0.1 rule (a v0.2 rule always imports the event type);
    /// imports of an unsupported version, or of two versions, are refused.
    pub fn of_imports<'a>(imports: impl IntoIterator<Item = &'a str>) -> Result<Contract> {
        let mut found: Option<&str> = None;
        for name in imports {
            let Some(rest) = name
                .strip_prefix(WIT_PACKAGE)
                .and_then(|r| r.strip_prefix('/'))
            else {
                continue;
            };
            let Some((_, version)) = rest.split_once('@') else {
                bail!(
                    "it imports {name} without a version; this host implements {}",
                    Contract::supported_range()
                );
            };
            match found {
                Some(v) if v != version => bail!(
                    "it imports two versions of {WIT_PACKAGE} ({v} and {version}); a rule is built against one"
                ),
                _ => found = Some(version),
            }
        }
        let Some(version) = found else {
            return Ok(Contract::V0_1_0);
        };
        Contract::ALL
            .into_iter()
            .find(|c| c.version() == version)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "it was built against {WIT_PACKAGE}@{version}; this host implements {}",
                    Contract::supported_range()
                )
            })
    }
}

/// Adds every contract version's interfaces to the rules' linker.
pub fn add_to_linker(linker: &mut Linker<RuleState>) -> Result<()> {
    since_v0_1_0::add_to_linker(linker)?;
    since_v0_2_0::add_to_linker(linker)?;
    since_v0_3_0::add_to_linker(linker)?;
    Ok(())
}

/// The rules' linker: WASI (deny-all, see `host_api`) and every contract
/// version.
pub fn linker(engine: &wasmtime::Engine) -> Result<Linker<RuleState>> {
    let mut linker = Linker::new(engine);
    crate::host_api::add_wasi_to_linker(&mut linker)?;
    add_to_linker(&mut linker)?;
    Ok(linker)
}

/// A component checked to export its version's world, ready to instantiate.
#[derive(Clone)]
pub enum RulePre {
    V0_1(since_v0_1_0::RulePre<RuleState>),
    V0_2(since_v0_2_0::RulePre<RuleState>),
    V0_3(since_v0_3_0::RulePre<RuleState>),
}

impl RulePre {
    pub fn new(contract: Contract, pre: InstancePre<RuleState>) -> wasmtime::Result<RulePre> {
        Ok(match contract {
            Contract::V0_1_0 => RulePre::V0_1(since_v0_1_0::RulePre::new(pre)?),
            Contract::V0_2_0 => RulePre::V0_2(since_v0_2_0::RulePre::new(pre)?),
            Contract::V0_3_0 => RulePre::V0_3(since_v0_3_0::RulePre::new(pre)?),
        })
    }

    pub fn contract(&self) -> Contract {
        match self {
            RulePre::V0_1(_) => Contract::V0_1_0,
            RulePre::V0_2(_) => Contract::V0_2_0,
            RulePre::V0_3(_) => Contract::V0_3_0,
        }
    }

    pub fn instantiate(&self, store: &mut Store<RuleState>) -> wasmtime::Result<RuleBindings> {
        Ok(match self {
            RulePre::V0_1(pre) => RuleBindings::V0_1(pre.instantiate(store)?),
            RulePre::V0_2(pre) => RuleBindings::V0_2(pre.instantiate(store)?),
            RulePre::V0_3(pre) => RuleBindings::V0_3(pre.instantiate(store)?),
        })
    }
}

/// One instance's exports, in its version.
pub enum RuleBindings {
    V0_1(since_v0_1_0::Rule),
    V0_2(since_v0_2_0::Rule),
    V0_3(since_v0_3_0::Rule),
}

impl RuleBindings {
    /// `metadata()`, in the host's terms.
    pub fn call_metadata(&self, store: &mut Store<RuleState>) -> wasmtime::Result<Metadata> {
        match self {
            RuleBindings::V0_1(rule) => since_v0_1_0::call_metadata(rule, store),
            RuleBindings::V0_2(rule) => since_v0_2_0::call_metadata(rule, store),
            RuleBindings::V0_3(rule) => since_v0_3_0::call_metadata(rule, store),
        }
    }

    /// `on-event(event)`. The caller has put `event` in the store
    /// (`RuleState::event`) and numbered the call (`call_seq`).
    pub fn call_on_event(
        &self,
        store: &mut Store<RuleState>,
        event: &Arc<Event>,
    ) -> wasmtime::Result<Result<Vec<Finding>, String>> {
        match self {
            RuleBindings::V0_1(rule) => since_v0_1_0::call_on_event(rule, store, event),
            RuleBindings::V0_2(rule) => since_v0_2_0::call_on_event(rule, store),
            RuleBindings::V0_3(rule) => since_v0_3_0::call_on_event(rule, store),
        }
    }
}

/// What every version's adapter shares: the actions, state, log and config
/// interfaces, which have the same shape in each version, forwarded to
/// `crate::host_api`, and the conversions of the types they carry.
/// Expanded inside an adapter module, after its `bindgen!` and
/// `use vigil::rule::types;`.
macro_rules! shared_interfaces {
    () => {
        $crate::wit::shared_interfaces!(kinds: {}, actions: {});
    };
    // `kinds` and `actions`: match arms for the action kinds and actions a
    // version adds to those of 0.1.0.
    (kinds: { $($kind:pat => $kind_to:expr,)* }, actions: { $($action:pat => $action_to:expr,)* }) => {
        use crate::host_api::RuleState;
        use crate::model;

        impl vigil::rule::actions::Host for RuleState {
            fn request(
                &mut self,
                action: types::Action,
            ) -> wasmtime::Result<Result<types::Receipt, types::Denial>> {
                Ok(match self.request_action(action_from(action))? {
                    Ok(r) => Ok(types::Receipt {
                        action_id: r.action_id,
                        decision: match r.decision {
                            model::Decision::Accepted => types::Decision::Accepted,
                            model::Decision::DryRun => types::Decision::DryRun,
                            model::Decision::PendingApproval => types::Decision::PendingApproval,
                            model::Decision::Duplicate => types::Decision::Duplicate,
                        },
                    }),
                    Err(d) => Err(types::Denial {
                        reason: match d.reason {
                            model::DenialReason::NotGranted => types::DenialReason::NotGranted,
                            model::DenialReason::ProtectedTarget => {
                                types::DenialReason::ProtectedTarget
                            }
                            model::DenialReason::BudgetExceeded => {
                                types::DenialReason::BudgetExceeded
                            }
                            model::DenialReason::Invalid => types::DenialReason::Invalid,
                        },
                        message: d.message,
                    }),
                })
            }
        }

        impl vigil::rule::state::Host for RuleState {
            fn counter_add(
                &mut self,
                key: String,
                window_ms: u64,
                delta: u32,
            ) -> wasmtime::Result<u64> {
                self.state_counter_add(key, window_ms, delta)
            }
            fn counter_get(&mut self, key: String, window_ms: u64) -> wasmtime::Result<u64> {
                self.state_counter_get(key, window_ms)
            }
            fn distinct_add(
                &mut self,
                key: String,
                member: String,
                window_ms: u64,
            ) -> wasmtime::Result<u64> {
                self.state_distinct_add(key, member, window_ms)
            }
            fn distinct_count(&mut self, key: String, window_ms: u64) -> wasmtime::Result<u64> {
                self.state_distinct_count(key, window_ms)
            }
            fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
                self.state_get(key)
            }
            fn set(
                &mut self,
                key: String,
                value: String,
                ttl_ms: Option<u64>,
            ) -> wasmtime::Result<()> {
                self.state_set(key, value, ttl_ms)
            }
            fn delete(&mut self, key: String) -> wasmtime::Result<()> {
                self.state_delete(key)
            }
        }

        impl vigil::rule::log::Host for RuleState {
            fn log(&mut self, level: vigil::rule::log::Level, message: String) {
                use vigil::rule::log::Level;
                let level = match level {
                    Level::Debug => crate::host_api::Level::Debug,
                    Level::Info => crate::host_api::Level::Info,
                    Level::Warn => crate::host_api::Level::Warn,
                    Level::Error => crate::host_api::Level::Error,
                };
                self.rule_log(level, message)
            }
        }

        impl vigil::rule::config::Host for RuleState {
            fn get(&mut self, key: String) -> Option<String> {
                self.config_get(&key)
            }
        }

        fn action_kind_from(k: types::ActionKind) -> model::ActionKind {
            match k {
                types::ActionKind::SuspendUser => model::ActionKind::SuspendUser,
                types::ActionKind::RevokeSessions => model::ActionKind::RevokeSessions,
                types::ActionKind::ResetFactors => model::ActionKind::ResetFactors,
                types::ActionKind::ActivatePolicy => model::ActionKind::ActivatePolicy,
                types::ActionKind::AddToGroup => model::ActionKind::AddToGroup,
                types::ActionKind::BlockIp => model::ActionKind::BlockIp,
                types::ActionKind::Notify => model::ActionKind::Notify,
                types::ActionKind::Escalate => model::ActionKind::Escalate,
                $($kind => $kind_to,)*
            }
        }

        fn severity_from(s: types::Severity) -> model::Severity {
            match s {
                types::Severity::Info => model::Severity::Info,
                types::Severity::Low => model::Severity::Low,
                types::Severity::Medium => model::Severity::Medium,
                types::Severity::High => model::Severity::High,
                types::Severity::Critical => model::Severity::Critical,
            }
        }

        fn message_from(m: types::Message) -> model::Message {
            model::Message {
                severity: severity_from(m.severity),
                summary: m.summary,
                details: m.details,
            }
        }

        fn action_from(a: types::Action) -> model::Action {
            match a {
                types::Action::SuspendUser(s) => model::Action::SuspendUser(model::SuspendUser {
                    user: s.user,
                    duration_secs: s.duration_secs,
                }),
                types::Action::RevokeSessions(u) => model::Action::RevokeSessions(u),
                types::Action::ResetFactors(u) => model::Action::ResetFactors(u),
                types::Action::ActivatePolicy(p) => model::Action::ActivatePolicy(p),
                types::Action::AddToGroup(g) => model::Action::AddToGroup(model::GroupMembership {
                    user: g.user,
                    group: g.group,
                }),
                types::Action::BlockIp(b) => model::Action::BlockIp(model::BlockIp {
                    ip: b.ip,
                    duration_secs: b.duration_secs,
                }),
                types::Action::Notify(m) => model::Action::Notify(message_from(m)),
                types::Action::Escalate(m) => model::Action::Escalate(message_from(m)),
                $($action => $action_to,)*
            }
        }

        fn finding_from(f: types::Finding) -> model::Finding {
            model::Finding {
                severity: severity_from(f.severity),
                title: f.title,
                subject: f.subject,
                details: f.details,
            }
        }

        fn findings_from(
            result: Result<Vec<types::Finding>, String>,
        ) -> Result<Vec<model::Finding>, String> {
            result.map(|fs| fs.into_iter().map(finding_from).collect())
        }

        fn principal_to(p: &model::Principal) -> types::Principal {
            types::Principal {
                id: p.id.clone(),
                kind: p.kind.clone(),
                login: p.login.clone(),
                display_name: p.display_name.clone(),
            }
        }

        fn geo_to(g: &model::Geo) -> types::Geo {
            types::Geo {
                country: g.country.clone(),
                city: g.city.clone(),
                lat: g.lat,
                lon: g.lon,
            }
        }

        fn class_to(c: model::EventClass) -> types::EventClass {
            match c {
                model::EventClass::Authentication => types::EventClass::Authentication,
                model::EventClass::MfaChallenge => types::EventClass::MfaChallenge,
                model::EventClass::FactorChange => types::EventClass::FactorChange,
                model::EventClass::PolicyChange => types::EventClass::PolicyChange,
                model::EventClass::AccountChange => types::EventClass::AccountChange,
                model::EventClass::Session => types::EventClass::Session,
                model::EventClass::Other => types::EventClass::Other,
            }
        }

        fn outcome_to(o: model::Outcome) -> types::Outcome {
            match o {
                model::Outcome::Success => types::Outcome::Success,
                model::Outcome::Failure => types::Outcome::Failure,
                model::Outcome::Unknown => types::Outcome::Unknown,
            }
        }

        /// Adds this version's interfaces to the rules' linker.
        pub fn add_to_linker(
            linker: &mut wasmtime::component::Linker<RuleState>,
        ) -> anyhow::Result<()> {
            Rule::add_to_linker::<RuleState, wasmtime::component::HasSelf<RuleState>>(linker, |s| s)
                .map_err(anyhow::Error::from)
        }
    };
}
use shared_interfaces;

/// What the adapters of the versions whose event is a resource (0.2.0
/// on) share: `metadata()` and `on-event` in the host's terms, and the
/// event resource's getters. Expanded inside an adapter module, after its
/// `bindgen!` and `use vigil::rule::types;` and `shared_interfaces!`.
macro_rules! event_resource {
    () => {
        use wasmtime::Store;
        use wasmtime::component::Resource;

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

        /// The event a handle names: the current call's, or a trap.
        fn event_of<'a>(
            state: &'a RuleState,
            handle: &Resource<types::Event>,
        ) -> wasmtime::Result<&'a model::Event> {
            match &state.event {
                Some(event) if handle.rep() == state.call_seq && !handle.owned() => Ok(event),
                _ => Err(wasmtime::Error::msg(
                    "an event handle was used outside the on-event call it was passed to",
                )),
            }
        }

        impl types::Host for RuleState {}

        impl types::HostEvent for RuleState {
            fn id(&mut self, e: Resource<types::Event>) -> wasmtime::Result<String> {
                Ok(event_of(self, &e)?.id.clone())
            }
            fn source(&mut self, e: Resource<types::Event>) -> wasmtime::Result<String> {
                Ok(event_of(self, &e)?.source.clone())
            }
            fn kind(&mut self, e: Resource<types::Event>) -> wasmtime::Result<String> {
                Ok(event_of(self, &e)?.kind.clone())
            }
            fn class(&mut self, e: Resource<types::Event>) -> wasmtime::Result<types::EventClass> {
                Ok(class_to(event_of(self, &e)?.class))
            }
            fn time(&mut self, e: Resource<types::Event>) -> wasmtime::Result<i64> {
                Ok(event_of(self, &e)?.time)
            }
            fn actor(
                &mut self,
                e: Resource<types::Event>,
            ) -> wasmtime::Result<Option<types::Principal>> {
                Ok(event_of(self, &e)?.actor.as_ref().map(principal_to))
            }
            fn targets(
                &mut self,
                e: Resource<types::Event>,
            ) -> wasmtime::Result<Vec<types::Principal>> {
                Ok(event_of(self, &e)?
                    .targets
                    .iter()
                    .map(principal_to)
                    .collect())
            }
            fn outcome(&mut self, e: Resource<types::Event>) -> wasmtime::Result<types::Outcome> {
                Ok(outcome_to(event_of(self, &e)?.outcome))
            }
            fn outcome_reason(
                &mut self,
                e: Resource<types::Event>,
            ) -> wasmtime::Result<Option<String>> {
                Ok(event_of(self, &e)?.outcome_reason.clone())
            }
            fn client_ip(&mut self, e: Resource<types::Event>) -> wasmtime::Result<Option<String>> {
                Ok(event_of(self, &e)?.client_ip.clone())
            }
            fn geo(&mut self, e: Resource<types::Event>) -> wasmtime::Result<Option<types::Geo>> {
                Ok(event_of(self, &e)?.geo.as_ref().map(geo_to))
            }
            fn user_agent(
                &mut self,
                e: Resource<types::Event>,
            ) -> wasmtime::Result<Option<String>> {
                Ok(event_of(self, &e)?.user_agent.clone())
            }
            fn factor(&mut self, e: Resource<types::Event>) -> wasmtime::Result<Option<String>> {
                Ok(event_of(self, &e)?.factor.clone())
            }
            fn attribute(
                &mut self,
                e: Resource<types::Event>,
                name: String,
            ) -> wasmtime::Result<Option<String>> {
                Ok(event_of(self, &e)?.attribute(&name).map(str::to_owned))
            }
            fn attributes(
                &mut self,
                e: Resource<types::Event>,
            ) -> wasmtime::Result<Vec<(String, String)>> {
                Ok(event_of(self, &e)?.attributes.clone())
            }
            fn raw(
                &mut self,
                e: Resource<types::Event>,
                pointer: String,
            ) -> wasmtime::Result<Result<Option<String>, String>> {
                let max = self.ctx.max_raw_bytes;
                let event = event_of(self, &e)?;
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
    };
}
use event_resource;

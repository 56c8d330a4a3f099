//! The `vigil:rule` contract versions this host implements, one adapter
//! each (the layout of Zed's extension host): `since_v0_1_0` and
//! `since_v0_2_0` hold the code generated from `wit/since_v0.X.0/`, the
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
}

impl Contract {
    /// Every version, oldest first.
    pub const ALL: [Contract; 2] = [Contract::V0_1_0, Contract::V0_2_0];
    /// What `vigil new` and the SDKs build against.
    pub const LATEST: Contract = Contract::V0_2_0;

    /// `0.1.0`, `0.2.0`.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1_0 => "0.1.0",
            Contract::V0_2_0 => "0.2.0",
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
}

impl RulePre {
    pub fn new(contract: Contract, pre: InstancePre<RuleState>) -> wasmtime::Result<RulePre> {
        Ok(match contract {
            Contract::V0_1_0 => RulePre::V0_1(since_v0_1_0::RulePre::new(pre)?),
            Contract::V0_2_0 => RulePre::V0_2(since_v0_2_0::RulePre::new(pre)?),
        })
    }

    pub fn contract(&self) -> Contract {
        match self {
            RulePre::V0_1(_) => Contract::V0_1_0,
            RulePre::V0_2(_) => Contract::V0_2_0,
        }
    }

    pub fn instantiate(&self, store: &mut Store<RuleState>) -> wasmtime::Result<RuleBindings> {
        Ok(match self {
            RulePre::V0_1(pre) => RuleBindings::V0_1(pre.instantiate(store)?),
            RulePre::V0_2(pre) => RuleBindings::V0_2(pre.instantiate(store)?),
        })
    }
}

/// One instance's exports, in its version.
pub enum RuleBindings {
    V0_1(since_v0_1_0::Rule),
    V0_2(since_v0_2_0::Rule),
}

impl RuleBindings {
    /// `metadata()`, in the host's terms.
    pub fn call_metadata(&self, store: &mut Store<RuleState>) -> wasmtime::Result<Metadata> {
        match self {
            RuleBindings::V0_1(rule) => since_v0_1_0::call_metadata(rule, store),
            RuleBindings::V0_2(rule) => since_v0_2_0::call_metadata(rule, store),
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

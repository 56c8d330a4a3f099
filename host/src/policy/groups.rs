//! Protected accounts by group membership: resolves `[protected] groups`
//! (`okta:<group id>`, `graph:<group object id>`) through the Okta or
//! Graph connector into [`ProtectedAccounts`], caches each member list in
//! the durable store, and refreshes them every `group_refresh_secs`.
//!
//! Failing closed:
//! - at start ([`GroupResolver::start`]), a group that can be neither
//!   listed nor loaded from the store's cache stops the start, naming the
//!   group and the connector's error: Vigil must not run believing nobody
//!   is protected;
//! - a group that cannot be listed but is cached starts from the cache
//!   (with a warning giving its age), so an IdP outage does not keep Vigil
//!   down;
//! - a later refresh that fails keeps the members already known and logs
//!   a warning naming the group and the error; failed refreshes are
//!   retried after [`RETRY_AFTER_FAILURE_MS`] rather than a whole interval.
//!
//! Cache: store meta key `protected-group:<spec>`, value
//! `{"group": spec, "fetched_ms": …, "members": [{"id", "login"}…]}`.
//!
//! The listing is a blocking HTTP call on the caller's thread (the
//! pipeline's, between events), like undos: a slow IdP delays events by
//! at most the connector's timeouts and retries.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::actions::connector::{ConnectorError, GroupMember};
use crate::actions::dispatch::Dispatcher;
use crate::config::Protected;
use crate::store::Store;

use super::ProtectedAccounts;

/// How soon a refresh that failed for some group is tried again (or the
/// configured interval, if shorter).
pub const RETRY_AFTER_FAILURE_MS: i64 = 60_000;

/// The store meta key prefix of a cached member list.
const CACHE_PREFIX: &str = "protected-group:";

/// One configured group.
#[derive(Clone, Debug)]
struct GroupSpec {
    /// As configured: `okta:00g1…`.
    spec: String,
    /// `okta` or `graph`.
    connector: String,
    /// The directory's group id.
    group: String,
}

/// What is known of a group's members.
#[derive(Debug)]
struct Known {
    /// Member ids, for change logs.
    ids: HashSet<String>,
    /// When the list was fetched from the IdP.
    fetched_ms: i64,
}

/// A member list as cached in the store.
#[derive(Debug, Serialize, Deserialize)]
struct CachedGroup {
    group: String,
    fetched_ms: i64,
    members: Vec<GroupMember>,
}

/// Keeps the members of `[protected] groups` in [`ProtectedAccounts`].
#[derive(Debug)]
pub struct GroupResolver {
    groups: Vec<GroupSpec>,
    refresh_ms: i64,
    next_due_ms: i64,
    known: HashMap<String, Known>,
}

impl GroupResolver {
    /// A resolver for the configured groups; nothing is resolved yet (see
    /// [`GroupResolver::start`]).
    pub fn new(config: &Protected) -> Result<Self> {
        let mut groups = Vec::new();
        for (i, spec) in config.groups.iter().enumerate() {
            let Some((connector, group)) = spec
                .split_once(':')
                .filter(|(c, g)| matches!(*c, "okta" | "graph") && !g.trim().is_empty())
            else {
                bail!(
                    "protected.groups[{i}]: {spec:?} is not \"okta:<group id>\" or \"graph:<group object id>\""
                );
            };
            groups.push(GroupSpec {
                spec: spec.clone(),
                connector: connector.to_owned(),
                group: group.to_owned(),
            });
        }
        let refresh_secs = config.group_refresh_secs.clamp(60, 86_400);
        Ok(GroupResolver {
            groups,
            refresh_ms: i64::try_from(refresh_secs).unwrap_or(86_400) * 1000,
            next_due_ms: 0,
            known: HashMap::new(),
        })
    }

    /// Builds the resolver and resolves every group once: from the IdP, or
    /// from the store's cache when the IdP fails. A group with neither is
    /// an error naming it and the connector's error (fail closed). With no
    /// groups configured this does nothing.
    pub fn start(
        config: &Protected,
        dispatcher: &mut Dispatcher,
        store: &Store,
        protected: &ProtectedAccounts,
        now_ms: i64,
    ) -> Result<Self> {
        let mut resolver = GroupResolver::new(config)?;
        resolver.refresh(dispatcher, store, protected, now_ms)?;
        Ok(resolver)
    }

    /// Whether a refresh is due at `now_ms` (never with no groups).
    pub fn due(&self, now_ms: i64) -> bool {
        !self.groups.is_empty() && now_ms >= self.next_due_ms
    }

    /// When the next refresh is due, if there are groups.
    pub fn next_due_ms(&self) -> Option<i64> {
        (!self.groups.is_empty()).then_some(self.next_due_ms)
    }

    /// Lists every group through its connector and updates `protected` and
    /// the store's cache. A group that fails keeps the members known in
    /// memory, else those cached in the store, with a warning naming the
    /// group and the error. Errs only when a group has no members known at
    /// all (at start: neither listed nor cached), naming each such group.
    pub fn refresh(
        &mut self,
        dispatcher: &mut Dispatcher,
        store: &Store,
        protected: &ProtectedAccounts,
        now_ms: i64,
    ) -> Result<()> {
        let mut failed = 0;
        let mut unknown = Vec::new();
        let groups = self.groups.clone();
        for g in &groups {
            let listed = match dispatcher.by_name(&g.connector) {
                Some(connector) => connector.group_members(&g.group),
                None => Err(ConnectorError::refused(format!(
                    "no {} connector is configured ([connectors.{}])",
                    g.connector, g.connector
                ))),
            };
            let error = match listed {
                Ok(members) => {
                    self.apply(g, &members, now_ms, protected, "listed");
                    if let Err(e) = save_cache(store, &g.spec, &members, now_ms) {
                        tracing::warn!(
                            group = g.spec.as_str(),
                            "protected group {}: cannot cache its member list: {e:#}",
                            g.spec
                        );
                    }
                    continue;
                }
                Err(e) => e,
            };
            failed += 1;
            if let Some(known) = self.known.get(&g.spec) {
                tracing::warn!(
                    group = g.spec.as_str(),
                    error = %error,
                    "protected group {}: cannot list its members through {}: {error}; \
                     keeping the {} members listed at {}",
                    g.spec,
                    g.connector,
                    known.ids.len(),
                    rfc3339(known.fetched_ms)
                );
                continue;
            }
            match load_cache(store, &g.spec) {
                Ok(Some(cached)) => {
                    tracing::warn!(
                        group = g.spec.as_str(),
                        error = %error,
                        "protected group {}: cannot list its members through {}: {error}; \
                         using the {} members cached at {} ({} old)",
                        g.spec,
                        g.connector,
                        cached.members.len(),
                        rfc3339(cached.fetched_ms),
                        age(now_ms - cached.fetched_ms)
                    );
                    self.apply(g, &cached.members, cached.fetched_ms, protected, "cached");
                }
                Ok(None) => unknown.push(format!(
                    "{} (through the {} connector): {error}; and no cached member list in {}",
                    g.spec,
                    g.connector,
                    store.path().display()
                )),
                Err(cache_error) => unknown.push(format!(
                    "{} (through the {} connector): {error}; and the cached member list cannot be read: {cache_error:#}",
                    g.spec, g.connector
                )),
            }
        }
        self.next_due_ms = now_ms
            + if failed > 0 {
                self.refresh_ms.min(RETRY_AFTER_FAILURE_MS)
            } else {
                self.refresh_ms
            };
        if !unknown.is_empty() {
            bail!(
                "protected.groups: cannot resolve {}: {}. Vigil does not run without knowing \
                 who is protected; fix the connector (it needs okta.groups.read or \
                 GroupMember.Read.All) or remove the group from [protected] groups",
                if unknown.len() == 1 {
                    "a protected group"
                } else {
                    "protected groups"
                },
                unknown.join("; ")
            );
        }
        Ok(())
    }

    /// Puts a member list into `protected` and logs what changed.
    fn apply(
        &mut self,
        g: &GroupSpec,
        members: &[GroupMember],
        fetched_ms: i64,
        protected: &ProtectedAccounts,
        how: &str,
    ) {
        protected.set_group_members(&g.spec, members);
        let ids: HashSet<String> = members.iter().map(|m| m.id.clone()).collect();
        let (added, removed) = match self.known.get(&g.spec) {
            Some(old) => (
                ids.difference(&old.ids).count(),
                old.ids.difference(&ids).count(),
            ),
            None => (ids.len(), 0),
        };
        if members.is_empty() {
            tracing::warn!(
                group = g.spec.as_str(),
                "protected group {} has no user members ({how}): it protects nobody",
                g.spec
            );
        } else if added > 0 || removed > 0 {
            tracing::info!(
                group = g.spec.as_str(),
                members = ids.len(),
                added,
                removed,
                "protected group {}: {} members ({how}; +{added} −{removed})",
                g.spec,
                ids.len()
            );
        }
        self.known.insert(g.spec.clone(), Known { ids, fetched_ms });
    }
}

fn cache_key(spec: &str) -> String {
    format!("{CACHE_PREFIX}{spec}")
}

fn save_cache(store: &Store, spec: &str, members: &[GroupMember], now_ms: i64) -> Result<()> {
    let cached = CachedGroup {
        group: spec.to_owned(),
        fetched_ms: now_ms,
        members: members.to_vec(),
    };
    let json = serde_json::to_string(&cached)?;
    store.set_meta(&cache_key(spec), &json, now_ms)
}

fn load_cache(store: &Store, spec: &str) -> Result<Option<CachedGroup>> {
    let Some(json) = store.meta(&cache_key(spec))? else {
        return Ok(None);
    };
    let cached: CachedGroup = serde_json::from_str(&json)
        .with_context(|| format!("store meta {} is not a member list", cache_key(spec)))?;
    if cached.group != spec {
        bail!(
            "store meta {} holds the members of {}",
            cache_key(spec),
            cached.group
        );
    }
    Ok(Some(cached))
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// `3 h 20 min`, `45 s`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::connector::{ActionContext, Connector, Executed, Undo};
    use crate::config::Dispatch;
    use crate::model::{Action, ActionKind};

    /// A directory whose group listing the test controls.
    struct Directory {
        name: &'static str,
        members: std::sync::Arc<std::sync::Mutex<Result<Vec<GroupMember>, String>>>,
    }

    impl Connector for Directory {
        fn name(&self) -> &str {
            self.name
        }
        fn supports(&self, _: ActionKind) -> bool {
            false
        }
        fn execute(
            &mut self,
            _: &Action,
            _: &ActionContext<'_>,
        ) -> Result<Executed, ConnectorError> {
            unreachable!()
        }
        fn undo(&mut self, _: &Undo) -> Result<String, ConnectorError> {
            unreachable!()
        }
        fn check(&mut self) -> Result<Vec<String>, ConnectorError> {
            Ok(Vec::new())
        }
        fn group_members(&mut self, _: &str) -> Result<Vec<GroupMember>, ConnectorError> {
            self.members
                .lock()
                .unwrap()
                .clone()
                .map_err(ConnectorError::refused)
        }
    }

    type Answer = std::sync::Arc<std::sync::Mutex<Result<Vec<GroupMember>, String>>>;

    fn setup(answer: Result<Vec<GroupMember>, String>) -> (Dispatcher, Answer, Protected) {
        let members: Answer = std::sync::Arc::new(std::sync::Mutex::new(answer));
        let okta = Directory {
            name: "okta",
            members: members.clone(),
        };
        let d = Dispatcher::new(vec![Box::new(okta)], &Dispatch::default(), &[]).unwrap();
        let config = Protected {
            groups: vec!["okta:00g1".into()],
            group_refresh_secs: 600,
            ..Protected::default()
        };
        (d, members, config)
    }

    fn m(id: &str) -> GroupMember {
        GroupMember {
            id: id.into(),
            login: Some(format!("{id}@example.com")),
        }
    }

    #[test]
    fn due_follows_the_interval_and_retries_failures_sooner() {
        let (mut d, answer, config) = setup(Ok(vec![m("00u1")]));
        let store = Store::in_memory().unwrap();
        let p = ProtectedAccounts::new(&config);
        let mut r = GroupResolver::start(&config, &mut d, &store, &p, 1_000_000).unwrap();
        assert!(!r.due(1_000_000 + 599_999));
        assert!(r.due(1_000_000 + 600_000));
        *answer.lock().unwrap() = Err("down".into());
        r.refresh(&mut d, &store, &p, 2_000_000).unwrap();
        assert_eq!(r.next_due_ms(), Some(2_000_000 + RETRY_AFTER_FAILURE_MS));
    }

    #[test]
    fn no_groups_is_never_due_and_starts_without_calls() {
        let mut d = Dispatcher::new(Vec::new(), &Dispatch::default(), &[]).unwrap();
        let store = Store::in_memory().unwrap();
        let config = Protected::default();
        let p = ProtectedAccounts::new(&config);
        let r = GroupResolver::start(&config, &mut d, &store, &p, 0).unwrap();
        assert!(!r.due(i64::MAX));
        assert_eq!(r.next_due_ms(), None);
    }

    #[test]
    fn a_missing_connector_fails_the_start_naming_it() {
        let mut d = Dispatcher::new(Vec::new(), &Dispatch::default(), &[]).unwrap();
        let store = Store::in_memory().unwrap();
        let config = Protected {
            groups: vec!["graph:g1".into()],
            ..Protected::default()
        };
        let p = ProtectedAccounts::new(&config);
        let err = GroupResolver::start(&config, &mut d, &store, &p, 0).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("graph:g1") && msg.contains("no graph connector"),
            "{msg}"
        );
        assert!(!p.groups_resolved());
    }

    #[test]
    fn a_corrupt_cache_is_named() {
        let (mut d, _, config) = setup(Err("down".into()));
        let store = Store::in_memory().unwrap();
        store
            .set_meta("protected-group:okta:00g1", "not json", 0)
            .unwrap();
        let p = ProtectedAccounts::new(&config);
        let err = GroupResolver::start(&config, &mut d, &store, &p, 0).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("okta:00g1") && msg.contains("down") && msg.contains("cannot be read"),
            "{msg}"
        );
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age(5_000), "5 s");
        assert_eq!(age(125_000), "2 min");
        assert_eq!(age(3 * 3_600_000 + 20 * 60_000), "3 h 20 min");
        assert_eq!(age(50 * 3_600_000), "2 d 2 h");
        assert_eq!(age(-5), "0 s");
    }
}

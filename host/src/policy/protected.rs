//! The protected-accounts registry: break-glass, service and admin accounts
//! that no action may ever target.
//!
//! A rule usually names a user by id while operators write patterns on
//! logins, so a target is checked under every name the current event gives
//! it (the actor's and targets' id and login).
//!
//! Besides fixed ids and patterns, every member of a configured directory
//! group (`[protected] groups`) is protected. Their names live in one
//! shared, updatable table (`Arc<RwLock<…>>`): the gate is cloned into
//! every rule, and [`super::GroupResolver`] updates the table in place, so
//! every clone sees a refresh at once. A configured group whose members
//! are not known yet protects *everyone* (fail closed): the resolver's
//! start refuses to run without them, and this keeps a gate built without
//! it from treating nobody as protected.
//!
//! At execution time the target is resolved through the identity provider
//! to its canonical id and every name the directory knows
//! ([`ProtectedAccounts::matches_resolved`], see `super::targets`), so a
//! login, a shortname or an e-mail address no event mentioned still hits.
//!
//! `[protected] networks` lists the addresses `block-ip` never blocks
//! ([`ProtectedAccounts::matches_network`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use std::net::IpAddr;

use crate::actions::connector::{GroupMember, ResolvedUser};
use crate::config::{Protected, ProtectedNetwork};
use crate::model::{Event, Principal};

#[derive(Clone, Debug, Default)]
pub struct ProtectedAccounts {
    /// Lower-cased exact ids or logins.
    ids: Vec<String>,
    /// Lower-cased `*` patterns.
    patterns: Vec<String>,
    /// Members of the protected groups, shared by every clone.
    groups: Arc<RwLock<GroupNames>>,
    /// Networks `block-ip` never blocks.
    networks: Vec<ProtectedNetwork>,
}

/// The names (lower-cased ids and logins) of each protected group's
/// members, by group spec (`okta:00g…`); a configured group not resolved
/// yet has no entry.
#[derive(Debug, Default)]
struct GroupNames {
    /// Every configured group spec, in configuration order.
    configured: Vec<String>,
    /// Resolved groups (sorted, so a name in two groups always reports
    /// the same one).
    members: BTreeMap<String, HashSet<String>>,
}

impl ProtectedAccounts {
    pub fn new(config: &Protected) -> Self {
        let groups = GroupNames {
            configured: config.groups.clone(),
            members: BTreeMap::new(),
        };
        ProtectedAccounts {
            ids: config.ids.iter().map(|s| s.to_lowercase()).collect(),
            patterns: config.logins.iter().map(|s| s.to_lowercase()).collect(),
            groups: Arc::new(RwLock::new(groups)),
            networks: config.networks.clone(),
        }
    }

    /// If `ip` is in a protected network, which one. A target that is not
    /// an address matches nothing (the gate refuses it as invalid first).
    pub fn matches_network(&self, ip: &str) -> Option<String> {
        let ip: IpAddr = ip.trim().parse().ok()?;
        self.networks
            .iter()
            .find(|n| n.contains(ip))
            .map(|n| format!("protected network {n}"))
    }

    /// If the user `resolved` — by its canonical id or any name its
    /// directory knows it by — is protected, says which entry matched
    /// and under which name.
    pub fn matches_resolved(&self, resolved: &ResolvedUser) -> Option<String> {
        std::iter::once(&resolved.id)
            .chain(&resolved.names)
            .find_map(|name| {
                self.match_name(name).map(|hit| {
                    if *name == resolved.id {
                        hit
                    } else {
                        format!("{hit}, as {name}")
                    }
                })
            })
    }

    /// Replaces the members of `group` (a spec such as `okta:00g1…`); every
    /// clone of this registry sees them at once. Ids and logins both
    /// protect, case-insensitively.
    pub fn set_group_members(&self, group: &str, members: &[GroupMember]) {
        let names: HashSet<String> = members
            .iter()
            .flat_map(|m| std::iter::once(&m.id).chain(m.login.as_ref()))
            .map(|n| n.to_lowercase())
            .collect();
        let mut table = self.groups.write().unwrap_or_else(|e| e.into_inner());
        if !table.configured.iter().any(|g| g == group) {
            table.configured.push(group.to_owned());
        }
        table.members.insert(group.to_owned(), names);
    }

    /// Whether every configured group's members are known (true with no
    /// groups). Until then every user counts as protected.
    pub fn groups_resolved(&self) -> bool {
        let table = self.read_groups();
        table
            .configured
            .iter()
            .all(|g| table.members.contains_key(g))
    }

    /// How many names (ids and logins) protect `group`, if it is resolved.
    pub fn group_name_count(&self, group: &str) -> Option<usize> {
        self.read_groups().members.get(group).map(HashSet::len)
    }

    fn read_groups(&self) -> RwLockReadGuard<'_, GroupNames> {
        // A writer that panicked left a whole table behind (it is replaced
        // in one insert), so the data is still usable.
        self.groups.read().unwrap_or_else(|e| e.into_inner())
    }

    /// If `target` (or another name the event gives the same principal) is
    /// protected, says which entry matched.
    pub fn matches(&self, target: &str, event: &Event) -> Option<String> {
        if let Some(hit) = self.match_name(target) {
            return Some(hit);
        }
        let principals = event.actor.iter().chain(event.targets.iter());
        for p in principals.filter(|p| names(p).any(|n| n.eq_ignore_ascii_case(target))) {
            if let Some(hit) = names(p).find_map(|n| self.match_name(n)) {
                return Some(hit);
            }
        }
        None
    }

    fn match_name(&self, name: &str) -> Option<String> {
        let name = name.to_lowercase();
        if let Some(id) = self.ids.iter().find(|id| **id == name) {
            return Some(format!("protected id {id}"));
        }
        if let Some(p) = self.patterns.iter().find(|p| wildcard_match(p, &name)) {
            return Some(format!("protected login pattern {p}"));
        }
        let table = self.read_groups();
        if let Some(group) = table
            .configured
            .iter()
            .find(|g| !table.members.contains_key(*g))
        {
            return Some(format!(
                "protected group {group} is not resolved yet; every user counts as protected until it is"
            ));
        }
        table
            .members
            .iter()
            .find(|(_, names)| names.contains(&name))
            .map(|(group, _)| format!("member of protected group {group}"))
    }
}

fn names(p: &Principal) -> impl Iterator<Item = &str> {
    std::iter::once(p.id.as_str()).chain(p.login.as_deref())
}

/// `*` matches any run of characters (including none); everything else
/// matches itself.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: an exact match.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventClass, Outcome};

    fn member(id: &str, login: Option<&str>) -> GroupMember {
        GroupMember {
            id: id.into(),
            login: login.map(str::to_owned),
        }
    }

    fn with_groups(groups: &[&str]) -> ProtectedAccounts {
        ProtectedAccounts::new(&Protected {
            ids: vec!["00ubreakglass1".into()],
            logins: vec!["svc-*@example.com".into()],
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Protected::default()
        })
    }

    /// An event whose actor is `id` with `login`.
    fn event(id: &str, login: &str) -> Event {
        Event {
            class: EventClass::Authentication,
            actor: Some(Principal {
                id: id.into(),
                kind: "User".into(),
                login: Some(login.into()),
                display_name: None,
            }),
            outcome: Outcome::Success,
            ..Event::new("e1", "okta", "user.session.start", 0)
        }
    }

    #[test]
    fn group_members_match_by_id_and_login_in_any_case() {
        let p = with_groups(&["okta:00g1bg"]);
        p.set_group_members(
            "okta:00g1bg",
            &[
                member("00uBG2", Some("BG2@Example.com")),
                member("00u3", None),
            ],
        );
        let e = event("00u9", "someone@example.com");
        assert_eq!(
            p.matches("00ubg2", &e).as_deref(),
            Some("member of protected group okta:00g1bg")
        );
        assert_eq!(
            p.matches("bg2@example.COM", &e).as_deref(),
            Some("member of protected group okta:00g1bg")
        );
        assert!(p.matches("00u3", &e).is_some());
        assert_eq!(p.matches("00u9", &e), None, "not a member");
    }

    #[test]
    fn group_login_matches_through_the_event_alias() {
        // The rule names the user by an id the group listing does not hold
        // (another directory's), the event gives the member's login.
        let p = with_groups(&["graph:g-1"]);
        p.set_group_members("graph:g-1", &[member("obj-1", Some("ops@contoso.com"))]);
        let e = event("other-id-7", "OPS@contoso.com");
        assert_eq!(
            p.matches("other-id-7", &e).as_deref(),
            Some("member of protected group graph:g-1")
        );
    }

    #[test]
    fn ids_and_patterns_are_reported_before_groups() {
        let p = with_groups(&["okta:g"]);
        p.set_group_members("okta:g", &[member("00ubreakglass1", None)]);
        let e = event("x", "x@example.com");
        assert_eq!(
            p.matches("00ubreakglass1", &e).as_deref(),
            Some("protected id 00ubreakglass1")
        );
    }

    #[test]
    fn unresolved_groups_protect_everyone() {
        // Fail closed: until every configured group is known, no user
        // action goes ahead.
        let p = with_groups(&["okta:a", "graph:b"]);
        let e = event("00u9", "u9@example.com");
        assert!(!p.groups_resolved());
        let why = p.matches("00u9", &e).unwrap();
        assert!(why.contains("okta:a is not resolved"), "{why}");
        p.set_group_members("okta:a", &[]);
        assert!(p.matches("00u9", &e).unwrap().contains("graph:b"));
        p.set_group_members("graph:b", &[member("u1", None)]);
        assert!(p.groups_resolved());
        assert_eq!(p.matches("00u9", &e), None);
    }

    #[test]
    fn no_groups_means_resolved_and_nothing_extra() {
        let p = with_groups(&[]);
        assert!(p.groups_resolved());
        assert_eq!(p.matches("00u9", &event("00u9", "a@b")), None);
    }

    #[test]
    fn clones_see_updates_and_removals() {
        // The gate holds a clone; the resolver updates the original.
        let p = with_groups(&["okta:g"]);
        let gate_copy = p.clone();
        let e = event("x", "x@example.com");
        p.set_group_members("okta:g", &[member("00u1", None), member("00u2", None)]);
        assert!(gate_copy.matches("00u2", &e).is_some());
        p.set_group_members("okta:g", &[member("00u1", None)]);
        assert_eq!(
            gate_copy.matches("00u2", &e),
            None,
            "removed from the group"
        );
        assert_eq!(gate_copy.group_name_count("okta:g"), Some(1));
    }

    #[test]
    fn a_name_in_two_groups_names_one_of_them_stably() {
        let p = with_groups(&["okta:b", "okta:a"]);
        p.set_group_members("okta:b", &[member("00u1", None)]);
        p.set_group_members("okta:a", &[member("00u1", None)]);
        let e = event("x", "x@example.com");
        assert_eq!(
            p.matches("00u1", &e).as_deref(),
            Some("member of protected group okta:a")
        );
    }

    #[test]
    fn resolved_names_are_all_checked() {
        // The rule named a shortname; the directory says who that is.
        let p = with_groups(&["okta:g"]);
        p.set_group_members("okta:g", &[member("00ugm1", Some("ops@example.com"))]);
        let user =
            |id: &str, names: &[&str]| ResolvedUser::new(id, names.iter().map(|n| (*n).to_owned()));
        assert_eq!(
            p.matches_resolved(&user("00uBreakGlass1", &["bg@example.com"]))
                .as_deref(),
            Some("protected id 00ubreakglass1")
        );
        assert_eq!(
            p.matches_resolved(&user("00u77", &["x@example.com", "SVC-Backup@Example.com"]))
                .as_deref(),
            Some("protected login pattern svc-*@example.com, as SVC-Backup@Example.com")
        );
        assert_eq!(
            p.matches_resolved(&user("00ugm1", &[])).as_deref(),
            Some("member of protected group okta:g")
        );
        assert_eq!(
            p.matches_resolved(&user("00uother", &["ops@example.com"]))
                .as_deref(),
            Some("member of protected group okta:g, as ops@example.com"),
            "a member's login under another id still protects"
        );
        assert_eq!(p.matches_resolved(&user("00u5", &["u5@example.com"])), None);
    }

    #[test]
    fn networks_protect_addresses_in_both_families() {
        let p = ProtectedAccounts::new(&Protected {
            networks: vec![
                "203.0.113.0/24".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8:e::/48".parse().unwrap(),
            ],
            ..Protected::default()
        });
        assert_eq!(
            p.matches_network("203.0.113.250").as_deref(),
            Some("protected network 203.0.113.0/24")
        );
        assert!(p.matches_network("::ffff:10.1.2.3").is_some(), "mapped");
        assert!(p.matches_network("2001:db8:e:1::5").is_some());
        assert_eq!(p.matches_network("198.51.100.1"), None);
        assert_eq!(p.matches_network("2001:db8:f::1"), None);
        assert_eq!(p.matches_network("not-an-ip"), None);
    }

    #[test]
    fn wildcards() {
        // Exact, prefix, suffix, infix and multiple stars.
        assert!(wildcard_match("svc-backup", "svc-backup"));
        assert!(!wildcard_match("svc-backup", "svc-backup2"));
        assert!(wildcard_match("svc-*", "svc-backup"));
        assert!(wildcard_match("*@example.com", "bg@example.com"));
        assert!(!wildcard_match("*@example.com", "bg@example.org"));
        assert!(wildcard_match("break*glass*@*", "break-the-glass-1@corp"));
        assert!(!wildcard_match("a*a", "a"));
        assert!(wildcard_match("*", ""));
    }
}

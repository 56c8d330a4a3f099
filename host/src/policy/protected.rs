//! The protected-accounts registry: break-glass, service and admin accounts
//! that no action may ever target.
//!
//! A rule usually names a user by id while operators write patterns on
//! logins, so a target is checked under every name the current event gives
//! it (the actor's and targets' id and login).

use crate::bindings::{Event, Principal};
use crate::config::Protected;

#[derive(Clone, Debug, Default)]
pub struct ProtectedAccounts {
    /// Lower-cased exact ids or logins.
    ids: Vec<String>,
    /// Lower-cased `*` patterns.
    patterns: Vec<String>,
}

impl ProtectedAccounts {
    pub fn new(config: &Protected) -> Self {
        ProtectedAccounts {
            ids: config.ids.iter().map(|s| s.to_lowercase()).collect(),
            patterns: config.logins.iter().map(|s| s.to_lowercase()).collect(),
        }
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
        self.patterns
            .iter()
            .find(|p| wildcard_match(p, &name))
            .map(|p| format!("protected login pattern {p}"))
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
    use super::wildcard_match;

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

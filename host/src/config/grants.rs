//! The argument parts of a grant: `[[rules]] groups`, `policies` and
//! `app_policies` (which groups `add-to-group`, which policies
//! `activate-policy` and `restore-policy`, and which MFA policies
//! `assign-app-policy` a rule may name) and `[protected] networks`
//! (addresses `block-ip` never blocks).
//!
//! Invariants, checked once at load with errors naming the rule and key:
//! - `add-to-group` is never granted without a non-empty `groups` list: a
//!   rule allowed to add users to *any* group could add them to an admin
//!   group;
//! - `groups` or `policies` set while their action is not in `allow` is
//!   refused (a key that changes nothing is a mistake in a security
//!   setting, most often a typo in `allow`);
//! - `policies` is a non-empty list of ids or the keyword `"from-event"`;
//!   unset, it means `"from-event"` (only a policy the triggering event
//!   names as a target);
//! - `assign-app-policy` is never granted without a non-empty
//!   `app_policies` list: the operator names the MFA policies an
//!   application may be put under (a rule free to pick any policy could put
//!   an app under one that asks for nothing);
//! - every protected network parses as an address or a CIDR, IPv4 or IPv6.
//!
//! The policy gate turns these into its own grant (`policy::arguments`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use anyhow::{Result, bail};
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::RuleConfig;

/// The `policies` key of a rule, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyGrant {
    /// `policies = ["00p1signon", …]`: only these ids.
    Only(Vec<String>),
    /// `policies = "from-event"`: only a policy the triggering event names
    /// as a target.
    FromEvent,
}

/// The keyword of [`PolicyGrant::FromEvent`].
pub const FROM_EVENT: &str = "from-event";

impl<'de> Deserialize<'de> for PolicyGrant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PolicyGrantVisitor;

        impl<'de> Visitor<'de> for PolicyGrantVisitor {
            type Value = PolicyGrant;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a list of policy ids or \"{FROM_EVENT}\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<PolicyGrant, E> {
                if v == FROM_EVENT {
                    Ok(PolicyGrant::FromEvent)
                } else {
                    Err(E::custom(format!(
                        "{v:?} is neither \"{FROM_EVENT}\" nor a list of policy ids"
                    )))
                }
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PolicyGrant, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element::<String>()? {
                    ids.push(id);
                }
                Ok(PolicyGrant::Only(ids))
            }
        }

        deserializer.deserialize_any(PolicyGrantVisitor)
    }
}

/// One entry of `[protected] networks`: an IPv4 or IPv6 network (a bare
/// address is the network of that one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectedNetwork(IpNet);

impl ProtectedNetwork {
    /// The network, host bits cleared (`203.0.113.9/24` is `203.0.113.0/24`).
    pub fn net(&self) -> IpNet {
        self.0
    }

    /// Whether `ip` is in this network, also when one side is written as
    /// IPv4 and the other as an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`),
    /// which identity providers may treat as the same address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let alternate = match ip {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        };
        self.0.contains(&ip) || self.0.contains(&alternate)
    }
}

impl FromStr for ProtectedNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let net = match s.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match s.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => {
                    return Err(format!(
                        "{s:?} is not an IP network: write an address or a CIDR such as \
                         203.0.113.0/24 or 2001:db8::/32"
                    ));
                }
            },
        };
        Ok(ProtectedNetwork(net.trunc()))
    }
}

impl fmt::Display for ProtectedNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for ProtectedNetwork {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// Checks a rule's `groups` and `policies` against its `allow` list; `at`
/// names the rule (`rules[2]`).
pub(super) fn validate_rule_arguments(at: &str, rule: &RuleConfig) -> Result<()> {
    let allows = |kind: &str| rule.allow.iter().any(|a| a == kind);
    match (&rule.groups, allows("add-to-group")) {
        (None, true) => bail!(
            "{at}: add-to-group is granted but {at}.groups is not set; list the group ids it may \
             add users to (groups = [\"00g1mfaremediation\"]): without the list it could add \
             users to any group, an admin group included"
        ),
        (Some(_), false) => bail!(
            "{at}.groups is set but add-to-group is not in {at}.allow; remove the key or grant \
             the action"
        ),
        (Some(groups), true) => {
            if groups.is_empty() {
                bail!(
                    "{at}.groups is empty, so add-to-group could never be used; list the group \
                     ids or remove add-to-group from {at}.allow"
                );
            }
            check_ids(&format!("{at}.groups"), groups)?;
        }
        (None, false) => {}
    }
    let policy_actions = allows("activate-policy") || allows("restore-policy");
    match (&rule.policies, policy_actions) {
        (Some(_), false) => bail!(
            "{at}.policies is set but neither activate-policy nor restore-policy is in \
             {at}.allow; remove the key or grant the action"
        ),
        (Some(PolicyGrant::Only(ids)), true) => {
            if ids.is_empty() {
                bail!(
                    "{at}.policies is empty, so activate-policy and restore-policy could never be \
                     used; list the policy ids, write \"{FROM_EVENT}\", or remove them from \
                     {at}.allow"
                );
            }
            check_ids(&format!("{at}.policies"), ids)?;
        }
        _ => {}
    }
    match (&rule.app_policies, allows("assign-app-policy")) {
        (None, true) => bail!(
            "{at}: assign-app-policy is granted but {at}.app_policies is not set; list the MFA \
             policy ids an application may be put under (app_policies = [\"rst1mfarequired\"]): \
             without the list a rule could put an app under a policy that asks for no MFA"
        ),
        (Some(_), false) => bail!(
            "{at}.app_policies is set but assign-app-policy is not in {at}.allow; remove the key \
             or grant the action"
        ),
        (Some(ids), true) => {
            if ids.is_empty() {
                bail!(
                    "{at}.app_policies is empty, so assign-app-policy could never be used; list \
                     the policy ids or remove assign-app-policy from {at}.allow"
                );
            }
            check_ids(&format!("{at}.app_policies"), ids)?;
        }
        (None, false) => {}
    }
    Ok(())
}

/// Ids in an argument list: not empty, no whitespace (they are compared
/// exactly with what a rule asks for).
fn check_ids(at: &str, ids: &[String]) -> Result<()> {
    for (i, id) in ids.iter().enumerate() {
        if id.is_empty() {
            bail!("{at}[{i}] is empty");
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!("{at}[{i}]: {id:?} contains whitespace; ids are compared exactly");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text).unwrap_err())
    }

    #[test]
    fn add_to_group_without_groups_is_refused_naming_rule_and_key() {
        let msg = err(
            "[[rules]]\nbuiltin = \"a\"\n[[rules]]\nbuiltin = \"b\"\nallow = [\"add-to-group\"]\n",
        );
        assert!(
            msg.starts_with("rules[1]: add-to-group is granted but rules[1].groups is not set"),
            "{msg}"
        );
    }

    #[test]
    fn an_empty_or_unused_list_is_refused() {
        let msg = err("[[rules]]\nbuiltin = \"a\"\nallow = [\"add-to-group\"]\ngroups = []\n");
        assert!(msg.contains("rules[0].groups is empty"), "{msg}");
        let msg = err("[[rules]]\nbuiltin = \"a\"\ngroups = [\"00g1\"]\n");
        assert!(
            msg.contains("rules[0].groups is set but add-to-group is not in rules[0].allow"),
            "{msg}"
        );
        let msg = err("[[rules]]\nbuiltin = \"a\"\npolicies = \"from-event\"\n");
        assert!(msg.contains("rules[0].policies is set but"), "{msg}");
        let msg = err("[[rules]]\nbuiltin = \"a\"\nallow = [\"activate-policy\"]\npolicies = []\n");
        assert!(msg.contains("rules[0].policies is empty"), "{msg}");
        let msg =
            err("[[rules]]\nbuiltin = \"a\"\nallow = [\"add-to-group\"]\ngroups = [\"00g 1\"]\n");
        assert!(msg.contains("rules[0].groups[0]"), "{msg}");
    }

    #[test]
    fn policies_take_a_list_or_from_event_only() {
        let c = Config::parse(
            "[[rules]]\nbuiltin = \"a\"\nallow = [\"activate-policy\"]\npolicies = [\"00p1\"]\n\
             [[rules]]\nbuiltin = \"b\"\nallow = [\"activate-policy\"]\npolicies = \"from-event\"\n\
             [[rules]]\nbuiltin = \"c\"\nallow = [\"activate-policy\"]\n",
        )
        .unwrap();
        assert_eq!(
            c.rules[0].policies,
            Some(PolicyGrant::Only(vec!["00p1".into()]))
        );
        assert_eq!(c.rules[1].policies, Some(PolicyGrant::FromEvent));
        assert_eq!(c.rules[2].policies, None, "unset means from-event");
        let msg =
            err("[[rules]]\nbuiltin = \"a\"\nallow = [\"activate-policy\"]\npolicies = \"any\"\n");
        assert!(
            msg.contains("\"any\" is neither \"from-event\" nor a list of policy ids")
                && msg.contains("line 4"),
            "{msg}"
        );
        let msg = err("[[rules]]\nbuiltin = \"a\"\nallow = [\"activate-policy\"]\npolicies = 7\n");
        assert!(msg.contains("a list of policy ids"), "{msg}");
    }

    #[test]
    fn networks_parse_as_cidrs_or_addresses() {
        let c = Config::parse(
            "[protected]\nnetworks = [\"203.0.113.9/24\", \"10.0.0.1\", \"2001:db8::/32\", \"::1\"]\n",
        )
        .unwrap();
        let nets: Vec<String> = c.protected.networks.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            nets,
            ["203.0.113.0/24", "10.0.0.1/32", "2001:db8::/32", "::1/128"]
        );
        let msg = err("[protected]\nnetworks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n");
        assert!(
            msg.contains("\"10.0.0.0/33\" is not an IP network") && msg.contains("networks"),
            "{msg}"
        );
        let msg = err("[protected]\nnetworks = [\"egress.example.com\"]\n");
        assert!(msg.contains("is not an IP network"), "{msg}");
    }

    #[test]
    fn networks_match_mapped_addresses_both_ways() {
        let v4: ProtectedNetwork = "203.0.113.0/24".parse().unwrap();
        assert!(v4.contains("203.0.113.77".parse().unwrap()));
        assert!(v4.contains("::ffff:203.0.113.77".parse().unwrap()));
        assert!(!v4.contains("203.0.114.1".parse().unwrap()));
        assert!(!v4.contains("2001:db8::1".parse().unwrap()));
        let mapped: ProtectedNetwork = "::ffff:198.51.100.0/120".parse().unwrap();
        assert!(mapped.contains("198.51.100.5".parse().unwrap()));
        let v6: ProtectedNetwork = "2001:db8:1::/48".parse().unwrap();
        assert!(v6.contains("2001:DB8:1:ffff::9".parse().unwrap()));
        assert!(!v6.contains("2001:db8:2::1".parse().unwrap()));
    }
}

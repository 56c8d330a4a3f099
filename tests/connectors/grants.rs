//! Per-argument grants through the real `vigil` binary: a rule granted
//! `add-to-group` only for its `groups`, `activate-policy` only for a
//! policy the event names (`policies = "from-event"`, the default) or its
//! list, and `block-ip` never on a `[protected] networks` address (IPv4,
//! IPv6 and IPv4-mapped). The hostile guest `guest-requester` asks for the
//! forbidden argument next to an allowed one: the forbidden one is denied
//! with a message naming the argument and the key, and never sent.

use serde_json::{Value, json};
use vigil_test_support::fake_idp::{FakeIdp, OKTA_BLOCKLIST_ZONE};
use vigil_test_support::*;

use crate::resolution::{
    cache_home, config, host_escalations, mutating, okta_event, run, workdir, write,
};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// `(target, decision, message)` of the `action` records the rule made.
fn decisions(wd: &Workdir) -> Vec<(String, String, String)> {
    wd.records_of("action")
        .into_iter()
        .filter(|r| r["origin"] != "host")
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("target"), s("decision"), s("message"))
        })
        .collect()
}

fn paths(fake: &FakeIdp) -> Vec<(String, String)> {
    mutating(fake)
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect()
}

#[test]
fn add_to_group_names_only_the_granted_groups() {
    for (group, allowed) in [("00gadmins", false), ("00g1mfaremediation", true)] {
        let fake = FakeIdp::start();
        let wd = workdir();
        let body = config(
            &fake,
            "",
            r#"allow = ["add-to-group"]
groups = ["00g1mfaremediation"]"#,
            &format!(r#"action = "add-to-group", group = "{group}", targets = "00unew1""#),
            "",
        );
        run(&wd, &body, &okta_event(&wd));
        let d = decisions(&wd);
        if allowed {
            assert_eq!(d[0].1, "accepted", "{d:?}");
            assert_eq!(
                paths(&fake),
                [(
                    "PUT".to_owned(),
                    "/api/v1/groups/00g1mfaremediation/users/00unew1".to_owned()
                )]
            );
        } else {
            assert_eq!(
                d,
                [(
                    "00unew1".to_owned(),
                    "denied".to_owned(),
                    "group 00gadmins is not in rules[0].groups".to_owned()
                )]
            );
            let record = wd.records_of("action").pop().unwrap();
            assert_eq!(record["reason"], "not-granted");
            assert_eq!(record["params"]["group"], "00gadmins");
            assert!(fake.requests_matching("*", "/api/v1/").is_empty());
        }
    }
}

#[test]
fn activate_policy_follows_the_event_or_the_list() {
    let fake = FakeIdp::start();
    let wd = workdir();
    let deactivated = write(
        &wd,
        "policy.jsonl",
        &[json!({
            "uuid": "evt-pol-1",
            "published": "2026-03-07T10:00:00.000Z",
            "eventType": "policy.lifecycle.deactivate",
            "actor": {"id": "00umallory", "type": "User", "alternateId": "mallory@corp.example"},
            "outcome": {"result": "SUCCESS"},
            "target": [{"id": "00pweakened", "type": "PolicyEntity", "displayName": "MFA for all"}],
        })],
    );
    // The default (`from-event`): the policy the event names, not another.
    let body = config(
        &fake,
        "",
        r#"allow = ["activate-policy"]"#,
        r#"action = "activate-policy", targets = "00pweakened, 00pdenyall""#,
        "",
    );
    run(&wd, &body, &deactivated);
    let d = decisions(&wd);
    assert_eq!(d[0].1, "accepted");
    assert_eq!(d[1].1, "denied");
    assert!(
        d[1].2
            .starts_with("policy 00pdenyall is not a target of event evt-pol-1")
            && d[1].2.contains("rules[0].policies is \"from-event\""),
        "{d:?}"
    );
    assert_eq!(
        paths(&fake),
        [(
            "POST".to_owned(),
            "/api/v1/policies/00pweakened/lifecycle/activate".to_owned()
        )]
    );

    // A list: only its ids, whatever the event names.
    let fake = FakeIdp::start();
    let wd = workdir();
    let deactivated = write(&wd, "policy.jsonl", &[deactivated_event()]);
    let body = config(
        &fake,
        "",
        r#"allow = ["activate-policy"]
policies = ["00psignon"]"#,
        r#"action = "activate-policy", targets = "00pweakened, 00psignon""#,
        "",
    );
    run(&wd, &body, &deactivated);
    let d = decisions(&wd);
    assert_eq!(
        (d[0].1.as_str(), d[0].2.as_str()),
        ("denied", "policy 00pweakened is not in rules[0].policies")
    );
    assert_eq!(d[1].1, "accepted");
    assert_eq!(
        paths(&fake),
        [(
            "POST".to_owned(),
            "/api/v1/policies/00psignon/lifecycle/activate".to_owned()
        )]
    );
}

fn deactivated_event() -> Value {
    json!({
        "uuid": "evt-pol-2",
        "published": "2026-03-07T10:00:00.000Z",
        "eventType": "policy.lifecycle.deactivate",
        "actor": {"id": "00umallory", "type": "User"},
        "outcome": {"result": "SUCCESS"},
        "target": [{"id": "00pweakened", "type": "PolicyEntity"}],
    })
}

#[test]
fn block_ip_never_blocks_a_protected_network() {
    let fake = FakeIdp::start();
    let wd = workdir();
    let body = config(
        &fake,
        r#"networks = ["203.0.113.0/24", "2001:db8:e::/48", "10.0.0.0/8"]"#,
        r#"allow = ["block-ip"]"#,
        r#"action = "block-ip", targets = "203.0.113.45, ::ffff:203.0.113.46, 2001:db8:e::1, 10.1.2.3, 198.51.100.9""#,
        "",
    );
    run(&wd, &body, &okta_event(&wd));
    let d = decisions(&wd);
    let denied: Vec<&str> = d
        .iter()
        .filter(|x| x.1 == "denied")
        .map(|x| x.0.as_str())
        .collect();
    assert_eq!(
        denied,
        [
            "203.0.113.45",
            "::ffff:203.0.113.46",
            "2001:db8:e::1",
            "10.1.2.3"
        ]
    );
    assert!(d[0].2.contains("protected network 203.0.113.0/24"), "{d:?}");
    // Only the address outside every protected network reached the zone.
    assert_eq!(
        fake.okta_zone_gateways(OKTA_BLOCKLIST_ZONE),
        ["198.51.100.9/32"]
    );
    assert_eq!(paths(&fake).len(), 1, "{:?}", paths(&fake));
    // Aiming at the company's own egress is an attack worth a look.
    assert_eq!(host_escalations(&wd).len(), 4);
    assert!(
        host_escalations(&wd)[0]["params"]["summary"]
            .as_str()
            .unwrap()
            .contains("protected network address 203.0.113.45"),
        "{:?}",
        host_escalations(&wd)[0]
    );
}

#[test]
fn add_to_group_without_groups_stops_the_start() {
    let fake = FakeIdp::start();
    let wd = workdir();
    let body = config(
        &fake,
        "",
        r#"allow = ["add-to-group"]"#,
        r#"action = "add-to-group", group = "00gadmins", targets = "00u1""#,
        "",
    );
    let out = wd.run(VIGIL, &body, &okta_event(&wd), &cache_home());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("rules[0]: add-to-group is granted but rules[0].groups is not set"),
        "{err}"
    );
    assert!(fake.requests().is_empty());
    assert!(!wd.audit_path().exists() || wd.audit_records().is_empty());
}

// restore-policy follows `policies` like activate-policy; assign-app-policy
// may move only the application the event names, and only under a policy
// in `app_policies`. Nothing is written for a denied request.
#[test]
fn restore_and_assign_name_only_granted_policies_and_the_events_app() {
    let fake = FakeIdp::start();
    let wd = workdir();
    let edited = write(
        &wd,
        "policy.jsonl",
        &[json!({
            "uuid": "evt-pol-9",
            "published": "2026-03-07T10:00:00.000Z",
            "eventType": "policy.rule.update",
            "actor": {"id": "00umallory", "type": "User"},
            "outcome": {"result": "SUCCESS"},
            "target": [{"id": "00pweakened", "type": "PolicyEntity"}],
        })],
    );
    let body = config(
        &fake,
        "",
        r#"allow = ["restore-policy"]
approval = []"#,
        r#"action = "restore-policy", targets = "00pweakened, 00pother""#,
        "",
    );
    run(&wd, &body, &edited);
    let d = decisions(&wd);
    assert_eq!(d[0].1, "accepted", "{d:?}");
    assert_eq!(d[1].1, "denied");
    assert!(
        d[1].2
            .starts_with("policy 00pother is not a target of event evt-pol-9"),
        "{d:?}"
    );
    // Accepted, but there is no approved baseline: nothing written.
    assert!(paths(&fake).is_empty(), "{:?}", paths(&fake));

    let fake = FakeIdp::start();
    let wd = workdir();
    let app_event = write(&wd, "app.jsonl", &[app_event_value()]);
    let body = config(
        &fake,
        "",
        r#"allow = ["assign-app-policy"]
app_policies = ["rstmfa"]"#,
        r#"action = "assign-app-policy", policy = "rstnomfa", targets = "0oanew""#,
        "",
    );
    run(&wd, &body, &app_event);
    let d = decisions(&wd);
    assert_eq!(
        (d[0].1.as_str(), d[0].2.as_str()),
        ("denied", "policy rstnomfa is not in rules[0].app_policies")
    );
    let body = config(
        &fake,
        "",
        r#"allow = ["assign-app-policy"]
app_policies = ["rstmfa"]"#,
        r#"action = "assign-app-policy", policy = "rstmfa", targets = "0oaother""#,
        "",
    );
    let wd = workdir();
    let app_event = write(&wd, "app.jsonl", &[app_event_value()]);
    run(&wd, &body, &app_event);
    let d = decisions(&wd);
    assert_eq!(d[0].1, "denied");
    assert!(
        d[0].2
            .starts_with("application 0oaother is not a target of event evt-app-9"),
        "{d:?}"
    );
    assert!(paths(&fake).is_empty(), "{:?}", paths(&fake));
}

fn app_event_value() -> Value {
    json!({
        "uuid": "evt-app-9",
        "published": "2026-03-07T10:00:00.000Z",
        "eventType": "application.lifecycle.create",
        "actor": {"id": "00umallory", "type": "User"},
        "outcome": {"result": "SUCCESS"},
        "target": [{"id": "0oanew", "type": "AppInstance", "displayName": "New app"}],
    })
}

#[test]
fn assign_app_policy_without_app_policies_stops_the_start() {
    let wd = workdir();
    let config = wd.config(
        "builtin_pack = false\n[[rules]]\nbuiltin = \"mfa-policy-guard\"\nallow = [\"assign-app-policy\"]\n",
    );
    let out = vigil(
        VIGIL,
        &["rules", "list", "--config", config.to_str().unwrap()],
        wd.path(),
        &cache_home(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("rules[0]: assign-app-policy is granted but rules[0].app_policies is not set"),
        "{err}"
    );
}

//! The MFA baseline end to end, with the `vigil` binary against the fake
//! identity provider: capture several policies, approve, weaken one (an
//! event plus a changed API answer), the host's finding with the right
//! diff, mfa-policy-guard's `restore-policy` parked for approval (nothing
//! written), the approval, the exact writes, the re-read that confirms, the
//! on-demand undo — every step in the audit log, and the chain intact.
//! And applications: one an event names that can be signed in to without
//! MFA is found by the host and moved under the operator's MFA policy;
//! one already covered, or a policy that would not cover it, is left
//! alone.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use vigil_test_support::fake_idp::{FakeIdp, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET, OKTA_TOKEN};
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

fn cache_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("connectors-e2e-cache")
}

/// `vigil ARGS… --config vigil.toml` in `wd`.
fn cli(wd: &Workdir, args: &[&str]) -> Output {
    let config = wd.path().join("vigil.toml");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    vigil(VIGIL, &all, wd.path(), &cache_home())
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn run_events(wd: &Workdir, lines: &[String]) -> Output {
    let events = wd.path().join("events.jsonl");
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let config = wd.path().join("vigil.toml");
    vigil(
        VIGIL,
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ],
        wd.path(),
        &cache_home(),
    )
}

fn sign_on_rule(require_factor: bool) -> Value {
    json!({
        "id": "0prCatchAll", "status": "ACTIVE", "name": "Catch-all Rule", "priority": 1,
        "system": false, "type": "SIGN_ON",
        "conditions": {"people": {"users": {"exclude": []}}, "network": {"connection": "ANYWHERE"}},
        "actions": {"signon": {"access": "ALLOW", "requireFactor": require_factor,
                               "factorPromptMode": "ALWAYS", "rememberDeviceByDefault": false}}
    })
}

/// An Okta org with a sign-on policy, an MFA enrollment policy, an
/// authentication policy and two authenticators.
fn okta_org(fake: &FakeIdp) {
    fake.set_okta_policy(json!({
        "id": "00pSignOn", "status": "ACTIVE", "name": "Default Policy", "type": "OKTA_SIGN_ON",
        "priority": 1, "system": true,
        "conditions": {"people": {"groups": {"include": ["00gEveryone"]}}}
    }));
    fake.set_okta_policy_rules("00pSignOn", vec![sign_on_rule(true)]);
    fake.set_okta_policy(json!({
        "id": "00pEnroll", "status": "ACTIVE", "name": "MFA Enrollment", "type": "MFA_ENROLL",
        "priority": 1, "system": false,
        "settings": {"type": "AUTHENTICATORS",
                     "authenticators": [{"key": "okta_verify", "enroll": {"self": "REQUIRED"}}]}
    }));
    fake.set_okta_policy_rules(
        "00pEnroll",
        vec![
            json!({"id": "0prEnroll", "status": "ACTIVE", "name": "Enroll everyone",
                    "type": "MFA_ENROLL", "actions": {"enroll": {"self": "LOGIN"}}}),
        ],
    );
    fake.set_okta_policy(json!({
        "id": "rstSalesforce", "status": "ACTIVE", "name": "Salesforce", "type": "ACCESS_POLICY",
        "priority": 1, "system": false
    }));
    fake.set_okta_policy_rules(
        "rstSalesforce",
        vec![
            json!({"id": "0prSf", "status": "ACTIVE", "name": "MFA always", "type": "ACCESS_POLICY",
                    "actions": {"appSignOn": {"access": "ALLOW",
                        "verificationMethod": {"factorMode": "2FA", "type": "ASSURANCE",
                                               "reauthenticateIn": "PT2H"}}}}),
        ],
    );
    fake.set_okta_authenticators(vec![
        json!({"id": "autOV", "key": "okta_verify", "status": "ACTIVE", "name": "Okta Verify", "type": "app"}),
        json!({"id": "autPhone", "key": "phone_number", "status": "INACTIVE", "name": "Phone", "type": "phone"}),
    ]);
}

fn okta_config(fake: &FakeIdp) -> String {
    format!(
        r#"mode = "enforce"
state_path = "state.db"
builtin_pack = false
[[rules]]
builtin = "mfa-policy-guard"
allow = ["restore-policy", "activate-policy"]
[baseline]
check_secs = 0
[connectors.http]
backoff_initial_ms = 20
backoff_max_ms = 100
timeout_ms = 2000
[connectors.okta]
base_url = "{okta}"
token_file = "okta-token"
"#,
        okta = fake.base_url(),
    )
}

/// Okta's System Log record of a sign-on rule edit.
fn rule_update_event(uuid: &str) -> String {
    json!({
        "uuid": uuid, "published": "2026-04-06T09:02:11.400Z", "eventType": "policy.rule.update",
        "displayMessage": "Update policy rule", "severity": "INFO",
        "actor": {"id": "00uMallory", "type": "User", "alternateId": "mallory.admin@example.com",
                  "displayName": "Mallory Admin"},
        "client": {"ipAddress": "198.51.100.60"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": [
            {"id": "0prCatchAll", "type": "PolicyRule", "alternateId": "unknown",
             "displayName": "Catch-all Rule", "detailEntry": {"policyType": "OKTA_SIGN_ON"}},
            {"id": "00pSignOn", "type": "PolicyEntity", "alternateId": "unknown",
             "displayName": "Default Policy", "detailEntry": {"policyType": "OKTA_SIGN_ON"}}
        ]
    })
    .to_string()
}

fn the_one<'a>(records: &'a [Value], kind: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let found: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == kind && pred(r))
        .collect();
    assert_eq!(found.len(), 1, "{kind} records: {found:#?}");
    found[0]
}

#[test]
fn okta_weakened_policy_is_found_restored_after_approval_and_undone() {
    let fake = FakeIdp::start();
    okta_org(&fake);
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
    wd.config(&okta_config(&fake));

    // Capture and approve: three policies with their rules, two
    // authenticators.
    let out = ok(&cli(&wd, &["baseline", "capture", "--by", "alice"]));
    assert!(
        out.contains("captured okta baseline version 1: 5 objects"),
        "{out}"
    );
    let out = ok(&cli(
        &wd,
        &["baseline", "approve", "--version", "1", "--by", "alice"],
    ));
    assert!(out.contains("approved okta baseline version 1"), "{out}");
    let out = ok(&cli(&wd, &["baseline", "diff"]));
    assert!(out.contains("0 changes, 0 weaken MFA"), "{out}");
    let listed = ok(&cli(&wd, &["baseline", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("1\tokta\t") && l.contains("known-good")),
        "{listed}"
    );
    let known_good: Value =
        serde_json::from_slice(&cli(&wd, &["baseline", "export"]).stdout).unwrap();
    assert_eq!(known_good[0]["version"], 1, "{known_good:#}");
    assert_eq!(known_good[0]["approved"]["by"], "alice");
    let exported: Value =
        serde_json::from_slice(&cli(&wd, &["baseline", "export", "--version", "1"]).stdout)
            .unwrap();
    let objects = exported["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 5);
    let sign_on = objects.iter().find(|o| o["id"] == "00pSignOn").unwrap();
    assert_eq!(
        sign_on["rules"][0]["body"]["actions"]["signon"]["requireFactor"],
        true
    );
    assert!(
        sign_on["body"].get("_links").is_none(),
        "volatile fields are not kept"
    );

    // The attack: the catch-all rule no longer requires MFA.
    fake.set_okta_policy_rules("00pSignOn", vec![sign_on_rule(false)]);
    let diff = cli(&wd, &["baseline", "diff"]);
    assert_eq!(diff.status.code(), Some(1), "a weakening fails the diff");
    let said = text(&diff.stdout);
    assert!(
        said.contains(
            "[weakens] policy 'Default Policy' rule 'Catch-all Rule' no longer requires MFA"
        ),
        "{said}"
    );

    // The event: the rule asks to restore, parked for approval by default;
    // the host's watch reports the weakening with the diff.
    fake.clear_requests();
    let out = run_events(&wd, &[rule_update_event("evt-rule-update-1")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = wd.audit_records();
    let request = the_one(&records, "action", |r| r["action"] == "restore-policy");
    assert_eq!(request["target"], "00pSignOn");
    assert_eq!(request["decision"], "pending");
    let host = the_one(&records, "finding", |r| r["rule"] == "vigil.baseline");
    assert_eq!(host["event_id"], "evt-rule-update-1");
    assert_eq!(host["subject"], "00pSignOn");
    assert_eq!(
        host["details"]["change_1"],
        "policy 'Default Policy' rule 'Catch-all Rule' no longer requires MFA"
    );
    assert_eq!(host["details"]["baseline_version"], "1");
    assert!(
        fake.requests_matching("PUT", "/").is_empty()
            && fake.requests_matching("POST", "/").is_empty(),
        "nothing is written without approval"
    );

    // The approval: the exact PUT of the approved rule, then the re-read.
    let id = request["action_id"].as_str().unwrap().to_owned();
    fake.clear_requests();
    let out = ok(&cli(&wd, &["approvals", "approve", &id, "--by", "bob"]));
    assert!(out.contains("executed"), "{out}");
    let puts = fake.requests_matching("PUT", "/api/v1/");
    assert_eq!(puts.len(), 1, "{puts:#?}");
    assert_eq!(puts[0].path, "/api/v1/policies/00pSignOn/rules/0prCatchAll");
    let sent: Value = serde_json::from_str(&puts[0].body).unwrap();
    let approved_rule = &sign_on["rules"][0]["body"];
    assert_eq!(&sent, approved_rule, "the approved rule, whole");
    let all = fake.requests_matching("*", "/api/v1/");
    let put_at = all.iter().position(|r| r.method == "PUT").unwrap();
    assert!(
        all[put_at + 1..]
            .iter()
            .any(|r| r.method == "GET" && r.path == "/api/v1/policies/00pSignOn/rules"),
        "re-read after the write: {all:#?}"
    );
    assert_eq!(
        fake.okta_policy_rule("00pSignOn", "0prCatchAll").unwrap()["actions"]["signon"]["requireFactor"],
        true
    );
    let records = wd.audit_records();
    let result = the_one(&records, "action-result", |r| {
        r["action"] == "restore-policy"
    });
    assert_eq!(result["decision"], "executed", "{result:#}");
    assert_eq!(result["diff"]["confirmed"], true);
    assert_eq!(result["diff"]["baseline_version"], 1);
    assert_eq!(
        result["diff"]["reverted"][0]["summary"],
        "policy 'Default Policy' rule 'Catch-all Rule' no longer requires MFA"
    );
    assert_eq!(result["undo_due"], "on-demand");
    let approval = the_one(&records, "approval", |r| r["action_id"] == id.as_str());
    assert_eq!(approval["by"], "bob");
    let out = ok(&cli(&wd, &["baseline", "diff"]));
    assert!(out.contains("0 changes, 0 weaken MFA"), "{out}");

    // Undo: the policy goes back to how it was before the restore.
    let listed = ok(&cli(&wd, &["actions", "list"]));
    assert!(listed.contains("restore-policy\t00pSignOn"), "{listed}");
    assert!(listed.contains("on demand"), "{listed}");
    let undo_id = result["undo_id"].as_i64().unwrap().to_string();
    fake.clear_requests();
    let out = ok(&cli(&wd, &["actions", "undo", &undo_id, "--by", "carol"]));
    assert!(
        out.contains("executed unrestore-policy on 00pSignOn"),
        "{out}"
    );
    let puts = fake.requests_matching("PUT", "/api/v1/");
    assert_eq!(puts.len(), 1, "{puts:#?}");
    assert_eq!(
        fake.okta_policy_rule("00pSignOn", "0prCatchAll").unwrap()["actions"]["signon"]["requireFactor"],
        false
    );
    let records = wd.audit_records();
    let undo = the_one(&records, "action-undo", |_| true);
    assert_eq!(undo["decision"], "executed");
    assert_eq!(undo["by"], "carol");

    // Every step is on the record, in one intact chain.
    let kinds: Vec<&str> = records.iter().filter_map(|r| r["type"].as_str()).collect();
    for kind in [
        "baseline-captured",
        "baseline-approved",
        "finding",
        "action",
        "approval",
        "action-result",
        "action-undo",
    ] {
        assert!(kinds.contains(&kind), "no {kind} record: {kinds:?}");
    }
    let approved = the_one(&records, "baseline-approved", |_| true);
    assert_eq!(approved["by"], "alice");
    assert_eq!(approved["version"], 1);
    let verify = vigil(
        VIGIL,
        &["audit", "verify", wd.audit_path().to_str().unwrap()],
        wd.path(),
        &cache_home(),
    );
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}

#[test]
fn a_restore_without_an_approved_baseline_fails_and_writes_nothing() {
    let fake = FakeIdp::start();
    okta_org(&fake);
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
    // Restores run at once here (the operator emptied the approval list).
    wd.config(&okta_config(&fake).replace(
        "allow = [\"restore-policy\", \"activate-policy\"]",
        "allow = [\"restore-policy\", \"activate-policy\"]\napproval = []",
    ));
    ok(&cli(&wd, &["baseline", "capture"]));
    fake.set_okta_policy_rules("00pSignOn", vec![sign_on_rule(false)]);
    fake.clear_requests();
    let out = run_events(&wd, &[rule_update_event("evt-rule-update-2")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = wd.audit_records();
    let request = the_one(&records, "action", |r| r["action"] == "restore-policy");
    assert_eq!(request["decision"], "accepted");
    let result = the_one(&records, "action-result", |r| {
        r["action"] == "restore-policy"
    });
    assert_eq!(result["decision"], "failed");
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .contains("no approved okta baseline holds policy 00pSignOn"),
        "{result:#}"
    );
    assert!(fake.requests_matching("PUT", "/").is_empty());
    // No approved baseline: the watch has nothing to compare with.
    assert!(
        records.iter().all(|r| r["rule"] != "vigil.baseline"),
        "{records:#?}"
    );
}

fn ca_policy(controls: &[&str], exclude_groups: &[&str]) -> Value {
    json!({
        "id": "ca-mfa-all", "displayName": "Require MFA for everyone", "state": "enabled",
        "createdDateTime": "2026-01-01T00:00:00Z", "modifiedDateTime": "2026-01-01T00:00:00Z",
        "conditions": {
            "users": {"includeUsers": ["All"], "excludeUsers": [], "includeGroups": [],
                      "excludeGroups": exclude_groups, "includeRoles": [], "excludeRoles": []},
            "applications": {"includeApplications": ["All"], "excludeApplications": []},
            "clientAppTypes": ["all"]
        },
        "grantControls": {"operator": "OR", "builtInControls": controls,
                          "authenticationStrength": null},
        "sessionControls": null
    })
}

#[test]
fn entra_weakened_ca_policy_is_restored_with_one_patch() {
    let fake = FakeIdp::start();
    fake.set_graph_ca_policy(ca_policy(&["mfa"], &[]));
    let wd = Workdir::new();
    wd.config(&format!(
        r#"mode = "enforce"
state_path = "state.db"
builtin_pack = false
[[rules]]
builtin = "mfa-policy-guard"
allow = ["restore-policy"]
[baseline]
check_secs = 0
[connectors.graph]
client_id = "{GRAPH_CLIENT_ID}"
client_secret_env = "TEST_GRAPH_SECRET"
token_url = "{token}"
base_url = "{graph}"
"#,
        token = fake.token_url(),
        graph = fake.graph_url(),
    ));
    let cli = |args: &[&str]| {
        let config = wd.path().join("vigil.toml");
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", config.to_str().unwrap()]);
        std::process::Command::new(VIGIL)
            .args(&all)
            .current_dir(wd.path())
            .env("XDG_CACHE_HOME", cache_home())
            .env("TEST_GRAPH_SECRET", GRAPH_CLIENT_SECRET)
            .output()
            .unwrap()
    };
    let out = ok(&cli(&["baseline", "capture", "--approve", "--by", "alice"]));
    // The CA policy and the authentication methods policy.
    assert!(
        out.contains("captured graph baseline version 1: 2 objects"),
        "{out}"
    );
    assert!(out.contains("approved graph baseline version 1"), "{out}");

    // The attack: MFA dropped, a group excluded.
    fake.set_graph_ca_policy(ca_policy(&["compliantDevice"], &["grp-contractors"]));
    let said = text(&cli(&["baseline", "diff"]).stdout);
    assert!(
        said.contains(
            "[weakens] conditional access policy 'Require MFA for everyone' no longer requires MFA"
        ),
        "{said}"
    );
    assert!(said.contains("grp-contractors"), "{said}");

    let event = json!({
        "id": "entra-ca-update-1", "category": "Policy", "result": "success",
        "activityDisplayName": "Update conditional access policy",
        "activityDateTime": "2026-04-13T08:00:00.0000000Z", "loggedByService": "Conditional Access",
        "operationType": "Update",
        "initiatedBy": {"user": {"id": "u-rogue", "userPrincipalName": "rogue.admin@example.com",
                                 "ipAddress": "203.0.113.88"}},
        "targetResources": [{"id": "ca-mfa-all", "displayName": "Require MFA for everyone",
                             "type": "Policy", "modifiedProperties": []}]
    })
    .to_string();
    let events = wd.path().join("events.jsonl");
    std::fs::write(&events, event + "\n").unwrap();
    fake.clear_requests();
    let out = cli(&["run", "--events", events.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = wd.audit_records();
    let request = the_one(&records, "action", |r| r["action"] == "restore-policy");
    assert_eq!(request["decision"], "pending");
    let host = the_one(&records, "finding", |r| r["rule"] == "vigil.baseline");
    assert_eq!(host["subject"], "ca-mfa-all");
    assert!(fake.requests_matching("PATCH", "/").is_empty());

    let id = request["action_id"].as_str().unwrap().to_owned();
    fake.clear_requests();
    let out = ok(&cli(&["approvals", "approve", &id, "--by", "bob"]));
    assert!(out.contains("executed"), "{out}");
    let patches = fake.requests_matching("PATCH", "/v1.0/");
    assert_eq!(patches.len(), 1, "{patches:#?}");
    assert_eq!(
        patches[0].path,
        "/v1.0/identity/conditionalAccess/policies/ca-mfa-all"
    );
    let sent: Value = serde_json::from_str(&patches[0].body).unwrap();
    let approved = ca_policy(&["mfa"], &[]);
    assert_eq!(
        sent,
        json!({
            "conditions": approved["conditions"],
            "grantControls": approved["grantControls"],
        }),
        "only what differs"
    );
    let now = fake.graph_ca_policy("ca-mfa-all").unwrap();
    assert_eq!(now["grantControls"]["builtInControls"], json!(["mfa"]));
    let records = wd.audit_records();
    let result = the_one(&records, "action-result", |r| {
        r["action"] == "restore-policy"
    });
    assert_eq!(result["decision"], "executed", "{result:#}");
    assert_eq!(result["diff"]["confirmed"], true);
}

fn access_policy(id: &str, name: &str) -> Value {
    json!({"id": id, "status": "ACTIVE", "name": name, "type": "ACCESS_POLICY",
           "priority": 1, "system": false})
}

fn access_rule(factor_mode: &str) -> Value {
    json!({"id": format!("0pr{factor_mode}"), "status": "ACTIVE", "name": format!("{factor_mode} for everyone"),
           "type": "ACCESS_POLICY",
           "actions": {"appSignOn": {"access": "ALLOW",
                                     "verificationMethod": {"factorMode": factor_mode, "type": "ASSURANCE"}}}})
}

fn app_event(uuid: &str, app: &str, name: &str) -> String {
    json!({
        "uuid": uuid, "published": "2026-04-06T10:00:00.000Z",
        "eventType": "application.lifecycle.create", "displayMessage": "Add application",
        "actor": {"id": "00uMallory", "type": "User", "alternateId": "mallory.admin@example.com"},
        "outcome": {"result": "SUCCESS"},
        "target": [{"id": app, "type": "AppInstance", "alternateId": name, "displayName": name}]
    })
    .to_string()
}

#[test]
fn an_okta_app_without_mfa_is_found_and_moved_under_the_mfa_policy() {
    let fake = FakeIdp::start();
    fake.set_okta_policy(access_policy("rstPassword", "Password only"));
    fake.set_okta_policy_rules("rstPassword", vec![access_rule("1FA")]);
    fake.set_okta_policy(access_policy("rstMfa", "MFA required"));
    fake.set_okta_policy_rules("rstMfa", vec![access_rule("2FA")]);
    fake.set_okta_app(
        json!({"id": "0oaPayroll", "label": "Payroll", "name": "payroll", "status": "ACTIVE"}),
        Some("rstPassword"),
    );
    fake.set_okta_app(
        json!({"id": "0oaWiki", "label": "Wiki", "name": "wiki", "status": "ACTIVE"}),
        Some("rstMfa"),
    );
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
    // Two shards: the rule edit before the app events waits in a batch
    // when the first app event comes in; its finding must still come first.
    let body = okta_config(&fake).replace(
        "allow = [\"restore-policy\", \"activate-policy\"]",
        "allow = [\"assign-app-policy\"]\napp_policies = [\"rstMfa\"]\n\
         config = { app_mfa_policy = \"rstMfa\" }",
    );
    wd.config(&format!("shards = 2\n{body}"));
    let out = run_events(
        &wd,
        &[
            rule_update_event("evt-before-apps"),
            app_event("evt-app-1", "0oaPayroll", "Payroll"),
            app_event("evt-app-2", "0oaWiki", "Wiki"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = wd.audit_records();
    let at = |pred: &dyn Fn(&Value) -> bool| records.iter().position(pred).unwrap();
    assert!(
        at(&|r| r["type"] == "finding" && r["event_id"] == "evt-before-apps")
            < at(&|r| r["rule"] == "vigil.app-mfa"),
        "the log keeps arrival order: {records:#?}"
    );

    // The host's check: Payroll can be signed in to with a password only;
    // the wiki is covered.
    let found = the_one(&records, "finding", |r| r["rule"] == "vigil.app-mfa");
    assert_eq!(found["subject"], "0oaPayroll");
    assert_eq!(found["event_id"], "evt-app-1");
    assert_eq!(found["details"]["policy"], "Password only (rstPassword)");
    assert!(
        found["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("lets users in without a second factor (rule '1FA for everyone')"),
        "{found:#}"
    );

    // The rule's request, executed only where it closes a gap.
    let results: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "action-result" && r["action"] == "assign-app-policy")
        .collect();
    assert_eq!(results.len(), 2, "{results:#?}");
    let payroll = results
        .iter()
        .find(|r| r["target"] == "0oaPayroll")
        .unwrap();
    assert_eq!(payroll["decision"], "executed");
    assert_eq!(payroll["diff"]["confirmed"], true);
    let wiki = results.iter().find(|r| r["target"] == "0oaWiki").unwrap();
    assert_eq!(wiki["decision"], "executed");
    assert!(
        wiki["reason"]
            .as_str()
            .unwrap()
            .contains("already requires MFA under 'MFA required'; nothing written"),
        "{wiki:#}"
    );
    let puts: Vec<String> = fake
        .requests_matching("PUT", "/api/v1/")
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(puts, ["/api/v1/apps/0oaPayroll/policies/rstMfa"]);
    assert_eq!(
        fake.okta_app_policy("0oaPayroll").as_deref(),
        Some("rstMfa")
    );
    assert_eq!(fake.okta_app_policy("0oaWiki").as_deref(), Some("rstMfa"));
}

#[test]
fn assign_app_policy_refuses_a_policy_that_would_not_require_mfa() {
    let fake = FakeIdp::start();
    fake.set_okta_policy(access_policy("rstPassword", "Password only"));
    fake.set_okta_policy_rules("rstPassword", vec![access_rule("1FA")]);
    fake.set_okta_policy(access_policy("rstAlsoWeak", "Also weak"));
    fake.set_okta_policy_rules("rstAlsoWeak", vec![access_rule("1FA")]);
    fake.set_okta_app(
        json!({"id": "0oaPayroll", "label": "Payroll", "name": "payroll", "status": "ACTIVE"}),
        Some("rstPassword"),
    );
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
    // The operator granted a policy that asks for no MFA: the host still
    // refuses to move an application under it.
    wd.config(&okta_config(&fake).replace(
        "allow = [\"restore-policy\", \"activate-policy\"]",
        "allow = [\"assign-app-policy\"]\napp_policies = [\"rstAlsoWeak\"]\n\
         config = { app_mfa_policy = \"rstAlsoWeak\" }",
    ));
    let out = run_events(&wd, &[app_event("evt-app-3", "0oaPayroll", "Payroll")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = wd.audit_records();
    let result = the_one(&records, "action-result", |r| {
        r["action"] == "assign-app-policy"
    });
    assert_eq!(result["decision"], "failed");
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .contains("policy 'Also weak' (rstAlsoWeak) would not close the gap"),
        "{result:#}"
    );
    assert!(fake.requests_matching("PUT", "/").is_empty());
    assert_eq!(
        fake.okta_app_policy("0oaPayroll").as_deref(),
        Some("rstPassword")
    );
    // The gap stays, and was reported when the event came in.
    let found = the_one(&records, "finding", |r| r["rule"] == "vigil.app-mfa");
    assert_eq!(found["subject"], "0oaPayroll");
}

// Bad setups get a clear error and change nothing.
#[test]
fn baseline_commands_say_what_is_missing() {
    let wd = Workdir::new();
    wd.config("state_path = \"state.db\"\n");
    let out = cli(&wd, &["baseline", "capture"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "no identity provider connector is configured: a baseline is read through \
             [connectors.okta] or [connectors.graph]"
        ),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&wd, &["baseline", "approve", "--version", "7"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no baseline version 7 (see `vigil baseline list`)"),
        "{}",
        text(&out.stderr)
    );
    let out = ok(&cli(&wd, &["baseline", "list"]));
    assert!(out.contains("no baseline captured yet"), "{out}");

    // A provider that answers 401: the capture fails naming it, nothing
    // is stored.
    let fake = FakeIdp::start();
    okta_org(&fake);
    std::fs::write(wd.path().join("okta-token"), "wrong-token\n").unwrap();
    wd.config(&okta_config(&fake));
    let out = cli(&wd, &["baseline", "capture"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot read the MFA configuration through okta") && err.contains("401"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-token"),
        "the token never reaches a message"
    );
    let out = ok(&cli(&wd, &["baseline", "list"]));
    assert!(out.contains("no baseline captured yet"), "{out}");
    // No approved baseline: diff fails and says so.
    std::fs::write(wd.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
    let out = cli(&wd, &["baseline", "diff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("okta: no approved baseline"),
        "{}",
        text(&out.stdout)
    );
}

// Entra: an application no MFA conditional access policy includes is
// found when a directory audit adds its service principal, and added to the
// named policy with one PATCH of its conditions. The rule names it by its
// application id, which the event carries in its modified properties.
#[test]
fn an_entra_app_is_added_to_the_mfa_conditional_access_policy() {
    const APP: &str = "a1b2c3d4-0000-4000-8000-00000000a001";
    let fake = FakeIdp::start();
    let mut mfa = ca_policy(&["mfa"], &[]);
    mfa["conditions"]["applications"]["includeApplications"] = json!(["office365"]);
    fake.set_graph_ca_policy(mfa);
    let wd = Workdir::new();
    std::fs::write(wd.path().join("graph-secret"), GRAPH_CLIENT_SECRET).unwrap();
    wd.config(&format!(
        r#"mode = "enforce"
state_path = "state.db"
builtin_pack = false
[[rules]]
path = {guest:?}
allow = ["assign-app-policy"]
app_policies = ["ca-mfa-all"]
config = {{ action = "assign-app-policy", policy = "ca-mfa-all", targets = "{APP}" }}
[baseline]
check_secs = 0
[connectors.graph]
client_id = "{GRAPH_CLIENT_ID}"
client_secret_file = "graph-secret"
token_url = "{token}"
base_url = "{graph}"
"#,
        guest = GUEST_REQUESTER,
        token = fake.token_url(),
        graph = fake.graph_url(),
    ));
    let event = json!({
        "id": "entra-sp-add-1", "category": "ApplicationManagement", "result": "success",
        "activityDisplayName": "Add service principal",
        "activityDateTime": "2026-04-13T08:00:00.0000000Z", "loggedByService": "Core Directory",
        "operationType": "Add",
        "initiatedBy": {"user": {"id": "u-admin", "userPrincipalName": "admin@example.com"}},
        // The target is the service principal's object id; the application
        // id conditional access uses is in the modified properties.
        "targetResources": [{"id": "sp-object-77", "displayName": "Payroll",
                             "type": "ServicePrincipal",
                             "modifiedProperties": [{"displayName": "AppId", "oldValue": "[]",
                                                     "newValue": format!("[\"{APP}\"]")}]}]
    })
    .to_string();
    let out = run_events(&wd, &[event]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = wd.audit_records();
    // The host judged the application the event added: no enabled MFA
    // policy included it.
    let found = the_one(&records, "finding", |r| r["rule"] == "vigil.app-mfa");
    assert_eq!(found["subject"], APP);
    assert_eq!(
        found["details"]["reason"],
        "no enabled conditional access policy that requires MFA includes it"
    );
    let result = the_one(&records, "action-result", |r| {
        r["action"] == "assign-app-policy"
    });
    assert_eq!(result["decision"], "executed", "{result:#}");
    assert_eq!(result["diff"]["confirmed"], true);
    let patches = fake.requests_matching("PATCH", "/v1.0/");
    assert_eq!(patches.len(), 1, "{patches:#?}");
    let sent: Value = serde_json::from_str(&patches[0].body).unwrap();
    assert_eq!(
        sent["conditions"]["applications"]["includeApplications"],
        json!(["office365", APP])
    );
    let now = fake.graph_ca_policy("ca-mfa-all").unwrap();
    assert_eq!(
        now["conditions"]["applications"]["includeApplications"],
        json!(["office365", APP])
    );
}

// A trusted network widened: the policy zone is in the baseline, and a
// zone that covers more is a weakening (the blocklist zone, which block-ip
// edits, is left out).
#[test]
fn a_widened_policy_zone_shows_in_the_diff() {
    let fake = FakeIdp::start();
    okta_org(&fake);
    fake.set_okta_policy_zone("nzoOffice", "Office", &["198.51.100.0/24"]);
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
    wd.config(&okta_config(&fake));
    let out = ok(&cli(&wd, &["baseline", "capture", "--approve"]));
    assert!(
        out.contains("captured okta baseline version 1: 6 objects"),
        "{out}"
    );
    fake.set_okta_zone_gateways(
        vigil_test_support::fake_idp::OKTA_BLOCKLIST_ZONE,
        &["203.0.113.9/32"],
    );
    let out = ok(&cli(&wd, &["baseline", "diff"]));
    assert!(
        out.contains("0 changes"),
        "block-ip's zone is not in it: {out}"
    );
    fake.set_okta_policy_zone("nzoOffice", "Office", &["198.51.100.0/24", "0.0.0.0/0"]);
    let diff = cli(&wd, &["baseline", "diff"]);
    assert_eq!(diff.status.code(), Some(1));
    let said = text(&diff.stdout);
    assert!(
        said.contains("[weakens] network zone 'Office' now also covers gateway 0.0.0.0/0"),
        "{said}"
    );
    // The zone's own event makes the watch look.
    let event = json!({
        "uuid": "evt-zone-1", "published": "2026-04-06T09:00:00.000Z", "eventType": "zone.update",
        "actor": {"id": "00uMallory", "type": "User"}, "outcome": {"result": "SUCCESS"},
        "target": [{"id": "nzoOffice", "type": "Zone", "displayName": "Office"}]
    })
    .to_string();
    let out = run_events(&wd, &[event]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = wd.audit_records();
    let found = the_one(&records, "finding", |r| r["rule"] == "vigil.baseline");
    assert_eq!(found["subject"], "nzoOffice");
    assert_eq!(found["event_id"], "evt-zone-1");
}

// What the watch reported is kept in the store: a second run (a restart)
// that finds the same weakening does not report it again; once put right
// and weakened again, it is reported again.
#[test]
fn a_restart_does_not_report_the_same_weakening_twice() {
    let fake = FakeIdp::start();
    okta_org(&fake);
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
    wd.config(&okta_config(&fake));
    ok(&cli(&wd, &["baseline", "capture", "--approve"]));
    fake.set_okta_policy_rules("00pSignOn", vec![sign_on_rule(false)]);
    let host_findings = |wd: &Workdir| {
        wd.records_of("finding")
            .into_iter()
            .filter(|r| r["rule"] == "vigil.baseline")
            .count()
    };
    for (i, expected) in [(1, 1), (2, 1)] {
        let out = run_events(&wd, &[rule_update_event(&format!("evt-restart-{i}"))]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(host_findings(&wd), expected, "after run {i}");
    }
    // Put right (the watch sees it), then weakened again: reported again.
    fake.set_okta_policy_rules("00pSignOn", vec![sign_on_rule(true)]);
    let out = run_events(&wd, &[rule_update_event("evt-restart-3")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(host_findings(&wd), 1);
    fake.set_okta_policy_rules("00pSignOn", vec![sign_on_rule(false)]);
    let out = run_events(&wd, &[rule_update_event("evt-restart-4")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(host_findings(&wd), 2);
}

// Bad answers cost only the check: a provider that fails the watch's
// reads is logged and the events go on; the next policy change reads again.
#[test]
fn a_failing_provider_read_does_not_stop_the_run() {
    use vigil_test_support::fake_idp::Fault;
    let fake = FakeIdp::start();
    okta_org(&fake);
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
    wd.config(&okta_config(&fake));
    ok(&cli(&wd, &["baseline", "capture", "--approve"]));
    fake.set_okta_policy_rules("00pSignOn", vec![sign_on_rule(false)]);
    fake.inject("GET", "/api/v1/policies", Fault::Status(500), 100);
    let out = run_events(&wd, &[rule_update_event("evt-idp-down")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("baseline check of okta") && err.contains("500"),
        "{err}"
    );
    let records = wd.audit_records();
    // The rule judged the event all the same; no host finding without a read.
    the_one(&records, "action", |r| r["action"] == "restore-policy");
    assert!(records.iter().all(|r| r["rule"] != "vigil.baseline"));
    fake.clear_faults();
    let out = run_events(&wd, &[rule_update_event("evt-idp-back")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = wd.audit_records();
    let found = the_one(&records, "finding", |r| r["rule"] == "vigil.baseline");
    assert_eq!(found["event_id"], "evt-idp-back");
}

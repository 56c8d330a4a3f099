//! Protected accounts by group membership (`[protected] groups`) against
//! the fake IdP: the Okta and Graph group listings (exact requests, paging,
//! the member cap, next links that leave the configured host),
//! `ProtectedAccounts::matches` on members, and the `GroupResolver`'s
//! refresh, store cache and fail-closed start.

use serde_json::Value;
use tempfile::TempDir;
use vigil_host::actions::connector::{Connector, GroupMember};
use vigil_host::actions::dispatch::Dispatcher;
use vigil_host::actions::graph::GraphConnector;
use vigil_host::actions::log::LogConnector;
use vigil_host::actions::okta::OktaConnector;
use vigil_host::config::connectors::{GraphConfig, OktaAuthScheme, OktaConfig};
use vigil_host::config::{Config, Dispatch, Protected};
use vigil_host::model::{Event, EventClass, Outcome, Principal};
use vigil_host::policy::{GroupResolver, ProtectedAccounts};
use vigil_host::store::Store;
use vigil_test_support::fake_idp::{
    FakeIdp, Fault, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET, OKTA_TOKEN, Recorded,
};

use crate::okta::http;

const OKTA_GROUP: &str = "00g1breakglass";
const GRAPH_GROUP: &str = "4f1c0000-0000-4000-8000-00000000g001";
const OKTA_SPEC: &str = "okta:00g1breakglass";
const GRAPH_SPEC: &str = "graph:4f1c0000-0000-4000-8000-00000000g001";
const T0: i64 = 1_772_359_200_000; // 2026-03-01T10:00:00Z
const MEMBERS_PATH: &str =
    "/v1.0/groups/4f1c0000-0000-4000-8000-00000000g001/transitiveMembers/microsoft.graph.user";

/// The fake IdP and the credentials files of both connectors.
struct Fixture {
    idp: FakeIdp,
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("okta-token"), format!("{OKTA_TOKEN}\n")).unwrap();
        std::fs::write(
            dir.path().join("graph-secret"),
            format!("{GRAPH_CLIENT_SECRET}\n"),
        )
        .unwrap();
        Fixture {
            idp: FakeIdp::start(),
            dir,
        }
    }

    fn okta(&self) -> OktaConnector {
        let config = OktaConfig {
            base_url: self.idp.base_url(),
            token_env: None,
            token_file: Some(self.dir.path().join("okta-token")),
            auth_scheme: OktaAuthScheme::Ssws,
            blocklist_zone: None,
        };
        OktaConnector::new(&config, &http()).unwrap()
    }

    fn graph(&self) -> GraphConnector {
        let text = format!(
            "base_url = {:?}\ntoken_url = {:?}\nclient_id = {:?}\nclient_secret_file = {:?}\n",
            self.idp.graph_url(),
            self.idp.token_url(),
            GRAPH_CLIENT_ID,
            self.dir.path().join("graph-secret").display().to_string(),
        );
        let config: GraphConfig = toml::from_str(&text).unwrap();
        GraphConnector::new(&config, &http()).unwrap()
    }

    /// Both connectors, as `vigil run` builds them.
    fn dispatcher(&self) -> Dispatcher {
        Dispatcher::new(
            vec![Box::new(self.okta()), Box::new(self.graph())],
            &Dispatch::default(),
            &[],
        )
        .unwrap()
    }

    fn group_requests(&self, prefix: &str) -> Vec<Recorded> {
        self.idp.requests_matching("GET", prefix)
    }
}

/// `n` members `(id, login)`: `00u0000`… / `user0000@example.com`….
fn people(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}{i:04}"), format!("user{i:04}@example.com")))
        .collect()
}

fn refs(people: &[(String, String)]) -> Vec<(&str, &str)> {
    people
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

/// `[protected]` with both groups, refreshed every 900 s.
fn config() -> Protected {
    Protected {
        groups: vec![OKTA_SPEC.into(), GRAPH_SPEC.into()],
        ..Protected::default()
    }
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
        ..Event::new("evt-1", "okta", "user.session.start", 0)
    }
}

fn nobody() -> Event {
    event("00uunrelated", "unrelated@example.com")
}

/// The fake's two groups: Okta `00ubg1`/`00ubg2`, Graph `obj-ops`.
fn seed(idp: &FakeIdp) {
    idp.set_okta_group_members(
        OKTA_GROUP,
        &[
            ("00ubg1", "breakglass-1@example.com"),
            ("00ubg2", "breakglass-2@example.com"),
        ],
    );
    idp.set_graph_group_members(GRAPH_GROUP, &[("obj-ops", "ops-admin@contoso.com")]);
}

#[test]
fn okta_listing_follows_the_link_header_page_by_page() {
    let f = Fixture::new();
    let everyone = people("00u", 450);
    f.idp.set_okta_group_members(OKTA_GROUP, &refs(&everyone));
    let members = f.okta().group_members(OKTA_GROUP).unwrap();
    assert_eq!(members.len(), 450);
    assert_eq!(
        members[0],
        GroupMember {
            id: "00u0000".into(),
            login: Some("user0000@example.com".into())
        }
    );
    assert_eq!(members[449].id, "00u0449");

    let sent = f.group_requests("/api/v1/groups/");
    let queries: Vec<(&str, Option<&str>)> = sent
        .iter()
        .map(|r| (r.path.as_str(), r.query.as_deref()))
        .collect();
    let path = "/api/v1/groups/00g1breakglass/users";
    assert_eq!(
        queries,
        [
            (path, Some("limit=200")),
            (path, Some("after=00u0199&limit=200")),
            (path, Some("after=00u0399&limit=200")),
        ]
    );
    for r in &sent {
        assert_eq!(
            r.header("authorization"),
            Some(format!("SSWS {OKTA_TOKEN}").as_str())
        );
        assert_eq!(r.header("accept"), Some("application/json"));
    }
    assert_eq!(f.idp.requests().len(), 3, "nothing else is sent");
}

#[test]
fn graph_listing_follows_next_links_with_a_skiptoken() {
    let f = Fixture::new();
    let everyone = people("obj-", 2100);
    f.idp.set_graph_group_members(GRAPH_GROUP, &refs(&everyone));
    let members = f.graph().group_members(GRAPH_GROUP).unwrap();
    assert_eq!(members.len(), 2100);
    assert_eq!(
        members[2099],
        GroupMember {
            id: "obj-2099".into(),
            login: Some("user2099@example.com".into())
        }
    );

    let sent = f.group_requests("/v1.0/");
    let queries: Vec<(&str, Option<&str>)> = sent
        .iter()
        .map(|r| (r.path.as_str(), r.query.as_deref()))
        .collect();
    assert_eq!(
        queries,
        [
            (MEMBERS_PATH, Some("$select=id,userPrincipalName&$top=999")),
            (
                MEMBERS_PATH,
                Some("$select=id,userPrincipalName&$top=999&$skiptoken=RFNwdA999")
            ),
            (
                MEMBERS_PATH,
                Some("$select=id,userPrincipalName&$top=999&$skiptoken=RFNwdA1998")
            ),
        ]
    );
    for r in &sent {
        assert_eq!(r.header("authorization"), Some("Bearer fake-graph-token-1"));
    }
    assert_eq!(f.idp.tokens_issued(), 1, "one token for every page");
}

#[test]
fn a_group_over_ten_thousand_members_is_refused_as_a_misconfiguration() {
    let f = Fixture::new();
    let everyone = people("u", 10_001);
    f.idp.set_okta_group_members(OKTA_GROUP, &refs(&everyone));
    f.idp.set_graph_group_members(GRAPH_GROUP, &refs(&everyone));

    let err = f.okta().group_members(OKTA_GROUP).unwrap_err();
    assert!(
        err.message.contains("more than 10000 members") && err.message.contains("misconfiguration"),
        "{err}"
    );
    assert_eq!(f.group_requests("/api/v1/groups/").len(), 51, "200 a page");

    let err = f.graph().group_members(GRAPH_GROUP).unwrap_err();
    assert!(
        err.message.contains("graph group") && err.message.contains("more than 10000 members"),
        "{err}"
    );
    assert_eq!(f.group_requests("/v1.0/groups/").len(), 11, "999 a page");

    // Exactly the cap is fine.
    f.idp
        .set_okta_group_members(OKTA_GROUP, &refs(&everyone[..10_000]));
    assert_eq!(f.okta().group_members(OKTA_GROUP).unwrap().len(), 10_000);
}

#[test]
fn next_links_off_the_configured_host_are_not_followed() {
    let f = Fixture::new();
    let everyone = people("u", 1200);
    f.idp.set_okta_group_members(OKTA_GROUP, &refs(&everyone));
    f.idp.set_graph_group_members(GRAPH_GROUP, &refs(&everyone));
    f.idp.set_group_next_link_base(Some("https://evil.example"));

    let err = f.okta().group_members(OKTA_GROUP).unwrap_err();
    assert!(
        err.message.contains("https://evil.example") && err.message.contains("not followed"),
        "{err}"
    );
    assert_eq!(f.group_requests("/api/v1/groups/").len(), 1);

    let err = f.graph().group_members(GRAPH_GROUP).unwrap_err();
    assert!(
        err.message.contains("https://evil.example") && err.message.contains("not followed"),
        "{err}"
    );
    assert_eq!(f.group_requests("/v1.0/groups/").len(), 1);
}

#[test]
fn vendor_errors_name_the_request_and_the_vendor_code() {
    let f = Fixture::new();
    // A group that does not exist.
    let err = f.okta().group_members("00gnosuchgroup").unwrap_err();
    assert_eq!(err.status, Some(404));
    assert_eq!(err.vendor_code.as_deref(), Some("E0000007"));
    assert!(
        err.message
            .contains("GET /api/v1/groups/00gnosuchgroup/users?limit=200"),
        "{err}"
    );
    // No GroupMember.Read.All.
    seed(&f.idp);
    f.idp.inject("GET", "/v1.0/groups/", Fault::Status(403), 1);
    let err = f.graph().group_members(GRAPH_GROUP).unwrap_err();
    assert_eq!(err.status, Some(403));
    assert_eq!(
        err.vendor_code.as_deref(),
        Some("Authorization_RequestDenied")
    );
    // An id that would change the path is refused before anything is sent.
    f.idp.clear_requests();
    let err = f.okta().group_members("../users").unwrap_err();
    assert_eq!(err.attempts, 0, "{err}");
    assert!(f.idp.requests().is_empty());
}

#[test]
fn connectors_without_a_directory_refuse_to_list_members() {
    let err = LogConnector.group_members(OKTA_GROUP).unwrap_err();
    assert_eq!(err.message, "log cannot list group members");
    assert_eq!(err.attempts, 0);
}

#[test]
fn protected_accounts_match_members_by_id_and_login() {
    let f = Fixture::new();
    seed(&f.idp);
    let mut d = f.dispatcher();
    let store = Store::in_memory().unwrap();
    let protected = ProtectedAccounts::new(&config());
    // What the gate holds: a clone made before the groups are resolved.
    let gate_copy = protected.clone();
    GroupResolver::start(&config(), &mut d, &store, &protected, T0).unwrap();
    assert!(gate_copy.groups_resolved());

    let okta_hit = Some(format!("member of protected group {OKTA_SPEC}"));
    assert_eq!(gate_copy.matches("00ubg2", &nobody()), okta_hit);
    assert_eq!(
        gate_copy.matches("Breakglass-1@Example.com", &nobody()),
        okta_hit
    );
    assert_eq!(
        gate_copy.matches("ops-admin@contoso.com", &nobody()),
        Some(format!("member of protected group {GRAPH_SPEC}"))
    );
    // Through the event: the rule targets an id the group does not list,
    // the event gives the same user's login, which it does.
    let e = event("00uother-id", "ops-admin@contoso.com");
    assert!(gate_copy.matches("00uother-id", &e).is_some());
    assert_eq!(gate_copy.matches("00unotamember", &nobody()), None);

    // The store caches each list with its time.
    let cached: Value = serde_json::from_str(
        &store
            .meta(&format!("protected-group:{OKTA_SPEC}"))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cached["group"], OKTA_SPEC);
    assert_eq!(cached["fetched_ms"], T0);
    assert_eq!(
        cached["members"][1],
        serde_json::json!({"id": "00ubg2", "login": "breakglass-2@example.com"})
    );
}

#[test]
fn refresh_picks_up_a_membership_change() {
    let f = Fixture::new();
    seed(&f.idp);
    let mut d = f.dispatcher();
    let store = Store::in_memory().unwrap();
    let protected = ProtectedAccounts::new(&config());
    let mut resolver = GroupResolver::start(&config(), &mut d, &store, &protected, T0).unwrap();
    assert!(!resolver.due(T0 + 899_999));
    assert!(resolver.due(T0 + 900_000), "group_refresh_secs = 900");

    // 00ubg2 leaves, 00ubg3 joins.
    f.idp.set_okta_group_members(
        OKTA_GROUP,
        &[
            ("00ubg1", "breakglass-1@example.com"),
            ("00ubg3", "breakglass-3@example.com"),
        ],
    );
    resolver
        .refresh(&mut d, &store, &protected, T0 + 900_000)
        .unwrap();
    assert!(protected.matches("00ubg3", &nobody()).is_some());
    assert!(
        protected
            .matches("breakglass-3@example.com", &nobody())
            .is_some()
    );
    assert_eq!(protected.matches("00ubg2", &nobody()), None);
    assert_eq!(
        protected.matches("breakglass-2@example.com", &nobody()),
        None
    );
    assert!(!resolver.due(T0 + 900_000));
    assert!(resolver.due(T0 + 1_800_000));
    let cached = store
        .meta(&format!("protected-group:{OKTA_SPEC}"))
        .unwrap()
        .unwrap();
    assert!(
        cached.contains("00ubg3") && !cached.contains("00ubg2"),
        "{cached}"
    );
}

#[test]
fn a_failing_refresh_keeps_the_previous_members() {
    let f = Fixture::new();
    seed(&f.idp);
    let mut d = f.dispatcher();
    let store = Store::in_memory().unwrap();
    let protected = ProtectedAccounts::new(&config());
    let mut resolver = GroupResolver::start(&config(), &mut d, &store, &protected, T0).unwrap();

    // The group is emptied, but the IdP fails before we see it.
    f.idp.set_okta_group_members(OKTA_GROUP, &[]);
    f.idp
        .inject("GET", "/api/v1/groups/", Fault::Status(503), 3);
    f.idp.inject("GET", "/v1.0/groups/", Fault::Status(403), 1);
    f.idp.clear_requests();
    resolver
        .refresh(&mut d, &store, &protected, T0 + 900_000)
        .expect("a refresh that fails is a warning, not an error");
    assert_eq!(
        f.group_requests("/api/v1/groups/").len(),
        3,
        "503 is retried (max_attempts = 3)"
    );
    assert!(protected.matches("00ubg2", &nobody()).is_some(), "kept");
    assert!(
        protected
            .matches("ops-admin@contoso.com", &nobody())
            .is_some()
    );
    // Retried after a minute, not after the whole interval.
    assert!(!resolver.due(T0 + 959_999));
    assert!(resolver.due(T0 + 960_000));
    let cached = store
        .meta(&format!("protected-group:{OKTA_SPEC}"))
        .unwrap()
        .unwrap();
    assert!(cached.contains("00ubg2"), "the cache is not overwritten");

    // The next refresh that works applies the change.
    resolver
        .refresh(&mut d, &store, &protected, T0 + 960_000)
        .unwrap();
    assert_eq!(protected.matches("00ubg2", &nobody()), None);
}

#[test]
fn start_fails_closed_without_a_cache() {
    let f = Fixture::new();
    seed(&f.idp);
    f.idp
        .inject("GET", "/api/v1/groups/", Fault::Status(403), 1);
    let mut d = f.dispatcher();
    let store = Store::in_memory().unwrap();
    let protected = ProtectedAccounts::new(&config());
    let err = GroupResolver::start(&config(), &mut d, &store, &protected, T0).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(OKTA_SPEC)
            && msg.contains("HTTP 403 E0000006")
            && msg.contains("no cached member list")
            && !msg.contains(GRAPH_SPEC),
        "{msg}"
    );
    // A gate built anyway protects everyone rather than no one.
    assert!(!protected.groups_resolved());
    assert!(
        protected
            .matches("00unotamember", &nobody())
            .is_some_and(|m| m.contains("not resolved"))
    );
}

#[test]
fn start_uses_the_store_cache_when_the_idp_is_down() {
    let f = Fixture::new();
    seed(&f.idp);
    let state = f.dir.path().join("vigil-state.db");
    let mut d = f.dispatcher();
    {
        let store = Store::open(&state).unwrap();
        let protected = ProtectedAccounts::new(&config());
        GroupResolver::start(&config(), &mut d, &store, &protected, T0).unwrap();
    }

    // Restart with the IdP unreachable: the connectors still point at it.
    let Fixture { idp, dir } = f;
    drop(idp);
    let store = Store::open(&state).unwrap();
    let protected = ProtectedAccounts::new(&config());
    let mut resolver = GroupResolver::start(&config(), &mut d, &store, &protected, T0 + 3_600_000)
        .expect("the cached lists are enough to start");
    assert!(protected.groups_resolved());
    assert!(protected.matches("00ubg1", &nobody()).is_some());
    assert!(
        protected
            .matches("ops-admin@contoso.com", &nobody())
            .is_some()
    );
    assert!(resolver.due(T0 + 3_660_000), "retried after a minute");
    // Still down at the retry: the cached members stay.
    resolver
        .refresh(&mut d, &store, &protected, T0 + 3_660_000)
        .unwrap();
    assert!(protected.matches("00ubg2", &nobody()).is_some());
    drop(dir);
}

#[test]
fn group_config_is_validated_naming_the_entry() {
    let connectors = "[connectors.okta]\nbase_url = \"https://example.okta.com\"\ntoken_env = \"VIGIL_OKTA_TOKEN\"\n";
    let parse = |protected: &str| Config::parse(&format!("[protected]\n{protected}\n{connectors}"));

    let c = parse("groups = [\"okta:00g1breakglass\"]").unwrap();
    assert_eq!(c.protected.groups, ["okta:00g1breakglass"]);
    assert_eq!(c.protected.group_refresh_secs, 900, "the default");
    assert_eq!(Config::parse("").unwrap().protected.group_refresh_secs, 900);

    for (groups, expected) in [
        (
            r#"["okta:00g1", "graph:4f1c"]"#,
            "protected.groups[1]: \"graph:4f1c\" is resolved through the graph connector, but [connectors.graph] is not configured",
        ),
        (
            r#"["azure:g1"]"#,
            "protected.groups[0]: unknown connector \"azure\"",
        ),
        (
            r#"["00g1"]"#,
            "protected.groups[0]: \"00g1\" must name its connector",
        ),
        (
            r#"["okta:"]"#,
            "protected.groups[0]: \"okta:\" has an empty group id",
        ),
        (
            r#"["okta: 00g1"]"#,
            "protected.groups[0]: the group id in \"okta: 00g1\" contains whitespace",
        ),
    ] {
        let err = parse(&format!("groups = {groups}")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with(expected), "{groups}: {msg}");
    }
    for secs in [59, 86_401] {
        let err = parse(&format!("group_refresh_secs = {secs}")).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!("protected.group_refresh_secs is {secs}; it must be between 60 and 86400")
        );
    }
    assert!(parse("group_refresh_secs = 60").is_ok());
}

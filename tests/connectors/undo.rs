//! The executor over a real connector: temporary actions schedule their
//! undo, which runs when due (the clock is passed in, so no test sleeps),
//! a failing undo is retried later, and idempotency keys stop a second
//! send of the same action.

use vigil_host::actions::dispatch::Dispatcher;
use vigil_host::actions::okta::OktaConnector;
use vigil_host::clock::now_ms;
use vigil_host::config::connectors::{HttpConfig, OktaConfig};
use vigil_host::executor::{ActionExecutor, ExecutionRequest};
use vigil_host::model::{Action, BlockIp, SuspendUser};
use vigil_host::store::Store;
use vigil_test_support::fake_idp::{FakeIdp, Fault, OKTA_BLOCKLIST_ZONE, OKTA_TOKEN};

struct Setup {
    fake: FakeIdp,
    executor: ActionExecutor,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let fake = FakeIdp::start();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, OKTA_TOKEN).unwrap();
    let okta = OktaConnector::new(
        &OktaConfig {
            base_url: fake.base_url(),
            token_env: None,
            token_file: Some(token),
            auth_scheme: Default::default(),
            blocklist_zone: Some(OKTA_BLOCKLIST_ZONE.to_owned()),
        },
        &HttpConfig {
            backoff_initial_ms: 10,
            backoff_max_ms: 20,
            max_attempts: 2,
            ..HttpConfig::default()
        },
    )
    .unwrap();
    let dispatch = Dispatcher::new(vec![Box::new(okta)], &Default::default(), &[]).unwrap();
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    Setup {
        fake,
        executor: ActionExecutor::new(dispatch, store).unwrap(),
        _dir: dir,
    }
}

fn request<'a>(action_id: &'a str, action: &'a Action) -> ExecutionRequest<'a> {
    ExecutionRequest {
        action_id,
        rule: "test-rule",
        event_id: "evt-1",
        event_source: "okta",
        action,
    }
}

#[test]
fn a_temporary_suspension_is_undone_when_due_and_not_before() {
    let mut s = setup();
    let action = Action::SuspendUser(SuspendUser {
        user: "00utemp1".into(),
        duration_secs: Some(600),
    });
    let before = now_ms();
    let results = s.executor.execute(&request("act-1", &action)).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].decision, "executed", "{:?}", results[0]);
    let (undo_id, due) = results[0].undo.expect("an undo is scheduled");
    assert!(due >= before + 600_000 && due <= now_ms() + 600_000);
    assert_eq!(s.executor.next_undo_due(), Some(due));
    assert_eq!(s.fake.okta_user_status("00utemp1"), "SUSPENDED");

    // Not due yet: nothing happens (the requests so far: the target's
    // lookup and the suspension).
    assert!(s.executor.run_due_undos(due - 1).unwrap().is_empty());
    assert_eq!(s.fake.requests().len(), 2);

    let undone = s.executor.run_due_undos(due).unwrap();
    assert_eq!(undone.len(), 1);
    assert_eq!(undone[0].decision, "executed", "{:?}", undone[0]);
    assert_eq!(undone[0].scheduled.id, undo_id);
    assert_eq!(undone[0].scheduled.action_id, "act-1");
    assert_eq!(s.fake.okta_user_status("00utemp1"), "ACTIVE");
    let last = s.fake.requests().pop().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("POST", "/api/v1/users/00utemp1/lifecycle/unsuspend")
    );
    assert_eq!(s.executor.next_undo_due(), None);
    assert!(s.executor.run_due_undos(due + 1).unwrap().is_empty());
}

#[test]
fn a_failing_undo_is_retried_later_not_dropped() {
    let mut s = setup();
    let action = Action::BlockIp(BlockIp {
        ip: "198.51.100.23".into(),
        duration_secs: Some(60),
    });
    let results = s.executor.execute(&request("act-2", &action)).unwrap();
    assert_eq!(results[0].decision, "executed", "{:?}", results[0]);
    assert_eq!(
        s.fake.okta_zone_gateways(OKTA_BLOCKLIST_ZONE),
        vec!["198.51.100.23/32".to_owned()]
    );
    let (_, due) = results[0].undo.unwrap();

    // Okta is down for both attempts of the undo.
    s.fake.inject("*", "/api/v1/zones", Fault::Status(503), 2);
    let first = s.executor.run_due_undos(due).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].decision, "retrying", "{:?}", first[0]);
    assert!(first[0].detail.contains("HTTP 503"), "{}", first[0].detail);
    let next = first[0].next_due_ms.unwrap();
    assert!(next > due);
    assert_eq!(s.executor.next_undo_due(), Some(next));
    assert_eq!(
        s.fake.okta_zone_gateways(OKTA_BLOCKLIST_ZONE),
        vec!["198.51.100.23/32".to_owned()],
        "still blocked"
    );

    let second = s.executor.run_due_undos(next).unwrap();
    assert_eq!(second[0].decision, "executed", "{:?}", second[0]);
    assert_eq!(second[0].scheduled.attempts, 1);
    assert!(s.fake.okta_zone_gateways(OKTA_BLOCKLIST_ZONE).is_empty());
}

#[test]
fn the_same_action_id_is_sent_once_and_a_failed_one_may_be_retried() {
    let mut s = setup();
    let action = Action::RevokeSessions("00urevoke1".into());
    let first = s.executor.execute(&request("act-3", &action)).unwrap();
    assert_eq!(first[0].decision, "executed");
    let again = s.executor.execute(&request("act-3", &action)).unwrap();
    assert_eq!(again[0].decision, "duplicate");
    assert!(
        again[0].detail.starts_with("already executed at "),
        "{}",
        again[0].detail
    );
    assert_eq!(s.fake.requests_matching("DELETE", "/api/v1/users").len(), 1);

    // A failed execution does not block a later request with the same key.
    s.fake
        .inject("DELETE", "/api/v1/users/00urevoke2", Fault::Status(500), 2);
    let action = Action::RevokeSessions("00urevoke2".into());
    let failed = s.executor.execute(&request("act-4", &action)).unwrap();
    assert_eq!(failed[0].decision, "failed");
    assert_eq!(failed[0].error.as_ref().unwrap().status, Some(500));
    let retried = s.executor.execute(&request("act-4", &action)).unwrap();
    assert_eq!(retried[0].decision, "executed", "{:?}", retried[0]);
}

#[test]
fn an_action_left_in_flight_by_a_crash_is_not_sent_again() {
    let mut s = setup();
    // What a crash between the send and the answer leaves in the store.
    s.executor
        .store()
        .begin_execution("act-5:okta", "act-5", "okta", now_ms())
        .unwrap();
    let action = Action::RevokeSessions("00uinflight".into());
    let results = s.executor.execute(&request("act-5", &action)).unwrap();
    assert_eq!(results[0].decision, "duplicate");
    assert!(
        results[0].detail.contains("never recorded"),
        "{}",
        results[0].detail
    );
    assert!(s.fake.requests().is_empty());
}

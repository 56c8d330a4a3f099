//! The web console, end to end: the real `vigil` service with an admin
//! listener, driven by a headless Chromium (Debian's, through chromedriver:
//! `vigil_test_support::browser`) and, for what a browser would never
//! send, by plain HTTP.
//!
//! The acting rule is the hostile test guest `guest-protected` (it asks to
//! suspend the subject of every event for 30 minutes) with every
//! suspension parked for approval and a budget of one suspension, so one
//! service shows every page: parked approvals, a temporary action after an
//! approval, a tripped breaker after a second one. Screenshots of every
//! page are kept in `$CARGO_TARGET_TMPDIR/console-screenshots/`.
//!
//! Waits are polls with generous timeouts; no test asserts timing.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use vigil_test_support::browser::Browser;
use vigil_test_support::fake_idp::{FakeIdp, OKTA_TOKEN};
use vigil_test_support::process::VigilProcess;
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const ADMIN_TOKEN: &str = "console-admin-token-for-tests";
/// `admin_name`, and how console changes are audited.
const ADMIN_NAME: &str = "sec-oncall";
const BY: &str = "sec-oncall (console)";
/// The subject of an event that tries to inject markup into the pages.
const HOSTILE_USER: &str = "00u<script>alert(1)</script>";

fn cache_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-xdg-cache")
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

/// A running service with a separate admin listener.
struct Service {
    wd: Workdir,
    p: VigilProcess,
    admin: String,
}

impl Service {
    /// Suspensions by `guest-protected` go to the fake Okta, each parked
    /// for approval, one per budget window. `token`: configure the admin
    /// token.
    fn start(fake: &FakeIdp, token: bool) -> Service {
        let wd = Workdir::new();
        std::fs::write(wd.path().join("okta-token"), OKTA_TOKEN).unwrap();
        let admin_token = if token {
            "admin_token_env = \"TEST_ADMIN_TOKEN\"\n"
        } else {
            ""
        };
        let config = wd.config(&format!(
            r#"mode = "enforce"
state_path = "state.db"
builtin_pack = false
[[rules]]
path = {guest:?}
allow = ["suspend-user"]
approval = ["suspend-user"]
budget = {{ suspend-user = 1 }}
[connectors.http]
backoff_initial_ms = 20
backoff_max_ms = 100
[connectors.okta]
base_url = "{okta}"
token_file = "okta-token"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
admin_name = "{ADMIN_NAME}"
{admin_token}"#,
            guest = GUEST_PROTECTED,
            okta = fake.base_url(),
        ));
        let mut command = Command::new(VIGIL);
        command
            .args(["run", "--config", config.to_str().unwrap()])
            .current_dir(wd.path())
            .env("XDG_CACHE_HOME", cache_home())
            .env("VIGIL_LOG", "info")
            .env("TEST_ADMIN_TOKEN", ADMIN_TOKEN);
        let p = VigilProcess::spawn(command, "http");
        let mut admin = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while admin.is_none() {
            admin = p
                .log()
                .lines()
                .find_map(|l| l.strip_prefix("vigil: admin listening on "))
                .map(|a| a.trim().to_owned());
            assert!(Instant::now() < deadline, "no admin listener:\n{}", p.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        Service {
            wd,
            p,
            admin: admin.unwrap(),
        }
    }

    /// A console URL on the admin listener.
    fn console(&self, path: &str) -> String {
        format!("{}{path}", self.admin)
    }

    /// Posts a denied Okta push for `user` to the ingestion endpoint.
    fn push_denied(&self, user: &str, n: usize) {
        let event = json!({
            "uuid": format!("evt-console-{n}"),
            "published": format!("2026-03-07T10:00:{n:02}.000Z"),
            "eventType": "user.mfa.okta_verify.deny_push",
            "actor": {"id": user, "type": "User", "alternateId": format!("user{n}@example.com")},
            "client": {"ipAddress": "203.0.113.45"},
            "outcome": {"result": "FAILURE", "reason": "User rejected Okta push verify"},
            "target": [],
        });
        let r = client()
            .post(self.p.url("/v1/events"))
            .json(&event)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{}", self.p.log());
    }

    fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Records of `kind` whose `field` is `value`.
    fn records(&self, kind: &str, field: &str, value: &str) -> Vec<Value> {
        self.wd
            .records_of(kind)
            .into_iter()
            .filter(|r| r[field] == value)
            .collect()
    }

    /// The `action_id` of the parked suspension of `user`.
    fn parked(&self, user: &str) -> String {
        let pending = self
            .wd
            .records_of("action")
            .into_iter()
            .find(|a| a["target"] == user && a["decision"] == "pending")
            .unwrap_or_else(|| panic!("no parked suspension of {user}"));
        pending["action_id"].as_str().unwrap().to_owned()
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Loads `path` in the browser until `check` holds on the page (the
/// pipeline catches up in the background).
fn reload_until(
    b: &Browser,
    s: &Service,
    path: &str,
    what: &str,
    check: impl Fn(&Browser) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        b.goto(&s.console(path));
        if check(b) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} on {path}:\n{}\n{}",
            b.body_text(),
            s.p.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The flash message shown after a POST.
fn notice(b: &Browser) -> String {
    b.text(&b.find("p.notice"))
}

/// Everything an operator does in the console, in a real browser: sign in
/// (a wrong token first), every page rendered and photographed, an
/// approval (its audit record names the console), an undo now, a breaker
/// reset, a rejection, the audit timeline's filters and verification
/// state, hostile markup shown as text, and sign out.
#[test]
fn an_operator_works_through_every_page_in_a_real_browser() {
    let fake = FakeIdp::start();
    let s = Service::start(&fake, true);
    // Three parked suspensions (parking spends no budget).
    s.push_denied("00uconsole1", 1);
    s.push_denied(HOSTILE_USER, 2);
    s.push_denied("00uconsole3", 3);
    s.eventually("three parked suspensions", || {
        s.wd.records_of("action")
            .iter()
            .filter(|a| a["decision"] == "pending")
            .count()
            == 3
    });
    let first = s.parked("00uconsole1");
    let hostile = s.parked(HOSTILE_USER);
    let third = s.parked("00uconsole3");
    let shots = screenshots();

    let b = Browser::start();
    // Not signed in: every page leads to the sign-in form.
    for page in ["rules", "approvals", "actions", "breakers", "audit"] {
        b.goto(&s.console(&format!("/console/{page}")));
        assert!(b.url().ends_with("/console/login"), "{page}: {}", b.url());
    }
    // A wrong token is refused, and no session cookie is set.
    b.type_into(&b.find("#token"), "not-the-token");
    b.submit(&b.find("#sign-in"));
    assert!(
        b.body_text().contains("Wrong admin token"),
        "{}",
        b.body_text()
    );
    assert!(b.cookies().iter().all(|c| c["name"] != "vigil_console"));
    b.screenshot(&shots, "login");
    b.type_into(&b.find("#token"), ADMIN_TOKEN);
    b.submit(&b.find("#sign-in"));
    assert!(b.url().ends_with("/console/rules"), "{}", b.url());
    // The session cookie, as Chromium stored it over http://127.0.0.1 (a
    // potentially trustworthy origin, so `Secure` is accepted).
    let cookies = b.cookies();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "vigil_console")
        .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["secure"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    assert_eq!(session["path"], "/console", "{session}");

    // Rules: mode, status, calls and faults.
    let row = b.find("tr[data-rule=\"guest-protected\"]");
    let text = b.text(&row);
    assert!(
        text.contains("enforce") && text.contains("enforcing"),
        "{text}"
    );
    let calls: u64 = b
        .text(&b.find("tr[data-rule=\"guest-protected\"] td.calls"))
        .parse()
        .unwrap();
    assert!(calls >= 3, "{calls}");
    assert_eq!(
        b.text(&b.find("tr[data-rule=\"guest-protected\"] td.faults")),
        "0"
    );
    b.screenshot(&shots, "rules");

    // Approvals: three rows; the hostile target is text, not markup.
    b.goto(&s.console("/console/approvals"));
    assert_eq!(b.find_all("#approvals tbody tr").len(), 3);
    let target = b.text(&b.find(&format!("tr[data-id=\"{hostile}\"] td.target")));
    assert_eq!(target, HOSTILE_USER);
    assert!(b.find_all("script").is_empty());
    assert!(
        b.source()
            .contains("00u&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    b.screenshot(&shots, "approvals");

    // Approve the first: executed at Okta, and the audit log says who.
    b.submit(&b.find(&format!("tr[data-id=\"{first}\"] button.approve")));
    assert!(b.url().ends_with("/console/approvals"), "{}", b.url());
    let n = notice(&b);
    assert!(n.contains("approved") && n.contains("accepted"), "{n}");
    let approval = s.records("approval", "action_id", &first);
    assert_eq!(approval.len(), 1, "{approval:?}");
    assert_eq!(approval[0]["decision"], "approved");
    assert_eq!(approval[0]["by"], BY);
    s.eventually("the suspension's result", || {
        s.records("action-result", "action_id", &first)
            .iter()
            .any(|r| r["decision"] == "executed")
    });
    assert_eq!(fake.okta_user_status("00uconsole1"), "SUSPENDED");

    // Temporary actions: the suspension, lifted now.
    reload_until(&b, &s, "/console/actions", "the suspension", |b| {
        !b.find_all("#undos tbody tr").is_empty()
    });
    let row = b.text(&b.find("#undos tbody tr"));
    assert!(
        row.contains("00uconsole1") && row.contains("suspend-user"),
        "{row}"
    );
    b.screenshot(&shots, "actions");
    b.submit(&b.find("#undos tbody tr button"));
    let n = notice(&b);
    assert!(
        n.starts_with("executed unsuspend-user on 00uconsole1"),
        "{n}"
    );
    assert!(b.find_all("#undos tbody tr").is_empty());
    let undo = s.records("action-undo", "undoes", &first);
    assert_eq!(undo.len(), 1, "{undo:?}");
    assert_eq!(undo[0]["by"], BY);
    assert_eq!(undo[0]["early"], true);
    assert_eq!(undo[0]["decision"], "executed");
    assert_eq!(fake.okta_user_status("00uconsole1"), "ACTIVE");

    // Approving the third goes past the budget: denied, breaker tripped.
    b.goto(&s.console("/console/approvals"));
    b.submit(&b.find(&format!("tr[data-id=\"{third}\"] button.approve")));
    let n = notice(&b);
    assert!(n.contains("denied"), "{n}");
    b.goto(&s.console("/console/breakers"));
    let row = b.text(&b.find("tr[data-rule=\"guest-protected\"]"));
    assert!(row.contains("budget of rule guest-protected"), "{row}");
    b.screenshot(&shots, "breakers");
    b.submit(&b.find("tr[data-rule=\"guest-protected\"] button"));
    assert!(notice(&b).contains("reset"), "{}", notice(&b));
    assert!(b.find_all("#breakers tbody tr").is_empty());
    let reset = s.wd.records_of("breaker-reset");
    assert_eq!(reset.len(), 1, "{reset:?}");
    assert_eq!(reset[0]["by"], BY);

    // Reject the hostile one.
    b.goto(&s.console("/console/approvals"));
    b.submit(&b.find(&format!("tr[data-id=\"{hostile}\"] button.reject")));
    assert!(notice(&b).contains("rejected"), "{}", notice(&b));
    assert!(b.find_all("#approvals").is_empty());
    let rejected = s.records("approval", "action_id", &hostile);
    assert_eq!(rejected[0]["decision"], "rejected");
    assert_eq!(rejected[0]["by"], BY);

    // The audit timeline: verified chain, newest first, escaped markup.
    reload_until(&b, &s, "/console/audit", "a verified chain", |b| {
        b.text(&b.find("#chain-state"))
            .starts_with("Chain verified")
    });
    let all = b.find_all("#audit tbody tr").len();
    let seqs: Vec<u64> = b
        .find_all("#audit tbody tr td:first-child")
        .iter()
        .map(|e| b.text(e).parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    assert!(
        b.find_all("#audit td.who")
            .iter()
            .any(|e| b.text(e) == HOSTILE_USER)
    );
    assert!(b.find_all("script").is_empty());
    b.screenshot(&shots, "audit");
    // Filters narrow the rows: a user (through the form), a decision, a
    // rule, a time range.
    b.type_into(&b.find("#f-user"), "00uconsole1");
    b.submit(&b.find("#filter"));
    assert!(b.url().contains("user=00uconsole1"), "{}", b.url());
    let who: Vec<String> = b
        .find_all("#audit td.who")
        .iter()
        .map(|e| b.text(e))
        .collect();
    assert!(!who.is_empty() && who.len() < all, "{who:?}");
    assert!(who.iter().all(|w| w == "00uconsole1"), "{who:?}");
    b.screenshot(&shots, "audit-filtered");
    b.goto(&s.console("/console/audit?decision=approved"));
    let decisions: Vec<String> = b
        .find_all("#audit td.decision")
        .iter()
        .map(|e| b.text(e))
        .collect();
    assert_eq!(decisions, ["approved", "approved"]);
    b.goto(&s.console("/console/audit?rule=no-such-rule"));
    assert!(b.find_all("#audit").is_empty() && !b.find_all("#none").is_empty());
    b.goto(&s.console("/console/audit?from=2000-01-01T00:00&to=2000-01-02"));
    assert!(b.find_all("#audit").is_empty());
    b.goto(&s.console("/console/audit?type=approval&by=x&before="));
    assert_eq!(b.find_all("#audit tbody tr").len(), 3);

    // Sign out: the pages lead to the sign-in form again.
    b.goto(&s.console("/console/rules"));
    b.submit(&b.find("form.logout button"));
    assert!(b.url().ends_with("/console/login"), "{}", b.url());
    b.goto(&s.console("/console/approvals"));
    assert!(b.url().ends_with("/console/login"), "{}", b.url());
    vigil_host::audit::verify(&s.wd.audit_path()).unwrap();
}

/// A session cookie and CSRF token obtained over plain HTTP.
struct Session {
    cookie: String,
    csrf: String,
}

fn sign_in(s: &Service) -> Session {
    let c = client();
    let r = c
        .post(s.console("/console/login"))
        .header("Origin", &s.admin)
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = c
        .get(s.console("/console/approvals"))
        .header("Cookie", &cookie)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field")
        .to_owned();
    Session { cookie, csrf }
}

/// What a browser would not send: POSTs without or with a wrong CSRF
/// token or from another origin change nothing; without a session every
/// page redirects to sign-in; odd query strings get error pages; the
/// security headers; the console only on the admin listener.
#[test]
fn forged_requests_change_nothing_and_odd_input_gets_error_pages() {
    let fake = FakeIdp::start();
    let s = Service::start(&fake, true);
    s.push_denied("00uforged1", 1);
    s.eventually("the parked suspension", || {
        s.wd.records_of("action")
            .iter()
            .any(|a| a["decision"] == "pending")
    });
    let id = s.parked("00uforged1");
    let c = client();

    // Without a session: redirects, and a POST does nothing.
    for page in ["rules", "approvals", "actions", "breakers", "audit"] {
        let r = c
            .get(s.console(&format!("/console/{page}")))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{page}");
        assert_eq!(r.headers()["location"], "/console/login");
    }
    // A wrong token: 401, no cookie.
    let r = c
        .post(s.console("/console/login"))
        .header("Origin", &s.admin)
        .form(&[("token", "wrong")])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(s.p.log().contains("console: failed login"), "{}", s.p.log());

    let session = sign_in(&s);
    let lines = || s.wd.audit_records().len();
    let before = lines();
    let post = |origin: Option<&str>, csrf: Option<&str>| {
        let mut form = vec![("id", id.as_str()), ("decision", "approve")];
        if let Some(t) = csrf {
            form.push(("csrf", t));
        }
        let mut r = c
            .post(s.console("/console/approvals"))
            .header("Cookie", &session.cookie)
            .form(&form);
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        r.send().unwrap()
    };
    let admin = s.admin.clone();
    for (origin, csrf, why) in [
        (Some(admin.as_str()), None, "no CSRF token"),
        (
            Some(admin.as_str()),
            Some("0".repeat(64)),
            "a wrong CSRF token",
        ),
        (
            Some("http://evil.example"),
            Some(session.csrf.clone()),
            "another origin",
        ),
        (None, Some(session.csrf.clone()), "no Origin or Referer"),
    ] {
        let r = post(origin, csrf.as_deref());
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{why}");
        assert!(r.text().unwrap().contains("<title>Forbidden"), "{why}");
    }
    // Without a session a POST goes to sign-in, also with a token.
    let r = c
        .post(s.console("/console/approvals"))
        .header("Origin", &s.admin)
        .form(&[
            ("id", id.as_str()),
            ("decision", "approve"),
            ("csrf", &session.csrf),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(lines(), before, "a refused POST changed the audit log");
    assert!(s.records("approval", "action_id", &id).is_empty());
    // The genuine request works.
    let r = post(Some(&admin), Some(&session.csrf));
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(s.records("approval", "action_id", &id)[0]["by"], BY);

    // Odd input: error pages naming the field, never a crash.
    let get = |path: &str| {
        c.get(s.console(path))
            .header("Cookie", &session.cookie)
            .send()
            .unwrap()
    };
    for (path, status, says) in [
        (
            "/console/audit?before=abc",
            StatusCode::BAD_REQUEST,
            "before",
        ),
        (
            "/console/audit?before=5",
            StatusCode::BAD_REQUEST,
            "not the start of a record",
        ),
        (
            "/console/audit?before=99999999999999999999",
            StatusCode::BAD_REQUEST,
            "before",
        ),
        (
            "/console/audit?from=yesterday",
            StatusCode::BAD_REQUEST,
            "from",
        ),
        (
            "/console/audit?rule=%ff%fe&user=%00&&=&type",
            StatusCode::OK,
            "Audit log",
        ),
        (
            "/console/nowhere",
            StatusCode::NOT_FOUND,
            "no such console page",
        ),
    ] {
        let r = get(path);
        assert_eq!(r.status(), status, "{path}");
        let h = r.headers().clone();
        let body = r.text().unwrap();
        assert!(body.contains(says), "{path}: {body}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
    let long = format!("/console/audit?rule={}", "x".repeat(600));
    assert_eq!(get(&long).status(), StatusCode::BAD_REQUEST);
    let r = c
        .post(s.console("/console/actions"))
        .header("Cookie", &session.cookie)
        .header("Origin", &s.admin)
        .form(&[("id", "not-a-number"), ("csrf", &session.csrf)])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .post(s.console("/console/actions"))
        .header("Cookie", &session.cookie)
        .header("Origin", &s.admin)
        .form(&[("id", "12345"), ("csrf", &session.csrf)])
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "an unknown undo is a message"
    );
    assert!(
        get("/console/actions")
            .text()
            .unwrap()
            .contains("no temporary action with undo id 12345")
    );

    // The console is on the admin listener only.
    let r = c.get(s.p.url("/console/login")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(s.p.log().lines().all(|l| !l.contains(ADMIN_TOKEN)));
}

/// With no admin token configured the console does not exist.
#[test]
fn without_an_admin_token_the_console_is_absent() {
    let fake = FakeIdp::start();
    let s = Service::start(&fake, false);
    let c = client();
    for path in ["/console/login", "/console/rules", "/console/audit"] {
        let r = c.get(s.console(path)).send().unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(r.text().unwrap().contains("admin_token_env"), "{path}");
    }
    let r = c
        .post(s.console("/console/login"))
        .header("Origin", &s.admin)
        .form(&[("token", "")])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

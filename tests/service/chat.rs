//! Approvals from chat, against a fake Slack on loopback (the fake IdP: its
//! `/hooks/*` receive the approval messages and the `response_url`
//! answers, its `/slack/api` answers `usergroups.users.list`), with real
//! signatures: Slack's (`v0=` HMAC over the timestamp and body) and Vigil's
//! signed links.
//!
//! Attacks tried: a replayed callback, a wrong signature, a stale
//! timestamp, a user not on the allowlist, a `response_url` pointing
//! elsewhere, a link used twice, an expired link, a tampered link, and a
//! link fetched (`GET`) by a previewer.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::*;
use vigil_test_support::fake_idp::{FakeIdp, Fault, OKTA_TOKEN, SLACK_BOT_TOKEN};

const SLACK_SECRET: &str = "slack-signing-secret-for-tests";
const LINK_KEY: &str = "0123456789abcdef0123456789abcdef-link-key";
const APPROVER: &str = "U0APPROVER";
const GROUP: &str = "S0SECOPS";

/// A workdir with the secrets as files.
fn chat_workdir() -> Workdir {
    let wd = Workdir::new();
    std::fs::write(wd.path().join("okta-token"), OKTA_TOKEN).unwrap();
    std::fs::write(wd.path().join("slack-secret"), SLACK_SECRET).unwrap();
    std::fs::write(wd.path().join("slack-bot"), SLACK_BOT_TOKEN).unwrap();
    std::fs::write(wd.path().join("link-key"), LINK_KEY).unwrap();
    wd
}

/// mfa-push-fatigue enforcing, its suspensions parked for approval, the
/// webhook `soc` taking the approval requests; `approvals` completes the
/// `[approvals]` table.
fn chat_config(fake: &FakeIdp, approvals: &str) -> String {
    format!(
        "mode = \"enforce\"\nbuiltin_pack = false\n[[rules]]\nbuiltin = \"mfa-push-fatigue\"\n\
         allow = [\"suspend-user\"]\napproval = [\"suspend-user\"]\n\
         [connectors.http]\nbackoff_initial_ms = 20\nbackoff_max_ms = 100\n\
         [connectors.okta]\nbase_url = \"{okta}\"\ntoken_file = \"okta-token\"\n\
         [[connectors.webhooks]]\nname = \"soc\"\nurl = \"{hook}\"\nactions = [\"notify\"]\n\
         [approvals]\nnotify = [\"soc\"]\n{approvals}",
        okta = fake.base_url(),
        hook = fake.webhook_url("soc"),
    )
}

/// The push-bombing fixture as an Event Hook delivery, aimed at `user`
/// (new event ids for each user).
fn push_bombing_of(user: &str) -> Value {
    let text = push_bombing_delivery()
        .to_string()
        .replace("00upushbomb01", user)
        .replace("\"uuid\":\"", &format!("\"uuid\":\"{user}-"))
        .replace(
            "b4b7b4e2-0000-4000-8000-000000000001",
            &format!("delivery-{user}"),
        );
    serde_json::from_str(&text).unwrap()
}

/// Posts a delivery and waits for its parked suspension's request to reach
/// the `soc` webhook; answers that message.
fn park(s: &Service, fake: &FakeIdp, user: &str) -> Value {
    post_burst(s, user);
    let mut found = None;
    eventually("the approval request in chat", s, || {
        found = fake
            .requests_matching("POST", "/hooks/soc")
            .into_iter()
            .map(|r| r.json())
            .find(|m| m["vigil"]["target"] == user);
        found.is_some()
    });
    let message = found.unwrap();
    let id = message["vigil"]["action_id"].as_str().unwrap();
    // The delivery is audited once the notifier's thread reports it.
    eventually("the audited delivery", s, || {
        s.wd.records_of("approval-request")
            .iter()
            .any(|r| r["action_id"] == id && r["webhook"] == "soc" && r["result"] == "delivered")
    });
    message
}

/// Delivers a push-bombing burst against `user` through the Okta hook.
fn post_burst(s: &Service, user: &str) {
    let r = client()
        .post(s.url("/v1/hooks/okta"))
        .header("Authorization", HOOK_SECRET)
        .json(&push_bombing_of(user))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// A Slack interaction callback body for a click.
fn click_body(user: &str, name: &str, button: &str, action_id: &str, response_url: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": name, "name": name, "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM"},
        "actions": [{"action_id": button, "block_id": "vigil-approval", "value": action_id, "type": "button"}],
        "response_url": response_url,
        "trigger_id": "1.2.3"
    });
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

fn slack_signature(secret: &str, ts: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// POSTs a callback as Slack does, signed with `secret` at `ts`.
fn send_click(s: &Service, body: &str, secret: &str, ts: i64) -> reqwest::blocking::Response {
    let ts = ts.to_string();
    client()
        .post(s.url("/v1/chat/slack/actions"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", &ts)
        .header("X-Slack-Signature", slack_signature(secret, &ts, body))
        .body(body.to_owned())
        .send()
        .unwrap()
}

fn pending_ids(s: &Service) -> Vec<String> {
    let list: Value = client()
        .get(s.url("/v1/admin/approvals"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    list["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn slack_buttons_decide_approvals_and_refuse_forgeries_replays_and_strangers() {
    let fake = FakeIdp::start();
    fake.set_slack_usergroup(GROUP, &["U0GROUPIE"]);
    let approvals = format!(
        "[approvals.slack]\nsigning_secret_file = \"slack-secret\"\napprovers = [\"{APPROVER}\", \"{GROUP}\"]\n\
         bot_token_file = \"slack-bot\"\napi_url = \"{api}\"\nresponse_url_hosts = [\"127.0.0.1\"]\n",
        api = fake.slack_api_url()
    );
    let mut s = Service::start_in(chat_workdir(), "", &chat_config(&fake, &approvals), "http");

    // The message carries Approve and Reject buttons valued with the id.
    let first = park(&s, &fake, "00upushbomb01");
    let id = first["vigil"]["action_id"].as_str().unwrap().to_owned();
    let buttons: Vec<(String, String)> = first["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().clone())
        .map(|e| {
            (
                e["action_id"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        buttons,
        [
            ("vigil-approve".to_owned(), id.clone()),
            ("vigil-reject".to_owned(), id.clone())
        ]
    );
    assert_eq!(fake.okta_user_status("00upushbomb01"), "ACTIVE");

    // Forged: signed with another secret, or stale (signed correctly ten
    // minutes ago). Both 401, nothing decided, nothing posted back.
    let respond = fake.webhook_url("slack-response");
    let approve = click_body(APPROVER, "alice", "vigil-approve", &id, &respond);
    let r = send_click(&s, &approve, "not-the-secret", unix_now());
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().unwrap().contains("signature does not match"));
    let r = send_click(&s, &approve, SLACK_SECRET, unix_now() - 600);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().unwrap().contains("timestamp"));
    let unsigned = client()
        .post(s.url("/v1/chat/slack/actions"))
        .body(approve.clone())
        .send()
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(pending_ids(&s), [id.as_str()]);

    // The approver approves: the suspension runs, the decision is audited
    // with the Slack user, the message is replaced.
    let ts = unix_now();
    let signature = slack_signature(SLACK_SECRET, &ts.to_string(), &approve);
    let r = send_click(&s, &approve, SLACK_SECRET, ts);
    assert_eq!(r.status(), StatusCode::OK);
    eventually("the approval by Slack", &s, || {
        s.wd.records_of("approval")
            .iter()
            .any(|a| a["action_id"] == id.as_str())
    });
    let approval = s.wd.records_of("approval");
    assert_eq!(approval[0]["decision"], "approved");
    assert_eq!(approval[0]["by"], "slack U0APPROVER (alice)");
    eventually("the suspension", &s, || {
        fake.okta_user_status("00upushbomb01") == "SUSPENDED"
    });
    // Executed with its intent and result in the audit log.
    eventually("the audited execution", &s, || {
        s.wd.records_of("action-result")
            .iter()
            .any(|r| r["action_id"] == id.as_str() && r["decision"] == "executed")
    });
    eventually("the answer in Slack", &s, || {
        !fake
            .requests_matching("POST", "/hooks/slack-response")
            .is_empty()
    });
    let answer = fake.requests_matching("POST", "/hooks/slack-response")[0].json();
    assert_eq!(answer["replace_original"], true, "{answer}");
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .starts_with("Approved by <@U0APPROVER>"),
        "{answer}"
    );

    // The same callback again, byte for byte and within the window: a
    // replay, refused before anything is read.
    let r = client()
        .post(s.url("/v1/chat/slack/actions"))
        .header("X-Slack-Request-Timestamp", ts.to_string())
        .header("X-Slack-Signature", &signature)
        .body(approve.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().unwrap().contains("replay"));

    // A second parked suspension. A user not on the allowlist clicks:
    // an ephemeral refusal, audited; the approval stays pending.
    let second = park(&s, &fake, "00upushbomb02");
    let id2 = second["vigil"]["action_id"].as_str().unwrap().to_owned();
    fake.clear_requests();
    let stranger = click_body("U0STRANGER", "mallory", "vigil-approve", &id2, &respond);
    assert_eq!(
        send_click(&s, &stranger, SLACK_SECRET, unix_now()).status(),
        StatusCode::OK
    );
    eventually("the audited refusal", &s, || {
        !s.wd.records_of("approval-refused").is_empty()
    });
    let refused = &s.wd.records_of("approval-refused")[0];
    assert_eq!(refused["action_id"], id2.as_str());
    assert_eq!(refused["by"], "slack U0STRANGER (mallory)");
    assert_eq!(refused["rule"], "mfa-push-fatigue");
    assert_eq!(refused["target"], "00upushbomb02");
    assert!(refused["reason"].as_str().unwrap().contains("approvers"));
    eventually("the ephemeral refusal", &s, || {
        !fake
            .requests_matching("POST", "/hooks/slack-response")
            .is_empty()
    });
    let ephemeral = fake.requests_matching("POST", "/hooks/slack-response")[0].json();
    assert_eq!(ephemeral["response_type"], "ephemeral");
    assert_eq!(ephemeral["replace_original"], false);
    assert_eq!(pending_ids(&s), [id2.as_str()]);

    // A response_url on a host not allowed: the decision is taken (the
    // request is Slack's), nothing is posted there.
    // A member of the allowed user group rejects, answering to "localhost"
    // (the same fake, under a host name not on response_url_hosts).
    let elsewhere = respond.replace("127.0.0.1", "localhost") + "-elsewhere";
    let reject = click_body("U0GROUPIE", "grace", "vigil-reject", &id2, &elsewhere);
    assert_eq!(
        send_click(&s, &reject, SLACK_SECRET, unix_now()).status(),
        StatusCode::OK
    );
    eventually("the rejection", &s, || {
        s.wd.records_of("approval")
            .iter()
            .any(|a| a["action_id"] == id2.as_str())
    });
    let rejection =
        s.wd.records_of("approval")
            .into_iter()
            .find(|a| a["action_id"] == id2.as_str())
            .unwrap();
    assert_eq!(rejection["decision"], "rejected");
    assert_eq!(rejection["by"], "slack U0GROUPIE (grace)");
    assert_eq!(fake.okta_user_status("00upushbomb02"), "ACTIVE");
    assert!(
        s.log()
            .contains("response_url is not on a host of approvals.slack.response_url_hosts")
    );
    assert!(
        fake.requests_matching("POST", "/hooks/slack-response-elsewhere")
            .is_empty()
    );
    // The group lookup used the bot token.
    let lookups = fake.requests_matching("GET", "/slack/api/usergroups.users.list");
    assert!(!lookups.is_empty());
    assert_eq!(lookups[0].query_param("usergroup").as_deref(), Some(GROUP));

    // Deciding a decided approval from Slack: refused in Slack (ephemeral).
    fake.clear_requests();
    let again = click_body(APPROVER, "alice", "vigil-approve", &id2, &respond);
    assert_eq!(
        send_click(&s, &again, SLACK_SECRET, unix_now()).status(),
        StatusCode::OK
    );
    eventually("the answer", &s, || {
        !fake
            .requests_matching("POST", "/hooks/slack-response")
            .is_empty()
    });
    let answer = fake.requests_matching("POST", "/hooks/slack-response")[0].json();
    assert_eq!(answer["response_type"], "ephemeral");
    assert!(
        answer["text"].as_str().unwrap().contains("is rejected"),
        "{answer}"
    );
    assert_eq!(s.wd.records_of("approval").len(), 2);
    // Nothing secret in the log or the audit log.
    let audit = std::fs::read_to_string(s.wd.path().join("audit.jsonl")).unwrap_or_default();
    for text in [s.log(), audit] {
        assert!(!text.contains(SLACK_SECRET) && !text.contains(SLACK_BOT_TOKEN));
    }
    assert!(s.stop().success(), "{}", s.log());
}

/// `<id>.<decision>.<expiry>.<hex HMAC>` as Vigil signs it (the format
/// documented in `chat::links`).
fn link_token(key: &str, action_id: &str, decision: &str, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    for part in [
        "vigil-approval-link-v1",
        action_id,
        decision,
        &expires.to_string(),
    ] {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    format!(
        "{action_id}.{decision}.{expires}.{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[test]
fn signed_links_decide_once_refuse_expired_or_tampered_links_and_previews_decide_nothing() {
    let fake = FakeIdp::start();
    let approvals = "[approvals.links]\nbase_url = \"https://vigil.example.com\"\nkey_file = \"link-key\"\nexpire_secs = 600\n";
    let mut s = Service::start_in(chat_workdir(), "", &chat_config(&fake, approvals), "http");
    let message = park(&s, &fake, "00upushbomb01");
    let id = message["vigil"]["action_id"].as_str().unwrap().to_owned();
    let approve_url = message["vigil"]["approve_url"].as_str().unwrap().to_owned();
    let reject_url = message["vigil"]["reject_url"].as_str().unwrap().to_owned();
    let prefix = "https://vigil.example.com/v1/chat/links/";
    let path = |url: &str| format!("/v1/chat/links/{}", url.strip_prefix(prefix).unwrap());
    // Without Slack interactivity the message's buttons open the links.
    let blocks = message["blocks"].to_string();
    assert!(blocks.contains(&approve_url) && blocks.contains(&reject_url));
    // The link expires within expire_secs.
    let token = approve_url.strip_prefix(prefix).unwrap();
    let expires: i64 = token.split('.').nth(2).unwrap().parse().unwrap();
    assert!(expires > unix_now() && expires <= unix_now() + 600);
    // Links are credentials: not in the audit log nor the log.
    let audit = std::fs::read_to_string(s.wd.path().join("audit.jsonl")).unwrap_or_default();
    assert!(!audit.contains(token) && !s.log().contains(token));

    let c = client();
    // A previewer fetching the link decides nothing: it sees a page with a
    // button that POSTs.
    let page = c.get(s.url(&path(&approve_url))).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()["referrer-policy"],
        "no-referrer",
        "the URL holds a credential"
    );
    let html = page.text().unwrap();
    assert!(
        html.contains("Approve this action?") && html.contains("method=\"post\""),
        "{html}"
    );
    assert!(html.contains("00upushbomb01"));
    assert_eq!(pending_ids(&s), [id.as_str()]);

    // Tampered (decision swapped, expiry stretched) and forged links: 403.
    let tampered = path(&approve_url).replace(".approve.", ".reject.");
    assert_eq!(
        c.post(s.url(&tampered)).send().unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let stretched = link_token(
        "some-other-key-of-at-least-32-bytes",
        &id,
        "approve",
        expires + 86_400,
    );
    assert_eq!(
        c.post(s.url(&format!("/v1/chat/links/{stretched}")))
            .send()
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.get(s.url("/v1/chat/links/not-a-link"))
            .send()
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    // Expired (signed with the right key, expiry passed): 410.
    let expired = link_token(LINK_KEY, &id, "approve", unix_now() - 1);
    let r = c
        .post(s.url(&format!("/v1/chat/links/{expired}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().unwrap().contains("expired"));
    assert!(s.wd.records_of("approval").is_empty());
    assert_eq!(pending_ids(&s), [id.as_str()]);

    // The approve link, used: executed, audited as a signed link.
    let r = c.post(s.url(&path(&approve_url))).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().unwrap().contains("Approved"));
    let approval = s.wd.records_of("approval");
    assert_eq!(approval.len(), 1);
    assert_eq!(approval[0]["decision"], "approved");
    assert_eq!(approval[0]["by"], "signed link from 127.0.0.1");
    eventually("the suspension", &s, || {
        fake.okta_user_status("00upushbomb01") == "SUSPENDED"
    });
    // Executed with its intent and result in the audit log.
    eventually("the audited execution", &s, || {
        s.wd.records_of("action-result")
            .iter()
            .any(|r| r["action_id"] == id.as_str() && r["decision"] == "executed")
    });
    // Used once: the same link again, or its sibling, decides nothing.
    for url in [&approve_url, &reject_url] {
        let r = c.post(s.url(&path(url))).send().unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert!(r.text().unwrap().contains("is approved"));
    }
    let r = c.get(s.url(&path(&reject_url))).send().unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(s.wd.records_of("approval").len(), 1);
    assert!(s.stop().success(), "{}", s.log());
}

#[test]
fn an_unreachable_chat_leaves_the_approval_pending_and_says_so() {
    let fake = FakeIdp::start();
    fake.inject("POST", "/hooks/soc", Fault::Status(500), 100);
    let approvals =
        "[approvals.links]\nbase_url = \"https://vigil.example.com\"\nkey_file = \"link-key\"\n";
    let mut s = Service::start_in(chat_workdir(), "", &chat_config(&fake, approvals), "http");
    post_burst(&s, "00upushbomb01");
    eventually("the failed request", &s, || {
        !s.wd.records_of("approval-request").is_empty()
    });
    let failed = &s.wd.records_of("approval-request")[0];
    assert_eq!(failed["result"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("webhook soc"),
        "{failed}"
    );
    assert_eq!(
        pending_ids(&s).len(),
        1,
        "still decidable from the CLI or the API"
    );
    assert!(s.stop().success(), "{}", s.log());
}

#[test]
fn a_slow_chat_does_not_hold_up_detection() {
    // The first approval request takes 8 s to be answered. Meanwhile a
    // second burst is judged and parked: posting happens off the pipeline
    // thread (posting on it would judge the second burst only after the
    // first request's record).
    let fake = FakeIdp::start();
    fake.inject(
        "POST",
        "/hooks/soc",
        Fault::Delay(Duration::from_secs(8)),
        1,
    );
    let approvals =
        "[approvals.links]\nbase_url = \"https://vigil.example.com\"\nkey_file = \"link-key\"\n";
    let mut s = Service::start_in(chat_workdir(), "", &chat_config(&fake, approvals), "http");
    let pending = |s: &Service| {
        s.wd.records_of("action")
            .iter()
            .filter(|a| a["decision"] == "pending")
            .count()
    };
    for (n, user) in ["00upushbomb01", "00upushbomb02"].into_iter().enumerate() {
        post_burst(&s, user);
        eventually("the parked suspension", &s, || pending(&s) == n + 1);
    }
    assert!(
        s.wd.records_of("approval-request").is_empty(),
        "the second burst was judged only after the first request was posted"
    );
    // Both requests are delivered in the end (the slow one included), and
    // a stop waits for them.
    assert!(s.stop().success(), "{}", s.log());
    let delivered = s.wd.records_of("approval-request");
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert!(delivered.iter().all(|r| r["result"] == "delivered"));
}

#[test]
fn a_request_not_posted_before_a_kill_is_posted_at_the_next_start_and_only_then() {
    // The first post hangs; the service is killed (-9) while it waits, so
    // the request was sent but never confirmed. The next start posts it
    // again (at least once); the start after that does not.
    let fake = FakeIdp::start();
    fake.inject(
        "POST",
        "/hooks/soc",
        Fault::Delay(Duration::from_secs(60)),
        1,
    );
    let approvals =
        "[approvals.links]\nbase_url = \"https://vigil.example.com\"\nkey_file = \"link-key\"\n";
    let config = chat_config(&fake, approvals);
    let mut s = Service::start_in(chat_workdir(), "", &config, "http");
    post_burst(&s, "00upushbomb01");
    eventually("the post under way", &s, || {
        !fake.requests_matching("POST", "/hooks/soc").is_empty()
    });
    s.p.kill9();
    assert!(s.wd.records_of("approval-request").is_empty());
    let id = fake.requests_matching("POST", "/hooks/soc")[0].json()["vigil"]["action_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let Service { wd, p } = s;
    drop(p);
    let mut s = Service::start_in(wd, "", &config, "http");
    eventually("the request posted again", &s, || {
        s.wd.records_of("approval-request")
            .iter()
            .any(|r| r["action_id"] == id.as_str() && r["result"] == "delivered")
    });
    assert!(s.log().contains("the last run did not post"), "{}", s.log());
    let posts = fake.requests_matching("POST", "/hooks/soc");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].json()["vigil"]["action_id"], id.as_str());
    assert_eq!(pending_ids(&s), [id.as_str()], "still decidable");
    assert!(s.stop().success(), "{}", s.log());

    let Service { wd, p } = s;
    drop(p);
    let mut s = Service::start_in(wd, "", &config, "http");
    assert_eq!(pending_ids(&s), [id.as_str()]);
    assert!(s.stop().success(), "{}", s.log());
    assert_eq!(
        fake.requests_matching("POST", "/hooks/soc").len(),
        2,
        "posted once it was confirmed: not again"
    );
}

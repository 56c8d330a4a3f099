//! The long-running sources without the service: the Okta System Log
//! poller against the fake IdP (paging, 429, cursor and restart, caught-up,
//! foreign next links, refused token) and the file tail on real files
//! (split writes, rotation, truncation, bad lines, saved position). Each
//! also runs once through its thread wrapper with a real queue.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_host::actions::http::RetryPolicy;
use vigil_host::config::{Config, SourceConfig};
use vigil_host::normalize::Normalizer;
use vigil_host::secret::Secret;
use vigil_host::sources::Line;
use vigil_host::sources::cursor::SourceState;
use vigil_host::sources::okta_poll::{
    self, OktaPollSettings, PollError, Poller, Start, cursor_key,
};
use vigil_host::sources::queue::{self, Recv, Shutdown};
use vigil_host::sources::tail::{self, Position, Tail, TailFrom, TailLine, TailStats};
use vigil_host::store::Store;
use vigil_test_support::fake_idp::{FakeIdp, Fault, OKTA_TOKEN};
use vigil_test_support::fixture;

/// The first `n` records of a fixture, as JSON and as lines.
fn fixture_records(name: &str, n: usize) -> (Vec<Value>, Vec<String>) {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let lines: Vec<String> = text.lines().take(n).map(str::to_owned).collect();
    assert_eq!(lines.len(), n, "{name} has at least {n} lines");
    let values = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (values, lines)
}

fn uuids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["uuid"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// Okta System Log poller

/// Five Okta events in the fake IdP, and the `start` just before the first.
fn idp_with_events() -> (FakeIdp, Vec<Value>) {
    let idp = FakeIdp::start();
    let (events, _) = fixture_records("push-bombing.jsonl", 5);
    idp.push_okta_logs(events.clone());
    (idp, events)
}

fn settings(idp: &FakeIdp, events: &[Value]) -> OktaPollSettings {
    OktaPollSettings {
        base_url: idp.base_url(),
        authorization: Secret::new(format!("SSWS {OKTA_TOKEN}")),
        interval: Duration::from_secs(1),
        limit: 2,
        start: Start::Since(events[0]["published"].as_str().unwrap().to_owned()),
        filter: None,
        http: RetryPolicy {
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
    }
}

fn poller(settings: OktaPollSettings, state: &SourceState) -> Poller {
    Poller::new(settings, state.clone(), Normalizer::default()).unwrap()
}

fn memory_state() -> SourceState {
    SourceState::new(Store::in_memory().unwrap())
}

/// Polls until an empty page; returns the event ids in order.
fn poll_until_caught_up(p: &mut Poller) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..20 {
        let page = p.poll_once().unwrap();
        if page.caught_up() {
            return ids;
        }
        ids.extend(page.events.into_iter().map(|e| e.id));
    }
    panic!("never caught up");
}

// 2.5 pages at limit = 2: every event once, in order; the first request has
// since/sortOrder/limit, the others follow the next link (after=).
#[test]
fn okta_poll_pages_every_event_once_in_order() {
    let (idp, events) = idp_with_events();
    let state = memory_state();
    let mut p = poller(settings(&idp, &events), &state);
    assert_eq!(poll_until_caught_up(&mut p), uuids(&events));

    let polls = idp.requests_matching("GET", "/api/v1/logs");
    assert_eq!(polls.len(), 4, "2 + 2 + 1 events, then an empty page");
    let first = &polls[0];
    assert_eq!(
        first.query_param("since").as_deref(),
        events[0]["published"].as_str()
    );
    assert_eq!(first.query_param("sortOrder").as_deref(), Some("ASCENDING"));
    assert_eq!(first.query_param("limit").as_deref(), Some("2"));
    assert_eq!(
        first.header("authorization"),
        Some(format!("SSWS {OKTA_TOKEN}").as_str())
    );
    let afters: Vec<Option<String>> = polls.iter().map(|r| r.query_param("after")).collect();
    let ids = uuids(&events);
    assert_eq!(
        afters,
        [
            None,
            Some(ids[1].clone()),
            Some(ids[3].clone()),
            Some(ids[4].clone())
        ]
    );
    assert_eq!(p.stats.events, 5);
    assert_eq!(p.stats.malformed, 0);
}

// A 429 between two pages is waited out (X-Rate-Limit-Reset) by the HTTP
// client, and paging resumes at the same next link: nothing lost or doubled.
#[test]
fn okta_poll_waits_out_a_rate_limit_mid_paging() {
    let (idp, events) = idp_with_events();
    let state = memory_state();
    let mut p = poller(settings(&idp, &events), &state);
    let mut ids: Vec<String> = p
        .poll_once()
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.id)
        .collect();
    idp.inject(
        "GET",
        "/api/v1/logs",
        Fault::OktaRateLimit { reset_in_secs: 1 },
        1,
    );
    let started = Instant::now();
    ids.extend(poll_until_caught_up(&mut p));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the reset was waited for"
    );
    assert_eq!(ids, uuids(&events));
    let polls = idp.requests_matching("GET", "/api/v1/logs");
    assert_eq!(polls.len(), 5, "one 429 and its retry");
    assert_eq!(
        polls[1].query, polls[2].query,
        "the retry asks the same page"
    );
}

// The cursor is saved only by the page's on_done; a poller started on the
// same state file (a restart) resumes at the last saved page: the unsaved
// page is read again, the saved ones are not, nothing is skipped.
#[test]
fn okta_poll_resumes_from_the_saved_cursor_after_a_restart() {
    let (idp, events) = idp_with_events();
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.db");
    let ids = uuids(&events);
    {
        let state = SourceState::open(&state_path).unwrap();
        let mut p = poller(settings(&idp, &events), &state);
        let start = state.load(p.cursor_key()).unwrap().unwrap();
        assert!(start.contains("since="), "the start URL is saved: {start}");
        for expected in [&ids[0..2], &ids[2..4]] {
            let page = p.poll_once().unwrap();
            let got: Vec<String> = page.events.iter().map(|e| e.id.clone()).collect();
            assert_eq!(got, expected);
            let on_done = p.cursor_saver(&page);
            assert_ne!(state.load(p.cursor_key()).unwrap().unwrap(), page.next);
            on_done();
            assert_eq!(state.load(p.cursor_key()).unwrap().unwrap(), page.next);
        }
        // The third page is read but never processed: killed mid-page.
        let page = p.poll_once().unwrap();
        assert_eq!(page.events.len(), 1);
    }
    let state = SourceState::open(&state_path).unwrap();
    let mut p = poller(settings(&idp, &events), &state);
    assert!(
        p.next_url().contains(&format!("after={}", ids[3])),
        "{}",
        p.next_url()
    );
    assert_eq!(poll_until_caught_up(&mut p), [ids[4].clone()]);
    assert_eq!(
        cursor_key(&idp.base_url()),
        format!("okta-poll:{}:next", idp.base_url())
    );
}

// An empty page means caught up; the same next link then returns what was
// published meanwhile.
#[test]
fn okta_poll_empty_page_is_caught_up_then_new_events_arrive() {
    let (idp, events) = idp_with_events();
    let state = memory_state();
    let mut p = poller(settings(&idp, &events), &state);
    poll_until_caught_up(&mut p);
    let waiting_at = p.next_url().to_owned();
    let page = p.poll_once().unwrap();
    assert!(page.caught_up() && page.events.is_empty());
    assert_eq!(p.next_url(), waiting_at, "the next link does not move");

    let (more, _) = fixture_records("push-bombing.jsonl", 7);
    idp.push_okta_logs(more[5..].to_vec());
    let page = p.poll_once().unwrap();
    let got: Vec<String> = page.events.into_iter().map(|e| e.id).collect();
    assert_eq!(got, uuids(&more[5..]));
}

// A next link to another host is refused: no request goes there (the token
// stays home) and the cursor does not move.
#[test]
fn okta_poll_refuses_a_next_link_to_a_foreign_host() {
    let (idp, events) = idp_with_events();
    let state = memory_state();
    let mut p = poller(settings(&idp, &events), &state);
    let before = p.next_url().to_owned();
    idp.set_okta_logs_next_base(Some("http://evil.example:8080"));
    let err = p.poll_once().unwrap_err();
    assert!(
        matches!(&err, PollError::ForeignLink { url, .. } if url.starts_with("http://evil.example:8080/")),
        "{err}"
    );
    assert_eq!(p.next_url(), before);
    // Back to normal: the same page is read again, nothing skipped.
    idp.set_okta_logs_next_base(None);
    assert_eq!(poll_until_caught_up(&mut p), uuids(&events));
}

// A bad token is reported as such (not as a generic failure).
#[test]
fn okta_poll_reports_a_rejected_token() {
    let (idp, events) = idp_with_events();
    let mut s = settings(&idp, &events);
    s.authorization = Secret::new("SSWS wrong-token");
    let mut p = poller(s, &memory_state());
    let err = p.poll_once().unwrap_err();
    assert!(matches!(err, PollError::Unauthorized(_)), "{err}");
    assert!(err.to_string().contains("HTTP 401"), "{err}");
    assert!(!err.to_string().contains("wrong-token"), "{err}");
}

// A LogEvent that does not normalize is skipped and counted; the rest of
// the page goes on.
#[test]
fn okta_poll_skips_a_malformed_log_event() {
    let idp = FakeIdp::start();
    let (mut events, _) = fixture_records("push-bombing.jsonl", 3);
    // Still after `since` for the fake's string comparison, but no time.
    let bad = events[1]["published"].as_str().unwrap().replace('T', "X");
    events[1]["published"] = Value::String(bad);
    idp.push_okta_logs(events.clone());
    let mut s = settings(&idp, &events);
    s.limit = 10;
    let mut p = poller(s, &memory_state());
    let page = p.poll_once().unwrap();
    assert_eq!((page.received, page.malformed), (3, 1));
    let got: Vec<String> = page.events.into_iter().map(|e| e.id).collect();
    let ids = uuids(&events);
    assert_eq!(got, [ids[0].clone(), ids[2].clone()]);
}

// Through the thread: the config is read (token file), each page becomes a
// batch, and the cursor is saved when the batch's on_done runs.
#[test]
fn okta_poll_thread_sends_batches_and_saves_on_done() {
    let (idp, events) = idp_with_events();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("okta-token");
    std::fs::write(&token, format!("{OKTA_TOKEN}\n")).unwrap();
    let state_path = dir.path().join("state.db");
    let config = Config::parse(&format!(
        "[[sources]]\ntype = \"okta-poll\"\nbase_url = \"{}\"\ntoken_file = \"{}\"\n\
         interval_secs = 1\nlimit = 2\nstart = \"{}\"\n",
        idp.base_url(),
        token.display(),
        events[0]["published"].as_str().unwrap()
    ))
    .unwrap();
    let SourceConfig::OktaPoll(c) = &config.sources[0] else {
        panic!("an okta-poll source");
    };
    let (tx, rx) = queue::bounded(1);
    let shutdown = Shutdown::new();
    let handle =
        okta_poll::spawn(c, &config.connectors, &state_path, tx, shutdown.clone()).unwrap();
    let mut ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ids.len() < 5 && Instant::now() < deadline {
        if let Recv::Batch(b) = rx.recv_timeout(Duration::from_millis(100)) {
            assert_eq!(b.source, "okta-poll");
            ids.extend(b.events.into_iter().map(|e| e.id));
            (b.on_done.expect("a cursor saver"))();
        }
    }
    assert_eq!(ids, uuids(&events));
    shutdown.stop();
    handle.join().unwrap();
    let store = Store::open(&state_path).unwrap();
    let saved = store.meta(&cursor_key(&idp.base_url())).unwrap().unwrap();
    assert!(
        saved.contains(&format!("after={}", ids[4])),
        "the last page's next link: {saved}"
    );
}

// Config: defaults, and errors naming the key.
#[test]
fn okta_poll_and_tail_config_keys() {
    let c = Config::parse(
        "[connectors.okta]\nbase_url = \"https://o.okta.com\"\ntoken_env = \"OKTA_T\"\n\
         [[sources]]\ntype = \"okta-poll\"\nfilter = 'eventType sw \"user.mfa\"'\n\
         [[sources]]\ntype = \"tail\"\npath = \"siem.jsonl\"\n",
    )
    .unwrap();
    let SourceConfig::OktaPoll(p) = &c.sources[0] else {
        panic!()
    };
    assert_eq!(
        (p.interval_secs, p.limit, p.start.as_str()),
        (10, 1000, "now")
    );
    assert_eq!(p.base_url, None, "taken from [connectors.okta] at start");
    let SourceConfig::Tail(t) = &c.sources[1] else {
        panic!()
    };
    assert_eq!((t.from, t.poll_ms), (TailFrom::End, 250));

    let err = |text: &str| format!("{:#}", Config::parse(text).unwrap_err());
    let poll =
        "[[sources]]\ntype = \"okta-poll\"\nbase_url = \"https://o.okta.com\"\ntoken_env = \"T\"\n";
    for (extra, expected) in [
        ("limit = 0\n", "sources[0].limit is 0"),
        ("limit = 1001\n", "sources[0].limit is 1001"),
        ("interval_secs = 0\n", "sources[0].interval_secs is 0"),
        ("start = \"yesterday\"\n", "sources[0].start: \"yesterday\""),
        ("filter = \" \"\n", "sources[0].filter is empty"),
        (
            "token_file = \"t\"\n",
            "sources[0]: set either token_env or token_file",
        ),
        ("colour = \"red\"\n", "unknown field `colour`"),
    ] {
        let e = err(&format!("{poll}{extra}"));
        assert!(e.contains(expected), "{extra:?}: {e}");
    }
    let e = err("[[sources]]\ntype = \"okta-poll\"\n");
    assert!(e.contains("sources[0].base_url"), "{e}");
    let e = err(
        "[[sources]]\ntype = \"okta-poll\"\nbase_url = \"http://o.okta.com\"\ntoken_env = \"T\"\n",
    );
    assert!(
        e.contains("sources[0].base_url") && e.contains("https"),
        "{e}"
    );
    // Another org than the connector's: the connector's token is not lent.
    let e = err(
        "[connectors.okta]\nbase_url = \"https://o.okta.com\"\ntoken_env = \"OKTA_T\"\n\
         [[sources]]\ntype = \"okta-poll\"\nbase_url = \"https://other.okta.com\"\n",
    );
    assert!(e.contains("sources[0].token_env"), "{e}");
    let e = err("[[sources]]\ntype = \"tail\"\npath = \"x\"\npoll_ms = 0\n");
    assert!(e.contains("sources[0].poll_ms is 0"), "{e}");
    let e = err("[[sources]]\ntype = \"tail\"\npath = \"x\"\nfrom = \"middle\"\n");
    assert!(e.contains("middle"), "{e}");
}

// ---------------------------------------------------------------------------
// File tail

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Normalizes what the tail has now; returns the event ids.
fn read_ids(t: &mut Tail, stats: &mut TailStats) -> Vec<String> {
    let lines = t.read_available().unwrap();
    tail::normalize_lines(&Normalizer::default(), t.path(), lines, stats)
        .into_iter()
        .flat_map(|b| b.events)
        .map(|e| e.id)
        .collect()
}

fn lines_with_newlines(lines: &[String]) -> Vec<Vec<u8>> {
    lines
        .iter()
        .map(|l| format!("{l}\n").into_bytes())
        .collect()
}

// Lines appended in several writes, one split across two: each event once.
#[test]
fn tail_delivers_each_appended_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.jsonl");
    let (events, lines) = fixture_records("push-bombing.jsonl", 5);
    let bytes = lines_with_newlines(&lines);
    append(&path, b"");
    let mut t = Tail::new(&path, TailFrom::End, 1 << 20, None);
    let mut stats = TailStats::default();
    let mut ids = read_ids(&mut t, &mut stats);
    assert!(ids.is_empty());

    append(&path, &bytes[0]);
    let (head, rest) = bytes[1].split_at(bytes[1].len() / 2);
    append(&path, head);
    ids.extend(read_ids(&mut t, &mut stats));
    assert_eq!(ids.len(), 1, "the half line is held back");
    append(&path, rest);
    append(&path, &[bytes[2].clone(), bytes[3].clone()].concat());
    ids.extend(read_ids(&mut t, &mut stats));
    ids.extend(read_ids(&mut t, &mut stats));
    append(&path, &bytes[4]);
    ids.extend(read_ids(&mut t, &mut stats));
    assert_eq!(ids, uuids(&events));
    assert_eq!((stats.events, stats.malformed, stats.oversized), (5, 0, 0));
}

// Rotation by rename + new file: the old file's unread lines (its last one
// without a newline) come first, then the new file's; none lost or doubled.
#[test]
fn tail_follows_rotation_by_rename() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.jsonl");
    let (events, lines) = fixture_records("push-bombing.jsonl", 6);
    let bytes = lines_with_newlines(&lines);
    append(&path, &[bytes[0].clone(), bytes[1].clone()].concat());
    let mut t = Tail::new(&path, TailFrom::Start, 1 << 20, None);
    let mut stats = TailStats::default();
    let mut ids = read_ids(&mut t, &mut stats);
    assert_eq!(ids.len(), 2);

    append(&path, &bytes[2]);
    append(&path, lines[3].as_bytes()); // no newline: the writer was cut off
    std::fs::rename(&path, dir.path().join("siem.jsonl.1")).unwrap();
    append(&path, &[bytes[4].clone(), bytes[5].clone()].concat());
    ids.extend(read_ids(&mut t, &mut stats));
    assert_eq!(ids, uuids(&events));
    assert_eq!(t.stats.rotations, 1);

    // The rotated-away file is no longer read.
    append(&dir.path().join("siem.jsonl.1"), b"\n");
    assert!(read_ids(&mut t, &mut stats).is_empty());
}

// Truncation (copytruncate): the new content is read from the start.
#[test]
fn tail_reads_the_new_content_after_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.jsonl");
    let (events, lines) = fixture_records("push-bombing.jsonl", 4);
    let bytes = lines_with_newlines(&lines);
    append(&path, &bytes[..3].concat());
    let mut t = Tail::new(&path, TailFrom::Start, 1 << 20, None);
    let mut stats = TailStats::default();
    assert_eq!(read_ids(&mut t, &mut stats).len(), 3);

    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&path, &bytes[3]);
    assert_eq!(read_ids(&mut t, &mut stats), uuids(&events[3..]));
    assert_eq!(t.stats.truncations, 1);
}

// Oversized, non-UTF-8 and malformed lines are counted and skipped; the good
// lines around them still arrive; blank lines are not errors.
#[test]
fn tail_counts_and_skips_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.jsonl");
    let (events, lines) = fixture_records("push-bombing.jsonl", 2);
    append(&path, b"");
    // The fixture lines are about 2 KiB.
    let mut t = Tail::new(&path, TailFrom::Start, 4096, None);
    let mut stats = TailStats::default();
    let mut text = Vec::new();
    text.extend(format!("{}\n", lines[0]).bytes());
    text.extend(format!("{{\"eventType\":\"{}\"}}\n", "x".repeat(5000)).bytes());
    text.extend(b"{\"hello\":\"world\"}\n");
    text.extend(b"{\"eventType\": \"user.session.start\", \"uuid\": \n");
    text.extend(b"\xff\xfe\n");
    text.extend(b"\n");
    text.extend(format!("{}\n", lines[1]).bytes());
    append(&path, &text);
    let read = t.read_available().unwrap();
    let numbers: Vec<(u64, bool)> = read
        .iter()
        .map(|l: &TailLine| (l.line_no, matches!(l.line, Line::TooLong { .. })))
        .collect();
    assert_eq!(numbers[1], (2, true), "line 2 is the oversized one");
    let ids: Vec<String> = tail::normalize_lines(&Normalizer::default(), &path, read, &mut stats)
        .into_iter()
        .flat_map(|b| b.events)
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, uuids(&events));
    assert_eq!(t.stats.oversized, 1);
    assert_eq!((stats.events, stats.malformed), (2, 3));
}

// Through the thread: batches carry the events, on_done saves the position,
// and a tail started again on the same state continues after it.
#[test]
fn tail_thread_saves_its_position_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siem.jsonl");
    let state_path = dir.path().join("state.db");
    let (events, lines) = fixture_records("push-bombing.jsonl", 5);
    let bytes = lines_with_newlines(&lines);
    append(&path, &bytes[0]); // there before the first start: from = end skips it
    let config = Config::parse(&format!(
        "[[sources]]\ntype = \"tail\"\npath = \"{}\"\npoll_ms = 20\n",
        path.display()
    ))
    .unwrap();
    let SourceConfig::Tail(c) = &config.sources[0] else {
        panic!("a tail source");
    };
    let receive = |rx: &queue::QueueReceiver, n: usize| {
        let mut ids = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while ids.len() < n && Instant::now() < deadline {
            if let Recv::Batch(b) = rx.recv_timeout(Duration::from_millis(50)) {
                assert_eq!(b.source, format!("tail:{}", path.display()));
                ids.extend(b.events.into_iter().map(|e| e.id));
                (b.on_done.expect("a position saver"))();
            }
        }
        ids
    };
    let ids = uuids(&events);

    let (tx, rx) = queue::bounded(4);
    let shutdown = Shutdown::new();
    let handle = tail::spawn(c, 1 << 20, &state_path, tx, shutdown.clone()).unwrap();
    // from = end is the end when spawn returns, not at the first poll.
    append(&path, &[bytes[1].clone(), bytes[2].clone()].concat());
    assert_eq!(receive(&rx, 2), ids[1..3]);
    shutdown.stop();
    handle.join().unwrap();

    // Written while stopped: read after the restart, and nothing before.
    append(&path, &[bytes[3].clone(), bytes[4].clone()].concat());
    let saved = Store::open(&state_path)
        .unwrap()
        .meta(&tail::position_key(&path))
        .unwrap()
        .unwrap();
    let pos = Position::decode(&saved).unwrap();
    assert_eq!(pos.offset as usize, bytes[..3].concat().len());
    let (tx, rx) = queue::bounded(4);
    let shutdown = Shutdown::new();
    let handle = tail::spawn(c, 1 << 20, &state_path, tx, shutdown.clone()).unwrap();
    assert_eq!(receive(&rx, 2), ids[3..5]);
    shutdown.stop();
    handle.join().unwrap();
}

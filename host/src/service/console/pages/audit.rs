//! `/console/audit`: the audit log, newest first, filtered by rule, user,
//! decision, type and time, paged backwards by byte offset (see
//! `audit_view`), under the chain's verification state.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::super::audit_view::{self, ChainStatus, Filter, MAX_SCAN_BYTES, PAGE_ROWS};
use super::super::context::{Console, logged_in, query_fields};
use super::super::html::{esc, link};

/// How long a page view waits for the verification to catch up before it
/// shows its progress instead (it goes on in the background).
const VERIFY_WAIT: Duration = Duration::from_secs(3);

/// Record types and decisions offered in the filter form.
const TYPES: [&str; 17] = [
    "finding",
    "action",
    "action-result",
    "action-undo",
    "approval",
    "approval-expired",
    "approval-request",
    "approval-refused",
    "breaker-tripped",
    "breaker-reset",
    "admin",
    "rule-fault",
    "rule-quarantined",
    "rule-released",
    "checkpoint",
    "resealed",
    "reload",
];
const DECISIONS: [&str; 12] = [
    "accepted",
    "pending",
    "dry-run",
    "denied",
    "executed",
    "failed",
    "duplicate",
    "approved",
    "rejected",
    "retrying",
    "unknown",
    "abandoned",
];

/// `GET /console/audit?rule=&user=&decision=&type=&from=&to=&before=`
pub async fn show(
    State(c): State<Arc<Console>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut session = match logged_in(&c, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = match query_fields(query.as_deref()) {
        Ok(q) => q,
        Err(why) => return session.error(StatusCode::BAD_REQUEST, &why),
    };
    let mut filter = Filter {
        rule: q.get("rule").to_owned(),
        user: q.get("user").to_owned(),
        decision: q.get("decision").to_owned(),
        kind: q.get("type").to_owned(),
        ..Filter::default()
    };
    for (name, slot) in [("from", &mut filter.from), ("to", &mut filter.to)] {
        match audit_view::parse_time(q.get(name)) {
            Ok(t) => *slot = t,
            Err(why) => {
                return session.error(StatusCode::BAD_REQUEST, &format!("{name}: {why}"));
            }
        }
    }
    let before = match q.get("before") {
        "" => None,
        b => match b.parse::<u64>() {
            Ok(b) => Some(b),
            Err(_) => {
                return session.error(
                    StatusCode::BAD_REQUEST,
                    &format!("before: {b:?} is not a byte offset"),
                );
            }
        },
    };

    // The chain: catch up with what was appended (bounded wait), and the
    // page of records, both off the async workers.
    let verify = c.verify.clone();
    let catch_up = tokio::task::spawn_blocking(move || verify.catch_up());
    let _ = tokio::time::timeout(VERIFY_WAIT, catch_up).await;
    let chain = c.verify.status();
    let head = crate::audit::log::read_head_file(&c.audit_path);
    let path = c.audit_path.clone();
    let f = filter.clone();
    let read = tokio::task::spawn_blocking(move || {
        audit_view::read_page(&path, before, &f, PAGE_ROWS, MAX_SCAN_BYTES)
    })
    .await;
    let page_rows = match read {
        Ok(Ok(p)) => p,
        Ok(Err(e @ audit_view::PageError::BadOffset(_))) => {
            return session.error(StatusCode::BAD_REQUEST, &e.to_string());
        }
        Ok(Err(e)) => return session.error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => {
            return session.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("reading the log failed: {e}"),
            );
        }
    };

    let mut page = session.page("Audit log", "audit");
    page.push(&chain_html(
        &chain,
        head.ok().flatten().map(|h| (h.seq, h.hash)),
    ));
    page.push(&filter_form(&q));
    let pairs = [
        ("rule", q.get("rule")),
        ("user", q.get("user")),
        ("decision", q.get("decision")),
        ("type", q.get("type")),
        ("from", q.get("from")),
        ("to", q.get("to")),
    ];
    if page_rows.rows.is_empty() {
        page.push("<p id=\"none\">No record matches.</p>");
    } else {
        let mut t = String::from(
            "<table id=\"audit\"><thead><tr><th>Seq</th><th>Time</th><th>Type</th><th>Rule</th>\
             <th>Decision</th><th>Target / subject</th><th>By</th><th>What</th><th>Record</th>\
             </tr></thead><tbody>",
        );
        for row in &page_rows.rows {
            match &row.record {
                Ok(r) => t.push_str(&record_row(r, row.offset, row.len)),
                Err(why) => {
                    let _ = write!(
                        t,
                        "<tr class=\"unreadable\" data-offset=\"{}\"><td colspan=\"9\">at byte {}: {}</td></tr>",
                        row.offset,
                        row.offset,
                        esc(why)
                    );
                }
            }
        }
        t.push_str("</tbody></table>");
        page.push(&t);
    }
    let mut nav = String::from("<p class=\"pager\">");
    if before.is_some() {
        let _ = write!(
            nav,
            "<a href=\"{}\" id=\"newest\">Newest</a> ",
            esc(&link("/console/audit", &pairs))
        );
    }
    if let Some(more) = page_rows.more {
        let more = more.to_string();
        let mut with_before = pairs.to_vec();
        with_before.push(("before", more.as_str()));
        let _ = write!(
            nav,
            "<a href=\"{}\" id=\"older\">Older records</a>",
            esc(&link("/console/audit", &with_before))
        );
        if page_rows.rows.len() < PAGE_ROWS {
            let _ = write!(
                nav,
                " <span class=\"muted\">(this page stopped after reading {} bytes of the log)</span>",
                page_rows.scanned
            );
        }
    } else {
        nav.push_str("<span class=\"muted\">The start of the log.</span>");
    }
    let _ = write!(
        nav,
        " <span class=\"muted\">The log holds {} bytes.</span>",
        page_rows.file_len
    );
    nav.push_str("</p>");
    page.push(&nav);
    page.respond(StatusCode::OK)
}

/// The verification box.
fn chain_html(chain: &ChainStatus, head: Option<(u64, String)>) -> String {
    let w = &chain.walker;
    let mut s = String::from("<section id=\"chain\">");
    if let Some(e) = &chain.error {
        let _ = write!(
            s,
            "<p class=\"status-bad\" id=\"chain-state\">Cannot verify: {}</p>",
            esc(e)
        );
    } else if let Some((offset, why)) = &chain.broken {
        let _ = write!(
            s,
            "<p class=\"status-bad\" id=\"chain-state\">Chain BROKEN at byte offset {offset}: {}. \
             The {} records before it are intact (last seq {}).</p>",
            esc(why),
            w.last_seq,
            w.last_seq
        );
    } else if chain.running {
        let _ = write!(
            s,
            "<p class=\"status-warn\" id=\"chain-state\">Verifying: {} records so far ({} of {} bytes); \
             reload to see the rest.</p>",
            w.last_seq, chain.verified_bytes, chain.file_len
        );
    } else if chain.verified_bytes < chain.file_len {
        let _ = write!(
            s,
            "<p class=\"status-ok\" id=\"chain-state\">Chain verified up to record {} (byte {} of {}); \
             the last {} bytes are a record still being written.</p>",
            w.last_seq,
            chain.verified_bytes,
            chain.file_len,
            chain.file_len - chain.verified_bytes
        );
    } else {
        let _ = write!(
            s,
            "<p class=\"status-ok\" id=\"chain-state\">Chain verified: {} records, last seq {}, \
             last hash <code>{}</code> ({} bytes).</p>",
            w.last_seq,
            w.last_seq,
            esc(&w.last_hash),
            chain.verified_bytes
        );
    }
    let _ = write!(
        s,
        "<p class=\"muted\">Checkpoints: {}{}; reseals: {}; records cut to the size cap: {}. \
         Signatures, the witness and the head's signature are checked by \
         <code>vigil audit verify --pubkey</code>.",
        w.checkpoints,
        w.last_checkpoint
            .map(|s| format!(" (last at seq {s})"))
            .unwrap_or_default(),
        w.reseals.len(),
        w.truncated_records
    );
    match head {
        Some((seq, hash)) if seq == w.last_seq && hash == w.last_hash => {
            let _ = write!(s, " Head file: seq {seq}, matches.");
        }
        Some((seq, _)) if seq == w.last_seq => {
            let _ = write!(
                s,
                "</p><p class=\"status-bad\">The head file names another hash for seq {seq}: \
                 the log or its head was rewritten.</p><p>"
            );
        }
        Some((seq, _)) => {
            let _ = write!(s, " Head file: seq {seq}.");
        }
        None => s.push_str(" No head file."),
    }
    s.push_str("</p>");
    if let Some(note) = &chain.note {
        let _ = write!(s, "<p class=\"status-warn\">{}</p>", esc(note));
    }
    s.push_str("</section>");
    s
}

/// The filter form (a GET: no state changes, no CSRF token needed).
fn filter_form(q: &super::super::context::Fields) -> String {
    let select = |name: &str, values: &[&str]| {
        let current = q.get(name);
        let mut s =
            format!("<select name=\"{name}\" id=\"f-{name}\"><option value=\"\">any</option>");
        let mut listed = false;
        for v in values {
            let sel = if *v == current {
                listed = true;
                " selected"
            } else {
                ""
            };
            let _ = write!(s, "<option{sel}>{}</option>", esc(v));
        }
        if !current.is_empty() && !listed {
            let _ = write!(s, "<option selected>{}</option>", esc(current));
        }
        s.push_str("</select>");
        s
    };
    let text = |name: &str, label: &str| {
        format!(
            "<label>{label}<input type=\"text\" name=\"{name}\" id=\"f-{name}\" value=\"{}\"></label>",
            esc(q.get(name))
        )
    };
    format!(
        "<form method=\"get\" action=\"/console/audit\" class=\"filters\">{}{}\
         <label>Decision{}</label><label>Type{}</label>{}{}\
         <button type=\"submit\" id=\"filter\">Filter</button> <a href=\"/console/audit\">Clear</a></form>",
        text("rule", "Rule"),
        text("user", "User (target, subject or by)"),
        select("decision", &DECISIONS),
        select("type", &TYPES),
        text("from", "From (UTC)"),
        text("to", "To (UTC)"),
    )
}

/// One record as a table row.
fn record_row(r: &Map<String, Value>, offset: u64, len: u64) -> String {
    let text = |key: &str| match r.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let who = {
        let t = text("target");
        if t.is_empty() { text("subject") } else { t }
    };
    let what = ["title", "reason", "message", "change", "fault", "action"]
        .iter()
        .map(|k| text(k))
        .find(|v| !v.is_empty())
        .unwrap_or_default();
    let pretty = serde_json::to_string_pretty(&Value::Object(r.clone())).unwrap_or_default();
    let rule = text("rule");
    let rule_cell = if rule.is_empty() {
        String::new()
    } else {
        format!(
            "<a href=\"{}\">{}</a>",
            esc(&link("/console/audit", &[("rule", &rule)])),
            esc(&rule)
        )
    };
    format!(
        "<tr data-offset=\"{offset}\" data-len=\"{len}\" data-seq=\"{seq}\"><td class=\"num\">{seq}</td><td>{time}</td>\
         <td class=\"type\">{kind}</td><td class=\"mono rule\">{rule_cell}</td><td class=\"decision\">{decision}</td>\
         <td class=\"mono who\">{who}</td><td class=\"by\">{by}</td><td class=\"what\">{what}</td>\
         <td><details><summary>JSON</summary><pre>{pretty}</pre></details></td></tr>",
        seq = esc(&text("seq")),
        time = esc(&text("time")),
        kind = esc(&text("type")),
        decision = esc(&text("decision")),
        who = esc(&who),
        by = esc(&text("by")),
        what = esc(&what),
        pretty = esc(&pretty),
    )
}

//! `/console/rules`: every loaded rule with its mode, status, and the
//! calls and faults counted since the service started (the same counts as
//! `vigil_rule_calls_total` and `vigil_rule_faults_total`).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tokio::sync::oneshot;

use super::super::context::{Console, ask, logged_in};
use super::super::html::{esc, link};
use crate::service::admin::{AdminCommand, RuleView};

/// What a rule is doing, in words, and its CSS class.
fn status(rule: &RuleView) -> (&'static str, &'static str) {
    if rule.quarantined {
        ("quarantined", "status-bad")
    } else if rule.breaker_tripped {
        ("breaker tripped: held in audit-only", "status-bad")
    } else if rule.mode == "enforce" {
        ("enforcing", "status-ok")
    } else {
        ("audit-only", "status-warn")
    }
}

/// `GET /console/rules`
pub async fn show(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let mut session = match logged_in(&c, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (reply, rx) = oneshot::channel();
    let rules = match ask(&c, AdminCommand::ListRules { reply }, rx).await {
        Ok(r) => r,
        Err(why) => return session.error(StatusCode::SERVICE_UNAVAILABLE, &why),
    };
    let mut page = session.page("Rules", "rules");
    if rules.is_empty() {
        page.push("<p>No rule is loaded.</p>");
    } else {
        let mut t = String::from(
            "<table id=\"rules\"><thead><tr><th>Rule</th><th>Version</th><th>Mode</th>\
             <th>Status</th><th>Calls</th><th>Faults</th><th>Granted actions</th>\
             <th>Contract</th><th>Partition</th><th>Origin</th></tr></thead><tbody>",
        );
        for r in &rules {
            let n = c.metrics.rule_counts(&r.id);
            let (words, class) = status(r);
            let audit = link("/console/audit", &[("rule", &r.id)]);
            let _ = write!(
                t,
                "<tr data-rule=\"{id}\"><td><a href=\"{audit}\" class=\"mono\">{id}</a></td>\
                 <td>{version}</td><td>{mode}</td><td class=\"{class}\">{words}</td>\
                 <td class=\"num calls\">{calls}</td><td class=\"num faults\">{faults}</td>\
                 <td>{granted}</td><td>{contract}</td><td>{partition}</td><td class=\"mono\">{origin}</td></tr>",
                id = esc(&r.id),
                audit = esc(&audit),
                version = esc(&r.version),
                mode = esc(r.mode),
                calls = n.calls,
                faults = n.faults,
                granted = esc(&r.granted.join(", ")),
                contract = esc(r.contract),
                partition = esc(r.partition),
                origin = esc(&r.origin),
            );
        }
        t.push_str("</tbody></table>");
        page.push(&t);
        page.push(
            "<p class=\"muted\">Calls and faults are counted since this service started. \
             A rule's name links to its audit records.</p>",
        );
    }
    page.respond(StatusCode::OK)
}

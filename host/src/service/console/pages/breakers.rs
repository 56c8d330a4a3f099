//! `/console/breakers`: tripped circuit breakers (when and why), each with
//! reset — the admin API's `ResetBreaker`, audited as `breaker-reset` with
//! `by`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tokio::sync::oneshot;

use super::super::context::{Console, ask, checked_post, done, logged_in};
use super::super::html::{button_form, esc};
use crate::service::admin::AdminCommand;

/// `GET /console/breakers`
pub async fn show(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let mut session = match logged_in(&c, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (reply, rx) = oneshot::channel();
    let trips = match ask(&c, AdminCommand::ListBreakers { reply }, rx).await {
        Ok(t) => t,
        Err(why) => return session.error(StatusCode::SERVICE_UNAVAILABLE, &why),
    };
    let csrf = session.csrf().to_owned();
    let mut page = session.page("Circuit breakers", "breakers");
    if trips.is_empty() {
        page.push(
            "<p id=\"none\">No breaker is tripped: every rule acts in its configured mode.</p>",
        );
        return page.respond(StatusCode::OK);
    }
    let mut t = String::from(
        "<table id=\"breakers\"><thead><tr><th>Rule</th><th>Tripped</th><th>Why</th><th></th>\
         </tr></thead><tbody>",
    );
    for b in &trips {
        let button = button_form(
            "/console/breakers",
            &csrf,
            &[("rule", &b.rule)],
            "Reset",
            "danger",
        );
        let _ = write!(
            t,
            "<tr data-rule=\"{rule}\"><td class=\"mono\">{rule}</td><td>{tripped}</td>\
             <td>{reason}</td><td>{button}</td></tr>",
            rule = esc(&b.rule),
            tripped = esc(&b.tripped),
            reason = esc(&b.reason),
        );
    }
    t.push_str("</tbody></table>");
    page.push(&t);
    page.push(
        "<p class=\"muted\">A tripped rule's actions are held in audit-only. Reset only once \
         you know why it tripped.</p>",
    );
    page.respond(StatusCode::OK)
}

/// `POST /console/breakers` with `rule`.
pub async fn reset(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, form) = match checked_post(&c, peer, &headers, body).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let rule = form.get("rule").to_owned();
    if rule.is_empty() {
        return session.error(StatusCode::BAD_REQUEST, "the form names no rule");
    }
    let by = c.by();
    let (reply, rx) = oneshot::channel();
    let command = AdminCommand::ResetBreaker {
        rule: rule.clone(),
        by: by.clone(),
        reply,
    };
    let (ok, message) = match ask(&c, command, rx).await {
        Ok(Ok(())) => {
            tracing::info!(%peer, session = session.info.tag, by, rule, "console: breaker reset");
            (
                true,
                format!("the breaker of {rule} is reset: the rule acts in its mode again"),
            )
        }
        Ok(Err(e)) => (false, format!("cannot reset: {e}")),
        Err(why) => (false, format!("cannot reset: {why}")),
    };
    done(&c, &session, ok, message, "/console/breakers")
}

//! `/console/approvals`: parked actions waiting for an operator, each with
//! approve and reject. A decision is the admin API's (`DecideApproval`):
//! an approved action goes through the policy gate again, and the
//! `approval` record names `<admin_name> (console)`.

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

/// `GET /console/approvals`
pub async fn show(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let mut session = match logged_in(&c, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (reply, rx) = oneshot::channel();
    let pending = match ask(&c, AdminCommand::ListApprovals { reply }, rx).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return session.error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
        Err(why) => return session.error(StatusCode::SERVICE_UNAVAILABLE, &why),
    };
    let csrf = session.csrf().to_owned();
    let mut page = session.page("Pending approvals", "approvals");
    if pending.is_empty() {
        page.push("<p id=\"none\">No action is waiting for approval.</p>");
        return page.respond(StatusCode::OK);
    }
    let mut t = String::from(
        "<table id=\"approvals\"><thead><tr><th>Action</th><th>Target</th><th>Rule</th>\
         <th>Event</th><th>Parked</th><th>Expires</th><th>Id</th><th>Decide</th></tr></thead><tbody>",
    );
    for p in &pending {
        let approve = button_form(
            "/console/approvals",
            &csrf,
            &[("id", &p.id), ("decision", "approve")],
            "Approve",
            "approve",
        );
        let reject = button_form(
            "/console/approvals",
            &csrf,
            &[("id", &p.id), ("decision", "reject")],
            "Reject",
            "reject",
        );
        let _ = write!(
            t,
            "<tr data-id=\"{id}\"><td>{action}</td><td class=\"mono target\">{target}</td>\
             <td class=\"mono\">{rule}</td><td class=\"mono\">{event}</td><td>{created}</td>\
             <td>{expires}</td><td class=\"mono\">{id}</td><td>{approve} {reject}</td></tr>",
            id = esc(&p.id),
            action = esc(p.action),
            target = esc(&p.target),
            rule = esc(&p.rule),
            event = esc(&p.event_id),
            created = esc(&p.created),
            expires = esc(&p.expires),
        );
    }
    t.push_str("</tbody></table>");
    page.push(&t);
    page.push(
        "<p class=\"muted\">An approved action goes through the policy gate again \
         (protected accounts, the rule's mode, budgets and breaker) before it runs.</p>",
    );
    page.respond(StatusCode::OK)
}

/// `POST /console/approvals` with `id` and `decision` (`approve` or
/// `reject`).
pub async fn decide(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, form) = match checked_post(&c, peer, &headers, body).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = form.get("id").to_owned();
    let approve = match form.get("decision") {
        "approve" => true,
        "reject" => false,
        other => {
            return session.error(
                StatusCode::BAD_REQUEST,
                &format!("decision must be approve or reject, not {other:?}"),
            );
        }
    };
    if id.is_empty() {
        return session.error(StatusCode::BAD_REQUEST, "the form names no approval id");
    }
    let by = c.by();
    let (reply, rx) = oneshot::channel();
    let command = AdminCommand::DecideApproval {
        id: id.clone(),
        approve,
        by: by.clone(),
        reply,
    };
    let (verb, done_verb) = if approve {
        ("approve", "approved")
    } else {
        ("reject", "rejected")
    };
    let (ok, message) = match ask(&c, command, rx).await {
        Ok(Ok(answer)) => {
            tracing::info!(%peer, session = session.info.tag, by, id, "console: {done_verb}");
            let mut m = format!("{id}: {done_verb}");
            if let Some(gate) = answer.get("gate").and_then(|g| g.as_str()) {
                let _ = write!(m, "; the gate answered {gate}");
            }
            if let Some(results) = answer.get("results").and_then(|r| r.as_array())
                && !results.is_empty()
            {
                let r: Vec<&str> = results.iter().filter_map(|r| r.as_str()).collect();
                let _ = write!(m, "; results: {}", r.join(", "));
            }
            (true, m)
        }
        Ok(Err(e)) => (false, format!("cannot {verb} {id}: {e}")),
        Err(why) => (false, format!("cannot {verb} {id}: {why}")),
    };
    done(&c, &session, ok, message, "/console/approvals")
}

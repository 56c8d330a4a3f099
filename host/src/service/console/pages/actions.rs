//! `/console/actions`: temporary actions in force (a suspension, a
//! blocked address) with when they are lifted, each with "undo now" —
//! `vigil actions undo` through the pipeline thread, audited as
//! `action-undo` with `by` and `early: true`.

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

/// `GET /console/actions`
pub async fn show(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let mut session = match logged_in(&c, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (reply, rx) = oneshot::channel();
    let undos = match ask(&c, AdminCommand::ListUndos { reply }, rx).await {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => return session.error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
        Err(why) => return session.error(StatusCode::SERVICE_UNAVAILABLE, &why),
    };
    let csrf = session.csrf().to_owned();
    let mut page = session.page("Temporary actions", "actions");
    if undos.is_empty() {
        page.push("<p id=\"none\">No temporary action is in force.</p>");
        return page.respond(StatusCode::OK);
    }
    let mut t = String::from(
        "<table id=\"undos\"><thead><tr><th>Undo id</th><th>Action</th><th>Target</th>\
         <th>Rule</th><th>Connector</th><th>Lifted</th><th>Attempts</th><th></th></tr></thead><tbody>",
    );
    for u in &undos {
        let id = u.id.to_string();
        let button = button_form(
            "/console/actions",
            &csrf,
            &[("id", &id)],
            &format!("Undo now ({})", u.undo),
            "danger",
        );
        let _ = write!(
            t,
            "<tr data-id=\"{id}\"><td class=\"num\">{id}</td><td>{action}</td>\
             <td class=\"mono target\">{target}</td><td class=\"mono\">{rule}</td><td>{connector}</td>\
             <td>{due}</td><td class=\"num\">{attempts}</td><td>{button}</td></tr>",
            action = esc(u.action),
            target = esc(&u.target),
            rule = esc(&u.rule),
            connector = esc(&u.connector),
            due = esc(&u.due),
            attempts = u.attempts,
        );
    }
    t.push_str("</tbody></table>");
    page.push(&t);
    page.respond(StatusCode::OK)
}

/// `POST /console/actions` with `id` (the undo's id).
pub async fn undo(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, form) = match checked_post(&c, peer, &headers, body).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(id) = form.get("id").parse::<i64>() else {
        return session.error(
            StatusCode::BAD_REQUEST,
            &format!("the undo id {:?} is not a number", form.get("id")),
        );
    };
    let by = c.by();
    let (reply, rx) = oneshot::channel();
    let command = AdminCommand::UndoNow {
        id,
        by: by.clone(),
        reply,
    };
    let (ok, message) = match ask(&c, command, rx).await {
        Ok(Ok(o)) => {
            tracing::info!(%peer, session = session.info.tag, by, id, decision = o.decision, "console: undo now");
            (
                o.decision == "executed",
                format!("{} {} on {}: {}", o.decision, o.undo, o.target, o.detail),
            )
        }
        Ok(Err(e)) => (false, format!("cannot undo {id}: {e}")),
        Err(why) => (false, format!("cannot undo {id}: {why}")),
    };
    done(&c, &session, ok, message, "/console/actions")
}

//! `/console/login` and `/console/logout`: the admin token in a form, a
//! session cookie in return.
//!
//! A failed login is logged with the client's address (never what was
//! typed), answered after a one-second pause, and counted: past
//! `session::MAX_FAILURES` in the window the address gets 429 without its
//! token being looked at.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::super::context::{Console, cookie, logged_in, read_form, same_origin};
use super::super::html::{Page, error_page, see_other};
use crate::service::hooks::secret_matches;

/// The pause before a failed login is answered.
const FAILURE_DELAY: Duration = Duration::from_secs(1);

fn login_page(message: Option<&str>, status: StatusCode) -> Response {
    let mut page = Page::new("Sign in", "");
    if let Some(m) = message {
        page.notice(false, m);
    }
    page.push(
        "<form method=\"post\" action=\"/console/login\" class=\"login\">\
         <label>Admin token<br><input type=\"password\" name=\"token\" id=\"token\" \
         autocomplete=\"current-password\" required autofocus></label>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>\
         <p class=\"muted\">The token is the one the admin API takes \
         (<code>server.admin_token_env</code> or <code>server.admin_token_file</code>).</p>",
    );
    page.respond(status)
}

/// `GET /console/login`
pub async fn form(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if logged_in(&c, &headers).is_ok() {
        return see_other("/console/rules");
    }
    login_page(None, StatusCode::OK)
}

/// `POST /console/login` with `token`.
pub async fn submit(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(why) = same_origin(&headers) {
        tracing::warn!(%peer, "console: login refused: {why}");
        return error_page(StatusCode::FORBIDDEN, &why, None);
    }
    let now = Instant::now();
    if !c.throttle.allowed(peer.ip(), now) {
        tracing::warn!(%peer, "console: login refused: too many failed logins from this address");
        return login_page(
            Some("Too many failed sign-ins from this address: wait ten minutes."),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let fields = match read_form(&headers, body).await {
        Ok(f) => f,
        Err(why) => return error_page(StatusCode::BAD_REQUEST, &why, None),
    };
    let Some(token) = &c.auth.token else {
        return error_page(StatusCode::NOT_FOUND, "the web console is disabled", None);
    };
    let presented = fields.get("token");
    if presented.is_empty() || !secret_matches(token, Some(presented.as_bytes())) {
        let failures = c.throttle.failed(peer.ip(), now);
        tracing::warn!(%peer, failures, "console: failed login (wrong admin token)");
        tokio::time::sleep(FAILURE_DELAY).await;
        return login_page(Some("Wrong admin token."), StatusCode::UNAUTHORIZED);
    }
    c.throttle.succeeded(peer.ip());
    let id = match c.sessions.create(now) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!("console: cannot create a session: {e}");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot create a session: the system's random number generator failed",
                None,
            );
        }
    };
    tracing::info!(%peer, session = &id[..8], by = %c.auth.name, "console: signed in");
    let mut r = see_other("/console/rules");
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie(Some(&id)));
    r
}

/// `POST /console/logout`
pub async fn logout(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, _) = match super::super::context::checked_post(&c, peer, &headers, body).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    c.sessions.remove(&session.id);
    tracing::info!(%peer, session = session.info.tag, "console: signed out");
    let mut r = see_other("/console/login");
    r.headers_mut().insert(header::SET_COOKIE, cookie(None));
    r
}

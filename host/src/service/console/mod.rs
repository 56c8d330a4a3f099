//! The web console: server-rendered pages on the admin listener, under
//! `/console/`, for the people who answer Vigil's alerts.
//!
//! Pages (one module each in `pages`): the rules with their mode, status,
//! calls and faults; pending approvals (approve / reject); temporary
//! actions in force (undo now); tripped breakers (reset); the audit log,
//! newest first with filters, and its chain's verification state
//! (`audit_view`).
//!
//! Security properties (the invariants every handler keeps):
//! - **Only with an admin token**: with none configured every console path
//!   answers 404, like the admin API. Login takes the admin token in a
//!   form, compared in constant time (`secret_matches`); failures are
//!   logged (never the token), delayed by a second and throttled per
//!   client address (`session`).
//! - **Sessions** are random ids in an `HttpOnly; SameSite=Strict; Secure;
//!   Path=/console` cookie, kept server-side with idle and absolute expiry
//!   and a cap on their number. Without a live session every page
//!   redirects to the login form.
//! - **Every POST** must come from a page of the same origin (`Origin`, or
//!   `Referer` when a browser sends no `Origin`, naming the request's
//!   `Host`) and carry the session's CSRF token; else 403 and nothing
//!   changes.
//! - **State changes** go to the pipeline thread as the same
//!   [`AdminCommand`]s the admin API sends, so they are audited the same
//!   way, with `by` = `"<admin_name> (console)"`.
//! - **Output**: everything not written by the console itself is escaped
//!   (`html::esc`); every answer has a Content-Security-Policy without
//!   script, `X-Frame-Options: DENY`, `Cache-Control: no-store`.
//! - **Input**: query strings and forms are parsed leniently and checked
//!   field by field; a bad value gets an error page naming it, never a
//!   panic.

// The `Err` of the helpers here is the answer itself (a redirect or an
// error page), built once per refused request, as in `admin` and `http`.
#![allow(clippy::result_large_err)]

mod audit_view;
mod context;
mod html;
mod pages;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use audit_view::VerifyCache;
pub use context::Console;
use html::error_page;
/// HTML escaping, for the service's other pages (the signed-link pages).
pub use html::esc;

/// The console's routes (for the admin listener's router).
pub fn router<S: Clone + Send + Sync + 'static>(console: Arc<Console>) -> Router<S> {
    Router::new()
        .route(
            "/console",
            get(|| async { html::see_other("/console/rules") }),
        )
        .route(
            "/console/",
            get(|| async { html::see_other("/console/rules") }),
        )
        .route(
            html::CSS_PATH,
            get(|| async {
                let mut r = (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    html::CSS,
                )
                    .into_response();
                html::secure_headers(&mut r);
                r
            }),
        )
        .route(
            "/console/login",
            get(pages::login::form).post(pages::login::submit),
        )
        .route("/console/logout", post(pages::login::logout))
        .route("/console/rules", get(pages::rules::show))
        .route(
            "/console/approvals",
            get(pages::approvals::show).post(pages::approvals::decide),
        )
        .route(
            "/console/actions",
            get(pages::actions::show).post(pages::actions::undo),
        )
        .route(
            "/console/breakers",
            get(pages::breakers::show).post(pages::breakers::reset),
        )
        .route("/console/audit", get(pages::audit::show))
        .route(
            "/console/{*rest}",
            get(|| async { error_page(StatusCode::NOT_FOUND, "no such console page", None) }),
        )
        .route_layer(middleware::from_fn_with_state(console.clone(), enabled))
        .with_state(console)
}

/// 404 on every console path when no admin token is configured.
async fn enabled(State(c): State<Arc<Console>>, request: Request, next: Next) -> Response {
    if c.auth.token.is_none() {
        return error_page(
            StatusCode::NOT_FOUND,
            "the web console is disabled: set server.admin_token_env or server.admin_token_file",
            None,
        );
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::service::admin::AdminAuth;
    use crate::service::metrics::Metrics;

    // The routes fit together (axum panics on conflicting routes).
    #[test]
    fn the_router_builds() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let auth = Arc::new(AdminAuth {
            token: None,
            name: "admin".into(),
        });
        let console = Console::new(
            auth,
            tx,
            Arc::new(Metrics::new(&[])),
            PathBuf::from("audit.jsonl"),
        );
        let _: Router = router(Arc::new(console));
    }
}

//! What every console page shares: the console's state, the session a
//! request belongs to, the checks on a POST (same origin, session, CSRF
//! token), bounded form and query parsing, and the way to the pipeline
//! thread. The security properties are listed in the module above.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::sync::oneshot;

use super::super::admin::{AdminAuth, AdminCommand, send_and_wait};
use super::super::metrics::Metrics;
use super::audit_view::VerifyCache;
use super::html::{self, error_page};
use super::session::{self, LoginThrottle, SessionInfo, Sessions};

/// How long a console request waits for the pipeline thread (an undo
/// calls the identity provider from there).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest form body taken.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Longest value taken for any form or query field.
const MAX_FIELD_CHARS: usize = 512;

/// What the console's handlers share.
pub struct Console {
    /// The admin token and the name it stands for.
    pub auth: Arc<AdminAuth>,
    /// The pipeline thread's admin commands.
    pub tx: std::sync::mpsc::Sender<AdminCommand>,
    /// Rule calls and faults.
    pub metrics: Arc<Metrics>,
    pub audit_path: PathBuf,
    pub verify: Arc<VerifyCache>,
    pub(super) sessions: Sessions,
    pub(super) throttle: LoginThrottle,
}

impl Console {
    pub fn new(
        auth: Arc<AdminAuth>,
        tx: std::sync::mpsc::Sender<AdminCommand>,
        metrics: Arc<Metrics>,
        audit_path: PathBuf,
    ) -> Self {
        Console {
            auth,
            tx,
            metrics,
            verify: Arc::new(VerifyCache::new(audit_path.clone())),
            audit_path,
            sessions: Sessions::default(),
            throttle: LoginThrottle::default(),
        }
    }

    /// Who a console change is audited as.
    pub(super) fn by(&self) -> String {
        format!("{} (console)", self.auth.name)
    }
}

/// The value of the session cookie, if the request has one.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == session::COOKIE).then_some(value)
        })
}

/// A logged-in request: the session's id and what it carries.
pub(crate) struct LoggedIn {
    pub(super) id: String,
    pub(super) info: SessionInfo,
}

impl LoggedIn {
    pub(super) fn csrf(&self) -> &str {
        &self.info.csrf
    }

    /// A page with the navigation and this session's flash message.
    pub(super) fn page(&mut self, title: &str, nav: &'static str) -> html::Page {
        let mut page = html::Page::new(title, nav);
        page.csrf = Some(self.info.csrf.clone());
        if let Some((ok, message)) = self.info.flash.take() {
            page.notice(ok, &message);
        }
        page
    }

    pub(super) fn error(&self, status: StatusCode, reason: &str) -> Response {
        error_page(status, reason, Some(&self.info.csrf))
    }
}

/// The request's session, or a redirect to the login form.
pub(super) fn logged_in(c: &Console, headers: &HeaderMap) -> Result<LoggedIn, Response> {
    let id = session_cookie(headers).ok_or_else(|| html::see_other("/console/login"))?;
    match c.sessions.touch(id, Instant::now()) {
        Some(info) => Ok(LoggedIn {
            id: id.to_owned(),
            info,
        }),
        None => Err(html::see_other("/console/login")),
    }
}

/// A parsed form or query string: the pairs in order, each value bounded.
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub(super) fn parse(bytes: &[u8]) -> Result<Fields, String> {
        let mut pairs = Vec::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            if v.chars().count() > MAX_FIELD_CHARS {
                return Err(format!(
                    "the value of {k:?} is longer than {MAX_FIELD_CHARS} characters"
                ));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Fields(pairs))
    }

    /// The first value of `name`, trimmed ("" when absent).
    pub(super) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }
}

/// Whether a POST comes from a page of this origin: its `Origin` (or, when
/// the browser sent none, its `Referer`) must name the request's `Host`.
/// Returns why not.
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or("the request has no Host header")?;
    let (what, source) = match headers.get(header::ORIGIN) {
        Some(o) => ("Origin", o),
        None => match headers.get(header::REFERER) {
            Some(r) => ("Referer", r),
            None => {
                return Err(
                    "the request has neither an Origin nor a Referer header: it may come from another site"
                        .to_owned(),
                );
            }
        },
    };
    let source = source.to_str().unwrap_or("");
    let authority = source
        .strip_prefix("https://")
        .or_else(|| source.strip_prefix("http://"))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
    match authority {
        Some(a) if !a.is_empty() && a.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(format!(
            "the {what} header {source:?} is not this console's origin ({host}): a form on another site cannot act here"
        )),
    }
}

/// Checks a console POST: the origin, a live session, a bounded form with
/// the session's CSRF token. Returns the session and the form, or the
/// refusal (403 page, or the login redirect without a session).
pub(super) async fn checked_post(
    c: &Console,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<(LoggedIn, Fields), Response> {
    if let Err(why) = same_origin(headers) {
        tracing::warn!(%peer, "console: POST refused: {why}");
        return Err(error_page(StatusCode::FORBIDDEN, &why, None));
    }
    let session = logged_in(c, headers)?;
    let fields = read_form(headers, body)
        .await
        .map_err(|why| session.error(StatusCode::BAD_REQUEST, &why))?;
    if !session::csrf_matches(session.csrf(), Some(fields.get("csrf"))) {
        tracing::warn!(%peer, session = session.info.tag, "console: POST refused: missing or wrong CSRF token");
        return Err(session.error(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: reload the page and try again",
        ));
    }
    Ok((session, fields))
}

/// A form body, bounded while it is read.
pub(super) async fn read_form(headers: &HeaderMap, body: Body) -> Result<Fields, String> {
    let bytes = super::super::body::read_body(body, headers, MAX_FORM_BYTES)
        .await
        .map_err(|_| format!("the form is larger than {MAX_FORM_BYTES} bytes"))?;
    Fields::parse(&bytes)
}

/// The query string's fields.
pub(super) fn query_fields(request_query: Option<&str>) -> Result<Fields, String> {
    Fields::parse(request_query.unwrap_or("").as_bytes())
}

/// Sends `command` to the pipeline thread and waits for its answer; the
/// error is a reason for a page.
pub(super) async fn ask<T>(
    c: &Console,
    command: AdminCommand,
    rx: oneshot::Receiver<T>,
) -> Result<T, String> {
    send_and_wait(&c.tx, command, rx, REPLY_TIMEOUT)
        .await
        .map_err(str::to_owned)
}

/// After a POST: leave `message` for the page at `location` and go there.
pub(super) fn done(
    c: &Console,
    session: &LoggedIn,
    ok: bool,
    message: String,
    location: &str,
) -> Response {
    c.sessions.flash(&session.id, ok, message);
    html::see_other(location)
}

/// The `Set-Cookie` value for a session id (or its removal).
pub(super) fn cookie(value: Option<&str>) -> HeaderValue {
    let text = match value {
        Some(id) => format!(
            "{}={id}; Path=/console; HttpOnly; SameSite=Strict; Secure",
            session::COOKIE
        ),
        None => format!(
            "{}=; Path=/console; HttpOnly; SameSite=Strict; Secure; Max-Age=0",
            session::COOKIE
        ),
    };
    HeaderValue::from_str(&text).expect("a cookie of hex digits is a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    // Same host in Origin (or Referer) passes; another host, "null", a
    // missing header or another port does not.
    #[test]
    fn same_origin_checks() {
        let ok = [
            headers(&[
                ("host", "127.0.0.1:9787"),
                ("origin", "http://127.0.0.1:9787"),
            ]),
            headers(&[
                ("host", "vigil.example"),
                ("referer", "https://vigil.example/console/approvals?x=1"),
            ]),
        ];
        for h in ok {
            assert!(same_origin(&h).is_ok(), "{h:?}");
        }
        let bad = [
            headers(&[
                ("host", "127.0.0.1:9787"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[("host", "127.0.0.1:9787"), ("origin", "null")]),
            headers(&[
                ("host", "127.0.0.1:9787"),
                ("origin", "http://127.0.0.1:9788"),
            ]),
            headers(&[("host", "127.0.0.1:9787")]),
            headers(&[("origin", "http://127.0.0.1:9787")]),
            headers(&[
                ("host", "vigil.example"),
                ("referer", "https://vigil.example.evil.example/"),
            ]),
        ];
        for h in bad {
            assert!(same_origin(&h).is_err(), "{h:?}");
        }
    }

    // The session cookie is found among others and in several headers.
    #[test]
    fn finds_the_session_cookie() {
        let h = headers(&[("cookie", "a=1; vigil_console=abc ; b=2")]);
        assert_eq!(session_cookie(&h), Some("abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "vigil_console=x")]);
        assert_eq!(session_cookie(&h), Some("x"));
        assert_eq!(
            session_cookie(&headers(&[("cookie", "vigil_consolex=1")])),
            None
        );
    }

    // Odd query strings parse without panicking; long values are refused.
    #[test]
    fn fields_parse_leniently() {
        let f = Fields::parse(b"a=%zz&&b=%E2%9C%93&=x&c").unwrap();
        assert_eq!(f.get("b"), "✓");
        assert_eq!(f.get("a"), "%zz");
        assert_eq!(f.get("missing"), "");
        let long = format!("a={}", "x".repeat(MAX_FIELD_CHARS + 1));
        assert!(Fields::parse(long.as_bytes()).is_err());
    }
}

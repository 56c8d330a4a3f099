//! The HTTP behaviour every connector shares: timeouts, retries with
//! exponential backoff and jitter, rate-limit waits, and vendor errors
//! turned into short, secret-free audit text.
//!
//! Retry rules (the same for Okta, Graph and webhooks):
//! - network errors (connect, timeout, reset) and 5xx: retried after
//!   `backoff_initial · 2^(n-1)`, capped at `backoff_max`, with half of it
//!   random (jitter), so that replicas that failed together do not retry
//!   together;
//! - 429: retried after the time the vendor names — `Retry-After` (Graph;
//!   seconds or an HTTP date) or `X-Rate-Limit-Reset` (Okta; epoch seconds)
//!   — unless that is longer than `max_retry_wait`, in which case the call
//!   fails at once rather than stall every other action;
//! - any other 4xx: not retried; the vendor's error code and summary are
//!   returned;
//! - at most `max_attempts` requests in all, and no new attempt once
//!   `max_action` (the whole action, waits included) would be exceeded:
//!   this bounds how long one failing identity provider can hold up the
//!   thread executing actions.
//!
//! The client is blocking: executions run on the pipeline thread (or the
//! service's executor thread) after the decision is durable, never inside
//! a rule's call.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::connector::ConnectorError;
use crate::config::connectors::HttpConfig;

/// Longest vendor text quoted in an error.
const MAX_QUOTED_CHARS: usize = 300;

/// Timeouts and retry limits (`[connectors.http]`).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub max_retry_wait: Duration,
    /// The longest one call may take, retries and waits included.
    pub max_action: Duration,
}

impl Default for RetryPolicy {
    /// The `[connectors.http]` defaults.
    fn default() -> Self {
        HttpConfig::default().policy()
    }
}

impl HttpConfig {
    /// The retry policy these settings describe.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            max_attempts: self.max_attempts,
            backoff_initial: Duration::from_millis(self.backoff_initial_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            max_retry_wait: Duration::from_secs(self.max_retry_wait_secs),
            max_action: Duration::from_secs(self.max_action_secs),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `failed + 1` after `failed` failures.
    fn backoff(&self, failed: u32) -> Duration {
        let exp = self
            .backoff_initial
            .saturating_mul(1u32 << failed.saturating_sub(1).min(20))
            .min(self.backoff_max);
        // Equal jitter: half fixed, half random.
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// A response with a 1xx–3xx status.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON; a vendor answering 2xx with something else is an
    /// error worth reporting.
    pub fn json(&self) -> Result<Value, ConnectorError> {
        serde_json::from_str(&self.body).map_err(|e| ConnectorError {
            status: Some(self.status),
            vendor_code: None,
            message: format!(
                "response is not JSON ({e}): {}",
                trim(&self.body, MAX_QUOTED_CHARS)
            ),
            attempts: 1,
        })
    }
}

/// A reqwest client with Vigil's retry policy.
pub struct HttpClient {
    client: Client,
    policy: RetryPolicy,
    /// Values scrubbed from any text quoted in an error.
    secrets: Vec<String>,
}

impl HttpClient {
    pub fn new(policy: RetryPolicy) -> anyhow::Result<Self> {
        let client = Client::builder()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout)
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            // A redirect would resend credentials somewhere the operator did
            // not configure.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(HttpClient {
            client,
            policy,
            secrets: Vec::new(),
        })
    }

    /// Registers a value that must never appear in an error message.
    pub fn add_secret(&mut self, value: &str) {
        if !value.is_empty() {
            self.secrets.push(value.to_owned());
        }
    }

    /// Stops scrubbing a value that is no longer used (a replaced access
    /// token), so the list does not grow with every refresh.
    pub fn remove_secret(&mut self, value: &str) {
        self.secrets.retain(|s| s != value);
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Sends the request `build` makes (again for each attempt) and returns
    /// the first response below 400, or the error after the retry rules
    /// above. `what` names the call in log lines (`okta suspend`).
    pub fn send(
        &self,
        what: &str,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<HttpResponse, ConnectorError> {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut error, wait) = match build(&self.client).send() {
                Err(e) => (self.network_error(&e), None),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    match response.text() {
                        Err(e) => (self.network_error(&e), None),
                        Ok(body) if status < 400 => {
                            return Ok(HttpResponse {
                                status,
                                headers,
                                body,
                            });
                        }
                        Ok(body) => {
                            let error = self.vendor_error(status, &body);
                            if status == 429 {
                                let wait = rate_limit_wait(&headers);
                                if let Some(w) = wait
                                    && w > self.policy.max_retry_wait
                                {
                                    let mut error = error;
                                    error.message.push_str(&format!(
                                        "; rate limit resets in {} s, more than max_retry_wait_secs = {}",
                                        w.as_secs(),
                                        self.policy.max_retry_wait.as_secs()
                                    ));
                                    error.attempts = attempt;
                                    return Err(error);
                                }
                                (
                                    error,
                                    Some(wait.unwrap_or_else(|| self.policy.backoff(attempt))),
                                )
                            } else if status >= 500 {
                                (error, None)
                            } else {
                                let mut error = error;
                                error.attempts = attempt;
                                return Err(error);
                            }
                        }
                    }
                }
            };
            error.attempts = attempt;
            if attempt >= self.policy.max_attempts {
                return Err(error);
            }
            let pause = wait.unwrap_or_else(|| self.policy.backoff(attempt));
            if started.elapsed() + pause >= self.policy.max_action {
                error.message.push_str(&format!(
                    "; gave up: another try would pass max_action_secs = {}",
                    self.policy.max_action.as_secs()
                ));
                return Err(error);
            }
            tracing::warn!(
                call = what,
                attempt,
                retry_in_ms = pause.as_millis() as u64,
                "{error}; retrying"
            );
            std::thread::sleep(pause);
        }
    }

    fn network_error(&self, e: &reqwest::Error) -> ConnectorError {
        // Webhook URLs are credentials: never quote them.
        let kind = if e.is_timeout() {
            "request timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            causes.push(s.to_string());
            source = s.source();
        }
        let message = if causes.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}: {}", causes.join(": "))
        };
        ConnectorError {
            status: None,
            vendor_code: None,
            message: self.scrub(&message),
            attempts: 0,
        }
    }

    fn vendor_error(&self, status: u16, body: &str) -> ConnectorError {
        let (code, summary) = vendor_error_text(body);
        let summary = if summary.is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
                .to_owned()
        } else {
            summary
        };
        ConnectorError {
            status: Some(status),
            vendor_code: code.map(|c| self.scrub(&c)),
            message: self.scrub(&trim(&summary, MAX_QUOTED_CHARS)),
            attempts: 0,
        }
    }

    /// Removes every registered secret from `text`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// The vendor's error code and summary from an error body: Okta
/// (`errorCode`, `errorSummary`, `errorCauses`), Graph (`error.code`,
/// `error.message`), OAuth (`error`, `error_description`), else the text.
pub fn vendor_error_text(body: &str) -> (Option<String>, String) {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return (None, body.trim().to_owned());
    };
    let str_of = |v: &Value| v.as_str().map(str::to_owned);
    if let Some(code) = json.get("errorCode").and_then(str_of) {
        let mut summary = json
            .get("errorSummary")
            .and_then(str_of)
            .unwrap_or_default();
        let causes: Vec<String> = json
            .get("errorCauses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("errorSummary").and_then(str_of))
            .collect();
        if !causes.is_empty() {
            summary = format!("{summary} ({})", causes.join("; "));
        }
        return (Some(code), summary);
    }
    if let Some(err) = json.get("error") {
        if let Some(obj) = err.as_object() {
            return (
                obj.get("code").and_then(str_of),
                obj.get("message").and_then(str_of).unwrap_or_default(),
            );
        }
        if let Some(code) = str_of(err) {
            return (
                Some(code),
                json.get("error_description")
                    .and_then(str_of)
                    .unwrap_or_default(),
            );
        }
    }
    (None, body.trim().to_owned())
}

/// How long a 429 asks us to wait: `Retry-After` (seconds or HTTP date),
/// else Okta's `X-Rate-Limit-Reset` (epoch seconds). `None` when neither
/// header is usable.
///
/// The reset is whole seconds on Okta's clock: as Okta's own SDKs do, it is
/// measured against the response's `Date` header (our clock when there is
/// none) and one second is added, so the retry lands after the window has
/// really reset rather than anywhere in its last second or early because
/// our clock is ahead.
pub fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    let now = chrono::Utc::now();
    if let Some(v) = headers.get("retry-after").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc2822(v) {
            let ms = (at.with_timezone(&chrono::Utc) - now)
                .num_milliseconds()
                .max(0);
            return Some(Duration::from_millis(ms as u64));
        }
    }
    let reset = headers
        .get("x-rate-limit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())?;
    let server_now = headers
        .get("date")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v.trim()).ok())
        .map_or(now.timestamp_millis(), |d| d.timestamp_millis());
    let ms = reset.saturating_mul(1000).saturating_sub(server_now).max(0) + 1000;
    Some(Duration::from_millis(ms as u64))
}

/// The part of `next` — an absolute URL a vendor answered with, such as a
/// next-page link — below `base`, to be requested as `base + part` with the
/// same credentials; or why it must not be followed.
///
/// The link must have `base`'s scheme, host and port, no user info and no
/// fragment, and a path inside `base`'s path at a segment boundary once
/// dot segments are resolved (`/v1.0/../beta` and `/v1.0evil` are outside
/// `/v1.0`). Percent-encoded dots, slashes and backslashes are refused:
/// a server could decode them into a path outside the prefix. The token
/// that goes with the request must never reach another host or API.
pub fn path_below(base: &str, next: &str) -> Result<String, String> {
    let base_url =
        reqwest::Url::parse(base).map_err(|e| format!("the base URL {base:?} is invalid ({e})"))?;
    let url = reqwest::Url::parse(next).map_err(|e| format!("{next:?} is not a URL ({e})"))?;
    let origin = |u: &reqwest::Url| {
        (
            u.scheme().to_owned(),
            u.host_str().map(str::to_owned),
            u.port_or_known_default(),
        )
    };
    if origin(&url) != origin(&base_url) {
        return Err(format!(
            "{next:?} is not on {}://{}",
            base_url.scheme(),
            base_url.host_str().unwrap_or_default()
        ) + &base_url.port().map(|p| format!(":{p}")).unwrap_or_default());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{next:?} carries user info"));
    }
    if url.fragment().is_some() {
        return Err(format!("{next:?} has a fragment"));
    }
    let path = url.path();
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
        return Err(format!(
            "{next:?} has an encoded dot, slash or backslash in its path"
        ));
    }
    let prefix = base_url.path().trim_end_matches('/');
    let Some(rest) = path.strip_prefix(prefix).filter(|r| r.starts_with('/')) else {
        return Err(format!("{next:?} is outside {prefix}/"));
    };
    Ok(match url.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    })
}

/// At most `max` characters of `s`, marked when cut.
pub fn trim(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn next_links_stay_below_the_base() {
        let base = "https://graph.example/v1.0";
        // Below the base: the path and query to request.
        assert_eq!(
            path_below(
                base,
                "https://graph.example/v1.0/users/u1/authentication/methods?$skiptoken=X1"
            ),
            Ok("/users/u1/authentication/methods?$skiptoken=X1".into())
        );
        assert_eq!(
            path_below(base, "https://GRAPH.example:443/v1.0/x"),
            Ok("/x".into()),
            "host case and the default port are the same origin"
        );
        assert_eq!(
            path_below("http://127.0.0.1:8080", "http://127.0.0.1:8080/api/v1/x"),
            Ok("/api/v1/x".into())
        );
        // Outside: each names why.
        for (next, why) in [
            (
                "https://graph.example.evil.com/v1.0/x",
                "is not on https://graph.example",
            ),
            ("http://graph.example/v1.0/x", "is not on"),
            ("https://graph.example:8443/v1.0/x", "is not on"),
            ("https://evil.example/v1.0/x", "is not on"),
            ("https://graph.example/beta/x", "is outside /v1.0/"),
            ("https://graph.example/v1.0evil/x", "is outside /v1.0/"),
            ("https://graph.example/v1.0", "is outside /v1.0/"),
            ("https://graph.example/v1.0/../beta/x", "is outside /v1.0/"),
            // The URL parser resolves an encoded `..` segment itself…
            (
                "https://graph.example/v1.0/%2e%2e/beta",
                "is outside /v1.0/",
            ),
            // …and refuses encoded dots and slashes that a server might.
            ("https://graph.example/v1.0/x%2E%2E", "encoded dot"),
            ("https://graph.example/v1.0/a%2Fb", "encoded dot, slash"),
            ("https://user:pw@graph.example/v1.0/x", "user info"),
            ("https://graph.example/v1.0/x#frag", "fragment"),
            ("/v1.0/x", "is not a URL"),
        ] {
            let err = path_below(base, next).unwrap_err();
            assert!(err.contains(why), "{next}: {err}");
        }
        assert!(
            path_below(
                "http://127.0.0.1:8080/v1.0",
                "http://127.0.0.1:80801/v1.0/x"
            )
            .is_err(),
            "a port that merely starts the same"
        );
    }

    #[test]
    fn okta_error_body_gives_code_summary_and_causes() {
        let (code, summary) = vendor_error_text(
            r#"{"errorCode":"E0000001","errorSummary":"Api validation failed: login","errorLink":"E0000001","errorId":"oae1","errorCauses":[{"errorSummary":"login: An object with this field already exists"}]}"#,
        );
        assert_eq!(code.as_deref(), Some("E0000001"));
        assert_eq!(
            summary,
            "Api validation failed: login (login: An object with this field already exists)"
        );
    }

    #[test]
    fn graph_and_oauth_error_bodies() {
        let (code, summary) = vendor_error_text(
            r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist"}}"#,
        );
        assert_eq!(code.as_deref(), Some("Request_ResourceNotFound"));
        assert_eq!(summary, "Resource 'x' does not exist");
        let (code, summary) = vendor_error_text(
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
        );
        assert_eq!(code.as_deref(), Some("invalid_client"));
        assert!(summary.starts_with("AADSTS7000215"));
        assert_eq!(
            vendor_error_text("  gateway down \n"),
            (None, "gateway down".into())
        );
    }

    #[test]
    fn retry_after_seconds_and_okta_reset() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        let reset = chrono::Utc::now().timestamp() + 30;
        h.insert("x-rate-limit-reset", reset.to_string().parse().unwrap());
        let wait = rate_limit_wait(&h).unwrap();
        assert!(
            wait <= Duration::from_secs(31) && wait >= Duration::from_secs(29),
            "{wait:?}"
        );
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-reset", HeaderValue::from_static("1000"));
        assert_eq!(
            rate_limit_wait(&h),
            Some(Duration::from_secs(1)),
            "a past reset means the one-second margin only"
        );
        assert_eq!(rate_limit_wait(&HeaderMap::new()), None);
        // Okta's clock (the Date header) wins over ours.
        let mut h = HeaderMap::new();
        h.insert(
            "date",
            HeaderValue::from_static("Sun, 01 Mar 2026 10:00:00 GMT"),
        );
        let reset = chrono::DateTime::parse_from_rfc3339("2026-03-01T10:00:05Z").unwrap();
        h.insert(
            "x-rate-limit-reset",
            reset.timestamp().to_string().parse().unwrap(),
        );
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(6)));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let first = p.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = p.backoff(3);
            assert!(third >= Duration::from_millis(150) && third <= Duration::from_millis(300));
            assert!(p.backoff(30) <= Duration::from_millis(300));
        }
    }

    #[test]
    fn trimming_marks_the_cut_and_respects_characters() {
        assert_eq!(trim("héllo wörld", 5), "héllo…");
        assert_eq!(trim("short", 10), "short");
    }

    #[test]
    fn secrets_are_scrubbed_from_quoted_text() {
        let mut c = HttpClient::new(RetryPolicy::default()).unwrap();
        c.add_secret("tok-123");
        assert_eq!(c.scrub("bad token tok-123!"), "bad token [redacted]!");
        c.remove_secret("tok-123");
        assert_eq!(
            c.scrub("tok-123"),
            "tok-123",
            "a replaced token is forgotten"
        );
    }
}

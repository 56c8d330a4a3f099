//! The Okta System Log poller: a long-running source that reads
//! `GET /api/v1/logs` page by page and hands the normalized events to the
//! service's queue (`[[sources]] type = "okta-poll"`).
//!
//! # Protocol
//! The first request is
//! `GET {base_url}/api/v1/logs?since=<start>&sortOrder=ASCENDING&limit=<limit>[&filter=…]`.
//! From then on the poller only ever follows the `Link: <…>; rel="next"`
//! URL of the last response (Okta sends a `self` and a `next` link, as two
//! headers or one comma-separated header; both forms are read). This is
//! Okta's *polling request*: the next link is always present, and an empty
//! page means "caught up" — the poller waits `interval_secs` and requests
//! the same next link again, which then returns whatever was published
//! meanwhile. A response without a next link is an error (retried later
//! from the same URL) rather than a guess.
//!
//! A next link must point at the configured scheme, host and port: a link
//! elsewhere is refused and logged, and nothing — in particular not the
//! token — is sent to it. The HTTP client follows no redirects either.
//!
//! # Cursor
//! The cursor is the next URL, saved in the state store under the `meta`
//! key `okta-poll:<base_url>:next`. It is saved only after the page's
//! events were processed: each page becomes one
//! [`Batch`](crate::sources::queue::Batch) whose `on_done` writes the page's
//! next link through the poller's own store connection (see
//! [`super::cursor`]). A restart therefore resumes after the last fully
//! processed page — no event is skipped, and only the page in flight when
//! the process died is read again; its events keep their Okta `uuid` as
//! event id, so the executor's idempotency keys make the duplicates
//! harmless. With no saved cursor the poller starts at `start` (`"now"` or
//! an RFC 3339 time) and saves that first URL at once, so a restart before
//! the first page does not move the start forward. A saved cursor keeps its
//! `after`/`since` position, but takes `limit` and `filter` from the
//! current configuration.
//!
//! # Rate limits and failures
//! Retries, backoff and 429 waits are [`HttpClient`]'s. In addition, when a
//! response says fewer than 10 % of the window's calls remain
//! (`X-Rate-Limit-Remaining` < `X-Rate-Limit-Limit` / 10), the poller
//! pauses until `X-Rate-Limit-Reset`, as Okta recommends, so the
//! remediation calls sharing the org's limits are not starved. A request
//! that still fails after the client's retries is logged and counted, and
//! the poller waits `interval_secs` and tries the same URL again; a 401 or
//! 403 (token rejected or lacking `okta.logs.read`) is logged as such and
//! retried no more than once a minute. The thread ends only at shutdown or
//! when the queue closes.
//!
//! Each LogEvent of a page is normalized on its own: one that does not
//! normalize is logged with its `uuid` and counted, and the rest of the page
//! goes on.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap};
use serde_json::Value;

use super::cursor::{SourceState, pause};
use super::queue::{Batch, QueueSender, Shutdown};
use crate::actions::connector::ConnectorError;
use crate::actions::http::{HttpClient, RetryPolicy, rate_limit_wait};
use crate::config::ConnectorsConfig;
use crate::config::connectors::OktaAuthScheme;
use crate::config::sources::{check_base_url, okta_time, parse_start};
pub use crate::config::{OktaPollConfig, Start};
use crate::model::Event;
use crate::normalize::Normalizer;
use crate::secret::{self, Secret};

/// The batch source name.
pub const SOURCE_NAME: &str = "okta-poll";

/// Below this share of the window's calls left, pause until the reset.
const LOW_RATE_LIMIT_FRACTION: u64 = 10;
/// Longest low-rate-limit pause honoured (Okta's windows are a minute).
const MAX_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(300);
/// Slowest retry after the token was refused.
const AUTH_RETRY: Duration = Duration::from_secs(60);

/// Everything the poller needs, credentials read.
#[derive(Clone, Debug)]
pub struct OktaPollSettings {
    /// Without a trailing slash.
    pub base_url: String,
    /// The whole `Authorization` header value.
    pub authorization: Secret,
    pub interval: Duration,
    pub limit: u32,
    pub start: Start,
    pub filter: Option<String>,
    pub http: RetryPolicy,
}

impl OktaPollConfig {
    /// Resolves the defaults and reads the token.
    pub fn settings(&self, connectors: &ConnectorsConfig) -> Result<OktaPollSettings> {
        self.validate("sources.okta-poll", connectors)?;
        let base = self
            .base_url(connectors)
            .expect("validated: a base URL")
            .trim_end_matches('/')
            .to_owned();
        let (token, scheme) = if self.uses_connector_token(connectors) {
            let okta = connectors.okta.as_ref().expect("uses the connector");
            let token = secret::load(
                "connectors.okta.token",
                okta.token_env.as_deref(),
                okta.token_file.as_deref(),
            )?;
            (token, self.auth_scheme.unwrap_or(okta.auth_scheme))
        } else {
            let token = secret::load(
                "sources.okta-poll.token",
                self.token_env.as_deref(),
                self.token_file.as_deref(),
            )?;
            (token, self.auth_scheme.unwrap_or_default())
        };
        let scheme = match scheme {
            OktaAuthScheme::Ssws => "SSWS",
            OktaAuthScheme::Bearer => "Bearer",
        };
        Ok(OktaPollSettings {
            base_url: base,
            authorization: Secret::new(format!("{scheme} {}", token.expose())),
            interval: Duration::from_secs(self.interval_secs),
            limit: self.limit,
            start: parse_start("sources.okta-poll.start", &self.start)?,
            filter: self.filter.clone(),
            http: connectors.http.policy(),
        })
    }
}

/// The state-store key of a poller's cursor.
pub fn cursor_key(base_url: &str) -> String {
    format!("okta-poll:{}:next", base_url.trim_end_matches('/'))
}

/// Why a poll failed. The poller keeps its cursor and tries again later.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// 401/403: the token is wrong, expired or lacks `okta.logs.read`.
    #[error(
        "Okta rejected the token ({0}); check the API token and that its admin role can read the System Log"
    )]
    Unauthorized(ConnectorError),
    /// Any other failure after the HTTP client's retries.
    #[error("{0}")]
    Request(ConnectorError),
    #[error("unexpected HTTP {0} from /api/v1/logs")]
    UnexpectedStatus(u16),
    /// The next link points away from the configured org's System Log.
    #[error("refusing to follow the next link {url}: it is not {base}/api/v1/logs")]
    ForeignLink { url: String, base: String },
    #[error("the response has no Link rel=\"next\" header")]
    NoNextLink,
    #[error("the response is not a JSON array of LogEvents: {0}")]
    NotAnArray(String),
}

/// One page.
#[derive(Debug)]
pub struct PollResult {
    /// The normalized events, in Okta's order.
    pub events: Vec<Event>,
    /// The next link to request; the cursor to save once `events` are
    /// processed.
    pub next: String,
    /// LogEvents in the page (normalized or not).
    pub received: usize,
    /// LogEvents skipped because they did not normalize.
    pub malformed: usize,
    /// Set when the rate limit is nearly used up: wait this long before
    /// the next request.
    pub pause: Option<Duration>,
}

impl PollResult {
    /// An empty page: everything published so far has been read.
    pub fn caught_up(&self) -> bool {
        self.received == 0
    }
}

/// Counters since the poller started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    pub pages: u64,
    pub events: u64,
    pub malformed: u64,
    pub failures: u64,
}

/// Reads the System Log one page at a time; see the module docs. Knows
/// nothing of the queue: [`spawn`] drives it.
pub struct Poller {
    settings: OktaPollSettings,
    base: Url,
    http: HttpClient,
    normalizer: Normalizer,
    state: SourceState,
    key: String,
    /// The URL the next poll requests.
    next: String,
    pub stats: PollStats,
}

impl Poller {
    /// Loads the saved cursor, or builds (and saves) the first URL from
    /// `start`.
    pub fn new(
        settings: OktaPollSettings,
        state: SourceState,
        normalizer: Normalizer,
    ) -> Result<Poller> {
        let base = check_base_url("base_url", &settings.base_url)?;
        let mut http = HttpClient::new(settings.http.clone())?;
        if let Some(token) = settings.authorization.expose().split_once(' ') {
            http.add_secret(token.1);
        }
        let key = cursor_key(&settings.base_url);
        let saved = state
            .load(&key)
            .with_context(|| format!("cannot read the okta-poll cursor {key}"))?;
        let next = match saved.map(|url| resume_url(&base, &url, &settings)) {
            Some(Ok(url)) => {
                tracing::info!(source = SOURCE_NAME, cursor = %url, "resuming from the saved cursor");
                url
            }
            other => {
                if let Some(Err(e)) = other {
                    tracing::warn!(source = SOURCE_NAME, key, "ignoring the saved cursor: {e}");
                }
                let url = first_url(&settings, chrono::Utc::now());
                state
                    .save(&key, &url)
                    .with_context(|| format!("cannot save the okta-poll cursor {key}"))?;
                tracing::info!(source = SOURCE_NAME, url = %url, "starting without a saved cursor");
                url
            }
        };
        Ok(Poller {
            settings,
            base,
            http,
            normalizer,
            state,
            key,
            next,
            stats: PollStats::default(),
        })
    }

    /// The URL the next poll requests.
    pub fn next_url(&self) -> &str {
        &self.next
    }

    /// The state-store key of the cursor.
    pub fn cursor_key(&self) -> &str {
        &self.key
    }

    /// A callback that saves `result.next` as the cursor: the `on_done` of
    /// the page's batch.
    pub fn cursor_saver(&self, result: &PollResult) -> impl FnOnce() + Send + 'static {
        self.state.saver(self.key.clone(), result.next.clone())
    }

    pub fn settings(&self) -> &OktaPollSettings {
        &self.settings
    }

    /// Requests the next page, normalizes it and moves the in-memory cursor
    /// to the page's next link (the durable cursor moves only through
    /// [`Poller::cursor_saver`]). On error the cursor stays.
    pub fn poll_once(&mut self) -> Result<PollResult, PollError> {
        let url = self.next.clone();
        let authorization = self.settings.authorization.expose().to_owned();
        let response = self
            .http
            .send("okta-poll logs", |c| {
                c.get(&url)
                    .header(AUTHORIZATION, &authorization)
                    .header(ACCEPT, "application/json")
            })
            .map_err(|e| match e.status {
                Some(401 | 403) => PollError::Unauthorized(e),
                _ => PollError::Request(e),
            })?;
        if response.status != 200 {
            return Err(PollError::UnexpectedStatus(response.status));
        }
        let next = next_link(&response.headers).ok_or(PollError::NoNextLink)?;
        let next = same_origin(&self.base, &url, &next)?;
        let page: Vec<Value> = serde_json::from_str(&response.body)
            .map_err(|e| PollError::NotAnArray(e.to_string()))?;

        let mut events = Vec::with_capacity(page.len());
        let mut malformed = 0;
        for (index, element) in page.iter().enumerate() {
            if let Err(e) = self
                .normalizer
                .normalize_line(&element.to_string(), &mut events)
            {
                malformed += 1;
                let uuid = element.get("uuid").and_then(Value::as_str).unwrap_or("-");
                tracing::warn!(
                    source = SOURCE_NAME,
                    uuid,
                    index,
                    "skipped a LogEvent that does not normalize: {e}"
                );
            }
        }
        self.stats.pages += 1;
        self.stats.events += events.len() as u64;
        self.stats.malformed += malformed as u64;
        self.next = next.clone();
        Ok(PollResult {
            events,
            next,
            received: page.len(),
            malformed,
            pause: low_rate_limit_pause(&response.headers),
        })
    }
}

/// The first request's URL.
fn first_url(settings: &OktaPollSettings, now: chrono::DateTime<chrono::Utc>) -> String {
    let since = match &settings.start {
        Start::Now => okta_time(now),
        Start::Since(s) => s.clone(),
    };
    let mut url = Url::parse(&format!("{}/api/v1/logs", settings.base_url))
        .expect("validated base URL plus a path");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("since", &since)
            .append_pair("sortOrder", "ASCENDING")
            .append_pair("limit", &settings.limit.to_string());
        if let Some(f) = &settings.filter {
            q.append_pair("filter", f);
        }
    }
    url.into()
}

/// A saved cursor, checked to be on the configured org, with `limit` and
/// `filter` taken from the current settings.
fn resume_url(base: &Url, saved: &str, settings: &OktaPollSettings) -> Result<String, PollError> {
    let url = same_origin(base, saved, saved)?;
    let mut url = Url::parse(&url).expect("checked by same_origin");
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "limit" && k != "filter")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.push(("limit".into(), settings.limit.to_string()));
    if let Some(f) = &settings.filter {
        pairs.push(("filter".into(), f.clone()));
    }
    url.query_pairs_mut().clear().extend_pairs(pairs);
    Ok(url.into())
}

/// `link` resolved against `current`, if it is on `base`'s scheme, host
/// and port, carries no user info, and reads the System Log itself (path
/// exactly `/api/v1/logs` below the base): the token goes with every
/// request, so a next link must not steer it to another endpoint of the
/// org, e.g. one that changes something.
fn same_origin(base: &Url, current: &str, link: &str) -> Result<String, PollError> {
    let foreign = || PollError::ForeignLink {
        url: link.to_owned(),
        base: base.origin().ascii_serialization(),
    };
    let current = Url::parse(current).map_err(|_| foreign())?;
    let url = current.join(link).map_err(|_| foreign())?;
    if url.scheme() != base.scheme()
        || url.host_str() != base.host_str()
        || url.port_or_known_default() != base.port_or_known_default()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path() != format!("{}/api/v1/logs", base.path().trim_end_matches('/'))
    {
        return Err(foreign());
    }
    Ok(url.into())
}

/// The `rel="next"` URL among every `Link` header (one header per link, or
/// several comma-separated in one).
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_link_header)
        .find(|(_, rels)| rels.iter().any(|r| r.eq_ignore_ascii_case("next")))
        .map(|(url, _)| url)
}

/// `<url>; rel="a b", <url2>; rel=c` → `[(url, [a, b]), (url2, [c])]`.
/// URLs are delimited by angle brackets, so a comma inside one does not
/// split it.
fn parse_link_header(value: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let url = rest[open + 1..open + close].trim().to_owned();
        rest = &rest[open + close + 1..];
        // Parameters run to the next link (`, <`), or the end.
        let end = rest.find('<').unwrap_or(rest.len());
        let params = &rest[..end];
        let rels = params
            .split([';', ','])
            .filter_map(|p| p.split_once('='))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("rel"))
            .flat_map(|(_, v)| {
                v.trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        out.push((url, rels));
        rest = &rest[end..];
    }
    out
}

/// How long to wait before the next request when the rate-limit window is
/// nearly used up (fewer than 10 % of `X-Rate-Limit-Limit` remaining):
/// until `X-Rate-Limit-Reset`, capped at five minutes.
pub fn low_rate_limit_pause(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let limit = number("x-rate-limit-limit")?;
    let remaining = number("x-rate-limit-remaining")?;
    if limit == 0 || remaining.saturating_mul(LOW_RATE_LIMIT_FRACTION) >= limit {
        return None;
    }
    rate_limit_wait(headers).map(|w| w.min(MAX_RATE_LIMIT_PAUSE))
}

/// `[[sources]] type = "okta-poll"` as a [`Source`](super::Source).
pub struct OktaPollSource<'a>(pub &'a OktaPollConfig);

impl super::Source for OktaPollSource<'_> {
    fn name(&self) -> String {
        "okta-poll".into()
    }

    fn spawn(&self, ctx: &super::SourceContext<'_>) -> Result<JoinHandle<()>> {
        spawn(
            self.0,
            ctx.connectors,
            ctx.state_path,
            ctx.queue.clone(),
            ctx.shutdown.clone(),
        )
    }
}

/// Starts the poller on its own thread. The token is read, the state store
/// opened and the cursor loaded before the thread starts, so a bad
/// configuration fails here. The thread ends at shutdown or when the queue
/// closes; transient errors never end it.
pub fn spawn(
    config: &OktaPollConfig,
    connectors: &ConnectorsConfig,
    state_path: &Path,
    queue: QueueSender,
    shutdown: Shutdown,
) -> Result<JoinHandle<()>> {
    let settings = config.settings(connectors)?;
    let state = SourceState::open(state_path)?;
    let poller = Poller::new(settings, state, Normalizer::default())?;
    std::thread::Builder::new()
        .name("okta-poll".into())
        .spawn(move || run(poller, &queue, &shutdown))
        .context("cannot start the okta-poll thread")
}

/// The poll loop: each page becomes a batch whose `on_done` saves the
/// cursor; an empty page or an error waits `interval` (a refused token at
/// least a minute) before the next try.
pub fn run(mut poller: Poller, queue: &QueueSender, shutdown: &Shutdown) {
    let interval = poller.settings().interval;
    let mut failures_in_a_row = 0u32;
    while !shutdown.is_stopping() {
        let wait = match poller.poll_once() {
            Ok(page) => {
                if failures_in_a_row > 0 {
                    tracing::info!(source = SOURCE_NAME, "polling works again");
                    failures_in_a_row = 0;
                }
                let caught_up = page.caught_up();
                let pause = page.pause;
                if !caught_up {
                    // Also sent when every event was malformed: the cursor
                    // must still move, in order with the pages before.
                    let on_done = poller.cursor_saver(&page);
                    let batch = Batch::new(SOURCE_NAME, page.events).on_done(on_done);
                    if queue.send(batch).is_err() {
                        tracing::info!(source = SOURCE_NAME, "queue closed; poller stops");
                        return;
                    }
                }
                if let Some(p) = pause {
                    tracing::info!(
                        source = SOURCE_NAME,
                        pause_ms = p.as_millis() as u64,
                        "rate limit nearly used up; pausing until it resets"
                    );
                }
                let base = if caught_up { interval } else { Duration::ZERO };
                pause.map_or(base, |p| p.max(base))
            }
            Err(e) => {
                poller.stats.failures += 1;
                failures_in_a_row += 1;
                let wait = match e {
                    PollError::Unauthorized(_) => interval.max(AUTH_RETRY),
                    _ => interval,
                };
                tracing::error!(
                    source = SOURCE_NAME,
                    failures_in_a_row,
                    failures = poller.stats.failures,
                    retry_in_secs = wait.as_secs(),
                    url = %poller.next_url(),
                    "poll failed: {e}"
                );
                wait
            }
        };
        if !wait.is_zero() && !pause(shutdown, wait) {
            break;
        }
    }
    tracing::info!(source = SOURCE_NAME, stats = ?poller.stats, "poller stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    // Okta's two separate Link headers.
    #[test]
    fn next_link_from_separate_headers() {
        let h = headers(&[
            (
                "link",
                "<https://o.okta.com/api/v1/logs?limit=2>; rel=\"self\"",
            ),
            (
                "link",
                "<https://o.okta.com/api/v1/logs?limit=2&after=x>; rel=\"next\"",
            ),
        ]);
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://o.okta.com/api/v1/logs?limit=2&after=x")
        );
    }

    // One comma-separated header, next first, unquoted rel, a comma in a URL.
    #[test]
    fn next_link_from_one_combined_header() {
        let h = headers(&[(
            "link",
            "<https://o.okta.com/a?x=1,2&after=y>; rel=next, <https://o.okta.com/a>; rel=\"self\"",
        )]);
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://o.okta.com/a?x=1,2&after=y")
        );
        let h = headers(&[("link", "<https://o.okta.com/a>; rel=\"self\"")]);
        assert_eq!(next_link(&h), None);
    }

    // Only the configured scheme, host and port are followed.
    #[test]
    fn next_links_must_stay_on_the_org() {
        let base = Url::parse("https://o.okta.com").unwrap();
        let cur = "https://o.okta.com/api/v1/logs?after=a";
        assert_eq!(
            same_origin(&base, cur, "/api/v1/logs?after=b").unwrap(),
            "https://o.okta.com/api/v1/logs?after=b"
        );
        for bad in [
            "https://evil.example/api/v1/logs",
            "http://o.okta.com/api/v1/logs",
            "https://o.okta.com:8443/api/v1/logs",
            "https://o.okta.com.evil.example/api/v1/logs",
            "/api/v1/users/00u1/lifecycle/suspend",
            "/api/v1/logs/../users",
            "/api/v1/logs%2F..%2Fusers",
            "https://admin@o.okta.com/api/v1/logs",
        ] {
            assert!(
                matches!(
                    same_origin(&base, cur, bad),
                    Err(PollError::ForeignLink { .. })
                ),
                "{bad}"
            );
        }
    }

    // Below 10 % remaining, pause until the reset; otherwise no pause.
    #[test]
    fn low_remaining_pauses_until_the_reset() {
        let reset = (chrono::Utc::now().timestamp() + 20).to_string();
        let h = headers(&[
            ("x-rate-limit-limit", "600"),
            ("x-rate-limit-remaining", "59"),
            ("x-rate-limit-reset", &reset),
        ]);
        let p = low_rate_limit_pause(&h).unwrap();
        assert!(
            p >= Duration::from_secs(19) && p <= Duration::from_secs(21),
            "{p:?}"
        );
        let h = headers(&[
            ("x-rate-limit-limit", "600"),
            ("x-rate-limit-remaining", "60"),
            ("x-rate-limit-reset", &reset),
        ]);
        assert_eq!(low_rate_limit_pause(&h), None);
        assert_eq!(low_rate_limit_pause(&HeaderMap::new()), None);
    }

    fn settings(start: Start, filter: Option<&str>) -> OktaPollSettings {
        OktaPollSettings {
            base_url: "https://o.okta.com".into(),
            authorization: Secret::new("SSWS t"),
            interval: Duration::from_secs(10),
            limit: 50,
            start,
            filter: filter.map(str::to_owned),
            http: RetryPolicy::default(),
        }
    }

    // The first URL carries since, ascending order, the limit and the filter.
    #[test]
    fn first_url_has_since_order_limit_and_filter() {
        let s = settings(
            Start::Since("2026-03-01T00:00:00.000Z".into()),
            Some("eventType sw \"user.mfa\""),
        );
        let url = first_url(&s, chrono::Utc::now());
        assert_eq!(
            url,
            "https://o.okta.com/api/v1/logs?since=2026-03-01T00%3A00%3A00.000Z\
             &sortOrder=ASCENDING&limit=50&filter=eventType+sw+%22user.mfa%22"
        );
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T04:00:00.5Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert!(
            first_url(&settings(Start::Now, None), now)
                .contains("since=2026-11-28T04%3A00%3A00.500Z")
        );
    }

    // A saved cursor keeps its position and takes limit/filter from the config.
    #[test]
    fn a_resumed_cursor_takes_limit_and_filter_from_the_config() {
        let base = Url::parse("https://o.okta.com").unwrap();
        let saved = "https://o.okta.com/api/v1/logs?since=x&limit=2&filter=old&after=abc";
        let url = resume_url(&base, saved, &settings(Start::Now, None)).unwrap();
        assert_eq!(
            url,
            "https://o.okta.com/api/v1/logs?since=x&after=abc&limit=50"
        );
        let foreign = "https://elsewhere.example/api/v1/logs?after=abc";
        assert!(resume_url(&base, foreign, &settings(Start::Now, None)).is_err());
    }

    // `start` accepts now and RFC 3339 (any offset, converted to UTC).
    #[test]
    fn start_values() {
        assert_eq!(parse_start("s", "now").unwrap(), Start::Now);
        assert_eq!(
            parse_start("s", "2026-03-01T12:00:00+02:00").unwrap(),
            Start::Since("2026-03-01T10:00:00.000Z".into())
        );
        let e = parse_start("sources[0].start", "yesterday").unwrap_err();
        assert!(
            e.to_string().starts_with("sources[0].start: \"yesterday\""),
            "{e}"
        );
    }
}

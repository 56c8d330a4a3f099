//! HTML for the console: escaping, the page layout, the security headers
//! every console answer carries, and the small pieces pages share (forms
//! with their CSRF field, notices, links with query strings).
//!
//! Invariant: text that did not come from this module's own literals goes
//! through [`esc`] (element content and quoted attribute values alike)
//! before it is put into a page. The audit log, rule ids, targets and event
//! fields are attacker-influenced: an identity event can carry any string.
//! No page has inline script or style, and the Content-Security-Policy
//! forbids both, so an escaping slip still could not run script.

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The stylesheet, served at [`CSS_PATH`].
pub const CSS: &str = include_str!("console.css");
pub const CSS_PATH: &str = "/console/assets/console.css";

/// No script at all, styles only from the console's own stylesheet, forms
/// only to the console itself, never in a frame.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Escapes `text` for element content and for a double- or single-quoted
/// attribute value.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `path?k=v&…` with every pair percent-encoded (pairs with an empty value
/// are left out).
pub fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if !v.is_empty() {
            query.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("{path}?{}", query.finish())
    } else {
        path.to_owned()
    }
}

/// The console's pages, for the navigation bar.
const NAV: [(&str, &str); 5] = [
    ("rules", "Rules"),
    ("approvals", "Approvals"),
    ("actions", "Temporary actions"),
    ("breakers", "Breakers"),
    ("audit", "Audit log"),
];

/// A page being built: its title, which navigation entry is current, and
/// the body's HTML (already escaped where needed).
pub struct Page {
    pub title: String,
    /// The `NAV` key of this page; empty for the login and error pages.
    pub nav: &'static str,
    pub body: String,
    /// The logged-in session's CSRF token (the logout form needs it).
    pub csrf: Option<String>,
}

impl Page {
    pub fn new(title: impl Into<String>, nav: &'static str) -> Self {
        Page {
            title: title.into(),
            nav,
            body: String::new(),
            csrf: None,
        }
    }

    /// Appends raw HTML (the caller escaped what needs it).
    pub fn push(&mut self, html: &str) {
        self.body.push_str(html);
    }

    /// A notice at the top of the page (`ok` or `error` style); `text` is
    /// escaped.
    pub fn notice(&mut self, ok: bool, text: &str) {
        let class = if ok { "notice ok" } else { "notice error" };
        let _ = write!(
            self.body,
            "<p class=\"{class}\" role=\"status\">{}</p>",
            esc(text)
        );
    }

    /// The whole document.
    pub fn render(&self) -> String {
        let mut nav = String::new();
        if let Some(csrf) = &self.csrf {
            nav.push_str("<nav><span class=\"brand\">Vigil</span>");
            for (key, label) in NAV {
                let current = if key == self.nav {
                    " aria-current=\"page\" class=\"current\""
                } else {
                    ""
                };
                let _ = write!(nav, "<a href=\"/console/{key}\"{current}>{label}</a>");
            }
            let _ = write!(
                nav,
                "<form method=\"post\" action=\"/console/logout\" class=\"logout\">{}\
                 <button type=\"submit\">Log out</button></form></nav>",
                csrf_field(csrf)
            );
        }
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · Vigil</title><link rel=\"stylesheet\" href=\"{CSS_PATH}\">\
             </head><body>{nav}<main><h1>{title}</h1>{body}</main></body></html>\n",
            title = esc(&self.title),
            body = self.body,
        )
    }

    /// The page as a response with `status`.
    pub fn respond(&self, status: StatusCode) -> Response {
        html_response(status, self.render())
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// A one-button POST form to `action` with hidden `fields` (escaped).
pub fn button_form(
    action: &str,
    csrf: &str,
    fields: &[(&str, &str)],
    label: &str,
    class: &str,
) -> String {
    let mut f = format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}",
        esc(action),
        csrf_field(csrf)
    );
    for (name, value) in fields {
        let _ = write!(
            f,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(name),
            esc(value)
        );
    }
    let _ = write!(
        f,
        "<button type=\"submit\" class=\"{}\">{}</button></form>",
        esc(class),
        esc(label)
    );
    f
}

/// An HTML answer with the console's security headers.
pub fn html_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(&mut r);
    r
}

/// The headers every console answer carries: no script, no framing, no
/// caching of pages that show the log, no MIME sniffing, no Referer to
/// other sites.
pub fn secure_headers(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// A 303 to `location` (a console path) with the security headers.
pub fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure_headers(&mut r);
    r
}

/// An error page: `status`, a title and the reason (escaped), with the
/// navigation when logged in (`csrf`).
pub fn error_page(status: StatusCode, reason: &str, csrf: Option<&str>) -> Response {
    let mut page = Page::new(status.canonical_reason().unwrap_or("Error").to_owned(), "");
    page.csrf = csrf.map(str::to_owned);
    page.notice(false, reason);
    page.push("<p><a href=\"/console/rules\">Back to the console</a></p>");
    page.respond(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Markup and both quote kinds are neutralised; other text is kept.
    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert_eq!(esc("plain é ✓"), "plain é ✓");
    }

    // Query values are percent-encoded and empty ones dropped.
    #[test]
    fn links_encode_their_query() {
        assert_eq!(
            link("/console/audit", &[("rule", "a&b=<c>"), ("user", "")]),
            "/console/audit?rule=a%26b%3D%3Cc%3E"
        );
        assert_eq!(link("/console/audit", &[("rule", "")]), "/console/audit");
    }

    // A rendered page escapes its title and carries no script element.
    #[test]
    fn pages_escape_titles_and_have_no_script() {
        let mut p = Page::new("<b>t</b>", "rules");
        p.csrf = Some("tok\"en".into());
        let html = p.render();
        assert!(html.contains("&lt;b&gt;t&lt;/b&gt;"));
        assert!(html.contains("value=\"tok&quot;en\""));
        assert!(!html.contains("<script"));
    }
}

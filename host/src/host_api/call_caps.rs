//! What one `on-event` call may add to the audit log.
//!
//! Every action request is audited — denied ones too — and so is every
//! finding, so a rule with no grants at all can still make the host
//! write. Without bounds one event could become megabytes of audit log.
//! The caps, all checked **before** the policy gate (so a request is never
//! decided, and never spends budget, unless it will be recorded):
//! - each request's text: a field over [`MAX_FIELD_BYTES`] or all of them
//!   over [`MAX_REQUEST_BYTES`] make the request `denied` / `invalid`, and
//!   its record keeps only a [`PREVIEW_BYTES`] preview of each field;
//! - at most `max_action_requests` requests per call;
//! - findings and action records together at most
//!   `max_audit_bytes_per_call` bytes per call, measured as their JSON
//!   with a fixed allowance for the record envelope;
//! - at most `max_findings` findings per call.
//!
//! Crossing a per-call cap is a rule fault (`output-limit`), audited once
//! with a message of bounded size that says what was dropped: a request
//! past a cap ends the call with a trap (the requests before it are
//! recorded), findings past a cap are dropped and the rest kept.

use super::text::{json_len, preview};
use crate::model::{
    Action, AppPolicy, BlockIp, Event, Finding, GroupMembership, Message, SuspendUser,
};

/// Longest text field of one action request (target, group, summary, a
/// detail key or value), in bytes — the policy gate's own bound.
pub const MAX_FIELD_BYTES: usize = 4096;
/// Longest action request, all text fields together, in bytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Bytes of each text field an oversized request's record keeps.
pub const PREVIEW_BYTES: usize = 64;
/// Detail pairs an oversized request's record keeps.
const PREVIEW_DETAILS: usize = 4;
/// Allowance for what every audit record carries besides the rule's text:
/// `seq`, `time`, `type`, both hashes, key names, decision and reason.
const ENVELOPE_BYTES: usize = 400;
/// Allowance for the gate's denial message beyond the target it quotes.
const MESSAGE_BYTES: usize = 256;

/// The per-call caps of one rule (from its `[limits]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallCaps {
    pub max_action_requests: usize,
    pub max_findings: usize,
    pub max_audit_bytes: usize,
}

/// What the current call has added so far. Reset before each call.
#[derive(Debug, Default)]
pub struct CallOutput {
    requests: usize,
    bytes: usize,
    /// The cap a request crossed (the call was ended with a trap).
    pub over: Option<String>,
}

impl CallOutput {
    pub fn reset(&mut self) {
        *self = CallOutput::default();
    }

    /// Counts one request whose record takes `bytes`, or says which cap it
    /// would cross.
    pub fn admit_request(&mut self, caps: &CallCaps, bytes: usize) -> Result<(), String> {
        if self.requests >= caps.max_action_requests {
            return Err(format!(
                "more than max_action_requests = {} action requests in one call; \
                 the call was ended at request {} (not decided, not recorded)",
                caps.max_action_requests,
                self.requests + 1
            ));
        }
        if self.bytes + bytes > caps.max_audit_bytes {
            return Err(format!(
                "action request {} would take this call's audit records to {} bytes, past \
                 max_audit_bytes_per_call = {}; the call was ended there (the request was \
                 not decided, not recorded)",
                self.requests + 1,
                self.bytes + bytes,
                caps.max_audit_bytes
            ));
        }
        self.requests += 1;
        self.bytes += bytes;
        Ok(())
    }

    /// Keeps the findings that fit under the caps, in order, and says what
    /// was dropped (`None` when everything was kept).
    pub fn admit_findings(
        &mut self,
        caps: &CallCaps,
        rule: &str,
        event: &Event,
        findings: &mut Vec<Finding>,
    ) -> Option<String> {
        let returned = findings.len();
        let mut problems = Vec::new();
        if returned > caps.max_findings {
            findings.truncate(caps.max_findings);
            problems.push(format!(
                "{returned} findings returned; max_findings = {max}, the first {max} were kept",
                max = caps.max_findings
            ));
        }
        let mut kept = 0;
        for f in findings.iter() {
            let bytes = finding_record_bytes(rule, event, f);
            if self.bytes + bytes > caps.max_audit_bytes {
                break;
            }
            self.bytes += bytes;
            kept += 1;
        }
        if kept < findings.len() {
            let dropped_bytes: usize = findings[kept..]
                .iter()
                .map(|f| finding_record_bytes(rule, event, f))
                .sum();
            problems.push(format!(
                "findings past max_audit_bytes_per_call = {}: {kept} of {} kept, {} ({} bytes) dropped",
                caps.max_audit_bytes,
                findings.len(),
                findings.len() - kept,
                dropped_bytes
            ));
            findings.truncate(kept);
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

/// The text fields of a request, as (name, text).
fn fields(action: &Action) -> Vec<(&'static str, &str)> {
    let mut out = vec![("target", action.target())];
    match action {
        Action::AddToGroup(g) => out.push(("group", &g.group)),
        Action::AssignAppPolicy(a) => out.push(("policy", &a.policy)),
        Action::Notify(m) | Action::Escalate(m) => {
            out.push(("summary", &m.summary));
            for (k, v) in &m.details {
                out.push(("detail key", k));
                out.push(("detail value", v));
            }
        }
        _ => {}
    }
    out
}

/// Why a request is too large to be decided, if it is.
pub fn oversize(action: &Action) -> Option<String> {
    let kind = action.kind().name();
    let fields = fields(action);
    if let Some((name, text)) = fields.iter().find(|(_, t)| t.len() > MAX_FIELD_BYTES) {
        return Some(format!(
            "{kind}: {name} of {} bytes; at most {MAX_FIELD_BYTES} are accepted \
             (the record keeps a {PREVIEW_BYTES}-byte preview of each field)",
            text.len()
        ));
    }
    let total: usize = fields.iter().map(|(_, t)| t.len()).sum();
    (total > MAX_REQUEST_BYTES).then(|| {
        format!(
            "{kind}: {total} bytes of text; at most {MAX_REQUEST_BYTES} per request are accepted \
             (the record keeps a {PREVIEW_BYTES}-byte preview of each field and the first \
             {PREVIEW_DETAILS} details)"
        )
    })
}

/// The request with every text field cut to a preview and at most
/// [`PREVIEW_DETAILS`] details: what an oversized request's record keeps.
pub fn redact(action: &Action) -> Action {
    // Built from references: the oversized text is never copied whole.
    let cut = |s: &str| preview(s, PREVIEW_BYTES);
    let message = |m: &Message| Message {
        severity: m.severity,
        summary: cut(&m.summary),
        details: m
            .details
            .iter()
            .take(PREVIEW_DETAILS)
            .map(|(k, v)| (cut(k), cut(v)))
            .collect(),
    };
    match action {
        Action::SuspendUser(s) => Action::SuspendUser(SuspendUser {
            user: cut(&s.user),
            duration_secs: s.duration_secs,
        }),
        Action::RevokeSessions(u) => Action::RevokeSessions(cut(u)),
        Action::ResetFactors(u) => Action::ResetFactors(cut(u)),
        Action::ActivatePolicy(p) => Action::ActivatePolicy(cut(p)),
        Action::RestorePolicy(p) => Action::RestorePolicy(cut(p)),
        Action::AssignAppPolicy(a) => Action::AssignAppPolicy(AppPolicy {
            app: cut(&a.app),
            policy: cut(&a.policy),
        }),
        Action::AddToGroup(g) => Action::AddToGroup(GroupMembership {
            user: cut(&g.user),
            group: cut(&g.group),
        }),
        Action::BlockIp(b) => Action::BlockIp(BlockIp {
            ip: cut(&b.ip),
            duration_secs: b.duration_secs,
        }),
        Action::Notify(m) => Action::Notify(message(m)),
        Action::Escalate(m) => Action::Escalate(message(m)),
    }
}

fn envelope(rule: &str, event: &Event) -> usize {
    ENVELOPE_BYTES + json_len(rule) + json_len(&event.id)
}

/// Bytes the `action` record of `action` will take at most (the gate's
/// message, not known before the decision, is allowed for).
pub fn request_record_bytes(rule: &str, event: &Event, action: &Action) -> usize {
    let text: usize = fields(action).iter().map(|(_, t)| json_len(t) + 4).sum();
    // The target once more, for a denial message that quotes it.
    envelope(rule, event) + text + json_len(action.target()) + MESSAGE_BYTES
}

/// Bytes the `finding` record of `f` takes.
pub fn finding_record_bytes(rule: &str, event: &Event, f: &Finding) -> usize {
    let details: usize = f
        .details
        .iter()
        .map(|(k, v)| json_len(k) + json_len(v) + 2)
        .sum();
    envelope(rule, event)
        + json_len(&event.kind)
        + json_len(&f.title)
        + json_len(&f.subject)
        + details
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;

    fn caps() -> CallCaps {
        CallCaps {
            max_action_requests: 3,
            max_findings: 5,
            max_audit_bytes: 4000,
        }
    }

    fn event() -> Event {
        Event::new("evt-1", "okta", "user.session.start", 0)
    }

    fn finding(subject: &str) -> Finding {
        Finding {
            severity: Severity::Info,
            title: "t".into(),
            subject: subject.into(),
            details: Vec::new(),
        }
    }

    fn notify(summary: &str, details: Vec<(String, String)>) -> Action {
        Action::Notify(Message {
            severity: Severity::High,
            summary: summary.into(),
            details,
        })
    }

    #[test]
    fn the_request_past_max_action_requests_is_refused() {
        let mut out = CallOutput::default();
        for _ in 0..3 {
            out.admit_request(&caps(), 10).unwrap();
        }
        let err = out.admit_request(&caps(), 10).unwrap_err();
        assert!(err.contains("max_action_requests = 3"), "{err}");
        assert!(err.contains("at request 4"), "{err}");
    }

    #[test]
    fn the_request_past_the_byte_budget_is_refused_and_not_counted() {
        let mut out = CallOutput::default();
        out.admit_request(&caps(), 3000).unwrap();
        let err = out.admit_request(&caps(), 1001).unwrap_err();
        assert!(err.contains("max_audit_bytes_per_call = 4000"), "{err}");
        // What was refused took nothing: a smaller one still fits.
        out.admit_request(&caps(), 1000).unwrap();
    }

    #[test]
    fn findings_are_cut_by_count_then_by_bytes_saying_what_was_dropped() {
        let mut out = CallOutput::default();
        // Ten small findings: five kept by count, all five fit in bytes.
        let mut findings: Vec<Finding> = (0..10).map(|i| finding(&i.to_string())).collect();
        let problem = out.admit_findings(&caps(), "r", &event(), &mut findings);
        assert_eq!(findings.len(), 5);
        assert_eq!(
            problem.as_deref(),
            Some("10 findings returned; max_findings = 5, the first 5 were kept")
        );

        // Two findings of ~3 KB each: the second does not fit in 4000 bytes.
        let mut out = CallOutput::default();
        let mut findings = vec![finding(&"a".repeat(3000)), finding(&"b".repeat(3000))];
        let problem = out
            .admit_findings(&caps(), "r", &event(), &mut findings)
            .unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject.as_bytes()[0], b'a');
        assert!(
            problem.starts_with("findings past max_audit_bytes_per_call = 4000: 1 of 2 kept, 1 ("),
            "{problem}"
        );
    }

    #[test]
    fn requests_spend_the_budget_before_findings() {
        let mut out = CallOutput::default();
        out.admit_request(&caps(), 3900).unwrap();
        let mut findings = vec![finding("x")];
        assert!(
            out.admit_findings(&caps(), "r", &event(), &mut findings)
                .is_some()
        );
        assert!(findings.is_empty());
    }

    #[test]
    fn oversized_fields_and_requests_are_named() {
        let big_target = Action::SuspendUser(SuspendUser {
            user: "u".repeat(MAX_FIELD_BYTES + 1),
            duration_secs: None,
        });
        let why = oversize(&big_target).unwrap();
        assert!(
            why.starts_with("suspend-user: target of 4097 bytes"),
            "{why}"
        );

        // Many details, each under the field bound, over the request bound.
        let details = (0..8)
            .map(|i| (format!("k{i}"), "v".repeat(3000)))
            .collect();
        let why = oversize(&notify("s", details)).unwrap();
        assert!(why.starts_with("notify: 24"), "{why}");
        assert!(oversize(&notify("fine", vec![("k".into(), "v".into())])).is_none());
    }

    #[test]
    fn a_redacted_request_is_small_whatever_was_asked() {
        let details = (0..1000)
            .map(|i| (format!("key-{i}"), "v".repeat(5000)))
            .collect();
        let huge = notify(&"s".repeat(1 << 20), details);
        let small = redact(&huge);
        let Action::Notify(m) = &small else {
            unreachable!()
        };
        assert_eq!(m.details.len(), PREVIEW_DETAILS);
        assert!(m.summary.len() <= PREVIEW_BYTES + 3);
        assert!(request_record_bytes("r", &event(), &small) < 2000);
    }

    #[test]
    fn record_estimates_cover_the_real_json() {
        // The estimate must not be below the JSON of the rule's text.
        let f = Finding {
            severity: Severity::High,
            title: "quote \" and newline \n".into(),
            subject: "\u{1}".repeat(100),
            details: vec![("k".into(), "v\"".repeat(50))],
        };
        let json = serde_json::json!({
            "title": f.title, "subject": f.subject,
            "details": {"k": f.details[0].1},
        })
        .to_string();
        assert!(finding_record_bytes("r", &event(), &f) > json.len());
    }
}

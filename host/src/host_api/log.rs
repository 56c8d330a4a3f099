//! `vigil:rule/log` (every contract version): a rule's log lines, tagged with its id. Lines count
//! against the same per-call output budget as stdout, so a chatty rule
//! cannot flood the operator's logs, and are escaped (`text`), so a rule
//! cannot forge a log line with a newline, a carriage return or an ANSI
//! escape.

use super::RuleState;
/// A rule's log level (the same four in every contract version).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl RuleState {
    /// `log.log`: one escaped line tagged with the rule id.
    pub fn rule_log(&mut self, level: Level, message: String) {
        if !self.stdout.charge(message.len()) {
            return;
        }
        let rule = self.ctx.rule_id.as_str();
        let message = super::text::escape_for_log(&message);
        match level {
            Level::Debug => tracing::debug!(target: "vigil::rule", rule, "{message}"),
            Level::Info => tracing::info!(target: "vigil::rule", rule, "{message}"),
            Level::Warn => tracing::warn!(target: "vigil::rule", rule, "{message}"),
            Level::Error => tracing::error!(target: "vigil::rule", rule, "{message}"),
        }
    }
}

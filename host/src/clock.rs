//! The wall clock, in the unit the store and the audit log use.

/// Wall-clock now in unix milliseconds. Undos, approvals' expiry, budgets
/// and cursors run in real time, not event time: a 30-minute suspension
/// lasts 30 minutes however old the event that caused it.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

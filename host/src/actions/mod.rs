//! Actions after the gate: connectors that carry them out, and the
//! executor that runs them exactly once and schedules their undo.
//!
//! The pipeline hands the [`executor::ActionExecutor`] only actions the
//! policy gate accepted and whose decision is already durable in the audit
//! log; what it returns is audited after. One module per concern:
//! - [`connector`]: the [`connector::Connector`] trait, results and errors;
//! - [`http`]: timeouts, retries, backoff, rate limits, vendor errors;
//! - [`okta`], [`graph`], [`webhook`], [`log`]: the connectors;
//! - [`dispatch`]: which connector serves which rule, action and source;
//! - [`executor`]: idempotency keys and undos, in the durable store.

pub mod connector;
pub mod dispatch;
pub mod executor;
pub mod graph;
pub mod http;
pub mod log;
pub mod okta;
pub mod webhook;

//! Actions after the gate: the connectors that carry them out against one
//! system each, and the dispatch that picks them. The
//! [`crate::executor::ActionExecutor`] runs accepted actions through them
//! exactly once and schedules their undo. One module per concern:
//! - [`connector`]: the [`connector::Connector`] trait, results and errors;
//! - [`http`]: timeouts, retries, backoff, rate limits, vendor errors;
//! - [`okta`], [`graph`], [`webhook`], [`log`]: the connectors;
//! - [`dispatch`]: which connector serves which rule, action and source;

pub mod connector;
pub mod dispatch;
pub mod graph;
pub mod http;
pub mod log;
pub mod okta;
pub mod webhook;

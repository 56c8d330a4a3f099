//! The host's domain model: events, principals, actions, findings, the
//! gate's decisions and what a rule says about itself.
//!
//! These are the types the pipeline, the policy gate, the executor, the
//! audit log and the store work with. They belong to the host, not to any
//! version of the WIT contract: the code generated from each `vigil:rule`
//! version stays in `crate::wit`, which converts to and from these types at
//! the component boundary. A new contract version is a new adapter there,
//! never a change here for old rules.

mod action;
mod event;
mod rule;

pub use action::{
    Action, ActionKind, BlockIp, Decision, Denial, DenialReason, Finding, GroupMembership, Message,
    Receipt, Severity, SuspendUser,
};
pub use event::{Event, EventClass, Geo, Outcome, Principal, RawLine, RawRecord};
pub use rule::{Metadata, PartitionKey};

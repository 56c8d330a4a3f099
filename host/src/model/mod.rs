//! The host's domain model: events, principals, actions, findings, the
//! gate's decisions, what a rule says about itself, and the MFA
//! configuration objects a baseline holds (`baseline`).
//!
//! These are the types the pipeline, the policy gate, the executor, the
//! audit log and the store work with. They belong to the host, not to any
//! version of the WIT contract: the code generated from each `vigil:rule`
//! version stays in `crate::wit`, which converts to and from these types at
//! the component boundary. A new contract version is a new adapter there,
//! never a change here for old rules.

mod action;
pub mod baseline;
mod event;
mod rule;

pub use action::{
    Action, ActionKind, AppPolicy, BlockIp, Decision, Denial, DenialReason, Finding,
    GroupMembership, Message, Receipt, Severity, SuspendUser,
};
pub use event::{Event, EventClass, Geo, Outcome, Principal, RawLine, RawRecord};
pub use rule::{Metadata, PartitionKey};

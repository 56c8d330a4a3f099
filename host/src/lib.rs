//! Vigil host library: runs detection and remediation rules compiled to
//! WebAssembly components against normalized identity events.
//!
//! Data flows one way, one module per step:
//! `sources` → `normalize` → `rules` (routing, instances, `host_api`) →
//! `policy` (the gate: grants, protected accounts, budgets, breakers) →
//! `audit` → `actions` (connectors, executor). `store` keeps what outlives
//! an event (rule state, idempotency keys, undos, approvals, breakers).
//! `pipeline` wires the steps together; `service` runs it as a long-lived
//! sidecar behind HTTP; `cli` is the `vigil` command line.

pub mod actions;
pub mod audit;
pub mod bindings;
pub mod builtin;
pub mod cli;
pub mod config;
pub mod engine;
pub mod host_api;
pub mod normalize;
pub mod pipeline;
pub mod policy;
pub mod rule_tests;
pub mod rules;
pub mod secret;
pub mod service;
pub mod sources;
pub mod store;

//! Vigil host library: runs detection and remediation rules compiled to
//! WebAssembly components against normalized identity events.
//!
//! Data flows one way, one module per step:
//! `sources` → `normalize` → `rules` (routing, instances, `host_api`) →
//! `policy` (the gate: grants, protected accounts, budgets, breakers) →
//! `audit` → `executor` (through the `actions` connectors). `store` keeps
//! what outlives an event (rule state, idempotency keys, undos, approvals,
//! breakers). `pipeline` wires the steps together; `service` runs it as a
//! long-lived sidecar behind HTTP; `cli` is the `vigil` command line.
//!
//! Imports between these modules only go down this list (a module may use
//! any module below it, never one above or beside it on its line); there
//! are no cycles, and a new dependency that would make one belongs in a
//! lower module instead:
//!
//! 1. `cli`, `rule_tests` — commands and the data-driven rule tests
//! 2. `service` — the sidecar: HTTP, spool, admin API, metrics, watchdog
//! 3. `pipeline` — the run loop and its durable per-event commit
//! 4. `rules` — loading components, instances, routing
//! 5. `executor`, `host_api` — running accepted actions; the WIT imports
//! 6. `policy`, `sources` — the gate and protected accounts; event inputs
//! 7. `store` — the SQLite state store
//! 8. `actions`, `audit` — connectors and dispatch; the audit log
//! 9. `config`, `normalize` — `vigil.toml`; input formats → events
//! 10. `bindings`, `engine`, `builtin`, `secret`, `clock` — the WIT types,
//!     the wasmtime engine, the built-in pack, credentials, the wall clock

pub mod actions;
pub mod audit;
pub mod bindings;
pub mod builtin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod executor;
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

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
//! 3. `pipeline` — the run loop, its durable per-event commit, and the
//!    shards that judge a batch of events in parallel
//! 4. `rules` — loading components, instances (one per shard), routing
//! 5. `wit` — one adapter per contract version: generated bindings and
//!    conversions to and from `model` (generated types stay in there)
//! 6. `executor`, `host_api` — running accepted actions; what the WIT
//!    imports do, in the host's terms
//! 7. `policy`, `sources`, `baseline` — the gate and protected accounts;
//!    event inputs; the MFA baselines (capture, drift, the approved policy
//!    a restore writes back)
//! 8. `store`, `pack`, `chat` — the SQLite state store; vendor rule packs
//!    (manifest, signatures, `.vpack` files, OCI artifacts, the installed
//!    packs directory); approval requests posted to chat and the checks on
//!    the decisions that come back (Slack signatures, signed links)
//! 9. `actions`, `audit`, `cluster` — connectors and dispatch; the audit
//!    log; claims shared by replicas through NATS JetStream
//! 10. `config`, `normalize` — `vigil.toml`; input formats → events
//! 11. `model`, `engine`, `builtin`, `secret`, `clock` — the domain types,
//!     the wasmtime engine, the built-in pack, credentials, the wall clock

pub mod actions;
pub mod audit;
pub mod baseline;
pub mod builtin;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod executor;
pub mod host_api;
pub mod model;
pub mod normalize;
pub mod pack;
pub mod pipeline;
pub mod policy;
pub mod rule_tests;
pub mod rules;
pub mod secret;
pub mod service;
pub mod sources;
pub mod store;
pub mod wit;

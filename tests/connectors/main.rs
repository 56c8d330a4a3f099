//! Connector tests over real HTTP: the Okta, Graph and webhook connectors
//! (and the `vigil` binary) against the fake identity provider in
//! `vigil_test_support::fake_idp`, on loopback. Nothing mocks the client.

mod baseline;
mod cluster;
mod e2e;
mod faults;
mod grants;
mod graph;
mod okta;
mod protected_groups;
mod replicas;
mod resolution;
mod undo;
mod webhook;

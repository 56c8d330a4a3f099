//! Which connector carries out which action.
//!
//! Resolution, first match wins:
//! 1. no connector configured at all → the `log` connector (nothing outside
//!    Vigil changes; the audit log says `executor: log`);
//! 2. the rule's own `dispatch` table (`[[rules]] dispatch = {…}`);
//! 3. the global `[dispatch]` table;
//! 4. defaults: identity actions go to the provider the event came from
//!    (`okta` events → the Okta connector, `entra` events → Graph), so a
//!    user id is only ever sent to the directory that issued it;
//!    `notify` / `escalate` go to every webhook whose `actions` list takes
//!    them.
//!
//! No match is not an error at start (a rule may never ask); the action is
//! then audited `failed` with the reason.

use std::collections::HashMap;

use anyhow::Result;

use crate::bindings::ActionKind;
use crate::config::{ConnectorsConfig, Dispatch};

use super::connector::Connector;
use super::graph::GraphConnector;
use super::log::LogConnector;
use super::okta::OktaConnector;
use super::webhook::WebhookConnector;

/// Action kind name → connector indices.
type Table = HashMap<&'static str, Vec<usize>>;

pub struct Dispatcher {
    /// Index 0 is always the `log` connector.
    connectors: Vec<Box<dyn Connector>>,
    log_only: bool,
    global: Table,
    per_rule: HashMap<String, Table>,
}

impl Dispatcher {
    /// Builds every configured connector (reading their credentials) and
    /// the dispatch tables. `per_rule` pairs a loaded rule's id with its
    /// `dispatch` table.
    pub fn from_config(
        config: &ConnectorsConfig,
        global: &Dispatch,
        per_rule: &[(String, Dispatch)],
    ) -> Result<Dispatcher> {
        let mut connectors: Vec<Box<dyn Connector>> = Vec::new();
        if let Some(okta) = &config.okta {
            connectors.push(Box::new(OktaConnector::new(okta, &config.http)?));
        }
        if let Some(graph) = &config.graph {
            connectors.push(Box::new(GraphConnector::new(graph, &config.http)?));
        }
        for w in &config.webhooks {
            connectors.push(Box::new(WebhookConnector::new(w, &config.http)?));
        }
        Dispatcher::new(connectors, global, per_rule)
    }

    /// A dispatcher over the given connectors (a `log` connector is added).
    /// With no connectors, everything goes to `log`.
    pub fn new(
        connectors: Vec<Box<dyn Connector>>,
        global: &Dispatch,
        per_rule: &[(String, Dispatch)],
    ) -> Result<Dispatcher> {
        let log_only = connectors.is_empty();
        let mut all: Vec<Box<dyn Connector>> = vec![Box::new(LogConnector)];
        all.extend(connectors);
        let mut d = Dispatcher {
            connectors: all,
            log_only,
            global: Table::new(),
            per_rule: HashMap::new(),
        };
        d.global = d.table("dispatch", global)?;
        for (rule, table) in per_rule {
            let t = d.table(&format!("dispatch of rule {rule}"), table)?;
            d.per_rule.insert(rule.clone(), t);
        }
        Ok(d)
    }

    fn table(&self, at: &str, dispatch: &Dispatch) -> Result<Table> {
        let mut table = Table::new();
        for (kind, names) in dispatch {
            let Some(k) = ActionKind::from_name(kind) else {
                anyhow::bail!("{at}.{kind}: unknown action kind");
            };
            let mut indices = Vec::new();
            for name in names.names() {
                let Some(i) = self.index(&name) else {
                    anyhow::bail!("{at}.{kind}: no connector named {name:?}");
                };
                if !self.connectors[i].supports(k) {
                    anyhow::bail!("{at}.{kind}: connector {name:?} cannot carry out {kind}");
                }
                indices.push(i);
            }
            table.insert(k.name(), indices);
        }
        Ok(table)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.connectors.iter().position(|c| c.name() == name)
    }

    /// The connector named `name` (undos go back to the connector that did
    /// the action).
    pub fn by_name(&mut self, name: &str) -> Option<&mut dyn Connector> {
        let i = self.index(name)?;
        Some(self.connectors[i].as_mut())
    }

    /// The connectors that serve `kind` for `rule` on an event from
    /// `source`, or why there are none.
    pub fn resolve(
        &self,
        rule: &str,
        kind: ActionKind,
        source: &str,
    ) -> Result<Vec<usize>, String> {
        if self.log_only {
            return Ok(vec![0]);
        }
        if let Some(found) = self.per_rule.get(rule).and_then(|t| t.get(kind.name())) {
            return Ok(found.clone());
        }
        if let Some(found) = self.global.get(kind.name()) {
            return Ok(found.clone());
        }
        if matches!(kind, ActionKind::Notify | ActionKind::Escalate) {
            let hooks: Vec<usize> = (1..self.connectors.len())
                .filter(|&i| {
                    let c = &self.connectors[i];
                    !matches!(c.name(), "okta" | "graph") && c.supports(kind)
                })
                .collect();
            if hooks.is_empty() {
                return Err(format!(
                    "no connector for {}: no webhook takes it (configure [[connectors.webhooks]] or name one in [dispatch])",
                    kind.name()
                ));
            }
            return Ok(hooks);
        }
        let provider = match source {
            "okta" => "okta",
            "entra" => "graph",
            _ => "",
        };
        match self.index(provider) {
            Some(i) if !provider.is_empty() => Ok(vec![i]),
            _ => Err(format!(
                "no connector for {} on {source} events: configure [connectors.{}] or name one in [dispatch]",
                kind.name(),
                if provider.is_empty() {
                    "okta"
                } else {
                    provider
                }
            )),
        }
    }

    pub fn connector(&mut self, index: usize) -> &mut dyn Connector {
        self.connectors[index].as_mut()
    }

    /// Every connector but `log` when others exist (for `connectors check`).
    pub fn configured(&mut self) -> impl Iterator<Item = &mut Box<dyn Connector>> {
        let skip = usize::from(!self.log_only);
        self.connectors.iter_mut().skip(skip)
    }
}

//! Which connector carries out which action.
//!
//! Resolution, first match wins:
//! 1. no connector configured at all → the `log` connector (nothing outside
//!    Vigil changes; the audit log says `executor: log`);
//! 2. the rule's own `dispatch` table (`[[rules]] dispatch = {…}`);
//! 3. the global `[dispatch]` table;
//! 4. defaults: identity actions go to the connector whose directory
//!    serves the event's source ([`Connector::directory_for`]: `okta`
//!    events → the Okta connector, `entra` events → Graph), so a user id is
//!    only ever sent to the directory that issued it; `notify` / `escalate`
//!    go to every connector without a directory (the webhooks) whose
//!    `actions` list takes them.
//!
//! The connector kinds are listed once, in [`REGISTRY`].
//!
//! No match is not an error at start (a rule may never ask); the action is
//! then audited `failed` with the reason.

use std::collections::HashMap;

use anyhow::Result;

use crate::config::{ConnectorsConfig, Dispatch};
use crate::model::ActionKind;

use super::connector::Connector;
use super::log::LogConnector;
use super::{graph, okta, webhook};

/// Action kind name → connector indices.
type Table = HashMap<&'static str, Vec<usize>>;

/// Builds the configured connectors of one kind.
pub type BuildConnectors = fn(&ConnectorsConfig) -> Result<Vec<Box<dyn Connector>>>;

/// One kind of connector: where it is configured and how it is built.
pub struct ConnectorKind {
    /// The config section, for messages (`connectors.okta`).
    pub section: &'static str,
    /// The event source whose directory it serves, if any (see
    /// [`Connector::directory_for`]).
    pub directory_for: Option<&'static str>,
    /// Builds the configured connectors of this kind (none when the
    /// section is absent), reading their credentials.
    pub build: BuildConnectors,
}

/// Every connector kind, in the order they are built. A new connector is a
/// module with a `from_config` and one line here.
pub const REGISTRY: &[ConnectorKind] = &[
    ConnectorKind {
        section: "connectors.okta",
        directory_for: Some("okta"),
        build: okta::from_config,
    },
    ConnectorKind {
        section: "connectors.graph",
        directory_for: Some("entra"),
        build: graph::from_config,
    },
    ConnectorKind {
        section: "connectors.webhooks",
        directory_for: None,
        build: webhook::from_config,
    },
];

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
        for kind in REGISTRY {
            connectors.extend((kind.build)(config)?);
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
            // Every connector without a directory that takes it (webhooks),
            // never the `log` connector when others exist.
            let hooks: Vec<usize> = (1..self.connectors.len())
                .filter(|&i| {
                    let c = &self.connectors[i];
                    c.directory_for().is_none() && c.supports(kind)
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
        if let Some(i) =
            (1..self.connectors.len()).find(|&i| self.connectors[i].directory_for() == Some(source))
        {
            return Ok(vec![i]);
        }
        let sections: Vec<String> = REGISTRY
            .iter()
            .filter(|k| k.directory_for == Some(source))
            .map(|k| format!("[{}]", k.section))
            .collect();
        Err(if sections.is_empty() {
            format!(
                "no connector for {} on {source} events: no connector serves that source's \
                 directory; name one in [dispatch]",
                kind.name()
            )
        } else {
            format!(
                "no connector for {} on {source} events: configure {} or name one in [dispatch]",
                kind.name(),
                sections.join(" or ")
            )
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::connector::{ActionContext, ConnectorError, Executed, Undo};
    use crate::model::Action;

    /// A connector that only names itself and its directory.
    struct Named {
        name: &'static str,
        directory: Option<&'static str>,
    }

    impl Connector for Named {
        fn name(&self) -> &str {
            self.name
        }
        fn supports(&self, _: ActionKind) -> bool {
            true
        }
        fn directory_for(&self) -> Option<&'static str> {
            self.directory
        }
        fn execute(
            &mut self,
            _: &Action,
            _: &ActionContext<'_>,
        ) -> Result<Executed, ConnectorError> {
            unreachable!()
        }
        fn undo(&mut self, _: &Undo) -> Result<String, ConnectorError> {
            unreachable!()
        }
        fn check(&mut self) -> Result<Vec<String>, ConnectorError> {
            Ok(Vec::new())
        }
    }

    fn dispatcher(connectors: Vec<Named>) -> Dispatcher {
        let boxed = connectors
            .into_iter()
            .map(|c| Box::new(c) as Box<dyn Connector>)
            .collect();
        Dispatcher::new(boxed, &Dispatch::default(), &[]).unwrap()
    }

    // Identity actions follow the directory of the event's source, whatever
    // the connectors are called; notifications go to the connectors without
    // a directory.
    #[test]
    fn defaults_follow_the_directory_not_the_name() {
        let d = dispatcher(vec![
            Named {
                name: "workspace",
                directory: Some("google"),
            },
            Named {
                name: "okta",
                directory: Some("okta"),
            },
            Named {
                name: "siem",
                directory: None,
            },
        ]);
        let name = |r: Result<Vec<usize>, String>| -> Vec<&str> {
            r.unwrap()
                .into_iter()
                .map(|i| d.connectors[i].name())
                .collect()
        };
        assert_eq!(
            name(d.resolve("r", ActionKind::SuspendUser, "google")),
            ["workspace"]
        );
        assert_eq!(
            name(d.resolve("r", ActionKind::SuspendUser, "okta")),
            ["okta"]
        );
        assert_eq!(name(d.resolve("r", ActionKind::Escalate, "okta")), ["siem"]);
        let e = d
            .resolve("r", ActionKind::SuspendUser, "entra")
            .unwrap_err();
        assert!(e.contains("[connectors.graph]"), "{e}");
        let e = d
            .resolve("r", ActionKind::SuspendUser, "other")
            .unwrap_err();
        assert!(e.contains("no connector serves"), "{e}");
    }

    // Every registered kind builds nothing when its section is absent.
    #[test]
    fn an_empty_config_builds_no_connector() {
        let config = ConnectorsConfig::default();
        for kind in REGISTRY {
            assert!(
                (kind.build)(&config).unwrap().is_empty(),
                "{}",
                kind.section
            );
        }
    }
}

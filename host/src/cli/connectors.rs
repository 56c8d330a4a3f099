//! `vigil connectors check`: proves each connector's credentials and
//! reachability with read-only calls (nothing in the identity provider
//! changes), lists the protected groups, then prints the dispatch table.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::actions::dispatch::Dispatcher;
use crate::config::Config;
use crate::model::ActionKind;

pub fn check(config_path: &Path) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    if config.connectors.is_empty() {
        println!("no connectors configured: accepted actions are only logged (executor: log)");
        return Ok(ExitCode::SUCCESS);
    }
    // Reading the credentials is the first check: a missing variable or
    // file stops here with its key named.
    let mut dispatcher = Dispatcher::from_config(&config.connectors, &config.dispatch, &[])?;
    let mut failed = 0;
    for connector in dispatcher.configured() {
        let name = connector.name().to_owned();
        match connector.check() {
            Ok(lines) => {
                for line in lines {
                    println!("ok    {name}: {line}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL  {name}: {e}");
            }
        }
    }
    // Protected groups: listing them is read-only and proves the
    // permission Vigil needs to keep break-glass members safe.
    for spec in &config.protected.groups {
        let Some((connector, group)) = spec.split_once(':') else {
            continue;
        };
        let Some(c) = dispatcher.by_name(connector) else {
            continue;
        };
        match c.group_members(group) {
            Ok(members) => println!(
                "ok    {connector}: protected group {spec} lists {} members",
                members.len()
            ),
            Err(e) => {
                failed += 1;
                println!("FAIL  {connector}: protected group {spec}: {e}");
            }
        }
    }
    println!("dispatch (rule-specific tables not shown):");
    for kind in ActionKind::ALL {
        let mut cells = Vec::new();
        for source in ["okta", "entra"] {
            let cell = match dispatcher.resolve("", kind, source) {
                Ok(indices) => indices
                    .into_iter()
                    .map(|i| dispatcher.connector(i).name().to_owned())
                    .collect::<Vec<_>>()
                    .join("+"),
                Err(_) => "none".to_owned(),
            };
            cells.push(format!("{source} events → {cell}"));
        }
        println!("  {:<16} {}", kind.name(), cells.join(", "));
    }
    if failed > 0 {
        println!("{failed} connector(s) failed the check");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

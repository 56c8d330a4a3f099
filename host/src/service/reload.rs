//! Reloading the rules and the configuration without a restart.
//!
//! Three triggers, one path: `SIGHUP`, `POST /v1/admin/reload`, and a
//! change seen by the **reload thread**, which every
//! `[server] reload_watch_secs` looks at the config file, the `path` rule
//! files, the trusted keys and the installed packs' `state.json` (size,
//! modification time, inode: an install or a rollback replaces
//! `state.json` atomically, so one stat per file sees it; polling a
//! handful of files needs no watcher library and works on every file
//! system).
//!
//! The reload thread re-reads and validates the configuration and builds
//! the whole new rule set (compiling, verifying packs, instantiating) —
//! off the pipeline thread, which keeps judging events meanwhile. It then
//! hands the set to the pipeline thread, which swaps it between two events
//! (`Pipeline::replace_rules`: an event is judged entirely by the old or
//! entirely by the new set, rule state is kept per rule id). Anything that
//! fails — a config error, an unsigned or altered pack, a rule that does
//! not load — leaves the old set running and is reported: a `reload`
//! audit record (`result: failed` and why), `vigil_reloads{result}`, the
//! admin answer, a log line.
//!
//! What a reload applies: rules (added, removed, upgraded), modes, grants,
//! approvals, budgets, limits, rule settings, protected accounts, the
//! baseline check interval. What it
//! cannot (listeners, sources, connectors, dispatch, the audit log and
//! store, shards) keeps its running value and is named in
//! `restart_needed`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::oneshot;

use super::metrics::Metrics;
use super::watchdog::Health;
use crate::audit::Entry;
use crate::config::{Config, Protected};
use crate::engine::VigilEngine;
use crate::pipeline::{Pipeline, RulesChange};
use crate::rules::RuleSet;

/// How long the reload thread waits between looks at its stop flag.
const TURN: Duration = Duration::from_millis(200);

/// A prepared rule set for the pipeline thread to swap in (or why it
/// could not be prepared), with who asked and where the outcome goes.
pub struct ApplyReload {
    pub prepared: Result<Box<Prepared>, String>,
    pub reason: &'static str,
    pub by: String,
    pub reply: oneshot::Sender<ReloadOutcome>,
}

/// A reload someone asked for.
pub struct ReloadRequest {
    /// `SIGHUP`, `admin`, `file change`.
    pub reason: &'static str,
    /// Who: the admin name, `signal`, `watch`.
    pub by: String,
    pub reply: Option<oneshot::Sender<ReloadOutcome>>,
}

/// What a reload did.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadOutcome {
    /// `applied` or `failed`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub rules: RulesChange,
    /// Configuration keys whose value changed (`rules[2].allow`,
    /// `protected.ids`); values are not repeated (they may name secrets'
    /// locations).
    pub config: Vec<String>,
    /// Changed settings that only a restart applies.
    pub restart_needed: Vec<String>,
    /// Rules running after the reload.
    pub rules_loaded: usize,
}

impl ReloadOutcome {
    fn failed(error: String) -> ReloadOutcome {
        ReloadOutcome {
            result: "failed",
            error: Some(error),
            rules: RulesChange::default(),
            config: Vec::new(),
            restart_needed: Vec::new(),
            rules_loaded: 0,
        }
    }
}

/// A new rule set and configuration, ready to swap in.
pub struct Prepared {
    rules: RuleSet,
    /// What the pipeline applies with the rules besides the gate's settings.
    protected: Protected,
    baseline_check_secs: u64,
    config_changes: Vec<String>,
    restart_needed: Vec<String>,
}

/// On the pipeline thread: swaps in `prepared` (or records why there is
/// nothing to swap), audits the reload and answers. An `Err` is an audit
/// or store failure.
pub fn apply(
    pipeline: &mut Pipeline,
    prepared: Result<Box<Prepared>, String>,
    reason: &str,
    by: &str,
) -> Result<ReloadOutcome> {
    let mut outcome = match prepared {
        Err(e) => ReloadOutcome::failed(e),
        Ok(p) => match pipeline.replace_rules(p.rules, &p.protected)? {
            Err(e) => ReloadOutcome::failed(e),
            Ok(rules) => {
                pipeline.set_baseline_check_secs(p.baseline_check_secs);
                ReloadOutcome {
                    result: "applied",
                    error: None,
                    rules,
                    config: p.config_changes,
                    restart_needed: p.restart_needed,
                    rules_loaded: 0,
                }
            }
        },
    };
    outcome.rules_loaded = pipeline.rules().rules.len();
    let mut entry = Entry::new("reload")
        .field("result", outcome.result)
        .field("reason", reason)
        .field("by", by);
    if let Some(e) = &outcome.error {
        entry = entry.field("error", e.as_str());
    } else {
        let c = &outcome.rules;
        entry = entry
            .field("added", c.added.clone())
            .field("removed", c.removed.clone())
            .field("upgraded", c.upgraded.clone())
            .field("grants", c.grants.clone())
            .field("modes_kept", c.modes_kept.clone())
            .field("modes_dropped", c.modes_dropped.clone())
            .field("config", outcome.config.clone())
            .field("restart_needed", outcome.restart_needed.clone());
    }
    pipeline.audit_external(entry)?;
    match &outcome.error {
        Some(e) => tracing::error!(reason, by, "reload failed, the running rules stay: {e}"),
        None => tracing::info!(
            reason,
            by,
            added = outcome.rules.added.len(),
            removed = outcome.rules.removed.len(),
            upgraded = outcome.rules.upgraded.len(),
            grants = outcome.rules.grants.len(),
            restart_needed = %outcome.restart_needed.join(","),
            "reloaded"
        ),
    }
    Ok(outcome)
}

/// The reload thread's inputs.
pub struct Reloader {
    pub config_path: PathBuf,
    /// The configuration the process started with: what settings that
    /// only a restart applies are compared with (they stay "needed" until
    /// the restart, across reloads).
    pub started: Config,
    /// The configuration of the last applied reload (or the start).
    pub running: Config,
    pub running_text: String,
    /// Shards of the running rule set (a reload keeps them).
    pub shards: usize,
    pub watch: Option<Duration>,
    /// Hands a prepared reload to the pipeline thread (as an admin
    /// command); false when it is not running.
    pub to_pipeline: Box<dyn Fn(ApplyReload) -> bool + Send>,
    pub metrics: Arc<Metrics>,
    /// `/readyz` counts the rules loaded.
    pub health: Arc<Health>,
    pub stop: Arc<AtomicBool>,
}

impl Reloader {
    /// Starts the reload thread; requests go to the returned sender.
    pub fn spawn(self) -> Result<(mpsc::Sender<ReloadRequest>, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel();
        // Taken here, before the listeners open: taken on the new thread, a
        // change made once the service answers could land before the first
        // look and never be seen (a busy machine schedules the thread late).
        let seen = fingerprint(&self.running, &self.config_path);
        let handle = std::thread::Builder::new()
            .name("vigil-reload".into())
            .spawn(move || self.run(rx, seen))
            .context("cannot start the reload thread")?;
        Ok((tx, handle))
    }

    fn run(mut self, requests: mpsc::Receiver<ReloadRequest>, mut seen: Fingerprint) {
        let mut next_look = self.watch.map(|w| Instant::now() + w);
        while !self.stop.load(Ordering::SeqCst) {
            let request = match requests.recv_timeout(TURN) {
                Ok(r) => Some(r),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let request = request.or_else(|| {
                let (watch, due) = (self.watch?, next_look?);
                if Instant::now() < due {
                    return None;
                }
                next_look = Some(Instant::now() + watch);
                let now = fingerprint(&self.running, &self.config_path);
                (now != seen).then(|| {
                    seen = now;
                    ReloadRequest {
                        reason: "file change",
                        by: "watch".to_owned(),
                        reply: None,
                    }
                })
            });
            let Some(request) = request else { continue };
            // Requests that queued meanwhile (a burst of SIGHUPs, an admin
            // call during a file change) are answered by this one reload:
            // it reads everything as it is now.
            let waiting: Vec<ReloadRequest> = requests.try_iter().collect();
            let outcome = self.reload(&request);
            // What was read this time is what the next look compares with.
            seen = fingerprint(&self.running, &self.config_path);
            self.metrics.reload(outcome.result);
            if outcome.result == "applied" {
                self.health
                    .rules
                    .store(outcome.rules_loaded, Ordering::SeqCst);
            }
            for reply in std::iter::once(request)
                .chain(waiting)
                .filter_map(|r| r.reply)
            {
                let _ = reply.send(outcome.clone());
            }
        }
    }

    /// Prepares the new set, has the pipeline thread swap it in, and
    /// remembers the new configuration once applied.
    fn reload(&mut self, request: &ReloadRequest) -> ReloadOutcome {
        let (prepared, new_config) = match self.prepare() {
            Ok((p, config, text)) => (Ok(Box::new(p)), Some((config, text))),
            Err(e) => (Err(e), None),
        };
        let (reply, rx) = oneshot::channel();
        let job = ApplyReload {
            prepared,
            reason: request.reason,
            by: request.by.clone(),
            reply,
        };
        if !(self.to_pipeline)(job) {
            return ReloadOutcome::failed("the pipeline is not running".to_owned());
        }
        let Ok(outcome) = rx.blocking_recv() else {
            return ReloadOutcome::failed("the pipeline stopped during the reload".to_owned());
        };
        if outcome.result == "applied"
            && let Some((config, text)) = new_config
        {
            self.running = config;
            self.running_text = text;
        }
        outcome
    }

    /// The new rule set, the configuration it came from and its text.
    fn prepare(&self) -> Result<(Prepared, Config, String), String> {
        let (mut config, text) =
            Config::load_with_text(&self.config_path).map_err(|e| format!("{e:#}"))?;
        let mut restart_needed = restart_needed(&self.started, &config);
        if config.shard_count() != self.shards {
            restart_needed.push("shards".to_owned());
            config.shards = Some(self.shards);
        }
        let engine =
            VigilEngine::new(config.cache_dir().as_deref()).map_err(|e| format!("{e:#}"))?;
        let rules =
            crate::rules::assemble::from_config(&config, engine).map_err(|e| format!("{e:#}"))?;
        let config_changes = toml_changes(&self.running_text, &text);
        self.metrics
            .register_rules(rules.rules.iter().map(|r| r.id()));
        Ok((
            Prepared {
                rules,
                protected: config.protected.clone(),
                baseline_check_secs: config.baseline.check_secs,
                config_changes,
                restart_needed,
            },
            config,
            text,
        ))
    }
}

/// The settings a reload cannot apply that differ between `old` and `new`.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let per_rule_dispatch = |c: &Config| -> Vec<crate::config::Dispatch> {
        c.rules.iter().map(|r| r.dispatch.clone()).collect()
    };
    [
        ("server", old.server != new.server),
        ("sources", old.sources != new.sources),
        ("connectors", old.connectors != new.connectors),
        (
            "dispatch",
            old.dispatch != new.dispatch || per_rule_dispatch(old) != per_rule_dispatch(new),
        ),
        (
            "audit",
            old.audit_path != new.audit_path || old.audit != new.audit,
        ),
        ("state_path", old.state_path != new.state_path),
        ("max_line_bytes", old.max_line_bytes != new.max_line_bytes),
        (
            "approvals (notify, slack, links)",
            old.approvals.chat_settings_differ(&new.approvals),
        ),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(name, _)| name.to_owned())
    .collect()
}

/// Dotted paths of the keys whose values differ between two TOML texts.
fn toml_changes(old: &str, new: &str) -> Vec<String> {
    let parse = |t: &str| t.parse::<toml::Table>().map(toml::Value::Table).ok();
    let (Some(a), Some(b)) = (parse(old), parse(new)) else {
        return vec!["(the configuration)".to_owned()];
    };
    let mut out = Vec::new();
    diff_values("", &a, &b, &mut out);
    out
}

fn diff_values(at: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => diff_values(&join(key), p, q, out),
                    _ => out.push(join(key)),
                }
            }
        }
        // Arrays of tables ([[rules]]) entry by entry; other arrays whole.
        (toml::Value::Array(x), toml::Value::Array(y))
            if x.iter().chain(y).all(toml::Value::is_table) && x.len() == y.len() =>
        {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_values(&format!("{at}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(at.to_owned()),
        _ => {}
    }
}

/// What the watch compares: each watched file's size, modification time
/// and inode (None: missing).
type Fingerprint = Vec<(PathBuf, Option<(u64, i128, u64)>)>;

fn fingerprint(config: &Config, config_path: &Path) -> Fingerprint {
    let mut files = vec![config_path.to_owned()];
    files.extend(config.rules.iter().filter_map(|r| r.path.clone()));
    files.extend(config.packs.trusted_keys.iter().cloned());
    let packs = crate::pack::installed::PacksDir::new(&config.packs.dir);
    // The directory itself: a pack added or removed.
    files.push(config.packs.dir.clone());
    if let Ok(names) = packs.names() {
        files.extend(
            names
                .iter()
                .map(|n| config.packs.dir.join(n).join("state.json")),
        );
    }
    files
        .into_iter()
        .map(|path| {
            let stat = std::fs::metadata(&path).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
                (m.len(), mtime, m.ino())
            });
            (path, stat)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_changes_name_keys_not_values() {
        let old = "mode = \"audit-only\"\n[[rules]]\nbuiltin = \"a\"\nallow = []\n[[rules]]\nbuiltin = \"b\"\n";
        let new = "mode = \"enforce\"\n[[rules]]\nbuiltin = \"a\"\nallow = [\"escalate\"]\n[[rules]]\nbuiltin = \"b\"\n[protected]\nids = [\"x\"]\n";
        assert_eq!(
            toml_changes(old, new),
            vec!["mode", "protected", "rules[0].allow"]
        );
        assert!(toml_changes(old, old).is_empty());
    }

    #[test]
    fn settings_only_a_restart_applies_are_named() {
        let a = Config::parse("").unwrap();
        let b = Config::parse(
            "max_line_bytes = 4096\n[[sources]]\ntype = \"stdin\"\n[limits]\ndeadline_ms = 50\n",
        )
        .unwrap();
        assert_eq!(restart_needed(&a, &b), vec!["sources", "max_line_bytes"]);
    }
}

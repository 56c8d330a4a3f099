//! `vigil.toml`: the operator's configuration, validated once at start.
//!
//! Unknown keys are errors (a typo in a security setting must not be
//! silently ignored), and every error names the key and the line. Every
//! limit has a default; see `Limits`.
//!
//! With no configuration file at all, Vigil runs [`Config::builtin_default`]:
//! the built-in rule pack, audit-only, each rule granted the actions its
//! metadata declares (with any group for `add-to-group` and the event's
//! policy for `activate-policy`, see `policy::arguments`) — so a first run
//! shows what the pack *would* do and changes nothing. A configuration
//! file is default-deny: a rule may only do what its `allow` list grants,
//! with the arguments its `groups` and `policies` grant ([`grants`]).

pub mod approvals;
pub mod audit;
pub mod cluster;
pub mod connectors;
pub mod grants;
pub mod guardrails;
pub mod packs;
pub mod server;
pub mod sources;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::model::ActionKind;
pub use approvals::ApprovalsConfig;
pub use audit::AuditConfig;
pub use cluster::ClusterConfig;
pub use connectors::{ConnectorsConfig, Dispatch};
pub use grants::{PolicyGrant, ProtectedNetwork};
pub use guardrails::{BaselineConfig, BudgetsConfig};
pub use packs::PacksConfig;
pub use server::ServerConfig;
pub use sources::{OktaPollConfig, Start, TailConfig, TailFrom};

/// Whether granted actions are executed or only recorded.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Record what would be done (`dry-run`), execute nothing.
    #[default]
    AuditOnly,
    /// Execute granted actions.
    Enforce,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::AuditOnly => "audit-only",
            Mode::Enforce => "enforce",
        }
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Default mode for rules that do not set their own.
    #[serde(default)]
    pub mode: Mode,
    /// Where the audit log is appended (its head file sits beside it).
    #[serde(default = "default_audit_path")]
    pub audit_path: PathBuf,
    /// Signed checkpoints, witnesses and the record size cap of the audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The durable store (SQLite): idempotency keys and scheduled undos.
    #[serde(default = "default_state_path")]
    pub state_path: PathBuf,
    /// Where compiled components are cached (keyed by content hash).
    /// Default: `$XDG_CACHE_HOME/vigil` or `~/.cache/vigil`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Longest input line accepted, in bytes; longer lines are rejected and
    /// counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Load every built-in rule that `rules` does not list (with no grants
    /// unless listed).
    #[serde(default = "yes")]
    pub builtin_pack: bool,
    /// How many shards the rules run on: each rule not partitioned
    /// `global` gets an instance per shard, and a batch of events is judged
    /// by the shards in parallel (`pipeline::shards`). Default: the number
    /// of cores, at most [`DEFAULT_MAX_SHARDS`] (every shard holds its own
    /// instance of each partitioned rule, up to `memory_mib` each); 1
    /// judges every event in turn.
    #[serde(default)]
    pub shards: Option<usize>,
    /// Default sandbox limits for every rule.
    #[serde(default)]
    pub limits: Limits,
    /// Accounts no rule may ever act on.
    #[serde(default)]
    pub protected: Protected,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Systems that carry out actions. None configured: actions are only
    /// logged (the `log` connector).
    #[serde(default)]
    pub connectors: ConnectorsConfig,
    /// Action kind → connector(s), overriding the defaults (identity
    /// actions go to the event's own provider, notify/escalate to every
    /// webhook that takes them).
    #[serde(default)]
    pub dispatch: Dispatch,
    /// Blast-radius limits and the circuit breaker.
    #[serde(default)]
    pub budgets: BudgetsConfig,
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// How the service compares the MFA configuration with its approved
    /// baseline.
    #[serde(default)]
    pub baseline: BaselineConfig,
    /// Installed vendor rule packs and the keys that may sign them.
    #[serde(default)]
    pub packs: PacksConfig,
    /// Replicas sharing a NATS JetStream server (at most once per action
    /// across them).
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
    /// The long-running service: with it, `vigil run` without `--events`
    /// serves HTTP ingestion, the admin API and metrics.
    #[serde(default)]
    pub server: Option<ServerConfig>,
    /// Set only for [`Config::builtin_default`]: built-in rules are granted
    /// the actions their metadata declares (they still run audit-only).
    #[serde(skip)]
    pub grant_declared_actions: bool,
}

/// One rule: where it comes from and what it may do.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A built-in rule id (`mfa-push-fatigue`).
    #[serde(default)]
    pub builtin: Option<String>,
    /// A component file (`rules/my-rule.wasm`), relative to the config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A rule of an installed pack: `"<pack name>/<rule id>"`.
    #[serde(default)]
    pub pack: Option<String>,
    /// Overrides the global mode for this rule.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Action kinds granted to this rule (`suspend-user`, `escalate`, …).
    /// Default: none.
    #[serde(default)]
    pub allow: Vec<String>,
    /// The group ids `add-to-group` may add users to; required when
    /// `add-to-group` is granted (see [`grants`]).
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// The policy ids `activate-policy` may activate, or `"from-event"`
    /// (only a policy the triggering event names as a target). Unset:
    /// `"from-event"`.
    #[serde(default)]
    pub policies: Option<PolicyGrant>,
    /// The MFA policy ids `assign-app-policy` may put an application
    /// under; required when `assign-app-policy` is granted.
    #[serde(default)]
    pub app_policies: Option<Vec<String>>,
    /// Settings passed to the rule through the `config` interface.
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// Per-rule overrides of `[limits]`.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Per-rule overrides of `[dispatch]`.
    #[serde(default)]
    pub dispatch: Dispatch,
    /// Action kinds parked for an operator's approval instead of executed.
    /// Default: `["restore-policy"]` (writing a whole policy back waits for
    /// a human unless the operator says otherwise by listing the kinds).
    #[serde(default = "default_approval")]
    pub approval: Vec<String>,
    /// Per-rule overrides of `[budgets.per_rule]`.
    #[serde(default)]
    pub budget: BTreeMap<String, u32>,
}

/// Sandbox limits. Every one has a default; each can be overridden per rule.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock deadline for one `on-event` call, in milliseconds.
    pub deadline_ms: u64,
    /// Linear memory cap, in MiB.
    pub memory_mib: u64,
    /// Table elements cap.
    pub table_elements: usize,
    /// Instances, tables and memories a rule component may create.
    pub instances: usize,
    /// Findings kept from one call; more is a rule fault.
    pub max_findings: usize,
    /// Action requests one call may make; the next one ends the call as a
    /// rule fault.
    pub max_action_requests: usize,
    /// Bytes one call's findings and action records may add to the audit
    /// log; past it is a rule fault.
    pub max_audit_bytes_per_call: usize,
    /// Bytes of stdout/stderr kept from one call; the rest is dropped.
    pub max_output_bytes: usize,
    /// Longest value (JSON text) one `raw(pointer)` read returns; a longer
    /// one is an error value to the rule (contract v0.2).
    pub max_raw_bytes: usize,
    /// Consecutive faults after which the rule is quarantined.
    pub quarantine_after: u32,
    /// Keys in the rule's state.
    pub state_max_keys: usize,
    /// Entries in one state counter or set (versions kept for one value).
    pub state_max_entries_per_key: usize,
    /// Bytes the rule's state may hold (keys + values + entries), accounted
    /// as it changes; more is a `state-limit` fault, never an OOM.
    pub state_max_bytes: usize,
    /// An event more than this many seconds behind the newest event the
    /// rule has seen is still judged, but its records say `late: true`;
    /// state is kept this much longer than its window so events up to this
    /// late are judged against complete state.
    pub late_after_secs: u64,
    /// Event ids the rule remembers having judged (a replayed or redelivered
    /// event is skipped and counted as a duplicate); oldest forgotten first.
    pub judged_max_ids: usize,
    /// How long (wall clock, back from the rule's latest judgement) judged
    /// ids are remembered: a replay within this time counts once.
    pub judged_window_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline_ms: 25,
            memory_mib: 64,
            table_elements: 20_000,
            instances: 64,
            max_findings: 100,
            max_action_requests: 16,
            max_audit_bytes_per_call: 256 * 1024,
            max_output_bytes: 64 * 1024,
            max_raw_bytes: 16 * 1024,
            quarantine_after: 5,
            state_max_keys: 100_000,
            state_max_entries_per_key: 10_000,
            state_max_bytes: 64 * 1024 * 1024,
            late_after_secs: 600,
            judged_max_ids: 100_000,
            judged_window_secs: 7 * 86_400,
        }
    }
}

/// Highest `max_action_requests` accepted.
const MAX_ACTION_REQUESTS: usize = 10_000;
/// Bounds of `max_audit_bytes_per_call`: at least one full-size request
/// record (16 KiB of text plus its envelope), at most 64 MiB.
const MIN_AUDIT_BYTES_PER_CALL: usize = 32 * 1024;
const MAX_AUDIT_BYTES_PER_CALL: usize = 64 * 1024 * 1024;

/// `[rules.limits]`: any subset of [`Limits`].
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub table_elements: Option<usize>,
    pub instances: Option<usize>,
    pub max_findings: Option<usize>,
    pub max_action_requests: Option<usize>,
    pub max_audit_bytes_per_call: Option<usize>,
    pub max_output_bytes: Option<usize>,
    pub max_raw_bytes: Option<usize>,
    pub quarantine_after: Option<u32>,
    pub state_max_keys: Option<usize>,
    pub state_max_entries_per_key: Option<usize>,
    pub state_max_bytes: Option<usize>,
    pub late_after_secs: Option<u64>,
    pub judged_max_ids: Option<usize>,
    pub judged_window_secs: Option<u64>,
}

impl Limits {
    /// These limits with a rule's overrides applied.
    pub fn with(&self, o: &LimitOverrides) -> Limits {
        Limits {
            deadline_ms: o.deadline_ms.unwrap_or(self.deadline_ms),
            memory_mib: o.memory_mib.unwrap_or(self.memory_mib),
            table_elements: o.table_elements.unwrap_or(self.table_elements),
            instances: o.instances.unwrap_or(self.instances),
            max_findings: o.max_findings.unwrap_or(self.max_findings),
            max_action_requests: o.max_action_requests.unwrap_or(self.max_action_requests),
            max_audit_bytes_per_call: o
                .max_audit_bytes_per_call
                .unwrap_or(self.max_audit_bytes_per_call),
            max_output_bytes: o.max_output_bytes.unwrap_or(self.max_output_bytes),
            max_raw_bytes: o.max_raw_bytes.unwrap_or(self.max_raw_bytes),
            quarantine_after: o.quarantine_after.unwrap_or(self.quarantine_after),
            state_max_keys: o.state_max_keys.unwrap_or(self.state_max_keys),
            state_max_entries_per_key: o
                .state_max_entries_per_key
                .unwrap_or(self.state_max_entries_per_key),
            state_max_bytes: o.state_max_bytes.unwrap_or(self.state_max_bytes),
            late_after_secs: o.late_after_secs.unwrap_or(self.late_after_secs),
            judged_max_ids: o.judged_max_ids.unwrap_or(self.judged_max_ids),
            judged_window_secs: o.judged_window_secs.unwrap_or(self.judged_window_secs),
        }
    }

    fn validate(&self, at: &str) -> Result<()> {
        let positive = [
            ("deadline_ms", self.deadline_ms),
            ("memory_mib", self.memory_mib),
            ("table_elements", self.table_elements as u64),
            ("instances", self.instances as u64),
            ("quarantine_after", u64::from(self.quarantine_after)),
            ("state_max_keys", self.state_max_keys as u64),
            (
                "state_max_entries_per_key",
                self.state_max_entries_per_key as u64,
            ),
            ("state_max_bytes", self.state_max_bytes as u64),
            ("judged_max_ids", self.judged_max_ids as u64),
            ("judged_window_secs", self.judged_window_secs),
            ("max_raw_bytes", self.max_raw_bytes as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                bail!("{at}.{key} must be greater than 0");
            }
        }
        if self.deadline_ms > 60_000 {
            bail!(
                "{at}.deadline_ms is {} ms; at most 60000 is allowed",
                self.deadline_ms
            );
        }
        if self.late_after_secs > 7 * 24 * 3600 {
            bail!(
                "{at}.late_after_secs is {}; at most 604800 (7 days) is allowed",
                self.late_after_secs
            );
        }
        if self.memory_mib > 4096 {
            bail!(
                "{at}.memory_mib is {}; at most 4096 is allowed",
                self.memory_mib
            );
        }
        if self.max_action_requests > MAX_ACTION_REQUESTS {
            bail!(
                "{at}.max_action_requests is {}; at most {MAX_ACTION_REQUESTS} is allowed",
                self.max_action_requests
            );
        }
        if !(MIN_AUDIT_BYTES_PER_CALL..=MAX_AUDIT_BYTES_PER_CALL)
            .contains(&self.max_audit_bytes_per_call)
        {
            bail!(
                "{at}.max_audit_bytes_per_call is {}; it must be between {MIN_AUDIT_BYTES_PER_CALL} \
                 and {MAX_AUDIT_BYTES_PER_CALL} (one finding or request record must fit)",
                self.max_audit_bytes_per_call
            );
        }
        Ok(())
    }
}

/// `[protected]`: accounts no action may target, whatever a rule's grant
/// says (break-glass, service accounts, admins).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Protected {
    /// Exact user ids (`00u1breakglass`) or logins.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Login patterns with `*` wildcards (`breakglass-*@example.com`,
    /// `svc-*`), matched case-insensitively.
    #[serde(default)]
    pub logins: Vec<String>,
    /// Directory groups whose every member is protected, as
    /// `"<connector>:<group id>"`: `okta:00g1breakglass` (an Okta group
    /// id) or `graph:<object id>` (an Entra group, nested members
    /// included). Resolved through that connector at start and every
    /// `group_refresh_secs` (see `policy::GroupResolver`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Seconds between two resolutions of `groups` (60 to 86400).
    #[serde(default = "default_group_refresh_secs")]
    pub group_refresh_secs: u64,
    /// Networks `block-ip` never blocks (the company's egress, VPN and
    /// proxy ranges, and any private or loopback range worth listing):
    /// CIDRs or single addresses, IPv4 or IPv6.
    #[serde(default)]
    pub networks: Vec<ProtectedNetwork>,
}

impl Default for Protected {
    fn default() -> Self {
        Protected {
            ids: Vec::new(),
            logins: Vec::new(),
            groups: Vec::new(),
            group_refresh_secs: default_group_refresh_secs(),
            networks: Vec::new(),
        }
    }
}

fn default_group_refresh_secs() -> u64 {
    900
}

impl Protected {
    /// Checks `groups` against the configured connectors, and the refresh
    /// interval.
    fn validate(&self, connectors: &ConnectorsConfig) -> Result<()> {
        for (i, spec) in self.groups.iter().enumerate() {
            let at = format!("protected.groups[{i}]");
            let Some((connector, group)) = spec.split_once(':') else {
                bail!(
                    "{at}: {spec:?} must name its connector: \"okta:<group id>\" or \"graph:<group object id>\""
                );
            };
            let configured = match connector {
                "okta" => connectors.okta.is_some(),
                "graph" => connectors.graph.is_some(),
                other => bail!(
                    "{at}: unknown connector {other:?} in {spec:?}; group members are listed through \"okta\" or \"graph\""
                ),
            };
            if !configured {
                bail!(
                    "{at}: {spec:?} is resolved through the {connector} connector, but [connectors.{connector}] is not configured"
                );
            }
            if group.trim().is_empty() {
                bail!("{at}: {spec:?} has an empty group id");
            }
            if group.chars().any(char::is_whitespace) {
                bail!("{at}: the group id in {spec:?} contains whitespace");
            }
        }
        if !(60..=86_400).contains(&self.group_refresh_secs) {
            bail!(
                "protected.group_refresh_secs is {}; it must be between 60 and 86400",
                self.group_refresh_secs
            );
        }
        Ok(())
    }
}

/// `[[sources]]`: where `vigil run` reads events when `--events` is not given.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "kebab-case")]
pub enum SourceConfig {
    /// A JSON Lines file, read once to its end.
    File { path: PathBuf },
    /// JSON Lines on standard input, until it closes.
    Stdin,
    /// The Okta System Log, polled (`sources::okta_poll`); long-running,
    /// for the service.
    OktaPoll(OktaPollConfig),
    /// A growing JSON Lines file, followed across rotation
    /// (`sources::tail`); long-running, for the service.
    Tail(TailConfig),
}

fn default_audit_path() -> PathBuf {
    PathBuf::from("vigil-audit.jsonl")
}

fn default_state_path() -> PathBuf {
    PathBuf::from("vigil-state.db")
}

fn default_max_line_bytes() -> usize {
    1024 * 1024
}

fn yes() -> bool {
    true
}

/// The most shards a configuration may ask for (each is a set of rule
/// instances and a thread).
pub const MAX_SHARDS: usize = 64;

/// The most shards the default (one per core) gives: a large machine does
/// not get dozens of copies of every rule unless the operator asks.
pub const DEFAULT_MAX_SHARDS: usize = 8;

impl Config {
    /// Reads and validates a configuration file. Relative paths in it are
    /// taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<Config> {
        Config::load_with_text(path).map(|(config, _)| config)
    }

    /// [`Config::load`], also returning the file's text (a reload diffs
    /// it with the running one).
    pub fn load_with_text(path: &Path) -> Result<(Config, String)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config = Config::parse(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok((config, text))
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Config> {
        // toml's error names the line, column and key.
        let config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration used when no file is given: the built-in pack in
    /// audit-only mode, each rule granted what its metadata declares (the
    /// grants are filled in by the rule loader, which knows the metadata).
    pub fn builtin_default() -> Config {
        let mut config = Config::parse("").expect("the empty configuration is valid");
        config.grant_declared_actions = true;
        config
    }

    /// The number of shards to run (see [`Config::shards`](Config)).
    pub fn shard_count(&self) -> usize {
        self.shards.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(DEFAULT_MAX_SHARDS)
        })
    }

    fn validate(&self) -> Result<()> {
        self.limits.validate("limits")?;
        if let Some(n) = self.shards
            && !(1..=MAX_SHARDS).contains(&n)
        {
            bail!("shards is {n}; use 1 to {MAX_SHARDS} (or leave it out: one per core)");
        }
        if self.max_line_bytes < 1024 {
            bail!(
                "max_line_bytes is {}; at least 1024 is required",
                self.max_line_bytes
            );
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            let sources = [
                rule.builtin.is_some(),
                rule.path.is_some(),
                rule.pack.is_some(),
            ];
            match sources.iter().filter(|s| **s).count() {
                1 => {}
                0 => bail!(
                    "{at}: set `builtin` (a built-in rule id), `path` (a .wasm file) or `pack` \
                     (\"<pack>/<rule id>\" of an installed pack)"
                ),
                _ => bail!("{at}: set one of `builtin`, `path` and `pack`, not several"),
            }
            if let Some(spec) = &rule.pack
                && rule.pack_rule().is_none()
            {
                bail!("{at}.pack: {spec:?} must be \"<pack name>/<rule id>\"");
            }
            for (j, name) in rule.allow.iter().enumerate() {
                if ActionKind::from_name(name).is_none() {
                    let known: Vec<&str> = ActionKind::ALL.iter().map(|k| k.name()).collect();
                    bail!(
                        "{at}.allow[{j}]: unknown action kind {name:?}; known kinds: {}",
                        known.join(", ")
                    );
                }
            }
            grants::validate_rule_arguments(&at, rule)?;
            for (key, value) in &rule.config {
                if matches!(value, toml::Value::Array(_) | toml::Value::Table(_)) {
                    bail!("{at}.config.{key}: values must be strings, numbers or booleans");
                }
            }
            self.limits
                .with(&rule.limits)
                .validate(&format!("{at}.limits"))?;
            connectors::validate_dispatch(
                &format!("{at}.dispatch"),
                &rule.dispatch,
                &self.connectors,
            )?;
            guardrails::validate_limits(&format!("{at}.budget"), &rule.budget)?;
            for (j, name) in rule.approval.iter().enumerate() {
                if ActionKind::from_name(name).is_none() {
                    bail!("{at}.approval[{j}]: unknown action kind {name:?}");
                }
            }
        }
        self.audit.validate()?;
        self.connectors.validate()?;
        self.budgets.validate()?;
        self.approvals.validate(&self.connectors)?;
        self.baseline.validate()?;
        self.packs.validate()?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        connectors::validate_dispatch("dispatch", &self.dispatch, &self.connectors)?;
        if let Some(server) = &self.server {
            server.validate()?;
        }
        for (i, pattern) in self.protected.logins.iter().enumerate() {
            if pattern.trim().is_empty() {
                bail!("protected.logins[{i}] is empty");
            }
        }
        self.protected.validate(&self.connectors)?;
        for (i, source) in self.sources.iter().enumerate() {
            let at = format!("sources[{i}]");
            match source {
                SourceConfig::OktaPoll(c) => c.validate(&at, &self.connectors)?,
                SourceConfig::Tail(c) => c.validate(&at)?,
                SourceConfig::File { .. } | SourceConfig::Stdin => {}
            }
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.audit_path);
        resolve(&mut self.state_path);
        self.audit.resolve_paths(resolve);
        let c = &mut self.connectors;
        for p in [
            c.okta.as_mut().and_then(|o| o.token_file.as_mut()),
            c.graph.as_mut().and_then(|g| g.client_secret_file.as_mut()),
        ]
        .into_iter()
        .flatten()
        {
            resolve(p);
        }
        for w in &mut c.webhooks {
            for p in [
                &mut w.url_file,
                &mut w.routing_key_file,
                &mut w.hmac_secret_file,
            ]
            .into_iter()
            .flatten()
            {
                resolve(p);
            }
        }
        if let Some(dir) = &mut self.cache_dir {
            resolve(dir);
        }
        self.packs.resolve_paths(resolve);
        self.approvals.resolve_paths(resolve);
        if let Some(server) = &mut self.server {
            server.resolve_paths(resolve);
        }
        for rule in &mut self.rules {
            if let Some(p) = &mut rule.path {
                resolve(p);
            }
        }
        for source in &mut self.sources {
            match source {
                SourceConfig::File { path } | SourceConfig::Tail(TailConfig { path, .. }) => {
                    resolve(path)
                }
                SourceConfig::OktaPoll(c) => {
                    if let Some(p) = &mut c.token_file {
                        resolve(p);
                    }
                }
                SourceConfig::Stdin => {}
            }
        }
    }

    /// The cache directory to use: configured, or the user's cache dir.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.cache_dir {
            return Some(dir.clone());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("vigil"))
    }
}

/// `[[rules]] approval` when unset.
fn default_approval() -> Vec<String> {
    vec![ActionKind::RestorePolicy.name().to_owned()]
}

impl RuleConfig {
    /// The rule's settings as the strings the `config` interface returns.
    pub fn config_strings(&self) -> BTreeMap<String, String> {
        config_strings(&self.config)
    }

    /// The kinds that wait for an operator's approval (validated at load).
    pub fn approval_kinds(&self) -> Vec<ActionKind> {
        self.approval
            .iter()
            .filter_map(|n| ActionKind::from_name(n))
            .collect()
    }

    /// `pack = "<pack>/<rule id>"` split in two.
    pub fn pack_rule(&self) -> Option<(&str, &str)> {
        let (pack, rule) = self.pack.as_deref()?.split_once('/')?;
        (!pack.is_empty() && !rule.is_empty() && !rule.contains('/')).then_some((pack, rule))
    }

    /// The granted action kinds (validated at load).
    pub fn granted(&self) -> Vec<ActionKind> {
        self.allow
            .iter()
            .filter_map(|n| ActionKind::from_name(n))
            .collect()
    }
}

/// Rule settings as the strings the `config` interface returns: strings as
/// they are, numbers and booleans in TOML notation.
pub fn config_strings(config: &BTreeMap<String, toml::Value>) -> BTreeMap<String, String> {
    config
        .iter()
        .map(|(k, v)| {
            let s = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_audit_only_with_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.mode, Mode::AuditOnly);
        assert_eq!(c.limits, Limits::default());
        assert!(c.builtin_pack);
        assert_eq!(c.max_line_bytes, 1024 * 1024);
    }

    #[test]
    fn shards_default_to_the_cores_and_out_of_range_counts_are_refused() {
        let c = Config::parse("").unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(c.shard_count(), cores.min(DEFAULT_MAX_SHARDS));
        assert_eq!(Config::parse("shards = 3").unwrap().shard_count(), 3);
        for bad in ["shards = 0", "shards = 65"] {
            let err = Config::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("shards is") && err.contains("1 to 64"),
                "{err}"
            );
        }
    }

    #[test]
    fn full_config_parses() {
        let c = Config::parse(
            r#"
            mode = "enforce"
            audit_path = "/var/lib/vigil/audit.jsonl"
            [limits]
            deadline_ms = 20
            [protected]
            ids = ["00ubreakglass1"]
            logins = ["breakglass-*@example.com"]
            [[rules]]
            builtin = "mfa-push-fatigue"
            mode = "audit-only"
            allow = ["suspend-user", "escalate"]
            config = { threshold = 6 }
            limits = { memory_mib = 32 }
            [[sources]]
            type = "file"
            path = "events.jsonl"
            "#,
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.limits.deadline_ms, 20);
        let rule = &c.rules[0];
        assert_eq!(rule.mode, Some(Mode::AuditOnly));
        assert_eq!(
            rule.granted(),
            vec![ActionKind::SuspendUser, ActionKind::Escalate]
        );
        assert_eq!(rule.config_strings()["threshold"], "6");
        assert_eq!(c.limits.with(&rule.limits).memory_mib, 32);
        assert_eq!(c.limits.with(&rule.limits).deadline_ms, 20);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::parse("mode = \"enforce\"\naudit_pth = \"x\"\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("audit_pth") && msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn unknown_action_kind_is_named() {
        let err =
            Config::parse("[[rules]]\nbuiltin = \"x\"\nallow = [\"delete-user\"]\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("rules[0].allow[0]") && msg.contains("delete-user"),
            "{msg}"
        );
    }

    #[test]
    fn bad_mode_is_refused() {
        let err = Config::parse("mode = \"yolo\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("yolo"));
    }

    #[test]
    fn zero_limit_is_refused_naming_the_key() {
        let err = Config::parse("[[rules]]\nbuiltin = \"x\"\nlimits = { deadline_ms = 0 }\n")
            .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "rules[0].limits.deadline_ms must be greater than 0"
        );
    }

    // The state byte budget and the lateness bound: defaults, per-rule
    // overrides, and refusals naming the key.
    #[test]
    fn state_budget_and_lateness_are_limits_with_defaults() {
        let c = Config::parse(
            "[limits]\nlate_after_secs = 120\n[[rules]]\nbuiltin = \"x\"\nlimits = { state_max_bytes = 1048576 }\n",
        )
        .unwrap();
        assert_eq!(Limits::default().state_max_bytes, 64 * 1024 * 1024);
        assert_eq!(Limits::default().late_after_secs, 600);
        let rule = c.limits.with(&c.rules[0].limits);
        assert_eq!(rule.state_max_bytes, 1_048_576);
        assert_eq!(rule.late_after_secs, 120);
        let err = Config::parse("[limits]\nstate_max_bytes = 0\n").unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "limits.state_max_bytes must be greater than 0"
        );
        let err =
            Config::parse("[[rules]]\nbuiltin = \"x\"\nlimits = { late_after_secs = 700000 }\n")
                .unwrap_err();
        assert!(
            format!("{err:#}").starts_with("rules[0].limits.late_after_secs is 700000"),
            "{err:#}"
        );
    }

    #[test]
    fn judged_id_bounds_have_defaults_overrides_and_refusals() {
        assert_eq!(Limits::default().judged_max_ids, 100_000);
        assert_eq!(Limits::default().judged_window_secs, 7 * 86_400);
        let c = Config::parse(
            "[limits]\njudged_window_secs = 3600\n[[rules]]\nbuiltin = \"x\"\n\
             limits = { judged_max_ids = 10 }\n",
        )
        .unwrap();
        let rule = c.limits.with(&c.rules[0].limits);
        assert_eq!((rule.judged_max_ids, rule.judged_window_secs), (10, 3600));
        let err = Config::parse("[limits]\njudged_max_ids = 0\n").unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "limits.judged_max_ids must be greater than 0"
        );
    }

    #[test]
    fn output_caps_have_defaults_overrides_and_bounds_naming_the_key() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.limits.max_action_requests, 16);
        assert_eq!(c.limits.max_audit_bytes_per_call, 256 * 1024);
        let c = Config::parse(
            "[limits]\nmax_action_requests = 4\n[[rules]]\nbuiltin = \"x\"\n\
             limits = { max_audit_bytes_per_call = 65536 }\n",
        )
        .unwrap();
        let rule = c.limits.with(&c.rules[0].limits);
        assert_eq!(
            (rule.max_action_requests, rule.max_audit_bytes_per_call),
            (4, 65536)
        );
        // Too small for one full-size request record.
        let err = Config::parse("[limits]\nmax_audit_bytes_per_call = 1000\n").unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "limits.max_audit_bytes_per_call is 1000; it must be between 32768 and 67108864 \
             (one finding or request record must fit)"
        );
        let err = Config::parse(
            "[[rules]]\nbuiltin = \"x\"\nlimits = { max_action_requests = 1000000 }\n",
        )
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "rules[0].limits.max_action_requests is 1000000; at most 10000 is allowed"
        );
    }

    #[test]
    fn rule_needs_exactly_one_origin() {
        let err = Config::parse("[[rules]]\nallow = []\n").unwrap_err();
        assert!(format!("{err:#}").contains("rules[0]"));
        let err = Config::parse("[[rules]]\nbuiltin = \"a\"\npath = \"b.wasm\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("not several"));
        let err = Config::parse("[[rules]]\npack = \"acme/a\"\nbuiltin = \"a\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("not several"));
        for bad in ["acme", "acme/", "/a", "acme/a/b"] {
            let err = Config::parse(&format!("[[rules]]\npack = {bad:?}\n")).unwrap_err();
            assert!(
                format!("{err:#}").contains("must be \"<pack name>/<rule id>\""),
                "{err:#}"
            );
        }
        let c = Config::parse("[[rules]]\npack = \"acme-mfa/flood\"\n").unwrap();
        assert_eq!(c.rules[0].pack_rule(), Some(("acme-mfa", "flood")));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vigil.toml");
        std::fs::write(&file, "[[rules]]\npath = \"rules/r.wasm\"\n").unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(
            c.rules[0].path.as_deref(),
            Some(dir.path().join("rules/r.wasm").as_path())
        );
        assert_eq!(c.audit_path, dir.path().join("vigil-audit.jsonl"));
    }
}

//! The service's Prometheus metrics, kept with the `prometheus-client`
//! crate and exposed as OpenMetrics text on `GET /metrics`.
//!
//! [`Metrics`] is shared by the HTTP handlers (events received and
//! rejected, hook duplicates), the listeners (open connections, connection
//! timeouts), the pipeline thread (through [`PipelineObserver`]: rule
//! calls, faults, durations, actions; the observer also stamps the
//! [`Watchdog`]) and the scrape (queue depth and the watchdog's view, read
//! when scraped). It also remembers the last execution result per
//! connector, which `/readyz` reports.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::watchdog::{PipelineStatus, Watchdog};
use crate::pipeline::PipelineObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    source: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    rule: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    listener: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    kind: String,
    decision: String,
}

/// What `/readyz` says about a connector: its last execution result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConnectorStatus {
    pub last_decision: String,
    /// Unix milliseconds.
    pub at_ms: i64,
}

fn call_histogram() -> Histogram {
    // 10 µs … ~0.6 s: a rule call is microseconds; the deadline is tens of ms.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 17))
}

/// Every metric of the service.
pub struct Metrics {
    registry: Registry,
    events_received: Family<SourceLabels, Counter>,
    events_rejected: Family<RejectLabels, Counter>,
    rule_calls: Family<RuleLabels, Counter>,
    rule_faults: Family<FaultLabels, Counter>,
    rule_call_duration: Family<RuleLabels, Histogram, fn() -> Histogram>,
    actions: Family<ActionLabels, Counter>,
    queue_depth: Gauge,
    breaker_tripped: Family<RuleLabels, Gauge>,
    hook_duplicates: Counter,
    judged_duplicates: Family<RuleLabels, Counter>,
    spool_write: Histogram,
    ingest_to_decision: Histogram,
    connections: Family<ListenerLabels, Gauge>,
    connection_timeouts: Family<TimeoutLabels, Counter>,
    pipeline_stalled: Gauge,
    reloads: Family<ResultLabels, Counter>,
    pipeline_last_progress: Gauge<f64, std::sync::atomic::AtomicU64>,
    connectors: Mutex<BTreeMap<String, ConnectorStatus>>,
}

/// A rule's on-event calls and faulted calls since the service started
/// (`vigil_rule_calls_total`, and `vigil_rule_faults_total` summed over
/// kinds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounts {
    pub calls: u64,
    pub faults: u64,
}

impl Metrics {
    /// The registry, with `rules` pre-set so every rule shows (at 0) from
    /// the first scrape.
    pub fn new(rules: &[String]) -> Self {
        let mut registry = Registry::default();
        let events_received = Family::<SourceLabels, Counter>::default();
        registry.register(
            "vigil_events_received",
            "Events accepted into the queue, by source",
            events_received.clone(),
        );
        let events_rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "vigil_events_rejected",
            "Events (or requests, when the body could not be split) refused, by source and reason",
            events_rejected.clone(),
        );
        let rule_calls = Family::<RuleLabels, Counter>::default();
        registry.register(
            "vigil_rule_calls",
            "on-event calls, by rule",
            rule_calls.clone(),
        );
        let rule_faults = Family::<FaultLabels, Counter>::default();
        registry.register(
            "vigil_rule_faults",
            "Faulted on-event calls, by rule and fault kind",
            rule_faults.clone(),
        );
        let rule_call_duration =
            Family::<RuleLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                call_histogram,
            );
        registry.register(
            "vigil_rule_call_duration_seconds",
            "Wall-clock duration of on-event calls, by rule",
            rule_call_duration.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "vigil_actions",
            "Action decisions (dry-run, accepted, denied) and execution results (executed, failed, duplicate), by action kind",
            actions.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "vigil_queue_depth",
            "Deliveries waiting for the pipeline thread",
            queue_depth.clone(),
        );
        let breaker_tripped = Family::<RuleLabels, Gauge>::default();
        registry.register(
            "vigil_breaker_tripped",
            "1 while a rule's circuit breaker is open",
            breaker_tripped.clone(),
        );
        let hook_duplicates = Counter::default();
        registry.register(
            "vigil_hook_duplicates",
            "Okta Event Hook events dropped because their uuid was seen within dedup_window_secs",
            hook_duplicates.clone(),
        );
        let judged_duplicates = Family::<RuleLabels, Counter>::default();
        registry.register(
            "vigil_judged_duplicates",
            "Events a rule had already judged (a replay or redelivery), skipped, by rule",
            judged_duplicates.clone(),
        );
        // 50 µs … ~3 s: one SQLite commit with an fsync per delivery.
        let spool_write = Histogram::new(exponential_buckets(0.000_05, 2.0, 17));
        registry.register(
            "vigil_spool_write_seconds",
            "Writing one HTTP delivery durably to the spool before it is answered 2xx",
            spool_write.clone(),
        );
        let ingest_to_decision = Histogram::new(exponential_buckets(0.000_1, 2.0, 18));
        registry.register(
            "vigil_ingest_to_decision_seconds",
            "From an HTTP delivery being queued to all its events having gone through the rules with the audit log synced (in a cluster: from JetStream storing a message to its batch being judged and synced, per message)",
            ingest_to_decision.clone(),
        );
        let connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "vigil_http_connections",
            "Open HTTP connections, by listener (ingest, admin); at most server.max_connections each",
            connections.clone(),
        );
        let connection_timeouts = Family::<TimeoutLabels, Counter>::default();
        registry.register(
            "vigil_http_connection_timeouts",
            "Connections closed by a timeout, by listener and phase (tls-handshake, header, idle)",
            connection_timeouts.clone(),
        );
        let pipeline_stalled = Gauge::default();
        registry.register(
            "vigil_pipeline_stalled",
            "1 while work is waiting and the pipeline has made no progress for server.watchdog_secs",
            pipeline_stalled.clone(),
        );
        let pipeline_last_progress = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "vigil_pipeline_last_progress_seconds",
            "Seconds since the pipeline thread last made progress (a rule call started or ended, or its loop came around)",
            pipeline_last_progress.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "vigil_reloads",
            "Reloads of the rules and configuration, by result (applied, failed: the running rules stayed)",
            reloads.clone(),
        );
        for result in ["applied", "failed"] {
            let _ = reloads.get_or_create(&ResultLabels {
                result: result.to_owned(),
            });
        }
        let metrics = Metrics {
            registry,
            events_received,
            events_rejected,
            rule_calls,
            rule_faults,
            rule_call_duration,
            actions,
            queue_depth,
            breaker_tripped,
            hook_duplicates,
            judged_duplicates,
            spool_write,
            ingest_to_decision,
            connections,
            connection_timeouts,
            pipeline_stalled,
            reloads,
            pipeline_last_progress,
            connectors: Mutex::new(BTreeMap::new()),
        };
        metrics.register_rules(rules.iter().map(String::as_str));
        metrics
    }

    /// Registers the cluster's metrics (a replica in `[cluster]` only) and
    /// returns them for the shard readers to count in.
    pub fn register_cluster(&mut self) -> crate::cluster::consume::ClusterMetrics {
        let m = crate::cluster::consume::ClusterMetrics {
            ingest_to_decision: Some(self.ingest_to_decision.clone()),
            ..Default::default()
        };
        let r = &mut self.registry;
        r.register(
            "vigil_cluster_shards_owned",
            "Shards this replica holds the lease of",
            m.shards_owned.clone(),
        );
        r.register(
            "vigil_cluster_takeovers",
            "Shards this replica took (at start, from a dead replica, or for a fair share)",
            m.takeovers.clone(),
        );
        r.register(
            "vigil_cluster_lease_losses",
            "Leases lost because they expired before renewal (this replica stalled)",
            m.lease_losses.clone(),
        );
        r.register(
            "vigil_cluster_rebuilt_events",
            "Events replayed, actions suppressed, to rebuild rule state on taking a shard",
            m.rebuilt_events.clone(),
        );
        r.register(
            "vigil_cluster_dead_letters",
            "Poison events moved to the dead-letter subject after max_deliveries",
            m.dead_letters.clone(),
        );
        r.register(
            "vigil_cluster_unreadable",
            "Messages that did not decode and were handed back for a later delivery",
            m.unreadable.clone(),
        );
        m
    }

    /// Shows `rules` (at 0) from the next scrape: at start and when a
    /// reload adds rules.
    pub fn register_rules<'a>(&self, rules: impl IntoIterator<Item = &'a str>) {
        for rule in rules {
            let l = RuleLabels {
                rule: rule.to_owned(),
            };
            let _ = self.breaker_tripped.get_or_create(&l);
            let _ = self.rule_calls.get_or_create(&l);
        }
    }

    /// One reload ended with `result` (`applied` or `failed`).
    pub fn reload(&self, result: &str) {
        self.reloads
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// One more (`+1`) or one fewer (`-1`) open connection on `listener`.
    pub fn connections(&self, listener: &str, delta: i64) {
        self.connections
            .get_or_create(&ListenerLabels {
                listener: listener.to_owned(),
            })
            .inc_by(delta);
    }

    /// A connection on `listener` was closed by the timeout of `phase`.
    pub fn connection_timeout(&self, listener: &str, phase: &str) {
        self.connection_timeouts
            .get_or_create(&TimeoutLabels {
                listener: listener.to_owned(),
                phase: phase.to_owned(),
            })
            .inc();
    }

    pub fn received(&self, source: &str, n: usize) {
        self.events_received
            .get_or_create(&SourceLabels {
                source: source.to_owned(),
            })
            .inc_by(n as u64);
    }

    pub fn rejected(&self, source: &str, reason: &str, n: usize) {
        self.events_rejected
            .get_or_create(&RejectLabels {
                source: source.to_owned(),
                reason: reason.to_owned(),
            })
            .inc_by(n as u64);
    }

    pub fn hook_duplicates(&self, n: usize) {
        self.hook_duplicates.inc_by(n as u64);
    }

    pub fn spool_write(&self, elapsed: Duration) {
        self.spool_write.observe(elapsed.as_secs_f64());
    }

    pub fn judged_duplicate(&self, rule: &str) {
        self.judged_duplicates
            .get_or_create(&RuleLabels {
                rule: rule.to_owned(),
            })
            .inc();
    }

    pub fn ingest_to_decision(&self, elapsed: Duration) {
        self.ingest_to_decision.observe(elapsed.as_secs_f64());
    }

    /// Sets a rule's breaker gauge (the guardrails work calls this).
    pub fn set_breaker(&self, rule: &str, tripped: bool) {
        self.breaker_tripped
            .get_or_create(&RuleLabels {
                rule: rule.to_owned(),
            })
            .set(i64::from(tripped));
    }

    /// The last execution result of every connector that executed something.
    pub fn connectors(&self) -> BTreeMap<String, ConnectorStatus> {
        self.connectors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A rule's calls and faults since the start, read from the exported
    /// counters (faults summed over their kinds).
    pub fn rule_counts(&self, rule: &str) -> RuleCounts {
        let calls = self
            .rule_calls
            .get(&RuleLabels {
                rule: rule.to_owned(),
            })
            .map_or(0, |c| c.get());
        let faults = crate::rules::FaultKind::ALL
            .iter()
            .filter_map(|k| {
                self.rule_faults.get(&FaultLabels {
                    rule: rule.to_owned(),
                    kind: k.name().to_owned(),
                })
            })
            .map(|c| c.get())
            .sum();
        RuleCounts { calls, faults }
    }

    /// The OpenMetrics text, with the queue depth and the watchdog's view
    /// read now.
    pub fn encode(&self, queue_depth: usize, pipeline: &PipelineStatus) -> String {
        self.queue_depth.set(queue_depth as i64);
        self.pipeline_stalled.set(i64::from(pipeline.stalled));
        self.pipeline_last_progress
            .set(pipeline.since_progress.as_secs_f64());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The pipeline's observer: shared handles on [`Metrics`] and the
/// [`Watchdog`].
pub struct MetricsObserver {
    pub metrics: std::sync::Arc<Metrics>,
    pub watchdog: std::sync::Arc<Watchdog>,
}

impl PipelineObserver for MetricsObserver {
    fn duplicate(&self, rule: &str) {
        self.metrics.judged_duplicate(rule);
    }

    fn rule_call_start(&self, rule: &str) {
        self.watchdog.rule_started(rule);
    }

    fn rule_call_end(&self) {
        self.watchdog.rule_finished();
    }

    fn rule_call(&self, rule: &str, elapsed: Duration, fault: Option<&str>) {
        self.watchdog.rule_finished();
        let m = &self.metrics;
        let l = RuleLabels {
            rule: rule.to_owned(),
        };
        m.rule_calls.get_or_create(&l).inc();
        m.rule_call_duration
            .get_or_create(&l)
            .observe(elapsed.as_secs_f64());
        if let Some(kind) = fault {
            m.rule_faults
                .get_or_create(&FaultLabels {
                    rule: rule.to_owned(),
                    kind: kind.to_owned(),
                })
                .inc();
        }
    }

    fn breaker(&self, rule: &str, tripped: bool) {
        self.metrics.set_breaker(rule, tripped);
    }

    fn action(&self, kind: &str, decision: &str, connector: Option<&str>) {
        let m = &self.metrics;
        m.actions
            .get_or_create(&ActionLabels {
                kind: kind.to_owned(),
                decision: decision.to_owned(),
            })
            .inc();
        if let Some(c) = connector {
            m.connectors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    c.to_owned(),
                    ConnectorStatus {
                        last_decision: decision.to_owned(),
                        at_ms: crate::clock::now_ms(),
                    },
                );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Counters carry the `_total` suffix and labels; rules show from the start.
    #[test]
    fn exposition_names_and_labels() {
        let m = std::sync::Arc::new(Metrics::new(&["r1".into()]));
        m.received("http", 3);
        m.rejected("http", "invalid-json", 1);
        let watchdog = std::sync::Arc::new(Watchdog::new(Duration::ZERO));
        let o = MetricsObserver {
            metrics: m.clone(),
            watchdog: watchdog.clone(),
        };
        o.rule_call_start("r1");
        o.rule_call("r1", Duration::from_micros(5), Some("timeout"));
        o.action("escalate", "dry-run", None);
        m.connections("ingest", 1);
        m.connection_timeout("ingest", "header");
        // Two deliveries wait and the watchdog's limit is zero: stalled.
        let text = m.encode(2, &watchdog.status(2));
        for line in [
            "vigil_events_received_total{source=\"http\"} 3",
            "vigil_events_rejected_total{source=\"http\",reason=\"invalid-json\"} 1",
            "vigil_rule_calls_total{rule=\"r1\"} 1",
            "vigil_rule_faults_total{rule=\"r1\",kind=\"timeout\"} 1",
            "vigil_actions_total{kind=\"escalate\",decision=\"dry-run\"} 1",
            "vigil_queue_depth 2",
            "vigil_breaker_tripped{rule=\"r1\"} 0",
            "vigil_hook_duplicates_total 0",
            "vigil_http_connections{listener=\"ingest\"} 1",
            "vigil_http_connection_timeouts_total{listener=\"ingest\",phase=\"header\"} 1",
            "vigil_pipeline_stalled 1",
            "vigil_pipeline_last_progress_seconds ",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(text.contains("vigil_rule_call_duration_seconds_bucket{"));
    }

    /// The series names `text` exposes, from its `# TYPE` lines (a family
    /// shows there before it has a sample): counters as `_total`,
    /// histograms as `_bucket`, `_sum` and `_count`.
    fn exported(text: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            if (parts.next(), parts.next()) != (Some("#"), Some("TYPE")) {
                continue;
            }
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    names.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {
                    names.insert(name.to_owned());
                }
            }
        }
        names
    }

    /// The console's per-rule counts are the exported counters, faults
    /// summed over their kinds.
    #[test]
    fn rule_counts_read_the_exported_counters() {
        let m = std::sync::Arc::new(Metrics::new(&["r1".into()]));
        let watchdog = std::sync::Arc::new(Watchdog::new(Duration::from_secs(30)));
        let o = MetricsObserver {
            metrics: m.clone(),
            watchdog,
        };
        o.rule_call("r1", Duration::from_micros(5), None);
        o.rule_call("r1", Duration::from_micros(5), Some("timeout"));
        o.rule_call("r1", Duration::from_micros(5), Some("trap"));
        assert_eq!(
            m.rule_counts("r1"),
            RuleCounts {
                calls: 3,
                faults: 2
            }
        );
        assert_eq!(m.rule_counts("unknown"), RuleCounts::default());
    }

    /// Every metric the Grafana dashboard in deploy/grafana queries is one
    /// the service exports (a replica's cluster metrics included).
    #[test]
    fn the_dashboard_queries_only_exported_metrics() {
        let mut m = Metrics::new(&["r1".into()]);
        let _ = m.register_cluster();
        // A labelled family shows once it has a sample: one of each.
        let m = std::sync::Arc::new(m);
        m.received("http", 1);
        m.rejected("http", "invalid-json", 1);
        m.judged_duplicate("r1");
        m.connections("ingest", 1);
        m.connection_timeout("ingest", "header");
        let watchdog = std::sync::Arc::new(Watchdog::new(Duration::from_secs(30)));
        let o = MetricsObserver {
            metrics: m.clone(),
            watchdog: watchdog.clone(),
        };
        o.rule_call("r1", Duration::from_micros(5), Some("timeout"));
        o.action("escalate", "accepted", None);
        let names = exported(&m.encode(0, &watchdog.status(0)));
        assert!(names.contains("vigil_events_received_total"), "{names:?}");
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../../deploy/grafana/vigil-dashboard.json"))
                .expect("the dashboard is JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(panels.len() >= 8);
        let mut queried = 0;
        for panel in panels {
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{}", panel["title"]);
            for target in targets {
                let expr = target["expr"].as_str().expect("expr");
                let mut rest = expr;
                while let Some(at) = rest.find("vigil_") {
                    let tail = &rest[at..];
                    let end = tail
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(tail.len());
                    let metric = &tail[..end];
                    assert!(
                        names.contains(metric),
                        "panel {}: {metric} is not exported",
                        panel["title"]
                    );
                    queried += 1;
                    rest = &tail[end..];
                }
            }
        }
        assert!(queried >= panels.len());
    }
}

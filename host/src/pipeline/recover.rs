//! What the pipeline does at start, before it records anything new, so the
//! audit log always says what happened:
//!
//! 1. **Outbox recovery.** Records committed to the store's outbox but not
//!    (durably) appended to the audit log — the process died between the
//!    commit and the log's fsync — are appended now. Which of them already
//!    reached the log is found by reading the log's records after the `seq`
//!    noted when the outbox was last emptied: outbox records reach the log
//!    in order, so those present form a prefix of the outbox.
//! 2. **Reconciliation.** Every accepted action still in `pending_actions`
//!    (its result never audited) gets one `action-result` record per
//!    connector with `reconciled: true`: `executed` or `failed` when the
//!    idempotency store says how it ended, `unknown` when it was sent but no
//!    answer was recorded (it is never sent again), `abandoned` when it
//!    never left (the executor queue was dropped, or the process died
//!    first). An abandoned action is not retried: the event that asked for
//!    it is judged already.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use super::Pipeline;
use crate::audit::Entry;
use crate::executor::ExecJob;

/// Bytes read per step when reading the log backwards.
const CHUNK: u64 = 64 * 1024;

/// Fields compared (besides type, rule and event) to tell an outbox record
/// from another record of the same event.
const IDENTITY: [&str; 6] = ["action_id", "decision", "title", "undo_id", "fault", "by"];

/// An outbox row.
pub(super) fn entry_to_json(e: &Entry) -> String {
    json!({
        "kind": e.kind,
        "rule": e.rule,
        "event_id": e.event_id,
        "fields": e.fields,
    })
    .to_string()
}

fn entry_from_json(text: &str) -> Result<Entry> {
    let v: Value = serde_json::from_str(text)
        .with_context(|| format!("audit outbox: unreadable record {text}"))?;
    let kind = v["kind"]
        .as_str()
        .with_context(|| format!("audit outbox: record without kind {text}"))?;
    Ok(Entry {
        kind: static_kind(kind),
        rule: v["rule"].as_str().map(str::to_owned),
        event_id: v["event_id"].as_str().map(str::to_owned),
        fields: match &v["fields"] {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        },
    })
}

/// Record types are `&'static str`; the few written by the pipeline are
/// matched, any other (rare, at start only) is leaked.
fn static_kind(kind: &str) -> &'static str {
    const KINDS: [&str; 12] = [
        "finding",
        "action",
        "action-result",
        "action-undo",
        "breaker-tripped",
        "breaker-reset",
        "approval",
        "approval-expired",
        "rule-released",
        "rule-fault",
        "rule-quarantined",
        "admin",
    ];
    KINDS
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or_else(|| Box::leak(kind.to_owned().into_boxed_str()))
}

/// Whether the log record `r` is the outbox record `e`.
fn same(r: &Map<String, Value>, e: &Entry) -> bool {
    r.get("type").and_then(Value::as_str) == Some(e.kind)
        && r.get("rule").and_then(Value::as_str) == e.rule.as_deref()
        && r.get("event_id").and_then(Value::as_str) == e.event_id.as_deref()
        && IDENTITY
            .iter()
            .all(|k| e.fields.get(*k).is_none_or(|v| r.get(*k) == Some(v)))
}

/// The records of the log at `path` with `seq` greater than `after`, in
/// order, read backwards from the end (a crash leaves them near it).
pub(crate) fn records_after(path: &Path, after: u64) -> Result<Vec<Map<String, Value>>> {
    let at = || format!("cannot read the audit log {}", path.display());
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(at),
    };
    let mut pos = file.metadata().with_context(at)?.len();
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0; (pos - start) as usize];
        file.seek(SeekFrom::Start(start)).with_context(at)?;
        file.read_exact(&mut chunk).with_context(at)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        pos = start;
        // Lines wholly read: everything after the first newline (all of it
        // at the start of the file).
        let complete = if pos == 0 {
            0
        } else {
            match memchr::memchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => continue,
            }
        };
        for line in buf[complete..].rsplit(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record: Map<String, Value> = serde_json::from_slice(line)
                .with_context(|| format!("audit log {}: a record is not JSON", path.display()))?;
            if record.get("seq").and_then(Value::as_u64).unwrap_or(0) <= after {
                out.reverse();
                return Ok(out);
            }
            out.push(record);
        }
        buf.truncate(complete);
    }
    out.reverse();
    Ok(out)
}

impl Pipeline {
    /// Appends the outbox records the log does not have (see the module
    /// documentation), then empties the outbox.
    pub(super) fn recover_outbox(&mut self) -> Result<()> {
        let store = self.executor.store();
        let rows = store.outbox()?;
        let Some(&(last, _)) = rows.last() else {
            return Ok(());
        };
        let entries = rows
            .iter()
            .map(|(_, text)| entry_from_json(text))
            .collect::<Result<Vec<_>>>()?;
        // Buffered records are in the file once flushed; sync first so the
        // read below sees everything this process could have written.
        self.audit.sync().context("cannot sync the audit log")?;
        let logged = records_after(self.audit.path(), store.outbox_seq()?)?;
        let mut present = 0;
        for record in &logged {
            if present < entries.len() && same(record, &entries[present]) {
                present += 1;
            }
        }
        let missing = entries.len() - present;
        if missing > 0 {
            tracing::warn!(
                missing,
                "appending audit records that were committed but not yet in the log (the last run stopped abruptly)"
            );
        }
        for entry in entries.into_iter().skip(present) {
            self.audit
                .append(entry)
                .context("cannot write the audit log")?;
        }
        self.outbox_last = last;
        self.sync_log()
    }

    /// Gives every accepted action without a result its reconciled result
    /// (see the module documentation).
    pub(super) fn reconcile(&mut self) -> Result<()> {
        let pending = self.executor.store().pending_actions()?;
        if pending.is_empty() {
            return Ok(());
        }
        for (action_id, text) in pending {
            let job = ExecJob::from_json(&text)
                .with_context(|| format!("state store: pending action {action_id}"))?;
            let executions = self.executor.store().executions_of(&action_id)?;
            let base = || {
                Entry::new("action-result")
                    .rule(&job.rule)
                    .event(&job.event_id)
                    .field("action_id", job.action_id.as_str())
                    .field("action", job.action.kind().name())
                    .field("target", job.action.target())
                    .field("reconciled", true)
            };
            let mut results: Vec<(&'static str, Entry)> = Vec::new();
            if executions.is_empty() {
                results.push((
                    "abandoned",
                    base()
                        .field("decision", "abandoned")
                        .field("executor", "none")
                        .field(
                            "reason",
                            "accepted but never sent: Vigil stopped before executing it; \
                             it is not retried",
                        ),
                ));
            }
            for (connector, state, detail) in executions {
                let (decision, reason) = match state.as_str() {
                    "executed" => ("executed", detail),
                    "failed" => ("failed", detail),
                    _ => (
                        "unknown",
                        "sent, but Vigil stopped before the answer was recorded: check the \
                         target at the identity provider; it is not sent again"
                            .to_owned(),
                    ),
                };
                results.push((
                    decision,
                    base()
                        .field("decision", decision)
                        .field("executor", connector.as_str())
                        .field("reason", reason),
                ));
            }
            for (decision, entry) in results {
                tracing::warn!(action_id = %job.action_id, rule = %job.rule, decision, "reconciled an action whose result was never recorded");
                *self.stats.reconciled.entry(decision).or_default() += 1;
                self.append(entry)?;
            }
            self.resolved.push(job.action_id.clone());
        }
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;

    #[test]
    fn records_after_reads_back_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        {
            let mut log = AuditLog::open(&path).unwrap();
            for i in 0..3000u64 {
                log.append(
                    Entry::new("finding")
                        .field("n", i)
                        .field("pad", "x".repeat(50)),
                )
                .unwrap();
            }
            log.sync().unwrap();
        }
        let after = records_after(&path, 2990).unwrap();
        let seqs: Vec<u64> = after.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (2991..=3000).collect::<Vec<_>>());
        assert_eq!(records_after(&path, 0).unwrap().len(), 3000);
        assert!(records_after(&path, 3000).unwrap().is_empty());
    }

    fn pipeline(dir: &Path) -> Pipeline {
        let executor = crate::executor::ActionExecutor::new(
            crate::actions::dispatch::Dispatcher::new(Vec::new(), &Default::default(), &[])
                .unwrap(),
            crate::store::Store::open(&dir.join("state.db")).unwrap(),
        )
        .unwrap();
        let rules = crate::rules::RuleSet::new(Vec::new()).unwrap();
        let audit = AuditLog::open(&dir.join("audit.jsonl")).unwrap();
        Pipeline::new(rules, audit, executor).unwrap()
    }

    fn log(dir: &Path) -> Vec<Value> {
        std::fs::read_to_string(dir.join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn finding(event: &str) -> Entry {
        Entry::new("finding")
            .rule("r")
            .event(event)
            .field("title", "t")
    }

    #[test]
    fn outbox_records_missing_from_the_log_are_appended_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The log got e1 and e2 before the crash; the outbox holds all
            // three (the commit happened, the cleanup did not).
            let mut log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
            log.append(finding("e1")).unwrap();
            log.append(finding("e2")).unwrap();
            log.sync().unwrap();
            let store = crate::store::Store::open(&dir.path().join("state.db")).unwrap();
            store
                .commit(&crate::store::Commit {
                    outbox: ["e1", "e2", "e3"]
                        .iter()
                        .map(|e| entry_to_json(&finding(e)))
                        .collect(),
                    ..Default::default()
                })
                .unwrap();
        }
        drop(pipeline(dir.path()));
        let events: Vec<String> = log(dir.path())
            .iter()
            .map(|r| r["event_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(events, ["e1", "e2", "e3"]);
        // Recovered once: a second start appends nothing.
        drop(pipeline(dir.path()));
        assert_eq!(log(dir.path()).len(), 3);
        crate::audit::verify(&dir.path().join("audit.jsonl")).unwrap();
    }

    #[test]
    fn accepted_actions_without_a_result_are_reconciled_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = crate::store::Store::open(&dir.path().join("state.db")).unwrap();
            let job = |id: &str| ExecJob {
                action_id: id.to_owned(),
                rule: "r".into(),
                event_id: format!("event-{id}"),
                event_source: "okta".into(),
                action: crate::model::Action::RevokeSessions("u1".into()),
                origin_host: false,
            };
            store
                .commit(&crate::store::Commit {
                    pending: ["a1", "a2", "a3", "a4"]
                        .iter()
                        .map(|id| (id.to_string(), job(id).to_json()))
                        .collect(),
                    ..Default::default()
                })
                .unwrap();
            // a1 ran, a2 was sent and never answered, a3 failed, a4 never left.
            store.begin_execution("a1:okta", "a1", "okta", 1).unwrap();
            store
                .finish_execution("a1:okta", "executed", "revoked", 2)
                .unwrap();
            store.begin_execution("a2:okta", "a2", "okta", 1).unwrap();
            store.begin_execution("a3:okta", "a3", "okta", 1).unwrap();
            store
                .finish_execution("a3:okta", "failed", "HTTP 500", 2)
                .unwrap();
        }
        let p = pipeline(dir.path());
        assert_eq!(p.stats.reconciled.values().sum::<u64>(), 4);
        drop(p);
        let got: Vec<(String, String, bool)> = log(dir.path())
            .iter()
            .filter(|r| r["type"] == "action-result")
            .map(|r| {
                (
                    r["action_id"].as_str().unwrap().to_owned(),
                    r["decision"].as_str().unwrap().to_owned(),
                    r["reconciled"] == true,
                )
            })
            .collect();
        let want = [
            ("a1", "executed"),
            ("a2", "unknown"),
            ("a3", "failed"),
            ("a4", "abandoned"),
        ];
        assert_eq!(
            got,
            want.iter()
                .map(|(a, d)| (a.to_string(), d.to_string(), true))
                .collect::<Vec<_>>()
        );
        // Reconciled once: nothing pending, nothing added at the next start.
        drop(pipeline(dir.path()));
        assert_eq!(log(dir.path()).len(), 4);
    }

    #[test]
    fn outbox_records_round_trip_and_match() {
        let e = Entry::new("action")
            .rule("r")
            .event("e1")
            .field("action_id", "a1")
            .field("decision", "accepted");
        let back = entry_from_json(&entry_to_json(&e)).unwrap();
        assert_eq!(back, e);
        let mut logged = Map::new();
        logged.insert("type".into(), "action".into());
        logged.insert("rule".into(), "r".into());
        logged.insert("event_id".into(), "e1".into());
        logged.insert("action_id".into(), "a1".into());
        logged.insert("decision".into(), "accepted".into());
        assert!(same(&logged, &e));
        logged.insert("action_id".into(), "a2".into());
        assert!(!same(&logged, &e));
    }
}

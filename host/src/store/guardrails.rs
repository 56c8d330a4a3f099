//! Guardrail state in the store: budget usage, tripped breakers and
//! quarantined rules, so a restart neither forgets a trip nor resets a
//! budget window.

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, params};

use super::Store;

/// A tripped breaker as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBreaker {
    pub rule: String,
    pub tripped_ms: i64,
    pub reason: String,
}

impl Store {
    /// Records budget consumption: (scope, action kind, time).
    pub fn add_budget_usage(&self, usage: &[(String, String, i64)]) -> Result<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO budget_usage (scope, kind, at_ms) VALUES (?1, ?2, ?3)",
            )?;
            for (scope, kind, at) in usage {
                insert.execute(params![scope, kind, at])?;
            }
        }
        tx.commit()
            .with_context(|| self.failed("write budget usage"))
    }

    /// Removes the newest usage row of each (scope, kind) given back.
    pub fn refund_budget_usage(&self, refunds: &[(String, String)]) -> Result<()> {
        for (scope, kind) in refunds {
            self.conn
                .execute(
                    "DELETE FROM budget_usage WHERE rowid = (SELECT rowid FROM budget_usage
                     WHERE scope = ?1 AND kind = ?2 ORDER BY at_ms DESC, rowid DESC LIMIT 1)",
                    params![scope, kind],
                )
                .with_context(|| self.failed("write budget usage"))?;
        }
        Ok(())
    }

    /// Usage since `since_ms` (older rows are deleted: they can no longer
    /// count against any window).
    pub fn load_budget_usage(&self, since_ms: i64) -> Result<Vec<(String, String, i64)>> {
        self.conn
            .execute("DELETE FROM budget_usage WHERE at_ms < ?1", [since_ms])
            .with_context(|| self.failed("prune budget usage"))?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT scope, kind, at_ms FROM budget_usage ORDER BY at_ms")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| self.failed("read budget usage"))
    }

    pub fn trip_breaker(&self, rule: &str, tripped_ms: i64, reason: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO breakers (rule, tripped_ms, reason) VALUES (?1, ?2, ?3)
                 ON CONFLICT (rule) DO UPDATE SET tripped_ms = ?2, reason = ?3",
                params![rule, tripped_ms, reason],
            )
            .with_context(|| self.failed("write the breaker state"))?;
        Ok(())
    }

    /// Clears a breaker; returns whether it was tripped.
    pub fn reset_breaker(&self, rule: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM breakers WHERE rule = ?1", [rule])
            .with_context(|| self.failed("write the breaker state"))?;
        Ok(n > 0)
    }

    pub fn breaker(&self, rule: &str) -> Result<Option<StoredBreaker>> {
        self.conn
            .query_row(
                "SELECT rule, tripped_ms, reason FROM breakers WHERE rule = ?1",
                [rule],
                |r| {
                    Ok(StoredBreaker {
                        rule: r.get(0)?,
                        tripped_ms: r.get(1)?,
                        reason: r.get(2)?,
                    })
                },
            )
            .optional()
            .with_context(|| self.failed("read the breaker state"))
    }

    pub fn breakers(&self) -> Result<Vec<StoredBreaker>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT rule, tripped_ms, reason FROM breakers ORDER BY rule")?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredBreaker {
                rule: r.get(0)?,
                tripped_ms: r.get(1)?,
                reason: r.get(2)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| self.failed("read the breaker state"))
    }

    pub fn set_quarantined(&self, rule: &str, at_ms: i64, reason: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO rule_status (rule, quarantined_ms, reason) VALUES (?1, ?2, ?3)
                 ON CONFLICT (rule) DO UPDATE SET quarantined_ms = ?2, reason = ?3",
                params![rule, at_ms, reason],
            )
            .with_context(|| self.failed("write the rule status"))?;
        Ok(())
    }

    /// When and why a rule was quarantined, if it is.
    pub fn quarantined(&self, rule: &str) -> Result<Option<(i64, String)>> {
        self.conn
            .query_row(
                "SELECT quarantined_ms, reason FROM rule_status WHERE rule = ?1",
                [rule],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .with_context(|| self.failed("read the rule status"))
    }

    /// Lifts a quarantine; returns whether the rule was quarantined.
    pub fn release_quarantine(&self, rule: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM rule_status WHERE rule = ?1", [rule])
            .with_context(|| self.failed("write the rule status"))?;
        Ok(n > 0)
    }
}

//! MFA baselines: versioned snapshots of an identity provider's
//! MFA-relevant configuration (`crate::model::baseline`), and which one an
//! operator approved as known-good (see `crate::baseline`).
//!
//! Every capture is a new version; nothing is overwritten. A version is
//! approved by setting `approved_ms`/`approved_by`; the known-good
//! configuration of a provider is its most recently approved version, so
//! approving an older version again is how an operator goes back.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

use super::Store;
use crate::model::baseline::PolicyObject;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS baselines (
    version     INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT NOT NULL,     -- the connector it was read through: okta | graph
    captured_ms INTEGER NOT NULL,
    captured_by TEXT NOT NULL,
    digest      TEXT NOT NULL,     -- sha256 of `snapshot`
    snapshot    TEXT NOT NULL,     -- JSON list of model::baseline::PolicyObject
    approved_ms INTEGER,           -- NULL until approved
    approved_by TEXT
);
CREATE INDEX IF NOT EXISTS baselines_approved ON baselines (provider, approved_ms);
";

/// One stored snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredBaseline {
    pub version: i64,
    pub provider: String,
    pub captured_ms: i64,
    pub captured_by: String,
    /// `sha256:<hex>` of the snapshot as stored.
    pub digest: String,
    pub objects: Vec<PolicyObject>,
    /// When and by whom it was approved, if it was.
    pub approved: Option<(i64, String)>,
}

const COLUMNS: &str =
    "version, provider, captured_ms, captured_by, digest, snapshot, approved_ms, approved_by";

type Row8 = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
);

fn from_row(r: &Row<'_>) -> rusqlite::Result<Row8> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn finish(row: Row8) -> Result<StoredBaseline> {
    let (version, provider, captured_ms, captured_by, digest, snapshot, approved_ms, approved_by) =
        row;
    let objects: Vec<PolicyObject> = serde_json::from_str(&snapshot)
        .with_context(|| format!("baseline version {version}: unreadable snapshot"))?;
    Ok(StoredBaseline {
        version,
        provider,
        captured_ms,
        captured_by,
        digest,
        objects,
        approved: approved_ms.map(|ms| (ms, approved_by.unwrap_or_default())),
    })
}

/// `sha256:<hex>` of a snapshot's JSON text.
pub fn snapshot_digest(json: &str) -> String {
    let hash = Sha256::digest(json.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl Store {
    /// Stores a new snapshot of `provider`'s configuration, not approved;
    /// returns it.
    pub fn save_baseline(
        &self,
        provider: &str,
        objects: &[PolicyObject],
        by: &str,
        now_ms: i64,
    ) -> Result<StoredBaseline> {
        let snapshot = serde_json::to_string(objects)?;
        let digest = snapshot_digest(&snapshot);
        self.conn
            .execute(
                "INSERT INTO baselines (provider, captured_ms, captured_by, digest, snapshot)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![provider, now_ms, by, digest, snapshot],
            )
            .with_context(|| self.failed("write the baseline"))?;
        Ok(StoredBaseline {
            version: self.conn.last_insert_rowid(),
            provider: provider.to_owned(),
            captured_ms: now_ms,
            captured_by: by.to_owned(),
            digest,
            objects: objects.to_vec(),
            approved: None,
        })
    }

    /// Marks `version` approved (again, if it was: the latest approval
    /// decides which version is known-good). False when there is no such
    /// version.
    pub fn approve_baseline(&self, version: i64, by: &str, now_ms: i64) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE baselines SET approved_ms = ?2, approved_by = ?3 WHERE version = ?1",
                params![version, now_ms, by],
            )
            .with_context(|| self.failed("write the baseline approval"))?;
        Ok(n > 0)
    }

    pub fn baseline(&self, version: i64) -> Result<Option<StoredBaseline>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM baselines WHERE version = ?1"),
                [version],
                from_row,
            )
            .optional()
            .with_context(|| self.failed("read the baseline"))?;
        row.map(finish).transpose()
    }

    /// The known-good snapshot of `provider`: its most recently approved
    /// version.
    pub fn approved_baseline(&self, provider: &str) -> Result<Option<StoredBaseline>> {
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM baselines WHERE provider = ?1 AND approved_ms IS NOT NULL
                     ORDER BY approved_ms DESC, version DESC LIMIT 1"
                ),
                [provider],
                from_row,
            )
            .optional()
            .with_context(|| self.failed("read the baseline"))?;
        row.map(finish).transpose()
    }

    /// Each provider's known-good version (the one [`Store::approved_baseline`]
    /// returns), without reading the snapshots.
    pub fn known_good_versions(&self) -> Result<BTreeMap<String, i64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT provider, version FROM baselines WHERE approved_ms IS NOT NULL
             ORDER BY approved_ms, version",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            // Later rows win: the latest approval.
            let (provider, version) = row.with_context(|| self.failed("read baselines"))?;
            out.insert(provider, version);
        }
        Ok(out)
    }

    /// The newest snapshot of `provider`, approved or not.
    pub fn latest_baseline(&self, provider: &str) -> Result<Option<StoredBaseline>> {
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM baselines WHERE provider = ?1
                     ORDER BY version DESC LIMIT 1"
                ),
                [provider],
                from_row,
            )
            .optional()
            .with_context(|| self.failed("read the baseline"))?;
        row.map(finish).transpose()
    }

    /// Every stored version, oldest first, without their objects.
    pub fn baselines(&self) -> Result<Vec<StoredBaseline>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT version, provider, captured_ms, captured_by, digest, '[]', approved_ms,
                    approved_by
             FROM baselines ORDER BY version",
        )?;
        let rows = stmt.query_map([], from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(finish(row.with_context(|| self.failed("read baselines"))?)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::baseline::ObjectKind;
    use serde_json::json;

    fn policy(id: &str, status: &str) -> PolicyObject {
        PolicyObject {
            kind: ObjectKind::OktaPolicy,
            id: id.into(),
            name: format!("policy {id}"),
            body: json!({"id": id, "status": status, "type": "OKTA_SIGN_ON"}),
            rules: Vec::new(),
        }
    }

    #[test]
    fn the_latest_approval_decides_the_known_good_version() {
        let s = Store::in_memory().unwrap();
        assert!(s.approved_baseline("okta").unwrap().is_none());
        let v1 = s
            .save_baseline("okta", &[policy("00p1", "ACTIVE")], "alice", 1_000)
            .unwrap();
        let v2 = s
            .save_baseline("okta", &[policy("00p1", "INACTIVE")], "bob", 2_000)
            .unwrap();
        assert_ne!(v1.digest, v2.digest);
        assert!(s.approved_baseline("okta").unwrap().is_none());
        assert_eq!(
            s.latest_baseline("okta").unwrap().unwrap().version,
            v2.version
        );
        assert!(s.approve_baseline(v2.version, "carol", 3_000).unwrap());
        assert!(s.approve_baseline(v1.version, "dave", 4_000).unwrap());
        let good = s.approved_baseline("okta").unwrap().unwrap();
        assert_eq!(good.version, v1.version);
        assert_eq!(good.approved, Some((4_000, "dave".into())));
        assert_eq!(good.objects, vec![policy("00p1", "ACTIVE")]);
        assert!(s.approved_baseline("graph").unwrap().is_none());
        assert!(!s.approve_baseline(99, "eve", 5_000).unwrap());
        assert_eq!(
            s.known_good_versions().unwrap(),
            BTreeMap::from([("okta".to_owned(), v1.version)])
        );
        let all = s.baselines().unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|b| b.objects.is_empty()));
    }
}

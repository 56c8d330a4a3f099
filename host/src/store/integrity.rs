//! The state database's integrity check at start: `PRAGMA quick_check`
//! (every b-tree page well formed, every index entry pointing at a row),
//! once per file per process.
//!
//! Why fail closed: the idempotency keys live in an indexed table; a damaged
//! index can answer "never executed" for an action that was, and Vigil would
//! then suspend a user (or block an IP) twice. A damaged database is never
//! repaired or recreated automatically: the operator decides, with the file
//! kept as evidence.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Result, bail};
use rusqlite::Connection;

/// Files already checked by this process (each thread opens its own
/// connection; one check at start is enough).
static CHECKED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// Runs `PRAGMA quick_check` on `conn` (the file at `path`) unless this
/// process already did. The error names the file, what was found, and what
/// to do.
pub(super) fn check_once(conn: &Connection, path: &Path) -> Result<()> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    if CHECKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .contains(&key)
    {
        return Ok(());
    }
    check(conn, path)?;
    CHECKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(key);
    Ok(())
}

/// Forgets that `path` was checked, so the next open checks it again (tests
/// that damage a file this process opened before).
#[cfg(test)]
fn forget(path: &Path) {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    if let Some(set) = CHECKED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        set.remove(&key);
    }
}

/// Runs `PRAGMA quick_check` on `conn`.
pub(super) fn check(conn: &Connection, path: &Path) -> Result<()> {
    let found = quick_check(conn);
    let problems = match found {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => return Ok(()),
        Ok(rows) => rows,
        Err(e) => vec![e.to_string()],
    };
    // quick_check lists up to 100 problems; the first few say enough.
    let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
    let more = problems.len().saturating_sub(shown.len());
    bail!(
        "the state database {p} failed its integrity check (PRAGMA quick_check: {}{}). Vigil will \
         not start on it: a damaged idempotency index could let an action run twice. Stop every \
         Vigil using it, keep the file as evidence (`cp {p} {p}.damaged`), then restore it from a \
         backup, or move it aside to start with an empty state (its idempotency keys, scheduled \
         undos, approvals and rule state are then lost: check the audit log's action records \
         before re-enabling enforce mode)",
        shown.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        },
        p = path.display()
    )
}

fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::io::{Seek, SeekFrom, Write};

    /// A store with enough executions that the idempotency index spans
    /// several pages, closed (so the WAL is folded into the file).
    fn populated(path: &Path) {
        let s = Store::open(path).unwrap();
        for i in 0..2000 {
            let key = format!("action-{i:05}-{}:okta", "x".repeat(40));
            s.begin_execution(&key, "a", "okta", i).unwrap();
        }
        drop(s);
        forget(path);
    }

    /// The root page of the executions table's primary-key index.
    fn index_root_page(path: &Path) -> u64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'executions'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
    }

    // A sound database passes.
    #[test]
    fn sound_database_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        populated(&path);
        let conn = Connection::open(&path).unwrap();
        check(&conn, &path).unwrap();
    }

    // Garbage written over the idempotency index's root page: opening the
    // store fails, naming the file, the check and what to do.
    #[test]
    fn damaged_index_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        populated(&path);
        let page = index_root_page(&path);
        let page_size: u64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64;
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        // Keep the page's type byte sane-looking but break its cell pointers.
        f.seek(SeekFrom::Start((page - 1) * page_size + 1)).unwrap();
        f.write_all(&[0xA5; 64]).unwrap();
        drop(f);

        let err = Store::open(&path)
            .err()
            .expect("a damaged store is refused");
        let msg = format!("{err:#}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("PRAGMA quick_check"), "{msg}");
        assert!(msg.contains("run twice"), "{msg}");
        assert!(msg.contains(".damaged"), "{msg}");
    }

    // A file that is not a database at all is refused the same way.
    #[test]
    fn not_a_database_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        let err = Store::open(&path).err().expect("garbage is refused");
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("integrity check"),
            "{msg}"
        );
    }
}

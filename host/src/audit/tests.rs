//! Attacks on the audit log's tamper evidence, end to end through the
//! writer, the verifier, reseal and the witnesses: a cut tail with the head
//! deleted, a forged head, a wrong key, a tampered checkpoint, a log cut
//! behind its witness, a huge last record, an oversized entry.

use super::*;
use crate::audit::signing::public_key_path;
use serde_json::{Map, Value};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A log directory and, apart from it, a key directory.
struct Setup {
    _logs: tempfile::TempDir,
    keys: tempfile::TempDir,
    log: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let logs = tempfile::tempdir().unwrap();
        let keys = tempfile::tempdir().unwrap();
        let log = logs.path().join("audit.jsonl");
        Setup {
            _logs: logs,
            keys,
            log,
        }
    }

    /// Generates (once per name) and loads a key kept outside the log's
    /// directory; returns the signer and the public key.
    fn key(&self, name: &str) -> (AuditSigner, PublicKey) {
        let out = self.keys.path().join(name);
        if !out.exists() {
            keygen(&out).unwrap();
        }
        (
            AuditSigner::load(&out, &self.log).unwrap(),
            PublicKey::load(&public_key_path(&out)).unwrap(),
        )
    }

    fn signed(&self, name: &str, every: u64) -> AuditOptions {
        AuditOptions {
            signer: Some(self.key(name).0),
            checkpoint_records: every,
            ..AuditOptions::default()
        }
    }

    fn witness_path(&self) -> PathBuf {
        self.keys.path().join("witness.jsonl")
    }

    fn lines(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(&self, lines: &[String]) {
        fs::write(&self.log, lines.join("\n") + "\n").unwrap();
    }

    fn records(&self) -> Vec<Map<String, Value>> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn with_keys(&self, keys: &[&str]) -> VerifyOptions {
        VerifyOptions {
            public_keys: keys.iter().map(|k| self.key(k).1).collect(),
            ..VerifyOptions::default()
        }
    }
}

fn finding(n: u64) -> Entry {
    Entry::new("finding")
        .rule("mfa-disabled")
        .event(format!("evt-{n}"))
        .field("user", format!("user{n}"))
}

fn write(path: &Path, options: AuditOptions, n: u64) {
    let mut log = AuditLog::open_with(path, options).unwrap();
    for i in 1..=n {
        log.append(finding(i)).unwrap();
    }
    log.sync().unwrap();
}

/// The attack of issue 11: cut the last records and delete the head file.
/// `verify` fails, Vigil refuses to append (naming the reseal command), a
/// reseal accepts the log on the record, and then both work again.
#[test]
fn cut_tail_and_deleted_head_refused_then_resealed() {
    let s = Setup::new();
    write(&s.log, AuditOptions::default(), 10);
    let lines = s.lines();
    s.write_lines(&lines[..7]);
    fs::remove_file(head_path(&s.log)).unwrap();

    let err = verify(&s.log).unwrap_err();
    assert!(
        matches!(err, VerifyError::HeadMissing { last_seq: 7 }),
        "{err}"
    );

    let err = AuditLog::open(&s.log).unwrap_err();
    assert!(matches!(err, AuditError::HeadMissing { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("vigil audit reseal {}", s.log.display())) && msg.contains("--by"),
        "{msg}"
    );
    assert_eq!(s.lines().len(), 7, "nothing appended");
    assert!(!head_path(&s.log).exists(), "no head written");

    // A reseal needs a name and a reason.
    let err = reseal(&s.log, AuditOptions::default(), " ", "x").unwrap_err();
    assert!(matches!(err, AuditError::ResealRefused { .. }), "{err}");

    let report = reseal(
        &s.log,
        AuditOptions::default(),
        "alice",
        "INC-42: log copied to evidence store",
    )
    .unwrap();
    assert_eq!(report.seq, 8);
    assert!(
        report.cause.contains("head file was missing"),
        "{}",
        report.cause
    );
    assert!(!report.checkpointed);
    let records = s.records();
    let sealed = &records[7];
    assert_eq!(sealed["type"], "resealed");
    assert_eq!(sealed["by"], "alice");
    assert_eq!(sealed["reason"], "INC-42: log copied to evidence store");
    assert_eq!(sealed["previous_head"], Value::Null);
    assert_eq!(sealed["log_end"]["seq"], 7);
    assert_eq!(sealed["log_end"]["hash"], records[6]["hash"]);

    // The log verifies again and says it was resealed, by whom.
    let report = verify(&s.log).unwrap();
    assert_eq!(report.last_seq, 8);
    assert_eq!(report.reseals.len(), 1);
    assert_eq!(report.reseals[0].by, "alice");
    assert!(report.to_string().contains("resealed at seq 8"), "{report}");
    // Appending works again; a second reseal finds nothing to do.
    write(&s.log, AuditOptions::default(), 1);
    let err = reseal(&s.log, AuditOptions::default(), "alice", "again").unwrap_err();
    assert!(matches!(err, AuditError::NothingToReseal { .. }), "{err}");
}

/// A head that names records the log no longer has (a cut, head kept): the
/// reseal records what the old head said.
#[test]
fn reseal_records_the_old_head() {
    let s = Setup::new();
    write(&s.log, AuditOptions::default(), 6);
    let old_head: Head = serde_json::from_slice(&fs::read(head_path(&s.log)).unwrap()).unwrap();
    s.write_lines(&s.lines()[..4]);
    let err = AuditLog::open(&s.log).unwrap_err();
    assert!(err.to_string().contains("vigil audit reseal"), "{err}");
    let report = reseal(&s.log, AuditOptions::default(), "bob", "cut confirmed").unwrap();
    assert!(
        report.cause.contains("cut from the tail"),
        "{}",
        report.cause
    );
    let sealed = &s.records()[4];
    assert_eq!(sealed["previous_head"]["seq"], 6);
    assert_eq!(sealed["previous_head"]["hash"], old_head.hash.as_str());
}

/// A reseal never accepts a log whose records were altered: that log is
/// evidence to be moved aside.
#[test]
fn reseal_refuses_a_damaged_chain() {
    let s = Setup::new();
    write(&s.log, AuditOptions::default(), 6);
    let mut lines = s.lines();
    lines[2] = lines[2].replace("user3", "userX");
    s.write_lines(&lines);
    fs::remove_file(head_path(&s.log)).unwrap();
    let before = fs::read(&s.log).unwrap();
    let err = reseal(&s.log, AuditOptions::default(), "eve", "hide it").unwrap_err();
    assert!(matches!(err, AuditError::ResealRefused { .. }), "{err}");
    assert!(err.to_string().contains("record seq 3"), "{err}");
    assert_eq!(fs::read(&s.log).unwrap(), before, "the log is untouched");
}

/// Checkpoints every N records are signed and verify with the public key;
/// the head is signed too; closing the log checkpoints what is pending.
#[test]
fn checkpoints_signed_and_verified() {
    let s = Setup::new();
    write(&s.log, s.signed("k1", 3), 7);
    let records = s.records();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    // 3 findings, checkpoint, 3 findings, checkpoint, 1 finding, closing checkpoint.
    assert_eq!(
        kinds,
        [
            "finding",
            "finding",
            "finding",
            "checkpoint",
            "finding",
            "finding",
            "finding",
            "checkpoint",
            "finding",
            "checkpoint"
        ]
    );
    let (signer, public) = s.key("k1");
    assert_eq!(records[3]["key_id"], signer.key_id());
    assert_eq!(records[3]["prev_hash"], records[2]["hash"]);

    let report = verify_with(&s.log, &s.with_keys(&["k1"])).unwrap();
    assert_eq!(report.checkpoints, 3);
    assert!(report.signatures_checked);
    assert_eq!(report.head_signed_by.as_deref(), Some(public.key_id()));
    assert_eq!(report.unsigned_tail, None);
    assert!(
        report.to_string().contains("every signature verified"),
        "{report}"
    );
    // Without a key the checkpoints are counted, not checked.
    let plain = verify(&s.log).unwrap();
    assert!(
        plain.to_string().contains("signatures not checked"),
        "{plain}"
    );
}

/// `checkpoint_secs`: a checkpoint at the first sync after the interval
/// when records are waiting (0 s here, so every such sync).
#[test]
fn time_based_checkpoint_at_sync() {
    let s = Setup::new();
    let mut options = s.signed("k1", 1000);
    options.checkpoint_secs = 0;
    let mut log = AuditLog::open_with(&s.log, options).unwrap();
    log.append(finding(1)).unwrap();
    log.sync().unwrap();
    log.sync().unwrap(); // nothing waiting: no second checkpoint
    let kinds: Vec<String> = s
        .records()
        .iter()
        .map(|r| r["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["finding", "checkpoint"]);
}

/// The wrong public key fails, naming both key ids.
#[test]
fn wrong_public_key_fails() {
    let s = Setup::new();
    write(&s.log, s.signed("k1", 2), 4);
    let err = verify_with(&s.log, &s.with_keys(&["other"])).unwrap_err();
    let (k1, _) = s.key("k1");
    let (_, other) = s.key("other");
    assert!(
        matches!(err, VerifyError::Checkpoint { seq: 3, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(k1.key_id()) && msg.contains(other.key_id()),
        "{msg}"
    );
}

/// A checkpoint whose signature was altered, with the chain re-hashed from
/// there on and a matching (unsigned) head written: the chain holds, the
/// signature does not.
#[test]
fn tampered_checkpoint_fails() {
    let s = Setup::new();
    write(&s.log, s.signed("k1", 2), 4);
    let mut records = s.records();
    assert_eq!(records[2]["type"], "checkpoint");
    let sig = records[2]["sig"].as_str().unwrap().to_owned();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    records[2].insert("sig".into(), flipped.into());
    let forged = rechain(&mut records, 2);
    s.write_lines(&forged);
    forge_head(&s.log, &records);

    assert!(verify(&s.log).is_ok(), "the chain alone cannot tell");
    let err = verify_with(&s.log, &s.with_keys(&["k1"])).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Checkpoint {
                line: 3,
                seq: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("does not verify"), "{err}");
}

/// An edit before a checkpoint, re-hashed all the way down with a forged
/// head: the checkpoint after it no longer verifies (it signs the old hash).
#[test]
fn rewritten_history_fails_at_the_next_checkpoint() {
    let s = Setup::new();
    write(&s.log, s.signed("k1", 3), 6);
    let mut records = s.records();
    records[1].insert("user".into(), "someone-else".into());
    let forged = rechain(&mut records, 1);
    s.write_lines(&forged);
    forge_head(&s.log, &records);
    let err = verify_with(&s.log, &s.with_keys(&["k1"])).unwrap_err();
    assert!(
        matches!(err, VerifyError::Checkpoint { seq: 4, .. }),
        "{err}"
    );
}

/// Truncation with a forged head: cut the log and write a head that
/// matches the cut. Without the key this passes as a chain; with the
/// public key the forged head is caught; and Vigil, holding the key,
/// refuses to continue (it would otherwise sign the cut log's head).
#[test]
fn forged_head_over_cut_log_fails_with_pubkey() {
    let s = Setup::new();
    write(&s.log, s.signed("k1", 4), 9);
    let mut records = s.records();
    records.truncate(6);
    s.write_lines(&s.lines()[..6]);
    forge_head(&s.log, &records);

    assert!(
        verify(&s.log).is_ok(),
        "documented: without the key a forged head passes"
    );
    let err = verify_with(&s.log, &s.with_keys(&["k1"])).unwrap_err();
    assert!(matches!(err, VerifyError::HeadSignature { .. }), "{err}");
    assert!(err.to_string().contains("is not signed"), "{err}");

    let err = AuditLog::open_with(&s.log, s.signed("k1", 4)).unwrap_err();
    assert!(matches!(err, AuditError::HeadSignature { .. }), "{err}");
    assert!(err.to_string().contains("vigil audit reseal"), "{err}");
    // A checkpoint's signature cannot be passed off as a head's.
    let cp = records.iter().find(|r| r["type"] == "checkpoint").unwrap();
    let stolen = Head {
        seq: cp["seq"].as_u64().unwrap(),
        hash: cp["prev_hash"].as_str().unwrap().to_owned(),
        time: Some(cp["time"].as_str().unwrap().to_owned()),
        key_id: Some(cp["key_id"].as_str().unwrap().to_owned()),
        sig: Some(cp["sig"].as_str().unwrap().to_owned()),
    };
    assert!(stolen.check_signature(&s.key("k1").1).is_err());
}

/// A key change is a deliberate, recorded act: Vigil with a new key refuses
/// the old key's head until a reseal, after which both keys verify the log.
#[test]
fn key_rotation_needs_a_reseal() {
    let s = Setup::new();
    write(&s.log, s.signed("old", 2), 3);
    let err = AuditLog::open_with(&s.log, s.signed("new", 2)).unwrap_err();
    assert!(err.to_string().contains("not by key id"), "{err}");
    // Removing the key is refused too (signing would silently stop).
    let err = AuditLog::open(&s.log).unwrap_err();
    assert!(err.to_string().contains("silently stop signing"), "{err}");

    let report = reseal(&s.log, s.signed("new", 2), "carol", "key rotation").unwrap();
    assert!(report.checkpointed);
    write(&s.log, s.signed("new", 2), 2);
    verify_with(&s.log, &s.with_keys(&["old", "new"])).unwrap();
    let err = verify_with(&s.log, &s.with_keys(&["new"])).unwrap_err();
    assert!(matches!(err, VerifyError::Checkpoint { .. }), "{err}");
}

/// The witness file gets each checkpoint line once the log is synced; the
/// log compares clean; a log cut behind the witness is refused at open and
/// fails `verify --witness`, even after a reseal.
#[test]
fn witness_file_detects_a_cut_even_after_reseal() {
    let s = Setup::new();
    let witnessed = |every| {
        let mut o = s.signed("k1", every);
        o.witness.file = Some(s.witness_path());
        o
    };
    write(&s.log, witnessed(3), 8);
    let log_lines = s.lines();
    let witness_lines: Vec<String> = fs::read_to_string(s.witness_path())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let checkpoints: Vec<&String> = log_lines
        .iter()
        .filter(|l| l.contains(r#""type":"checkpoint""#))
        .collect();
    assert_eq!(witness_lines.len(), checkpoints.len());
    assert!(witness_lines.iter().zip(&checkpoints).all(|(w, c)| w == *c));
    let options = VerifyOptions {
        witness: Some(s.witness_path()),
        ..s.with_keys(&["k1"])
    };
    let report = verify_with(&s.log, &options).unwrap();
    assert_eq!(report.witness, Some((3, vec![])));

    // Cut back before the last checkpoint and delete the head.
    s.write_lines(&log_lines[..6]);
    fs::remove_file(head_path(&s.log)).unwrap();
    let err = AuditLog::open_with(&s.log, witnessed(3)).unwrap_err();
    assert!(matches!(err, AuditError::HeadMissing { .. }), "{err}");
    // Even with a (stolen or forged) head in place, the witness stops it.
    forge_head(&s.log, &s.records());
    let err = AuditLog::open_with(
        &s.log,
        AuditOptions {
            signer: None,
            witness: witness::WitnessConfig {
                file: Some(s.witness_path()),
                url: None,
                publish: None,
            },
            ..AuditOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, AuditError::WitnessAhead { .. }), "{err}");
    let err = verify_with(
        &s.log,
        &VerifyOptions {
            witness: Some(s.witness_path()),
            ..VerifyOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::WitnessMissing { .. }), "{err}");

    // After a reseal the log is writable again, but the witness still
    // proves what was lost.
    fs::remove_file(head_path(&s.log)).unwrap();
    reseal(&s.log, witnessed(3), "dave", "after the incident").unwrap();
    write(&s.log, witnessed(3), 5);
    let err = verify_with(&s.log, &options).unwrap_err();
    assert!(
        matches!(err, VerifyError::WitnessMismatch { resealed: true, .. }),
        "{err}"
    );
}

/// The witness URL receives each checkpoint line; a witness that cannot be
/// reached never stops the log, and the next checkpoint says how many
/// deliveries failed.
#[test]
fn witness_url_receives_checkpoints_and_failures_are_recorded() {
    let s = Setup::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/witness", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header == "\r\n" {
                break;
            }
            if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
        (request_line, body)
    });
    let mut options = s.signed("k1", 2);
    options.witness.url = Some(url.parse().unwrap());
    write(&s.log, options, 2);
    let (request_line, body) = server.join().unwrap();
    assert!(request_line.starts_with("POST /witness"), "{request_line}");
    assert_eq!(String::from_utf8(body).unwrap(), s.lines()[2]);

    // Nothing listens here any more.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/witness", closed.local_addr().unwrap());
    drop(closed);
    let mut options = s.signed("k1", 1);
    options.witness.url = Some(dead.parse().unwrap());
    let mut log = AuditLog::open_with(&s.log, options).unwrap();
    log.append(finding(10)).unwrap(); // + checkpoint
    log.sync().unwrap(); // shipped: fails in the background
    let deadline = Instant::now() + Duration::from_secs(60);
    while log.pending_witness_failures() == 0 {
        assert!(Instant::now() < deadline, "the failed delivery is counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    log.append(finding(11)).unwrap(); // + checkpoint carrying the count
    log.sync().unwrap();
    drop(log);
    let last = s.records().pop().unwrap();
    assert_eq!(last["type"], "checkpoint");
    assert_eq!(last["witness_failed"], 1);
}

/// With a replica name every checkpoint record carries it, and the
/// verifier reads it back; without one, checkpoints are as they always were.
#[test]
fn checkpoints_name_the_replica_when_set() {
    let s = Setup::new();
    let mut options = s.signed("k1", 2);
    options.replica = Some("replica-a".to_owned());
    write(&s.log, options, 5);
    let records = s.records();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "finding",
            "finding",
            "checkpoint",
            "finding",
            "finding",
            "checkpoint",
            "finding",
            "checkpoint"
        ]
    );
    for r in &records {
        if r["type"] == "checkpoint" {
            assert_eq!(r["replica"], "replica-a", "{r:?}");
        } else {
            assert!(!r.contains_key("replica"), "{r:?}");
        }
    }
    let (names, result) = verify_member(&s.log, &s.with_keys(&["k1"]));
    assert_eq!(names, ["replica-a"]);
    let report = result.unwrap();
    assert_eq!(report.replicas, ["replica-a"]);
    assert_eq!(report.checkpoints, 3);

    let plain = Setup::new();
    write(&plain.log, plain.signed("k1", 2), 5);
    let records = plain.records();
    assert!(records.iter().all(|r| !r.contains_key("replica")));
    let checkpoint = records.iter().find(|r| r["type"] == "checkpoint").unwrap();
    let keys: Vec<&str> = checkpoint.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["hash", "key_id", "prev_hash", "seq", "sig", "time", "type"]
    );
    let (names, result) = verify_member(&plain.log, &plain.with_keys(&["k1"]));
    assert!(names.is_empty());
    assert!(result.unwrap().replicas.is_empty());
}

/// Polls `done` every 20 ms for up to `secs` seconds.
fn wait_for(secs: u64, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The publisher gets each checkpoint line exactly as the log holds it,
/// and only once the log has synced it; a publisher that fails never stops
/// the log (three attempts, then counted), and the next checkpoint says how
/// many checkpoints were not delivered.
#[test]
fn publisher_gets_checkpoints_after_sync_and_failures_are_recorded() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    let s = Setup::new();
    /// Each line published, and whether the log file held it by then.
    type Published = Vec<(Vec<u8>, bool)>;
    let got: Arc<Mutex<Published>> = Arc::default();
    let publisher = {
        let got = got.clone();
        let log = s.log.clone();
        CheckpointPublisher::new("vigil.audit.replica-a", move |line: &[u8]| {
            let on_disk = fs::read(&log).map_err(|e| e.to_string())?;
            let durable = on_disk.split(|&b| b == b'\n').any(|l| l == line);
            got.lock().unwrap().push((line.to_vec(), durable));
            Ok(())
        })
    };
    assert_eq!(
        format!("{publisher:?}"),
        r#"CheckpointPublisher { name: "vigil.audit.replica-a", .. }"#
    );
    let mut options = s.signed("k1", 2);
    options.replica = Some("replica-a".to_owned());
    options.witness.publish = Some(publisher);
    let mut log = AuditLog::open_with(&s.log, options).unwrap();
    log.append(finding(1)).unwrap();
    log.append(finding(2)).unwrap(); // + checkpoint, buffered
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        got.lock().unwrap().is_empty(),
        "a checkpoint not yet synced is not published"
    );
    log.sync().unwrap();
    wait_for(10, "the checkpoint is published", || {
        got.lock().unwrap().len() == 1
    });
    log.append(finding(3)).unwrap();
    log.append(finding(4)).unwrap(); // + checkpoint
    log.sync().unwrap();
    drop(log); // waits for the queue
    let lines = s.lines();
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], (lines[2].as_bytes().to_vec(), true));
    assert_eq!(got[1], (lines[5].as_bytes().to_vec(), true));
    assert!(
        lines[5].contains(r#""replica":"replica-a""#),
        "{}",
        lines[5]
    );

    let calls = Arc::new(AtomicU64::new(0));
    let failing = {
        let calls = calls.clone();
        CheckpointPublisher::new("vigil.audit.replica-a", move |_: &[u8]| {
            calls.fetch_add(1, Ordering::SeqCst);
            Err("no responders available for request".to_owned())
        })
    };
    let mut options = s.signed("k1", 1);
    options.witness.publish = Some(failing);
    let mut log = AuditLog::open_with(&s.log, options).unwrap();
    log.append(finding(5)).unwrap(); // + checkpoint
    let started = Instant::now();
    log.sync().unwrap(); // published: fails in the background
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a failing publisher does not hold up the log"
    );
    wait_for(30, "the failed publication is counted", || {
        log.pending_witness_failures() == 1
    });
    assert_eq!(calls.load(Ordering::SeqCst), 3, "three attempts");
    log.append(finding(6)).unwrap(); // + checkpoint carrying the count
    log.sync().unwrap();
    drop(log);
    let last = s.records().pop().unwrap();
    assert_eq!(last["type"], "checkpoint");
    assert_eq!(last["witness_failed"], 1);
}

/// The newest checkpoint a replica published catches its log cut back
/// behind it, even under a genuinely signed head saved before the cut
/// (which the head file and the signatures cannot catch); a log rewritten
/// from there fails too; another replica's checkpoint is not compared.
#[test]
fn published_checkpoint_catches_a_cut() {
    let s = Setup::new();
    let named = |every| {
        let mut o = s.signed("k1", every);
        o.replica = Some("a".to_owned());
        o
    };
    write(&s.log, named(3), 5); // f f f cp f f cp
    let saved_lines = s.lines();
    let saved_head = fs::read(head_path(&s.log)).unwrap();
    assert_eq!(saved_lines.len(), 7);
    write(&s.log, named(3), 3); // f f f cp
    let lines = s.lines();
    assert_eq!(lines.len(), 11);
    let newest: Value = serde_json::from_str(&lines[10]).unwrap();
    let published = PublishedCheckpoint::from_value("a", &newest).unwrap();
    assert_eq!((published.replica.as_str(), published.seq), ("a", 11));
    let with_published = VerifyOptions {
        published: vec![published.clone()],
        ..s.with_keys(&["k1"])
    };
    let report = verify_with(&s.log, &with_published).unwrap();
    assert_eq!(report.published, [("a".to_owned(), 11)]);

    // What is not a checkpoint of replica "a" is refused as such.
    let err = PublishedCheckpoint::from_value("b", &newest).unwrap_err();
    assert!(err.contains(r#"names replica "a", not "b""#), "{err}");
    let mut altered = newest.clone();
    altered["time"] = "2020-01-01T00:00:00.000Z".into();
    let err = PublishedCheckpoint::from_value("a", &altered).unwrap_err();
    assert!(err.contains("altered"), "{err}");
    let finding: Value = serde_json::from_str(&lines[0]).unwrap();
    let err = PublishedCheckpoint::from_value("a", &finding).unwrap_err();
    assert!(err.contains("not a checkpoint"), "{err}");

    // Cut back to the saved point, with the head saved then: the log, its
    // head and every signature fit.
    s.write_lines(&saved_lines);
    fs::write(head_path(&s.log), &saved_head).unwrap();
    verify_with(&s.log, &s.with_keys(&["k1"])).unwrap();
    let err = verify_with(&s.log, &with_published).unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::PublishedMissing { replica, seq: 11, last_seq: 7 } if replica == "a"
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "replica a published checkpoint seq 11 (on vigil.audit.a) but the log ends at seq 7: \
         records were cut from the log"
    );

    // Written on from the cut: seq 11 is now another record.
    write(&s.log, named(3), 3);
    let err = verify_with(&s.log, &with_published).unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::PublishedMismatch {
                seq: 11,
                resealed: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cut and rewritten"), "{err}");

    // Another replica's checkpoint says nothing about this log.
    let b = Setup::new();
    let mut options = b.signed("k1", 3);
    options.replica = Some("b".to_owned());
    write(&b.log, options, 30);
    let b_newest: Value = serde_json::from_str(b.lines().last().unwrap()).unwrap();
    let options = VerifyOptions {
        published: vec![PublishedCheckpoint::from_value("b", &b_newest).unwrap()],
        ..s.with_keys(&["k1"])
    };
    let report = verify_with(&s.log, &options).unwrap();
    assert!(report.published.is_empty());

    // With keys, a published checkpoint they did not sign is refused before
    // it is compared (re-hashed, so that it fits its own hash).
    let mut forged: Map<String, Value> = serde_json::from_value(b_newest.clone()).unwrap();
    let sig = forged["sig"].as_str().unwrap().to_owned();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('a') { "b" } else { "a" },
        &sig[1..]
    );
    forged.insert("sig".into(), flipped.into());
    forged.remove("hash");
    let prev = forged["prev_hash"].as_str().unwrap().to_owned();
    let hash = record_hash(&prev, &mut forged);
    forged.insert("hash".into(), hash.into());
    let forged = PublishedCheckpoint::from_value("b", &Value::Object(forged)).unwrap();
    let options = VerifyOptions {
        published: vec![forged],
        ..b.with_keys(&["k1"])
    };
    let err = verify_with(&b.log, &options).unwrap_err();
    assert!(
        matches!(&err, VerifyError::PublishedSignature { replica, .. } if replica == "b"),
        "{err}"
    );
    // Without keys it is only compared, and its hash is not the log's.
    let options = VerifyOptions {
        published: options.published,
        ..VerifyOptions::default()
    };
    let err = verify_with(&b.log, &options).unwrap_err();
    assert!(
        matches!(err, VerifyError::PublishedMismatch { .. }),
        "{err}"
    );
}

/// Opening a log whose last record is 48 MiB works (reading the last
/// record is linear in its size; it used to take minutes).
#[test]
fn huge_last_record_opens() {
    let s = Setup::new();
    let options = || AuditOptions {
        max_record_bytes: 64 * 1024 * 1024,
        ..AuditOptions::default()
    };
    let mut log = AuditLog::open_with(&s.log, options()).unwrap();
    log.append(finding(1)).unwrap();
    log.append(Entry::new("finding").field("blob", "x".repeat(48 * 1024 * 1024)))
        .unwrap();
    drop(log);
    assert!(fs::metadata(&s.log).unwrap().len() > 48 * 1024 * 1024);
    let log = AuditLog::open_with(&s.log, options()).unwrap();
    assert_eq!(log.last_seq(), 2);
}

/// An entry over the cap is written truncated, with a marker giving the
/// original size and digest and naming the cut field; small fields stay
/// whole; the chain verifies and the report counts it; the log goes on.
#[test]
fn oversized_entry_written_truncated_with_marker() {
    let s = Setup::new();
    let mut log = AuditLog::open(&s.log).unwrap();
    let blob = "\"quoted\"\n".repeat(400_000); // 3.6 MB, escapes double it
    log.append(
        Entry::new("rule-fault")
            .rule("noisy")
            .event("evt-1")
            .field("message", blob)
            .field("fault", "output-limit"),
    )
    .unwrap();
    log.append(finding(2)).unwrap();
    drop(log);
    let lines = s.lines();
    assert!(
        lines[0].len() <= cap::DEFAULT_MAX_RECORD_BYTES,
        "{}",
        lines[0].len()
    );
    assert!(
        lines[0].len() > cap::DEFAULT_MAX_RECORD_BYTES - 4096,
        "the room is used"
    );
    let record: Map<String, Value> = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(record["type"], "rule-fault");
    assert_eq!(record["rule"], "noisy");
    assert_eq!(record["fault"], "output-limit");
    let marker = &record[cap::MARKER];
    assert!(marker["bytes"].as_u64().unwrap() > 4_000_000, "{marker}");
    assert_eq!(marker["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(marker["fields"], serde_json::json!(["message"]));
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .starts_with(r#""\"quoted\"\n"#)
    );
    let report = verify(&s.log).unwrap();
    assert_eq!((report.records, report.truncated_records), (2, 1));
}

/// Callers cannot write the log's own record types.
#[test]
fn reserved_types_refused() {
    let s = Setup::new();
    let mut log = AuditLog::open(&s.log).unwrap();
    for kind in RESERVED_TYPES {
        let err = log.append(Entry::new(kind)).unwrap_err();
        assert!(matches!(err, AuditError::ReservedType(_)), "{err}");
    }
    assert_eq!(log.last_seq(), 0);
}

/// Re-hashes records from index `from` on (each after its predecessor), as
/// an attacker without the key can, and returns the lines.
fn rechain(records: &mut [Map<String, Value>], from: usize) -> Vec<String> {
    for i in from..records.len() {
        let prev = if i == 0 {
            GENESIS_HASH.to_owned()
        } else {
            records[i - 1]["hash"].as_str().unwrap().to_owned()
        };
        let r = &mut records[i];
        r.remove("hash");
        r.insert("prev_hash".into(), prev.clone().into());
        let hash = record_hash(&prev, r);
        r.insert("hash".into(), hash.into());
    }
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect()
}

/// Writes an unsigned head naming the last of `records`, as an attacker
/// without the key can.
fn forge_head(log: &Path, records: &[Map<String, Value>]) {
    let last = records.last().unwrap();
    let head = Head {
        seq: last["seq"].as_u64().unwrap(),
        hash: last["hash"].as_str().unwrap().to_owned(),
        time: None,
        key_id: None,
        sig: None,
    };
    fs::write(head_path(log), serde_json::to_vec(&head).unwrap()).unwrap();
}

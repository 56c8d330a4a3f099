//! The audit log's tamper evidence through the real `vigil` binary: a cut
//! log with its head deleted is refused by `verify` and by `run` (naming the
//! recovery) until `vigil audit reseal` accepts it on the record; keys from
//! `vigil audit keygen` sign checkpoints and the head, and `verify --pubkey`
//! catches a forged head and a wrong key; the witness file catches a cut;
//! a key file others can read is refused; replica logs are verified as a
//! set against the checkpoints they published to NATS. Also the start-up
//! checks of issue 11 item 8: a damaged state database stops the start, and
//! a cache directory others can write is not used.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

fn vigil(args: &[&str], cwd: &Path) -> Output {
    vigil_test_support::vigil(VIGIL, args, cwd, &cwd.join("xdg-cache"))
}

fn stdout(o: &Output) -> String {
    text(&o.stdout)
}

fn stderr(o: &Output) -> String {
    text(&o.stderr)
}

fn head_path(wd: &Workdir) -> PathBuf {
    wd.path().join("audit.jsonl.head")
}

fn lines(wd: &Workdir) -> Vec<String> {
    std::fs::read_to_string(wd.audit_path())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(wd: &Workdir, lines: &[String]) {
    std::fs::write(wd.audit_path(), lines.join("\n") + "\n").unwrap();
}

/// `vigil run` of the push-bombing fixture with `body` as the config.
fn run(wd: &Workdir, body: &str) -> Output {
    wd.run(
        VIGIL,
        body,
        &fixture("push-bombing.jsonl"),
        &wd.path().join("xdg-cache"),
    )
}

fn verify(wd: &Workdir, extra: &[&str]) -> Output {
    let log = wd.audit_path();
    let mut args = vec!["audit", "verify", log.to_str().unwrap()];
    args.extend_from_slice(extra);
    vigil(&args, wd.path())
}

/// A key pair made by `vigil audit keygen` in `dir` (outside any log dir).
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let out = dir.join(name);
    let o = vigil(&["audit", "keygen", "--out", out.to_str().unwrap()], dir);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("key id:"), "{}", stdout(&o));
    let public = dir.join(format!("{name}.pub"));
    assert!(public.exists());
    (out, public)
}

/// The attack of issue 11 item 7: cut the last records and delete the head.
#[test]
fn cut_log_without_head_is_refused_until_resealed() {
    let wd = Workdir::new();
    let first = run(&wd, "");
    assert!(first.status.success(), "{}", stderr(&first));
    let all = lines(&wd);
    assert!(all.len() >= 3, "{}", all.len());
    write_lines(&wd, &all[..all.len() - 1]);
    std::fs::remove_file(head_path(&wd)).unwrap();

    let out = verify(&wd, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("no head file"), "{}", stdout(&out));

    // Vigil refuses to append, naming the recovery command; nothing written.
    let out = run(&wd, "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("vigil audit reseal") && err.contains("--by NAME"),
        "{err}"
    );
    assert_eq!(lines(&wd).len(), all.len() - 1);
    assert!(!head_path(&wd).exists());

    // The reseal is deliberate: --by and --reason are required.
    let log = wd.audit_path();
    let out = vigil(&["audit", "reseal", log.to_str().unwrap()], wd.path());
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    let out = vigil(
        &[
            "audit",
            "reseal",
            log.to_str().unwrap(),
            "--by",
            "alice",
            "--reason",
            "INC-7 copy kept",
        ],
        wd.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("head file was missing"),
        "{}",
        stdout(&out)
    );
    let sealed: Value = serde_json::from_str(lines(&wd).last().unwrap()).unwrap();
    assert_eq!(sealed["type"], "resealed");
    assert_eq!(sealed["by"], "alice");
    assert_eq!(sealed["reason"], "INC-7 copy kept");

    let out = verify(&wd, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("by alice"), "{}", stdout(&out));
    let out = run(&wd, "");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Signed checkpoints through the binary: verify with the right key, fail
/// with another, fail on a forged head over a cut log (which `vigil run`
/// also refuses), and fail on a tampered checkpoint.
#[test]
fn signed_checkpoints_and_forged_head() {
    let wd = Workdir::new();
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = keygen(keys.path(), "audit.key");
    let (_, other) = keygen(keys.path(), "other.key");
    let body = format!("[audit]\nsigning_key_file = {key:?}\ncheckpoint_records = 2\n");
    let out = run(&wd, &body);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = lines(&wd);
    let checkpoints = all
        .iter()
        .filter(|l| l.contains(r#""type":"checkpoint""#))
        .count();
    assert!(checkpoints >= 2, "{all:#?}");

    let out = verify(&wd, &["--pubkey", public.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("every signature verified"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains(", signed by key"), "{}", stdout(&out));

    let out = verify(&wd, &["--pubkey", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("not by the given public key"),
        "{}",
        stdout(&out)
    );

    // A checkpoint with a changed signature (chain left as is): the record's
    // own hash no longer matches, and with the key the signature fails.
    let mut tampered = all.clone();
    let i = tampered
        .iter()
        .position(|l| l.contains(r#""type":"checkpoint""#))
        .unwrap();
    let mut rec: serde_json::Map<String, Value> = serde_json::from_str(&tampered[i]).unwrap();
    let sig = rec["sig"].as_str().unwrap().to_owned();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('a') { "b" } else { "a" },
        &sig[1..]
    );
    rec.insert("sig".into(), flipped.into());
    tampered[i] = serde_json::to_string(&rec).unwrap();
    write_lines(&wd, &tampered);
    let out = verify(&wd, &["--pubkey", public.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!("line {}", i + 1)),
        "{}",
        stdout(&out)
    );

    // Cut the log and forge a head that matches the cut.
    let kept = &all[..all.len() - 2];
    write_lines(&wd, kept);
    let last: Value = serde_json::from_str(kept.last().unwrap()).unwrap();
    let forged = serde_json::json!({"seq": last["seq"], "hash": last["hash"]});
    std::fs::write(head_path(&wd), forged.to_string()).unwrap();
    let out = verify(&wd, &[]);
    assert!(
        out.status.success(),
        "documented: without the key a forged head passes"
    );
    let out = verify(&wd, &["--pubkey", public.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("head file is not signed"),
        "{}",
        stdout(&out)
    );
    let out = run(&wd, &body);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("vigil audit reseal"),
        "{}",
        stderr(&out)
    );
}

/// A key file that group or others can read, or that sits in the log's
/// directory, stops the start with the reason.
#[test]
fn key_file_checks() {
    let wd = Workdir::new();
    let keys = tempfile::tempdir().unwrap();
    let (key, _) = keygen(keys.path(), "audit.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&wd, &format!("[audit]\nsigning_key_file = {key:?}\n"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("audit.signing_key_file") && err.contains("chmod 600"),
        "{err}"
    );

    let (inside, _) = keygen(wd.path(), "audit.key");
    let out = run(&wd, &format!("[audit]\nsigning_key_file = {inside:?}\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("inside the audit log's directory"),
        "{}",
        stderr(&out)
    );
}

/// The witness file gets every checkpoint; `verify --witness` compares; a
/// log cut behind it is refused by `run` and fails `verify --witness`.
#[test]
fn witness_file_catches_a_cut() {
    let wd = Workdir::new();
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = keygen(keys.path(), "audit.key");
    let witness = keys.path().join("witness/checkpoints.jsonl");
    let body = format!(
        "[audit]\nsigning_key_file = {key:?}\ncheckpoint_records = 1\nwitness_file = {witness:?}\n"
    );
    let out = run(&wd, &body);
    assert!(out.status.success(), "{}", stderr(&out));
    let w = witness.to_str().unwrap();
    let p = public.to_str().unwrap();
    let out = verify(&wd, &["--pubkey", p, "--witness", w]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("witnessed checkpoints are in the log"),
        "{}",
        stdout(&out)
    );

    // Cut two records (a checkpoint among them) and keep a matching head,
    // as someone who saved an older signed head could.
    let all = lines(&wd);
    write_lines(&wd, &all[..all.len() - 2]);
    let last: Value = serde_json::from_str(&all[all.len() - 3]).unwrap();
    let forged = serde_json::json!({"seq": last["seq"], "hash": last["hash"]});
    std::fs::write(head_path(&wd), forged.to_string()).unwrap();
    let out = verify(&wd, &["--witness", w]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("records were cut from the log"),
        "{}",
        stdout(&out)
    );
    let out = run(&wd, &body);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("vigil audit reseal"),
        "{}",
        stderr(&out)
    );
}

/// `[audit]` signing with `key` (a checkpoint every 2 records) and
/// `[cluster]` naming the replica, on the NATS server at `nats_url`. Each
/// replica claims in a bucket of its own: they all judge the same fixture,
/// and each log must hold the whole of it.
fn replica_config(key: &Path, nats_url: &str, replica: &str) -> String {
    format!(
        "[audit]\nsigning_key_file = {key:?}\ncheckpoint_records = 2\n\
         [cluster]\nnats_url = \"{nats_url}\"\nreplica = \"{replica}\"\ntimeout_secs = 5\n\
         claims_bucket = \"claims-{replica}\"\n"
    )
}

/// Publishes every checkpoint line of `log` on `vigil.audit.<replica>` of
/// the stream `VIGIL` (subjects `vigil.>`, created if needed), as a
/// replica's checkpoint publisher does.
fn publish_checkpoints(nats_url: &str, replica: &str, log: &Path) {
    let lines: Vec<String> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""type":"checkpoint""#))
        .map(str::to_owned)
        .collect();
    assert!(!lines.is_empty(), "{} has checkpoints", log.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats_url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "VIGIL".to_owned(),
            subjects: vec!["vigil.>".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
        for line in lines {
            js.publish(format!("vigil.audit.{replica}"), line.into_bytes().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });
}

/// Replica logs (`[cluster] replica`) name their replica in every
/// checkpoint; `vigil audit verify` takes them as a set: one line per log
/// and a summary; with `--nats` each replica's newest published checkpoint
/// must be in its log, which catches a log cut back under a genuinely
/// signed head saved before the cut (which nothing else catches); two logs
/// of one replica fail; a replica that published but whose log is missing
/// is warned about; one log alone reports as it always did.
#[test]
fn replica_logs_verified_as_a_set_against_published_checkpoints() {
    let nats = vigil_test_support::nats::start_nats();
    let keys = tempfile::tempdir().unwrap();
    let mut pubkeys = Vec::new();
    let mut logs = Vec::new();
    let mut dirs = Vec::new();
    for replica in ["a", "b", "c"] {
        let (key, public) = keygen(keys.path(), &format!("{replica}.key"));
        let wd = Workdir::new();
        let out = run(&wd, &replica_config(&key, &nats.url, replica));
        assert!(out.status.success(), "{}", stderr(&out));
        let records = wd.audit_records();
        let checkpoints: Vec<&Value> = records
            .iter()
            .filter(|r| r["type"] == "checkpoint")
            .collect();
        assert!(checkpoints.len() >= 2, "{records:#?}");
        assert!(checkpoints.iter().all(|c| c["replica"] == replica));
        assert!(
            records
                .iter()
                .filter(|r| r["type"] != "checkpoint")
                .all(|r| r.get("replica").is_none())
        );
        pubkeys.push(public);
        logs.push(wd.audit_path());
        dirs.push((wd, key));
    }
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let mut key_args: Vec<String> = Vec::new();
    for p in &pubkeys {
        key_args.extend(["--pubkey".to_owned(), path(p)]);
    }
    let verify_set = |files: &[&PathBuf], extra: &[&str]| {
        let mut args: Vec<String> = vec!["audit".into(), "verify".into()];
        args.extend(files.iter().map(|f| path(f)));
        args.extend(key_args.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        vigil(&args, keys.path())
    };

    // Replica b runs again on other events; keep a copy of its log and
    // its signed head as they were before.
    let (b_dir, b_key) = &dirs[1];
    let before_log = std::fs::read(&logs[1]).unwrap();
    let before_head = std::fs::read(head_path(b_dir)).unwrap();
    let out = b_dir.run(
        VIGIL,
        &replica_config(b_key, &nats.url, "b"),
        &fixture("protected-push-bombing.jsonl"),
        &b_dir.path().join("xdg-cache"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(&logs[1]).unwrap().len() > before_log.len());
    for (replica, log) in ["a", "b", "c"].iter().zip(&logs) {
        publish_checkpoints(&nats.url, replica, log);
    }

    // The set verifies, each log under its replica's name.
    let all: Vec<&PathBuf> = logs.iter().collect();
    let out = verify_set(&all, &["--nats", &nats.url]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for (replica, log) in ["a", "b", "c"].iter().zip(&logs) {
        assert!(
            text.contains(&format!("{}: replica {replica}: ok, ", log.display())),
            "{text}"
        );
        assert!(
            text.contains(&format!("the newest checkpoint {replica} published (seq ")),
            "{text}"
        );
    }
    assert!(text.contains("every signature verified"), "{text}");
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("set ok: 3 logs: 3 ok, 0 failed"),
        "{text}"
    );

    // Without c's log: a warning, not a failure.
    let out = verify_set(&all[..2], &["--nats", &nats.url]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("warning: replica c published checkpoints to stream VIGIL")
            && text.contains("but its log was not given"),
        "{text}"
    );

    // Cut b back to its first run, with the head signed then: alone, with
    // the key, it verifies (a genuinely signed, older history)...
    std::fs::write(&logs[1], &before_log).unwrap();
    std::fs::write(head_path(b_dir), &before_head).unwrap();
    let out = verify(b_dir, &["--pubkey", pubkeys[1].to_str().unwrap()]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("ok: chain intact"),
        "{}",
        stdout(&out)
    );
    // ...but b published a checkpoint past its end.
    let out = verify_set(&all, &["--nats", &nats.url]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let b_line = text
        .lines()
        .find(|l| l.starts_with(&format!("{}:", logs[1].display())))
        .unwrap();
    assert!(
        b_line.contains(": replica b: FAILED: replica b published checkpoint seq ")
            && b_line.contains("(on vigil.audit.b) but the log ends at seq ")
            && b_line.contains("records were cut from the log"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}: replica a: ok, ", logs[0].display())),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("set FAILED: 3 logs: 2 ok, 1 failed"),
        "{text}"
    );
    // Without --nats the set cannot tell.
    let out = verify_set(&all, &[]);
    assert!(out.status.success(), "{}", stdout(&out));

    // Two logs of one replica: a copy (or a fork).
    let copy = Workdir::new();
    std::fs::copy(&logs[0], copy.audit_path()).unwrap();
    std::fs::copy(head_path(&dirs[0].0), head_path(&copy)).unwrap();
    let copied = copy.audit_path();
    let out = verify_set(&[&logs[0], &copied, &logs[2]], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "FAILED: replica a is named by 2 logs ({}, {})",
            logs[0].display(),
            copied.display()
        )),
        "{text}"
    );
    assert!(
        text.lines().last().unwrap().starts_with(
            "set FAILED: 3 logs: 3 ok, 0 failed; replicas named by more than one log: 1"
        ),
        "{text}"
    );

    // A log of no cluster is unnamed; a witness file serves one log only.
    let plain = Workdir::new();
    let plain_body = format!("[audit]\nsigning_key_file = {:?}\n", dirs[0].1);
    let out = run(&plain, &plain_body);
    assert!(out.status.success(), "{}", stderr(&out));
    let plain_log = plain.audit_path();
    let out = verify_set(&[&logs[0], &plain_log], &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("{}: replica (unnamed): ok, ", plain_log.display())),
        "{}",
        stdout(&out)
    );
    let witness = keys.path().join("witness.jsonl");
    std::fs::write(&witness, "").unwrap();
    let out = verify_set(
        &[&logs[0], &logs[2]],
        &["--witness", witness.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("--witness compares one log with its own witness file"),
        "{}",
        stderr(&out)
    );
}

/// A state database that fails `PRAGMA quick_check` (here: not a database
/// at all) stops `vigil run`, naming the file and what to do.
#[test]
fn damaged_state_database_stops_the_start() {
    let wd = Workdir::new();
    let state = wd.path().join("vigil-state.db");
    let mut garbage = b"SQLite format 3\0".to_vec();
    garbage.extend(std::iter::repeat_n(0x5a_u8, 16 * 1024));
    std::fs::write(&state, &garbage).unwrap();
    let out = run(&wd, "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(state.to_str().unwrap()), "{err}");
    assert!(
        err.contains("integrity check") && err.contains("restore it from a"),
        "{err}"
    );
    assert_eq!(std::fs::read(&state).unwrap(), garbage, "left as evidence");
}

/// A cache directory writable by others is not used: the run succeeds,
/// warns naming the directory, and no compiled code is written there.
#[test]
fn cache_dir_writable_by_others_is_not_used() {
    let wd = Workdir::new();
    let cache = wd.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(&wd, "");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("compiled-component cache disabled")
            && err.contains("writable by group or others"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);

    // Owned by another user (root only can arrange that).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&cache, Some(54321), None).unwrap();
        let out = run(&wd, "");
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("owned by uid 54321"),
            "{}",
            stderr(&out)
        );
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
    } else {
        eprintln!("skipped the ownership case: chown to another uid needs root");
    }
}

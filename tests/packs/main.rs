//! Vendor rule packs end to end, with the real `vigil` binary and real
//! components: a publisher builds and signs a pack; an operator verifies,
//! installs (with the capability disclosure, and no grants), grants,
//! upgrades and rolls back; tampering, unsigned and untrusted packs are
//! refused at install and at load; packs travel as `.vpack` files and
//! through a real OCI registry (Debian's `docker-registry`, started on
//! loopback); a running service reloads rules and configuration without
//! a restart, under HTTP load, and keeps the old rules when an upgrade is
//! broken.
//!
//! The components are the built-in pack's, taken out of the binary with
//! `vigil pack build --builtin`, and the hostile guest `guest-forbidden`
//! (one finding per event, which makes "judged exactly once" countable).

mod registry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use vigil_test_support::process::VigilProcess;
use vigil_test_support::*;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const ADMIN_TOKEN: &str = "admin-token-for-pack-tests";

fn cache_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("packs-xdg-cache")
}

fn run(wd: &Path, args: &[&str]) -> Output {
    vigil(VIGIL, args, wd, &cache_home())
}

/// A path as the `&str` an argument list takes.
fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs and expects success; returns stdout.
fn ok(wd: &Path, args: &[&str]) -> String {
    let out = run(wd, args);
    assert!(
        out.status.success(),
        "vigil {args:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs and expects failure; returns stderr.
fn refused(wd: &Path, args: &[&str]) -> String {
    let out = run(wd, args);
    assert!(
        !out.status.success(),
        "vigil {args:?} succeeded:\n{}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// A publisher's workspace inside `wd`: a key pair and the built-in
/// components to make packs from.
struct Publisher {
    key: PathBuf,
    public: PathBuf,
    components: PathBuf,
}

fn publisher(wd: &Workdir, name: &str) -> Publisher {
    let dir = wd.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    let out = ok(wd.path(), &["pack", "keygen", s(&key)]);
    assert!(out.contains("key id"), "{out}");
    let components = dir.join("builtin");
    ok(
        wd.path(),
        &["pack", "build", "--builtin", "--out", s(&components)],
    );
    Publisher {
        public: PathBuf::from(format!("{}.pub", key.display())),
        key,
        components,
    }
}

impl Publisher {
    /// Builds and signs a pack of `rules` (built-in rule ids, or paths of
    /// components) at `version` into `out` (a directory or .vpack).
    fn pack(&self, wd: &Workdir, name: &str, version: &str, rules: &[&str], out: &Path) {
        let src = wd.path().join(format!("src-{name}-{version}"));
        ok(
            wd.path(),
            &[
                "pack",
                "init",
                s(&src),
                "--name",
                name,
                "--publisher",
                "Acme Security",
            ],
        );
        let toml = src.join("pack.toml");
        let mut text = std::fs::read_to_string(&toml)
            .unwrap()
            .replace("\nversion = \"0.1.0\"", &format!("\nversion = {version:?}"));
        std::fs::write(src.join("docs.md"), "# What it does\n").unwrap();
        for rule in rules {
            let component = if rule.ends_with(".wasm") {
                PathBuf::from(rule)
            } else {
                self.components.join(format!("rules/{rule}.wasm"))
            };
            text.push_str(&format!(
                "\n[[rules]]\ncomponent = {:?}\ndocs = \"docs.md\"\n",
                s(&component)
            ));
        }
        std::fs::write(&toml, text).unwrap();
        let built = ok(wd.path(), &["pack", "build", s(&src), "--out", s(out)]);
        assert!(
            built.contains(&format!("built {name} {version}")),
            "{built}"
        );
        ok(wd.path(), &["pack", "sign", s(out), "--key", s(&self.key)]);
    }
}

/// `vigil.toml` trusting `keys`, without the built-in pack, then `body`.
fn config(wd: &Workdir, keys: &[&Path], body: &str) -> PathBuf {
    wd.config(&config_body(keys, body))
}

fn config_body(keys: &[&Path], body: &str) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("{:?}", s(k))).collect();
    format!(
        "builtin_pack = false\n{body}\n[packs]\ntrusted_keys = [{}]\n",
        keys.join(", ")
    )
}

/// `vigil pack install PACK --config CONFIG`, expected to succeed; stdout.
fn install(wd: &Workdir, pack: &Path, config: &Path) -> String {
    ok(
        wd.path(),
        &["pack", "install", s(pack), "--config", s(config)],
    )
}

fn decisions(wd: &Workdir) -> Vec<String> {
    action_triples(&wd.audit_records())
        .into_iter()
        .map(|(_, _, d)| d)
        .collect()
}

#[test]
fn a_vendor_pack_is_built_signed_verified_installed_with_no_grants_then_granted() {
    let wd = Workdir::new();
    let acme = publisher(&wd, "acme");
    let dist = wd.path().join("dist");
    acme.pack(&wd, "acme-mfa", "1.0.0", &["mfa-push-fatigue"], &dist);

    // The manifest was read from the component, not kept by hand.
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dist.join("manifest.json")).unwrap())
            .unwrap();
    let rule = &manifest["rules"][0];
    assert_eq!(rule["id"], "mfa-push-fatigue");
    assert_eq!(rule["file"], "rules/mfa-push-fatigue.wasm");
    assert_eq!(rule["docs"], "# What it does\n");
    assert_eq!(
        rule["actions"],
        json!(["suspend-user", "revoke-sessions", "escalate"])
    );

    let out = ok(
        wd.path(),
        &["pack", "verify", s(&dist), "--key", s(&acme.public)],
    );
    assert!(out.contains("verified"), "{out}");
    assert!(
        out.contains("may request:   suspend-user, revoke-sessions, escalate"),
        "{out}"
    );

    let cfg = config(&wd, &[&acme.public], "");
    let out = install(&wd, &dist, &cfg);
    assert!(out.contains("installed acme-mfa 1.0.0"), "{out}");
    assert!(
        out.contains("subscribes to:") && out.contains("may request:"),
        "{out}"
    );
    assert!(out.contains("Nothing is granted"), "{out}");
    let listed = ok(wd.path(), &["pack", "list", "--config", s(&cfg)]);
    assert!(
        listed.contains("acme-mfa 1.0.0 (installed: 1.0.0) by Acme Security, signed by key"),
        "{listed}"
    );

    // Installed and not listed in [[rules]]: it judges, audit-only, with
    // no grants: nothing is accepted.
    let events = fixture("push-bombing.jsonl");
    let run_events = |wd: &Workdir| {
        ok(
            wd.path(),
            &["run", "--config", s(&cfg), "--events", s(&events)],
        )
    };
    let out = run_events(&wd);
    assert!(out.contains("findings: 1"), "{out}");
    let d = decisions(&wd);
    assert!(
        !d.is_empty() && d.iter().all(|d| d != "accepted" && d != "dry-run"),
        "{d:?}"
    );
    let finding = &wd.records_of("finding")[0];
    assert_eq!(finding["rule"], "mfa-push-fatigue");

    // The operator grants it: now it acts.
    // A new log for the second run (the log and its head file), and below
    // a new store.
    std::fs::remove_file(wd.audit_path()).unwrap();
    std::fs::remove_file(format!("{}.head", wd.audit_path().display())).unwrap();
    let cfg = config(
        &wd,
        &[&acme.public],
        // A fresh store: the first run's rule judged these events already.
        &format!("state_path = \"second-run.db\"\n{GRANT_PUSH_FATIGUE}"),
    );
    run_events(&wd);
    assert_eq!(decisions(&wd), vec!["accepted", "accepted"]);
    let rules = ok(wd.path(), &["rules", "list", "--config", s(&cfg)]);
    assert!(
        rules.contains("pack:acme-mfa@1.0.0/mfa-push-fatigue"),
        "{rules}"
    );

    // A [[rules]] entry naming a pack or rule that is not installed.
    let cfg = config(
        &wd,
        &[&acme.public],
        "[[rules]]\npack = \"acme-mfa/nope\"\n",
    );
    let err = refused(wd.path(), &["rules", "list", "--config", s(&cfg)]);
    assert!(
        err.contains("pack acme-mfa 1.0.0 has no rule \"nope\""),
        "{err}"
    );
}

#[test]
fn tampered_unsigned_and_untrusted_packs_are_refused_at_install_and_at_load() {
    let wd = Workdir::new();
    let acme = publisher(&wd, "acme");
    let other = publisher(&wd, "other");
    let dist = wd.path().join("dist");
    acme.pack(&wd, "acme-mfa", "1.0.0", &["mfa-push-fatigue"], &dist);
    let trusting_acme = config(&wd, &[&acme.public], "");
    let cfg = s(&trusting_acme);
    let refused_install =
        |pack: &Path, cfg: &str| refused(wd.path(), &["pack", "install", s(pack), "--config", cfg]);

    // One byte of the component.
    let tampered = wd.path().join("tampered");
    copy_dir(&dist, &tampered);
    flip_byte(&tampered.join("rules/mfa-push-fatigue.wasm"), 100);
    let err = refused_install(&tampered, cfg);
    assert!(
        err.contains("rules/mfa-push-fatigue.wasm has sha256") && err.contains("altered"),
        "{err}"
    );
    // The manifest (a disclosed action removed).
    let tampered = wd.path().join("tampered-manifest");
    copy_dir(&dist, &tampered);
    let m = tampered.join("manifest.json");
    let edited = std::fs::read_to_string(&m)
        .unwrap()
        .replace("\"revoke-sessions\",", "");
    std::fs::write(&m, edited).unwrap();
    assert!(refused_install(&tampered, cfg).contains("altered after signing"));
    // Manifests the vendor signed that do not say what runs: one hides an
    // action the component may request, one names another contract. The
    // disclosure must be what runs.
    for (name, from, to, want) in [
        (
            "hiding",
            "\"revoke-sessions\",",
            "",
            "may request revoke-sessions which the manifest does not disclose",
        ),
        (
            "wrong-contract",
            "\"wit\": \"0.3.0\"",
            "\"wit\": \"0.2.0\"",
            "imports contract 0.3.0; the manifest says 0.2.0",
        ),
    ] {
        let lying = wd.path().join(name);
        copy_dir(&dist, &lying);
        let m = lying.join("manifest.json");
        let text = std::fs::read_to_string(&m).unwrap();
        assert!(text.contains(from), "{text}");
        std::fs::write(&m, text.replace(from, to)).unwrap();
        ok(
            wd.path(),
            &["pack", "sign", s(&lying), "--key", s(&acme.key)],
        );
        let err = refused_install(&lying, cfg);
        assert!(err.contains(want), "{err}");
    }
    // Unsigned.
    let unsigned = wd.path().join("unsigned");
    copy_dir(&dist, &unsigned);
    std::fs::remove_file(unsigned.join("manifest.sig")).unwrap();
    assert!(refused_install(&unsigned, cfg).contains("is not signed"));
    // Signed by a key the operator does not trust.
    let trusting_other = config(&wd, &[&other.public], "");
    let err = refused_install(&dist, s(&trusting_other));
    assert!(err.contains("which is not trusted"), "{err}");
    // Nothing was installed by any of these.
    assert!(!wd.path().join("packs/acme-mfa").exists());

    // Rotation: the operator trusts the old and the new key.
    let both = config(&wd, &[&other.public, &acme.public], "");
    install(&wd, &dist, &both);
    // Re-signed with the new key: the same version installs again.
    ok(
        wd.path(),
        &["pack", "sign", s(&dist), "--key", s(&other.key)],
    );
    install(&wd, &dist, &both);
    ok(wd.path(), &["rules", "list", "--config", s(&both)]);
    // The old key retired: the pack, now signed by the new key, loads.
    let new_only = config(&wd, &[&other.public], "");
    ok(wd.path(), &["rules", "list", "--config", s(&new_only)]);

    // At load: the installed component altered on disk stops the start.
    flip_byte(
        &wd.path()
            .join("packs/acme-mfa/1.0.0/rules/mfa-push-fatigue.wasm"),
        100,
    );
    let events = fixture("push-bombing.jsonl");
    let err = refused(
        wd.path(),
        &["run", "--config", s(&new_only), "--events", s(&events)],
    );
    assert!(err.contains("was altered"), "{err}");
    assert!(!wd.audit_path().exists() || wd.records_of("finding").is_empty());
    let listed = ok(wd.path(), &["pack", "list", "--config", s(&new_only)]);
    assert!(listed.contains("REFUSED"), "{listed}");

    // allow_unsigned admits an unsigned pack, loudly; never a bad one.
    let lax =
        wd.config("builtin_pack = false\n[packs]\nallow_unsigned = true\ndir = \"lax-packs\"\n");
    let out = run(
        wd.path(),
        &["pack", "install", s(&unsigned), "--config", s(&lax)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("NOT SIGNED"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("UNSIGNED"),
        "{}",
        text(&out.stdout)
    );
    let err = refused_install(&dist, s(&lax));
    assert!(err.contains("not trusted"), "{err}");
}

#[test]
fn a_vpack_file_upgrades_with_a_diff_and_rolls_back() {
    let wd = Workdir::new();
    let acme = publisher(&wd, "acme");
    let v1 = wd.path().join("acme-1.0.0.vpack");
    let v2 = wd.path().join("acme-1.1.0.vpack");
    acme.pack(&wd, "acme-mfa", "1.0.0", &["mfa-push-fatigue"], &v1);
    acme.pack(
        &wd,
        "acme-mfa",
        "1.1.0",
        &["mfa-push-fatigue", "impossible-travel"],
        &v2,
    );
    let cfg = config(&wd, &[&acme.public], "");
    let cfg = s(&cfg);
    ok(wd.path(), &["pack", "install", s(&v1), "--config", cfg]);
    let out = ok(wd.path(), &["pack", "install", s(&v2), "--config", cfg]);
    assert!(out.contains("upgraded acme-mfa 1.0.0 -> 1.1.0"), "{out}");
    assert!(out.contains("+ rule impossible-travel"), "{out}");
    let listed = ok(wd.path(), &["pack", "list", "--config", cfg]);
    assert!(
        listed.contains("acme-mfa 1.1.0 (installed: 1.0.0, 1.1.0)"),
        "{listed}"
    );
    let rules = ok(wd.path(), &["rules", "list", "--config", cfg]);
    assert!(rules.contains("impossible-travel"), "{rules}");

    let out = ok(
        wd.path(),
        &["pack", "rollback", "acme-mfa", "--config", cfg],
    );
    assert!(out.contains("rolled back from 1.1.0 to 1.0.0"), "{out}");
    let rules = ok(wd.path(), &["rules", "list", "--config", cfg]);
    assert!(!rules.contains("impossible-travel"), "{rules}");
    let err = refused(
        wd.path(),
        &[
            "pack",
            "remove",
            "acme-mfa",
            "--version",
            "1.0.0",
            "--config",
            cfg,
        ],
    );
    assert!(err.contains("current version"), "{err}");
    ok(
        wd.path(),
        &[
            "pack",
            "remove",
            "acme-mfa",
            "--version",
            "1.1.0",
            "--config",
            cfg,
        ],
    );
    ok(wd.path(), &["pack", "remove", "acme-mfa", "--config", cfg]);
    let listed = ok(wd.path(), &["pack", "list", "--config", cfg]);
    assert!(!listed.contains("acme-mfa"), "{listed}");
}

#[test]
fn push_pull_and_install_through_a_real_registry_by_tag_and_digest() {
    let registry = vigil_test_support::registry::start_registry();
    let wd = Workdir::new();
    let acme = publisher(&wd, "acme");
    let dist = wd.path().join("dist");
    acme.pack(&wd, "acme-mfa", "1.0.0", &["mfa-push-fatigue"], &dist);
    let cfg = wd.config(&format!(
        "builtin_pack = false\n[packs]\ntrusted_keys = [{:?}]\ninsecure_registries = [{:?}]\n",
        s(&acme.public),
        registry.addr
    ));
    let cfg = s(&cfg);

    let tag = format!("{}/acme/mfa:1.0.0", registry.addr);
    let out = ok(
        wd.path(),
        &["pack", "push", s(&dist), &tag, "--config", cfg],
    );
    let digest = out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in {out}"))
        .to_owned();

    // Pulled by tag into a .vpack: the same files as published.
    let pulled = wd.path().join("pulled.vpack");
    ok(
        wd.path(),
        &["pack", "pull", &tag, "--out", s(&pulled), "--config", cfg],
    );
    let out = ok(wd.path(), &["pack", "verify", s(&pulled), "--config", cfg]);
    assert!(out.contains("verified"), "{out}");

    // Installed by digest straight from the registry.
    let pinned = format!("{}/acme/mfa@{digest}", registry.addr);
    let out = ok(wd.path(), &["pack", "install", &pinned, "--config", cfg]);
    assert!(out.contains("installed acme-mfa 1.0.0"), "{out}");
    let rules = ok(wd.path(), &["rules", "list", "--config", cfg]);
    assert!(
        rules.contains("pack:acme-mfa@1.0.0/mfa-push-fatigue"),
        "{rules}"
    );

    // A tampered pack is not even pushed.
    let tampered = wd.path().join("tampered");
    copy_dir(&dist, &tampered);
    flip_byte(&tampered.join("rules/mfa-push-fatigue.wasm"), 100);
    let bad_tag = format!("{}/acme/mfa:1.0.1-bad", registry.addr);
    let err = refused(
        wd.path(),
        &["pack", "push", s(&tampered), &bad_tag, "--config", cfg],
    );
    assert!(err.contains("was altered"), "{err}");
    // One signed by a key the operator does not trust is pulled and
    // refused on install.
    let other = publisher(&wd, "other");
    let foreign = wd.path().join("foreign");
    copy_dir(&dist, &foreign);
    ok(
        wd.path(),
        &["pack", "sign", s(&foreign), "--key", s(&other.key)],
    );
    let foreign_tag = format!("{}/other/mfa:1.0.0", registry.addr);
    ok(
        wd.path(),
        &["pack", "push", s(&foreign), &foreign_tag, "--config", cfg],
    );
    let err = refused(
        wd.path(),
        &["pack", "install", &foreign_tag, "--config", cfg],
    );
    assert!(err.contains("which is not trusted"), "{err}");
    // An unknown tag names the reference.
    let err = refused(
        wd.path(),
        &[
            "pack",
            "install",
            &format!("{}/acme/mfa:9.9.9", registry.addr),
            "--config",
            cfg,
        ],
    );
    assert!(err.contains("acme/mfa:9.9.9"), "{err}");
}

#[test]
fn a_reload_that_protects_an_account_applies_before_the_next_event() {
    let wd = Workdir::new();
    let acme = publisher(&wd, "acme");
    let v1 = wd.path().join("v1");
    acme.pack(&wd, "acme-mfa", "1.0.0", &["mfa-push-fatigue"], &v1);
    let cfg = config(&wd, &[&acme.public], "");
    install(&wd, &v1, &cfg);
    let p = service(&wd, &[&acme.public], GRANT_PUSH_FATIGUE);
    let c = client();

    // The bombed user becomes a protected account and the limits change
    // (applied), and so does max_line_bytes (only a restart applies it).
    service_config(
        &wd,
        &[&acme.public],
        &format!(
            "max_line_bytes = 4096\n{GRANT_PUSH_FATIGUE}[rules.limits]\ndeadline_ms = 40\n[protected]\nids = [\"00upushbomb01\"]\n"
        ),
    );
    let (status, body) = admin_reload(&c, &p);
    assert_eq!(status, StatusCode::OK, "{body}");
    let changed = body["config"].to_string();
    assert!(
        changed.contains("protected") && changed.contains("rules[0].limits"),
        "{body}"
    );
    assert_eq!(body["rules_loaded"], 1, "{body}");
    assert_eq!(body["restart_needed"], json!(["max_line_bytes"]), "{body}");
    // Still needed at the next reload: nothing restarted since.
    let (_, body) = admin_reload(&c, &p);
    assert_eq!(body["config"], json!([]), "{body}");
    assert_eq!(body["restart_needed"], json!(["max_line_bytes"]), "{body}");

    post_events(&c, &p, &push_bombing());
    // Two requests from the rule, and the host's own escalation about the
    // protected account.
    eventually("the rule's requests", &p, || decisions(&wd).len() == 3);
    // The rule still asks; the gate refuses the protected account.
    let actions: Vec<Value> = wd
        .audit_records()
        .into_iter()
        .filter(|r| r["type"] == "action")
        .collect();
    let suspend = actions
        .iter()
        .find(|a| a["action"] == "suspend-user")
        .unwrap();
    assert_eq!(suspend["decision"], "denied", "{suspend}");
    assert!(suspend.to_string().contains("protected"), "{suspend}");
    assert!(
        actions
            .iter()
            .any(|a| a["action"] == "escalate" && a["origin"] == "host"),
        "{actions:?}"
    );
    assert!(
        !wd.audit_records()
            .iter()
            .any(|r| r["type"] == "action-result" && r["target"] == "00upushbomb01"),
        "a protected account was acted on"
    );
}

#[test]
fn a_changed_rule_file_is_reloaded_by_the_watch() {
    let wd = Workdir::new();
    let acme = publisher(&wd, "acme");
    let rule = wd.path().join("rule.wasm");
    std::fs::copy(GUEST_FORBIDDEN, &rule).unwrap();
    let p = service(&wd, &[&acme.public], "[[rules]]\npath = \"rule.wasm\"\n");
    let c = client();
    post_events(&c, &p, &[session_event("before-1")]);
    eventually("the first rule's finding", &p, || {
        !wd.records_of("finding").is_empty()
    });

    // Replaced (atomically, as a deploy would) by another component.
    let tmp = wd.path().join("rule.wasm.new");
    std::fs::copy(acme.components.join("rules/mfa-push-fatigue.wasm"), &tmp).unwrap();
    std::fs::rename(&tmp, &rule).unwrap();
    eventually("the reload", &p, || !reloads(&wd, "applied").is_empty());
    let r = &reloads(&wd, "applied")[0];
    assert_eq!(r["reason"], "file change");
    assert!(r["added"].to_string().contains("mfa-push-fatigue"), "{r}");
    assert!(r["removed"].to_string().contains("guest-forbidden"), "{r}");

    // The new rule judges what comes next; the old one no longer does.
    post_events(&c, &p, &push_bombing());
    eventually("the new rule's finding", &p, || {
        wd.records_of("finding")
            .iter()
            .any(|f| f["rule"] == "mfa-push-fatigue")
    });
    let old_rule = wd
        .records_of("finding")
        .iter()
        .filter(|f| f["rule"] == "guest-forbidden")
        .count();
    assert_eq!(old_rule, 1);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("rules")).unwrap();
    for name in ["manifest.json", "manifest.sig"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    for entry in std::fs::read_dir(from.join("rules")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join("rules").join(entry.file_name())).unwrap();
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

// --- the service: reload without a restart --------------------------------

/// `vigil.toml` for the service: [`config`] with a `[server]` table,
/// replaced atomically (the service's watch must never read half a file).
fn service_config(wd: &Workdir, keys: &[&Path], body: &str) -> PathBuf {
    let body = format!(
        "{body}\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_token_env = \"TEST_ADMIN_TOKEN\"\nreload_watch_secs = 1\n"
    );
    let path = wd.path().join("vigil.toml");
    // As `Workdir::config` writes it.
    let text = format!(
        "audit_path = \"audit.jsonl\"\ncache_dir = \"cache\"\n{}\n",
        config_body(keys, &body)
    );
    let tmp = wd.path().join("vigil.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// A running service in `wd` with `body` and an admin token.
fn service(wd: &Workdir, keys: &[&Path], body: &str) -> VigilProcess {
    let cfg = service_config(wd, keys, body);
    let mut command = Command::new(VIGIL);
    command
        .args(["run", "--config", s(&cfg)])
        .current_dir(wd.path())
        .env("XDG_CACHE_HOME", cache_home())
        .env("VIGIL_LOG", "info")
        .env("TEST_ADMIN_TOKEN", ADMIN_TOKEN);
    VigilProcess::spawn(command, "http")
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

/// Polls `check` until it holds (a generous timeout, never a timing
/// assertion).
fn eventually(what: &str, p: &VigilProcess, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(240);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post_events(c: &Client, p: &VigilProcess, events: &[Value]) {
    let r = c
        .post(p.url("/v1/events"))
        .json(&Value::Array(events.to_vec()))
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "{}",
        r.text().unwrap_or_default()
    );
}

fn admin_reload(c: &Client, p: &VigilProcess) -> (StatusCode, Value) {
    let r = c
        .post(p.url("/v1/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    (r.status(), r.json().unwrap())
}

fn session_event(uuid: &str) -> Value {
    json!({
        "uuid": uuid,
        "published": "2026-03-01T10:00:00.000Z",
        "eventType": "user.session.start",
        "actor": {"id": "00ureload01", "type": "User", "alternateId": "reload@example.com"},
        "outcome": {"result": "SUCCESS"},
        "client": {"ipAddress": "198.51.100.7"}
    })
}

fn push_bombing() -> Vec<Value> {
    std::fs::read_to_string(fixture("push-bombing.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn reloads(wd: &Workdir, result: &str) -> Vec<Value> {
    wd.records_of("reload")
        .into_iter()
        .filter(|r| r["result"] == result)
        .collect()
}

/// Replaces `state.json` of an installed pack as an install would
/// (atomically), pointing it at `version`.
fn point_state_at(wd: &Workdir, pack: &str, version: &str) {
    let path = wd.path().join("packs").join(pack).join("state.json");
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let current = state["current"].clone();
    state["history"].as_array_mut().unwrap().push(current);
    state["current"] = json!(version);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

const GRANT_PUSH_FATIGUE: &str = "mode = \"enforce\"\n[[rules]]\npack = \"acme-mfa/mfa-push-fatigue\"\nallow = [\"suspend-user\", \"escalate\"]\n";

#[test]
fn reloads_under_http_load_judge_every_event_once_and_keep_rule_state() {
    let wd = Workdir::new();
    let acme = publisher(&wd, "acme");
    let rules_v1 = [GUEST_FORBIDDEN, "mfa-push-fatigue"];
    let v1 = wd.path().join("v1");
    let v2 = wd.path().join("v2");
    acme.pack(&wd, "acme-mfa", "1.0.0", &rules_v1, &v1);
    acme.pack(
        &wd,
        "acme-mfa",
        "1.1.0",
        &[GUEST_FORBIDDEN, "mfa-push-fatigue", "impossible-travel"],
        &v2,
    );
    let cfg = config(&wd, &[&acme.public], "");
    install(&wd, &v1, &cfg);
    let p = service(&wd, &[&acme.public], GRANT_PUSH_FATIGUE);
    let c = client();

    // A push-bombing burst that straddles the reloads: the first half now.
    let bombing = push_bombing();
    post_events(&c, &p, &bombing[..4]);

    // Load: 600 events in deliveries of 6, from another thread.
    const DELIVERIES: usize = 100;
    let sender = {
        let (c, url) = (client(), p.url("/v1/events"));
        std::thread::spawn(move || {
            for d in 0..DELIVERIES {
                let events: Vec<Value> = (0..6)
                    .map(|i| session_event(&format!("load-{d}-{i}")))
                    .collect();
                let r = c.post(&url).json(&Value::Array(events)).send().unwrap();
                assert_eq!(r.status(), StatusCode::ACCEPTED);
            }
        })
    };
    // Meanwhile: an admin reload with a changed grant, a SIGHUP, an
    // upgrade picked up by the watch, and a config edit picked up by it.
    service_config(
        &wd,
        &[&acme.public],
        &GRANT_PUSH_FATIGUE.replace("enforce", "audit-only"),
    );
    let (status, body) = admin_reload(&c, &p);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "applied", "{body}");
    p.sighup();
    install(&wd, &v2, &cfg);
    eventually("the upgrade to be loaded", &p, || {
        reloads(&wd, "applied")
            .iter()
            .any(|r| r["added"].to_string().contains("impossible-travel"))
    });
    sender.join().unwrap();
    // The second half of the burst, after every reload.
    post_events(&c, &p, &bombing[4..]);

    eventually("every event judged", &p, || {
        wd.records_of("finding")
            .iter()
            .filter(|f| f["rule"] == "guest-forbidden")
            .count()
            >= DELIVERIES * 6 + bombing.len()
    });
    // Every event judged exactly once by the rule that saw them all.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for f in wd
        .records_of("finding")
        .iter()
        .filter(|f| f["rule"] == "guest-forbidden")
    {
        *seen
            .entry(f["event_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), DELIVERIES * 6 + bombing.len());
    assert!(seen.values().all(|n| *n == 1), "judged twice: {seen:?}");
    // The burst was caught once, across the reloads: the rule kept its
    // count.
    eventually("the push-bombing finding", &p, || {
        wd.records_of("finding")
            .iter()
            .any(|f| f["rule"] == "mfa-push-fatigue")
    });
    let bomb: Vec<Value> = wd
        .records_of("finding")
        .into_iter()
        .filter(|f| f["rule"] == "mfa-push-fatigue")
        .collect();
    assert_eq!(bomb.len(), 1, "{bomb:?}");
    assert_eq!(bomb[0]["subject"], "00upushbomb01");

    // Each reload is audited with what it changed.
    let applied = reloads(&wd, "applied");
    assert!(applied.len() >= 3, "{applied:?}");
    // The edit (enforce -> audit-only) reached the rule, by the admin
    // reload or the watch, whichever read it first.
    assert!(
        applied.iter().any(|r| r["grants"]
            .to_string()
            .contains("mfa-push-fatigue: enforce")),
        "{applied:?}"
    );
    assert!(
        applied.iter().any(|r| r["reason"] == "admin"),
        "{applied:?}"
    );
    assert!(
        applied.iter().any(|r| r["reason"] == "SIGHUP"),
        "{applied:?}"
    );
    assert!(reloads(&wd, "failed").is_empty());
    let metrics = c
        .get(p.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("vigil_reloads_total{result=\"applied\"}"),
        "{metrics}"
    );
}

#[test]
fn a_broken_upgrade_leaves_the_old_rules_enforcing() {
    let wd = Workdir::new();
    let acme = publisher(&wd, "acme");
    let v1 = wd.path().join("v1");
    let v2 = wd.path().join("v2");
    acme.pack(&wd, "acme-mfa", "1.0.0", &["mfa-push-fatigue"], &v1);
    acme.pack(&wd, "acme-mfa", "1.1.0", &["mfa-push-fatigue"], &v2);
    let cfg = config(&wd, &[&acme.public], "");
    install(&wd, &v1, &cfg);
    let p = service(&wd, &[&acme.public], GRANT_PUSH_FATIGUE);
    let c = client();

    // v1.1.0 lands in the packs directory with one component byte
    // altered, and becomes current: the watch reloads and refuses it.
    copy_dir(&v2, &wd.path().join("packs/acme-mfa/1.1.0"));
    flip_byte(
        &wd.path()
            .join("packs/acme-mfa/1.1.0/rules/mfa-push-fatigue.wasm"),
        200,
    );
    point_state_at(&wd, "acme-mfa", "1.1.0");
    eventually("the refused reload", &p, || {
        !reloads(&wd, "failed").is_empty()
    });
    let failed = &reloads(&wd, "failed")[0];
    assert_eq!(failed["reason"], "file change");
    assert!(
        failed["error"].as_str().unwrap().contains("was altered"),
        "{failed}"
    );
    // Asked again through the admin API: 422, the same reason.
    let (status, body) = admin_reload(&c, &p);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("was altered"),
        "{body}"
    );

    // The old rule still enforces.
    post_events(&c, &p, &push_bombing());
    eventually("the old rule acting", &p, || {
        wd.audit_records()
            .iter()
            .any(|r| r["type"] == "action-result" && r["decision"] == "executed")
    });
    let finding = &wd.records_of("finding")[0];
    assert_eq!(finding["rule"], "mfa-push-fatigue");
    let rules: Value = c
        .get(p.url("/v1/admin/rules"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        rules["rules"][0]["origin"], "pack:acme-mfa@1.0.0/mfa-push-fatigue",
        "{rules}"
    );
    let metrics = c
        .get(p.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("vigil_reloads_total{result=\"failed\"} 2"),
        "{metrics}"
    );

    // Rolled back: the watch reloads and the refusal is over.
    ok(
        wd.path(),
        &["pack", "rollback", "acme-mfa", "--config", s(&cfg)],
    );
    eventually("the rollback reload", &p, || {
        !reloads(&wd, "applied").is_empty()
    });
}

//! Baseline drift: how an identity provider's current MFA configuration
//! differs from the approved snapshot, one sentence per difference, each
//! marked when it *weakens* MFA.
//!
//! Objects are matched by kind and id, Okta rules by id within their policy.
//! The fields below are read for what they mean; any other field that
//! differs gets one neutral sentence per top-level key ("policy 'X' changed
//! /description"), so nothing changes silently. Missing, null, `[]` and
//! `{}` all mean "nothing".
//!
//! # What weakens
//!
//! A difference weakens MFA when, on its own, it lets some sign-in through
//! with less than the approved configuration demanded:
//!
//! - what demanded MFA stops being in force (deleted, deactivated, disabled,
//!   report-only), or what does not demand it starts (an Okta sign-on or
//!   access policy or rule added or activated without MFA);
//! - an action asks for less: Okta `requireFactor` off, `factorMode` 2FA →
//!   1FA, DENY → ALLOW, MFA prompted or re-authentication asked less often,
//!   a required possession factor (or a REQUIRED property of it) dropped,
//!   `enroll.self` → NEVER, a strong authenticator no longer required or
//!   allowed at enrollment, a weak one newly allowed; Entra `mfa`, `block`
//!   or the authentication strength dropped, AND → OR, a grant control added
//!   as an alternative under OR;
//! - the scope moves the wrong way: an Okta rule that requires MFA covers
//!   fewer people or networks, or one that does not covers more (a policy
//!   likewise, judged by its active rules); an Entra CA policy covers fewer
//!   users, groups, roles, applications, locations, client app types,
//!   platforms or risk levels;
//! - a weak factor (Okta phone, email, security question; Entra SMS, voice,
//!   email) becomes usable, or a strong one (Okta Verify, FIDO2, …) stops.
//!
//! # Blind spots
//!
//! Each object is judged alone, from its own JSON:
//! - order is reported, never judged: a rule or policy moved above a
//!   stricter one can weaken sign-in in effect;
//! - referenced objects are not followed: a group gaining members, a network
//!   zone or named location widened, an authentication strength redefined
//!   or swapped for another (only its id is compared);
//! - other fields are neutral even when they weaken: session lifetimes,
//!   Entra sign-in frequency, device, risk-score and authentication-context
//!   conditions, Okta `AUTH_METHOD_CHAIN` methods and authenticator
//!   `allowedFor`, Classic-engine `settings.factors`, the targets of Entra
//!   authentication methods;
//! - an Okta policy without active rules in the snapshot counts as
//!   requiring MFA; an Okta rule with no people included applies to everyone.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Display;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::baseline::{ObjectKind, PolicyObject, PolicyRule};

/// One difference between the approved and the current configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ObjectKind,
    pub object_id: String,
    pub object_name: String,
    /// The Okta policy rule the change is in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// One sentence: "policy 'Default Sign-On' rule 'Catch-all' no longer requires MFA".
    pub summary: String,
    /// Whether this difference weakens MFA relative to the approved one.
    pub weakens: bool,
}

/// Longest value (name, id, setting, path) quoted in a sentence.
const MAX_QUOTE: usize = 80;
/// Most ids or paths listed in one sentence.
const MAX_LISTED: usize = 10;

/// Okta authenticators weaker than the rest: phishable, SIM-swappable or
/// guessable.
const WEAK_OKTA_KEYS: [&str; 3] = ["phone_number", "security_question", "email"];
const WEAK_ENTRA_METHODS: [&str; 3] = ["Sms", "Voice", "Email"];
/// Entra methods whose loss pushes users to weaker ones (a temporary access
/// pass is neither strong nor weak: it is for onboarding and recovery).
const STRONG_ENTRA_METHODS: [&str; 5] = [
    "MicrosoftAuthenticator",
    "Fido2",
    "X509Certificate",
    "SoftwareOath",
    "HardwareOath",
];
const PLATFORMS: [&str; 6] = [
    "android",
    "iOS",
    "windows",
    "windowsPhone",
    "macOS",
    "linux",
];

/// Every difference from `approved` to `current` (objects matched by kind
/// and id), weakening ones first, then in approved order then new objects.
pub fn diff(approved: &[PolicyObject], current: &[PolicyObject]) -> Vec<Change> {
    let key = |o: &PolicyObject| (o.kind, o.id.clone());
    let mut now = HashMap::new();
    for object in current {
        now.entry(key(object)).or_insert(object);
    }
    let before: HashSet<_> = approved.iter().map(key).collect();
    // A duplicated id is compared once, as the first object with it.
    let mut seen = HashSet::new();
    let mut changes = Vec::new();
    for object in approved.iter().filter(|o| seen.insert(key(o))) {
        changes.extend(diff_object(Some(object), now.get(&key(object)).copied()));
    }
    let new = |o: &&PolicyObject| !before.contains(&key(o)) && seen.insert(key(o));
    for object in current.iter().filter(new) {
        changes.extend(diff_object(None, Some(object)));
    }
    // Stable: each group keeps the order above.
    changes.sort_by_key(|change| !change.weakens);
    changes
}

/// The differences of one object (`None` = absent on that side), in the
/// order its fields are read. Both `None` → empty.
pub fn diff_object(approved: Option<&PolicyObject>, current: Option<&PolicyObject>) -> Vec<Change> {
    match (approved, current) {
        (None, None) => Vec::new(),
        (Some(a), None) => vec![deleted(a)],
        (None, Some(c)) => vec![added(c)],
        (Some(a), Some(c)) if a.kind != c.kind => vec![deleted(a), added(c)],
        (Some(a), Some(c)) => changed(a, c),
    }
}

/// Whether an Okta policy rule body requires a second factor. Sign-on rules:
/// `actions.signon.requireFactor` or access DENY; access policy rules:
/// `factorMode` "2FA" or access DENY; other rules (enrollment, say) ask
/// nothing of sign-in, so count as requiring it.
pub fn okta_rule_requires_mfa(rule_body: &Value) -> bool {
    let field = |pointer| text(rule_body, pointer);
    let sign_on = || {
        is_deny(field("/actions/signon/access")) || flag(rule_body, "/actions/signon/requireFactor")
    };
    let access = || {
        is_deny(field("/actions/appSignOn/access"))
            || field("/actions/appSignOn/verificationMethod/factorMode").eq_ignore_ascii_case("2FA")
    };
    // Without a type, the action block tells which kind of rule it is.
    let has = |block| at(rule_body, block).is_some();
    match field("/type").to_ascii_uppercase().as_str() {
        "SIGN_ON" | "OKTA_SIGN_ON" => sign_on(),
        "ACCESS_POLICY" => access(),
        "" if has("/actions/signon") => sign_on(),
        "" if has("/actions/appSignOn") => access(),
        _ => true,
    }
}

/// Whether an enabled Entra CA policy body demands MFA: `state` "enabled"
/// and `mfa` among its built-in grant controls or an authentication
/// strength set.
pub fn entra_policy_requires_mfa(body: &Value) -> bool {
    let controls = strings(body, "/grantControls/builtInControls");
    is_enabled(body) && (contains_ci(&controls, "mfa") || strength(body).is_some())
}

/// The change list as lines for a terminal: "- [weakens] summary" /
/// "- summary". Empty list → "no changes".
pub fn describe(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no changes".to_owned();
    }
    let line = |c: &Change| {
        let mark = if c.weakens { "[weakens] " } else { "" };
        format!("- {mark}{}", c.summary)
    };
    changes.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// Collects the sentences about one object, or one rule of an Okta policy;
/// each starts with its subject ("policy 'X' rule 'Y'"), named as approved.
struct Out<'a> {
    kind: ObjectKind,
    object_id: &'a str,
    object_name: &'a str,
    rule: Option<&'a PolicyRule>,
    changes: Vec<Change>,
}

impl<'a> Out<'a> {
    fn object(object: &'a PolicyObject) -> Self {
        let (kind, object_id, object_name) = (object.kind, &object.id, &object.name);
        let changes = Vec::new();
        Out {
            kind,
            object_id,
            object_name,
            rule: None,
            changes,
        }
    }

    fn rule(&self, rule: &'a PolicyRule) -> Self {
        Out {
            rule: Some(rule),
            changes: Vec::new(),
            ..*self
        }
    }

    fn subject(&self) -> String {
        let object = format!("{} '{}'", self.kind.noun(), short(self.object_name));
        match self.rule {
            Some(rule) => format!("{object} rule '{}'", short(&rule.name)),
            None => object,
        }
    }

    fn change(&self, text: impl Display, weakens: bool) -> Change {
        self.sentence(format!("{} {text}", self.subject()), weakens)
    }

    /// "weaker authenticator 'Phone' …": the subject itself is the weakness.
    fn weaker(&self, text: impl Display) -> Change {
        self.sentence(format!("weaker {} {text}", self.subject()), true)
    }

    fn sentence(&self, summary: String, weakens: bool) -> Change {
        Change {
            kind: self.kind,
            object_id: self.object_id.to_owned(),
            object_name: self.object_name.to_owned(),
            rule_id: self.rule.map(|r| r.id.clone()),
            rule_name: self.rule.map(|r| r.name.clone()),
            summary,
            weakens,
        }
    }

    fn push(&mut self, text: impl Display, weakens: bool) {
        let change = self.change(text, weakens);
        self.changes.push(change);
    }

    /// "`what` (old → new)".
    fn values(&mut self, what: &str, old: &str, new: &str, weakens: bool) {
        let text = format!("{what} ({} → {})", or_none(old), or_none(new));
        self.push(text, weakens);
    }

    /// "`verb` group a, b", unless `ids` is empty.
    fn ids(&mut self, verb: &str, noun: &str, ids: &BTreeSet<String>, weakens: bool) {
        if !ids.is_empty() {
            self.push(format!("{verb} {}", nouns(noun, ids)), weakens);
        }
    }

    fn renamed(&mut self, old: &str, new: &str) {
        if old != new {
            self.push(format!("was renamed to '{}'", short(new)), false);
        }
    }
}

// Deleting what was not in force, or only allowed a weak factor, changes no
// sign-in.
fn deleted(object: &PolicyObject) -> Change {
    let body = &object.body;
    let weakens = match object.kind {
        ObjectKind::OktaPolicy => is_active(body) && enforces(object),
        ObjectKind::OktaAuthenticator => is_active(body) && !is_weak_okta_key(text(body, "/key")),
        // A zone in use cannot be deleted; one that is gone changes no rule.
        ObjectKind::OktaNetworkZone => false,
        ObjectKind::EntraCaPolicy => is_enabled(body),
        ObjectKind::EntraAuthMethodsPolicy => true,
    };
    Out::object(object).change("was deleted", weakens)
}

// A new CA policy only adds requirements (Entra enforces them all), so only
// Okta objects can weaken by appearing.
fn added(object: &PolicyObject) -> Change {
    let out = Out::object(object);
    let body = &object.body;
    let lenient = if is_active(body) {
        lenient_rules(object)
    } else {
        Vec::new()
    };
    match object.kind {
        ObjectKind::OktaPolicy if !lenient.is_empty() => {
            let rules = nouns("rule", lenient.iter().map(|name| format!("'{name}'")));
            out.change(format!("was added without requiring MFA in {rules}"), true)
        }
        ObjectKind::OktaAuthenticator
            if is_active(body) && is_weak_okta_key(text(body, "/key")) =>
        {
            out.weaker("was added")
        }
        _ => out.change("was added", false),
    }
}

fn changed(a: &PolicyObject, c: &PolicyObject) -> Vec<Change> {
    let mut out = Out::object(a);
    out.renamed(&a.name, &c.name);
    let (ab, cb) = (&a.body, &c.body);
    match a.kind {
        ObjectKind::OktaPolicy => okta_policy(&mut out, a, c),
        ObjectKind::OktaAuthenticator => okta_authenticator(&mut out, ab, cb),
        ObjectKind::OktaNetworkZone => okta_zone(&mut out, ab, cb),
        ObjectKind::EntraCaPolicy => entra_ca_policy(&mut out, ab, cb),
        ObjectKind::EntraAuthMethodsPolicy => entra_methods_policy(&mut out, ab, cb),
    }
    out.changes
}

// ---- Okta policies and rules ----

/// Which way a change of scope (people, networks, being in force at all)
/// weakens: narrowing what demands MFA, or widening what does not.
#[derive(Clone, Copy)]
struct Sides {
    narrowing: bool,
    widening: bool,
}

impl Sides {
    fn weakens(self, widened: bool) -> bool {
        if widened {
            self.widening
        } else {
            self.narrowing
        }
    }
}

/// Whether some active rule of an Okta policy requires MFA (or none is
/// known: then assume one does).
fn enforces(policy: &PolicyObject) -> bool {
    let mut active = policy
        .rules
        .iter()
        .filter(|r| is_active(&r.body))
        .peekable();
    active.peek().is_none() || active.any(|r| okta_rule_requires_mfa(&r.body))
}

/// The names of an Okta policy's active rules that do not require MFA.
fn lenient_rules(policy: &PolicyObject) -> Vec<String> {
    let lenient = |r: &&PolicyRule| is_active(&r.body) && !okta_rule_requires_mfa(&r.body);
    policy
        .rules
        .iter()
        .filter(lenient)
        .map(|r| short(&r.name))
        .collect()
}

const OKTA_PEOPLE: [(&str, &str); 2] = [
    ("group", "/conditions/people/groups"),
    ("user", "/conditions/people/users"),
];
/// The Okta fields read for policies and rules alike.
const OKTA_FIELDS: [&str; 9] = [
    "/id",
    "/name",
    "/status",
    "/priority",
    "/conditions/people/groups/include",
    "/conditions/people/groups/exclude",
    "/conditions/people/users/include",
    "/conditions/people/users/exclude",
    "/conditions/network",
];
const OKTA_RULE_FIELDS: [&str; 9] = [
    "/actions/signon/requireFactor",
    "/actions/signon/access",
    "/actions/signon/factorPromptMode",
    "/actions/signon/factorLifetime",
    "/actions/appSignOn/access",
    "/actions/appSignOn/verificationMethod/factorMode",
    "/actions/appSignOn/verificationMethod/constraints",
    "/actions/appSignOn/verificationMethod/reauthenticateIn",
    "/actions/enroll/self",
];

fn okta_policy<'a>(out: &mut Out<'a>, a: &'a PolicyObject, c: &'a PolicyObject) {
    let (ab, cb) = (&a.body, &c.body);
    let sides = Sides {
        narrowing: enforces(a),
        widening: !lenient_rules(c).is_empty(),
    };
    okta_common(out, ab, cb, sides);
    okta_enrollment(out, ab, cb);
    let covered = [&OKTA_FIELDS[..], &["/settings/authenticators"]].concat();
    other_changes(out, ab, cb, &covered);
    for before in &a.rules {
        let mut rule_out = out.rule(before);
        match c.rules.iter().find(|r| r.id == before.id) {
            Some(after) => okta_rule(&mut rule_out, before, after),
            None => {
                let weakens = is_active(&before.body) && okta_rule_requires_mfa(&before.body);
                rule_out.push("was deleted", weakens);
            }
        }
        out.changes.append(&mut rule_out.changes);
    }
    for after in c
        .rules
        .iter()
        .filter(|r| a.rules.iter().all(|b| b.id != r.id))
    {
        let lenient = is_active(&after.body) && !okta_rule_requires_mfa(&after.body);
        let text = if lenient {
            "was added and does not require MFA"
        } else {
            "was added"
        };
        let change = out.rule(after).change(text, lenient);
        out.changes.push(change);
    }
}

fn okta_rule(out: &mut Out<'_>, before: &PolicyRule, after: &PolicyRule) {
    out.renamed(&before.name, &after.name);
    let (a, c) = (&before.body, &after.body);
    let sides = Sides {
        narrowing: okta_rule_requires_mfa(a),
        widening: !okta_rule_requires_mfa(c),
    };
    okta_common(out, a, c, sides);
    okta_sign_on(out, a, c);
    okta_app_sign_on(out, a, c);
    let (old, new) = (
        text(a, "/actions/enroll/self"),
        text(c, "/actions/enroll/self"),
    );
    let asked = ["CHALLENGE", "LOGIN"]
        .iter()
        .any(|s| old.eq_ignore_ascii_case(s));
    match asked && new.eq_ignore_ascii_case("NEVER") {
        _ if old == new => {}
        true => out.values("no longer asks users to enroll", old, new, true),
        false => out.values("changed when users are asked to enroll", old, new, false),
    }
    other_changes(out, a, c, &[OKTA_FIELDS, OKTA_RULE_FIELDS].concat());
}

/// Status, priority, people and network: read alike in policies and rules.
fn okta_common(out: &mut Out<'_>, a: &Value, c: &Value, sides: Sides) {
    let (old, new) = (text(a, "/status"), text(c, "/status"));
    // Deactivating narrows the scope to nothing; activating widens it.
    match (is_active(a), is_active(c)) {
        _ if old == new => {}
        (true, false) => out.push("was deactivated", sides.narrowing),
        (false, true) => out.push("was activated", sides.widening),
        _ => out.values("changed status", old, new, false),
    }
    let (old, new) = (at(a, "/priority"), at(c, "/priority"));
    if old != new {
        out.push(
            format!("moved from priority {} to {}", show(old), show(new)),
            false,
        );
    }
    okta_people(out, a, c, sides);
    okta_network(out, a, c, sides);
}

fn okta_people(out: &mut Out<'_>, a: &Value, c: &Value, sides: Sides) {
    let include = |v: &Value| OKTA_PEOPLE.map(|(n, p)| (n, strings(v, &format!("{p}/include"))));
    let everyone = |lists: &[(&str, BTreeSet<String>)]| lists.iter().all(|(_, l)| l.is_empty());
    let (old, new) = (include(a), include(c));
    if everyone(&old) && !everyone(&new) {
        let listed = new.iter().filter(|(_, ids)| !ids.is_empty());
        let only: Vec<String> = listed.map(|(noun, ids)| nouns(noun, ids)).collect();
        out.push(
            format!("now applies only to {}", only.join(" and ")),
            sides.narrowing,
        );
    } else if !everyone(&old) && everyone(&new) {
        out.push("now applies to everyone", sides.widening);
    } else {
        for ((noun, was), (_, is)) in old.iter().zip(&new) {
            out.ids("no longer applies to", noun, &(was - is), sides.narrowing);
            out.ids("now also applies to", noun, &(is - was), sides.widening);
        }
    }
    for (noun, base) in OKTA_PEOPLE {
        let (lost, gained) = set_diff(a, c, &format!("{base}/exclude"));
        out.ids("now excludes", noun, &gained, sides.narrowing);
        out.ids("no longer excludes", noun, &lost, sides.widening);
    }
}

/// `conditions.network`: ANYWHERE (or none) matches every network; ZONE the
/// `include` zones (every zone when none) minus the `exclude` ones.
fn okta_network(out: &mut Out<'_>, a: &Value, c: &Value, sides: Sides) {
    const INCLUDE: &str = "/conditions/network/include";
    let zoned = |v: &Value| text(v, "/conditions/network/connection").eq_ignore_ascii_case("ZONE");
    // (widened, how); no how when no zone moved that way.
    let zones = |widened, verb: &str, ids: &BTreeSet<String>| {
        (
            widened,
            (!ids.is_empty()).then(|| format!("{verb} {}", nouns("zone", ids))),
        )
    };
    let mut moves = Vec::new();
    match (zoned(a), zoned(c)) {
        (false, false) => {}
        (true, false) => moves.push((true, Some("connection ZONE → ANYWHERE".to_owned()))),
        (false, true) => moves.push((false, Some("connection ANYWHERE → ZONE".to_owned()))),
        (true, true) => {
            let (was, is) = (strings(a, INCLUDE), strings(c, INCLUDE));
            match (was.is_empty(), is.is_empty()) {
                (true, false) => moves.push(zones(false, "now only in", &is)),
                (false, true) => moves.push(zones(true, "no longer limited to", &was)),
                _ => {
                    moves.push(zones(true, "now includes", &(&is - &was)));
                    moves.push(zones(false, "no longer includes", &(&was - &is)));
                }
            }
            let (readmitted, excluded) = set_diff(a, c, "/conditions/network/exclude");
            moves.push(zones(false, "now excludes", &excluded));
            moves.push(zones(true, "no longer excludes", &readmitted));
        }
    }
    for (widened, how) in moves.into_iter().filter_map(|(w, how)| Some((w, how?))) {
        let direction = if widened { "widened" } else { "narrowed" };
        out.push(
            format!("network condition {direction}: {how}"),
            sides.weakens(widened),
        );
    }
}

/// `MFA_ENROLL` settings: `authenticators[].enroll.self` by `key`, where
/// REQUIRED > OPTIONAL > NOT_ALLOWED (also meant by absence).
fn okta_enrollment(out: &mut Out<'_>, a: &Value, c: &Value) {
    let (old, new) = (enrollment(a), enrollment(c));
    let rank = |level: &str| {
        let levels = ["NOT_ALLOWED", "OPTIONAL", "REQUIRED"];
        levels.iter().position(|l| level.eq_ignore_ascii_case(l))
    };
    let word = |rank| if rank == 2 { "required" } else { "allowed" };
    for key in old.keys().chain(new.keys()).collect::<BTreeSet<_>>() {
        let [from, to] = [&old, &new].map(|m| m.get(key).copied().unwrap_or("NOT_ALLOWED"));
        let (name, weak) = (short(key), is_weak_okta_key(key));
        let (adjective, text, weakens) = match (rank(from), rank(to)) {
            _ if from == to => continue,
            (Some(f), Some(t)) if t < f => ("", format!("is no longer {}", word(f)), !weak),
            // A weak authenticator newly allowed is a new way to pass MFA.
            (Some(0), Some(t)) if weak => ("weaker ", format!("is now {}", word(t)), true),
            (Some(_), Some(t)) => ("", format!("is now {}", word(t)), false),
            _ => (
                "",
                format!("changed from {} to {}", short(from), short(to)),
                false,
            ),
        };
        let text = format!("{adjective}authenticator '{name}' {text} at enrollment");
        out.push(text, weakens);
    }
}

fn enrollment(policy: &Value) -> BTreeMap<&str, &str> {
    let Some(Value::Array(items)) = at(policy, "/settings/authenticators") else {
        return BTreeMap::new();
    };
    let level = |item| Some(text(item, "/enroll/self")).filter(|l| !l.is_empty());
    let entry = |item| (text(item, "/key"), level(item).unwrap_or("NOT_ALLOWED"));
    items
        .iter()
        .map(entry)
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

fn okta_sign_on(out: &mut Out<'_>, a: &Value, c: &Value) {
    const REQUIRE: &str = "/actions/signon/requireFactor";
    match (flag(a, REQUIRE), flag(c, REQUIRE)) {
        (true, false) => out.push("no longer requires MFA", true),
        (false, true) => out.push("now requires MFA", false),
        // How often MFA is asked matters only while it is asked; when
        // `requireFactor` flips, the sentence above says it all.
        (true, true) => okta_factor_prompts(out, a, c),
        (false, false) => {}
    }
    okta_access(out, a, c, "/actions/signon/access");
}

fn okta_factor_prompts(out: &mut Out<'_>, a: &Value, c: &Value) {
    const MODE: &str = "/actions/signon/factorPromptMode";
    let (old, new) = (text(a, MODE), text(c, MODE));
    // DEVICE remembers a device across sessions, so it asks least.
    let rank = |m: &str| ["DEVICE", "SESSION", "ALWAYS"].iter().position(|x| m == *x);
    let order = rank(old).zip(rank(new)).map(|(o, n)| n.cmp(&o));
    let texts = [
        "asks for MFA less often",
        "asks for MFA more often",
        "changed factorPromptMode",
    ];
    ordered(out, texts, old, new, order);

    const LIFETIME: &str = "/actions/signon/factorLifetime";
    let (old, new) = (at(a, LIFETIME), at(c, LIFETIME));
    let minutes = |v: Option<&Value>| v.and_then(Value::as_f64);
    let order = minutes(old)
        .zip(minutes(new))
        .and_then(|(o, n)| o.partial_cmp(&n));
    let texts = [
        "remembers MFA longer",
        "remembers MFA for less time",
        "changed factorLifetime",
    ];
    if old != new {
        ordered(
            out,
            texts,
            &show(old),
            &format!("{} minutes", show(new)),
            order,
        );
    }
}

/// A setting whose values ask for more or less MFA: `order` compares how
/// much `new` asks for to `old` (`None`: they cannot be compared).
fn ordered(out: &mut Out<'_>, texts: [&str; 3], old: &str, new: &str, order: Option<Ordering>) {
    let [less, more, other] = texts;
    match order {
        _ if old == new => {}
        Some(Ordering::Less) => out.values(less, old, new, true),
        Some(Ordering::Greater) => out.values(more, old, new, false),
        Some(Ordering::Equal) => {} // the same setting, spelled differently
        None => out.values(other, old, new, false),
    }
}

fn okta_access(out: &mut Out<'_>, a: &Value, c: &Value, pointer: &str) {
    let (old, new) = (text(a, pointer), text(c, pointer));
    match (is_deny(old), is_deny(new)) {
        _ if old == new => {}
        (true, false) => out.push("now allows sign-in it used to deny", true),
        (false, true) => out.push("now denies sign-in", false),
        _ => out.values("changed access", old, new, false),
    }
}

fn okta_app_sign_on(out: &mut Out<'_>, a: &Value, c: &Value) {
    const MODE: &str = "/actions/appSignOn/verificationMethod/factorMode";
    let (old, new) = (text(a, MODE), text(c, MODE));
    let two = |mode: &str| mode.eq_ignore_ascii_case("2FA");
    match (two(old), two(new)) {
        _ if old == new => {}
        (true, false) => out.push("no longer requires MFA", true),
        (false, true) => out.push("now requires MFA", false),
        _ => out.values("changed factorMode", old, new, false),
    }
    okta_access(out, a, c, "/actions/appSignOn/access");

    const CONSTRAINTS: &str = "/actions/appSignOn/verificationMethod/constraints";
    let (old, new) = (at(a, CONSTRAINTS), at(c, CONSTRAINTS));
    if old != new && !(is_blank(old) && is_blank(new)) {
        let lost = &possession_required(old) - &possession_required(new);
        // Losing the factor itself implies losing its properties.
        let lost = if lost.contains(POSSESSION) {
            listing([POSSESSION])
        } else {
            listing(&lost)
        };
        match lost.as_str() {
            "none" => out.push("changed which factors satisfy it", false),
            _ => out.push(
                format!("changed which factors satisfy it (no longer requires {lost})"),
                true,
            ),
        }
    }

    const REAUTHENTICATE: &str = "/actions/appSignOn/verificationMethod/reauthenticateIn";
    let (old, new) = (text(a, REAUTHENTICATE), text(c, REAUTHENTICATE));
    let order = iso_duration_secs(old)
        .zip(iso_duration_secs(new))
        .map(|(o, n)| o.cmp(&n));
    let less = "asks to re-authenticate less often";
    let texts = [
        less,
        "asks to re-authenticate more often",
        "changed reauthenticateIn",
    ];
    ordered(out, texts, old, new, order);
}

const POSSESSION: &str = "a possession factor";

/// What every alternative of an access rule's `constraints` demands of the
/// possession factor: the factor itself and each property set to REQUIRED.
/// Taken over all alternatives, so a new alternative without possession
/// drops it.
fn possession_required(constraints: Option<&Value>) -> BTreeSet<String> {
    let Some(Value::Array(alternatives)) = constraints else {
        return BTreeSet::new();
    };
    let demand = |alternative: &Value| {
        let Some(Value::Object(possession)) = alternative.get("possession") else {
            return BTreeSet::new();
        };
        let required = |(_, v): &(&String, &Value)| v.as_str() == Some("REQUIRED");
        let properties = possession.iter().filter(required);
        let mut demand: BTreeSet<_> = properties
            .map(|(p, _)| format!("a {p} possession factor"))
            .collect();
        demand.insert(POSSESSION.to_owned());
        demand
    };
    alternatives
        .iter()
        .map(demand)
        .reduce(|all, one| &all & &one)
        .unwrap_or_default()
}

/// Seconds of an ISO-8601 duration in weeks, days, hours, minutes and whole
/// seconds (`P1D`, `PT2H30M`); `None` for anything else (years and months
/// have no fixed length).
fn iso_duration_secs(duration: &str) -> Option<u64> {
    let rest = duration.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    if (date.is_empty() && time.is_empty()) || rest.ends_with('T') {
        return None;
    }
    let date = duration_part(date, &[('W', 604_800), ('D', 86_400)])?;
    date.checked_add(duration_part(time, &[('H', 3_600), ('M', 60), ('S', 1)])?)
}

fn duration_part(part: &str, units: &[(char, u64)]) -> Option<u64> {
    let (mut total, mut number) = (0u64, String::new());
    for ch in part.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let (_, secs) = units.iter().find(|(unit, _)| *unit == ch)?;
        let count: u64 = number.parse().ok()?;
        total = total.checked_add(count.checked_mul(*secs)?)?;
        number.clear();
    }
    number.is_empty().then_some(total)
}

// ---- Okta authenticators ----

fn okta_authenticator(out: &mut Out<'_>, a: &Value, c: &Value) {
    let weak = is_weak_okta_key(text(a, "/key")) || is_weak_okta_key(text(c, "/key"));
    let (old, new) = (text(a, "/status"), text(c, "/status"));
    match (is_active(a), is_active(c)) {
        _ if old == new => {}
        (true, false) => out.push("was deactivated", !weak),
        (false, true) if weak => {
            let change = out.weaker("was activated");
            out.changes.push(change);
        }
        (false, true) => out.push("was activated", false),
        _ => out.values("changed status", old, new, false),
    }
    other_changes(out, a, c, &["/id", "/name", "/status"]);
}

/// What a policy zone covers: (pointer, field of each entry, noun).
const ZONE_LISTS: [(&str, &str, &str); 4] = [
    ("/gateways", "/value", "gateway"),
    ("/proxies", "/value", "proxy gateway"),
    ("/locations", "", "location"),
    ("/asns", "", "ASN"),
];

/// A policy zone is a network that rules trust (sign-ins from it asked for
/// less) or exclude: one that covers more is marked weakening, for review,
/// whichever way the rules use it (a zone can also scope a stricter rule).
fn okta_zone(out: &mut Out<'_>, a: &Value, c: &Value) {
    let (old, new) = (text(a, "/status"), text(c, "/status"));
    if old != new {
        out.values("changed status", old, new, false);
    }
    for (pointer, field, noun) in ZONE_LISTS {
        let entries = |v: &Value| -> BTreeSet<String> {
            at(v, pointer)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|item| match item.pointer(field) {
                            Some(Value::String(s)) if !field.is_empty() => s.clone(),
                            _ => match item {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            },
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (before, after) = (entries(a), entries(c));
        let gained: BTreeSet<String> = after.difference(&before).cloned().collect();
        let lost: BTreeSet<String> = before.difference(&after).cloned().collect();
        out.ids("now also covers", noun, &gained, true);
        out.ids("no longer covers", noun, &lost, false);
    }
    other_changes(
        out,
        a,
        c,
        &[
            "/id",
            "/name",
            "/status",
            "/gateways",
            "/proxies",
            "/locations",
            "/asns",
        ],
    );
}

// ---- Entra conditional access policies ----

/// The include/exclude lists of a CA policy: (condition, list, noun).
const CA_LISTS: [(&str, &str, &str); 5] = [
    ("users", "Users", "user"),
    ("users", "Groups", "group"),
    ("users", "Roles", "role"),
    ("applications", "Applications", "application"),
    ("locations", "Locations", "location"),
];
/// The CA conditions whose values narrow it, where none means all.
const CA_SCOPES: [(&str, &str); 3] = [
    ("/conditions/clientAppTypes", "client app types"),
    ("/conditions/signInRiskLevels", "sign-in risk levels"),
    ("/conditions/userRiskLevels", "user risk levels"),
];

fn entra_ca_policy(out: &mut Out<'_>, a: &Value, c: &Value) {
    let (old, new) = (text(a, "/state"), text(c, "/state"));
    match (is_enabled(a), is_enabled(c)) {
        _ if old == new => {}
        (true, false) => out.values("is no longer enforced", old, new, true),
        (false, true) => out.values("is now enforced", old, new, false),
        _ => out.values("changed state", old, new, false),
    }
    entra_grant(out, a, c);
    let mut covered = vec!["/id".to_owned(), "/displayName".into(), "/state".into()];
    for field in ["operator", "builtInControls", "authenticationStrength"] {
        covered.push(format!("/grantControls/{field}"));
    }
    for (condition, list, noun) in CA_LISTS {
        let include = format!("/conditions/{condition}/include{list}");
        let exclude = format!("/conditions/{condition}/exclude{list}");
        // An absent location condition means every location.
        entra_include(out, a, c, &include, noun, condition == "locations");
        let (lost, gained) = set_diff(a, c, &exclude);
        out.ids("now excludes", noun, &gained, true);
        out.ids("no longer excludes", noun, &lost, false);
        covered.extend([include, exclude]);
    }
    for (pointer, what) in CA_SCOPES {
        let scope = |v: &Value| Scope::of(strings(v, pointer));
        entra_scope(out, what, scope(a), scope(c));
        covered.push(pointer.to_owned());
    }
    entra_scope(out, "platforms", platforms(a), platforms(c));
    covered.push("/conditions/platforms".to_owned());
    other_changes(out, a, c, &covered);
}

fn entra_grant(out: &mut Out<'_>, a: &Value, c: &Value) {
    const CONTROLS: &str = "/grantControls/builtInControls";
    const OPERATOR: &str = "/grantControls/operator";
    let (old, new) = (strings(a, CONTROLS), strings(c, CONTROLS));
    let any_of = |v: &Value| text(v, OPERATOR).eq_ignore_ascii_case("OR");
    let count = |v: &Value, controls: &BTreeSet<String>| {
        controls.len() + usize::from(strength(v).is_some())
    };
    let label = |control: &str| match control.eq_ignore_ascii_case("mfa") {
        true => "MFA".to_owned(),
        false => format!("grant control '{}'", short(control)),
    };
    for control in old.iter().filter(|x| !contains_ci(&new, x)) {
        match control.to_ascii_lowercase().as_str() {
            "mfa" => out.push("no longer requires MFA", true),
            "block" => out.push("no longer blocks access", true),
            _ => out.push(format!("no longer requires {}", label(control)), false),
        }
    }
    // Under OR, a control added next to existing ones is a way around them.
    let alternative = any_of(c) && count(c, &new) > 1 && count(a, &old) >= 1;
    for control in new.iter().filter(|x| !contains_ci(&old, x)) {
        if control.eq_ignore_ascii_case("block") {
            out.push("now blocks access", false);
        } else if alternative {
            out.push(
                format!("now also accepts {} as an alternative", label(control)),
                true,
            );
        } else {
            out.push(format!("now requires {}", label(control)), false);
        }
    }
    let (old_op, new_op) = (text(a, OPERATOR), text(c, OPERATOR));
    // Without grant controls on one side, the sentences above say it all.
    let both = at(a, "/grantControls").is_some() && at(c, "/grantControls").is_some();
    let several = count(c, &new) > 1;
    match (any_of(a), any_of(c)) {
        _ if !both || old_op.eq_ignore_ascii_case(new_op) => {}
        (false, true) if several => out.push("now accepts any one of its grant controls", true),
        (true, false) if several => out.push("now requires all of its grant controls", false),
        _ => out.values("changed its grant operator", old_op, new_op, false),
    }
    let name = |s: &Value| {
        let name = Some(text(s, "/displayName")).filter(|n| !n.is_empty());
        format!(
            "authentication strength '{}'",
            short(name.unwrap_or(text(s, "/id")))
        )
    };
    match (strength(a), strength(c)) {
        (Some(old), None) => out.push(format!("no longer requires {}", name(old)), true),
        (None, Some(new)) => out.push(format!("now requires {}", name(new)), false),
        (Some(old), Some(new)) if text(old, "/id") != text(new, "/id") => out.push(
            format!("now requires {} instead of {}", name(new), name(old)),
            false,
        ),
        _ => {}
    }
}

fn strength(policy: &Value) -> Option<&Value> {
    at(policy, "/grantControls/authenticationStrength").filter(|s| s.is_object())
}

/// An include list, where "All" and "None" are not ids.
fn entra_include(
    out: &mut Out<'_>,
    a: &Value,
    c: &Value,
    pointer: &str,
    noun: &str,
    empty_is_all: bool,
) {
    let read = |v: &Value| match strings(v, pointer) {
        ids if ids.is_empty() && empty_is_all => BTreeSet::from(["All".to_owned()]),
        ids => ids,
    };
    let (old, new) = (read(a), read(c));
    let ids = |s: BTreeSet<String>| -> BTreeSet<String> {
        s.into_iter()
            .filter(|x| !x.eq_ignore_ascii_case("None"))
            .collect()
    };
    match (contains_ci(&old, "All"), contains_ci(&new, "All")) {
        (true, false) => out.push(format!("no longer applies to all {noun}s"), true),
        (false, true) => out.push(format!("now applies to all {noun}s"), false),
        _ => {
            if contains_ci(&new, "None") && !contains_ci(&old, "None") {
                out.push(format!("now applies to no {noun}s"), true);
            }
            out.ids("no longer applies to", noun, &ids(&old - &new), true);
            out.ids("now also applies to", noun, &ids(&new - &old), false);
        }
    }
}

/// A condition's values, where none (or `all`) means every value.
enum Scope {
    All,
    Only(BTreeSet<String>),
}

impl Scope {
    fn of(values: BTreeSet<String>) -> Self {
        if values.is_empty() || contains_ci(&values, "all") {
            Scope::All
        } else {
            Scope::Only(values)
        }
    }
}

fn entra_scope(out: &mut Out<'_>, what: &str, old: Scope, new: Scope) {
    let (fewer, more) = (
        format!("applies to fewer {what}:"),
        format!("applies to more {what}:"),
    );
    match (old, new) {
        (Scope::All, Scope::All) => {}
        (Scope::All, Scope::Only(new)) => out.push(format!("{fewer} only {}", listing(&new)), true),
        (Scope::Only(_), Scope::All) => out.push(format!("{more} all of them"), false),
        (Scope::Only(old), Scope::Only(new)) => {
            let (lost, gained) = (&old - &new, &new - &old);
            if !lost.is_empty() {
                out.push(format!("{fewer} no longer {}", listing(&lost)), true);
            }
            if !gained.is_empty() {
                out.push(format!("{more} now also {}", listing(&gained)), false);
            }
        }
    }
}

/// The platforms a CA policy applies to: those included (all when none or
/// `all`) minus those excluded.
fn platforms(policy: &Value) -> Scope {
    let exclude = strings(policy, "/conditions/platforms/excludePlatforms");
    let mut effective = match Scope::of(strings(policy, "/conditions/platforms/includePlatforms")) {
        Scope::All => PLATFORMS.iter().map(|p| (*p).to_owned()).collect(),
        Scope::Only(include) => include,
    };
    effective.retain(|p| !contains_ci(&exclude, p) && !contains_ci(&exclude, "all"));
    let all = PLATFORMS.iter().all(|p| contains_ci(&effective, p));
    if all {
        Scope::All
    } else {
        Scope::Only(effective)
    }
}

// ---- Entra authentication methods policy ----

fn entra_methods_policy(out: &mut Out<'_>, a: &Value, c: &Value) {
    const CONFIGS: &str = "/authenticationMethodConfigurations";
    let configs = |v| match at(v, CONFIGS) {
        Some(Value::Array(items)) => items
            .iter()
            .filter(|m| !text(m, "/id").is_empty())
            .collect(),
        _ => Vec::new(),
    };
    let (old, new): (Vec<&Value>, Vec<&Value>) = (configs(a), configs(c));
    let mut ids: Vec<&str> = Vec::new();
    for id in old.iter().chain(&new).map(|m| text(m, "/id")) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    for id in ids {
        let [before, after] =
            [&old, &new].map(|list| list.iter().find(|m| text(m, "/id") == id).copied());
        entra_method(out, id, before, after);
    }
    other_changes(out, a, c, &["/id", "/displayName", CONFIGS]);
}

/// One method configuration (`None`: not in the list, so not usable).
fn entra_method(out: &mut Out<'_>, id: &str, before: Option<&Value>, after: Option<&Value>) {
    let on = |m: Option<&Value>| m.is_some_and(is_enabled);
    let listed = |methods: &[&str]| methods.iter().any(|m| id.eq_ignore_ascii_case(m));
    let (weak, strong) = (listed(&WEAK_ENTRA_METHODS), listed(&STRONG_ENTRA_METHODS));
    let name = short(id);
    match (on(before), on(after)) {
        (false, true) if weak => out.push(format!("weaker method '{name}' was enabled"), true),
        (false, true) => out.push(format!("method '{name}' was enabled"), false),
        (true, false) => out.push(format!("method '{name}' was disabled"), strong),
        _ => {}
    }
    match (before, after) {
        (Some(_), None) => out.push(format!("method '{name}' was removed"), false),
        (None, Some(_)) => out.push(format!("method '{name}' was added"), false),
        (Some(b), Some(a)) => {
            let paths = uncovered_paths(b, a, &["/id", "/state"]);
            if !paths.is_empty() {
                out.push(
                    format!("method '{name}' changed {}", listing(&paths)),
                    false,
                );
            }
        }
        (None, None) => {}
    }
}

// ---- everything else ----

/// One neutral sentence per top-level key that differs outside `covered`
/// (JSON pointers already described), naming the paths.
fn other_changes(out: &mut Out<'_>, a: &Value, c: &Value, covered: &[impl AsRef<str>]) {
    let paths = uncovered_paths(a, c, covered);
    // Paths come depth-first in key order: one key's paths are adjacent.
    let top = |path: &str| path.split('/').nth(1).map(str::to_owned);
    for group in paths.chunk_by(|x, y| top(x) == top(y)) {
        out.push(format!("changed {}", listing(group)), false);
    }
}

fn uncovered_paths(a: &Value, c: &Value, covered: &[impl AsRef<str>]) -> Vec<String> {
    let (mut a, mut c) = (a.clone(), c.clone());
    for pointer in covered.iter().map(AsRef::as_ref) {
        for value in [&mut a, &mut c] {
            if let Some((parent, key)) = pointer.rsplit_once('/')
                && let Some(Value::Object(map)) = value.pointer_mut(parent)
            {
                map.remove(key);
            }
        }
    }
    let mut paths = Vec::new();
    changed_paths(Some(&a), Some(&c), "", &mut paths);
    paths
}

/// The paths where `a` and `c` differ, descending into objects.
fn changed_paths(a: Option<&Value>, c: Option<&Value>, path: &str, out: &mut Vec<String>) {
    let nothing = Map::new();
    match (as_map(a, &nothing), as_map(c, &nothing)) {
        (Some(a_map), Some(c_map)) => {
            for key in a_map.keys().chain(c_map.keys()).collect::<BTreeSet<_>>() {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                changed_paths(
                    a_map.get(key),
                    c_map.get(key),
                    &format!("{path}/{escaped}"),
                    out,
                );
            }
        }
        _ if a != c => out.push(if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        }),
        _ => {}
    }
}

/// An object's fields; `nothing` for a blank value; `None` for any other.
fn as_map<'v>(
    value: Option<&'v Value>,
    nothing: &'v Map<String, Value>,
) -> Option<&'v Map<String, Value>> {
    match value {
        Some(Value::Object(map)) => Some(map),
        _ if is_blank(value) => Some(nothing),
        _ => None,
    }
}

// ---- JSON and text helpers ----

/// The value at `pointer`, unless absent or null.
fn at<'v>(value: &'v Value, pointer: &str) -> Option<&'v Value> {
    value.pointer(pointer).filter(|v| !v.is_null())
}

/// The string at `pointer`, or "".
fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    at(value, pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The bool at `pointer`; absent or not a bool is false.
fn flag(value: &Value, pointer: &str) -> bool {
    at(value, pointer).and_then(Value::as_bool).unwrap_or(false)
}

/// The list at `pointer` as a set of strings; absent or not a list is empty.
fn strings(value: &Value, pointer: &str) -> BTreeSet<String> {
    let Some(Value::Array(items)) = at(value, pointer) else {
        return BTreeSet::new();
    };
    let string = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    items.iter().filter(|v| !v.is_null()).map(string).collect()
}

/// The entries of the list at `pointer` (lost, gained).
fn set_diff(a: &Value, c: &Value, pointer: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (old, new) = (strings(a, pointer), strings(c, pointer));
    (&old - &new, &new - &old)
}

fn contains_ci(set: &BTreeSet<String>, wanted: &str) -> bool {
    set.iter().any(|s| s.eq_ignore_ascii_case(wanted))
}

fn is_blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Array(items)) => items.is_empty(),
        Some(Value::Object(map)) => map.is_empty(),
        _ => false,
    }
}

/// An Okta status: an object without one was created active.
fn is_active(value: &Value) -> bool {
    let status = text(value, "/status");
    status.is_empty() || status.eq_ignore_ascii_case("ACTIVE")
}

fn is_enabled(value: &Value) -> bool {
    text(value, "/state").eq_ignore_ascii_case("enabled")
}

fn is_deny(access: &str) -> bool {
    access.eq_ignore_ascii_case("DENY")
}

fn is_weak_okta_key(key: &str) -> bool {
    WEAK_OKTA_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
}

/// `value` fit to quote: control characters escaped, at most [`MAX_QUOTE`]
/// characters. Names and ids are set by whoever edits the configuration and
/// the sentences end up in a terminal: a newline or an escape sequence in a
/// policy name must not forge or hide a line.
fn short(value: &str) -> String {
    let escape = |ch: char| -> Vec<char> {
        if ch.is_control() {
            ch.escape_debug().collect()
        } else {
            vec![ch]
        }
    };
    let clean: String = value.chars().flat_map(escape).collect();
    match clean.char_indices().nth(MAX_QUOTE - 1) {
        Some((cut, _)) if clean.chars().count() > MAX_QUOTE => format!("{}…", &clean[..cut]),
        _ => clean,
    }
}

/// A JSON value to quote: "none" when absent, strings unquoted.
fn show(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "none".to_owned(),
        Some(Value::String(s)) => short(s),
        Some(other) => short(&other.to_string()),
    }
}

fn or_none(value: &str) -> String {
    if value.is_empty() {
        "none".to_owned()
    } else {
        short(value)
    }
}

/// "a, b, c", at most [`MAX_LISTED`] items then "and N more"; "none" when
/// empty.
fn listing<I: IntoIterator<Item: AsRef<str>>>(items: I) -> String {
    let items: Vec<String> = items.into_iter().map(|s| short(s.as_ref())).collect();
    let shown = items.len().min(MAX_LISTED);
    match items.len() - shown {
        _ if items.is_empty() => "none".to_owned(),
        0 => items.join(", "),
        more => format!("{} and {more} more", items[..shown].join(", ")),
    }
}

/// "group 00g1" or "groups 00g1, 00g2".
fn nouns<I: IntoIterator<Item: AsRef<str>>>(noun: &str, ids: I) -> String {
    let ids: Vec<I::Item> = ids.into_iter().collect();
    let plural = if ids.len() == 1 { "" } else { "s" };
    format!("{noun}{plural} {}", listing(ids))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(kind: ObjectKind, body: Value) -> PolicyObject {
        let name = [text(&body, "/name"), text(&body, "/displayName")].concat();
        let id = text(&body, "/id").to_owned();
        PolicyObject {
            kind,
            id,
            name,
            body,
            rules: Vec::new(),
        }
    }

    fn okta_policy(body: Value, rules: Vec<Value>) -> PolicyObject {
        let rule = |body: Value| {
            let (id, name) = (
                text(&body, "/id").to_owned(),
                text(&body, "/name").to_owned(),
            );
            PolicyRule { id, name, body }
        };
        let rules = rules.into_iter().map(rule).collect();
        PolicyObject {
            rules,
            ..object(ObjectKind::OktaPolicy, body)
        }
    }

    /// `value` with the field at `pointer` (which must exist) replaced.
    fn with(value: &Value, pointer: &str, new: Value) -> Value {
        let mut value = value.clone();
        *value.pointer_mut(pointer).expect("fixture field") = new;
        value
    }

    /// The changes as `describe` lines, without the dash.
    fn lines(changes: &[Change]) -> Vec<String> {
        let mark = |c: &Change| if c.weakens { "[weakens] " } else { "" };
        changes
            .iter()
            .map(|c| format!("{}{}", mark(c), c.summary))
            .collect()
    }

    /// Asserts the changes from `a` to `c`, each expected line starting
    /// with `subject` (after "[weakens] " when marked with a leading `!`).
    fn check(a: &PolicyObject, c: &PolicyObject, subject: &str, expected: &[&str]) {
        let expand = |line: &&str| match line.strip_prefix('!') {
            Some(line) => format!("[weakens] {subject} {line}"),
            None => format!("{subject} {line}"),
        };
        let expected: Vec<String> = expected.iter().map(expand).collect();
        assert_eq!(lines(&diff_object(Some(a), Some(c))), expected);
    }

    const DEFAULT: &str = "policy 'Default Policy'";
    const CATCH_ALL: &str = "policy 'Default Policy' rule 'Catch-all'";
    const OFFICE: &str = "policy 'Default Policy' rule 'Office network'";
    const APP_RULE: &str = "policy 'Office 365' rule 'Catch-all Rule'";
    const CA: &str = "conditional access policy 'Require MFA for all users'";
    const METHODS: &str = "authentication methods policy 'Authentication Methods Policy'";

    fn sign_on_policy() -> Value {
        json!({
            "id": "00p1sign0n", "type": "OKTA_SIGN_ON", "name": "Default Policy",
            "description": "The default policy applies in all situations.",
            "priority": 1, "system": true, "status": "ACTIVE",
            "conditions": {"people": {"groups": {"include": ["00geveryone"]}}}
        })
    }

    fn catch_all(require_factor: bool) -> Value {
        let mut signon = json!({
            "access": "ALLOW", "requireFactor": require_factor,
            "primaryFactor": "PASSWORD_IDP_ANY_FACTOR", "rememberDeviceByDefault": false,
            "session": {"usePersistentCookie": false, "maxSessionIdleMinutes": 120}
        });
        if require_factor {
            signon["factorPromptMode"] = json!("ALWAYS");
            signon["factorLifetime"] = json!(15);
        }
        json!({
            "id": "0pr1catchall", "type": "SIGN_ON", "name": "Catch-all", "priority": 1,
            "status": "ACTIVE", "system": false, "actions": {"signon": signon},
            "conditions": {
                "people": {"users": {"exclude": []}}, "network": {"connection": "ANYWHERE"},
                "authContext": {"authType": "ANY"}
            }
        })
    }

    fn office_rule() -> Value {
        json!({
            "id": "0pr2office", "type": "SIGN_ON", "name": "Office network", "priority": 0,
            "status": "ACTIVE", "actions": {"signon": {"access": "ALLOW", "requireFactor": false}},
            "conditions": {"network": {"connection": "ZONE", "include": ["nzo1office"]}}
        })
    }

    fn sign_on(rules: Vec<Value>) -> PolicyObject {
        okta_policy(sign_on_policy(), rules)
    }

    fn access_rule() -> Value {
        json!({
            "id": "rul1catchall", "name": "Catch-all Rule", "type": "ACCESS_POLICY", "priority": 0,
            "status": "ACTIVE", "system": true,
            "conditions": {"network": {"connection": "ANYWHERE"}, "riskScore": {"level": "ANY"}},
            "actions": {"appSignOn": {"access": "ALLOW", "verificationMethod": {
                "factorMode": "2FA", "type": "ASSURANCE", "reauthenticateIn": "PT2H",
                "constraints": [{
                    "knowledge": {"types": ["password"]},
                    "possession": {"deviceBound": "REQUIRED"}
                }]
            }}}
        })
    }

    fn access(rule: Value) -> PolicyObject {
        let body = json!({
            "id": "rst1o365", "type": "ACCESS_POLICY", "name": "Office 365", "status": "ACTIVE",
            "priority": 1, "system": false, "conditions": null
        });
        okta_policy(body, vec![rule])
    }

    fn authenticator(key: &str, name: &str, status: &str) -> PolicyObject {
        let body = json!({"id": key, "key": key, "name": name, "status": status, "type": "app"});
        object(ObjectKind::OktaAuthenticator, body)
    }

    fn ca_policy() -> Value {
        json!({
            "id": "a1b2c3d4-ca01", "displayName": "Require MFA for all users", "state": "enabled",
            "conditions": {
                "userRiskLevels": [], "signInRiskLevels": [], "clientAppTypes": ["all"],
                "platforms": null, "locations": null,
                "users": {
                    "includeUsers": ["All"], "excludeUsers": [], "includeGroups": [],
                    "excludeGroups": ["0b5e-breakglass"], "includeRoles": [], "excludeRoles": []
                },
                "applications": {"includeApplications": ["All"], "excludeApplications": []}
            },
            "grantControls": {
                "operator": "OR", "builtInControls": ["mfa"], "customAuthenticationFactors": [],
                "termsOfUse": [], "authenticationStrength": null
            },
            "sessionControls": null
        })
    }

    fn ca(body: Value) -> PolicyObject {
        object(ObjectKind::EntraCaPolicy, body)
    }

    /// The CA policy with one field replaced.
    fn ca_with(pointer: &str, new: Value) -> PolicyObject {
        ca(with(&ca_policy(), pointer, new))
    }

    #[test]
    fn sign_on_rule_no_longer_requiring_mfa_weakens() {
        let changes = diff(
            &[sign_on(vec![catch_all(true)])],
            &[sign_on(vec![catch_all(false)])],
        );
        let expected = "[weakens] policy 'Default Policy' rule 'Catch-all' no longer requires MFA";
        assert_eq!(lines(&changes), [expected]);
        let change = &changes[0];
        assert_eq!(
            (change.kind, change.object_id.as_str()),
            (ObjectKind::OktaPolicy, "00p1sign0n")
        );
        assert_eq!(change.rule_id.as_deref(), Some("0pr1catchall"));
        assert_eq!(change.rule_name.as_deref(), Some("Catch-all"));
    }

    #[test]
    fn sign_on_rule_prompts_and_access() {
        let prompts = with(
            &catch_all(true),
            "/actions/signon/factorPromptMode",
            json!("SESSION"),
        );
        let prompts = with(&prompts, "/actions/signon/factorLifetime", json!(60));
        let expected = [
            "!asks for MFA less often (ALWAYS → SESSION)",
            "!remembers MFA longer (15 → 60 minutes)",
        ];
        check(
            &sign_on(vec![catch_all(true)]),
            &sign_on(vec![prompts]),
            CATCH_ALL,
            &expected,
        );
        let deny = sign_on(vec![with(
            &catch_all(false),
            "/actions/signon/access",
            json!("DENY"),
        )]);
        let allow = sign_on(vec![catch_all(false)]);
        check(
            &deny,
            &allow,
            CATCH_ALL,
            &["!now allows sign-in it used to deny"],
        );
        check(&allow, &deny, CATCH_ALL, &["now denies sign-in"]);
    }

    #[test]
    fn access_rule_dropping_to_one_factor_weakens() {
        let one_factor = json!("1FA");
        let one_factor = with(
            &access_rule(),
            "/actions/appSignOn/verificationMethod/factorMode",
            one_factor,
        );
        check(
            &access(access_rule()),
            &access(one_factor),
            APP_RULE,
            &["!no longer requires MFA"],
        );
    }

    #[test]
    fn access_rule_constraints_and_reauthentication() {
        const VERIFY: &str = "/actions/appSignOn/verificationMethod";
        let constraints = &format!("{VERIFY}/constraints");
        let password = json!([{"knowledge": {"types": ["password"]}}]);
        let changed = with(&access_rule(), constraints, password);
        let changed = access(with(
            &changed,
            &format!("{VERIFY}/reauthenticateIn"),
            json!("P1D"),
        ));
        let approved = access(access_rule());
        let expected = [
            "!changed which factors satisfy it (no longer requires a possession factor)",
            "!asks to re-authenticate less often (PT2H → P1D)",
        ];
        check(&approved, &changed, APP_RULE, &expected);
        let expected = [
            "changed which factors satisfy it",
            "asks to re-authenticate more often (P1D → PT2H)",
        ];
        check(&changed, &approved, APP_RULE, &expected);
        let any_device = json!([{"possession": {"deviceBound": "OPTIONAL"}}]);
        let any_device = access(with(&access_rule(), constraints, any_device));
        let expected = ["!changed which factors satisfy it \
                         (no longer requires a deviceBound possession factor)"];
        check(&approved, &any_device, APP_RULE, &expected);
        let yearly = access(with(
            &access_rule(),
            &format!("{VERIFY}/reauthenticateIn"),
            json!("P1Y"),
        ));
        check(
            &approved,
            &yearly,
            APP_RULE,
            &["changed reauthenticateIn (PT2H → P1Y)"],
        );
    }

    #[test]
    fn iso_durations() {
        assert_eq!(iso_duration_secs("PT2H"), Some(7_200));
        assert_eq!(iso_duration_secs("PT1H30M15S"), Some(5_415));
        assert_eq!(iso_duration_secs("P1DT1H"), Some(90_000));
        assert_eq!(iso_duration_secs("P2W"), Some(1_209_600));
        for bad in [
            "", "P", "PT", "P1DT", "2H", "PT2", "P1Y", "P1M", "PTH", "PT0.5S",
        ] {
            assert_eq!(iso_duration_secs(bad), None, "{bad}");
        }
        assert_eq!(iso_duration_secs("P99999999999999999999D"), None);
    }

    #[test]
    fn group_excluded_from_policy_weakens() {
        let mut excluding = sign_on_policy();
        excluding["conditions"]["people"]["groups"]["exclude"] = json!(["00gcontractors"]);
        let excluding = okta_policy(excluding, vec![catch_all(true)]);
        let approved = sign_on(vec![catch_all(true)]);
        check(
            &approved,
            &excluding,
            DEFAULT,
            &["!now excludes group 00gcontractors"],
        );
        // Taking the exclusion back, or applying the policy to more groups,
        // does not weaken.
        let groups = json!(["00geveryone", "00gnew"]);
        let wider = with(
            &sign_on_policy(),
            "/conditions/people/groups/include",
            groups,
        );
        let expected = [
            "now also applies to group 00gnew",
            "no longer excludes group 00gcontractors",
        ];
        check(
            &excluding,
            &okta_policy(wider, vec![catch_all(true)]),
            DEFAULT,
            &expected,
        );
    }

    #[test]
    fn network_widened_weakens_only_where_mfa_is_not_asked() {
        let network = |rule: &Value, network| with(rule, "/conditions/network", network);
        let anywhere = network(&office_rule(), json!({"connection": "ANYWHERE"}));
        let approved = sign_on(vec![office_rule(), catch_all(true)]);
        let current = sign_on(vec![anywhere, catch_all(true)]);
        check(
            &approved,
            &current,
            OFFICE,
            &["!network condition widened: connection ZONE → ANYWHERE"],
        );
        let cafe = json!({"connection": "ZONE", "include": ["nzo1office", "nzo2cafe"]});
        let cafe = sign_on(vec![network(&office_rule(), cafe), catch_all(true)]);
        check(
            &approved,
            &cafe,
            OFFICE,
            &["!network condition widened: now includes zone nzo2cafe"],
        );
        // The same widening of a rule that demands MFA asks for it in more places.
        let zoned = network(
            &catch_all(true),
            json!({"connection": "ZONE", "include": ["nzo1"]}),
        );
        let (zoned, anywhere) = (sign_on(vec![zoned]), sign_on(vec![catch_all(true)]));
        let expected = ["network condition widened: connection ZONE → ANYWHERE"];
        check(&zoned, &anywhere, CATCH_ALL, &expected);
        let excluding = json!({"connection": "ZONE", "include": ["nzo1"], "exclude": ["nzo2"]});
        let excluding = sign_on(vec![network(&catch_all(true), excluding)]);
        let expected = ["!network condition narrowed: now excludes zone nzo2"];
        check(&zoned, &excluding, CATCH_ALL, &expected);
    }

    #[test]
    fn policy_deactivated_deleted_and_added() {
        let active = sign_on(vec![catch_all(true)]);
        let inactive = with(&sign_on_policy(), "/status", json!("INACTIVE"));
        let inactive = okta_policy(inactive, vec![catch_all(true)]);
        check(&active, &inactive, DEFAULT, &["!was deactivated"]);
        check(&inactive, &active, DEFAULT, &["was activated"]);
        let deleted = diff(std::slice::from_ref(&active), &[]);
        assert_eq!(
            lines(&deleted),
            ["[weakens] policy 'Default Policy' was deleted"]
        );
        // Deleting what was not in force changes no sign-in.
        assert_eq!(
            lines(&diff(&[inactive], &[])),
            ["policy 'Default Policy' was deleted"]
        );
        let lenient = sign_on(vec![office_rule(), catch_all(true)]);
        let expected = "[weakens] policy 'Default Policy' was added without requiring MFA in \
                        rule 'Office network'";
        assert_eq!(lines(&diff(&[], &[lenient])), [expected]);
        assert_eq!(
            lines(&diff(&[], &[active])),
            ["policy 'Default Policy' was added"]
        );
    }

    #[test]
    fn rules_added_deleted_and_moved() {
        let approved = sign_on(vec![catch_all(true)]);
        let current = sign_on(vec![
            office_rule(),
            with(&catch_all(true), "/priority", json!(3)),
        ]);
        let added = diff_object(Some(&approved), Some(&current));
        assert_eq!(
            lines(&added),
            [
                format!("{CATCH_ALL} moved from priority 1 to 3"),
                format!("[weakens] {OFFICE} was added and does not require MFA"),
            ]
        );
        assert_eq!(
            lines(&diff_object(Some(&current), Some(&approved))),
            [
                format!("{OFFICE} was deleted"),
                format!("{CATCH_ALL} moved from priority 3 to 1"),
            ]
        );
        check(&approved, &sign_on(vec![]), CATCH_ALL, &["!was deleted"]);
        let off = sign_on(vec![with(&catch_all(true), "/status", json!("INACTIVE"))]);
        check(&approved, &off, CATCH_ALL, &["!was deactivated"]);
    }

    #[test]
    fn enrollment_requirements() {
        let enroll = |authenticators: Value| {
            let body = json!({
                "id": "00p2enroll", "type": "MFA_ENROLL", "name": "MFA Enrollment",
                "status": "ACTIVE", "priority": 1,
                "settings": {"type": "AUTHENTICATORS", "authenticators": authenticators}
            });
            okta_policy(body, vec![])
        };
        let level = |key, level| json!({"key": key, "enroll": {"self": level}});
        let approved = enroll(json!([
            level("okta_verify", "REQUIRED"),
            level("phone_number", "NOT_ALLOWED"),
            level("webauthn", "OPTIONAL"),
            level("email", "OPTIONAL"),
        ]));
        let current = enroll(json!([
            level("okta_verify", "OPTIONAL"),
            level("phone_number", "OPTIONAL"),
            level("webauthn", "NOT_ALLOWED"),
        ]));
        let expected = [
            "authenticator 'email' is no longer allowed at enrollment",
            "!authenticator 'okta_verify' is no longer required at enrollment",
            "!weaker authenticator 'phone_number' is now allowed at enrollment",
            "!authenticator 'webauthn' is no longer allowed at enrollment",
        ];
        check(&approved, &current, "policy 'MFA Enrollment'", &expected);
    }

    #[test]
    fn neutral_and_absent_changes() {
        let approved = sign_on(vec![catch_all(true)]);
        let described = with(&sign_on_policy(), "/description", json!("Everyone, always"));
        let described = okta_policy(described, vec![catch_all(true)]);
        check(&approved, &described, DEFAULT, &["changed /description"]);
        let radius = with(
            &catch_all(true),
            "/conditions/authContext/authType",
            json!("RADIUS"),
        );
        let radius = sign_on(vec![radius]);
        check(
            &approved,
            &radius,
            CATCH_ALL,
            &["changed /conditions/authContext/authType"],
        );
        let renamed = PolicyObject {
            name: "Renamed".into(),
            ..approved.clone()
        };
        check(&approved, &renamed, DEFAULT, &["was renamed to 'Renamed'"]);
        let same = std::slice::from_ref(&approved);
        assert!(diff(same, same).is_empty());
        assert!(diff(&[], &[]).is_empty());
        assert!(diff_object(None, None).is_empty());
        // A missing list, null and [] are all nothing.
        let sparse = sign_on(vec![with(
            &catch_all(true),
            "/conditions/people",
            Value::Null,
        )]);
        check(&approved, &sparse, CATCH_ALL, &[]);
    }

    #[test]
    fn okta_authenticators() {
        let verify = |status| authenticator("okta_verify", "Okta Verify", status);
        let phone = |status| authenticator("phone_number", "Phone", status);
        let (okta_verify, weak_phone) = ("authenticator 'Okta Verify'", "authenticator 'Phone'");
        check(
            &verify("ACTIVE"),
            &verify("INACTIVE"),
            okta_verify,
            &["!was deactivated"],
        );
        check(
            &verify("INACTIVE"),
            &verify("ACTIVE"),
            okta_verify,
            &["was activated"],
        );
        check(
            &phone("ACTIVE"),
            &phone("INACTIVE"),
            weak_phone,
            &["was deactivated"],
        );
        let activated = diff_object(Some(&phone("INACTIVE")), Some(&phone("ACTIVE")));
        assert_eq!(
            lines(&activated),
            ["[weakens] weaker authenticator 'Phone' was activated"]
        );
        let deleted = diff(&[verify("ACTIVE")], &[]);
        assert_eq!(
            lines(&deleted),
            ["[weakens] authenticator 'Okta Verify' was deleted"]
        );
    }

    #[test]
    fn entra_state() {
        let disabled = ca_with("/state", json!("disabled"));
        check(
            &ca(ca_policy()),
            &disabled,
            CA,
            &["!is no longer enforced (enabled → disabled)"],
        );
        let report_only = ca_with("/state", json!("enabledForReportingButNotEnforced"));
        let expected = ["is now enforced (enabledForReportingButNotEnforced → enabled)"];
        check(&report_only, &ca(ca_policy()), CA, &expected);
    }

    #[test]
    fn entra_grant_controls() {
        const CONTROLS: &str = "/grantControls/builtInControls";
        let approved = ca(ca_policy());
        let device = ca_with(CONTROLS, json!(["compliantDevice"]));
        let expected = [
            "!no longer requires MFA",
            "now requires grant control 'compliantDevice'",
        ];
        check(&approved, &device, CA, &expected);
        let either = with(&ca_policy(), CONTROLS, json!(["mfa", "compliantDevice"]));
        let expected = ["!now also accepts grant control 'compliantDevice' as an alternative"];
        check(&approved, &ca(either.clone()), CA, &expected);
        let both = ca(with(&either, "/grantControls/operator", json!("AND")));
        check(
            &both,
            &ca(either),
            CA,
            &["!now accepts any one of its grant controls"],
        );
        let strength = json!({"id": "00000000-0000-0000-0000-000000000004",
                              "displayName": "Phishing-resistant MFA"});
        let strong = ca_with("/grantControls/authenticationStrength", strength);
        let expected = ["!no longer requires authentication strength 'Phishing-resistant MFA'"];
        check(&strong, &approved, CA, &expected);
    }

    #[test]
    fn entra_scope() {
        let approved = ca(ca_policy());
        let groups = ca_with(
            "/conditions/users/excludeGroups",
            json!(["0b5e-breakglass", "7f3a-sales"]),
        );
        check(&approved, &groups, CA, &["!now excludes group 7f3a-sales"]);
        let alice = ca_with("/conditions/users/includeUsers", json!(["5c1d-alice"]));
        check(&approved, &alice, CA, &["!no longer applies to all users"]);
        check(&alice, &approved, CA, &["now applies to all users"]);
        let browser = ca_with("/conditions/clientAppTypes", json!(["browser"]));
        check(
            &approved,
            &browser,
            CA,
            &["!applies to fewer client app types: only browser"],
        );
        let platforms = json!({"includePlatforms": ["all"], "excludePlatforms": ["android"]});
        let platforms = ca_with("/conditions/platforms", platforms);
        let expected =
            ["!applies to fewer platforms: only iOS, linux, macOS, windows, windowsPhone"];
        check(&approved, &platforms, CA, &expected);
        let risky = ca_with("/conditions/signInRiskLevels", json!(["high", "medium"]));
        let riskier = ca_with("/conditions/signInRiskLevels", json!(["high"]));
        let expected = ["!applies to fewer sign-in risk levels: no longer medium"];
        check(&risky, &riskier, CA, &expected);
        // An absent location condition is every location.
        let everywhere = json!({"includeLocations": ["All"], "excludeLocations": []});
        let everywhere = with(&ca_policy(), "/conditions/locations", everywhere);
        check(&approved, &ca(everywhere.clone()), CA, &[]);
        let trusted = json!(["AllTrusted"]);
        let trusted = ca(with(
            &everywhere,
            "/conditions/locations/excludeLocations",
            trusted,
        ));
        check(
            &ca(everywhere),
            &trusted,
            CA,
            &["!now excludes location AllTrusted"],
        );
    }

    #[test]
    fn entra_added_and_deleted() {
        let deleted = diff(&[ca(ca_policy())], &[]);
        assert_eq!(lines(&deleted), [format!("[weakens] {CA} was deleted")]);
        assert_eq!(
            lines(&diff(&[], &[ca(ca_policy())])),
            [format!("{CA} was added")]
        );
        let report_only = ca_with("/state", json!("enabledForReportingButNotEnforced"));
        assert_eq!(
            lines(&diff(&[report_only], &[])),
            [format!("{CA} was deleted")]
        );
    }

    #[test]
    fn entra_authentication_methods() {
        let methods = |fido2, sms, tap_minutes| {
            let body = json!({
                "id": "authenticationMethodsPolicy",
                "displayName": "Authentication Methods Policy",
                "policyVersion": "1.5", "policyMigrationState": "migrationComplete",
                "authenticationMethodConfigurations": [
                    {"@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration",
                     "id": "Fido2", "state": fido2, "isAttestationEnforced": true},
                    {"@odata.type": "#microsoft.graph.smsAuthenticationMethodConfiguration",
                     "id": "Sms", "state": sms, "excludeTargets": []},
                    {"@odata.type":
                        "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration",
                     "id": "TemporaryAccessPass", "state": "enabled",
                     "defaultLifetimeInMinutes": tap_minutes}
                ]
            });
            object(ObjectKind::EntraAuthMethodsPolicy, body)
        };
        let approved = methods("enabled", "disabled", 60);
        let expected = [
            "!method 'Fido2' was disabled",
            "!weaker method 'Sms' was enabled",
            "method 'TemporaryAccessPass' changed /defaultLifetimeInMinutes",
        ];
        check(
            &approved,
            &methods("disabled", "enabled", 480),
            METHODS,
            &expected,
        );
    }

    #[test]
    fn requires_mfa() {
        const FACTOR_MODE: &str = "/actions/appSignOn/verificationMethod/factorMode";
        assert!(okta_rule_requires_mfa(&catch_all(true)));
        assert!(!okta_rule_requires_mfa(&catch_all(false)));
        let deny = with(&catch_all(false), "/actions/signon/access", json!("DENY"));
        assert!(okta_rule_requires_mfa(&deny));
        assert!(okta_rule_requires_mfa(&access_rule()));
        let one_factor = with(&access_rule(), FACTOR_MODE, json!("1FA"));
        assert!(!okta_rule_requires_mfa(&one_factor));
        assert!(okta_rule_requires_mfa(&with(
            &one_factor,
            "/actions/appSignOn/access",
            json!("DENY")
        )));
        let enroll = json!({"type": "MFA_ENROLL", "actions": {"enroll": {"self": "NEVER"}}});
        assert!(okta_rule_requires_mfa(&enroll));
        assert!(!okta_rule_requires_mfa(
            &json!({"actions": {"signon": {"access": "ALLOW"}}})
        ));
        assert!(okta_rule_requires_mfa(&json!(null)));

        assert!(entra_policy_requires_mfa(&ca_policy()));
        let upper = with(
            &ca_policy(),
            "/grantControls/builtInControls",
            json!(["MFA"]),
        );
        assert!(entra_policy_requires_mfa(&upper));
        let report_only = with(
            &ca_policy(),
            "/state",
            json!("enabledForReportingButNotEnforced"),
        );
        assert!(!entra_policy_requires_mfa(&report_only));
        let no_controls = with(&ca_policy(), "/grantControls/builtInControls", json!([]));
        assert!(!entra_policy_requires_mfa(&no_controls));
        let strength = json!({"id": "00000000-0000-0000-0000-000000000002"});
        let strength = with(
            &no_controls,
            "/grantControls/authenticationStrength",
            strength,
        );
        assert!(entra_policy_requires_mfa(&strength));
        assert!(!entra_policy_requires_mfa(&with(
            &ca_policy(),
            "/grantControls",
            Value::Null
        )));
    }

    #[test]
    fn weakening_first_then_approved_order_then_new() {
        let described = with(&sign_on_policy(), "/description", json!("changed"));
        let approved = [
            sign_on(vec![catch_all(true)]),
            authenticator("okta_verify", "Okta Verify", "ACTIVE"),
            ca(ca_policy()),
        ];
        let current = [
            authenticator("okta_verify", "Okta Verify", "INACTIVE"),
            ca_with("/id", json!("new-ca")),
            okta_policy(described, vec![catch_all(true)]),
        ];
        let changes = diff(&approved, &current);
        assert_eq!(
            lines(&changes),
            [
                "[weakens] authenticator 'Okta Verify' was deactivated".to_owned(),
                format!("[weakens] {CA} was deleted"),
                format!("{DEFAULT} changed /description"),
                format!("{CA} was added"),
            ]
        );
        let described = describe(&changes[1..3]);
        assert_eq!(
            described,
            format!("- [weakens] {CA} was deleted\n- {DEFAULT} changed /description")
        );
        assert_eq!(describe(&[]), "no changes");
    }

    #[test]
    fn odd_json_does_not_panic_and_quotes_are_short_and_inert() {
        let odd = [
            json!(null),
            json!([1, {"a": null}]),
            json!("x"),
            json!({"conditions": "x", "settings": 3}),
        ];
        let rule = |body| PolicyRule {
            id: "r".into(),
            name: "r".into(),
            body,
        };
        for kind in ObjectKind::ALL {
            for (a, c) in odd.iter().flat_map(|a| odd.iter().map(move |c| (a, c))) {
                let a = PolicyObject {
                    rules: vec![rule(json!(7))],
                    ..object(kind, a.clone())
                };
                let c = PolicyObject {
                    rules: vec![rule(json!({"actions": []}))],
                    ..object(kind, c.clone())
                };
                diff_object(Some(&a), Some(&c));
                diff(&[a, c.clone()], &[c]);
            }
        }
        let name = format!("x\n- [weakens] forged {}", "y".repeat(200));
        let evil = PolicyObject {
            name,
            ..sign_on(vec![])
        };
        let summary = &diff(&[evil], &[])[0].summary;
        assert!(
            !summary.contains('\n') && summary.chars().count() < 120,
            "{summary}"
        );
        assert_eq!(short(&"é".repeat(100)).chars().count(), MAX_QUOTE);
        assert_eq!(short("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
    }

    #[test]
    fn a_policy_zone_that_covers_more_is_a_weakening() {
        let zone = |gateways: &[&str]| {
            object(
                ObjectKind::OktaNetworkZone,
                json!({"id": "nzoOffice", "name": "Office", "type": "IP", "usage": "POLICY",
                       "status": "ACTIVE",
                       "gateways": gateways.iter()
                           .map(|g| json!({"type": "CIDR", "value": g}))
                           .collect::<Vec<_>>()}),
            )
        };
        let before = zone(&["198.51.100.0/24"]);
        let wider = zone(&["198.51.100.0/24", "0.0.0.0/0"]);
        let changes = diff_object(Some(&before), Some(&wider));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            changes[0].summary,
            "network zone 'Office' now also covers gateway 0.0.0.0/0"
        );
        assert!(changes[0].weakens);
        let narrower = zone(&[]);
        let changes = diff_object(Some(&before), Some(&narrower));
        assert_eq!(
            changes[0].summary,
            "network zone 'Office' no longer covers gateway 198.51.100.0/24"
        );
        assert!(!changes[0].weakens);
        assert!(diff_object(Some(&before), Some(&before.clone())).is_empty());
        assert!(!diff_object(Some(&before), None)[0].weakens);
    }
}

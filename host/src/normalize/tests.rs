//! Unit tests for `normalize`: one realistic record per format, envelope
//! all-or-nothing behaviour, error variants, fallback ids, attribute bounds,
//! and a sweep over the repository's fixture files.

use super::*;
use crate::model::{EventClass, Outcome};
use sha2::{Digest, Sha256};

/// A full Okta LogEvent as the System Log API returns it (nulls included).
const OKTA_DENY_PUSH: &str = r#"{"actor":{"id":"00u1abcdEFGH2345ijk7","type":"User","alternateId":"alex.rivera@example.com","displayName":"Alex Rivera","detailEntry":null},"client":{"userAgent":{"rawUserAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36","os":"Windows 10","browser":"CHROME"},"zone":"null","device":"Computer","id":null,"ipAddress":"203.0.113.45","geographicalContext":{"city":"Lisbon","state":"Lisbon","country":"Portugal","postalCode":"1000-001","geolocation":{"lat":38.7223,"lon":-9.1393}}},"device":null,"authenticationContext":{"authenticationProvider":null,"credentialProvider":null,"credentialType":null,"issuer":null,"interface":null,"authenticationStep":0,"externalSessionId":"102bZDNFfWaQSyEZQuDgWt-uQ"},"displayMessage":"User rejected Okta push verify","eventType":"user.mfa.okta_verify.deny_push","outcome":{"result":"FAILURE","reason":"User rejected Okta push verify"},"published":"2026-03-01T10:02:03.123Z","securityContext":{"asNumber":64496,"asOrg":"example transit","isp":"example isp","domain":"example.net","isProxy":false},"severity":"WARN","debugContext":{"debugData":{"requestId":"Zc1a2b3c4d5e6f7g8h9i0","requestUri":"/api/v1/authn/factors/opf1abcd/verify","threatSuspected":"false","url":"/api/v1/authn/factors/opf1abcd/verify?","factor":"OKTA_VERIFY_PUSH","risk":"{level=LOW}","behaviors":"{New Geo-Location=NEGATIVE, New Device=NEGATIVE, New IP=POSITIVE}"}},"legacyEventType":"core.user.factor.attempt_fail","transaction":{"type":"WEB","id":"Zc1a2b3c4d5e6f7g8h9i0","detail":{}},"uuid":"2f6c1c1e-3b1a-11f0-9a5e-0b1f2a3c4d5e","version":"0","request":{"ipChain":[{"ip":"203.0.113.45","geographicalContext":{"city":"Lisbon","state":"Lisbon","country":"Portugal","postalCode":"1000-001","geolocation":{"lat":38.7223,"lon":-9.1393}},"version":"V4","source":null}]},"target":[{"id":"00u1abcdEFGH2345ijk7","type":"User","alternateId":"alex.rivera@example.com","displayName":"Alex Rivera","detailEntry":null},{"id":"opf1abcdEFGH2345ijk7","type":"AuthenticatorEnrollment","alternateId":"unknown","displayName":"Okta Verify","detailEntry":null}]}"#;

/// A Graph `/auditLogs/signIns` record: MFA denied (500121).
const ENTRA_SIGNIN: &str = r#"{"id":"66ea54eb-6301-4ee5-be62-ff5a759b0100","createdDateTime":"2026-03-01T10:02:03.1234567Z","userDisplayName":"Alex Rivera","userPrincipalName":"alex.rivera@example.com","userId":"d3b1a9c2-1f2e-4c5d-8e9f-0a1b2c3d4e5f","appId":"00000003-0000-0ff1-ce00-000000000000","appDisplayName":"Office 365 SharePoint Online","ipAddress":"203.0.113.45","clientAppUsed":"Browser","correlationId":"5f0c1d2e-3f4a-4b5c-9d6e-7f8091a2b3c4","conditionalAccessStatus":"failure","isInteractive":true,"riskDetail":"none","riskLevelAggregated":"none","riskLevelDuringSignIn":"none","riskState":"none","riskEventTypes_v2":[],"resourceDisplayName":"Office 365 SharePoint Online","resourceId":"00000003-0000-0ff1-ce00-000000000000","authenticationRequirement":"multiFactorAuthentication","status":{"errorCode":500121,"failureReason":"Authentication failed during strong authentication request.","additionalDetails":"The user didn't complete the MFA prompt."},"deviceDetail":{"deviceId":"","displayName":null,"operatingSystem":"Windows10","browser":"Edge 124.0.0","isCompliant":false,"isManaged":false,"trustType":null},"location":{"city":"Lisbon","state":"Lisboa","countryOrRegion":"PT","geoCoordinates":{"altitude":null,"latitude":38.7223,"longitude":-9.1393}},"mfaDetail":{"authMethod":"Mobile app notification","authDetail":null},"appliedConditionalAccessPolicies":[]}"#;

/// A Graph `/auditLogs/directoryAudits` record.
const ENTRA_AUDIT: &str = r#"{"id":"Directory_0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9_ABCDE_12345678","category":"UserManagement","correlationId":"0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9","result":"success","resultReason":"","activityDisplayName":"Disable Strong Authentication","activityDateTime":"2026-03-01T10:05:00.5Z","loggedByService":"Core Directory","operationType":"Update","initiatedBy":{"app":null,"user":{"id":"9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a","displayName":null,"userPrincipalName":"it.admin@example.com","ipAddress":"198.51.100.7","userType":null,"homeTenantId":null,"homeTenantName":null}},"targetResources":[{"id":"d3b1a9c2-1f2e-4c5d-8e9f-0a1b2c3d4e5f","displayName":null,"type":"User","userPrincipalName":"alex.rivera@example.com","groupType":null,"modifiedProperties":[{"displayName":"StrongAuthenticationRequirement","oldValue":"[{\"State\":1}]","newValue":"[]"}]}],"additionalDetails":[]}"#;

fn one(line: &str) -> Event {
    let mut out = Vec::new();
    let n = Normalizer::default()
        .normalize_line(line, &mut out)
        .unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(n, 1);
    out.pop().unwrap()
}

fn attr<'e>(e: &'e Event, k: &str) -> Option<&'e str> {
    e.attributes
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

fn okta_event(uuid: &str, published: &str) -> String {
    format!(
        r#"{{"uuid":"{uuid}","published":"{published}","eventType":"user.mfa.okta_verify.deny_push","actor":{{"id":"00u1abcd","type":"User","alternateId":"a@example.com","displayName":null}},"outcome":{{"result":"FAILURE","reason":null}}}}"#
    )
}

fn hook(events: &[String]) -> String {
    format!(
        r#"{{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1","source":"https://example.okta.com/api/v1/eventHooks/who1abcd","eventId":"b7a3c2d1-0000-4000-8000-000000000001","data":{{"events":[{}]}},"eventTime":"2026-03-01T10:02:04.000Z","contentType":"application/json"}}"#,
        events.join(",")
    )
}

// A full Okta LogEvent maps every documented field, in attribute order.
#[test]
fn okta_full_record() {
    let e = one(OKTA_DENY_PUSH);
    assert_eq!(e.id, "2f6c1c1e-3b1a-11f0-9a5e-0b1f2a3c4d5e");
    assert_eq!(e.source, "okta");
    assert_eq!(e.kind, "user.mfa.okta_verify.deny_push");
    assert_eq!(e.class, EventClass::MfaChallenge);
    assert_eq!(e.time, 1_772_359_323_123);
    let actor = e.actor.as_ref().unwrap();
    assert_eq!(actor.id, "00u1abcdEFGH2345ijk7");
    assert_eq!(actor.kind, "User");
    assert_eq!(actor.login.as_deref(), Some("alex.rivera@example.com"));
    assert_eq!(actor.display_name.as_deref(), Some("Alex Rivera"));
    assert_eq!(e.targets.len(), 2);
    assert_eq!(e.targets[1].kind, "AuthenticatorEnrollment");
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(
        e.outcome_reason.as_deref(),
        Some("User rejected Okta push verify")
    );
    assert_eq!(e.client_ip.as_deref(), Some("203.0.113.45"));
    let geo = e.geo.as_ref().unwrap();
    assert_eq!(geo.country.as_deref(), Some("Portugal"));
    assert_eq!(geo.city.as_deref(), Some("Lisbon"));
    assert_eq!((geo.lat, geo.lon), (Some(38.7223), Some(-9.1393)));
    assert!(e.user_agent.as_deref().unwrap().starts_with("Mozilla/5.0"));
    assert_eq!(e.factor.as_deref(), Some("OKTA_VERIFY_PUSH"));
    let keys: Vec<&str> = e.attributes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "outcome-result",
            "is-proxy",
            "session-id",
            "threat-suspected",
            "risk",
            "risk-level",
            "behaviors",
            "authentication-step",
            "as-org",
            "severity"
        ]
    );
    assert_eq!(attr(&e, "is-proxy"), Some("false"));
    assert_eq!(attr(&e, "risk"), Some("{level=LOW}"));
    assert_eq!(attr(&e, "risk-level"), Some("low"));
    assert_eq!(attr(&e, "authentication-step"), Some("0"));
}

// debugData values arrive as strings, bools or numbers; all render as text.
// Without debugData.factor, the credentialType is the factor.
#[test]
fn okta_debug_data_types_and_credential_type() {
    let line = r#"{"uuid":"u-1","published":"2026-03-01T10:00:00Z","eventType":"user.session.start","authenticationContext":{"credentialType":"PASSWORD"},"debugContext":{"debugData":{"threatSuspected":true,"risk":3,"behaviors":{"New IP":"POSITIVE"}}}}"#;
    let e = one(line);
    assert_eq!(e.class, EventClass::Authentication);
    assert_eq!(e.factor.as_deref(), Some("PASSWORD"));
    assert_eq!(attr(&e, "threat-suspected"), Some("true"));
    assert_eq!(attr(&e, "risk"), Some("3"));
    assert_eq!(attr(&e, "behaviors"), Some(r#"{"New IP":"POSITIVE"}"#));
}

// Only eventType and published, every other field absent or null: works.
#[test]
fn okta_all_null_event() {
    let e = one(
        r#"{"eventType":"user.session.end","published":"2026-03-01 10:02:03","uuid":null,"actor":null,"target":null,"client":{"ipAddress":null,"geographicalContext":{"geolocation":null}},"outcome":null,"debugContext":{"debugData":null},"severity":null}"#,
    );
    assert_eq!(e.class, EventClass::Session);
    assert_eq!(e.time, 1_772_359_323_000);
    assert!(e.id.starts_with("sha256:"));
    assert!(e.actor.is_none());
    assert!(e.targets.is_empty());
    assert_eq!(e.outcome, Outcome::Unknown);
    assert!(e.geo.is_none());
    assert!(e.attributes.is_empty());
}

// Missing uuid: the id is derived from the line, identical on every call.
#[test]
fn missing_uuid_gives_stable_sha256_id() {
    let line = r#"{"eventType":"user.session.start","published":"2026-03-01T10:00:00Z"}"#;
    let a = one(line);
    let b = one(line);
    assert_eq!(a.id, b.id);
    assert_eq!(a.id.len(), "sha256:".len() + 32);
    assert!(
        a.id["sha256:".len()..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit())
    );
    // A CRLF line ending must not change the id.
    assert_eq!(one(&format!("{line}\r")).id, a.id);
    let other = one(r#"{"eventType":"user.session.start","published":"2026-03-01T10:00:01Z"}"#);
    assert_ne!(other.id, a.id);
}

// An Event Hook delivery with three LogEvents yields three events, in order,
// appended after what `out` already held.
#[test]
fn hook_envelope_three_events() {
    let line = hook(&[
        okta_event("e-1", "2026-03-01T10:00:00Z"),
        okta_event("e-2", "2026-03-01T10:00:01Z"),
        OKTA_DENY_PUSH.to_owned(),
    ]);
    let mut out = vec![one(ENTRA_AUDIT)];
    let n = Normalizer::default()
        .normalize_line(&line, &mut out)
        .unwrap();
    assert_eq!(n, 3);
    let ids: Vec<&str> = out[1..].iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["e-1", "e-2", "2f6c1c1e-3b1a-11f0-9a5e-0b1f2a3c4d5e"]);
    assert!(out[1..].iter().all(|e| e.source == "okta"));
}

// One bad element (no `published`) rejects the delivery, names the index and
// leaves `out` exactly as it was.
#[test]
fn hook_envelope_bad_element_is_all_or_nothing() {
    let line = hook(&[
        okta_event("e-1", "2026-03-01T10:00:00Z"),
        r#"{"uuid":"e-2","eventType":"user.session.start"}"#.to_owned(),
        okta_event("e-3", "2026-03-01T10:00:02Z"),
    ]);
    let mut out = vec![one(ENTRA_AUDIT)];
    let before_id = out[0].id.clone();
    let err = Normalizer::default()
        .normalize_line(&line, &mut out)
        .unwrap_err();
    assert!(
        matches!(err, NormalizeError::InEnvelope { index: 1, ref source, .. }
            if matches!(**source, NormalizeError::MissingField { field: "published", .. })),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("data.events[1]: "), "{err}");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id, before_id);
}

// A wrong-typed field inside a hook element costs only that field: the
// element is emitted, and the dropped field is named with its element.
#[test]
fn hook_envelope_wrong_type_drops_the_field() {
    let line = hook(&[
        okta_event("e-1", "2026-03-01T10:00:00Z"),
        r#"{"uuid":"e-2","eventType":"x","published":"2026-03-01T10:00:00Z","client":{"ipAddress":"198.51.100.1","geographicalContext":{"geolocation":{"lat":"north","lon":1.5}}}}"#.to_owned(),
    ]);
    let mut out = Vec::new();
    let mut report = LineReport::default();
    let n = Normalizer::default()
        .normalize_line_report(&line, &mut out, &mut report)
        .unwrap();
    assert_eq!(n, 2);
    assert!(report.rejected.is_empty());
    assert_eq!(
        report.dropped,
        [DroppedField {
            path: "data.events[1].client.geographicalContext.geolocation.lat".into(),
            message: "invalid type: string \"north\", expected a number".into(),
        }]
    );
    assert_eq!(out[1].client_ip.as_deref(), Some("198.51.100.1"));
    // Half a coordinate is no coordinate.
    assert!(out[1].geo.is_none());
}

// The hook marker without data.events is a missing field, not unknown.
#[test]
fn hook_without_events() {
    let err = Normalizer::default()
        .normalize_line(
            r#"{"eventType":"com.okta.event_hook","data":{}}"#,
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            NormalizeError::MissingField {
                field: "data.events",
                ..
            }
        ),
        "{err:?}"
    );
}

// Entra sign-in: MFA denied (500121) is an MFA challenge and a failure.
#[test]
fn entra_signin_full_record() {
    let e = one(ENTRA_SIGNIN);
    assert_eq!(e.id, "66ea54eb-6301-4ee5-be62-ff5a759b0100");
    assert_eq!(e.source, "entra");
    assert_eq!(e.kind, "Sign-in activity");
    assert_eq!(e.class, EventClass::MfaChallenge);
    assert_eq!(e.time, 1_772_359_323_123);
    let actor = e.actor.as_ref().unwrap();
    assert_eq!(actor.id, "d3b1a9c2-1f2e-4c5d-8e9f-0a1b2c3d4e5f");
    assert_eq!(actor.kind, "User");
    assert_eq!(actor.login.as_deref(), Some("alex.rivera@example.com"));
    assert_eq!(e.targets.len(), 1);
    assert_eq!(e.targets[0].kind, "Application");
    assert_eq!(
        e.targets[0].display_name.as_deref(),
        Some("Office 365 SharePoint Online")
    );
    assert_eq!(e.outcome, Outcome::Failure);
    assert!(
        e.outcome_reason
            .as_deref()
            .unwrap()
            .starts_with("Authentication failed")
    );
    assert_eq!(e.client_ip.as_deref(), Some("203.0.113.45"));
    assert_eq!(e.geo.as_ref().unwrap().country.as_deref(), Some("PT"));
    assert_eq!(e.geo.as_ref().unwrap().lon, Some(-9.1393));
    assert_eq!(e.user_agent, None);
    assert_eq!(e.factor.as_deref(), Some("Mobile app notification"));
    let keys: Vec<&str> = e.attributes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "error-code",
            "client-app",
            "authentication-requirement",
            "conditional-access-status",
            "risk-level",
            "additional-details",
            "interactive",
            "ca-mfa-required"
        ]
    );
    assert_eq!(attr(&e, "error-code"), Some("500121"));
    assert_eq!(attr(&e, "interactive"), Some("true"));
    // An empty policy list: no policy demanded MFA (known, not unknown).
    assert_eq!(attr(&e, "ca-mfa-required"), Some("false"));
}

// Sign-in success, "Other." reason suppressed, missing status → Unknown.
#[test]
fn entra_signin_outcomes() {
    let ok = one(
        r#"{"id":"s1","createdDateTime":"2026-03-01T10:00:00Z","userPrincipalName":"bo@example.com","status":{"errorCode":0,"failureReason":"Other."},"clientAppUsed":"IMAP4"}"#,
    );
    assert_eq!(ok.outcome, Outcome::Success);
    assert_eq!(ok.class, EventClass::Authentication);
    assert_eq!(ok.outcome_reason, None);
    assert_eq!(ok.actor.as_ref().unwrap().id, "bo@example.com");
    assert_eq!(attr(&ok, "client-app"), Some("IMAP4"));
    let unknown = one(
        r#"{"id":"s2","createdDateTime":"2026-03-01T10:00:00Z","userId":"u2","status":null,"location":null}"#,
    );
    assert_eq!(unknown.outcome, Outcome::Unknown);
    assert!(unknown.geo.is_none());
    assert!(unknown.targets.is_empty());
}

// Entra directory audit: actor from initiatedBy.user (and the client IP from
// its ipAddress), targets from targetResources, result mapped, the Graph ""
// reason treated as absent.
#[test]
fn entra_audit_full_record() {
    let e = one(ENTRA_AUDIT);
    assert_eq!(e.kind, "Disable Strong Authentication");
    assert_eq!(e.class, EventClass::PolicyChange);
    assert_eq!(e.time, 1_772_359_500_500);
    let actor = e.actor.as_ref().unwrap();
    assert_eq!(actor.id, "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a");
    assert_eq!(actor.login.as_deref(), Some("it.admin@example.com"));
    assert_eq!(actor.display_name, None);
    assert_eq!(e.client_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(e.targets[0].kind, "User");
    assert_eq!(
        e.targets[0].login.as_deref(),
        Some("alex.rivera@example.com")
    );
    assert_eq!(e.outcome, Outcome::Success);
    assert_eq!(e.outcome_reason, None);
    assert_eq!(attr(&e, "category"), Some("UserManagement"));
    assert_eq!(attr(&e, "operation-type"), Some("Update"));
    assert_eq!(attr(&e, "logged-by-service"), Some("Core Directory"));
}

// An app-initiated audit uses the service principal as actor.
#[test]
fn entra_audit_app_actor() {
    let e = one(
        r#"{"id":"a2","activityDisplayName":"Update conditional access policy","activityDateTime":"2026-03-01T10:00:00Z","result":"failure","initiatedBy":{"user":null,"app":{"appId":"app-1","displayName":"Automation","servicePrincipalId":"sp-1"}},"targetResources":[null,{"id":"pol-1","type":"Policy","displayName":"Require MFA"}]}"#,
    );
    let actor = e.actor.unwrap();
    assert_eq!(
        (actor.id.as_str(), actor.kind.as_str()),
        ("sp-1", "Application")
    );
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.targets.len(), 1);
}

// Timestamps: both accepted forms, and a bad one is BadTime naming the field.
#[test]
fn time_formats_and_bad_time() {
    let a = one(&okta_event("t1", "2026-03-01T10:02:03.123Z"));
    let b = one(&okta_event("t2", "2026-03-01 10:02:03.123"));
    assert_eq!(a.time, b.time);
    let err = Normalizer::default()
        .normalize_line(&okta_event("t3", "03/01/2026 10:02"), &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(err, NormalizeError::BadTime { field: "published", ref value } if value == "03/01/2026 10:02"),
        "{err:?}"
    );
    let err = Normalizer::default()
        .normalize_line(
            r#"{"id":"x","activityDisplayName":"Update user","activityDateTime":"soon"}"#,
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        NormalizeError::BadTime {
            field: "activityDateTime",
            ..
        }
    ));
}

// Okta event without `published` (or with null): MissingField, not unknown.
#[test]
fn okta_missing_published() {
    for line in [
        r#"{"uuid":"x","eventType":"user.session.start"}"#,
        r#"{"uuid":"x","eventType":"user.session.start","published":null}"#,
    ] {
        let err = Normalizer::default()
            .normalize_line(line, &mut Vec::new())
            .unwrap_err();
        assert!(
            matches!(
                err,
                NormalizeError::MissingField {
                    format: "okta",
                    field: "published"
                }
            ),
            "{err:?}"
        );
    }
}

// Not JSON (and truncated JSON) → InvalidJson with serde's column.
#[test]
fn invalid_json() {
    for line in [
        r#"{"eventType": "user.session.start", "published": "#,
        "not json",
        "{,}",
    ] {
        let err = Normalizer::default()
            .normalize_line(line, &mut Vec::new())
            .unwrap_err();
        let NormalizeError::InvalidJson(msg) = &err else {
            panic!("{line}: {err:?}")
        };
        assert!(msg.contains("column"), "{msg}");
    }
}

// Valid JSON of no known shape (object, array, scalar) → UnknownFormat with
// the expected keys spelled out.
#[test]
fn unknown_format() {
    for line in [
        r#"{"hello":"world"}"#,
        "[1,2]",
        "42",
        r#"{"createdDateTime":"2026-03-01T10:00:00Z"}"#,
    ] {
        let err = Normalizer::default()
            .normalize_line(line, &mut Vec::new())
            .unwrap_err();
        assert!(
            matches!(&err, NormalizeError::UnknownFormat(m) if m.contains("data.events") && m.contains("activityDateTime")),
            "{line}: {err:?}"
        );
    }
}

// Blank lines (and a lone BOM) yield nothing and no error.
#[test]
fn blank_lines() {
    let mut out = Vec::new();
    for line in ["", "   ", "\r", "\u{feff}"] {
        assert_eq!(
            Normalizer::default()
                .normalize_line(line, &mut out)
                .unwrap(),
            0
        );
    }
    assert!(out.is_empty());
}

// Attribute count is capped (tail dropped) and long values are cut at a
// char boundary, never inside a multi-byte character.
#[test]
fn attribute_bounds() {
    let n = Normalizer {
        max_attributes: 2,
        max_attribute_len: 5,
    };
    let mut out = Vec::new();
    n.normalize_line(OKTA_DENY_PUSH, &mut out).unwrap();
    let e = &out[0];
    assert_eq!(
        e.attributes,
        [
            ("outcome-result".to_owned(), "FAILU".to_owned()),
            ("is-proxy".to_owned(), "false".to_owned())
        ]
    );
    // "é" is 2 bytes: 5 bytes of "ééé" would split the third one.
    let mut attrs = Vec::new();
    n.push_attr(&mut attrs, "k", "ééé");
    assert_eq!(attrs[0].1, "éé");
    let zero = Normalizer {
        max_attributes: 0,
        max_attribute_len: 1024,
    };
    let mut out = Vec::new();
    zero.normalize_line(OKTA_DENY_PUSH, &mut out).unwrap();
    assert!(out[0].attributes.is_empty());
}

// Every line of the repository's fixtures and sample normalizes, except the
// deliberate bad lines of malformed.jsonl (2, 5, 8 are bad, 7 is empty; see
// tests/fixtures/README.md). Root: $VIGIL_REPO, else this crate's parent.
#[test]
fn repository_fixtures_normalize() {
    let root = std::env::var("VIGIL_REPO")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let n = Normalizer::default();
    let files = [
        ("host/samples/sample-events.jsonl", &[][..]),
        ("tests/fixtures/push-bombing.jsonl", &[][..]),
        ("tests/fixtures/push-near-miss.jsonl", &[][..]),
        ("tests/fixtures/benign.jsonl", &[][..]),
        ("tests/fixtures/protected-push-bombing.jsonl", &[][..]),
        ("tests/fixtures/entra-signins.jsonl", &[][..]),
        ("tests/fixtures/malformed.jsonl", &[2, 5, 8][..]),
    ];
    for (file, bad) in files {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (set VIGIL_REPO)", path.display()));
        let mut out = Vec::new();
        let mut rejected = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if let Err(e) = n.normalize_line(line, &mut out) {
                rejected.push((i + 1, e.to_string()));
            }
        }
        let lines: Vec<usize> = rejected.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, bad, "{file}: {rejected:?}");
        assert!(!out.is_empty(), "{file}");
        assert!(
            out.windows(2).all(|w| w[0].time <= w[1].time),
            "{file} not sorted by time"
        );
    }
}

// ---------------------------------------------------------------------------
// Lenient fields, strict essentials (issue 12, item 3).

/// Normalizes a line in report mode; panics on a whole-line reject.
fn with_report(line: &str) -> (Vec<Event>, LineReport) {
    let mut out = Vec::new();
    let mut report = LineReport::default();
    Normalizer::default()
        .normalize_line_report(line, &mut out, &mut report)
        .unwrap_or_else(|e| panic!("{e}: {line}"));
    (out, report)
}

fn dropped_paths(r: &LineReport) -> Vec<&str> {
    r.dropped.iter().map(|d| d.path.as_str()).collect()
}

// Each kind of mistyped optional field drops that field (named, counted),
// never the event; the rest of the event is intact.
#[test]
fn mistyped_fields_drop_the_field_not_the_event() {
    let base = r#""uuid":"m-1","published":"2026-03-01T10:00:00Z","eventType":"user.session.start","actor":{"id":"00u1","type":"User","alternateId":"a@example.com"}"#;
    for (extra, path, still) in [
        // An object that arrives as an empty string.
        (
            r#""debugContext":{"debugData":""}"#,
            "debugContext.debugData",
            None,
        ),
        // A number that arrives as a string.
        (
            r#""client":{"ipAddress":"198.51.100.9","geographicalContext":{"country":"Spain","geolocation":{"lat":"40.4","lon":-3.7}}}"#,
            "client.geographicalContext.geolocation.lat",
            Some("198.51.100.9"),
        ),
        // A bool that arrives as a string.
        (
            r#""securityContext":{"isProxy":"false","asOrg":"x"},"client":{"ipAddress":"198.51.100.9"}"#,
            "securityContext.isProxy",
            Some("198.51.100.9"),
        ),
        // An object where a string was expected.
        (
            r#""client":{"ipAddress":{"v4":"198.51.100.9"}}"#,
            "client.ipAddress",
            None,
        ),
        // An object where a list was expected.
        (r#""target":{"id":"00u2"}"#, "target", None),
        // A number where a string was expected.
        (r#""severity":3"#, "severity", None),
    ] {
        let line = format!("{{{base},{extra}}}");
        let (out, report) = with_report(&line);
        assert_eq!(out.len(), 1, "{line}");
        assert_eq!(dropped_paths(&report), [path], "{line}");
        assert!(!report.dropped[0].message.is_empty());
        let e = &out[0];
        assert_eq!(e.id, "m-1");
        assert_eq!(e.actor.as_ref().unwrap().id, "00u1");
        assert_eq!(e.client_ip.as_deref(), still, "{line}");
        // The all-or-nothing entry point keeps the event too (and logs).
        let mut strict = Vec::new();
        assert_eq!(
            Normalizer::default()
                .normalize_line(&line, &mut strict)
                .unwrap(),
            1
        );
    }
}

// Several mistakes in one event: all named, event kept.
#[test]
fn several_mistyped_fields_in_one_event() {
    let (out, report) = with_report(
        r#"{"uuid":"m-2","published":"2026-03-01T10:00:00Z","eventType":"user.session.start","severity":[],"debugContext":{"debugData":7},"outcome":{"result":"SUCCESS","reason":{}}}"#,
    );
    assert_eq!(out.len(), 1);
    // In the order the repair finds them (the parsed value's key order).
    assert_eq!(
        dropped_paths(&report),
        ["debugContext.debugData", "outcome.reason", "severity"]
    );
    assert_eq!(out[0].outcome, Outcome::Success);
}

// The essentials (id, time, type) reject the event when mistyped, naming
// the field; a missing id still falls back to a hash.
#[test]
fn mistyped_essentials_reject_with_the_reason() {
    for (line, field) in [
        (
            r#"{"uuid":"x","published":1772359323123,"eventType":"user.session.start"}"#,
            "published",
        ),
        (
            r#"{"uuid":5,"published":"2026-03-01T10:00:00Z","eventType":"user.session.start"}"#,
            "uuid",
        ),
        (
            r#"{"uuid":"x","published":"2026-03-01T10:00:00Z","eventType":{"name":"user.session.start"}}"#,
            "eventType",
        ),
        (
            r#"{"id":"s","createdDateTime":true,"userId":"u1","status":{"errorCode":0}}"#,
            "createdDateTime",
        ),
    ] {
        let err = Normalizer::default()
            .normalize_line_report(line, &mut Vec::new(), &mut LineReport::default())
            .unwrap_err();
        assert_eq!(err.reason(), "wrong-type", "{line}: {err}");
        assert!(
            matches!(&err, NormalizeError::WrongType { field: f, .. } if f == field),
            "{line}: {err:?}"
        );
        assert!(err.to_string().contains(field), "{err}");
    }
}

/// A hook of `good` valid deny pushes with one bad event at `bad_at`.
fn hook_with_one_bad(good: usize, bad_at: usize, bad: &str) -> String {
    let mut events: Vec<String> = (0..good)
        .map(|i| okta_event(&format!("g-{i:02}"), "2026-03-01T10:00:00Z"))
        .collect();
    events.insert(bad_at, bad.to_owned());
    hook(&events)
}

// Issue 12: a hook of 25 good events and one bad one → 25 events, and the
// bad one reported by index and reason; the all-or-nothing entry point
// still refuses the whole delivery.
#[test]
fn hook_of_25_good_and_1_bad_processes_25() {
    for (bad, reason) in [
        (
            r#"{"uuid":"bad","eventType":"user.session.start"}"#,
            "missing-field",
        ),
        (
            r#"{"uuid":"bad","eventType":"user.session.start","published":"yesterday"}"#,
            "bad-time",
        ),
        (
            r#"{"uuid":"bad","eventType":"user.session.start","published":17}"#,
            "wrong-type",
        ),
        (r#""not an event""#, "wrong-type"),
        ("null", "missing-field"),
    ] {
        let line = hook_with_one_bad(25, 7, bad);
        let (out, report) = with_report(&line);
        assert_eq!(out.len(), 25, "{bad}");
        assert_eq!(report.rejected.len(), 1, "{bad}");
        let err = &report.rejected[0];
        assert_eq!(err.element_index(), Some(7));
        assert_eq!(err.reason(), reason, "{bad}: {err}");
        assert!(err.to_string().starts_with("data.events[7]: "), "{err}");
        let ids: Vec<&str> = out.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids[6..8], ["g-06", "g-07"]);
        assert!(!ids.contains(&"bad"));
        // POST /v1/events semantics: nothing.
        let mut strict = vec![one(ENTRA_AUDIT)];
        let err = Normalizer::default()
            .normalize_line(&line, &mut strict)
            .unwrap_err();
        assert_eq!(err.element_index(), Some(7));
        assert_eq!(strict.len(), 1);
    }
}

// Hook elements without a uuid get distinct, stable ids (the hash mixes in
// `#data.events[i]`, as it always did).
#[test]
fn hook_elements_without_uuid_have_distinct_stable_ids() {
    let e = r#"{"eventType":"user.session.start","published":"2026-03-01T10:00:00Z"}"#;
    let line = hook(&[e.to_owned(), e.to_owned()]);
    let (a, _) = with_report(&line);
    let (b, _) = with_report(&line);
    assert_ne!(a[0].id, a[1].id);
    assert_eq!(a[0].id, b[0].id);
    let mut h = Sha256::new();
    h.update(line.as_bytes());
    h.update(b"#data.events[1]");
    assert_eq!(
        a[1].id,
        format!("sha256:{}", hex::encode(&h.finalize()[..16]))
    );
}

// ---------------------------------------------------------------------------
// Export shapes (item 2).

/// An Azure Monitor sign-in record around a Graph record.
const AZURE_SIGNIN: &str = r#"{"time":"2026-03-01T10:02:04.0000000Z","resourceId":"/tenants/t/providers/Microsoft.aadiam","operationName":"Sign-in activity","operationVersion":"1.0","category":"SignInLogs","tenantId":"t","resultType":"500121","resultSignature":"FAILURE","resultDescription":"Authentication failed during strong authentication request.","durationMs":0,"callerIpAddress":"203.0.113.45","correlationId":"c","identity":"Alex Rivera","Level":4,"location":"PT","properties":{"id":"az-1","createdDateTime":"2026-03-01T10:02:03.1234567+00:00","userDisplayName":"Alex Rivera","userPrincipalName":"alex.rivera@example.com","userId":"u-1","appId":"app-1","appDisplayName":"OfficeHome","ipAddress":"203.0.113.45","clientAppUsed":"Browser","status":{"errorCode":500121,"failureReason":"Authentication failed during strong authentication request."},"location":{"city":"Lisbon","state":"Lisboa","countryOrRegion":"PT","geoCoordinates":{"latitude":38.7223,"longitude":-9.1393}},"isInteractive":true,"appliedConditionalAccessPolicies":[{"id":"p1","displayName":"Require MFA","enforcedGrantControls":["Mfa"],"enforcedSessionControls":[],"result":"failure"}]}}"#;

// An Azure Monitor SignInLogs record is the Graph sign-in it wraps, plus
// its category.
#[test]
fn azure_monitor_signin() {
    let e = one(AZURE_SIGNIN);
    assert_eq!(e.id, "az-1");
    assert_eq!(e.source, "entra");
    assert_eq!(e.kind, "Sign-in activity");
    assert_eq!(e.class, EventClass::MfaChallenge);
    assert_eq!(e.time, 1_772_359_323_123);
    assert_eq!(e.actor.as_ref().unwrap().id, "u-1");
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.client_ip.as_deref(), Some("203.0.113.45"));
    assert_eq!(e.geo.as_ref().unwrap().city.as_deref(), Some("Lisbon"));
    assert_eq!(attr(&e, "log-category"), Some("SignInLogs"));
    assert_eq!(attr(&e, "ca-mfa-required"), Some("true"));
    assert_eq!(attr(&e, "ca-mfa-result"), Some("failure"));
    assert_eq!(attr(&e, "ca-mfa-policies"), Some("Require MFA"));
}

// What the Graph record lacks, the wrapper gives: time, error code, IP,
// country; "<null>" is no IP.
#[test]
fn azure_monitor_wrapper_fills_gaps() {
    let e = one(
        r#"{"time":"2026-03-01T10:02:03.123Z","category":"NonInteractiveUserSignInLogs","operationName":"Sign-in activity","resultType":"0","callerIpAddress":"198.51.100.4","location":"DE","properties":{"id":"az-2","userPrincipalName":"a@example.com","userId":"u-2"}}"#,
    );
    assert_eq!(e.time, 1_772_359_323_123);
    assert_eq!(e.outcome, Outcome::Success);
    assert_eq!(attr(&e, "error-code"), Some("0"));
    assert_eq!(attr(&e, "interactive"), Some("false"));
    assert_eq!(e.client_ip.as_deref(), Some("198.51.100.4"));
    assert_eq!(e.geo.as_ref().unwrap().country.as_deref(), Some("DE"));
    let audit = one(
        r#"{"time":"2026-03-01T10:05:00Z","category":"AuditLogs","operationName":"Disable Strong Authentication","callerIpAddress":"<null>","properties":{"id":"az-3","activityDisplayName":"Disable Strong Authentication","result":"success","initiatedBy":{"user":{"id":"adm","userPrincipalName":"it.admin@example.com","ipAddress":"<null>"}}}}"#,
    );
    assert_eq!(audit.kind, "Disable Strong Authentication");
    assert_eq!(audit.class, EventClass::PolicyChange);
    assert_eq!(audit.time, 1_772_359_500_000);
    assert_eq!(audit.client_ip, None);
    assert_eq!(attr(&audit, "log-category"), Some("AuditLogs"));
}

// Service principal and managed identity sign-ins are not users: their own
// kinds, the principal as actor, the resource as target.
#[test]
fn azure_monitor_service_principal_and_managed_identity() {
    for (category, kind, actor_kind) in [
        (
            "ServicePrincipalSignInLogs",
            KIND_SP_SIGN_IN,
            "ServicePrincipal",
        ),
        (
            "ManagedIdentitySignInLogs",
            KIND_MI_SIGN_IN,
            "ManagedIdentity",
        ),
    ] {
        let e = one(&format!(
            r#"{{"time":"2026-03-01T10:00:00Z","category":"{category}","resultType":"0","properties":{{"id":"sp-{category}","createdDateTime":"2026-03-01T10:00:00Z","appId":"app-9","servicePrincipalId":"sp-9","servicePrincipalName":"ci-bot","resourceId":"res-1","resourceDisplayName":"Microsoft Graph","ipAddress":"","status":{{"errorCode":0}}}}}}"#
        ));
        assert_eq!(e.kind, kind);
        let actor = e.actor.as_ref().unwrap();
        assert_eq!(
            (actor.id.as_str(), actor.kind.as_str()),
            ("sp-9", actor_kind)
        );
        assert_eq!(actor.display_name.as_deref(), Some("ci-bot"));
        assert_eq!(e.targets[0].id, "res-1");
        assert_eq!(e.client_ip, None);
        assert_eq!(attr(&e, "interactive"), Some("false"));
    }
}

// Categories Vigil does not read are named in the reject.
#[test]
fn azure_monitor_unknown_category() {
    let err = Normalizer::default()
        .normalize_line(
            r#"{"time":"2026-03-01T10:00:00Z","category":"ProvisioningLogs","properties":{"id":"p"}}"#,
            &mut Vec::new(),
        )
        .unwrap_err();
    assert_eq!(err.reason(), "unknown-format");
    assert!(err.to_string().contains("\"ProvisioningLogs\""), "{err}");
}

// An Event Hub batch and a Graph list page are many records on one line;
// a bad one costs only itself, reported as records[i] / value[i].
#[test]
fn event_hub_batch_and_graph_page() {
    let bad =
        r#"{"time":"2026-03-01T10:00:00Z","category":"SignInLogs","properties":{"id":"nobody"}}"#;
    let line = format!(r#"{{"records":[{AZURE_SIGNIN},{bad},{AZURE_SIGNIN}]}}"#);
    let (out, report) = with_report(&line);
    assert_eq!(out.len(), 2);
    assert_eq!(report.rejected.len(), 1);
    assert!(
        report.rejected[0]
            .to_string()
            .starts_with("records[1]: entra-signin: missing required field `userId`"),
        "{}",
        report.rejected[0]
    );
    let page = format!(
        r#"{{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns","@odata.nextLink":"https://graph.microsoft.com/v1.0/auditLogs/signIns?$skiptoken=x","value":[{ENTRA_SIGNIN},{ENTRA_AUDIT}]}}"#
    );
    let (out, report) = with_report(&page);
    assert!(report.is_empty());
    assert_eq!(out[0].kind, "Sign-in activity");
    assert_eq!(out[1].kind, "Disable Strong Authentication");
    // An empty page is no events and no error; a batch in a batch is refused.
    assert_eq!(with_report(r#"{"value":[]}"#).0.len(), 0);
    let nested = with_report(&format!(
        r#"{{"records":[{{"records":[{AZURE_SIGNIN}]}}]}}"#
    ))
    .1;
    assert!(
        nested.rejected[0]
            .to_string()
            .contains("batch inside a batch")
    );
}

// SIEM exports with lower-cased top-level Okta keys read the same.
#[test]
fn okta_lowercased_top_level_keys() {
    let lower = OKTA_DENY_PUSH
        .replace("\"eventType\"", "\"eventtype\"")
        .replace("\"authenticationContext\"", "\"authenticationcontext\"")
        .replace("\"securityContext\"", "\"securitycontext\"")
        .replace("\"debugContext\"", "\"debugcontext\"")
        .replace("\"displayMessage\"", "\"displaymessage\"")
        .replace("\"legacyEventType\"", "\"legacyeventtype\"");
    let a = one(OKTA_DENY_PUSH);
    let b = one(&lower);
    assert_eq!(a.kind, b.kind);
    assert_eq!(a.factor, b.factor);
    assert_eq!(a.attributes, b.attributes);
}

// ---------------------------------------------------------------------------
// Fidelity (item 4).

// Placeholder IPs are no IP, in every vendor's field.
#[test]
fn placeholder_ips_are_no_ip() {
    for ip in ["null", "", "unknown", "<null>"] {
        let okta = one(&format!(
            r#"{{"uuid":"i","published":"2026-03-01T10:00:00Z","eventType":"user.session.start","client":{{"ipAddress":"{ip}"}}}}"#
        ));
        assert_eq!(okta.client_ip, None, "{ip:?}");
        let entra = one(&format!(
            r#"{{"id":"s","createdDateTime":"2026-03-01T10:00:00Z","userId":"u","ipAddress":"{ip}"}}"#
        ));
        assert_eq!(entra.client_ip, None, "{ip:?}");
    }
}

// Geolocation 0,0 with no country or city is no geo, in both vendors.
#[test]
fn null_island_is_no_geo() {
    let okta = one(
        r#"{"uuid":"g","published":"2026-03-01T10:00:00Z","eventType":"user.session.start","client":{"geographicalContext":{"city":null,"country":null,"geolocation":{"lat":0.0,"lon":0.0}}}}"#,
    );
    assert!(okta.geo.is_none());
    let entra = one(
        r#"{"id":"s","createdDateTime":"2026-03-01T10:00:00Z","userId":"u","location":{"city":"","state":"","countryOrRegion":"","geoCoordinates":{"latitude":0,"longitude":0}}}"#,
    );
    assert!(entra.geo.is_none());
}

// policy.evaluate_sign_on is part of a sign-in; the policy type, risk
// level, step and credential type are attributes.
#[test]
fn okta_policy_and_authentication_attributes() {
    let e = one(
        r#"{"uuid":"p","published":"2026-03-01T10:00:00Z","eventType":"policy.evaluate_sign_on","outcome":{"result":"CHALLENGE"},"target":[{"id":"0oa1","type":"AppInstance","alternateId":"Okta Admin Console","detailEntry":{"signOnModeType":"OPENID_CONNECT"}},{"id":"00p1","type":"PolicyEntity","alternateId":"unknown","displayName":"Default Policy","detailEntry":{"policyType":"Okta:SignOn"}}],"authenticationContext":{"authenticationStep":1,"credentialType":"OTP","credentialProvider":"OKTA_CREDENTIAL_PROVIDER"},"debugContext":{"debugData":{"logOnlySecurityData":"{\"risk\":{\"level\":\"HIGH\"},\"behaviors\":{\"New IP\":\"POSITIVE\"}}"}}}"#,
    );
    assert_eq!(e.class, EventClass::Authentication);
    assert_eq!(attr(&e, "policy-type"), Some("Okta:SignOn"));
    assert_eq!(attr(&e, "risk-level"), Some("high"));
    assert_eq!(attr(&e, "authentication-step"), Some("1"));
    assert_eq!(attr(&e, "credential-type"), Some("OTP"));
    assert_eq!(
        attr(&e, "credential-provider"),
        Some("OKTA_CREDENTIAL_PROVIDER")
    );
    // A logOnlySecurityData that is not JSON is dropped with a note.
    let (out, report) = with_report(
        r#"{"uuid":"q","published":"2026-03-01T10:00:00Z","eventType":"user.session.start","debugContext":{"debugData":{"logOnlySecurityData":"{risk=HIGH"}}}"#,
    );
    assert_eq!(attr(&out[0], "risk-level"), None);
    assert_eq!(
        dropped_paths(&report),
        ["debugContext.debugData.logOnlySecurityData"]
    );
    // The risk map form `{reasons=..., level=MEDIUM}`.
    let e = one(
        r#"{"uuid":"r","published":"2026-03-01T10:00:00Z","eventType":"user.session.start","debugContext":{"debugData":{"risk":"{reasons=Anomalous Device, level=MEDIUM}"}}}"#,
    );
    assert_eq!(attr(&e, "risk-level"), Some("medium"));
}

// A sign-in whose only enforced Conditional Access policy demanded a
// compliant device: CA succeeded, but no MFA was demanded. Report-only and
// not-applied policies do not count.
#[test]
fn entra_ca_device_only_vs_mfa() {
    let signin = |policies: &str| {
        one(&format!(
            r#"{{"id":"s","createdDateTime":"2026-03-01T10:00:00Z","userId":"u","conditionalAccessStatus":"success","appliedConditionalAccessPolicies":{policies}}}"#
        ))
    };
    let device = signin(
        r#"[{"id":"1","displayName":"Device","enforcedGrantControls":["RequireCompliantDevice"],"result":"success"},{"id":"2","displayName":"MFA","enforcedGrantControls":["Mfa"],"result":"notApplied"},{"id":"3","displayName":"Strength","enforcedGrantControls":["RequireAuthenticationStrength"],"result":"reportOnlySuccess"}]"#,
    );
    assert_eq!(attr(&device, "ca-mfa-required"), Some("false"));
    assert_eq!(attr(&device, "ca-mfa-result"), None);
    assert_eq!(
        attr(&device, "ca-grant-controls"),
        Some("RequireCompliantDevice")
    );
    let mfa = signin(
        r#"[{"id":"1","displayName":"Device","enforcedGrantControls":["RequireCompliantDevice"],"result":"success"},{"id":"2","displayName":"MFA for all","enforcedGrantControls":["Mfa"],"result":"success"}]"#,
    );
    assert_eq!(attr(&mfa, "ca-mfa-required"), Some("true"));
    assert_eq!(attr(&mfa, "ca-mfa-result"), Some("success"));
    assert_eq!(attr(&mfa, "ca-mfa-policies"), Some("MFA for all"));
    assert_eq!(
        attr(&mfa, "ca-grant-controls"),
        Some("RequireCompliantDevice,Mfa")
    );
    // No policy list at all (not readable): unknown, not "false".
    let unknown = one(r#"{"id":"s","createdDateTime":"2026-03-01T10:00:00Z","userId":"u"}"#);
    assert_eq!(attr(&unknown, "ca-mfa-required"), None);
}

// A Conditional Access policy update carries the policy's state and grant
// controls before and after; other modified properties their raw values.
#[test]
fn entra_modified_properties() {
    let old = r#"{\"id\":\"p1\",\"state\":\"enabled\",\"grantControls\":{\"operator\":\"OR\",\"builtInControls\":[\"mfa\",\"compliantDevice\"]}}"#;
    let new = r#"{\"id\":\"p1\",\"state\":\"enabledForReportingButNotEnforced\",\"grantControls\":{\"operator\":\"OR\",\"builtInControls\":[\"compliantDevice\"]}}"#;
    let e = one(&format!(
        r#"{{"id":"a","activityDisplayName":"Update conditional access policy","activityDateTime":"2026-03-01T10:00:00Z","targetResources":[{{"id":"p1","type":"Policy","displayName":"Require MFA","modifiedProperties":[{{"displayName":"ConditionalAccessPolicy","oldValue":"{old}","newValue":"{new}"}}]}}]}}"#
    ));
    assert_eq!(attr(&e, "policy-old-state"), Some("enabled"));
    assert_eq!(
        attr(&e, "policy-new-state"),
        Some("enabledForReportingButNotEnforced")
    );
    assert_eq!(
        attr(&e, "policy-old-grant-controls"),
        Some("mfa,compliantDevice")
    );
    assert_eq!(
        attr(&e, "policy-new-grant-controls"),
        Some("compliantDevice")
    );
    assert!(
        attr(&e, "old:ConditionalAccessPolicy")
            .unwrap()
            .starts_with("{\"id\":\"p1\"")
    );
    let e = one(ENTRA_AUDIT);
    assert_eq!(
        attr(&e, "old:StrongAuthenticationRequirement"),
        Some(r#"[{"State":1}]"#)
    );
    assert_eq!(attr(&e, "new:StrongAuthenticationRequirement"), Some("[]"));
}

// Every file of the real-shape corpus normalizes with no reject and no
// dropped field (the expected output is checked through the binary in
// tests/cli.rs).
#[test]
fn real_corpus_normalizes_cleanly() {
    let root = std::env::var("VIGIL_REPO")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let dir = root.join("tests/fixtures/real");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".jsonl") || name.ends_with(".expected.jsonl") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let mut events = 0;
        for line in text.lines() {
            let (out, report) = with_report(line);
            assert!(report.is_empty(), "{name}: {report:?}");
            events += out.len();
        }
        assert!(events > 0, "{name}");
    }
    assert!(files >= 12, "{files} corpus files in {}", dir.display());
}

// A large batch where every element has mistakes: every element is kept,
// every drop is named with its element (the repair works element by
// element, each within its own budget).
#[test]
fn large_batch_of_mistyped_elements() {
    let element = r#"{"time":"2026-03-01T10:00:00Z","category":"SignInLogs","properties":{"id":"ID","createdDateTime":"2026-03-01T10:00:00Z","userId":"u","isInteractive":"yes","location":{"geoCoordinates":{"latitude":"1","longitude":2}}}}"#;
    let elements: Vec<String> = (0..300)
        .map(|i| element.replace("\"ID\"", &format!("\"b-{i}\"")))
        .collect();
    let (out, report) = with_report(&format!(r#"{{"records":[{}]}}"#, elements.join(",")));
    assert_eq!(out.len(), 300);
    assert!(report.rejected.is_empty());
    assert_eq!(report.dropped.len(), 600);
    assert_eq!(
        report.dropped[598].path,
        "records[299].properties.isInteractive"
    );
    assert_eq!(
        report.dropped[599].path,
        "records[299].properties.location.geoCoordinates.latitude"
    );
}

//! The MFA-relevant configuration of an identity provider, as read through
//! its connector: what a baseline snapshot holds (see `crate::baseline`).
//!
//! Each object keeps the provider's own JSON (minus the fields that change
//! without anyone changing the configuration: `_links`, `created`,
//! `lastUpdated`, `modifiedDateTime`, …), so a restore can write back
//! exactly what was approved and an export reads like the vendor's API.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What kind of configuration object a [`PolicyObject`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    /// An Okta policy (`/api/v1/policies/{id}`) of an MFA-relevant type
    /// (`MFA_ENROLL`, `OKTA_SIGN_ON`, `ACCESS_POLICY`), with its rules.
    OktaPolicy,
    /// An Okta authenticator (`/api/v1/authenticators/{id}`).
    OktaAuthenticator,
    /// An Okta network zone of usage `POLICY` (`/api/v1/zones/{id}`): the
    /// networks policy rules trust or exclude.
    OktaNetworkZone,
    /// An Entra conditional access policy
    /// (`/identity/conditionalAccess/policies/{id}`).
    EntraCaPolicy,
    /// The Entra authentication methods policy
    /// (`/policies/authenticationMethodsPolicy`), one per tenant.
    EntraAuthMethodsPolicy,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 5] = [
        ObjectKind::OktaPolicy,
        ObjectKind::OktaAuthenticator,
        ObjectKind::OktaNetworkZone,
        ObjectKind::EntraCaPolicy,
        ObjectKind::EntraAuthMethodsPolicy,
    ];

    /// How an administrator calls it, for the diff's sentences.
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::OktaPolicy => "policy",
            ObjectKind::OktaAuthenticator => "authenticator",
            ObjectKind::OktaNetworkZone => "network zone",
            ObjectKind::EntraCaPolicy => "conditional access policy",
            ObjectKind::EntraAuthMethodsPolicy => "authentication methods policy",
        }
    }

    /// Whether `restore-policy` can write this object back.
    pub fn restorable(self) -> bool {
        matches!(self, ObjectKind::OktaPolicy | ObjectKind::EntraCaPolicy)
    }
}

/// One rule of an Okta policy (`/api/v1/policies/{id}/rules/{ruleId}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRule {
    pub id: String,
    pub name: String,
    /// The rule as the API returned it, volatile fields removed.
    pub body: Value,
}

/// One MFA-relevant configuration object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyObject {
    pub kind: ObjectKind,
    pub id: String,
    /// The display name (`name` in Okta, `displayName` in Graph).
    pub name: String,
    /// The object as the API returned it, volatile fields removed.
    pub body: Value,
    /// Its rules, in the provider's priority order (Okta policies only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<PolicyRule>,
}

impl PolicyObject {
    /// An object without rules from the provider's JSON: its `id`, its
    /// name from `name_field` (`name`, `displayName`), the body without
    /// [`VOLATILE_FIELDS`].
    pub fn from_json(kind: ObjectKind, body: Value, name_field: &str) -> Self {
        let text = |key: &str| {
            body.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        PolicyObject {
            kind,
            id: text("id"),
            name: text(name_field),
            body: without_volatile(body),
            rules: Vec::new(),
        }
    }
}

/// The fields removed from every object and rule before it is kept: they
/// change without the configuration changing, so they would make every
/// capture differ from the last.
pub const VOLATILE_FIELDS: &[&str] = &[
    "_links",
    "_embedded",
    "created",
    "lastUpdated",
    "createdDateTime",
    "modifiedDateTime",
    "@odata.context",
];

/// `value` without [`VOLATILE_FIELDS`] at its top level.
pub fn without_volatile(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        for field in VOLATILE_FIELDS {
            map.remove(*field);
        }
    }
    value
}

/// How an application is signed in to: the policies that decide whether
/// MFA is asked (Okta: its authentication policy; Entra: the enabled
/// conditional access policies that include it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSignIn {
    /// The application id as the provider names it in policies.
    pub app: String,
    /// Its display name (Okta `label`), or the id when unknown.
    pub name: String,
    pub policies: Vec<PolicyObject>,
}

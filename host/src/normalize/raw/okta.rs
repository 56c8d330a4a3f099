//! Okta System Log `LogEvent` serde shapes nested in `Record` (`actor`,
//! `target[]`, `client`, `outcome`, `authenticationContext`,
//! `securityContext`, `debugContext`): only the fields the normalizer reads.

use serde::Deserialize;

use super::{Scalar, Str};

/// `actor` and each `target[]` element.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaActor<'a> {
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub alternate_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
    /// Free-form per target type; only `policyType` is read.
    #[serde(borrow)]
    pub detail_entry: Option<OktaDetailEntry<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaDetailEntry<'a> {
    #[serde(borrow)]
    pub policy_type: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaClient<'a> {
    #[serde(borrow)]
    pub ip_address: Option<Str<'a>>,
    #[serde(borrow)]
    pub user_agent: Option<OktaUserAgent<'a>>,
    #[serde(borrow)]
    pub geographical_context: Option<OktaGeoContext<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaUserAgent<'a> {
    #[serde(borrow)]
    pub raw_user_agent: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaGeoContext<'a> {
    #[serde(borrow)]
    pub city: Option<Str<'a>>,
    #[serde(borrow)]
    pub country: Option<Str<'a>>,
    pub geolocation: Option<OktaGeolocation>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OktaGeolocation {
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OktaOutcome<'a> {
    #[serde(borrow)]
    pub result: Option<Str<'a>>,
    #[serde(borrow)]
    pub reason: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaAuthContext<'a> {
    #[serde(borrow)]
    pub external_session_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub credential_type: Option<Str<'a>>,
    #[serde(borrow)]
    pub credential_provider: Option<Str<'a>>,
    /// An integer in Okta's schema; `Scalar` so a quoted one still counts.
    #[serde(borrow)]
    pub authentication_step: Option<Scalar<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaSecurityContext<'a> {
    #[serde(borrow)]
    pub as_org: Option<Str<'a>>,
    pub is_proxy: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaDebugContext<'a> {
    #[serde(borrow)]
    pub debug_data: Option<OktaDebugData<'a>>,
}

/// Only the keys rules use; Okta sends dozens more (requestUri, dtHash, ...)
/// which serde skips. Values are `Scalar` because their JSON type varies.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OktaDebugData<'a> {
    #[serde(borrow)]
    pub factor: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub threat_suspected: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub risk: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub behaviors: Option<Scalar<'a>>,
    /// A JSON document in a string (`{"risk":{"level":"LOW"},"behaviors":
    /// {...}}`), or an object where a SIEM already expanded it.
    #[serde(borrow)]
    pub log_only_security_data: Option<Scalar<'a>>,
}

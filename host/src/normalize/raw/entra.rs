//! Microsoft Graph `signIn` and `directoryAudit` serde shapes nested in
//! `Record` (`location`, `status`, `appliedConditionalAccessPolicies`,
//! `mfaDetail`, `initiatedBy`, `targetResources`): only the fields the
//! normalizer reads.

use serde::Deserialize;

use super::{Scalar, Str};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraLocation<'a> {
    #[serde(borrow)]
    pub city: Option<Str<'a>>,
    #[serde(borrow)]
    pub country_or_region: Option<Str<'a>>,
    pub geo_coordinates: Option<EntraGeoCoordinates>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EntraGeoCoordinates {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraStatus<'a> {
    /// A number in Graph; `Scalar` so quoted exports still work.
    #[serde(borrow)]
    pub error_code: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub failure_reason: Option<Str<'a>>,
    #[serde(borrow)]
    pub additional_details: Option<Str<'a>>,
}

/// One `appliedConditionalAccessPolicies` element.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraCaPolicy<'a> {
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub enforced_grant_controls: Option<Vec<Option<Str<'a>>>>,
    #[serde(borrow)]
    pub result: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraMfaDetail<'a> {
    #[serde(borrow)]
    pub auth_method: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EntraInitiatedBy<'a> {
    #[serde(borrow)]
    pub user: Option<EntraUserIdentity<'a>>,
    #[serde(borrow)]
    pub app: Option<EntraAppIdentity<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraUserIdentity<'a> {
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow)]
    pub user_principal_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
    /// Where the user acted from (Graph's `initiatedBy.user.ipAddress`).
    #[serde(borrow)]
    pub ip_address: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraAppIdentity<'a> {
    #[serde(borrow)]
    pub service_principal_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub app_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraTarget<'a> {
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub user_principal_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub modified_properties: Option<Vec<Option<EntraModifiedProperty<'a>>>>,
}

/// One `targetResources[].modifiedProperties` element. The values are
/// strings (often JSON) in Graph; `Scalar` keeps an exporter's expanded
/// object as compact JSON.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntraModifiedProperty<'a> {
    #[serde(borrow)]
    pub display_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub old_value: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub new_value: Option<Scalar<'a>>,
}

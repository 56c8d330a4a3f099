//! Azure Monitor diagnostic records (what Entra ID's diagnostic settings
//! send to an Event Hub, a storage account or a Log Analytics export):
//! `{"time", "category", "operationName", "resultType", "callerIpAddress",
//! "location": "<country code>", "properties": {<the Graph record>}}`.
//! The `category` picks the Graph shape inside `properties`; the wrapper's
//! own fields fill what that record lacks (time, IP, country, result).

use super::entra::{self, SignInOf, Wrapper};
use super::raw::Record;
use super::{FORMAT_AZURE, NormalizeError, Normalizer, Notes, owned};
use crate::model::Event;

/// The categories Vigil reads, in the error message for the others.
const SUPPORTED: &str = "SignInLogs, NonInteractiveUserSignInLogs, ServicePrincipalSignInLogs, \
     ManagedIdentitySignInLogs, AuditLogs";

/// Normalizes one diagnostic record.
pub(crate) fn normalize(
    n: &Normalizer,
    r: &Record,
    notes: &mut Notes,
    fallback_id: impl FnOnce() -> String,
) -> Result<Event, NormalizeError> {
    let category = owned(&r.category).ok_or(NormalizeError::MissingField {
        format: FORMAT_AZURE,
        field: "category",
    })?;
    let props = r
        .properties
        .as_deref()
        .ok_or(NormalizeError::MissingField {
            format: FORMAT_AZURE,
            field: "properties",
        })?;
    let wrapper = Wrapper {
        outer: r,
        category: &category,
    };
    let mut notes = notes.nested("properties.");
    let of = |name: &str| category.eq_ignore_ascii_case(name);
    if of("AuditLogs") {
        return entra::normalize_audit(n, props, Some(&wrapper), &mut notes, fallback_id);
    }
    let who = if of("SignInLogs") || of("NonInteractiveUserSignInLogs") {
        SignInOf::User
    } else if of("ServicePrincipalSignInLogs") {
        SignInOf::ServicePrincipal
    } else if of("ManagedIdentitySignInLogs") {
        SignInOf::ManagedIdentity
    } else {
        return Err(NormalizeError::UnknownFormat(format!(
            "Azure Monitor category {:?} is not read (supported: {SUPPORTED})",
            category.chars().take(64).collect::<String>()
        )));
    };
    entra::normalize_signin(n, props, Some(&wrapper), who, &mut notes, fallback_id)
}

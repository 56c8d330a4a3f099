//! Signed one-time links: `<base_url>/v1/chat/links/<token>`, where the
//! token is
//!
//! ```text
//! <action id>.<approve|reject>.<expiry, Unix seconds>.<hex HMAC-SHA256>
//! ```
//!
//! and the HMAC, keyed with `[approvals.links] key`, covers a version tag,
//! the action id, the decision and the expiry. Nothing is stored per link:
//! a link decides a pending approval, and an approval leaves `pending` only
//! once, so each link (and its sibling) works once. A link expires after
//! `expire_secs` and never outlives its approval.
//!
//! Opening a link (`GET`) only shows what it would do; the decision is a
//! `POST` from that page, so a chat tool or a mail scanner that fetches the
//! link to preview it decides nothing.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Decision, is_action_id};
use crate::secret::Secret;

/// What the HMAC covers first, so a link signature is never valid as any
/// other signature made with the same key.
const DOMAIN: &[u8] = b"vigil-approval-link-v1";

/// Signs and checks links.
pub struct LinkSigner {
    key: Secret,
    base_url: String,
    expire_secs: u64,
}

/// The decision a valid link carries.
#[derive(Debug, PartialEq, Eq)]
pub struct SignedDecision {
    pub action_id: String,
    pub decision: Decision,
    /// Unix seconds.
    pub expires: i64,
}

/// Why a link is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this is not an approval link")]
    Malformed,
    #[error("this link's signature is not valid")]
    BadSignature,
    #[error("this link expired at {0}")]
    Expired(String),
}

impl LinkSigner {
    pub fn new(key: Secret, base_url: &str, expire_secs: u64) -> Self {
        LinkSigner {
            key,
            base_url: base_url.trim_end_matches('/').to_owned(),
            expire_secs,
        }
    }

    /// The approve and reject links for an approval expiring at
    /// `approval_expires_ms`, made at `now` (Unix seconds).
    pub fn links(&self, action_id: &str, approval_expires_ms: i64, now: i64) -> (String, String) {
        let expires = (now + self.expire_secs as i64).min(approval_expires_ms.div_euclid(1000));
        let url = |d| {
            format!(
                "{}/v1/chat/links/{}",
                self.base_url,
                self.token(action_id, d, expires)
            )
        };
        (url(Decision::Approve), url(Decision::Reject))
    }

    /// The token of one link.
    pub fn token(&self, action_id: &str, decision: Decision, expires: i64) -> String {
        let mac = self
            .mac(action_id, decision, expires)
            .finalize()
            .into_bytes();
        format!(
            "{action_id}.{}.{expires}.{}",
            decision.name(),
            hex::encode(mac)
        )
    }

    /// Checks a token's form, then its signature (in constant time), then
    /// its expiry against `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<SignedDecision, LinkError> {
        let mut parts = token.split('.');
        let (Some(action_id), Some(decision), Some(expires), Some(sig), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(LinkError::Malformed);
        };
        let decision = match decision {
            "approve" => Decision::Approve,
            "reject" => Decision::Reject,
            _ => return Err(LinkError::Malformed),
        };
        let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| LinkError::Malformed)?;
        if !is_action_id(action_id) {
            return Err(LinkError::Malformed);
        }
        self.mac(action_id, decision, expires)
            .verify_slice(&sig)
            .map_err(|_| LinkError::BadSignature)?;
        if now >= expires {
            let at = chrono::DateTime::from_timestamp(expires, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| expires.to_string());
            return Err(LinkError::Expired(at));
        }
        Ok(SignedDecision {
            action_id: action_id.to_owned(),
            decision,
            expires,
        })
    }

    fn mac(&self, action_id: &str, decision: Decision, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        for part in [
            DOMAIN,
            action_id.as_bytes(),
            decision.name().as_bytes(),
            expires.to_string().as_bytes(),
        ] {
            mac.update(part);
            mac.update(&[0]);
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> LinkSigner {
        LinkSigner::new(
            Secret::new("k".repeat(32)),
            "https://vigil.example.com/",
            900,
        )
    }

    #[test]
    fn a_link_round_trips_until_it_expires() {
        let s = signer();
        let now = 1_700_000_000;
        let (approve, reject) = s.links("act-00ff", (now + 3600) * 1000, now);
        let token = approve
            .strip_prefix("https://vigil.example.com/v1/chat/links/")
            .unwrap();
        let d = s.verify(token, now + 10).unwrap();
        assert_eq!(
            (d.action_id.as_str(), d.decision, d.expires),
            ("act-00ff", Decision::Approve, now + 900)
        );
        let token = reject.rsplit('/').next().unwrap();
        assert_eq!(s.verify(token, now).unwrap().decision, Decision::Reject);
        assert!(matches!(
            s.verify(token, now + 900),
            Err(LinkError::Expired(_))
        ));
    }

    #[test]
    fn a_link_never_outlives_its_approval() {
        let now = 1_700_000_000;
        let (approve, _) = signer().links("act-01", (now + 60) * 1000, now);
        assert!(
            approve.contains(&format!(".approve.{}.", now + 60)),
            "{approve}"
        );
    }

    #[test]
    fn tampered_links_are_refused() {
        let s = signer();
        let now = 1_700_000_000;
        let token = s.token("act-00ff", Decision::Approve, now + 100);
        // Another decision, action, expiry or key: the signature no longer fits.
        for forged in [
            token.replace(".approve.", ".reject."),
            token.replace("act-00ff", "act-00fe"),
            token.replace(&format!(".{}.", now + 100), &format!(".{}.", now + 100_000)),
        ] {
            assert_eq!(
                s.verify(&forged, now),
                Err(LinkError::BadSignature),
                "{forged}"
            );
        }
        let other = LinkSigner::new(Secret::new("x".repeat(32)), "https://v", 900);
        assert_eq!(other.verify(&token, now), Err(LinkError::BadSignature));
        for junk in [
            "",
            "a.b.c",
            "act-1.approve.1.zz",
            "../etc.approve.1.00",
            &format!("{token}.x"),
            "act-1.maybe.1.00",
        ] {
            assert_eq!(s.verify(junk, now), Err(LinkError::Malformed), "{junk}");
        }
    }
}

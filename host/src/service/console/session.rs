//! Console sessions and the failed-login throttle.
//!
//! A session is created only by a login with the admin token. Its id is 32
//! random bytes from the OS (`getrandom`), sent to the browser only as the
//! `HttpOnly; SameSite=Strict; Secure` cookie and kept here, in memory (a
//! restart logs everyone out). A session ends at logout, after
//! [`IDLE`] without a request, or [`ABSOLUTE`] after the login, whichever
//! comes first. At most [`MAX_SESSIONS`] live at once: a new login evicts
//! the least recently used one. Each session has its own CSRF token (also
//! 32 random bytes), put into every form and compared in constant time on
//! every POST.
//!
//! Failed logins are counted per client address: after
//! [`MAX_FAILURES`] within [`FAILURE_WINDOW`] that address is refused
//! without its token being checked until the window has passed (the admin
//! API's bearer token, which is the same secret, is not throttled here: a
//! guesser learns nothing new from the form).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// A session ends this long after its login, however active.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Sessions alive at once; the least recently used is evicted beyond.
pub const MAX_SESSIONS: usize = 64;
/// Failed logins from one address within [`FAILURE_WINDOW`] before it is
/// refused outright.
pub const MAX_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(600);
/// Addresses whose failures are remembered (the oldest forgotten first).
const MAX_TRACKED: usize = 4096;

/// The cookie that carries the session id.
pub const COOKIE: &str = "vigil_console";

/// What a request learns about its session.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    /// The first 8 hex digits of the id, for logs (never the whole id).
    pub tag: String,
    pub csrf: String,
    /// A message left by the previous POST for the page it redirected to.
    pub flash: Option<(bool, String)>,
}

struct Session {
    csrf: String,
    created: Instant,
    last_used: Instant,
    flash: Option<(bool, String)>,
}

/// The live sessions (see the module documentation).
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes from the OS, hex.
fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

impl Sessions {
    /// Creates a session after a successful login; returns its id (the
    /// cookie's value). Fails only if the OS has no randomness to give.
    pub fn create(&self, now: Instant) -> Result<String, getrandom::Error> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| alive(s, now));
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                csrf,
                created: now,
                last_used: now,
                flash: None,
            },
        );
        Ok(id)
    }

    /// The session with this id if it is alive (and marks it used; takes
    /// its flash message).
    pub fn touch(&self, id: &str, now: Instant) -> Option<SessionInfo> {
        // Ids are 64 hex digits; anything else cannot be one.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get_mut(id)?;
        if !alive(s, now) {
            map.remove(id);
            return None;
        }
        s.last_used = now;
        Some(SessionInfo {
            tag: id[..8].to_owned(),
            csrf: s.csrf.clone(),
            flash: s.flash.take(),
        })
    }

    /// Leaves a message for the next page this session shows.
    pub fn flash(&self, id: &str, ok: bool, message: String) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get_mut(id) {
            s.flash = Some((ok, message));
        }
    }

    /// Ends a session (logout).
    pub fn remove(&self, id: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().len()
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.saturating_duration_since(s.last_used) < IDLE
        && now.saturating_duration_since(s.created) < ABSOLUTE
}

/// Whether a presented CSRF token is the session's, in constant time.
pub fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// Failed logins by client address (see the module documentation).
#[derive(Default)]
pub struct LoginThrottle {
    inner: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginThrottle {
    /// Whether `peer` may try a login now.
    pub fn allowed(&self, peer: IpAddr, now: Instant) -> bool {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&peer) {
            Some((n, since)) => {
                *n < MAX_FAILURES || now.saturating_duration_since(*since) >= FAILURE_WINDOW
            }
            None => true,
        }
    }

    /// Counts a failed login from `peer`; returns its failures in the
    /// current window.
    pub fn failed(&self, peer: IpAddr, now: Instant) -> u32 {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&peer) {
            map.retain(|_, (_, since)| now.saturating_duration_since(*since) < FAILURE_WINDOW);
            if map.len() >= MAX_TRACKED
                && let Some(oldest) = map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(peer).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
        entry.0
    }

    /// A successful login clears the address's failures.
    pub fn succeeded(&self, peer: IpAddr) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A new session is found by its id, with a 64-digit CSRF token; a
    // made-up or malformed id is not.
    #[test]
    fn sessions_are_found_by_id_only() {
        let s = Sessions::default();
        let now = Instant::now();
        let id = s.create(now).unwrap();
        assert_eq!(id.len(), 64);
        let info = s.touch(&id, now).unwrap();
        assert_eq!(info.csrf.len(), 64);
        assert_ne!(info.csrf, id);
        assert!(s.touch(&"0".repeat(64), now).is_none());
        assert!(s.touch("short", now).is_none());
        assert!(s.touch(&format!("{}é", &id[..62]), now).is_none());
    }

    // Idle and absolute expiry both end a session; use keeps it alive
    // until the absolute limit.
    #[test]
    fn sessions_expire_idle_and_absolute() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let id = s.create(t0).unwrap();
        assert!(s.touch(&id, t0 + IDLE - Duration::from_secs(1)).is_some());
        // Used just now, so the idle clock restarted.
        assert!(s.touch(&id, t0 + IDLE + Duration::from_secs(60)).is_some());
        assert!(s.touch(&id, t0 + ABSOLUTE).is_none());
        let idle = s.create(t0).unwrap();
        assert!(s.touch(&idle, t0 + IDLE).is_none());
    }

    // Past the cap the least recently used session is evicted.
    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let first = s.create(t0).unwrap();
        let mut ids = Vec::new();
        for i in 1..MAX_SESSIONS {
            ids.push(s.create(t0 + Duration::from_millis(i as u64)).unwrap());
        }
        // `first` is used again: the second one is now the oldest.
        s.touch(&first, t0 + Duration::from_secs(1));
        s.create(t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.touch(&first, t0 + Duration::from_secs(3)).is_some());
        assert!(s.touch(&ids[0], t0 + Duration::from_secs(3)).is_none());
    }

    // A flash message is shown once; logout ends the session.
    #[test]
    fn flash_once_and_logout() {
        let s = Sessions::default();
        let now = Instant::now();
        let id = s.create(now).unwrap();
        s.flash(&id, true, "done".into());
        assert_eq!(
            s.touch(&id, now).unwrap().flash,
            Some((true, "done".into()))
        );
        assert_eq!(s.touch(&id, now).unwrap().flash, None);
        s.remove(&id);
        assert!(s.touch(&id, now).is_none());
    }

    // CSRF tokens: equal only when identical; missing or shorter fail.
    #[test]
    fn csrf_comparison() {
        assert!(csrf_matches("abc", Some("abc")));
        assert!(!csrf_matches("abc", Some("abd")));
        assert!(!csrf_matches("abc", Some("ab")));
        assert!(!csrf_matches("abc", None));
    }

    // Ten failures lock an address out for the window; others are not
    // affected; a success clears the count.
    #[test]
    fn failed_logins_are_throttled_per_address() {
        let t = LoginThrottle::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(t.allowed(a, t0));
            t.failed(a, t0);
        }
        assert!(!t.allowed(a, t0 + Duration::from_secs(1)));
        assert!(t.allowed(b, t0));
        assert!(t.allowed(a, t0 + FAILURE_WINDOW));
        t.succeeded(a);
        assert!(t.allowed(a, t0 + Duration::from_secs(1)));
    }
}

//! Okta Event Hooks: the shared-secret check and de-duplication.
//!
//! Okta sends the same static `Authorization` value with every delivery;
//! it is compared in constant time (over SHA-256 digests, so neither the
//! content nor the length of the secret leaks through timing). Okta may
//! deliver an event twice (a retry after its 3 s timeout, or plain
//! redelivery): [`Dedup`] remembers the `uuid`s queued within
//! `dedup_window_secs`, at most `dedup_capacity` of them, oldest forgotten
//! first, so memory stays bounded whatever the traffic.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// True when `presented` equals `expected`, in time independent of both.
pub fn secret_matches(expected: &Secret, presented: Option<&[u8]>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    let a = Sha256::digest(expected.expose().as_bytes());
    let b = Sha256::digest(presented);
    a.ct_eq(&b).into()
}

/// The `uuid`s of recently queued hook events.
pub struct Dedup {
    window: Duration,
    capacity: usize,
    seen: HashMap<String, Instant>,
    order: VecDeque<(String, Instant)>,
}

impl Dedup {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Dedup {
            window,
            capacity: capacity.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `id` was recorded within the window.
    pub fn contains(&mut self, id: &str, now: Instant) -> bool {
        self.expire(now);
        self.seen.contains_key(id)
    }

    /// Records `id` as queued at `now`.
    pub fn insert(&mut self, id: &str, now: Instant) {
        if self.seen.insert(id.to_owned(), now).is_none() {
            self.order.push_back((id.to_owned(), now));
        }
        while self.seen.len() > self.capacity {
            self.pop_oldest();
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((_, at)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.window {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((id, at)) = self.order.pop_front() {
            // Only forget the id if this entry is the one that set it.
            if self.seen.get(&id) == Some(&at) {
                self.seen.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The right secret matches; a wrong, missing or prefix secret does not.
    #[test]
    fn secret_compare() {
        let s = Secret::new("Basic abc123");
        assert!(secret_matches(&s, Some(b"Basic abc123")));
        assert!(!secret_matches(&s, Some(b"Basic abc124")));
        assert!(!secret_matches(&s, Some(b"Basic abc")));
        assert!(!secret_matches(&s, None));
    }

    // An id is a duplicate within the window, new again after it.
    #[test]
    fn window_expires() {
        let mut d = Dedup::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        d.insert("a", t0);
        assert!(d.contains("a", t0 + Duration::from_secs(9)));
        assert!(!d.contains("a", t0 + Duration::from_secs(10)));
        assert!(d.is_empty());
    }

    // Past the capacity, the oldest ids are forgotten first.
    #[test]
    fn capacity_bounds_memory() {
        let mut d = Dedup::new(Duration::from_secs(600), 3);
        let t0 = Instant::now();
        for id in ["a", "b", "c", "d"] {
            d.insert(id, t0);
        }
        assert_eq!(d.len(), 3);
        assert!(!d.contains("a", t0));
        assert!(d.contains("d", t0));
    }
}

//! Durable ingest: the events a replica accepts are published to the
//! stream before the client is answered 2xx.
//!
//! Each event is published once per kind in [`Publisher::kinds`], on its
//! shard's subject ([`layout`]), with `Nats-Msg-Id` `<kind>:<event id>`:
//! the server drops a repeat within its duplicate window, so a client
//! retrying a delivery whose answer it lost, or a delivery fanned out to
//! two replicas, is stored once. The publishes of a delivery are pipelined
//! and then every acknowledgement awaited; any failure (JetStream down,
//! its storage full, no answer within `[cluster] timeout_secs`) fails the
//! whole delivery, which the client then sends again (repeats of what did
//! land are dropped by id).
//!
//! The message is the event's source record as JSON ([`payload`]), and the
//! reader normalizes it again ([`decode`]): the normalizer is
//! deterministic (event ids included), so the judging replica sees the
//! event the receiving one accepted, `raw` field access included.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;

use super::Nats;
use super::layout::{self, Kind};
use crate::model::Event;
use crate::normalize::Normalizer;

/// Largest message body: NATS refuses payloads over its `max_payload`
/// (1 MiB by default); headers and subject fit in what is left.
pub const MAX_PAYLOAD: usize = 1_000_000;

/// Why a delivery was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event cannot be carried (too large for a message): the client
    /// must not send it again as is.
    #[error("event {id} cannot be published: {why}")]
    Event { id: String, why: String },
    /// JetStream did not take it (down, full, slow): the client sends the
    /// delivery again later.
    #[error("JetStream did not store the delivery: {0}")]
    Unavailable(String),
}

/// Publishes accepted events; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    kinds: Arc<[Kind]>,
    shards: u32,
    timeout: Duration,
}

impl Publisher {
    /// Publishes under `kinds` (see [`layout::kinds`]).
    pub fn new(nats: &Nats, kinds: Vec<Kind>) -> Publisher {
        Publisher {
            js: nats.jetstream().clone(),
            kinds: kinds.into(),
            shards: nats.config().shards,
            timeout: Duration::from_secs(nats.config().timeout_secs),
        }
    }

    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The connection to JetStream is up (readiness).
    pub fn connected(&self) -> bool {
        self.js.client().connection_state() == async_nats::connection::State::Connected
    }

    /// Publishes every event under every kind and waits for JetStream's
    /// acknowledgements.
    pub async fn publish(&self, events: &[Event]) -> Result<(), PublishError> {
        let mut messages = Vec::with_capacity(events.len() * self.kinds.len());
        for event in events {
            let body = payload(event).map_err(|why| PublishError::Event {
                id: event.id.clone(),
                why,
            })?;
            for &kind in self.kinds.iter() {
                let shard = layout::shard_of(kind, event, self.shards);
                let mut headers = HeaderMap::new();
                headers.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    layout::msg_id(kind, event).as_str(),
                );
                messages.push((shard.subject(), headers, body.clone()));
            }
        }
        let unavailable = |e: &dyn std::fmt::Display| PublishError::Unavailable(e.to_string());
        let all = async {
            let mut acks = Vec::with_capacity(messages.len());
            for (subject, headers, body) in messages {
                let ack = self
                    .js
                    .publish_with_headers(subject, headers, body)
                    .await
                    .map_err(|e| unavailable(&e))?;
                acks.push(ack);
            }
            for ack in acks {
                ack.await.map_err(|e| unavailable(&e))?;
            }
            Ok(())
        };
        match tokio::time::timeout(self.timeout, all).await {
            Ok(r) => r,
            Err(_) => Err(PublishError::Unavailable(format!(
                "no acknowledgement within {:?}",
                self.timeout
            ))),
        }
    }
}

/// The message body of `event`: its source record as JSON text.
pub fn payload(event: &Event) -> Result<Bytes, String> {
    let raw = event.raw.as_ref().ok_or("the event has no source record")?;
    let text = raw
        .get("", MAX_PAYLOAD)
        .map_err(|e| e.to_string())?
        .ok_or("the event's source record cannot be read")?;
    Ok(Bytes::from(text))
}

/// The event a message carries.
pub fn decode(normalizer: &Normalizer, body: &[u8]) -> Result<Event, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the message is not UTF-8".to_owned())?;
    let mut events = Vec::with_capacity(1);
    normalizer
        .normalize_line(text, &mut events)
        .map_err(|e| e.to_string())?;
    match events.len() {
        1 => Ok(events.pop().expect("one event")),
        n => Err(format!("the message holds {n} events; one was expected")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of the fixtures comes back the same from its message.
    #[test]
    fn an_event_read_from_its_message_is_the_event_accepted() {
        let normalizer = Normalizer::default();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let mut checked = 0;
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl" || e == "json"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let mut events = Vec::new();
                if normalizer.normalize_line(line, &mut events).is_err() {
                    continue;
                }
                for event in events {
                    let body = payload(&event).unwrap();
                    let back = decode(&normalizer, &body)
                        .unwrap_or_else(|e| panic!("{}: {}: {e}", file.display(), event.id));
                    let strip = |mut e: Event| {
                        e.raw = None;
                        e
                    };
                    assert_eq!(strip(back), strip(event), "{}", file.display());
                    checked += 1;
                }
            }
        }
        assert!(checked > 50, "only {checked} events checked");
    }

    #[test]
    fn a_message_that_is_not_one_event_is_refused() {
        let n = Normalizer::default();
        assert!(decode(&n, b"\xff").unwrap_err().contains("UTF-8"));
        assert!(decode(&n, b"{not json").is_err());
    }
}

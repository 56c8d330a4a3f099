//! Published checkpoints in NATS JetStream: in a cluster each replica
//! publishes every checkpoint line of its log (see
//! [`CheckpointPublisher`](super::witness::CheckpointPublisher)) on
//! [`subject`]`(replica)`, `vigil.audit.<replica>`, of a stream whose
//! subjects include `vigil.audit.>` (by default [`DEFAULT_STREAM`]). The
//! newest message on a replica's subject is its newest durable checkpoint:
//! `vigil audit verify --nats` reads it back with [`latest_checkpoints`] and
//! checks that the replica's log still holds it.
//!
//! The messages are exactly the checkpoint lines the logs hold (JSON, one
//! record each), so they can be checked with the public key alone.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use async_nats::jetstream::{self, stream::LastRawMessageErrorKind};
use serde_json::Value;

/// The stream `vigil audit verify --nats` reads by default.
pub const DEFAULT_STREAM: &str = "VIGIL";
/// Subjects of published checkpoints: this, then the replica's name.
pub const SUBJECT_PREFIX: &str = "vigil.audit.";
/// Connecting, and each request, give up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The subject `replica` publishes its checkpoints on: `vigil.audit.<replica>`.
pub fn subject(replica: &str) -> String {
    format!("{SUBJECT_PREFIX}{replica}")
}

async fn connect(nats_url: &str) -> Result<jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(TIMEOUT)
        .request_timeout(Some(TIMEOUT))
        .connect(nats_url)
        .await
        .map_err(|e| anyhow!("cannot connect to {nats_url}: {e}"))?;
    Ok(jetstream::new(client))
}

/// For each of `replicas`, in order, the newest message on
/// `vigil.audit.<replica>` in `stream`, parsed as JSON (the checkpoint
/// line); `None` when the replica has published nothing there. A missing
/// stream or a message that is not JSON is an error.
pub async fn latest_checkpoints(
    nats_url: &str,
    stream: &str,
    replicas: &[String],
) -> Result<Vec<(String, Option<Value>)>> {
    let js = connect(nats_url).await?;
    let handle = js
        .get_stream(stream)
        .await
        .map_err(|e| anyhow!("cannot open the stream {stream:?} on {nats_url}: {e}"))?;
    let mut out = Vec::with_capacity(replicas.len());
    for replica in replicas {
        let subject = subject(replica);
        let message = match handle.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                out.push((replica.clone(), None));
                continue;
            }
            Err(e) => {
                bail!("cannot read the newest message on {subject} in stream {stream:?}: {e}")
            }
        };
        let value: Value = serde_json::from_slice(&message.payload).with_context(|| {
            format!(
                "the newest message on {subject} in stream {stream:?} (stream seq {}) is not JSON",
                message.sequence
            )
        })?;
        out.push((replica.clone(), Some(value)));
    }
    Ok(out)
}

/// The replicas that have published checkpoints in `stream` (the subjects
/// under `vigil.audit.` that hold messages), sorted.
pub async fn published_replicas(nats_url: &str, stream: &str) -> Result<Vec<String>> {
    let js = connect(nats_url).await?;
    // `Stream::info_with_subjects` yields the subjects as a futures
    // `Stream`; the plain request is as short and needs no futures crate.
    let request = serde_json::json!({ "subjects_filter": format!("{SUBJECT_PREFIX}>") });
    let info: Value = js
        .request(format!("STREAM.INFO.{stream}"), &request)
        .await
        .map_err(|e| anyhow!("cannot read the stream {stream:?} on {nats_url}: {e}"))?;
    if let Some(error) = info.get("error") {
        let description = error
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        bail!("cannot read the stream {stream:?} on {nats_url}: {description}");
    }
    let mut replicas: Vec<String> = info
        .pointer("/state/subjects")
        .and_then(Value::as_object)
        .map(|subjects| {
            subjects
                .keys()
                .filter_map(|s| s.strip_prefix(SUBJECT_PREFIX))
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    replicas.sort();
    Ok(replicas)
}

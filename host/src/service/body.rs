//! Request bodies and error answers shared by the ingestion and admin
//! routes: a bounded, timed body read and the JSON error shape.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A JSON error answer.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// How long a client may take to send a request body.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads the body, refusing (413) past `limit` bytes without buffering more,
/// and (408) a body that trickles in slower than `BODY_READ_TIMEOUT`.
///
/// An oversized body of up to twice the limit (at most 8 MiB over it) is
/// read to its end and discarded before the 413, so the client, still
/// sending, gets the answer instead of a connection reset; a larger one is
/// refused at once.
pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body exceeds server.max_body_bytes = {limit}"),
        )
    };
    let drain_cap = limit.saturating_add(limit.min(8 << 20));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > drain_cap as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, collect(body, limit, drain_cap));
    let Ok(read) = read.await else {
        return Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        ));
    };
    match read {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(too_large()),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("cannot read the body: {e}"),
        )),
    }
}

/// The body if it holds at most `limit` bytes; `None` (after reading and
/// discarding up to `drain_cap` bytes) if it holds more.
async fn collect(
    mut body: Body,
    limit: usize,
    drain_cap: usize,
) -> Result<Option<Bytes>, axum::Error> {
    use http_body_util::BodyExt;
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            buf.extend_from_slice(&data);
        } else if seen > drain_cap {
            return Ok(None);
        } else {
            buf = Vec::new();
        }
    }
    Ok((seen <= limit).then(|| Bytes::from(buf)))
}

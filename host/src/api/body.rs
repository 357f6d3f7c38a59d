//! Reading request bodies under the tenant's size limits, and parsing them with clear errors.

use super::ApiError;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;

/// Room for the JSON around a payload (field names, other fields).
pub const ENVELOPE: usize = 16 * 1024;

/// Reads at most `limit` bytes; more is a 413 whose message names `what` and the limit.
pub async fn read(body: Body, limit: usize, what: &str) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("{what} is over the limit of {limit} bytes"),
        )
    })
}

/// Parses JSON, naming the problem (syntax, wrong type, unknown field) and where it is.
pub fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid request body: {e}")))
}

/// A 413 for a JSON payload over the tenant's `max_payload_kb`.
pub fn payload_too_large(what: &str, size: usize, limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("{what} is {size} bytes; the limit is {limit} (max_payload_kb)"),
    )
}

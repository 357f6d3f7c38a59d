//! Reading request bodies under the tenant's size limits, and parsing them with clear errors.

use super::{ApiError, Code};
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body::{Frame, SizeHint};
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Room for the JSON around a payload (field names, other fields).
pub const ENVELOPE: usize = 16 * 1024;

/// Reads at most `limit` bytes; more is a 413 whose message names `what` and the limit. A body
/// that did not arrive within the server's body timeout is a 408; one the client broke off, a
/// 400.
pub async fn read(body: Body, limit: usize, what: &str) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if caused_by::<http_body_util::LengthLimitError>(&e) {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::PayloadTooLarge,
                format!("{what} is over the limit of {limit} bytes"),
            )
        } else if let Some(timeout) = find::<BodyTimedOut>(&e) {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                Code::RequestTimeout,
                timeout.to_string(),
            )
        } else {
            ApiError::bad_request(
                Code::InvalidRequest,
                format!("{what} could not be read: {e}"),
            )
        }
    })
}

fn find<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

fn caused_by<T: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    find::<T>(error).is_some()
}

/// The error a [`Deadline`] body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms (server.body_timeout_ms)", .0.as_millis())]
pub struct BodyTimedOut(pub Duration);

/// A request body that must arrive whole within a time limit.
///
/// Without it, a client that trickles a body (a byte now and then) holds its connection, and the
/// handler reading it, for as long as it likes. The clock starts when the request's header has
/// been read, and covers the whole body, not the gap between two chunks.
pub struct Deadline<B> {
    inner: B,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl<B> Deadline<B> {
    pub fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl<B> http_body::Body for Deadline<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Parses JSON, naming the problem (syntax, wrong type, unknown field) and where it is.
pub fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(Code::InvalidJson, format!("invalid request body: {e}")))
}

/// A 413 for a JSON payload over the tenant's `max_payload_kb`.
pub fn payload_too_large(what: &str, size: usize, limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        Code::PayloadTooLarge,
        format!("{what} is {size} bytes; the limit is {limit} (max_payload_kb)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{StreamExt as _, stream};
    use std::convert::Infallible;

    #[tokio::test]
    async fn a_body_over_its_limit_is_a_413_and_a_late_one_a_408() {
        let err = read(Body::from(vec![b'x'; 100]), 10, "the body")
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);

        // A body that sends one chunk and then nothing: the deadline ends it.
        let first = stream::iter([Ok::<_, Infallible>(Bytes::from_static(b"{"))]);
        let stalled = first.chain(stream::pending());
        let body = Body::new(Deadline::new(
            Body::from_stream(stalled),
            Duration::from_millis(50),
        ));
        let err = read(body, 1024, "the body").await.unwrap_err();
        assert_eq!(err.status, StatusCode::REQUEST_TIMEOUT);
        assert!(err.message.contains("body_timeout_ms"), "{}", err.message);

        // In time: read whole.
        let body = Body::new(Deadline::new(Body::from("{}"), Duration::from_secs(60)));
        assert_eq!(&read(body, 1024, "the body").await.unwrap()[..], b"{}");
    }
}

//! A proxy in front of a DynamoDB-protocol server (moto) that fails some requests the way the
//! real service does, so the tests can show that the store retries them and never loses or
//! repeats a write:
//!
//! - **throttled**: answered at once with HTTP 400 `ThrottlingException`, not forwarded;
//! - **server error**: answered at once with HTTP 500 `InternalServerError`, not forwarded;
//! - **lost reply**: forwarded and applied, and then the reply is replaced by HTTP 500, as when a
//!   connection drops after the service acted. The caller cannot tell this from a server error.
//!
//! Only DynamoDB calls (those with an `X-Amz-Target`) are touched; anything else passes through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// How often each failure happens, as a fraction of the DynamoDB requests.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub throttled: f64,
    pub server_error: f64,
    pub lost_reply: f64,
}

/// How many requests the proxy saw and failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub requests: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub lost_replies: u64,
    /// Lost replies of writes (`TransactWriteItems`, `UpdateItem`, `BatchWriteItem`): the
    /// dangerous kind, applied though the caller saw a failure.
    pub lost_write_replies: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    throttled: AtomicU64,
    server_errors: AtomicU64,
    lost_replies: AtomicU64,
    lost_write_replies: AtomicU64,
}

struct Shared {
    upstream: String,
    faults: Faults,
    counters: Counters,
    client: reqwest::Client,
}

/// The running proxy; stops when dropped.
pub struct FaultyProxy {
    base: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// Starts the proxy on `127.0.0.1:0`, forwarding to `upstream`.
    ///
    /// # Errors
    /// When it cannot bind.
    pub async fn start(upstream: &str, faults: Faults) -> Result<FaultyProxy> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            faults,
            counters: Counters::default(),
            client: reqwest::Client::new(),
        });
        let router = axum::Router::new()
            .fallback(proxy)
            .with_state(shared.clone());
        let (base, server) = crate::agents::serve(router).await?;
        Ok(FaultyProxy {
            base,
            shared,
            server,
        })
    }

    /// The URL to give the host as its DynamoDB endpoint.
    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn counts(&self) -> FaultCounts {
        let c = &self.shared.counters;
        FaultCounts {
            requests: c.requests.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            server_errors: c.server_errors.load(Ordering::Relaxed),
            lost_replies: c.lost_replies.load(Ordering::Relaxed),
            lost_write_replies: c.lost_write_replies.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A DynamoDB JSON error reply.
fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"),
        "message": message,
    });
    (
        status,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

async fn proxy(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let c = &shared.counters;
    let mut lose_reply = false;
    if !target.is_empty() {
        c.requests.fetch_add(1, Ordering::Relaxed);
        let f = shared.faults;
        let roll: f64 = rand::random();
        if roll < f.throttled {
            c.throttled.fetch_add(1, Ordering::Relaxed);
            return aws_error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate of requests exceeds the allowed throughput (injected by the test proxy)",
            );
        }
        if roll < f.throttled + f.server_error {
            c.server_errors.fetch_add(1, Ordering::Relaxed);
            return aws_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Internal server error (injected by the test proxy)",
            );
        }
        lose_reply = roll < f.throttled + f.server_error + f.lost_reply;
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = shared
        .client
        .request(method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let reply = match request.send().await {
        Ok(reply) => reply,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("upstream: {e}")).into_response();
        }
    };
    if lose_reply {
        c.lost_replies.fetch_add(1, Ordering::Relaxed);
        let write = [
            "TransactWriteItems",
            "UpdateItem",
            "BatchWriteItem",
            "PutItem",
        ]
        .iter()
        .any(|w| target.ends_with(w));
        if write {
            c.lost_write_replies.fetch_add(1, Ordering::Relaxed);
        }
        // Wait for the whole reply, so the write has certainly been applied.
        let _ = reply.bytes().await;
        return aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "the reply was lost (injected by the test proxy)",
        );
    }
    let status = reply.status();
    let mut out = HeaderMap::new();
    for (name, value) in reply.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            out.insert(name.clone(), value.clone());
        }
    }
    match reply.bytes().await {
        Ok(bytes) => (status, out, bytes).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("upstream body: {e}")).into_response(),
    }
}

//! HTTP handlers for the A2A surface of one role: the JSON-RPC endpoint (`POST {base}`) and
//! the agent card. JSON-RPC answers always use HTTP 200, errors included, as the binding asks.

use super::jsonrpc::{self, RpcError, VERSION_NOT_SUPPORTED};
use super::{Generation, VERSION_HEADER, card, generation, v03, v10};
use crate::server::RoleState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

pub async fn rpc(State(state): State<RoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let header = headers.get(VERSION_HEADER).and_then(|v| v.to_str().ok());
    let generation = match generation(header) {
        Ok(g) => g,
        Err(version) => {
            let id = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("id").cloned())
                .filter(|id| id.is_string() || id.is_number())
                .unwrap_or(Value::Null);
            let error = RpcError::new(
                VERSION_NOT_SUPPORTED,
                format!("A2A version {version:?} is not supported; use 0.3 (or no header) or 1.0"),
            );
            return reply(None, &jsonrpc::failure(&id, &error));
        }
    };
    let request = match jsonrpc::parse(&body) {
        Ok(r) => r,
        Err((id, error)) => return reply(Some(generation), &jsonrpc::failure(&id, &error)),
    };
    let idempotency_key = headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let service = &state.service;
    let method = request.method.as_str();
    let outcome = match generation {
        Generation::V03 if v10::knows(method) => Err(RpcError::new(
            VERSION_NOT_SUPPORTED,
            format!("{method} is an A2A 1.0 method: send the header \"A2A-Version: 1.0\""),
        )),
        Generation::V10 if v03::knows(method) => Err(RpcError::new(
            VERSION_NOT_SUPPORTED,
            format!("{method} is an A2A 0.3 method: send no A2A-Version header (or \"0.3\")"),
        )),
        Generation::V03 => v03::dispatch(service, method, &request.params, idempotency_key).await,
        Generation::V10 => v10::dispatch(service, method, &request.params, idempotency_key).await,
    };
    let body = match outcome {
        Ok(result) => jsonrpc::success(&request.id, result),
        Err(error) => {
            tracing::debug!(method, code = error.code, message = %error.message, "rpc error");
            jsonrpc::failure(&request.id, &error)
        }
    };
    reply(Some(generation), &body)
}

/// A JSON response; v1.0 answers carry `A2A-Version: 1.0`.
fn reply(generation: Option<Generation>, body: &Value) -> Response {
    let mut response = Json(body).into_response();
    if generation == Some(Generation::V10) {
        response
            .headers_mut()
            .insert(VERSION_HEADER, HeaderValue::from_static("1.0"));
    }
    response
}

/// The card, with URLs built from the request's `Host` so it is right behind any port.
pub async fn agent_card(State(state): State<RoleState>, headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    let base = format!("{scheme}://{host}{}", state.prefix);
    Json(card::agent_card(state.service.role(), &base))
}

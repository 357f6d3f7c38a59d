//! The Aegis simple dispatch form, for hosts that do not speak A2A.
//!
//! `POST {base}/tasks {"task_id", "callback_url", "token", "input"}` answers 202 at once; when
//! the work ends the agent POSTs `{"token", "status": "SUCCESS" | "FAILURE", "result"}` to
//! `callback_url` (on failure `result` is `{"error": "<message>"}`). `GET {base}/tasks/{id}`
//! reports the state, for debugging and polling.

use crate::a2a::server::IDEMPOTENCY_HEADER;
use crate::server::RoleState;
use crate::service::{ServiceError, state_name};
use crate::tasks::{PushFormat, PushTarget, Task, TaskState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

pub async fn submit(State(state): State<RoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the body must be a JSON object");
    };
    let text = |field: &str| req.get(field).and_then(Value::as_str).map(str::trim);
    let Some(task_id) = text("task_id").filter(|t| !t.is_empty()) else {
        return bad_request("\"task_id\" must be a non-empty string");
    };
    let Some(callback_url) =
        text("callback_url").filter(|u| u.starts_with("http://") || u.starts_with("https://"))
    else {
        return bad_request("\"callback_url\" must be an http(s) URL");
    };
    let Some(token) = text("token") else {
        return bad_request("\"token\" must be a string");
    };
    let input = match req.get("input") {
        None | Some(Value::Null) => return bad_request("\"input\" is required"),
        Some(v) => v.clone(),
    };
    let idempotency_key = headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let target = PushTarget {
        id: format!("simple-{task_id}"),
        url: callback_url.to_string(),
        token: Some(token.to_string()),
        auth: None,
        format: PushFormat::Simple,
    };
    match state
        .service
        .submit_simple(task_id, input, target, idempotency_key)
    {
        Ok((task, existed)) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "task_id": task.id,
                "status": if existed { state_name(task.state) } else { "accepted" },
                "duplicate": existed,
            })),
        )
            .into_response(),
        Err(ServiceError::InvalidParams(message)) => bad_request(message),
        Err(other) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": other.to_string()})),
        )
            .into_response(),
    }
}

pub async fn status(State(state): State<RoleState>, Path(id): Path<String>) -> Response {
    match state.service.get(&id) {
        Ok(task) => {
            let mut body = json!({
                "task_id": task.id,
                "role": task.role.name(),
                "state": state_name(task.state),
            });
            if let Some(result) = &task.result {
                body["result"] = result.clone();
            }
            if let Some(error) = &task.error {
                body["error"] = json!(error);
            }
            Json(body).into_response()
        }
        Err(e) => (StatusCode::NOT_FOUND, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

/// The callback body for a task in a final state.
pub fn callback_body(task: &Task, token: &str) -> Value {
    match (task.state, &task.result) {
        (TaskState::Completed, Some(result)) => {
            json!({"token": token, "status": "SUCCESS", "result": result})
        }
        _ => {
            let error = task
                .error
                .clone()
                .unwrap_or_else(|| format!("task ended {}", state_name(task.state)));
            json!({"token": token, "status": "FAILURE", "result": {"error": error}})
        }
    }
}

//! Agent callbacks: where agents post their answers. The URL carries the callback token (the
//! callback id); the simple form may carry it in its body instead. Like callbacks, these routes
//! need no tenant key: the token is the capability.

use super::{ApiError, AppState, body};
use crate::agents::{self, Answer};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

const MAX_AGENT_BODY: usize = 64 << 20;
const TOKEN_HEADER: &str = "x-a2a-notification-token";

/// `POST /v1/agents/callbacks/{token}`: an A2A push or the simple form.
pub async fn with_token(
    State(s): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<Value>, ApiError> {
    // A push that names a token in its header must name the one in its URL.
    if let Some(header) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok())
        && header != token
    {
        return Err(forged());
    }
    receive(&s, Some(token), request).await
}

/// `POST /v1/agents/callbacks`: the simple form with the token in the body.
pub async fn without_token(
    State(s): State<AppState>,
    request: Body,
) -> Result<Json<Value>, ApiError> {
    receive(&s, None, request).await
}

fn forged() -> ApiError {
    ApiError::not_found("callback_not_found", "callback not found")
}

async fn receive(
    s: &AppState,
    url_token: Option<String>,
    request: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read(request, MAX_AGENT_BODY, "the agent's answer").await?;
    let value: Value = body::json(&bytes)?;
    let (body_token, answer) =
        agents::read_answer(&value).map_err(|m| ApiError::bad_request("invalid_request", m))?;
    let token = match (url_token, body_token) {
        (Some(url), Some(body)) if url != body => return Err(forged()),
        (Some(url), _) => url,
        (None, Some(body)) => body,
        (None, None) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "the answer carries no token",
            ));
        }
    };
    let working = answer == Answer::Working;
    let record = crate::callbacks::answer(&s.rt, &token, answer).await?;
    let status = if working { "working" } else { "accepted" };
    Ok(Json(
        json!({"execution_id": record.execution_id, "status": status}),
    ))
}

//! Agent callbacks: where agents post their answers. The URL carries the callback token (the
//! callback id); the simple form may carry it in its body instead. Like callbacks, these routes
//! need no tenant key: the token is the capability.

use super::{ApiError, AppState, body, callbacks};
use crate::agents::{self, Answer};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

/// The largest answer from an agent whose token was checked before its body was read. Results
/// over `agent_inline_limit_kb` are kept as artifacts, so this may exceed the payload quota.
const MAX_AGENT_BODY: usize = 64 << 20;
/// The largest answer whose token is known only once its body is read (the simple form posted
/// to the bare URL, without `X-A2A-Notification-Token`): no more than any callback payload may
/// be. Agents are given the URL with the token in it, and that one takes larger answers.
const MAX_UNCHECKED_BODY: usize =
    crate::tenancy::quotas::MAX_PAYLOAD_KB as usize * 1024 + body::ENVELOPE;
const TOKEN_HEADER: &str = "x-a2a-notification-token";

/// `POST /v1/agents/callbacks/{token}`: an A2A push or the simple form. The token is checked
/// (the callback exists and waits) before the body is read.
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
    callbacks::admit(&s, &token).await?;
    let bytes = body::read(request, MAX_AGENT_BODY, "the agent's answer").await?;
    receive(&s, Some(token), &bytes).await
}

/// `POST /v1/agents/callbacks`: the simple form with the token in the body (or in
/// `X-A2A-Notification-Token`, which is then checked before the body is read).
pub async fn without_token(
    State(s): State<AppState>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<Value>, ApiError> {
    let header = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match &header {
        Some(token) => {
            callbacks::admit(&s, token).await?;
            body::read(request, MAX_AGENT_BODY, "the agent's answer").await?
        }
        None => {
            let what = "an agent's answer without a token in its URL or header";
            body::read(request, MAX_UNCHECKED_BODY, what).await?
        }
    };
    receive(&s, header, &bytes).await
}

fn forged() -> ApiError {
    ApiError::not_found("callback_not_found", "callback not found")
}

/// Reads an answer whose body is in; `checked` is the token already admitted (from the URL or
/// the header), which a token in the body must match.
async fn receive(
    s: &AppState,
    checked: Option<String>,
    bytes: &[u8],
) -> Result<Json<Value>, ApiError> {
    let value: Value = body::json(bytes)?;
    let (body_token, answer) =
        agents::read_answer(&value).map_err(|m| ApiError::bad_request("invalid_request", m))?;
    let token = match (checked, body_token) {
        (Some(checked), Some(body)) if checked != body => return Err(forged()),
        (Some(checked), _) => checked,
        (None, Some(body)) => {
            callbacks::admit(s, &body).await?;
            body
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "the answer carries no token",
            ));
        }
    };
    // Progress (and a push that makes the host fetch the task from the agent) is what a flood
    // would be made of; a final answer can win only once, so it is never held back.
    if matches!(answer, Answer::Working | Answer::Fetch { .. }) {
        s.guards.check_callback(&token)?;
    }
    let working = answer == Answer::Working;
    let record = crate::callbacks::answer(&s.rt, &token, answer).await?;
    let status = if working { "working" } else { "accepted" };
    Ok(Json(
        json!({"execution_id": record.execution_id, "status": status}),
    ))
}

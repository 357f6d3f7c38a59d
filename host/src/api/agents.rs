//! Agent callbacks: where agents post their answers. The URL carries the callback token (the
//! callback id); the simple form may carry it in its body instead. Like callbacks, these routes
//! need no tenant key: the token is the capability.

use super::{ApiError, AppState, body};
use crate::agents::{self, Answer};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const MAX_AGENT_BODY: usize = 64 << 20;
const TOKEN_HEADER: &str = "x-a2a-notification-token";

/// `POST /v1/agents/callbacks/{token}`: an A2A push or the simple form.
pub async fn with_token(
    State(s): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<Value>, Response> {
    // A push that names a token in its header must name the one in its URL.
    if let Some(header) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok())
        && header != token
    {
        return Err(forged().into_response());
    }
    receive(&s, Some(token), request).await
}

/// `POST /v1/agents/callbacks`: the simple form with the token in the body.
pub async fn without_token(
    State(s): State<AppState>,
    request: Body,
) -> Result<Json<Value>, Response> {
    receive(&s, None, request).await
}

fn forged() -> ApiError {
    ApiError::not_found("callback_not_found", "callback not found")
}

async fn receive(
    s: &AppState,
    url_token: Option<String>,
    request: Body,
) -> Result<Json<Value>, Response> {
    let (token, reading) = read(url_token, request)
        .await
        .map_err(IntoResponse::into_response)?;
    let working = reading.answer == Answer::Working;
    let record = match crate::callbacks::push(&s.rt, &token, reading).await {
        Ok(record) => record,
        Err(crate::callbacks::Error::TaskNotBound) => return Err(not_bound_yet()),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let status = if working { "working" } else { "accepted" };
    Ok(Json(
        json!({"execution_id": record.execution_id, "status": status}),
    ))
}

/// The token an answer is for (from the URL or the simple form's body) and what it says.
async fn read(
    url_token: Option<String>,
    request: Body,
) -> Result<(String, agents::Reading), ApiError> {
    let bytes = body::read(request, MAX_AGENT_BODY, "the agent's answer").await?;
    let value: Value = body::json(&bytes)?;
    let mut reading =
        agents::read_answer(&value).map_err(|m| ApiError::bad_request("invalid_request", m))?;
    let token = match (url_token, reading.token.take()) {
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
    Ok((token, reading))
}

/// 503 with `Retry-After`: the push came before the dispatch's answer bound a task; agents
/// that retry pushes on 5xx deliver it once the binding is recorded.
fn not_bound_yet() -> Response {
    let e = crate::callbacks::Error::TaskNotBound;
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "task_not_bound",
        e.to_string(),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

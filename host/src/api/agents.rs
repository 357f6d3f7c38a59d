//! Agent callbacks: where agents post their answers. The URL carries the callback token (the
//! callback id); the simple form may carry it in its body instead. Like callbacks, these routes
//! need no tenant key: the token is the capability, and it is checked before the body is read.
//! A push that names a task must name the one the agent gave at dispatch (`callbacks::push`).

use super::openapi::{AgentAnswer, CallbackNotFound, CapabilityRateLimited};
use super::{ApiError, AppState, Code, body, callbacks};
use crate::agents::{self, Answer};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, response::Response as Answered};

/// The largest answer from an agent whose token was checked before its body was read. Results
/// over `agent_inline_limit_kb` are kept as artifacts, so this may exceed the payload quota.
const MAX_AGENT_BODY: usize = 64 << 20;
/// The largest answer whose token is known only once its body is read (the simple form posted
/// to the bare URL, without `X-A2A-Notification-Token`): no more than any callback payload may
/// be. Agents are given the URL with the token in it, and that one takes larger answers.
const MAX_UNCHECKED_BODY: usize = crate::quotas::MAX_PAYLOAD_KB as usize * 1024 + body::ENVELOPE;
const TOKEN_HEADER: &str = "x-a2a-notification-token";

/// `POST /v1/agents/callbacks/{token}`: an A2A push or the simple form. The token is checked
/// (the callback exists and waits) before the body is read.
/// The answer the host took. Fields in alphabetical order, as the JSON map this replaced wrote
/// them.
#[derive(Serialize, ToSchema)]
#[schema(as = AgentAnswerAccepted)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The execution waiting on the callback.
    #[schema(value_type = String)]
    execution_id: crate::ids::ExecutionId,
    /// `working` for progress (a heartbeat), `accepted` for an outcome.
    status: Progress,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Progress {
    Accepted,
    Working,
}

/// The answers both agent routes share, as `components/responses` entries.
macro_rules! agent_answers {
    ($($name:ident: $response:expr;)*) => {$(
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Answered>) {
                (stringify!($name), $response.into())
            }
        }
    )*};
}

agent_answers! {
    AgentAnswerAccepted: utoipa::openapi::ResponseBuilder::new()
        .description("The answer was applied to the callback.")
        .content(
            "application/json",
            utoipa::openapi::content::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("AgentAnswerAccepted")))
                .build(),
        )
        .build();
    AgentAnswerInvalid: super::openapi::error_response("`invalid_json`: the body is not JSON; `invalid_request`: it is neither form of `AgentAnswer`, or carries no token.", false);
    AgentAnswerConflict: super::openapi::error_response("`callback_already_completed`, `callback_timed_out` or `execution_ended`: the callback can no longer be completed; `task_mismatch`: the push names another task than the one the agent named when the task was sent (nothing is fetched). Nothing changed.", false);
    AgentAnswerTooLarge: super::openapi::error_response("`payload_too_large`: the body is over 64 MiB; or, when neither the URL nor `X-A2A-Notification-Token` carries the token (so it is known only once the body is read), over 272 KiB (the largest `max_payload_kb` and 16 KiB of envelope).", false);
    AgentAnswerNotYet: super::openapi::error_response("`task_not_bound`: the push names a task, and the agent's answer to the dispatch (which binds the callback to its task) was not recorded within 5 s; retry after `Retry-After`. `unavailable`: the host could not complete the request (details are in its log); retry. Nothing changed.", true);
}

#[utoipa::path(post, path = "/v1/agents/callbacks/{token}", tag = "agents",
    operation_id = "agentAnswerWithToken",
    summary = "An agent's answer (an A2A push notification or the simple form), with its callback token in the URL",
    security(()),
    params(
        ("token" = String, Path, description = "The callback token (the callback id) the host gave the agent."),
        ("X-A2A-Notification-Token" = Option<String>, Header, nullable = false,
            description = "When present, must be the token of the URL (else 404 `callback_not_found`)."),
    ),
    request_body = AgentAnswer,
    responses(
        (status = 200, response = AgentAnswerAccepted),
        (status = 400, response = AgentAnswerInvalid),
        (status = 404, response = CallbackNotFound),
        (status = 409, response = AgentAnswerConflict),
        (status = 413, response = AgentAnswerTooLarge),
        (status = 429, response = CapabilityRateLimited),
        (status = 503, response = AgentAnswerNotYet),
    ))]
pub async fn with_token(
    State(s): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<Accepted>, Response> {
    // A push that names a token in its header must name the one in its URL.
    if let Some(header) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok())
        && header != token
    {
        return Err(forged().into_response());
    }
    callbacks::admit(&s, &token)
        .await
        .map_err(IntoResponse::into_response)?;
    let bytes = body::read(request, MAX_AGENT_BODY, "the agent's answer")
        .await
        .map_err(IntoResponse::into_response)?;
    receive(&s, Some(token), &bytes).await
}

/// `POST /v1/agents/callbacks`: the simple form with the token in the body (or in
/// `X-A2A-Notification-Token`, which is then checked before the body is read).
#[utoipa::path(post, path = "/v1/agents/callbacks", tag = "agents", operation_id = "agentAnswer",
    summary = "An agent's answer, with its callback token in the body",
    security(()),
    request_body = AgentAnswer,
    responses(
        (status = 200, response = AgentAnswerAccepted),
        (status = 400, response = AgentAnswerInvalid),
        (status = 404, response = CallbackNotFound),
        (status = 409, response = AgentAnswerConflict),
        (status = 413, response = AgentAnswerTooLarge),
        (status = 429, response = CapabilityRateLimited),
        (status = 503, response = AgentAnswerNotYet),
    ))]
pub async fn without_token(
    State(s): State<AppState>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<Accepted>, Response> {
    let header = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let read = match &header {
        Some(token) => match callbacks::admit(&s, token).await {
            Ok(_) => body::read(request, MAX_AGENT_BODY, "the agent's answer").await,
            Err(e) => Err(e),
        },
        None => {
            let what = "an agent's answer without a token in its URL or header";
            body::read(request, MAX_UNCHECKED_BODY, what).await
        }
    };
    let bytes = read.map_err(IntoResponse::into_response)?;
    receive(&s, header, &bytes).await
}

fn forged() -> ApiError {
    ApiError::not_found(Code::CallbackNotFound, "callback not found")
}

/// Reads an answer whose body is in; `checked` is the token already admitted (from the URL or
/// the header), which a token in the body must match.
async fn receive(
    s: &AppState,
    checked: Option<String>,
    bytes: &[u8],
) -> Result<Json<Accepted>, Response> {
    let (token, reading) = read(s, checked, bytes)
        .await
        .map_err(IntoResponse::into_response)?;
    let working = reading.answer == Answer::Working;
    let record = match crate::callbacks::push(&s.rt, &token, reading).await {
        Ok(record) => record,
        Err(crate::callbacks::Error::TaskNotBound) => return Err(not_bound_yet()),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let status = if working {
        Progress::Working
    } else {
        Progress::Accepted
    };
    Ok(Json(Accepted {
        execution_id: record.execution_id,
        status,
    }))
}

/// The token an answer is for and what it says.
async fn read(
    s: &AppState,
    checked: Option<String>,
    bytes: &[u8],
) -> Result<(String, agents::Reading), ApiError> {
    let value: Value = body::json(bytes)?;
    let mut reading =
        agents::read_answer(&value).map_err(|m| ApiError::bad_request(Code::InvalidRequest, m))?;
    let token = match (checked, reading.token.take()) {
        (Some(checked), Some(body)) if checked != body => return Err(forged()),
        (Some(checked), _) => checked,
        (None, Some(body)) => {
            callbacks::admit(s, &body).await?;
            body
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                Code::InvalidRequest,
                "the answer carries no token",
            ));
        }
    };
    // Progress (and a push that makes the host fetch the task from the agent) is what a flood
    // would be made of; a final answer can win only once, so it is never held back.
    if matches!(reading.answer, Answer::Working | Answer::Fetch { .. }) {
        s.guards.check_callback(&token)?;
    }
    Ok((token, reading))
}

/// 503 with `Retry-After`: the push came before the dispatch's answer bound a task; agents
/// that retry pushes on 5xx deliver it once the binding is recorded.
fn not_bound_yet() -> Response {
    let e = crate::callbacks::Error::TaskNotBound;
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::TaskNotBound,
        e.to_string(),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

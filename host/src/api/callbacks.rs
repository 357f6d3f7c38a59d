//! Capability routes: callbacks (the callback id is the credential) and presigned artifact
//! links (the signature is the credential). Neither needs a tenant key.

use super::openapi::{
    AnyJson, BadParameter, Bytes, CallbackClosed, CallbackNotFound, CallbackTooLarge,
    CapabilityRateLimited, ErrorBody, Unavailable,
};
use super::{ApiError, AppState, Code, body, schema};
use crate::artifacts::ArtifactRef;
use crate::callbacks::{self, Completion};
use crate::ids::TenantId;
use crate::journal::ErrorRecord;
use crate::store::CallbackRecord;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The error a failed callback raises in the workflow.
#[derive(Default, Deserialize, ToSchema)]
#[schema(as = CallbackFailure)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    /// Default `Callback.Failed`.
    #[serde(default)]
    error_type: Option<String>,
    /// Default: the callback was failed by its caller.
    #[serde(default)]
    error_message: Option<String>,
    /// Any JSON the workflow gets with the error.
    #[serde(default)]
    #[schema(value_type = AnyJson)]
    error_data: Option<Value>,
}

/// A callback completion the host took. Fields in alphabetical order, as the JSON map this
/// replaced wrote them.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackAccepted {
    /// What was done.
    accepted: Action,
    #[schema(value_type = String)]
    callback_id: crate::ids::CallbackId,
    /// The execution waiting on the callback.
    #[schema(value_type = String)]
    execution_id: crate::ids::ExecutionId,
}

#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Succeed,
    Fail,
    Heartbeat,
}

const CALLBACK_ID: &str = "The callback id (`cb_` and 64 hex digits), the only credential needed.";

/// Lets a request on the callback `id` go on to read its body: the callback exists and waits.
/// Nothing of the body has been read yet, so a request with an unknown id, or for a callback
/// that already ended, costs a lookup and no more.
///
/// # Errors
/// 404 or 409 (see [`callbacks::waiting`]).
pub(super) async fn admit(s: &AppState, id: &str) -> Result<CallbackRecord, ApiError> {
    Ok(callbacks::waiting(&s.rt, id).await?)
}

/// The largest body a callback of `record`'s tenant accepts: its payload limit and the JSON
/// around it.
async fn body_limit(s: &AppState, record: &CallbackRecord) -> usize {
    s.rt.tenancy()
        .quotas(&record.tenant)
        .await
        .max_payload_bytes()
        + body::ENVELOPE
}

/// `POST /v1/callbacks/{id}/succeed`: the body (any JSON; empty is `null`) is the result.
#[utoipa::path(post, path = "/v1/callbacks/{id}/succeed", tag = "callbacks",
    operation_id = "succeedCallback", summary = "Complete a callback with a result",
    security(()),
    params(("id" = String, Path, description = CALLBACK_ID)),
    request_body(
        description = "The callback's result: any JSON, at most the tenant's `max_payload_kb`. An empty body is `null`.",
        content = AnyJson, content_type = "application/json",
    ),
    responses(
        (status = 200, description = "Accepted; the execution carries on.", body = CallbackAccepted),
        (status = 400, description = "`invalid_json`: the body is not JSON.", body = ErrorBody),
        (status = 404, response = CallbackNotFound),
        (status = 409, response = CallbackClosed),
        (status = 413, response = CallbackTooLarge),
        (status = 429, response = CapabilityRateLimited),
        (status = 503, response = Unavailable),
    ))]
pub async fn succeed(
    State(s): State<AppState>,
    Path(id): Path<String>,
    request: Body,
) -> Result<Json<CallbackAccepted>, ApiError> {
    let record = admit(&s, &id).await?;
    let bytes = body::read(request, body_limit(&s, &record).await, "the callback body").await?;
    let result: Value = if bytes.is_empty() {
        Value::Null
    } else {
        body::json(&bytes)?
    };
    accept(
        &s,
        &id,
        Completion::Succeed(result.to_string()),
        Action::Succeed,
    )
    .await
}

/// `POST /v1/callbacks/{id}/fail`: the body (a `CallbackFailure`; empty is `{}`) is the error.
#[utoipa::path(post, path = "/v1/callbacks/{id}/fail", tag = "callbacks",
    operation_id = "failCallback", summary = "Fail a callback", security(()),
    params(("id" = String, Path, description = CALLBACK_ID)),
    request_body(
        description = "The error the workflow sees. An empty body is `{}`.",
        content = FailBody, content_type = "application/json",
    ),
    responses(
        (status = 200, description = "Accepted; the workflow sees the error.", body = CallbackAccepted),
        (status = 400, description = "`invalid_json`: the body is not JSON; `invalid_request`: the body does not match `CallbackFailure`.", body = ErrorBody),
        (status = 404, response = CallbackNotFound),
        (status = 409, response = CallbackClosed),
        (status = 413, response = CallbackTooLarge),
        (status = 429, response = CapabilityRateLimited),
        (status = 503, response = Unavailable),
    ))]
pub async fn fail(
    State(s): State<AppState>,
    Path(id): Path<String>,
    request: Body,
) -> Result<Json<CallbackAccepted>, ApiError> {
    let record = admit(&s, &id).await?;
    let bytes = body::read(request, body_limit(&s, &record).await, "the callback body").await?;
    let fail: FailBody = if bytes.is_empty() {
        FailBody::default()
    } else {
        schema::parse(&bytes, "CallbackFailure")?
    };
    let mut error = ErrorRecord::new(
        fail.error_type.unwrap_or_else(|| "Callback.Failed".into()),
        fail.error_message
            .unwrap_or_else(|| "the callback was failed by its caller".into()),
    );
    error.error_data = fail.error_data.map(|d| d.to_string());
    accept(&s, &id, Completion::Fail(error), Action::Fail).await
}

/// `POST /v1/callbacks/{id}/heartbeat`: resets the heartbeat timeout; any body is ignored.
///
/// Heartbeats are what the per-callback rate limits: each one is a durable write, and nothing
/// stops a holder of the id from sending them in a loop. A completion or a failure is not
/// limited per callback: only one can win, and after it every other is refused before its body
/// is read, so a heartbeat flood can never keep the real answer out.
#[utoipa::path(post, path = "/v1/callbacks/{id}/heartbeat", tag = "callbacks",
    operation_id = "heartbeatCallback", summary = "Reset a callback's heartbeat timeout",
    description = "Does nothing for a callback without a heartbeat timeout. Any body is ignored. Heartbeats are rate limited per callback (`server.callback_requests_per_second`).",
    security(()),
    params(("id" = String, Path, description = CALLBACK_ID)),
    responses(
        (status = 200, description = "Accepted.", body = CallbackAccepted),
        (status = 404, response = CallbackNotFound),
        (status = 409, response = CallbackClosed),
        (status = 429, response = CapabilityRateLimited),
        (status = 503, response = Unavailable),
    ))]
pub async fn heartbeat(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CallbackAccepted>, ApiError> {
    admit(&s, &id).await?;
    s.guards.check_callback(&id)?;
    accept(&s, &id, Completion::Heartbeat, Action::Heartbeat).await
}

async fn accept(
    s: &AppState,
    id: &str,
    completion: Completion,
    action: Action,
) -> Result<Json<CallbackAccepted>, ApiError> {
    let record = callbacks::complete(&s.rt, id, completion).await?;
    Ok(Json(CallbackAccepted {
        accepted: action,
        callback_id: record.id,
        execution_id: record.execution_id,
    }))
}

#[derive(Deserialize)]
pub struct SignedQuery {
    expires: Option<i64>,
    sig: Option<String>,
}

#[utoipa::path(get, path = "/v1/artifacts/{tenant}/{execution}/{key}", tag = "artifacts",
    operation_id = "getArtifact", summary = "Download an artifact through a presigned link",
    description = "Links are made by the host (for agents and workflows); they expire and cannot be altered.",
    security(()),
    params(
        ("tenant" = String, Path, description = "The tenant the artifact belongs to."),
        ("execution" = String, Path, description = "The execution the artifact belongs to."),
        ("key" = String, Path, description = "The artifact's key; may contain `/`."),
        ("expires" = i64, Query, description = "When the link expires, in seconds since the epoch."),
        ("sig" = String, Query, description = "The link's signature."),
    ),
    responses(
        (status = 200, description = "The artifact's bytes, with the content type it was stored with (`application/octet-stream` when that is not a valid media type), always as an attachment that a browser saves rather than renders.",
            content((Bytes = "*/*")),
            headers(
                ("Content-Disposition" = String, description = "`attachment`, with the key's last segment as `filename` (characters outside `[A-Za-z0-9._-]` replaced) and `filename*` (percent-encoded)."),
                ("X-Content-Type-Options" = String, description = "`nosniff`."),
                ("Content-Security-Policy" = String, description = "`sandbox; default-src 'none'`: inert even where a client renders it."),
            )),
        (status = 400, response = BadParameter),
        (status = 403, description = "`link_invalid`: the link expired, was altered or is incomplete.", body = ErrorBody),
        (status = 404, description = "`artifact_not_found`: the link is valid but the artifact is gone.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ))]
pub async fn artifact(
    State(s): State<AppState>,
    Path((tenant, execution, key)): Path<(String, String, String)>,
    Query(q): Query<SignedQuery>,
) -> Result<Response, ApiError> {
    let denied = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            Code::LinkInvalid,
            "the link is invalid or has expired",
        )
    };
    let (Some(expires), Some(sig)) = (q.expires, q.sig) else {
        return Err(denied());
    };
    let reference =
        ArtifactRef::parse(&format!("artifact://{execution}/{key}")).map_err(|_| denied())?;
    let tenant = TenantId::from_raw(tenant);
    let fetched =
        s.rt.artifacts()
            .fetch_signed(&tenant, &reference, expires, &sig)
            .await;
    match fetched {
        Ok((bytes, content_type)) => Ok(super::artifacts::serve(&key, bytes, &content_type)),
        Err(crate::artifacts::Error::NotFound(_)) => Err(ApiError::not_found(
            Code::ArtifactNotFound,
            "artifact not found",
        )),
        Err(crate::artifacts::Error::BadSignature) => Err(denied()),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

//! Capability routes: callbacks (the callback id is the credential) and presigned artifact
//! links (the signature is the credential). Neither needs a tenant key.

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
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    error_data: Option<Value>,
}

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
fn body_limit(s: &AppState, record: &CallbackRecord) -> usize {
    s.rt.tenancy.quotas(&record.tenant).max_payload_bytes() + body::ENVELOPE
}

/// `POST /v1/callbacks/{id}/succeed`: the body (any JSON; empty is `null`) is the result.
pub async fn succeed(
    State(s): State<AppState>,
    Path(id): Path<String>,
    request: Body,
) -> Result<Json<Value>, ApiError> {
    let record = admit(&s, &id).await?;
    let bytes = body::read(request, body_limit(&s, &record), "the callback body").await?;
    let result: Value = if bytes.is_empty() {
        Value::Null
    } else {
        body::json(&bytes)?
    };
    accept(&s, &id, Completion::Succeed(result.to_string()), "succeed").await
}

/// `POST /v1/callbacks/{id}/fail`: the body (a `CallbackFailure`; empty is `{}`) is the error.
pub async fn fail(
    State(s): State<AppState>,
    Path(id): Path<String>,
    request: Body,
) -> Result<Json<Value>, ApiError> {
    let record = admit(&s, &id).await?;
    let bytes = body::read(request, body_limit(&s, &record), "the callback body").await?;
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
    accept(&s, &id, Completion::Fail(error), "fail").await
}

/// `POST /v1/callbacks/{id}/heartbeat`: resets the heartbeat timeout; any body is ignored.
///
/// Heartbeats are what the per-callback rate limits: each one is a durable write, and nothing
/// stops a holder of the id from sending them in a loop. A completion or a failure is not
/// limited per callback: only one can win, and after it every other is refused before its body
/// is read, so a heartbeat flood can never keep the real answer out.
pub async fn heartbeat(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admit(&s, &id).await?;
    s.guards.check_callback(&id)?;
    accept(&s, &id, Completion::Heartbeat, "heartbeat").await
}

async fn accept(
    s: &AppState,
    id: &str,
    completion: Completion,
    action: &str,
) -> Result<Json<Value>, ApiError> {
    let record = callbacks::complete(&s.rt, id, completion).await?;
    Ok(Json(
        json!({"callback_id": record.id, "execution_id": record.execution_id, "accepted": action}),
    ))
}

#[derive(Deserialize)]
pub struct SignedQuery {
    expires: Option<i64>,
    sig: Option<String>,
}

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
    let artifacts = s.rt.artifacts.clone();
    let tenant = TenantId::from_raw(tenant);
    let fetched = tokio::task::spawn_blocking(move || {
        artifacts.fetch_signed(&tenant, &reference, expires, &sig)
    })
    .await
    .unwrap_or_else(crate::task::rethrow);
    match fetched {
        Ok((bytes, content_type)) => Ok(super::artifacts::serve(&key, bytes, &content_type)),
        Err(crate::artifacts::Error::NotFound(_)) => Err(ApiError::not_found(
            Code::ArtifactNotFound,
            "artifact not found",
        )),
        Err(crate::artifacts::Error::BadSignature) => Err(denied()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

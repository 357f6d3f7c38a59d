//! The HTTP API. Only this module knows JSON wire shapes; it turns requests into calls on the
//! runtime and domain errors into [`ApiError`]s.
//!
//! Routes (all errors are `{"error": {"code", "message"}}`):
//! - `GET  /healthz`
//! - `POST /v1/components/{name}`: body is the component's bytes
//! - `POST /v1/executions`: `{"workflow", "version"?, "input"?, "name"?, "timeout_seconds"?}`
//! - `GET  /v1/executions/{id}[?wait_ms=N]`: status; long-polls until terminal when asked
//! - `GET  /v1/executions/{id}/history[?after=N&limit=N]`
//! - `POST /v1/callbacks/{id}/succeed | fail | heartbeat`
//! - `GET  /v1/artifacts/{tenant}/{execution}/{key}?expires&sig`: presigned artifact links

mod error;

pub use error::ApiError;

use crate::artifacts::ArtifactRef;
use crate::callbacks::{self, Completion};
use crate::executions::{Runtime, StartRequest};
use crate::ids::{ExecutionId, TenantId};
use crate::journal::{ErrorRecord, format_ts};
use crate::store::ExecutionRecord;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Limits the API enforces on requests.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    pub max_component_bytes: usize,
    pub max_body_bytes: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_component_bytes: 50 << 20,
            max_body_bytes: 1 << 20,
        }
    }
}

#[derive(Clone)]
struct AppState {
    rt: Arc<Runtime>,
    limits: ApiLimits,
}

/// Longest long-poll a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub fn router(rt: Arc<Runtime>, limits: ApiLimits) -> Router {
    let component_limit = limits.max_component_bytes + 1024;
    let body_limit = limits.max_body_bytes;
    let state = AppState { rt, limits };
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/v1/components/{name}",
            post(upload_component).layer(DefaultBodyLimit::max(component_limit)),
        )
        .route("/v1/executions", post(start_execution))
        .route("/v1/executions/{id}", get(get_execution))
        .route("/v1/executions/{id}/history", get(get_history))
        .route("/v1/callbacks/{id}/{action}", post(complete_callback))
        .route(
            "/v1/artifacts/{tenant}/{execution}/{*key}",
            get(get_artifact),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .fallback(|| async { ApiError::not_found("route_not_found", "no such route") })
        .with_state(state)
}

/// The tenant of a request. Until API keys exist, everything belongs to the default tenant.
fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid request body: {e}")))
}

async fn upload_component(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (record, created) = crate::components::upload(
        &s.rt,
        &tenant(),
        &name,
        body.to_vec(),
        s.limits.max_component_bytes,
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = json!({
        "name": record.name,
        "version": record.version,
        "digest": record.digest,
        "size": record.size,
        "created_at": format_ts(record.created_at),
    });
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    workflow: String,
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

async fn start_execution(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body: StartBody = parse_json(&body)?;
    if let Some(name) = &body.name
        && (name.is_empty() || name.len() > 256 || name.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            "execution name must be 1-256 printable characters",
        ));
    }
    let input = body.input.to_string();
    if input.len() > crate::engine::host::MAX_PAYLOAD {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "input is {} bytes; the limit is {}",
                input.len(),
                crate::engine::host::MAX_PAYLOAD
            ),
        ));
    }
    let req = StartRequest {
        workflow: body.workflow,
        version: body.version,
        input,
        name: body.name,
        timeout_seconds: body.timeout_seconds,
    };
    let (record, created) = s.rt.start(&tenant(), req).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = json!({
        "execution_id": record.id,
        "name": record.name,
        "status": record.status.as_str(),
        "workflow": record.workflow,
        "version": record.version,
        "component_digest": record.digest,
    });
    Ok((status, Json(body)).into_response())
}

/// Reads an execution of the caller's tenant; another tenant's looks exactly like a missing one.
async fn load_execution(rt: &Arc<Runtime>, id: &str) -> Result<ExecutionRecord, ApiError> {
    let not_found =
        || ApiError::not_found("execution_not_found", format!("execution {id:?} not found"));
    if id.len() > 64 {
        return Err(not_found());
    }
    let store = rt.store.clone();
    let key = ExecutionId::from_raw(id);
    let record = tokio::task::spawn_blocking(move || store.execution(&key))
        .await
        .map_err(ApiError::internal)??;
    record
        .filter(|r| r.tenant == tenant())
        .ok_or_else(not_found)
}

#[derive(Deserialize)]
struct WaitQuery {
    wait_ms: Option<u64>,
}

async fn get_execution(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut finished = s.rt.subscribe();
    let mut record = load_execution(&s.rt, &id).await?;
    if let Some(wait) = q.wait_ms {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait).min(MAX_WAIT);
        while !record.status.is_terminal() {
            match tokio::time::timeout_at(deadline, finished.recv()).await {
                Err(_) => break,
                Ok(Ok(done)) if done != record.id => continue,
                Ok(_) => record = load_execution(&s.rt, &id).await?,
            }
        }
    }
    let store = s.rt.store.clone();
    let exec_id = record.id.clone();
    let pending = tokio::task::spawn_blocking(move || store.pending_callbacks(&exec_id))
        .await
        .map_err(ApiError::internal)??;
    let parse = |raw: &Option<String>| {
        raw.as_deref()
            .map(|r| serde_json::from_str(r).unwrap_or(Value::Null))
    };
    Ok(Json(json!({
        "execution_id": record.id,
        "name": record.name,
        "workflow": record.workflow,
        "version": record.version,
        "component_digest": record.digest,
        "status": record.status.as_str(),
        "input": serde_json::from_str::<Value>(&record.input).unwrap_or(Value::Null),
        "result": parse(&record.result),
        "error": record.error.as_ref().map(error_json),
        "created_at": format_ts(record.created_at),
        "updated_at": format_ts(record.updated_at),
        "pending_callbacks": pending.iter().map(|c| json!({
            "callback_id": c.id,
            "name": c.name,
            "operation_id": c.op_id,
        })).collect::<Vec<_>>(),
    })))
}

fn error_json(e: &ErrorRecord) -> Value {
    json!({
        "error_type": e.error_type,
        "error_message": e.error_message,
        "error_data": e.error_data.as_deref().map(|d| serde_json::from_str::<Value>(d).unwrap_or(Value::String(d.to_string()))),
    })
}

#[derive(Deserialize)]
struct HistoryQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn get_history(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let record = load_execution(&s.rt, &id).await?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let after = q.after.unwrap_or(0);
    let store = s.rt.store.clone();
    let events = tokio::task::spawn_blocking(move || store.history(&record.id, after, limit))
        .await
        .map_err(ApiError::internal)??;
    let next = (events.len() == limit)
        .then(|| events.last().map(|(id, _)| *id))
        .flatten();
    Ok(Json(json!({
        "events": events.iter().map(|(id, e)| e.to_history(*id)).collect::<Vec<_>>(),
        "next_after": next,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    error_data: Option<Value>,
}

async fn complete_callback(
    State(s): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let completion = match action.as_str() {
        "succeed" => {
            let result: Value = if body.is_empty() {
                Value::Null
            } else {
                parse_json(&body)?
            };
            Completion::Succeed(result.to_string())
        }
        "fail" => {
            let fail: FailBody = if body.is_empty() {
                FailBody {
                    error_type: None,
                    error_message: None,
                    error_data: None,
                }
            } else {
                parse_json(&body)?
            };
            let mut error = ErrorRecord::new(
                fail.error_type.unwrap_or_else(|| "Callback.Failed".into()),
                fail.error_message
                    .unwrap_or_else(|| "the callback was failed by its caller".into()),
            );
            error.error_data = fail.error_data.map(|d| d.to_string());
            Completion::Fail(error)
        }
        "heartbeat" => Completion::Heartbeat,
        _ => {
            return Err(ApiError::not_found(
                "route_not_found",
                "callback actions are succeed, fail and heartbeat",
            ));
        }
    };
    let record = callbacks::complete(&s.rt, &id, completion).await?;
    Ok(Json(
        json!({"callback_id": record.id, "execution_id": record.execution_id, "accepted": action}),
    ))
}

#[derive(Deserialize)]
struct SignedQuery {
    expires: Option<i64>,
    sig: Option<String>,
}

async fn get_artifact(
    State(s): State<AppState>,
    Path((tenant, execution, key)): Path<(String, String, String)>,
    Query(q): Query<SignedQuery>,
) -> Result<Response, ApiError> {
    let denied = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "link_invalid",
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
    .map_err(ApiError::internal)?;
    match fetched {
        Ok((bytes, content_type)) => {
            Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
        }
        Err(crate::artifacts::Error::NotFound(_)) => Err(ApiError::not_found(
            "artifact_not_found",
            "artifact not found",
        )),
        Err(crate::artifacts::Error::BadSignature) => Err(denied()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

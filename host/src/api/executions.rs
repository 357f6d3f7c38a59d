//! `/v1/executions`: start, list, read, history and stop.

use super::{ApiError, AppState, Code, Tenant, body, history, schema};
use crate::executions::StartRequest;
use crate::ids::ExecutionId;
use crate::journal::{ErrorRecord, Millis, format_ts};
use crate::store::{ExecutionFilter, ExecutionRecord, ExecutionStatus};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Longest long-poll a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

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

pub async fn start(
    State(s): State<AppState>,
    tenant: Tenant,
    request: Body,
) -> Result<Response, ApiError> {
    let limit = s.rt.tenancy.quotas(&tenant).max_payload_bytes();
    let bytes = body::read(request, limit + body::ENVELOPE, "the request body").await?;
    let start: StartBody = schema::parse(&bytes, "StartExecution")?;
    if let Some(name) = &start.name {
        check_name(name)?;
    }
    let input = start.input.to_string();
    if input.len() > limit {
        return Err(body::payload_too_large("the input", input.len(), limit));
    }
    let req = StartRequest {
        workflow: start.workflow,
        version: start.version,
        input,
        name: start.name,
        timeout_seconds: start.timeout_seconds,
    };
    let (record, created) = s.rt.start(&tenant, req).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(summary(&record))).into_response())
}

/// The fields of an execution shown in lists and start answers.
fn summary(record: &ExecutionRecord) -> Value {
    json!({
        "execution_id": record.id,
        "name": record.name,
        "workflow": record.workflow,
        "version": record.version,
        "component_digest": record.digest,
        "status": record.status.as_str(),
        "created_at": format_ts(record.created_at),
        "updated_at": format_ts(record.updated_at),
    })
}

fn error_json(e: &ErrorRecord) -> Value {
    json!({
        "error_type": e.error_type,
        "error_message": e.error_message,
        "error_data": e.error_data.as_deref().map(|d| serde_json::from_str::<Value>(d).unwrap_or(Value::String(d.to_string()))),
    })
}

/// Finds an execution of the caller's tenant; another tenant's is `None`, exactly like a
/// missing one.
pub(super) async fn find(
    s: &AppState,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<ExecutionRecord>, ApiError> {
    if id.len() > 64 {
        return Ok(None);
    }
    let store = s.rt.store.clone();
    let key = ExecutionId::from_raw(id);
    let record = tokio::task::spawn_blocking(move || store.execution(&key))
        .await
        .unwrap_or_else(crate::task::rethrow)?;
    Ok(record.filter(|r| r.tenant == **tenant))
}

async fn load(s: &AppState, tenant: &Tenant, id: &str) -> Result<ExecutionRecord, ApiError> {
    find(s, tenant, id).await?.ok_or_else(|| {
        ApiError::not_found(
            Code::ExecutionNotFound,
            format!("execution {id:?} not found"),
        )
    })
}

/// An execution name is 1-256 printable characters.
pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            Code::InvalidName,
            "execution name must be 1-256 printable characters",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    wait_ms: Option<u64>,
}

pub async fn get(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Query(q): Query<GetQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut finished = s.rt.subscribe();
    let mut record = load(&s, &tenant, &id).await?;
    if let Some(wait) = q.wait_ms {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait).min(MAX_WAIT);
        while !record.status.is_terminal() {
            match tokio::time::timeout_at(deadline, finished.recv()).await {
                Err(_) => break,
                Ok(Ok(done)) if done != record.id => continue,
                Ok(_) => record = load(&s, &tenant, &id).await?,
            }
        }
    }
    // An ended execution waits for nothing. Its callbacks are cancelled as it ends, but a
    // backend may write that just after the end itself, so they are not read at all then.
    let pending = if record.status.is_terminal() {
        Vec::new()
    } else {
        let store = s.rt.store.clone();
        let exec_id = record.id.clone();
        tokio::task::spawn_blocking(move || store.pending_callbacks(&exec_id))
            .await
            .unwrap_or_else(crate::task::rethrow)?
    };
    let parse = |raw: &Option<String>| {
        raw.as_deref()
            .map(|r| serde_json::from_str(r).unwrap_or(Value::Null))
    };
    let mut view = summary(&record);
    view["input"] = serde_json::from_str(&record.input).unwrap_or(Value::Null);
    view["result"] = parse(&record.result).unwrap_or(Value::Null);
    view["error"] = record.error.as_ref().map(error_json).unwrap_or(Value::Null);
    view["pending_callbacks"] = pending
        .iter()
        .map(|c| json!({"callback_id": c.id, "name": c.name, "operation_id": c.op_id}))
        .collect();
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    workflow: Option<String>,
    status: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A timestamp as RFC 3339 or as milliseconds since the epoch.
fn parse_time(field: &str, raw: &str) -> Result<Millis, ApiError> {
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(ms);
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Millis)
        .ok_or_else(|| {
            ApiError::bad_request(
                Code::InvalidRequest,
                format!("{field} must be an RFC 3339 time or milliseconds since the epoch"),
            )
        })
}

fn encode_cursor(record: &ExecutionRecord) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}:{}", record.created_at, record.id))
}

fn decode_cursor(raw: &str) -> Result<(Millis, ExecutionId), ApiError> {
    let bad = || {
        ApiError::bad_request(
            Code::InvalidCursor,
            "the cursor is not one this API returned",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ts, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((ts.parse().map_err(|_| bad())?, ExecutionId::from_raw(id)))
}

pub async fn list(
    State(s): State<AppState>,
    tenant: Tenant,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|raw| {
            ExecutionStatus::parse(raw).ok_or_else(|| {
                ApiError::bad_request(
                    Code::InvalidRequest,
                    "status must be one of RUNNING, SUCCEEDED, FAILED, TIMED_OUT, STOPPED",
                )
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let filter = ExecutionFilter {
        workflow: q.workflow,
        status,
        created_after: q
            .created_after
            .as_deref()
            .map(|t| parse_time("created_after", t))
            .transpose()?,
        created_before: q
            .created_before
            .as_deref()
            .map(|t| parse_time("created_before", t))
            .transpose()?,
        after: q.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
    };
    let store = s.rt.store.clone();
    let records = tokio::task::spawn_blocking(move || store.list_executions(&tenant, &filter))
        .await
        .unwrap_or_else(crate::task::rethrow)?;
    let next = (records.len() == limit)
        .then(|| records.last().map(encode_cursor))
        .flatten();
    Ok(Json(json!({
        "executions": records.iter().map(summary).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_take_any_rfc3339_offset_or_milliseconds() {
        let utc = super::parse_time("t", "2000-01-01T00:00:00Z").unwrap();
        assert_eq!(
            super::parse_time("t", "2000-01-01T02:00:00+02:00").unwrap(),
            utc
        );
        assert_eq!(
            super::parse_time("t", "1999-12-31T19:00:00.000-05:00").unwrap(),
            utc
        );
        assert_eq!(super::parse_time("t", "946684800000").unwrap(), utc);
        assert!(super::parse_time("t", "yesterday").is_err());
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

pub async fn history(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let record = load(&s, &tenant, &id).await?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let after = q.after.unwrap_or(0);
    let store = s.rt.store.clone();
    let events = tokio::task::spawn_blocking(move || store.history(&record.id, after, limit))
        .await
        .unwrap_or_else(crate::task::rethrow)?;
    let next = (events.len() == limit)
        .then(|| events.last().map(|(id, _)| *id))
        .flatten();
    Ok(Json(json!({
        "events": events.iter().map(|(id, e)| history::event(*id, e)).collect::<Vec<_>>(),
        "next_after": next,
    })))
}

pub async fn stop(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found(
            Code::ExecutionNotFound,
            format!("execution {id:?} not found"),
        ));
    }
    let record = s.rt.stop(&tenant, &ExecutionId::from_raw(id)).await?;
    Ok(Json(summary(&record)))
}

//! `/v1/executions`: start, list, read, history and stop (an execution's logs: `logs.rs`).
//!
//! Answer fields are declared in alphabetical order, the order the JSON maps they replace wrote,
//! so the answers' bytes did not change.

use super::openapi::{
    BadParameter, Digest, ErrorBody, ExecutionNotFound, ExecutionStatus as Status, HistoryEvent,
    Timestamp,
};
use super::{ApiError, AppState, Code, Tenant, body, history, schema};
use crate::executions::{Runtime, StartRequest};
use crate::ids::{ExecutionId, TenantId};
use crate::journal::{ErrorRecord, Millis, format_ts};
use crate::store::{ExecutionFilter, ExecutionRecord, ExecutionStatus};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use utoipa::ToSchema;

/// Longest long-poll a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[derive(Deserialize, ToSchema)]
#[schema(as = StartExecution)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The component name.
    workflow: String,
    /// The component version; the latest when left out.
    #[serde(default)]
    #[schema(maximum = 4294967295u32)]
    version: Option<u32>,
    /// The workflow's input: any JSON, at most the tenant's `max_payload_kb`. Null when left out.
    #[serde(default)]
    input: Value,
    /// An idempotency name, 1-256 bytes without control characters (or 400 `invalid_name`); the
    /// execution id when left out.
    #[serde(default)]
    name: Option<String>,
    /// The execution times out (status TIMED_OUT) after this many seconds; at most 366 days. No
    /// timeout when left out.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 31622400)]
    timeout_seconds: Option<u64>,
}

/// The fields of an execution shown in lists and in start and stop answers.
#[derive(Serialize, ToSchema)]
#[schema(as = ExecutionSummary)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// The digest it is pinned to.
    #[schema(value_type = Digest)]
    component_digest: crate::ids::ComponentDigest,
    #[schema(value_type = Timestamp)]
    created_at: String,
    /// The execution's id (`ex_...`).
    #[schema(value_type = String)]
    execution_id: ExecutionId,
    /// The idempotency name given at start, or the execution id.
    name: String,
    #[schema(value_type = Status)]
    status: &'static str,
    #[schema(value_type = Timestamp)]
    updated_at: String,
    /// The component version it runs.
    #[schema(minimum = 1)]
    version: u32,
    /// The component name.
    workflow: String,
}

/// An execution with its input, outcome and the callbacks it waits on.
#[derive(Serialize, ToSchema)]
#[schema(as = Execution)]
#[serde(deny_unknown_fields)]
pub struct Detail {
    /// The digest it is pinned to.
    #[schema(value_type = Digest)]
    component_digest: crate::ids::ComponentDigest,
    #[schema(value_type = Timestamp)]
    created_at: String,
    /// Why it FAILED or TIMED_OUT; null otherwise.
    #[schema(required = true)]
    error: Option<ExecutionError>,
    /// The execution's id (`ex_...`).
    #[schema(value_type = String)]
    execution_id: ExecutionId,
    /// The input it was started with.
    input: Value,
    /// The idempotency name given at start, or the execution id.
    name: String,
    /// Callbacks it waits on.
    pending_callbacks: Vec<PendingCallback>,
    /// The workflow's result when SUCCEEDED; null otherwise.
    result: Value,
    #[schema(value_type = Status)]
    status: &'static str,
    #[schema(value_type = Timestamp)]
    updated_at: String,
    /// The component version it runs.
    #[schema(minimum = 1)]
    version: u32,
    /// The component name.
    workflow: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionError {
    /// Extra JSON data of the error, or null.
    error_data: Value,
    error_message: String,
    /// E.g. `Aegis.Trap` or a workflow's own type; see docs/errors.
    error_type: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingCallback {
    /// The id to complete it with (`/v1/callbacks/{id}/...`).
    #[schema(value_type = String)]
    callback_id: crate::ids::CallbackId,
    /// The name the workflow gave the callback.
    name: String,
    /// The durable operation that waits on it.
    operation_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionList {
    executions: Vec<Summary>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryPage {
    #[schema(value_type = Vec<HistoryEvent>)]
    events: Vec<Value>,
    /// Pass as `after` for the next page; null on the last page.
    #[schema(required = true, minimum = 1)]
    next_after: Option<u64>,
}

const EXECUTION_ID: &str = "The execution id (`ex_...`).";

#[utoipa::path(post, path = "/v1/executions", tag = "executions", operation_id = "startExecution",
    summary = "Start an execution of a workflow",
    description = "The execution is pinned to the digest of the component version it starts with. Starting is idempotent by `name`: the same name with the same input answers the existing execution (200); with different input, 409.",
    request_body = StartBody,
    responses(
        (status = 201, description = "Started.", body = Summary),
        (status = 200, description = "An execution with this name and the same input exists: that execution.", body = Summary),
        (status = 400, description = "`invalid_json`: the body is not JSON; `invalid_request`: the body does not match `StartExecution`, or `timeout_seconds` is out of range; `invalid_name`: the execution name is empty, over 256 bytes or has control characters.", body = ErrorBody),
        (status = 404, description = "`workflow_not_found`: no component (or no such version) by that name.", body = ErrorBody),
        (status = 409, description = "`execution_name_conflict`: an execution with this name exists with different input.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the input is over the tenant's `max_payload_kb` (or the body is over that plus 16 KiB).", body = ErrorBody),
        (status = 429, description = "`quota_exceeded`: the tenant already runs `max_running_executions` executions; `rate_limited`: the request rate is over the tenant's quota (with `Retry-After`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ))]
pub async fn start(
    State(s): State<AppState>,
    tenant: Tenant,
    request: Body,
) -> Result<Response, ApiError> {
    let limit = s.rt.tenancy().quotas(&tenant).await.max_payload_bytes();
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

fn summary(record: &ExecutionRecord) -> Summary {
    Summary {
        component_digest: record.digest.clone(),
        created_at: format_ts(record.created_at),
        execution_id: record.id.clone(),
        name: record.name.clone(),
        status: record.status.as_str(),
        updated_at: format_ts(record.updated_at),
        version: record.version,
        workflow: record.workflow.clone(),
    }
}

fn error_view(e: &ErrorRecord) -> ExecutionError {
    let data = e
        .error_data
        .as_deref()
        .map(|d| serde_json::from_str::<Value>(d).unwrap_or(Value::String(d.to_string())));
    ExecutionError {
        error_data: data.unwrap_or(Value::Null),
        error_message: e.error_message.clone(),
        error_type: e.error_type.clone(),
    }
}

/// Finds an execution of the caller's tenant; another tenant's is `None`, exactly like a
/// missing one.
/// The tenant's execution `id`, if there is one; an id no execution could have is none.
pub async fn find(
    rt: &Runtime,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<ExecutionRecord>, ApiError> {
    if id.len() > 64 {
        return Ok(None);
    }
    Ok(rt.execution(tenant, &ExecutionId::from_raw(id)).await?)
}

pub(super) async fn load(
    s: &AppState,
    tenant: &Tenant,
    id: &str,
) -> Result<ExecutionRecord, ApiError> {
    find(&s.rt, tenant, id).await?.ok_or_else(|| {
        ApiError::not_found(
            Code::ExecutionNotFound,
            format!("execution {id:?} not found"),
        )
    })
}

/// An execution name is 1-256 printable characters.
pub fn check_name(name: &str) -> Result<(), ApiError> {
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

#[utoipa::path(get, path = "/v1/executions/{id}", tag = "executions", operation_id = "getExecution",
    summary = "An execution: status, input, result, error and pending callbacks",
    params(
        ("id" = String, Path, description = EXECUTION_ID),
        ("wait_ms" = Option<u64>, Query, description = "Long-poll: wait up to this many milliseconds (at most 60000) for the execution to end before answering."),
    ),
    responses(
        (status = 200, description = "The execution.", body = Detail),
        (status = 400, response = BadParameter),
        (status = 404, response = ExecutionNotFound),
    ))]
pub async fn get(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Query(q): Query<GetQuery>,
) -> Result<Json<Detail>, ApiError> {
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
        crate::callbacks::pending(&*s.rt, &record.id).await?
    };
    let parse = |raw: &Option<String>| {
        raw.as_deref()
            .map(|r| serde_json::from_str(r).unwrap_or(Value::Null))
    };
    let pending_callbacks = pending
        .iter()
        .map(|c| PendingCallback {
            callback_id: c.id.clone(),
            name: c.name.clone(),
            operation_id: c.op_id.clone(),
        })
        .collect();
    Ok(Json(Detail {
        component_digest: record.digest.clone(),
        created_at: format_ts(record.created_at),
        error: record.error.as_ref().map(error_view),
        execution_id: record.id.clone(),
        input: serde_json::from_str(&record.input).unwrap_or(Value::Null),
        name: record.name.clone(),
        pending_callbacks,
        result: parse(&record.result).unwrap_or(Value::Null),
        status: record.status.as_str(),
        updated_at: format_ts(record.updated_at),
        version: record.version,
        workflow: record.workflow.clone(),
    }))
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

const PAGE_SIZE: &str = "Page size; values outside 1-1000 are clamped to that range.";

#[utoipa::path(get, path = "/v1/executions", tag = "executions", operation_id = "listExecutions",
    summary = "List executions, newest first",
    params(
        ("workflow" = Option<String>, Query, description = "Only executions of this workflow."),
        ("status" = Option<Status>, Query, description = "Only executions in this status."),
        ("created_after" = Option<String>, Query, description = "Only executions created after this time: RFC 3339, or milliseconds since the epoch."),
        ("created_before" = Option<String>, Query, description = "Only executions created before this time: RFC 3339, or milliseconds since the epoch."),
        ("limit" = Option<u64>, Query, description = PAGE_SIZE),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "One page of executions.", body = ExecutionList),
        (status = 400, description = "`invalid_request`: a bad `status`, `created_after` or `created_before`; `invalid_cursor`: a cursor this API did not return; `bad_request`: an unknown query parameter or a `limit` that is not a non-negative integer.", body = ErrorBody),
    ))]
pub async fn list(
    State(s): State<AppState>,
    tenant: Tenant,
    Query(q): Query<ListQuery>,
) -> Result<Json<ExecutionList>, ApiError> {
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
    let records = s.rt.executions(&tenant, &filter).await?;
    let next = (records.len() == limit)
        .then(|| records.last().map(encode_cursor))
        .flatten();
    Ok(Json(ExecutionList {
        executions: records.iter().map(summary).collect(),
        next_cursor: next,
    }))
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

#[utoipa::path(get, path = "/v1/executions/{id}/history", tag = "executions",
    operation_id = "getExecutionHistory",
    summary = "The history events of an execution (AWS durable-functions shape)",
    params(
        ("id" = String, Path, description = EXECUTION_ID),
        ("after" = Option<u64>, Query, description = "Only events with a larger EventId: the `next_after` of the previous page."),
        ("limit" = Option<u64>, Query, description = "Page size; values outside 1-10000 are clamped to that range."),
    ),
    responses(
        (status = 200, description = "One page of events, by EventId.", body = HistoryPage),
        (status = 400, response = BadParameter),
        (status = 404, response = ExecutionNotFound),
    ))]
pub async fn history(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let record = load(&s, &tenant, &id).await?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let after = q.after.unwrap_or(0);
    let events = s.rt.history(&record.id, after, limit).await?;
    let next = (events.len() == limit)
        .then(|| events.last().map(|(id, _)| *id))
        .flatten();
    Ok(Json(HistoryPage {
        events: events
            .iter()
            .map(|(id, e)| history::event(*id, e))
            .collect(),
        next_after: next,
    }))
}

#[utoipa::path(post, path = "/v1/executions/{id}/stop", tag = "executions",
    operation_id = "stopExecution", summary = "Stop a running execution",
    description = "The status becomes STOPPED, its timers are cleared and its callbacks closed.",
    params(("id" = String, Path, description = EXECUTION_ID)),
    responses(
        (status = 200, description = "Stopped.", body = Summary),
        (status = 404, response = ExecutionNotFound),
        (status = 409, description = "`execution_not_running`: the execution has already ended.", body = ErrorBody),
    ))]
pub async fn stop(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<Summary>, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found(
            Code::ExecutionNotFound,
            format!("execution {id:?} not found"),
        ));
    }
    let record = s.rt.stop(&tenant, &ExecutionId::from_raw(id), None).await?;
    Ok(Json(summary(&record)))
}

//! `/v1/executions/{id}/logs`: the lines an execution's workflow logged, by page.

use super::openapi::{BadParameter, ExecutionNotFound};
use super::{ApiError, AppState, Tenant, executions};
use crate::store::{self, LogRecord};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// A line's level, as the workflow gave it (stdout is `INFO`; the host's own marker line is
/// `WARN`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = LogLevel)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl From<store::LogLevel> for Level {
    fn from(level: store::LogLevel) -> Self {
        match level {
            store::LogLevel::Trace => Level::Trace,
            store::LogLevel::Debug => Level::Debug,
            store::LogLevel::Info => Level::Info,
            store::LogLevel::Warn => Level::Warn,
            store::LogLevel::Error => Level::Error,
        }
    }
}

/// One line of an execution's log.
#[derive(Serialize, ToSchema)]
#[schema(as = LogRecord)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The line's place in the execution's log, from 1.
    #[schema(minimum = 1)]
    sequence: u64,
    /// When the workflow wrote it, in milliseconds since the epoch (the host's clock).
    timestamp: i64,
    level: Level,
    /// The text as the workflow wrote it (newlines included), cut at 4096 bytes. A line that
    /// is JSON stays that JSON, byte for byte.
    message: String,
}

impl From<LogRecord> for Record {
    fn from(r: LogRecord) -> Self {
        Self {
            sequence: r.seq,
            timestamp: r.at,
            level: r.level.into(),
            message: r.message,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogPage {
    records: Vec<Record>,
    /// Pass as `after` for the next page; null on the last page.
    #[schema(required = true, minimum = 1)]
    next_after: Option<u64>,
}

#[utoipa::path(get, path = "/v1/executions/{id}/logs", tag = "executions",
    operation_id = "getExecutionLogs",
    summary = "The lines an execution's workflow logged",
    description = "Each line the workflow logged (`log` in the WIT, the SDK's `ctx.info`, `ctx.error`...), once: a replay does not log again. What it printed to stdout is there too, a line per newline at level `INFO` (stdout knows nothing of replay: code that runs again prints again). Lines are kept from when they are written, before the journal records that follow them, so the lines of an activation that crashed are there too. An execution keeps its first `max_log_lines_per_execution` lines (and `max_log_kb_per_execution` KiB), then one `WARN` line saying the rest was dropped.",
    params(
        ("id" = String, Path, description = "The execution id (`ex_...`)."),
        ("after" = Option<u64>, Query, description = "Only lines with a larger `sequence`: the `next_after` of the previous page."),
        ("limit" = Option<u64>, Query, description = "Page size; values outside 1-10000 are clamped to that range."),
    ),
    responses(
        (status = 200, description = "One page of lines, by sequence.", body = LogPage),
        (status = 400, response = BadParameter),
        (status = 404, response = ExecutionNotFound),
    ))]
pub async fn list(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let record = executions::load(&s, &tenant, &id).await?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let after = q.after.unwrap_or(0);
    let records = s.rt.logs(&record.id, after, limit).await?;
    let next_after = (records.len() == limit)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(Json(LogPage {
        records: records.into_iter().map(Record::from).collect(),
        next_after,
    }))
}

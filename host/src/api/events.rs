//! `/v1/events`: the tenant's workflow events, as pages or as a live SSE stream, and the events
//! a sink refused for good (dead letters).

use super::openapi::{AdminUnauthorized, BadParameter, EventStream, Timestamp, Unavailable};
use super::{ApiError, AppState, Tenant};
use crate::ids::{ExecutionId, TenantId};
use crate::journal::format_ts;
use crate::notifications::to_json;
use crate::store;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::convert::Infallible;
use utoipa::ToSchema;

/// An event a workflow published. `notifications::to_json` writes it (bounded in size, and the
/// same for webhooks and SNS), so the API describes its shape here rather than building it.
#[derive(Serialize, ToSchema)]
#[allow(
    dead_code,
    reason = "the shape `notifications::to_json` writes, for the document"
)]
#[schema(
    description = "An event a workflow published; the same shape on the stream, in pages and in webhook bodies. At most 64 KiB as JSON: the longest strings of larger data are cut, each ending `…[truncated N bytes]` (data with nothing long enough to cut becomes `{\"truncated\": true, \"original_bytes\": N}`)."
)]
#[serde(deny_unknown_fields)]
pub struct WorkflowEvent {
    #[schema(value_type = Timestamp)]
    created_at: String,
    /// The event's JSON data.
    data: Value,
    execution_id: String,
    /// The event's kind, e.g. `workflow.status`.
    kind: String,
    /// Sequence number, increasing across the host.
    #[schema(minimum = 1)]
    seq: u64,
    tenant_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventPage {
    #[schema(value_type = Vec<WorkflowEvent>)]
    events: Vec<Value>,
    /// Pass as `after` for the next page: the last event's `seq`, or the `after` given when the
    /// page is empty.
    next_after: u64,
}

/// An event a sink refused for good, with what became of it. Fields in alphabetical order, as
/// the JSON map this replaced wrote them.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    /// Delivery attempts, the last one included.
    #[schema(minimum = 1)]
    attempts: u32,
    #[schema(value_type = Timestamp)]
    dead_at: String,
    #[schema(value_type = WorkflowEvent)]
    event: Value,
    /// What the sink said the last time (at most 1024 characters).
    last_error: String,
    /// The sink that refused it.
    #[schema(value_type = Sink)]
    sink: String,
}

/// A sink of workflow events.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code, reason = "only the document names these")]
pub enum Sink {
    Webhook,
    Sns,
    Eventbridge,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterPage {
    dead_letters: Vec<DeadLetter>,
    /// Pass as `after` for the next page: the last dead letter's event `seq`, or the `after`
    /// given when the page is empty.
    next_after: u64,
}

const EXECUTION: &str = "Only the events of this execution.";
const EVENTS_AFTER: &str =
    "Only events with a larger `seq`: the `next_after` of the previous page.";
const LETTERS_AFTER: &str =
    "Only dead letters whose event's `seq` is above this (the previous page's `next_after`).";
const PAGE_SIZE: &str = "Page size; values outside 1-1000 are clamped to that range.";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    execution_id: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/events`: events after `after`, oldest first.
#[utoipa::path(get, path = "/v1/events", tag = "events", operation_id = "listEvents",
    summary = "The tenant's workflow events after `after`, oldest first",
    params(
        ("execution_id" = Option<String>, Query, description = EXECUTION),
        ("after" = Option<u64>, Query, description = EVENTS_AFTER),
        ("limit" = Option<u64>, Query, description = PAGE_SIZE),
    ),
    responses(
        (status = 200, description = "One page of events.", body = EventPage),
        (status = 400, response = BadParameter),
    ))]
pub async fn list(
    State(s): State<AppState>,
    tenant: Tenant,
    Query(q): Query<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let execution = q.execution_id.map(ExecutionId::from_raw);
    let after = q.after.unwrap_or(0);
    let events =
        s.rt.notifier()
            .events(&tenant, execution.as_ref(), after, limit)
            .await?;
    let next = events.last().map(|e| e.seq).unwrap_or(after);
    Ok(Json(EventPage {
        events: events.iter().map(to_json).collect(),
        next_after: next,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    execution_id: Option<String>,
    after: Option<u64>,
}

/// Pages read at once when catching a stream up.
const BACKLOG_PAGE: usize = 1000;

/// `GET /v1/events/stream`: the backlog after `after` (or `Last-Event-ID`), then live events.
/// Each SSE message has the kind as its event name and the sequence number as its id.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events", operation_id = "streamEvents",
    summary = "The tenant's workflow events as a live Server-Sent Events stream",
    description = "First the events after `after` (or the `Last-Event-ID` header, which wins), then live events as they are committed. Each message has the event's `kind` as its event name, its `seq` as its id, and the `WorkflowEvent` JSON as its data.",
    params(
        ("execution_id" = Option<String>, Query, description = EXECUTION),
        ("after" = Option<u64>, Query, description = EVENTS_AFTER),
        ("Last-Event-ID" = Option<u64>, Header, nullable = false,
            description = "The `seq` of the last event received, when reconnecting."),
    ),
    responses(
        (status = 200, description = "The stream (with keep-alive comments).",
            content((EventStream = "text/event-stream"))),
        (status = 400, response = BadParameter),
    ))]
pub async fn stream(
    State(s): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let live = s.rt.notifier().subscribe();
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or(q.after)
        .unwrap_or(0);
    let execution = q.execution_id.map(ExecutionId::from_raw);
    // The whole backlog, page by page: a reconnecting client must not miss events.
    let mut backlog = Vec::new();
    let mut cursor = after;
    loop {
        let page =
            s.rt.notifier()
                .events(&tenant, execution.as_ref(), cursor, BACKLOG_PAGE)
                .await?;
        let full = page.len() == BACKLOG_PAGE;
        cursor = page.last().map(|e| e.seq).unwrap_or(cursor);
        backlog.extend(page);
        if !full {
            break;
        }
    }
    let mut last = backlog.last().map(|e| e.seq).unwrap_or(after);
    let tenant = tenant.0;
    let live = tokio_stream::wrappers::BroadcastStream::new(live).filter_map(move |item| {
        let keep = match item {
            Ok(event)
                if event.tenant == tenant
                    && execution.as_ref().is_none_or(|x| *x == event.execution_id)
                    && event.seq > last =>
            {
                last = event.seq;
                Some(event)
            }
            _ => None,
        };
        async move { keep }
    });
    let events = stream::iter(backlog).chain(live).map(|event| {
        Ok(Event::default()
            .event(event.kind.clone())
            .id(event.seq.to_string())
            .data(to_json(&event).to_string()))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllDeadLettersQuery {
    tenant_id: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// The JSON shape of a dead letter: the event as it was offered, and what became of it.
fn dead_letter_view(letter: &store::DeadLetter) -> DeadLetter {
    DeadLetter {
        attempts: letter.attempts,
        dead_at: format_ts(letter.dead_at),
        event: to_json(&letter.event),
        last_error: letter.last_error.clone(),
        sink: letter.sink.clone(),
    }
}

async fn dead_letter_page(
    s: &AppState,
    tenant: Option<TenantId>,
    after: Option<u64>,
    limit: Option<usize>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let after = after.unwrap_or(0);
    let letters =
        s.rt.notifier()
            .dead_letters(tenant.as_ref(), after, limit)
            .await?;
    let next = letters.last().map(|l| l.event.seq).unwrap_or(after);
    Ok(Json(DeadLetterPage {
        dead_letters: letters.iter().map(dead_letter_view).collect(),
        next_after: next,
    }))
}

/// `GET /v1/events/dead-letters`: the tenant's events that a sink refused for good, by seq.
#[utoipa::path(get, path = "/v1/events/dead-letters", tag = "events",
    operation_id = "listDeadLetters",
    summary = "The tenant's events that a sink refused for good, by `seq`",
    description = "An event becomes a dead letter when a sink (the webhook, SNS or EventBridge) refuses it for good: at once for HTTP 4xx other than 408/429, a redirect, or an entry error saying the entry is invalid or too large; after five attempts with backoff for HTTP 5xx, 408, 429 or a timeout. It then no longer holds back the events behind it.",
    params(
        ("after" = Option<u64>, Query, description = LETTERS_AFTER),
        ("limit" = Option<u64>, Query, description = PAGE_SIZE),
    ),
    responses(
        (status = 200, description = "One page of dead letters.", body = DeadLetterPage),
        (status = 400, response = BadParameter),
    ))]
pub async fn dead_letters(
    State(s): State<AppState>,
    tenant: Tenant,
    Query(q): Query<DeadLettersQuery>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    dead_letter_page(&s, Some(tenant.0), q.after, q.limit).await
}

/// `GET /v1/admin/dead-letters`: every tenant's dead letters (or one tenant's), for operators.
#[utoipa::path(get, path = "/v1/admin/dead-letters", tag = "admin",
    operation_id = "listAllDeadLetters",
    summary = "Dead letters of every tenant, or of one (admin key)",
    params(
        ("tenant_id" = Option<String>, Query, description = "Only this tenant's dead letters."),
        ("after" = Option<u64>, Query, description = LETTERS_AFTER),
        ("limit" = Option<u64>, Query, description = PAGE_SIZE),
    ),
    responses(
        (status = 200, description = "One page of dead letters.", body = DeadLetterPage),
        (status = 400, response = BadParameter),
        (status = 401, response = AdminUnauthorized),
        (status = 503, response = Unavailable),
    ))]
pub async fn all_dead_letters(
    State(s): State<AppState>,
    Query(q): Query<AllDeadLettersQuery>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let tenant = q.tenant_id.map(TenantId::from_raw);
    dead_letter_page(&s, tenant, q.after, q.limit).await
}

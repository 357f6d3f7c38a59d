//! `/v1/events`: the tenant's workflow events, as pages or as a live SSE stream, and the events
//! a sink refused for good (dead letters).

use super::{ApiError, AppState, Tenant};
use crate::ids::{ExecutionId, TenantId};
use crate::journal::format_ts;
use crate::notifications::to_json;
use crate::store::DeadLetter;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    execution_id: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/events`: events after `after`, oldest first.
pub async fn list(
    State(s): State<AppState>,
    tenant: Tenant,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let store = s.rt.store.clone();
    let execution = q.execution_id.map(ExecutionId::from_raw);
    let after = q.after.unwrap_or(0);
    let events = tokio::task::spawn_blocking(move || {
        store.workflow_events(Some(&tenant), execution.as_ref(), after, limit)
    })
    .await
    .unwrap_or_else(crate::task::rethrow)?;
    let next = events.last().map(|e| e.seq).unwrap_or(after);
    Ok(Json(
        json!({"events": events.iter().map(to_json).collect::<Vec<_>>(), "next_after": next}),
    ))
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
pub async fn stream(
    State(s): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let live = s.rt.notifier.subscribe();
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
        let store = s.rt.store.clone();
        let (t, e) = (tenant.0.clone(), execution.clone());
        let page = tokio::task::spawn_blocking(move || {
            store.workflow_events(Some(&t), e.as_ref(), cursor, BACKLOG_PAGE)
        })
        .await
        .unwrap_or_else(crate::task::rethrow)?;
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
fn dead_letter_json(letter: &DeadLetter) -> Value {
    json!({
        "event": to_json(&letter.event),
        "sink": letter.sink,
        "attempts": letter.attempts,
        "last_error": letter.last_error,
        "dead_at": format_ts(letter.dead_at),
    })
}

async fn dead_letter_page(
    s: &AppState,
    tenant: Option<TenantId>,
    after: Option<u64>,
    limit: Option<usize>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let after = after.unwrap_or(0);
    let store = s.rt.store.clone();
    let letters =
        tokio::task::spawn_blocking(move || store.dead_letters(tenant.as_ref(), after, limit))
            .await
            .unwrap_or_else(crate::task::rethrow)?;
    let next = letters.last().map(|l| l.event.seq).unwrap_or(after);
    Ok(Json(json!({
        "dead_letters": letters.iter().map(dead_letter_json).collect::<Vec<_>>(),
        "next_after": next,
    })))
}

/// `GET /v1/events/dead-letters`: the tenant's events that a sink refused for good, by seq.
pub async fn dead_letters(
    State(s): State<AppState>,
    tenant: Tenant,
    Query(q): Query<DeadLettersQuery>,
) -> Result<Json<Value>, ApiError> {
    dead_letter_page(&s, Some(tenant.0), q.after, q.limit).await
}

/// `GET /v1/admin/dead-letters`: every tenant's dead letters (or one tenant's), for operators.
pub async fn all_dead_letters(
    State(s): State<AppState>,
    Query(q): Query<AllDeadLettersQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = q.tenant_id.map(TenantId::from_raw);
    dead_letter_page(&s, tenant, q.after, q.limit).await
}

//! `/v1/events`: the tenant's workflow events, as pages or as a live SSE stream.

use super::{ApiError, AppState, Tenant};
use crate::ids::ExecutionId;
use crate::notifications::to_json;
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
    .map_err(ApiError::internal)??;
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
        .map_err(ApiError::internal)??;
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

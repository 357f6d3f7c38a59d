//! GetDurableExecution, GetDurableExecutionHistory, ListDurableExecutionsByFunction and
//! StopDurableExecution: the `/v1` reads and stop, in the service model's shapes.

use super::arn::{self, durable_name, execution_arn, function_arn};
use super::error::LambdaError;
use super::wire::{ErrorObject, MAX_ERROR_BYTES, Params};
use super::{Lambda, signed};
use crate::api::history::{self, Style, epoch_seconds};
use crate::config::LambdaConfig;
use crate::executions::StopError;
use crate::ids::{ExecutionId, TenantId};
use crate::journal::Millis;
use crate::store::{ExecutionFilter, ExecutionRecord, ExecutionStatus};
use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

/// The execution the ARN names, if it is the tenant's and the ARN agrees with it.
async fn load(
    s: &Lambda,
    tenant: &TenantId,
    raw_arn: &str,
) -> Result<ExecutionRecord, LambdaError> {
    let missing = || LambdaError::not_found(format!("durable execution {raw_arn:?} not found"));
    let named = arn::parse_execution_arn(&s.config, raw_arn).ok_or_else(missing)?;
    let record = s
        .app
        .rt
        .execution(tenant, &ExecutionId::from_raw(named.execution_id))
        .await?
        .filter(|r| r.workflow == named.workflow)
        .ok_or_else(missing)?;
    Ok(record)
}

/// GetDurableExecution's answer: the fields a list shows, then the execution's data. Fields
/// absent in AWS's answer are left out, not null.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Execution {
    #[serde(flatten)]
    summary: ListedExecution,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorObject>,
    version: String,
}

/// When an ended execution ended: its last update, which is its ending.
fn end_timestamp(record: &ExecutionRecord) -> Option<f64> {
    record
        .status
        .is_terminal()
        .then(|| epoch_seconds(record.updated_at))
}

/// `GET /2025-12-01/durable-executions/{arn}`.
pub async fn get(
    State(s): State<Lambda>,
    Path(raw_arn): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<Execution>, LambdaError> {
    let (tenant, _) = signed(&s, request).await?;
    let params = Params::parse(query.as_deref(), &["IncludeExecutionData"])?;
    let include_data = params.flag("IncludeExecutionData", true)?;
    let record = load(&s, &tenant, &raw_arn).await?;
    Ok(Json(Execution {
        summary: listed(&s.config, &record),
        input_payload: include_data.then(|| record.input.clone()),
        result: record.result.clone().filter(|_| include_data),
        error: record.error.as_ref().map(ErrorObject::of),
        version: record.version.to_string(),
    }))
}

/// A page of history.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryPage {
    events: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

/// Events read from the store at once while looking for the end of a history.
const HISTORY_CHUNK: usize = 1000;

/// `GET /2025-12-01/durable-executions/{arn}/history`: oldest first by default, newest first
/// with `ReverseOrder`. The marker is the EventId the next page continues from.
pub async fn history(
    State(s): State<Lambda>,
    Path(raw_arn): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<HistoryPage>, LambdaError> {
    let (tenant, _) = signed(&s, request).await?;
    let params = Params::parse(
        query.as_deref(),
        &["IncludeExecutionData", "MaxItems", "Marker", "ReverseOrder"],
    )?;
    let style = Style {
        aws: true,
        include_data: params.flag("IncludeExecutionData", true)?,
        lambda: Some(&s.config),
    };
    let limit = params.max_items()?;
    let reverse = params.flag("ReverseOrder", false)?;
    let marker = params
        .one("Marker")
        .map(|m| {
            m.parse::<u64>().map_err(|_| {
                LambdaError::invalid(format!("Marker {m:?} is not one this host gave"))
            })
        })
        .transpose()?;
    let record = load(&s, &tenant, &raw_arn).await?;
    let rt = &s.app.rt;
    let (events, next) = if reverse {
        // Newest first: the page ends below the marker (or at the last event). EventIds are
        // consecutive from 1, so the page is the `limit` ids below that.
        let below = match marker {
            Some(m) => m,
            None => last_event_id(rt, &record.id).await? + 1,
        };
        let from = below.saturating_sub(limit as u64 + 1);
        let mut events = rt
            .history(&record.id, from, (below - 1 - from) as usize)
            .await?;
        events.reverse();
        let next = events.last().map(|(id, _)| *id).filter(|id| *id > 1);
        (events, next)
    } else {
        let after = marker.unwrap_or(0);
        let events = rt.history(&record.id, after, limit).await?;
        let next = (events.len() == limit)
            .then(|| events.last().map(|(id, _)| *id))
            .flatten();
        (events, next)
    };
    Ok(Json(HistoryPage {
        events: events
            .iter()
            .map(|(id, e)| history::event_as(*id, e, style))
            .collect(),
        next_marker: next.map(|id| id.to_string()),
    }))
}

/// The EventId of the execution's last event (0 if it has none), read a chunk at a time.
async fn last_event_id(
    rt: &crate::executions::Runtime,
    id: &ExecutionId,
) -> Result<u64, LambdaError> {
    let mut last = 0;
    loop {
        let chunk = rt.history(id, last, HISTORY_CHUNK).await?;
        match chunk.last() {
            Some((id, _)) => last = *id,
            None => return Ok(last),
        }
        if chunk.len() < HISTORY_CHUNK {
            return Ok(last);
        }
    }
}

/// One execution in a list.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListedExecution {
    durable_execution_arn: String,
    durable_execution_name: String,
    function_arn: String,
    status: &'static str,
    start_timestamp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_timestamp: Option<f64>,
}

/// How a list (and the head of GetDurableExecution) shows `record`.
fn listed(config: &LambdaConfig, record: &ExecutionRecord) -> ListedExecution {
    ListedExecution {
        durable_execution_arn: execution_arn(config, record),
        durable_execution_name: durable_name(record).to_string(),
        function_arn: function_arn(config, &record.workflow, record.version),
        status: record.status.as_str(),
        start_timestamp: epoch_seconds(record.created_at),
        end_timestamp: end_timestamp(record),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionList {
    durable_executions: Vec<ListedExecution>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

/// Store pages read for one list request at most: filters the store cannot apply (several
/// statuses, a name, a version) are applied to what it returns, and a request whose filters
/// match little answers a short page with a marker rather than reading without end.
const MAX_SCANNED_PAGES: usize = 20;
/// Executions read to answer a list oldest first (the store lists newest first): past this, a
/// request is refused and asked to narrow its time range.
const MAX_OLDEST_FIRST: usize = 10_000;

/// What a list request asks for.
struct ListRequest {
    filter: ExecutionFilter,
    statuses: Vec<ExecutionStatus>,
    name: Option<String>,
    version: Option<u32>,
    limit: usize,
    oldest_first: bool,
}

impl ListRequest {
    fn matches(&self, record: &ExecutionRecord) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&record.status))
            && self
                .name
                .as_deref()
                .is_none_or(|n| durable_name(record) == n)
            && self.version.is_none_or(|v| record.version == v)
    }
}

/// A list marker: the (start time, id) of the last execution the previous page read.
fn encode_marker(record: &ExecutionRecord) -> String {
    marker_of(record.created_at, &record.id)
}

fn marker_of(at: Millis, id: &ExecutionId) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{at}:{id}"))
}

fn decode_marker(raw: &str) -> Result<(Millis, ExecutionId), LambdaError> {
    let bad = || LambdaError::invalid(format!("Marker {raw:?} is not one this host gave"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, ExecutionId::from_raw(id)))
}

fn list_request(
    s: &Lambda,
    function: &str,
    query: Option<&str>,
) -> Result<(String, ListRequest), LambdaError> {
    let params = Params::parse(
        query,
        &[
            "Qualifier",
            "DurableExecutionName",
            "Statuses",
            "StartedAfter",
            "StartedBefore",
            "ReverseOrder",
            "Marker",
            "MaxItems",
        ],
    )?;
    let function = arn::parse_function(&s.config, function).map_err(LambdaError::invalid)?;
    let version =
        arn::qualifier(&function, params.one("Qualifier")).map_err(LambdaError::invalid)?;
    let statuses = params
        .all("Statuses")
        .into_iter()
        .map(|raw| {
            ExecutionStatus::parse(raw).ok_or_else(|| {
                LambdaError::invalid(format!(
                    "status {raw:?} is not one of RUNNING, SUCCEEDED, FAILED, TIMED_OUT, STOPPED"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if statuses.len() > 10 {
        return Err(LambdaError::invalid("Statuses takes at most 10 values"));
    }
    let filter = ExecutionFilter {
        workflow: Some(function.name.clone()),
        status: match statuses.as_slice() {
            [one] => Some(*one),
            _ => None,
        },
        created_after: params.timestamp("StartedAfter")?,
        created_before: params.timestamp("StartedBefore")?,
        after: params.one("Marker").map(decode_marker).transpose()?,
        limit: 0,
    };
    Ok((
        function.name,
        ListRequest {
            filter,
            statuses,
            name: params.one("DurableExecutionName").map(str::to_string),
            version,
            limit: params.max_items()?,
            // The model: "true = oldest first"; newest first by default.
            oldest_first: params.flag("ReverseOrder", false)?,
        },
    ))
}

/// `GET /2025-12-01/functions/{name}/durable-executions`.
pub async fn list(
    State(s): State<Lambda>,
    Path(function): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<ExecutionList>, LambdaError> {
    let (tenant, _) = signed(&s, request).await?;
    let (workflow, mut request) = list_request(&s, &function, query.as_deref())?;
    let exists = !crate::components::list(&*s.app.rt, &tenant, Some(&workflow))
        .await?
        .is_empty();
    if !exists {
        return Err(LambdaError::not_found(format!(
            "Function not found: {workflow}"
        )));
    }
    let (page, next) = if request.oldest_first {
        oldest_first(&s, &tenant, &mut request).await?
    } else {
        newest_first(&s, &tenant, &mut request).await?
    };
    Ok(Json(ExecutionList {
        durable_executions: page.iter().map(|r| listed(&s.config, r)).collect(),
        next_marker: next,
    }))
}

/// Newest first, as the store lists: reads store pages after the marker until the page is full,
/// the store has no more, or [`MAX_SCANNED_PAGES`] were read.
async fn newest_first(
    s: &Lambda,
    tenant: &TenantId,
    request: &mut ListRequest,
) -> Result<(Vec<ExecutionRecord>, Option<String>), LambdaError> {
    request.filter.limit = request.limit.max(100);
    let mut page = Vec::new();
    for _ in 0..MAX_SCANNED_PAGES {
        let scanned = s.app.rt.executions(tenant, &request.filter).await?;
        let exhausted = scanned.len() < request.filter.limit;
        for record in scanned {
            request.filter.after = Some((record.created_at, record.id.clone()));
            if request.matches(&record) {
                page.push(record);
                if page.len() == request.limit {
                    // More may follow; if none does, the next page is empty and unmarked.
                    let marker = page.last().map(encode_marker);
                    return Ok((page, marker));
                }
            }
        }
        if exhausted {
            return Ok((page, None));
        }
    }
    // Scanned as far as one request may: the marker continues where the scan stopped.
    let marker = request
        .filter
        .after
        .as_ref()
        .map(|(at, id)| marker_of(*at, id));
    Ok((page, marker))
}

/// Oldest first: the store lists newest first, so every match (at most
/// [`MAX_OLDEST_FIRST`]) is read and the order turned; the marker is the last one returned,
/// and the next page is what started after it.
async fn oldest_first(
    s: &Lambda,
    tenant: &TenantId,
    request: &mut ListRequest,
) -> Result<(Vec<ExecutionRecord>, Option<String>), LambdaError> {
    if let Some((at, id)) = request.filter.after.take() {
        // Later than the marker's start, or as late with a greater id: the store's order is
        // (start, id) descending, so those are the ones before the marker in its list.
        request.filter.created_after = Some(request.filter.created_after.map_or(at, |a| a.max(at)));
        request.filter.limit = 1000;
        let mut all = Vec::new();
        collect(s, tenant, request, &mut all).await?;
        all.retain(|r| r.created_at > at || (r.created_at == at && r.id.as_str() > id.as_str()));
        return Ok(finish_oldest_first(all, request.limit));
    }
    request.filter.limit = 1000;
    let mut all = Vec::new();
    collect(s, tenant, request, &mut all).await?;
    Ok(finish_oldest_first(all, request.limit))
}

async fn collect(
    s: &Lambda,
    tenant: &TenantId,
    request: &mut ListRequest,
    all: &mut Vec<ExecutionRecord>,
) -> Result<(), LambdaError> {
    loop {
        let scanned = s.app.rt.executions(tenant, &request.filter).await?;
        let exhausted = scanned.len() < request.filter.limit;
        for record in scanned {
            request.filter.after = Some((record.created_at, record.id.clone()));
            if request.matches(&record) {
                all.push(record);
            }
        }
        if all.len() > MAX_OLDEST_FIRST {
            return Err(LambdaError::invalid(format!(
                "over {MAX_OLDEST_FIRST} executions match; listing them oldest first \
                 (ReverseOrder=true) needs a narrower StartedAfter/StartedBefore range"
            )));
        }
        if exhausted {
            return Ok(());
        }
    }
}

fn finish_oldest_first(
    mut all: Vec<ExecutionRecord>,
    limit: usize,
) -> (Vec<ExecutionRecord>, Option<String>) {
    all.reverse();
    let more = all.len() > limit;
    all.truncate(limit);
    let marker = all.last().filter(|_| more).map(encode_marker);
    (all, marker)
}

/// StopDurableExecution's answer.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stopped {
    stop_timestamp: f64,
}

/// `POST /2025-12-01/durable-executions/{arn}/stop`: the body is the error to record (an
/// `ErrorObject`; empty for the host's default). Stopping an execution that already ended
/// answers when it ended, as AWS does.
pub async fn stop(
    State(s): State<Lambda>,
    Path(raw_arn): Path<String>,
    request: Request,
) -> Result<Json<Stopped>, LambdaError> {
    let (tenant, body) = signed(&s, request).await?;
    if body.len() > MAX_ERROR_BYTES {
        return Err(LambdaError::invalid(format!(
            "the error is {} bytes; the most is {MAX_ERROR_BYTES}",
            body.len()
        )));
    }
    let error = ErrorObject::parse(&body)?.map(|e| {
        let default = crate::transitions::execution::stopped_error();
        e.into_record(&default.error_type, &default.error_message)
    });
    let record = load(&s, &tenant, &raw_arn).await?;
    let ended = match s.app.rt.stop(&tenant, &record.id, error).await {
        Ok(stopped) => stopped,
        Err(StopError::NotRunning) => load(&s, &tenant, &raw_arn).await?,
        Err(StopError::NotFound) => {
            return Err(LambdaError::not_found(format!(
                "durable execution {raw_arn:?} not found"
            )));
        }
        Err(StopError::Store(e)) => return Err(e.into()),
    };
    Ok(Json(Stopped {
        stop_timestamp: epoch_seconds(ended.updated_at),
    }))
}

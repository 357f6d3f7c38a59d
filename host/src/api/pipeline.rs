//! The research pipeline's own REST shapes, as its users already have them:
//! - `POST /workflows {"topic", "parameters": {"depth", "sources", "word_limit"}}` →
//!   `{"workflow_id", "status", "message"}`;
//! - `GET /workflows/{id}` → `{"workflow_id", "topic", "status", "current_step", "created_at",
//!   "updated_at", "steps_completed": [...]}` (plus `review_url`, `report_url`, `result`, `error`
//!   when known);
//! - `POST /workflows/{id}/approval {"decision": "approve"|"reject", "comment"}`.
//!
//! A pipeline run is an execution of the `research-pipeline` component. Its status and steps are
//! read from the workflow events it publishes (`workflow.status`, `workflow.step_completed`,
//! `approval.requested`, `workflow.completed`), and from the execution's own status once it ended.
//!
//! A start request that gives no `parameters.timeouts_seconds.approval` gets the configured
//! default (`[pipeline] approval_timeout_hours`, alias `APPROVAL_TIMEOUT_HOURS`) written into the
//! run's input, so the run keeps the timeout it started with whatever the configuration says
//! later; without one, the workflow's own default (24 h) applies.

use super::{ApiError, AppState, Code, Tenant, body, schema};
use crate::callbacks::Completion;
use crate::executions::StartRequest;
use crate::journal::format_ts;
use crate::store::{ExecutionRecord, ExecutionStatus};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// The component name pipeline runs start.
pub const PIPELINE_WORKFLOW: &str = "research-pipeline";
/// The callback the pipeline waits on for a decision.
const APPROVAL_CALLBACK: &str = "human_approval";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartPipeline {
    topic: String,
    #[serde(default)]
    parameters: Option<Value>,
    /// Optional idempotency name.
    #[serde(default)]
    name: Option<String>,
}

pub async fn start(
    State(s): State<AppState>,
    tenant: Tenant,
    request: Body,
) -> Result<Response, ApiError> {
    let limit = s.rt.tenancy.quotas(&tenant).max_payload_bytes();
    let bytes = body::read(request, limit + body::ENVELOPE, "the request body").await?;
    let req: StartPipeline = schema::parse(&bytes, "StartPipeline")?;
    if let Some(name) = &req.name {
        super::executions::check_name(name)?;
    }
    if req.topic.trim().is_empty() {
        return Err(ApiError::bad_request(
            Code::InvalidRequest,
            "topic must not be empty",
        ));
    }
    let parameters = with_default_approval(
        req.parameters.unwrap_or_else(|| json!({})),
        s.pipeline.approval_timeout_seconds(),
    );
    let input = json!({"topic": req.topic, "parameters": parameters});
    let start = StartRequest {
        workflow: PIPELINE_WORKFLOW.into(),
        version: None,
        input: input.to_string(),
        name: req.name,
        timeout_seconds: None,
    };
    let (record, created) = s.rt.start(&tenant, start).await.map_err(|e| match e {
        crate::executions::StartError::WorkflowNotFound(_) => ApiError::not_found(
            Code::WorkflowNotFound,
            format!("the {PIPELINE_WORKFLOW:?} component is not uploaded: POST it to /v1/components/{PIPELINE_WORKFLOW}"),
        ),
        other => other.into(),
    })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = json!({
        "workflow_id": record.id,
        "status": "RUNNING",
        "message": if created { "research pipeline started" } else { "research pipeline already started under this name" },
    });
    Ok((status, Json(body)).into_response())
}

/// `parameters` with `timeouts_seconds.approval` set to `default_seconds` where the request
/// leaves it out (absent or `null`, as the workflow reads it). Parameters of the wrong shape are
/// left as they are, for the workflow to refuse naming the field.
fn with_default_approval(mut parameters: Value, default_seconds: Option<u64>) -> Value {
    let Some(seconds) = default_seconds else {
        return parameters;
    };
    if parameters.is_null() {
        parameters = json!({});
    }
    let Some(params) = parameters.as_object_mut() else {
        return parameters;
    };
    let timeouts = params
        .entry("timeouts_seconds")
        .and_modify(|t| {
            if t.is_null() {
                *t = json!({});
            }
        })
        .or_insert_with(|| json!({}));
    if let Some(timeouts) = timeouts.as_object_mut()
        && timeouts.get("approval").is_none_or(Value::is_null)
    {
        timeouts.insert("approval".into(), seconds.into());
    }
    parameters
}

/// A pipeline run of the caller's tenant; anything else is a 404.
async fn load(s: &AppState, tenant: &Tenant, id: &str) -> Result<ExecutionRecord, ApiError> {
    super::executions::find(s, tenant, id)
        .await?
        .filter(|r| r.workflow == PIPELINE_WORKFLOW)
        .ok_or_else(|| {
            ApiError::not_found(Code::WorkflowNotFound, format!("workflow {id:?} not found"))
        })
}

pub async fn get(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = load(&s, &tenant, &id).await?;
    let store = s.rt.store.clone();
    let (t, e) = (tenant.0.clone(), record.id.clone());
    let events =
        tokio::task::spawn_blocking(move || store.workflow_events(Some(&t), Some(&e), 0, 10_000))
            .await
            .unwrap_or_else(crate::task::rethrow)?;
    let input: Value = serde_json::from_str(&record.input).unwrap_or(Value::Null);
    let mut said: Option<String> = None;
    let mut current_step = Value::Null;
    let mut steps = Vec::new();
    let (mut review_url, mut report_url) = (Value::Null, Value::Null);
    for event in &events {
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        match event.kind.as_str() {
            "workflow.status" => {
                if let Some(st) = data["status"].as_str() {
                    said = Some(st.to_string());
                }
                current_step = data["current_step"].clone();
            }
            "workflow.step_completed" => {
                steps.push(
                    json!({"step": data["step"], "completed_at": format_ts(event.created_at)}),
                );
            }
            "approval.requested" => review_url = data["review_url"].clone(),
            "workflow.completed" => report_url = data["report_url"].clone(),
            _ => {}
        }
    }
    let status = view_status(said.as_deref(), record.status);
    Ok(Json(json!({
        "workflow_id": record.id,
        "topic": input["topic"],
        "status": status,
        "current_step": current_step,
        "created_at": format_ts(record.created_at),
        "updated_at": format_ts(record.updated_at),
        "steps_completed": steps,
        "review_url": review_url,
        "report_url": report_url,
        "result": record.result.as_deref().map(|r| serde_json::from_str::<Value>(r).unwrap_or(Value::Null)),
        "error": record.error.as_ref().map(|e| json!({"error_type": e.error_type, "error_message": e.error_message})),
    })))
}

/// The status a view shows, from what the workflow last said and how its execution stands.
///
/// The execution's own end overrides what the workflow said. An ending the workflow announced
/// shows only once its execution has ended: the workflow says `COMPLETED` a moment before it
/// returns, and a view that said `COMPLETED` then would carry no result yet.
fn view_status(workflow_said: Option<&str>, execution: ExecutionStatus) -> &str {
    match (execution, workflow_said) {
        (ExecutionStatus::Failed | ExecutionStatus::TimedOut, _) => "FAILED",
        (ExecutionStatus::Stopped, _) => "CANCELLED",
        (ExecutionStatus::Running, None | Some("COMPLETED" | "REJECTED" | "FAILED")) => "RUNNING",
        (_, Some(said)) => said,
        (ExecutionStatus::Succeeded, None) => "PENDING",
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Approval {
    decision: String,
    #[serde(default)]
    comment: Option<String>,
}

pub async fn approve(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    request: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read(request, 64 * 1024, "the request body").await?;
    let approval: Approval = schema::parse(&bytes, "PipelineApproval")?;
    if approval.decision != "approve" && approval.decision != "reject" {
        return Err(ApiError::bad_request(
            Code::InvalidRequest,
            "decision must be \"approve\" or \"reject\"",
        ));
    }
    let record = load(&s, &tenant, &id).await?;
    let store = s.rt.store.clone();
    let exec = record.id.clone();
    let pending = tokio::task::spawn_blocking(move || store.pending_callbacks(&exec))
        .await
        .unwrap_or_else(crate::task::rethrow)?;
    let Some(callback) = pending.into_iter().find(|c| c.name == APPROVAL_CALLBACK) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            Code::NotAwaitingApproval,
            format!("workflow {id:?} is not waiting for approval"),
        ));
    };
    let decision = json!({"decision": approval.decision, "comment": approval.comment});
    crate::callbacks::complete(
        &s.rt,
        callback.id.as_str(),
        Completion::Succeed(decision.to_string()),
    )
    .await?;
    Ok(Json(
        json!({"workflow_id": record.id, "decision": approval.decision, "status": "RUNNING"}),
    ))
}

#[cfg(test)]
mod tests {
    use super::{view_status, with_default_approval};
    use crate::store::ExecutionStatus;
    use serde_json::json;

    #[test]
    fn an_announced_ending_shows_only_once_the_execution_ended() {
        use ExecutionStatus::*;
        for (said, execution, shown) in [
            (None, Running, "RUNNING"),
            (Some("RUNNING"), Running, "RUNNING"),
            (Some("AWAITING_APPROVAL"), Running, "AWAITING_APPROVAL"),
            // Said, but the execution has not returned its result yet.
            (Some("COMPLETED"), Running, "RUNNING"),
            (Some("REJECTED"), Running, "RUNNING"),
            (Some("FAILED"), Running, "RUNNING"),
            (Some("COMPLETED"), Succeeded, "COMPLETED"),
            (Some("REJECTED"), Succeeded, "REJECTED"),
            // The execution's own end wins over what the workflow said.
            (Some("AWAITING_APPROVAL"), Failed, "FAILED"),
            (Some("RUNNING"), TimedOut, "FAILED"),
            (Some("AWAITING_APPROVAL"), Stopped, "CANCELLED"),
        ] {
            assert_eq!(
                view_status(said, execution),
                shown,
                "{said:?} {execution:?}"
            );
        }
    }

    #[test]
    fn the_configured_approval_timeout_fills_only_what_the_request_leaves_out() {
        let day = Some(86_400);
        // Nothing configured: the parameters go as they came.
        assert_eq!(with_default_approval(json!({}), None), json!({}));
        for (given, expected) in [
            (json!({}), json!({"timeouts_seconds": {"approval": 86_400}})),
            (
                json!(null),
                json!({"timeouts_seconds": {"approval": 86_400}}),
            ),
            (
                json!({"depth": 3, "timeouts_seconds": null}),
                json!({"depth": 3, "timeouts_seconds": {"approval": 86_400}}),
            ),
            (
                json!({"timeouts_seconds": {"research": 60, "approval": null}}),
                json!({"timeouts_seconds": {"research": 60, "approval": 86_400}}),
            ),
            // The request's own timeout wins.
            (
                json!({"timeouts_seconds": {"approval": 30}}),
                json!({"timeouts_seconds": {"approval": 30}}),
            ),
            // Wrong shapes stay, so the workflow names the field it refuses.
            (json!("fast"), json!("fast")),
            (
                json!({"timeouts_seconds": [1]}),
                json!({"timeouts_seconds": [1]}),
            ),
        ] {
            assert_eq!(
                with_default_approval(given.clone(), day),
                expected,
                "{given}"
            );
        }
    }
}

//! The research pipeline's own REST shapes, as its users already have them:
//! - `POST /workflows {"topic", "parameters": {"depth", "sources", "word_limit"}}` →
//!   `{"workflow_id", "status", "message"}`;
//! - `GET /workflows/{id}` → `{"workflow_id", "topic", "status", "current_step", "created_at",
//!   "updated_at", "steps_completed": [...]}` (plus `review_url`, `report_url`, `result`, `error`
//!   when known);
//! - `POST /workflows/{id}/approval {"decision": "approve"|"reject", "comment"}`;
//! - `GET /workflows/{id}/review` → the view with the analysis rendered as HTML
//!   (`analysis_html`, see `review`), which the console's approval page shows.
//!
//! `approval_url` is the console's approval page for the run (`<public url>/ui/approvals/<id>`),
//! the link a reviewer opens; `review_url` stays the presigned link to the raw analysis JSON.
//!
//! A pipeline run is an execution of the `research-pipeline` component. Its status and steps are
//! read from the workflow events it publishes (`workflow.status`, `workflow.step_completed`,
//! `approval.requested`, `workflow.completed`), and from the execution's own status once it ended.
//!
//! A start request that gives no `parameters.timeouts_seconds.approval` gets the configured
//! default (`[pipeline] approval_timeout_hours`, alias `APPROVAL_TIMEOUT_HOURS`) written into the
//! run's input, so the run keeps the timeout it started with whatever the configuration says
//! later; without one, the workflow's own default (24 h) applies.
//!
//! A start request that gives no `parameters.console_url` gets this host's console
//! (`<public url>/ui`): the run's `approval.requested` event then carries `approval_url`, its
//! approval page, which the webhook, SNS and EventBridge pass on and its log line names.
//!
//! The routes carry their own state; the API lays its key check on them ([`crate::api::Extension`]).

use super::config::PipelineConfig;
use super::shapes::{
    Approval, Pipeline, PipelineDecision, PipelineError, PipelineReview, PipelineStarted, Running,
    StartPipeline, StepCompleted,
};
use crate::api::extension::{
    ENVELOPE, ErrorBody, FeatureCode, Schemas, Tenant, check_name, error_response, find_execution,
    read_body,
};
use crate::api::{ApiError, Code};
use crate::artifacts::ArtifactRef;
use crate::callbacks::Completion;
use crate::executions::{Runtime, StartRequest};
use crate::journal::format_ts;
use crate::store::{ExecutionRecord, ExecutionStatus};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::{Arc, LazyLock};
use utoipa::ToResponse;
use utoipa::openapi::{RefOr, response};

/// The component name pipeline runs start.
pub const PIPELINE_WORKFLOW: &str = "research-pipeline";
/// The callback the pipeline waits on for a decision.
const APPROVAL_CALLBACK: &str = "human_approval";

/// What the pipeline's handlers share.
#[derive(Clone)]
pub(super) struct AppState {
    rt: Arc<Runtime>,
    /// The `[pipeline]` defaults.
    pipeline: Arc<PipelineConfig>,
}

/// The schemas of the document the pipeline is served in, to check its request bodies against
/// the contract its clients read.
static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| {
    let document = crate::api::extension::document_with(&[(super::document(), super::TAGS_AFTER)]);
    Schemas::load(&document).unwrap_or_else(|e| panic!("the pipeline's OpenAPI document: {e}"))
});

/// The pipeline's routes, with their state.
pub(super) fn router(rt: Arc<Runtime>, pipeline: Arc<PipelineConfig>) -> Router {
    // Compile the schemas now: a broken document stops the host at start.
    LazyLock::force(&SCHEMAS);
    Router::new()
        .route("/workflows", post(start))
        .route("/workflows/{id}", get(view))
        .route("/workflows/{id}/approval", post(approve))
        .route("/workflows/{id}/review", get(review))
        .with_state(AppState { rt, pipeline })
}

/// 404 for a run that is not there (or is another tenant's), a `components/responses` entry.
pub struct PipelineNotFound;

impl<'r> ToResponse<'r> for PipelineNotFound {
    fn response() -> (&'r str, RefOr<response::Response>) {
        let description = "`workflow_not_found`: no such research pipeline run.";
        (
            "PipelineNotFound",
            error_response(description, false).into(),
        )
    }
}

/// The pipeline's own error code: the approval route when the run waits for no decision. Its
/// entry is in `docs/errors/pipeline.md`.
const NOT_AWAITING_APPROVAL: FeatureCode = FeatureCode::new("not_awaiting_approval");

const PIPELINE_ID: &str = "The run's `workflow_id` (its execution id).";

#[utoipa::path(post, path = "/workflows", tag = "pipeline", operation_id = "startPipeline",
    summary = "Start a research pipeline run",
    description = "Starts an execution of the `research-pipeline` component with input `{\"topic\", \"parameters\"}`; idempotent by `name` like `POST /v1/executions`.",
    request_body = StartPipeline,
    responses(
        (status = 201, description = "Started.", body = PipelineStarted),
        (status = 200, description = "A run with this name and the same input exists: that run.", body = PipelineStarted),
        (status = 400, description = "`invalid_json`: the body is not JSON; `invalid_request`: the body does not match `StartPipeline`, or the topic is empty; `invalid_name`: the name is empty, over 256 bytes or has control characters.", body = ErrorBody),
        (status = 404, description = "`workflow_not_found`: the `research-pipeline` component is not uploaded.", body = ErrorBody),
        (status = 409, description = "`execution_name_conflict`: a run with this name exists with different input.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over the tenant's `max_payload_kb` plus 16 KiB.", body = ErrorBody),
        (status = 429, description = "`quota_exceeded`: the tenant already runs `max_running_executions` executions; `rate_limited`: the request rate is over the tenant's quota (with `Retry-After`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ))]
pub async fn start(
    State(s): State<AppState>,
    tenant: Tenant,
    request: Body,
) -> Result<Response, ApiError> {
    let limit = s.rt.tenancy().quotas(&tenant).await.max_payload_bytes();
    let bytes = read_body(request, limit + ENVELOPE, "the request body").await?;
    let req: StartPipeline = SCHEMAS.parse(&bytes, "StartPipeline")?;
    if let Some(name) = &req.name {
        check_name(name)?;
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
    let parameters = with_console(parameters, &format!("{}/ui", s.rt.public_url()));
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
    let body = PipelineStarted {
        message: if created {
            "research pipeline started"
        } else {
            "research pipeline already started under this name"
        },
        status: Running::Running,
        workflow_id: record.id,
    };
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

/// `parameters` with `console_url` set to this host's console where the request leaves it out,
/// so the run's `approval.requested` event links its approval page. Parameters of the wrong
/// shape are left as they are, for the workflow to refuse.
fn with_console(mut parameters: Value, console: &str) -> Value {
    if parameters.is_null() {
        parameters = json!({});
    }
    if let Some(params) = parameters.as_object_mut()
        && params.get("console_url").is_none_or(Value::is_null)
    {
        params.insert("console_url".into(), console.into());
    }
    parameters
}

/// A pipeline run of the caller's tenant; anything else is a 404.
async fn load(s: &AppState, tenant: &Tenant, id: &str) -> Result<ExecutionRecord, ApiError> {
    find_execution(&s.rt, tenant, id)
        .await?
        .filter(|r| r.workflow == PIPELINE_WORKFLOW)
        .ok_or_else(|| {
            ApiError::not_found(Code::WorkflowNotFound, format!("workflow {id:?} not found"))
        })
}

#[utoipa::path(get, path = "/workflows/{id}", tag = "pipeline", operation_id = "getPipeline",
    summary = "A research pipeline run: status, steps, links and outcome",
    params(("id" = String, Path, description = PIPELINE_ID)),
    responses(
        (status = 200, description = "The run, as its workflow events and its execution tell it.", body = Pipeline),
        (status = 404, response = PipelineNotFound),
    ))]
pub async fn view(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<Pipeline>, ApiError> {
    Ok(Json(read(&s, &tenant, &id).await?.0))
}

/// The run's view, and the reference of its stored analysis once approval was requested.
async fn read(
    s: &AppState,
    tenant: &Tenant,
    id: &str,
) -> Result<(Pipeline, Option<String>), ApiError> {
    let record = load(s, tenant, id).await?;
    let events =
        s.rt.notifier()
            .events(tenant, Some(&record.id), 0, 10_000)
            .await?;
    let input: Value = serde_json::from_str(&record.input).unwrap_or(Value::Null);
    let mut said: Option<String> = None;
    let mut current_step = Value::Null;
    let mut steps = Vec::new();
    let (mut review_url, mut report_url) = (Value::Null, Value::Null);
    let mut analysis_reference = None;
    let mut approval_url = None;
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
                steps.push(StepCompleted {
                    completed_at: format_ts(event.created_at),
                    step: data["step"].clone(),
                });
            }
            "approval.requested" => {
                review_url = data["review_url"].clone();
                approval_url = data["approval_url"].as_str().map(str::to_string);
                analysis_reference = data["analysis_reference"].as_str().map(str::to_string);
            }
            "workflow.completed" => report_url = data["report_url"].clone(),
            _ => {}
        }
    }
    let status = view_status(said.as_deref(), record.status);
    let result = record
        .result
        .as_deref()
        .map(|r| serde_json::from_str::<Value>(r).unwrap_or(Value::Null));
    let error = record.error.as_ref().map(|e| PipelineError {
        error_message: e.error_message.clone(),
        error_type: e.error_type.clone(),
    });
    // The page the run's event linked; for a run started without a console, this host's.
    let approval_url =
        approval_url.or_else(|| (!review_url.is_null()).then(|| console_page(&s.rt, &record.id)));
    let view = Pipeline {
        approval_url,
        created_at: format_ts(record.created_at),
        current_step,
        error,
        report_url,
        result,
        review_url,
        status: status.to_string(),
        steps_completed: steps,
        topic: input["topic"].clone(),
        updated_at: format_ts(record.updated_at),
        workflow_id: record.id,
    };
    Ok((view, analysis_reference))
}

/// The console's approval page for run `id`: what a reviewer opens.
fn console_page(rt: &Runtime, id: &crate::ids::ExecutionId) -> String {
    format!("{}/ui/approvals/{id}", rt.public_url())
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

#[utoipa::path(post, path = "/workflows/{id}/approval", tag = "pipeline",
    operation_id = "approvePipeline",
    summary = "Approve or reject a research pipeline run waiting for review",
    description = "Completes the run's `human_approval` callback with `{\"decision\", \"comment\"}`.",
    params(("id" = String, Path, description = PIPELINE_ID)),
    request_body = Approval,
    responses(
        (status = 200, description = "The decision was handed to the run.", body = PipelineDecision),
        (status = 400, description = "`invalid_json`: the body is not JSON; `invalid_request`: the body does not match `PipelineApproval` (the decision is neither `approve` nor `reject`).", body = ErrorBody),
        (status = 404, description = "`workflow_not_found`: no such run; `callback_not_found`: its approval callback vanished.", body = ErrorBody),
        (status = 409, description = "`not_awaiting_approval`: the run is not waiting for a decision; `callback_already_completed`, `callback_timed_out` or `execution_ended`: the decision came too late.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB, or the decision over the tenant's `max_payload_kb`.", body = ErrorBody),
    ))]
pub async fn approve(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    request: Body,
) -> Result<Json<PipelineDecision>, ApiError> {
    let bytes = read_body(request, 64 * 1024, "the request body").await?;
    let approval: Approval = SCHEMAS.parse(&bytes, "PipelineApproval")?;
    let record = load(&s, &tenant, &id).await?;
    let pending = crate::callbacks::pending(&*s.rt, &record.id).await?;
    let Some(callback) = pending.into_iter().find(|c| c.name == APPROVAL_CALLBACK) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            Code::Feature(NOT_AWAITING_APPROVAL),
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
    Ok(Json(PipelineDecision {
        decision: approval.decision,
        status: Running::Running,
        workflow_id: record.id,
    }))
}

#[utoipa::path(get, path = "/workflows/{id}/review", tag = "pipeline",
    operation_id = "reviewPipeline",
    summary = "A research pipeline run with its analysis rendered for review",
    description = "The run's view, with the analysis the run stored for its approval (`analysis.json`) rendered as an HTML fragment: structured JSON as sections and lists, markdown text as HTML. Agent output is escaped and its raw HTML shown as text; links other than `http`, `https` and `mailto` are dropped, and images shown as links. The console's approval page (`approval_url`) shows it.",
    params(("id" = String, Path, description = PIPELINE_ID)),
    responses(
        (status = 200, description = "The run and its rendered analysis (null before approval is requested).", body = PipelineReview),
        (status = 404, response = PipelineNotFound),
    ))]
pub async fn review(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<PipelineReview>, ApiError> {
    let (view, reference) = read(&s, &tenant, &id).await?;
    let analysis_html = match reference {
        Some(reference) => Some(rendered_analysis(&s, &tenant, &reference).await?),
        None => None,
    };
    let awaiting_decision = crate::callbacks::pending(&*s.rt, &view.workflow_id)
        .await?
        .iter()
        .any(|c| c.name == APPROVAL_CALLBACK);
    Ok(Json(PipelineReview {
        analysis_html,
        awaiting_decision,
        run: view,
    }))
}

/// The stored analysis as HTML; a missing one says so in the page.
async fn rendered_analysis(
    s: &AppState,
    tenant: &Tenant,
    reference: &str,
) -> Result<String, ApiError> {
    let missing = |why: String| format!("<p class=\"error\">{}</p>", super::review::escape(&why));
    let Ok(parsed) = ArtifactRef::parse(reference) else {
        return Ok(missing(format!(
            "the analysis reference {reference:?} is not valid"
        )));
    };
    let bytes = match s.rt.artifacts().get(tenant, &parsed).await {
        Ok((bytes, _)) => bytes,
        Err(crate::artifacts::Error::NotFound(_)) => {
            return Ok(missing(format!("the analysis {reference} is gone")));
        }
        Err(e) => return Err(ApiError::unavailable(e)),
    };
    let analysis: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    // A large analysis takes a while to render: off the request threads.
    tokio::task::spawn_blocking(move || super::review::render(&analysis))
        .await
        .map_err(|e| ApiError::unavailable(format!("rendering the analysis: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{NOT_AWAITING_APPROVAL, view_status, with_console, with_default_approval};
    use crate::api::Code;
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

    #[test]
    fn the_console_fills_only_a_missing_console_url() {
        let console = "http://h:1/ui";
        for (given, expected) in [
            (json!({}), json!({"console_url": console})),
            (
                json!({"console_url": null, "depth": 2}),
                json!({"console_url": console, "depth": 2}),
            ),
            (
                json!({"console_url": "https://mine/ui"}),
                json!({"console_url": "https://mine/ui"}),
            ),
            (json!(null), json!({"console_url": console})),
            (json!("fast"), json!("fast")),
        ] {
            assert_eq!(with_console(given.clone(), console), expected, "{given}");
        }
    }

    /// The pipeline's code is none of the host's, has its entry in `docs/errors/pipeline.md`,
    /// and a heading in `docs/errors/api.md` (where its `doc` link points) that links there.
    #[test]
    fn the_pipeline_code_is_documented_on_its_page_and_linked_from_the_apis() {
        let page = |name: &str| {
            let path = format!("{}/../docs/errors/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let code = Code::Feature(NOT_AWAITING_APPROVAL);
        assert!(Code::ALL.iter().all(|c| c.as_str() != code.as_str()));
        assert_eq!(code.doc(), format!("docs/errors/api.md#{code}"));
        let heading = format!("### `{code}`\n");
        let entry = page("pipeline.md");
        let entry = entry
            .split(&heading)
            .nth(1)
            .expect("an entry in pipeline.md");
        assert!(entry.starts_with("**409.** "), "{entry}");
        let api = page("api.md");
        let link = api.split(&heading).nth(1).expect("a heading in api.md");
        assert!(
            link.lines()
                .next()
                .is_some_and(|l| l.contains(&format!("(pipeline.md#{code})"))),
            "{link}"
        );
    }
}

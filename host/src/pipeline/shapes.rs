//! The wire shapes of the research pipeline's routes, as its users already have them. Fields
//! are declared in alphabetical order, the order the JSON maps they replace wrote, so the
//! answers' bytes did not change.

use crate::api::extension::{AnyJson, Timestamp};
use crate::ids::ExecutionId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPipeline {
    /// What to research; not empty.
    pub(super) topic: String,
    /// Options handed to the pipeline as they are, e.g. `{"depth", "sources", "word_limit",
    /// "timeouts_seconds"}`; `{}` when left out or null. When `timeouts_seconds.approval` is left
    /// out, the host's configured default (`[pipeline] approval_timeout_hours`, alias
    /// `APPROVAL_TIMEOUT_HOURS`) is written into the run's input, if one is configured; when
    /// `console_url` is left out, this host's web console (`<public url>/ui`) is, so that the
    /// run's `approval.requested` event links its approval page.
    #[serde(default)]
    #[schema(value_type = AnyJson)]
    pub(super) parameters: Option<Value>,
    /// An idempotency name.
    #[serde(default)]
    pub(super) name: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineStarted {
    pub(super) message: &'static str,
    pub(super) status: Running,
    /// The run's id (its execution id).
    #[schema(value_type = String)]
    pub(super) workflow_id: ExecutionId,
}

/// The status a start or a decision answers: the run goes on.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Running {
    Running,
}

/// A research pipeline run, as its workflow events and its execution tell it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// The console's approval page for the run (`<public url>/ui/approvals/<id>`), once
    /// approval is requested; null before. The link a reviewer opens.
    #[schema(required = true)]
    pub(super) approval_url: Option<String>,
    #[schema(value_type = Timestamp)]
    pub(super) created_at: String,
    /// The step the run last said it is in, or null.
    pub(super) current_step: Value,
    #[schema(required = true)]
    pub(super) error: Option<PipelineError>,
    /// Where the report is, once completed; null before.
    pub(super) report_url: Value,
    /// The run's result once it succeeded; null otherwise.
    #[schema(value_type = AnyJson, required = true)]
    pub(super) result: Option<Value>,
    /// The presigned link to the raw analysis (`analysis.json`) under review, once approval is
    /// requested; null before. People open `approval_url`.
    pub(super) review_url: Value,
    /// The last status the run published (e.g. `PENDING`, `RUNNING`, `AWAITING_APPROVAL`), or
    /// `FAILED` / `CANCELLED` once its execution failed, timed out or was stopped. An ending the
    /// run published (`COMPLETED`, `REJECTED`, `FAILED`) shows only once its execution has ended;
    /// until then the status is `RUNNING`.
    pub(super) status: String,
    pub(super) steps_completed: Vec<StepCompleted>,
    /// The topic it was started with.
    pub(super) topic: Value,
    #[schema(value_type = Timestamp)]
    pub(super) updated_at: String,
    #[schema(value_type = String)]
    pub(super) workflow_id: ExecutionId,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepCompleted {
    #[schema(value_type = Timestamp)]
    pub(super) completed_at: String,
    /// The step's name, as the run published it.
    pub(super) step: Value,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineError {
    pub(super) error_message: String,
    pub(super) error_type: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = PipelineApproval)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub(super) decision: Decision,
    #[serde(default)]
    pub(super) comment: Option<String>,
}

#[derive(Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Reject,
}

/// The decision handed to a run.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineDecision {
    pub(super) decision: Decision,
    pub(super) status: Running,
    #[schema(value_type = String)]
    pub(super) workflow_id: ExecutionId,
}

/// A run with its analysis rendered for review: what the console's approval page shows.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineReview {
    /// The analysis the run stored for its approval, as an HTML fragment safe to show
    /// (agent output escaped, raw HTML shown as text); null before approval is requested.
    #[schema(required = true)]
    pub(super) analysis_html: Option<String>,
    /// Whether the run waits for a decision now (`POST /workflows/{id}/approval`).
    pub(super) awaiting_decision: bool,
    /// The run, as `GET /workflows/{id}` shows it.
    pub(super) run: Pipeline,
}

//! The research pipeline: a researcher, an analyst, a person who approves, and a writer.
//!
//! Input: `{"topic": str, "parameters": {"depth"?, "sources"?, "word_limit"?,
//! "timeouts_seconds"?: {"research"?, "analysis"?, "approval"?, "writing"?},
//! "agents"?: {"researcher"?, "analyst"?, "writer"?}, "console_url"?}}` (see [`request`] for the defaults and the
//! accepted ranges; anything wrong fails with `Pipeline.InvalidInput`).
//!
//! | # | step | what happens |
//! |---|---|---|
//! | 1 | `init_workflow` | a step validates the input into the record `{topic, parameters, started_at}` |
//! | 2 | `research_phase` | the researcher gets `{topic, parameters: {depth, sources, word_limit}}` (4 h) |
//! | 3 | `analysis_phase` | the analyst gets `{topic, research}` (2 h) |
//! | 4 | `request_approval` | the analysis is stored as `analysis.json` and presigned; the status becomes `AWAITING_APPROVAL` and `approval.requested` carries the console's approval page (`approval_url`) and the raw analysis's URL (`review_url`) |
//! | 5 | `human_approval` | a callback waits for `{"decision": "approve"\|"reject", "comment"?}` (24 h) |
//! | 6 | `writing_phase` | on reject the pipeline ends `REJECTED`; on approve the writer gets `{topic, analysis, word_limit}` (1 h) |
//! | 7 | `finalize_workflow` | the report is stored as `report.md`, presigned for 7 days, and returned |
//!
//! Output: `{"status": "COMPLETED", "topic", "report_url", "report_reference", "word_count"}`, or
//! `{"status": "REJECTED", "topic", "comment"}` (a rejection is a normal ending, not a failure).
//!
//! **Events.** The host builds the pipeline's REST view (status, current step, steps completed)
//! from the events published here, each recorded once however often the workflow replays:
//! `workflow.status {status, current_step}` whenever either changes, `workflow.started {topic,
//! parameters}` once the input is valid (the parameters with their defaults filled in),
//! `workflow.step_completed {step}` after each step, `approval.requested {topic, approval_url,
//! review_url, analysis_reference}` (`approval_url`: the console's approval page, `<console_url>/approvals/<execution id>`,
//! when the input's `parameters.console_url` is given, as `POST /workflows` does; else null),
//! `workflow.completed {topic, report_url, report_reference, word_count}`, `workflow.rejected
//! {topic, comment}`, and, before any failure is returned, `workflow.status {"FAILED", step}`
//! then `workflow.failed {step, error_type, error_message}`.
//!
//! **Agents.** Payloads over 200 KB never travel inline: results the host stored as
//! `{"$artifact": ...}` references are read back, and inputs that large are stored and sent as
//! references with a presigned URL (see [`refs`]). An agent whose dispatch failed
//! (`Agent.DispatchFailed`) is tried once more as `<step>#2`; any other agent failure becomes
//! `Pipeline.AgentFailed`, and a timeout `Pipeline.AgentTimedOut`, naming the step and the agent
//! (see [`answers`]).
//!
//! **Answers.** Agents we did not write answer the A2A way, and the host hands their answer over
//! as one JSON value: a data part as it is, a text or markdown artifact as its text. The research
//! and the analysis may be either (they go to the next agent as they came, and must not be
//! empty); the writer's report is markdown text or `{"report_markdown", "word_count"?}`. An
//! answer that cannot be used fails with `Pipeline.InvalidAgentResult`, saying what was expected
//! and what came.

use std::time::Duration;

use aegis_sdk::{CallbackOptions, Ctx, Error, workflow};
use serde::Serialize;
use serde_json::{Value, json};

use crate::answers::{DISPATCH_FAILED, Decision, Report, agent_error, approval_error, content};
use crate::refs::{ARTIFACT_FAILED, outbound, presign, resolve, store};
use crate::request::Request;

pub mod answers;
pub mod refs;
pub mod request;

const INIT_WORKFLOW: &str = "init_workflow";
const RESEARCH_PHASE: &str = "research_phase";
const ANALYSIS_PHASE: &str = "analysis_phase";
const REQUEST_APPROVAL: &str = "request_approval";
const HUMAN_APPROVAL: &str = "human_approval";
const WRITING_PHASE: &str = "writing_phase";
const FINALIZE_WORKFLOW: &str = "finalize_workflow";

/// How long the final report's URL lives.
const REPORT_URL_LIFETIME: Duration = Duration::from_secs(7 * 86_400);
/// The longest life any other presigned URL gets (S3 presigns for at most 7 days).
const MAX_URL_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// The longest free text (a comment, an error message) an event carries, in bytes: the host takes
/// at most 64 KiB of event data.
const MAX_EVENT_TEXT: usize = 8 * 1024;

/// The console's approval page for the run whose artifact `reference` is
/// (`artifact://<execution>/<key>`): `<console>/approvals/<execution>`.
fn approval_page(console: &str, reference: &str) -> Option<String> {
    let execution = reference.strip_prefix("artifact://")?.split('/').next()?;
    (!execution.is_empty()).then(|| format!("{console}/approvals/{execution}"))
}

/// How the pipeline ended, when it did not fail.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "UPPERCASE")]
enum Output {
    Completed {
        topic: String,
        report_url: String,
        report_reference: String,
        word_count: u64,
    },
    Rejected {
        topic: String,
        comment: Option<String>,
    },
}

/// The statuses `workflow.status` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Status {
    Running,
    AwaitingApproval,
    Completed,
    Rejected,
    Failed,
}

async fn run(ctx: Ctx, input: Value) -> Result<Output, Error> {
    let mut pipeline = Pipeline {
        ctx,
        step: INIT_WORKFLOW,
        shown: None,
    };
    let outcome = pipeline.run(input).await;
    outcome.map_err(|error| pipeline.fail(error))
}

workflow!(run);

/// The pipeline's progress: the step it is in and the status last published.
struct Pipeline {
    ctx: Ctx,
    step: &'static str,
    shown: Option<(Status, &'static str)>,
}

impl Pipeline {
    /// The seven steps, top to bottom. Any error returned here is published as
    /// `workflow.failed` for the current step by [`run`].
    async fn run(&mut self, input: Value) -> Result<Output, Error> {
        let ctx = self.ctx.clone();

        // 1. init_workflow: the validated, normalised record.
        self.enter(INIT_WORKFLOW, Status::Running);
        let started_at = ctx.now().await;
        let request: Request = ctx
            .step(INIT_WORKFLOW, move |_| Request::parse(&input, started_at))
            .await?;
        let Request {
            topic, parameters, ..
        } = request;
        let (agents, timeouts) = (&parameters.agents, &parameters.timeouts_seconds);
        ctx.info(&format!("research-pipeline: started on {topic:?}"));
        // The start, for subscribers outside the host (the EventBridge sink takes it).
        self.publish(
            "workflow.started",
            json!({"topic": topic, "parameters": parameters}),
        );
        self.step_completed(INIT_WORKFLOW);

        // 2. research_phase
        self.enter(RESEARCH_PHASE, Status::Running);
        let research_input = json!({
            "topic": topic,
            "parameters": {
                "depth": parameters.depth,
                "sources": parameters.sources,
                "word_limit": parameters.word_limit,
            },
        });
        let research = self
            .call_agent(
                RESEARCH_PHASE,
                &agents.researcher,
                &research_input,
                timeouts.research(),
            )
            .await?;
        let research = content(research, RESEARCH_PHASE, &agents.researcher, "the research")?;
        self.step_completed(RESEARCH_PHASE);

        // 3. analysis_phase
        self.enter(ANALYSIS_PHASE, Status::Running);
        let analysis_input = object([("topic", topic.as_str().into()), ("research", research)]);
        let analysis = self
            .call_agent(
                ANALYSIS_PHASE,
                &agents.analyst,
                &analysis_input,
                timeouts.analysis(),
            )
            .await?;
        let analysis = content(analysis, ANALYSIS_PHASE, &agents.analyst, "the analysis")?;
        self.step_completed(ANALYSIS_PHASE);

        // 4. request_approval: store the analysis, hand out a review URL, await a person.
        self.enter(REQUEST_APPROVAL, Status::Running);
        let analysis_bytes = serde_json::to_vec_pretty(&analysis)
            .map_err(|e| Error::new(ARTIFACT_FAILED, format!("cannot encode the analysis: {e}")))?;
        let analysis_reference = store(&ctx, "analysis.json", "application/json", &analysis_bytes)
            .map_err(at(REQUEST_APPROVAL))?;
        let review_url = presign(
            &ctx,
            &analysis_reference,
            timeouts.approval().min(MAX_URL_LIFETIME),
        )
        .map_err(at(REQUEST_APPROVAL))?;
        let approval_url = parameters
            .console_url
            .as_deref()
            .and_then(|console| approval_page(console, &analysis_reference));
        self.enter(HUMAN_APPROVAL, Status::AwaitingApproval);
        self.publish(
            "approval.requested",
            json!({
                "topic": topic,
                "approval_url": approval_url,
                "review_url": review_url,
                "analysis_reference": analysis_reference,
            }),
        );
        self.step_completed(REQUEST_APPROVAL);

        // 5. human_approval
        let log = ctx.clone();
        let link = approval_url.as_deref().unwrap_or(&review_url);
        let message = format!("research-pipeline: {topic:?} awaits a decision; review {link}");
        let answer: Value = ctx
            .wait_for_callback(
                HUMAN_APPROVAL,
                CallbackOptions::timeout(timeouts.approval()),
                move |callback_id| {
                    log.info(&format!("{message} (callback id {callback_id})"));
                    Ok(())
                },
            )
            .await
            .map_err(|e| approval_error(timeouts.approval(), &e))?;
        let decision = Decision::parse(&answer)?;
        self.step_completed(HUMAN_APPROVAL);

        // 6. writing_phase: a rejection ends the pipeline here.
        if let Decision::Reject { comment } = decision {
            ctx.info(&format!("research-pipeline: {topic:?} was rejected"));
            self.enter(WRITING_PHASE, Status::Rejected);
            let shown = comment.as_deref().map(|c| clip(c, MAX_EVENT_TEXT));
            self.publish(
                "workflow.rejected",
                json!({"topic": topic, "comment": shown}),
            );
            return Ok(Output::Rejected { topic, comment });
        }
        self.enter(WRITING_PHASE, Status::Running);
        let writing_input = object([
            ("topic", topic.as_str().into()),
            ("analysis", analysis),
            ("word_limit", parameters.word_limit.into()),
        ]);
        let answer = self
            .call_agent(
                WRITING_PHASE,
                &agents.writer,
                &writing_input,
                timeouts.writing(),
            )
            .await?;
        let report = Report::parse(&answer, WRITING_PHASE, &agents.writer)?;
        self.step_completed(WRITING_PHASE);

        // 7. finalize_workflow: store the report and hand out a week-long URL.
        self.enter(FINALIZE_WORKFLOW, Status::Running);
        let report_reference = store(
            &ctx,
            "report.md",
            "text/markdown",
            report.markdown.as_bytes(),
        )
        .map_err(at(FINALIZE_WORKFLOW))?;
        let report_url =
            presign(&ctx, &report_reference, REPORT_URL_LIFETIME).map_err(at(FINALIZE_WORKFLOW))?;
        self.step_completed(FINALIZE_WORKFLOW);
        self.enter(FINALIZE_WORKFLOW, Status::Completed);
        self.publish(
            "workflow.completed",
            json!({
                "topic": topic,
                "report_url": report_url,
                "report_reference": report_reference,
                "word_count": report.word_count,
            }),
        );
        ctx.info(&format!(
            "research-pipeline: {topic:?} completed, {} words",
            report.word_count
        ));
        Ok(Output::Completed {
            topic,
            report_url,
            report_reference,
            word_count: report.word_count,
        })
    }

    /// Sends `input` (by reference if it is over 200 KB) to `agent` as the operation `step`,
    /// retries once as `<step>#2` if the dispatch failed, and returns the answer, read back from
    /// its artifact if the host stored it by reference.
    async fn call_agent(
        &self,
        step: &'static str,
        agent: &str,
        input: &Value,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let ctx = &self.ctx;
        let payload =
            outbound(ctx, step, input, timeout.min(MAX_URL_LIFETIME)).map_err(at(step))?;
        let mut attempts = 1;
        let mut answer = ctx.invoke_agent(step, agent, &payload, timeout).await;
        if let Err(error) = &answer
            && error.is(DISPATCH_FAILED)
        {
            ctx.warn(&format!(
                "research-pipeline: {step}: dispatch to {agent} failed ({}); trying once more",
                error.message
            ));
            attempts = 2;
            let retry = format!("{step}#2");
            answer = ctx.invoke_agent(&retry, agent, &payload, timeout).await;
        }
        let answer = answer.map_err(|e| agent_error(step, agent, timeout, attempts, &e))?;
        resolve(ctx, answer).map_err(at(step))
    }

    /// Enters `step` with `status`; publishes `workflow.status` if either changed.
    fn enter(&mut self, step: &'static str, status: Status) {
        self.step = step;
        if self.shown != Some((status, step)) {
            self.shown = Some((status, step));
            self.publish(
                "workflow.status",
                json!({"status": status, "current_step": step}),
            );
        }
    }

    fn step_completed(&self, step: &str) {
        self.publish("workflow.step_completed", json!({"step": step}));
    }

    /// Publishes the failure of the current step, and hands the error back to be returned.
    fn fail(&mut self, error: Error) -> Error {
        let step = self.step;
        self.ctx
            .error(&format!("research-pipeline: {step} failed: {error}"));
        self.enter(step, Status::Failed);
        self.publish(
            "workflow.failed",
            json!({
                "step": step,
                "error_type": error.error_type,
                "error_message": clip(&error.message, MAX_EVENT_TEXT),
            }),
        );
        error
    }

    fn publish(&self, kind: &str, data: Value) {
        // A `Value` always encodes, so this cannot fail; were it ever to, the log says so.
        if let Err(error) = self.ctx.publish(kind, &data) {
            self.ctx.error(&format!(
                "research-pipeline: cannot publish {kind}: {error}"
            ));
        }
    }
}

/// A JSON object of these fields, moved in (agent payloads can be large: no copies).
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

/// `text`, cut to at most `max` bytes (on a character boundary, with an ellipsis) if longer.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let cut = (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &text[..cut])
}

/// Prefixes an error's message with the step it happened in.
fn at(step: &str) -> impl Fn(Error) -> Error + '_ {
    move |error| Error {
        message: format!("{step}: {}", error.message),
        ..error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_approval_page_is_the_consoles_page_of_the_run_that_stored_the_analysis() {
        assert_eq!(
            approval_page("https://h/ui", "artifact://ex_1/analysis.json").as_deref(),
            Some("https://h/ui/approvals/ex_1")
        );
        for bad in [
            "ex_1/analysis.json",
            "artifact:///analysis.json",
            "s3://b/k",
        ] {
            assert_eq!(approval_page("https://h/ui", bad), None, "{bad}");
        }
    }

    #[test]
    fn outputs_have_the_documented_shapes() {
        let completed = Output::Completed {
            topic: "t".into(),
            report_url: "http://u".into(),
            report_reference: "artifact://e/report.md".into(),
            word_count: 3,
        };
        assert_eq!(
            serde_json::to_value(completed).unwrap(),
            json!({"status": "COMPLETED", "topic": "t", "report_url": "http://u",
                   "report_reference": "artifact://e/report.md", "word_count": 3})
        );
        let rejected = Output::Rejected {
            topic: "t".into(),
            comment: None,
        };
        assert_eq!(
            serde_json::to_value(rejected).unwrap(),
            json!({"status": "REJECTED", "topic": "t", "comment": null})
        );
    }

    #[test]
    fn statuses_are_spelled_as_the_rest_api_spells_them() {
        let spelled: Vec<Value> = [
            Status::Running,
            Status::AwaitingApproval,
            Status::Completed,
            Status::Rejected,
            Status::Failed,
        ]
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect();
        assert_eq!(
            spelled,
            [
                "RUNNING",
                "AWAITING_APPROVAL",
                "COMPLETED",
                "REJECTED",
                "FAILED"
            ]
        );
    }

    #[test]
    fn long_event_text_is_clipped() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdef", 3), "abc…");
        // Never inside a character: "é" is two bytes.
        assert_eq!(clip("ééé", 3), "é…");
        assert!(clip(&"x".repeat(100_000), MAX_EVENT_TEXT).len() <= MAX_EVENT_TEXT + 3);
    }

    #[test]
    fn errors_are_placed_in_their_step() {
        let error = at("finalize_workflow")(Error::new("Pipeline.ArtifactFailed", "disk full"));
        assert_eq!(error.message, "finalize_workflow: disk full");
        assert!(error.is("Pipeline.ArtifactFailed"));
    }
}

//! Reading what comes back (the approver's decision, the writer's report) and turning agent and
//! callback failures into the pipeline's own clear errors.

use std::time::Duration;

use aegis_sdk::Error;
use serde_json::{Value, json};

/// The approval answer was not `{"decision": "approve"|"reject", "comment"?}`.
pub const INVALID_DECISION: &str = "Pipeline.InvalidDecision";
/// Nobody decided before the approval timeout.
pub const APPROVAL_TIMED_OUT: &str = "Pipeline.ApprovalTimedOut";
/// The approval callback was failed through the API (or otherwise ended in an error).
pub const APPROVAL_FAILED: &str = "Pipeline.ApprovalFailed";
/// An agent failed, could not be reached, or is not configured.
pub const AGENT_FAILED: &str = "Pipeline.AgentFailed";
/// An agent did not answer within its phase's timeout.
pub const AGENT_TIMED_OUT: &str = "Pipeline.AgentTimedOut";
/// An agent answered, but not with what the pipeline needs.
pub const INVALID_AGENT_RESULT: &str = "Pipeline.InvalidAgentResult";

/// The host's error for a dispatch that never reached the agent (retried once).
pub const DISPATCH_FAILED: &str = "Agent.DispatchFailed";
/// The host's error for a callback (or an agent) that did not answer in time.
const CALLBACK_TIMEOUT: &str = "Callback.Timeout";

/// The approver's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve { comment: Option<String> },
    Reject { comment: Option<String> },
}

impl Decision {
    /// Reads `{"decision": "approve"|"reject", "comment"?: string}`.
    ///
    /// # Errors
    ///
    /// `Pipeline.InvalidDecision` for anything else.
    pub fn parse(value: &Value) -> Result<Self, Error> {
        let invalid = || {
            let mut shown = value.to_string();
            if shown.len() > 200 {
                let cut = (0..=200).rev().find(|&i| shown.is_char_boundary(i));
                shown.truncate(cut.unwrap_or(0));
                shown.push('…');
            }
            Error::new(
                INVALID_DECISION,
                format!(
                    "human_approval: expected {{\"decision\": \"approve\"|\"reject\", \
                     \"comment\"?: string}}, got {shown}"
                ),
            )
        };
        let map = value.as_object().ok_or_else(invalid)?;
        let comment = match map.get("comment") {
            None | Some(Value::Null) => None,
            Some(Value::String(comment)) => Some(comment.clone()),
            Some(_) => return Err(invalid()),
        };
        match map.get("decision").and_then(Value::as_str) {
            Some("approve") => Ok(Self::Approve { comment }),
            Some("reject") => Ok(Self::Reject { comment }),
            _ => Err(invalid()),
        }
    }
}

/// The writer's report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub markdown: String,
    pub word_count: u64,
}

impl Report {
    /// Reads the writer's `{"report_markdown", "word_count", "citations"}`. A missing
    /// `word_count` is counted from the markdown.
    ///
    /// # Errors
    ///
    /// `Pipeline.InvalidAgentResult` when there is no non-empty `report_markdown` string.
    pub fn parse(answer: &Value, step: &str, agent: &str) -> Result<Self, Error> {
        let markdown = answer
            .get("report_markdown")
            .and_then(Value::as_str)
            .filter(|md| !md.trim().is_empty())
            .ok_or_else(|| {
                Error::new(
                    INVALID_AGENT_RESULT,
                    format!(
                        "{step}: agent {agent} answered without a non-empty \"report_markdown\" \
                         string"
                    ),
                )
            })?;
        let word_count = answer
            .get("word_count")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| markdown.split_whitespace().count() as u64);
        Ok(Self {
            markdown: markdown.to_owned(),
            word_count,
        })
    }
}

/// The pipeline's error for an agent call that failed with `cause` after `attempts` attempts.
pub fn agent_error(
    step: &str,
    agent: &str,
    timeout: Duration,
    attempts: u32,
    cause: &Error,
) -> Error {
    let (error_type, what) = if cause.is(CALLBACK_TIMEOUT) {
        (
            AGENT_TIMED_OUT,
            format!("did not answer within {}", human(timeout)),
        )
    } else if cause.is(DISPATCH_FAILED) {
        let tries = if attempts == 1 { "attempt" } else { "attempts" };
        (
            AGENT_FAILED,
            format!(
                "could not be reached ({attempts} {tries}, {})",
                cause.error_type
            ),
        )
    } else {
        (AGENT_FAILED, format!("failed ({})", cause.error_type))
    };
    Error::new(
        error_type,
        format!("{step}: agent {agent} {what}: {}", cause.message),
    )
    .with_data(json!({"step": step, "agent": agent, "attempts": attempts, "cause": cause}))
}

/// The pipeline's error for an approval callback that ended in `cause`.
pub fn approval_error(timeout: Duration, cause: &Error) -> Error {
    let data = json!({"step": "human_approval", "cause": cause});
    if cause.is(CALLBACK_TIMEOUT) {
        Error::new(
            APPROVAL_TIMED_OUT,
            format!("no decision within {}", human(timeout)),
        )
        .with_data(data)
    } else {
        Error::new(
            APPROVAL_FAILED,
            format!("human_approval: the approval callback failed: {cause}"),
        )
        .with_data(data)
    }
}

/// A timeout for people: "24 hours", "1 hour", "90 minutes", "5 seconds".
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (n, unit) = if secs >= 3600 && secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs >= 60 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_decisions() {
        assert_eq!(
            Decision::parse(&json!({"decision": "approve"})).unwrap(),
            Decision::Approve { comment: None }
        );
        assert_eq!(
            Decision::parse(&json!({"decision": "reject", "comment": "too thin"})).unwrap(),
            Decision::Reject {
                comment: Some("too thin".into())
            }
        );
        assert_eq!(
            Decision::parse(&json!({"decision": "approve", "comment": null})).unwrap(),
            Decision::Approve { comment: None }
        );
    }

    #[test]
    fn anything_else_is_an_invalid_decision() {
        for value in [
            json!(null),
            json!("approve"),
            json!({}),
            json!({"decision": "maybe"}),
            json!({"decision": "APPROVE"}),
            json!({"decision": true}),
            json!({"decision": "reject", "comment": 5}),
            json!({"decision": "x".repeat(1000)}),
        ] {
            let error = Decision::parse(&value).unwrap_err();
            assert!(error.is(INVALID_DECISION), "{value}");
            assert!(error.message.len() < 400, "{}", error.message);
        }
    }

    #[test]
    fn reads_the_writers_report() {
        let answer = json!({"report_markdown": "# T\n\nbody", "word_count": 120, "citations": []});
        assert_eq!(
            Report::parse(&answer, "writing_phase", "writer").unwrap(),
            Report {
                markdown: "# T\n\nbody".into(),
                word_count: 120
            }
        );
        let counted = Report::parse(&json!({"report_markdown": "one two three"}), "s", "w");
        assert_eq!(counted.unwrap().word_count, 3);
        for bad in [
            json!({}),
            json!({"report_markdown": "  "}),
            json!({"report_markdown": 1}),
        ] {
            let error = Report::parse(&bad, "writing_phase", "writer").unwrap_err();
            assert!(error.is(INVALID_AGENT_RESULT));
            assert!(error.message.starts_with("writing_phase: agent writer"));
        }
    }

    #[test]
    fn agent_errors_name_the_step_and_the_agent() {
        let hour = Duration::from_secs(3600);
        let timeout = Error::new("Callback.Timeout", "Callback timed out");
        let error = agent_error("research_phase", "researcher", 4 * hour, 1, &timeout);
        assert!(error.is(AGENT_TIMED_OUT));
        assert_eq!(
            error.message,
            "research_phase: agent researcher did not answer within 4 hours: Callback timed out"
        );
        assert_eq!(
            error.data.as_ref().unwrap()["cause"]["error_type"],
            "Callback.Timeout"
        );

        let dispatch = Error::new(DISPATCH_FAILED, "connection refused");
        let error = agent_error("analysis_phase", "analyst", hour, 2, &dispatch);
        assert!(error.is(AGENT_FAILED));
        assert_eq!(
            error.message,
            "analysis_phase: agent analyst could not be reached (2 attempts, \
             Agent.DispatchFailed): connection refused"
        );
        assert_eq!(error.data.as_ref().unwrap()["attempts"], 2);

        let failed = Error::new("Agent.NotConfigured", "no agent named \"writer\"");
        let error = agent_error("writing_phase", "writer", hour, 1, &failed);
        assert!(error.is(AGENT_FAILED));
        assert_eq!(
            error.message,
            "writing_phase: agent writer failed (Agent.NotConfigured): no agent named \"writer\""
        );
    }

    #[test]
    fn approval_errors() {
        let day = Duration::from_secs(86_400);
        let error = approval_error(day, &Error::new("Callback.Timeout", "Callback timed out"));
        assert!(error.is(APPROVAL_TIMED_OUT));
        assert_eq!(error.message, "no decision within 24 hours");
        let error = approval_error(day, &Error::new("Review.Withdrawn", "gone"));
        assert!(error.is(APPROVAL_FAILED));
        assert!(error.message.contains("Review.Withdrawn: gone"));
    }

    #[test]
    fn durations_for_people() {
        let s = Duration::from_secs;
        assert_eq!(human(s(86_400)), "24 hours");
        assert_eq!(human(s(3600)), "1 hour");
        assert_eq!(human(s(5400)), "90 minutes");
        assert_eq!(human(s(60)), "1 minute");
        assert_eq!(human(s(2)), "2 seconds");
        assert_eq!(human(s(1)), "1 second");
        assert_eq!(human(s(3601)), "3601 seconds");
    }
}

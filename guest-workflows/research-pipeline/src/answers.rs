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
    /// Reads the writer's report, in either of the forms an agent gives it:
    ///
    /// - markdown text (a JSON string): how an A2A agent answers with a text or markdown
    ///   artifact, which the host hands over as its text;
    /// - our richer JSON `{"report_markdown", "word_count"?, "citations"?}` (a data part).
    ///
    /// A missing `word_count` is counted from the markdown.
    ///
    /// # Errors
    ///
    /// `Pipeline.InvalidAgentResult`, naming both what was expected and what came.
    pub fn parse(answer: &Value, step: &str, agent: &str) -> Result<Self, Error> {
        let markdown = match answer {
            Value::String(text) => Some(text.as_str()),
            Value::Object(map) => map.get("report_markdown").and_then(Value::as_str),
            _ => None,
        }
        .filter(|md| !md.trim().is_empty())
        .ok_or_else(|| {
            invalid_result(
                step,
                agent,
                answer,
                "the report as markdown text (a text artifact) or as \
                 {\"report_markdown\": non-empty string, \"word_count\"?, \"citations\"?}",
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

/// Checks that a researcher's or analyst's answer has something in it: text or JSON data of any
/// shape is passed on to the next agent as it is (agents we did not write answer in their own
/// words), but an empty answer would only make the next agent fail, far from the cause.
///
/// # Errors
///
/// `Pipeline.InvalidAgentResult` for `null`, blank text, `{}` or `[]`, naming what came.
pub fn content(answer: Value, step: &str, agent: &str, what: &str) -> Result<Value, Error> {
    let empty = match &answer {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    };
    if empty {
        let expected = format!("{what} as non-empty text or JSON data");
        return Err(invalid_result(step, agent, &answer, &expected));
    }
    Ok(answer)
}

/// `Pipeline.InvalidAgentResult` for `answer`: "`step`: agent `agent` answered with <what came>;
/// expected <expected>", with the answer's shape in the error data.
fn invalid_result(step: &str, agent: &str, answer: &Value, expected: &str) -> Error {
    Error::new(
        INVALID_AGENT_RESULT,
        format!(
            "{step}: agent {agent} answered with {}; expected {expected}",
            describe(answer)
        ),
    )
    .with_data(json!({"step": step, "agent": agent, "expected": expected, "got": describe(answer)}))
}

/// What an answer is, in a few words, for an error message: never the whole answer (it can be
/// megabytes, and the message is published in events), but enough to see what the agent did.
pub fn describe(answer: &Value) -> String {
    const SHOWN_KEYS: usize = 8;
    match answer {
        Value::Null => "nothing (no text or data part)".to_owned(),
        Value::String(text) if text.trim().is_empty() => {
            format!("blank text ({} characters)", text.chars().count())
        }
        Value::String(text) => format!("text of {} characters", text.chars().count()),
        Value::Bool(_) | Value::Number(_) => format!("the JSON value {answer}"),
        Value::Array(items) => format!("a JSON array of {} items", items.len()),
        Value::Object(map) if map.is_empty() => "an empty JSON object".to_owned(),
        Value::Object(map) => {
            let mut keys: Vec<String> = map
                .keys()
                .take(SHOWN_KEYS)
                .map(|k| format!("{:?}", clip_key(k)))
                .collect();
            if map.len() > SHOWN_KEYS {
                keys.push(format!("and {} more", map.len() - SHOWN_KEYS));
            }
            let mut shown = format!("a JSON object with keys {}", keys.join(", "));
            if let Some(markdown) = map.get("report_markdown") {
                shown.push_str(&format!(" (\"report_markdown\" is {})", kind(markdown)));
            }
            shown
        }
    }
}

/// A key as shown in a message: at most 40 characters.
fn clip_key(key: &str) -> String {
    match key.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &key[..at]),
        None => key.to_owned(),
    }
}

/// The JSON type of a value, with a word on emptiness where it matters.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.trim().is_empty() => "a blank string",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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
    }

    #[test]
    fn a_markdown_text_answer_is_the_report() {
        // What the host hands over for an A2A text artifact: the markdown itself.
        let report = Report::parse(&json!("# Title\n\nfour words of body"), "w", "writer");
        assert_eq!(
            report.unwrap(),
            Report {
                markdown: "# Title\n\nfour words of body".into(),
                word_count: 6
            }
        );
    }

    #[test]
    fn an_unusable_report_names_what_was_expected_and_what_came() {
        for (bad, came) in [
            (json!(null), "answered with nothing (no text or data part)"),
            (json!("  \n"), "answered with blank text (3 characters)"),
            (json!(7), "answered with the JSON value 7"),
            (json!([1, 2]), "answered with a JSON array of 2 items"),
            (json!({}), "answered with an empty JSON object"),
            (
                json!({"report": "x", "words": 1}),
                "answered with a JSON object with keys \"report\", \"words\";",
            ),
            (
                json!({"report_markdown": "  "}),
                "keys \"report_markdown\" (\"report_markdown\" is a blank string)",
            ),
            (
                json!({"report_markdown": 1}),
                "(\"report_markdown\" is a number)",
            ),
        ] {
            let error = Report::parse(&bad, "writing_phase", "writer").unwrap_err();
            assert!(error.is(INVALID_AGENT_RESULT));
            assert!(
                error
                    .message
                    .starts_with("writing_phase: agent writer answered with "),
                "{}",
                error.message
            );
            assert!(error.message.contains(came), "{bad}: {}", error.message);
            assert!(
                error
                    .message
                    .contains("expected the report as markdown text"),
                "{}",
                error.message
            );
            assert_eq!(error.data.as_ref().unwrap()["agent"], "writer");
        }
    }

    #[test]
    fn research_and_analysis_need_some_content() {
        for good in [json!("notes"), json!({"sources": []}), json!([1]), json!(0)] {
            assert_eq!(
                content(good.clone(), "research_phase", "r", "the research").unwrap(),
                good
            );
        }
        for bad in [json!(null), json!(" "), json!({}), json!([])] {
            let error =
                content(bad.clone(), "analysis_phase", "analyst", "the analysis").unwrap_err();
            assert!(error.is(INVALID_AGENT_RESULT), "{bad}");
            assert!(
                error
                    .message
                    .starts_with("analysis_phase: agent analyst answered with ")
                    && error
                        .message
                        .ends_with("; expected the analysis as non-empty text or JSON data"),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn descriptions_stay_short_whatever_the_answer() {
        let mut big = serde_json::Map::new();
        for i in 0..100 {
            big.insert(format!("{}{i}", "k".repeat(500)), json!(i));
        }
        let shown = describe(&Value::Object(big));
        assert!(shown.len() < 600, "{} bytes", shown.len());
        assert!(shown.ends_with("and 92 more"), "{shown}");
        assert_eq!(
            describe(&json!("x".repeat(1 << 20))),
            "text of 1048576 characters"
        );
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

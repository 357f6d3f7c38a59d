//! `aegis approve RUN` and `aegis reject RUN` (feature `pipeline`): a reviewer's decision on a
//! research-pipeline run waiting for approval, sent to the pipeline's own route
//! (`POST /workflows/{id}/approval {"decision", "comment"}`), which completes the run's
//! `human_approval` callback.

use super::client::{Body, Client, Connection};
use super::exit::Outcome;
use super::output;
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct DecisionArgs {
    /// The run's id (the execution id, `ex_...`).
    pub run: String,
    /// A comment for the writer (approve) or the record (reject).
    #[arg(long)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

/// The decision a command sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    fn word(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

/// The approval route's body.
pub fn body(decision: Decision, comment: Option<&str>) -> Value {
    let mut body = json!({"decision": decision.word()});
    if let Some(comment) = comment {
        body["comment"] = json!(comment);
    }
    body
}

/// `aegis approve` / `aegis reject`.
///
/// # Errors
/// The request's failure: `not_awaiting_approval` (4) when the run waits for no decision.
pub async fn decide(decision: Decision, args: DecisionArgs) -> Outcome {
    let client = Client::of(&args.conn)?;
    let answer = client
        .post(
            &["workflows", &args.run, "approval"],
            Body::Json(body(decision, args.comment.as_deref())),
        )
        .await?;
    if args.conn.json {
        return output::json(&answer.body);
    }
    let done = match decision {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
    };
    output::print(&format!(
        "{} {done}; the run is {}\n",
        output::text(&answer.body["workflow_id"]),
        output::text(&answer.body["status"])
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_holds_the_decision_and_the_comment_when_given() {
        assert_eq!(
            body(Decision::Approve, None),
            json!({"decision": "approve"})
        );
        assert_eq!(
            body(Decision::Reject, Some("sources are thin")),
            json!({"decision": "reject", "comment": "sources are thin"})
        );
    }
}

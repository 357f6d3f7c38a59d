//! History events for people: the one-line form `history` and a non-terminal `watch` print,
//! and [`Operations`], the state of each durable operation that the events so far describe,
//! which a terminal `watch` draws.
//!
//! Events are read as the API's JSON (the AWS durable-functions shape: `EventType`, `EventId`,
//! `Id`, `Name`, `<EventType>Details`); an event type this client does not know is still shown,
//! by its name, so a newer host never breaks it.

use super::output;
use serde_json::Value;

/// How much of a payload a line shows.
const PREVIEW_CHARS: usize = 80;

/// The endings of event types, longest first (`TimedOut` before `Out`...), with the state an
/// operation is in after such an event.
const ENDINGS: &[(&str, State)] = &[
    ("Started", State::Running),
    ("Succeeded", State::Succeeded),
    ("Failed", State::Failed),
    ("TimedOut", State::TimedOut),
    ("Cancelled", State::Cancelled),
    ("Stopped", State::Stopped),
];

/// Where an operation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    /// A step's attempt failed and another is scheduled.
    Retrying,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Stopped,
}

impl State {
    pub fn is_done(self) -> bool {
        !matches!(self, State::Running | State::Retrying)
    }

    pub fn word(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Retrying => "retrying",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::TimedOut => "timed out",
            State::Cancelled => "cancelled",
            State::Stopped => "stopped",
        }
    }
}

/// `StepSucceeded` as (`Step`, its state); `None` for a type with no known ending.
fn split_type(event_type: &str) -> Option<(&str, State)> {
    ENDINGS.iter().find_map(|(ending, state)| {
        event_type
            .strip_suffix(ending)
            .filter(|kind| !kind.is_empty())
            .map(|kind| (kind, *state))
    })
}

/// The event's `<EventType>Details` record (null when absent).
fn details(event: &Value) -> &Value {
    let key = format!("{}Details", output::text(&event["EventType"]));
    event.get(&key).unwrap_or(&Value::Null)
}

/// `text` cut to [`PREVIEW_CHARS`] characters, with an ellipsis when cut.
fn preview(text: &str) -> String {
    let text = text.replace('\n', " ");
    if text.chars().count() <= PREVIEW_CHARS {
        return text;
    }
    let cut: String = text.chars().take(PREVIEW_CHARS).collect();
    format!("{cut}…")
}

/// A `{Payload, Truncated}` record's payload for a line.
fn payload(record: &Value) -> String {
    let shown = match &record["Payload"] {
        Value::String(s) => preview(s),
        Value::Null => "-".to_string(),
        other => preview(&other.to_string()),
    };
    if record["Truncated"] == true {
        format!("{shown} (truncated)")
    } else {
        shown
    }
}

/// An error record (`{Payload: {ErrorType, ErrorMessage}}`) as `Type: message`.
fn error(record: &Value) -> String {
    let e = &record["Payload"];
    format!(
        "{}: {}",
        output::text(&e["ErrorType"]),
        preview(&output::text(&e["ErrorMessage"]))
    )
}

/// What a line says about the event beyond its type and operation: a result, an error, a
/// wait's duration, a callback's id (which a person needs to complete it), a retry.
pub fn detail(event: &Value) -> String {
    let d = details(event);
    let mut parts: Vec<String> = Vec::new();
    if d.get("Input").is_some() {
        parts.push(format!("input {}", payload(&d["Input"])));
    }
    if let Some(function) = d.get("FunctionName").and_then(Value::as_str) {
        parts.push(format!("invokes {function}"));
    }
    if let Some(child) = d.get("ExecutionId").and_then(Value::as_str) {
        parts.push(format!("as {child}"));
    }
    if let Some(callback_id) = d.get("CallbackId").and_then(Value::as_str) {
        parts.push(format!("callback id {callback_id}"));
    }
    if let Some(seconds) = d.get("Duration").and_then(Value::as_u64) {
        parts.push(format!("{seconds} s"));
    }
    if d.get("Result").is_some() {
        parts.push(format!("result {}", payload(&d["Result"])));
    }
    if d.get("Error").is_some() {
        parts.push(error(&d["Error"]));
    }
    let retry = &d["RetryDetails"];
    if let Some(attempt) = retry["CurrentAttempt"].as_u64() {
        match retry["NextAttemptDelaySeconds"].as_f64() {
            Some(delay) => parts.push(format!("attempt {attempt}, retry in {delay} s")),
            None => parts.push(format!("attempt {attempt}")),
        }
    }
    parts.join(", ")
}

/// One event on one line: `#5 2025-11-26T05:00:00.123Z StepSucceeded a [1]: result "x"`.
pub fn line(event: &Value) -> String {
    let mut out = format!(
        "#{} {} {}",
        output::text(&event["EventId"]),
        output::text(&event["EventTimestamp"]),
        output::text(&event["EventType"]),
    );
    if let Some(name) = event["Name"].as_str() {
        out.push(' ');
        out.push_str(name);
    }
    if let Some(id) = event["Id"].as_str() {
        out.push_str(&format!(" [{id}]"));
    }
    let detail = detail(event);
    if !detail.is_empty() {
        out.push_str(": ");
        out.push_str(&detail);
    }
    out
}

/// A durable operation as the events so far describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    pub id: String,
    /// `Step`, `Wait`, `Callback`, `Context`, `ChainedInvoke`...
    pub kind: String,
    pub name: String,
    pub state: State,
    /// What the last event said (see [`detail`]).
    pub detail: String,
}

impl Operation {
    /// `Step a: succeeded (result "x")`.
    pub fn label(&self) -> String {
        let name = if self.name.is_empty() {
            format!("[{}]", self.id)
        } else {
            self.name.clone()
        };
        let mut out = format!("{} {name}: {}", self.kind, self.state.word());
        if !self.detail.is_empty() {
            out.push_str(&format!(" ({})", self.detail));
        }
        out
    }
}

/// Every operation seen so far, in the order each first appeared.
#[derive(Default, Debug)]
pub struct Operations {
    ops: Vec<Operation>,
}

impl Operations {
    /// Takes `event` into account; the index of the operation it changed, if it is about one.
    pub fn apply(&mut self, event: &Value) -> Option<usize> {
        let id = event["Id"].as_str()?;
        let (kind, mut state) = split_type(event["EventType"].as_str()?)?;
        if state == State::Failed
            && details(event)["RetryDetails"]["NextAttemptDelaySeconds"].is_number()
        {
            state = State::Retrying;
        }
        let detail = detail(event);
        let name = event["Name"].as_str().unwrap_or_default();
        let index = match self.ops.iter().position(|op| op.id == id) {
            Some(index) => index,
            None => {
                self.ops.push(Operation {
                    id: id.to_string(),
                    kind: kind.to_string(),
                    name: name.to_string(),
                    state,
                    detail: String::new(),
                });
                self.ops.len() - 1
            }
        };
        let op = &mut self.ops[index];
        op.state = state;
        op.detail = detail;
        if op.name.is_empty() {
            op.name = name.to_string();
        }
        Some(index)
    }

    pub fn get(&self, index: usize) -> &Operation {
        &self.ops[index]
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// How many operations have ended.
    pub fn done(&self) -> usize {
        self.ops.iter().filter(|op| op.state.is_done()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: u64, event_type: &str, op: Option<(&str, &str)>, details: Value) -> Value {
        let mut e = json!({"EventId": id, "EventTimestamp": "2025-11-26T05:00:00.123Z",
                           "EventType": event_type});
        if let Some((op_id, name)) = op {
            e["Id"] = json!(op_id);
            e["Name"] = json!(name);
        }
        e[format!("{event_type}Details")] = details;
        e
    }

    #[test]
    fn a_line_shows_the_event_its_operation_and_what_matters_of_it() {
        let started = event(
            1,
            "ExecutionStarted",
            None,
            json!({"Input": {"Payload": "\"s\"", "Truncated": false}, "ExecutionTimeout": null}),
        );
        assert_eq!(
            line(&started),
            "#1 2025-11-26T05:00:00.123Z ExecutionStarted: input \"s\""
        );
        let step = event(
            3,
            "StepSucceeded",
            Some(("1", "a")),
            json!({
            "Result": {"Payload": "\"s-a\"", "Truncated": false},
            "RetryDetails": {"CurrentAttempt": 1, "NextAttemptDelaySeconds": null}}),
        );
        assert_eq!(
            line(&step),
            "#3 2025-11-26T05:00:00.123Z StepSucceeded a [1]: result \"s-a\", attempt 1"
        );
        let callback = event(
            5,
            "CallbackStarted",
            Some(("2", "approval")),
            json!({"CallbackId": "cb_9", "Timeout": 60, "HeartbeatTimeout": null}),
        );
        assert!(line(&callback).ends_with("CallbackStarted approval [2]: callback id cb_9"));
        let wait = event(
            6,
            "WaitStarted",
            Some(("3", "nap")),
            json!({"Duration": 5, "ScheduledEndTimestamp": "t"}),
        );
        assert!(line(&wait).ends_with("WaitStarted nap [3]: 5 s"));
        let empty = event(2, "StepStarted", Some(("1", "a")), json!({}));
        assert!(line(&empty).ends_with("StepStarted a [1]"));
    }

    #[test]
    fn failures_show_type_message_and_retry() {
        let failed = event(
            4,
            "StepFailed",
            Some(("1", "fetch")),
            json!({
            "Error": {"Payload": {"ErrorType": "Http", "ErrorMessage": "503", "ErrorData": null},
                      "Truncated": false},
            "RetryDetails": {"CurrentAttempt": 2, "NextAttemptDelaySeconds": 1.5}}),
        );
        assert_eq!(detail(&failed), "Http: 503, attempt 2, retry in 1.5 s");
    }

    #[test]
    fn long_payloads_are_cut() {
        let long = "x".repeat(500);
        let e = event(
            3,
            "StepSucceeded",
            Some(("1", "a")),
            json!({"Result": {"Payload": long, "Truncated": true}}),
        );
        let d = detail(&e);
        assert!(d.ends_with("… (truncated)"), "{d}");
        assert!(d.chars().count() < 120, "{d}");
    }

    #[test]
    fn an_unknown_event_type_is_still_a_line() {
        let e = event(9, "SomethingNew", Some(("7", "x")), json!({"Whatever": 1}));
        assert_eq!(line(&e), "#9 2025-11-26T05:00:00.123Z SomethingNew x [7]");
        let mut ops = Operations::default();
        assert_eq!(ops.apply(&e), None);
    }

    #[test]
    fn operations_follow_their_events() {
        let mut ops = Operations::default();
        let start = event(1, "ExecutionStarted", None, json!({}));
        assert_eq!(ops.apply(&start), None, "the execution is no operation");
        assert_eq!(
            ops.apply(&event(2, "StepStarted", Some(("1", "a")), json!({}))),
            Some(0)
        );
        assert_eq!(ops.get(0).state, State::Running);
        let retry = event(
            3,
            "StepFailed",
            Some(("1", "a")),
            json!({
            "Error": {"Payload": {"ErrorType": "E", "ErrorMessage": "m"}},
            "RetryDetails": {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 2.0}}),
        );
        ops.apply(&retry);
        assert_eq!(ops.get(0).state, State::Retrying);
        assert_eq!(
            ops.apply(&event(
                4,
                "WaitStarted",
                Some(("2", "nap")),
                json!({"Duration": 1})
            )),
            Some(1)
        );
        ops.apply(&event(5, "StepSucceeded", Some(("1", "a")), json!({})));
        assert_eq!(ops.get(0).state, State::Succeeded);
        assert_eq!((ops.len(), ops.done()), (2, 1));
        assert_eq!(ops.get(1).label(), "Wait nap: running (1 s)");
        ops.apply(&event(6, "WaitCancelled", Some(("2", "nap")), json!({})));
        assert_eq!(ops.get(1).state, State::Cancelled);
        assert_eq!(ops.done(), 2);
        let final_failure = event(
            7,
            "StepFailed",
            Some(("3", "b")),
            json!({
            "RetryDetails": {"CurrentAttempt": 3, "NextAttemptDelaySeconds": null}}),
        );
        ops.apply(&final_failure);
        assert_eq!(ops.get(2).state, State::Failed);
        assert_eq!(ops.get(2).label(), "Step b: failed (attempt 3)");
    }
}

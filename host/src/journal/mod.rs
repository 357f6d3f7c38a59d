//! The journal: the durable record of an execution's operations and its history of events.
//!
//! Key items:
//! - [`Operation`]: one durable call (step, wait, callback, context) with its status and outcome,
//!   in the operation model of AWS Lambda durable functions.
//! - [`Event`]: one entry of the history. EventIds are assigned by the store when the event is
//!   committed, so they stay consecutive even when a callback and an activation race.
//! - [`replay::Cursor`]: derives operation ids and checks each replayed call against the journal.
//!
//! Only plain records live here; Rust error enums never reach storage (see [`ErrorRecord`]).

pub mod replay;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::num::NonZeroU8;
use time::OffsetDateTime;
use time::format_description::well_known::Iso8601;
use time::format_description::well_known::iso8601::{
    Config as Iso8601Config, EncodedConfig, TimePrecision,
};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}

/// The history's timestamp format: RFC 3339 in UTC with exactly three fractional digits and a
/// `Z` (`2025-11-26T05:00:00.123Z`), as the AWS history shows them. `Rfc3339` would drop the
/// zeros at the end of the fraction, and the fraction itself on a whole second.
const HISTORY_TIME: EncodedConfig = Iso8601Config::DEFAULT
    .set_time_precision(TimePrecision::Second {
        decimal_digits: NonZeroU8::new(3),
    })
    .encode();

/// Formats a timestamp the way the history shows it (RFC 3339, UTC, milliseconds).
///
/// A four-digit year bounds the format; timestamps are clock readings and due times at most a
/// year ahead, so the bound (years 0 to 9999, where the value is clamped) is never reached.
pub fn format_ts(ms: Millis) -> String {
    const FIRST: Millis = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
    const LAST: Millis = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let nanos = i128::from(ms.clamp(FIRST, LAST)) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Iso8601::<HISTORY_TIME>).ok())
        .expect("a time in years 0 to 9999 formats with a four-digit year")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationType {
    Execution,
    Step,
    Wait,
    Callback,
    Context,
    ChainedInvoke,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubType {
    Step,
    WaitForCondition,
    Wait,
    Callback,
    RunInChildContext,
    Parallel,
    ParallelBranch,
    Map,
    MapIteration,
    WaitForCallback,
    ChainedInvoke,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Started,
    Pending,
    Ready,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    Stopped,
}

impl Status {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Succeeded
                | Status::Failed
                | Status::Cancelled
                | Status::TimedOut
                | Status::Stopped
        )
    }
}

/// A failure as it is stored and shown: `{ErrorType, ErrorMessage, ErrorData?}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub error_type: String,
    pub error_message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<String>,
}

impl std::fmt::Display for ErrorRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

/// Longest error message kept (the model's 32 KB error object, with room for the rest).
pub const MAX_ERROR_MESSAGE: usize = 16 * 1024;

/// `text` cut to at most `max` bytes, at a character boundary, and marked as cut (with the
/// length it had) so that a reader knows it is not whole.
pub fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mark = format!("… [cut: {} bytes in all]", text.len());
    let mut end = max.saturating_sub(mark.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&mark);
    text
}

impl ErrorRecord {
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        let error_message = cut(message.into(), MAX_ERROR_MESSAGE);
        Self {
            error_type: error_type.into(),
            error_message,
            error_data: None,
        }
    }

    /// The `{ErrorType, ErrorMessage, ErrorData}` object of the history.
    pub fn to_history(&self) -> Value {
        json!({
            "ErrorType": self.error_type,
            "ErrorMessage": self.error_message,
            "ErrorData": self.error_data,
        })
    }
}

/// One durable operation of an execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub name: String,
    pub op_type: OperationType,
    pub sub_type: SubType,
    pub status: Status,
    /// Finished attempts (steps).
    #[serde(default)]
    pub attempt: u32,
    pub start_ts: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ts: Option<Millis>,
    /// JSON result, when the operation succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
    /// Steps: when the next attempt is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_ts: Option<Millis>,
    /// Waits: when the wait ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_end_ts: Option<Millis>,
    /// Callbacks: the id handed to the outside world.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
}

impl Operation {
    pub fn new(
        id: String,
        parent_id: Option<String>,
        name: String,
        op_type: OperationType,
        sub_type: SubType,
        now: Millis,
    ) -> Self {
        Self {
            id,
            parent_id,
            name,
            op_type,
            sub_type,
            status: Status::Started,
            attempt: 0,
            start_ts: now,
            end_ts: None,
            result: None,
            error: None,
            next_attempt_ts: None,
            scheduled_end_ts: None,
            callback_id: None,
        }
    }
}

/// The type of a history event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionFailed,
    ExecutionTimedOut,
    ExecutionStopped,
    StepStarted,
    StepSucceeded,
    StepFailed,
    WaitStarted,
    WaitSucceeded,
    WaitCancelled,
    CallbackStarted,
    CallbackSucceeded,
    CallbackFailed,
    CallbackTimedOut,
    ContextStarted,
    ContextSucceeded,
    ContextFailed,
    InvocationCompleted,
}

/// A history event before the store gives it an EventId.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_type: EventType,
    pub timestamp: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<SubType>,
    /// The `<EventType>Details` record; `{}` when empty.
    pub details: Value,
}

impl Event {
    /// An event about the execution itself.
    pub fn execution(event_type: EventType, timestamp: Millis, details: Value) -> Self {
        Self {
            event_type,
            timestamp,
            op_id: None,
            name: None,
            parent_id: None,
            sub_type: None,
            details,
        }
    }

    /// An event about an operation.
    pub fn operation(
        event_type: EventType,
        op: &Operation,
        timestamp: Millis,
        details: Value,
    ) -> Self {
        Self {
            event_type,
            timestamp,
            op_id: Some(op.id.clone()),
            name: Some(op.name.clone()),
            parent_id: op.parent_id.clone(),
            sub_type: Some(op.sub_type),
            details,
        }
    }

    /// The event as the history API shows it, with its EventId.
    pub fn to_history(&self, event_id: u64) -> Value {
        let mut obj = serde_json::Map::new();
        let event_type = serde_json::to_value(self.event_type).unwrap_or(Value::Null);
        let details_key = format!("{}Details", event_type.as_str().unwrap_or("Unknown"));
        obj.insert("EventType".into(), event_type);
        obj.insert("EventId".into(), json!(event_id));
        obj.insert("EventTimestamp".into(), json!(format_ts(self.timestamp)));
        if let Some(id) = &self.op_id {
            obj.insert("Id".into(), json!(id));
        }
        if let Some(name) = &self.name {
            obj.insert("Name".into(), json!(name));
        }
        if let Some(parent) = &self.parent_id {
            obj.insert("ParentId".into(), json!(parent));
        }
        if let Some(sub_type) = &self.sub_type {
            obj.insert("SubType".into(), json!(sub_type));
        }
        obj.insert(details_key, self.details.clone());
        Value::Object(obj)
    }
}

/// Longest payload shown inline in the history; longer ones are truncated there (the journal keeps
/// them whole).
const HISTORY_PAYLOAD_LIMIT: usize = 32 * 1024;

/// A `{Payload, Truncated}` record for a JSON result.
pub fn result_details(payload: &str) -> Value {
    if payload.len() > HISTORY_PAYLOAD_LIMIT {
        let mut cut = HISTORY_PAYLOAD_LIMIT;
        while !payload.is_char_boundary(cut) {
            cut -= 1;
        }
        json!({"Payload": &payload[..cut], "Truncated": true})
    } else {
        json!({"Payload": payload, "Truncated": false})
    }
}

/// A `{Payload, Truncated}` record for an error.
pub fn error_details(error: &ErrorRecord) -> Value {
    json!({"Payload": error.to_history(), "Truncated": false})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ts(1_764_133_200_123), "2025-11-26T05:00:00.123Z");
        assert_eq!(format_ts(951_782_400_000), "2000-02-29T00:00:00.000Z");
        // A fraction ending in zeros keeps them; before 1970 and past 9999 still format.
        assert_eq!(format_ts(1_767_323_045_600), "2026-01-02T03:04:05.600Z");
        assert_eq!(format_ts(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_ts(Millis::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn history_event_has_details_even_when_empty() {
        let op = Operation::new(
            "1".into(),
            None,
            "fetch".into(),
            OperationType::Step,
            SubType::Step,
            0,
        );
        let ev = Event::operation(EventType::StepStarted, &op, 0, json!({}));
        let v = ev.to_history(2);
        assert_eq!(v["EventType"], "StepStarted");
        assert_eq!(v["EventId"], 2);
        assert_eq!(v["Id"], "1");
        assert_eq!(v["SubType"], "Step");
        assert_eq!(v["StepStartedDetails"], json!({}));
        assert!(v.get("ParentId").is_none());
    }

    #[test]
    fn long_payloads_are_truncated_in_history_only() {
        let big = "x".repeat(HISTORY_PAYLOAD_LIMIT + 10);
        let d = result_details(&big);
        assert_eq!(d["Truncated"], true);
        assert_eq!(d["Payload"].as_str().unwrap().len(), HISTORY_PAYLOAD_LIMIT);
    }

    #[test]
    fn error_messages_are_bounded() {
        let e = ErrorRecord::new("T", "é".repeat(MAX_ERROR_MESSAGE));
        assert!(e.error_message.len() <= MAX_ERROR_MESSAGE);
    }
}

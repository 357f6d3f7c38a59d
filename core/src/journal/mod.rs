//! The journal: the durable record of an execution's operations and its history of events.
//!
//! Key items:
//! - [`Operation`]: one durable call (step, wait, callback, context) with its status and outcome,
//!   in the operation model of AWS Lambda durable functions.
//! - [`Event`]: one entry of the history. EventIds are assigned by the store when the event is
//!   committed, so they stay consecutive even when a callback and an activation race.
//! - [`Details`]: what an event records (results, errors, attempts, durations), as facts; the
//!   history's wire shape is rendered from them in `api::history`.
//! - [`replay::Cursor`]: derives operation ids and checks each replayed call against the journal.
//!
//! Only plain records live here; Rust error enums never reach storage (see [`ErrorRecord`]).

pub mod replay;

use serde::{Deserialize, Serialize};
use serde_json::Value;
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
    /// Contexts: the result was too large to keep (over the payload limit), so none is kept
    /// and a replay runs the context's body again, over its recorded children, to rebuild it
    /// (AWS's `ReplayChildren`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay_children: bool,
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
            replay_children: false,
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
    ChainedInvokeStarted,
    ChainedInvokeSucceeded,
    ChainedInvokeFailed,
    ChainedInvokeTimedOut,
    ChainedInvokeStopped,
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
    /// What happened, beyond the type and the operation.
    pub details: Details,
}

impl Event {
    /// An event about the execution itself.
    pub fn execution(event_type: EventType, timestamp: Millis, details: Details) -> Self {
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
        details: Details,
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
}

/// What an event records beyond its type and its operation: the facts, not a wire shape.
/// `api::history` renders them as the AWS history's `<EventType>Details` records.
///
/// Stored as serde writes it (snake_case, externally tagged). Events written before these
/// details were typed hold the history's JSON itself; they read back as [`Details::Legacy`],
/// which the history shows as it was stored, so no journal needs a migration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Details {
    /// Nothing beyond the event's type and operation (a step or a context started).
    Empty,
    /// The execution started with this input, and its timeout if it has one.
    Started {
        input: Preview,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<u64>,
    },
    /// An operation or the execution ended with a result; a step says which attempt ended.
    Succeeded {
        result: Preview,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<Attempt>,
    },
    /// An operation or the execution ended with an error (failed, timed out, stopped), or a
    /// step's attempt failed (and may be retried: see its [`Attempt`]).
    Failed {
        error: ErrorRecord,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<Attempt>,
    },
    /// A wait started, for this many whole seconds, to end at `scheduled_end`.
    WaitStarted {
        duration_seconds: u64,
        scheduled_end: Millis,
    },
    /// A wait ended, after this many whole seconds.
    WaitEnded { duration_seconds: i64 },
    /// A callback started: the id handed out and its timeouts in whole seconds.
    CallbackStarted {
        callback_id: String,
        timeout_seconds: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heartbeat_timeout_seconds: Option<u64>,
    },
    /// A chained invoke started a child execution: the function as the guest named it, the
    /// version it runs (`$LATEST` unless the name carried a qualifier), the input sent, the
    /// tenant id the guest passed on, and the child's execution id and name.
    ChainedInvokeStarted {
        function_name: String,
        executed_version: String,
        input: Preview,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant_id: Option<String>,
        child_id: String,
        child_name: String,
    },
    /// One activation of the guest ran from `started` to `ended`; `error` is set when the host
    /// stopped it (a trap).
    Invocation {
        started: Millis,
        ended: Millis,
        request_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorRecord>,
    },
    /// An event written before details were typed: the history's JSON, kept as it was stored.
    /// Only read, never written by this version.
    #[serde(untagged)]
    Legacy(Value),
}

/// The attempt of a step that ended: its number (from 1) and, when a retry is scheduled, the
/// delay before the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_delay_ms: Option<u64>,
}

/// Longest part of a payload an event keeps: the operation keeps the payload whole, so a
/// history stays small and an event never makes a batch too large.
pub const EVENT_PAYLOAD_LIMIT: usize = 32 * 1024;

/// A payload as an event keeps it: at most [`EVENT_PAYLOAD_LIMIT`] bytes of it, cut at a
/// character boundary, and whether it was cut.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Preview {
    pub fn of(payload: &str) -> Self {
        if payload.len() <= EVENT_PAYLOAD_LIMIT {
            return Self {
                text: payload.to_string(),
                truncated: false,
            };
        }
        let mut cut = EVENT_PAYLOAD_LIMIT;
        while !payload.is_char_boundary(cut) {
            cut -= 1;
        }
        Self {
            text: payload[..cut].to_string(),
            truncated: true,
        }
    }
}

/// An agent task to send once the callback that receives its answer is durable. A plain record
/// here (not in `engine`, which makes them, or `agents`, which sends them) so that both can
/// name it without depending on each other.
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    pub callback_id: crate::ids::CallbackId,
    pub agent: String,
    pub input: String,
}

/// A chained invoke to carry out once its operation is durable: start the child execution
/// `child` of `function` (for `tenant`, named `callback_id`) on `input`. Its end closes the
/// operation through the callback `callback_id`, as an agent's answer closes an agent call.
#[derive(Clone, Debug, PartialEq)]
pub struct Invoke {
    pub callback_id: crate::ids::CallbackId,
    pub tenant: crate::ids::TenantId,
    /// The execution that invokes (whose operation waits).
    pub parent: crate::ids::ExecutionId,
    /// The function as the guest named it: a workflow, perhaps with `:<version>`, or an ARN.
    pub function: String,
    /// The AWS tenant id the guest passed on (recorded, not interpreted).
    pub tenant_id: Option<String>,
    pub child: crate::ids::ExecutionId,
    pub input: String,
}

/// What an activation leaves to send once its records are durable.
#[derive(Clone, Debug, PartialEq)]
pub enum Task {
    Agent(Dispatch),
    Invoke(Invoke),
}

/// How a chained invoke's target is kept in its callback record's `agent` pair: this prefix,
/// then the target as JSON (agent names may not contain `:`, so none starts with it).
const INVOKE_MARK: &str = "chained-invoke:";

/// The part of an [`Invoke`] its callback record keeps beside the input.
#[derive(Serialize, Deserialize)]
struct StoredInvoke {
    function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    child: String,
}

impl Invoke {
    /// The callback record's `agent` pair for this invoke: (the marked target, the input).
    pub fn stored(&self) -> (String, String) {
        let target = StoredInvoke {
            function: self.function.clone(),
            tenant_id: self.tenant_id.clone(),
            child: self.child.to_string(),
        };
        let json = serde_json::to_string(&target).expect("plain fields serialize");
        (format!("{INVOKE_MARK}{json}"), self.input.clone())
    }
}

impl Task {
    /// The task of a recorded callback still waiting (to send again): an agent call's task, a
    /// chained invoke's child to start, or `None` for a plain callback.
    pub fn of(record: &crate::store::CallbackRecord) -> Option<Self> {
        let (target, input) = record.agent.clone()?;
        match target.strip_prefix(INVOKE_MARK) {
            Some(json) => {
                let stored: StoredInvoke = serde_json::from_str(json).ok()?;
                Some(Task::Invoke(Invoke {
                    callback_id: record.id.clone(),
                    tenant: record.tenant.clone(),
                    parent: record.execution_id.clone(),
                    function: stored.function,
                    tenant_id: stored.tenant_id,
                    child: crate::ids::ExecutionId::from_raw(stored.child),
                    input,
                }))
            }
            None => Some(Task::Agent(Dispatch {
                callback_id: record.id.clone(),
                agent: target,
                input,
            })),
        }
    }

    /// Whether `record` is a chained invoke's (which only its child's end may close).
    pub fn is_invoke(record: &crate::store::CallbackRecord) -> bool {
        record
            .agent
            .as_ref()
            .is_some_and(|(target, _)| target.starts_with(INVOKE_MARK))
    }
}

/// Whether `name` may name an agent: not empty, and without `:` (which marks chained invokes
/// where agents' names are kept).
pub fn valid_agent_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn long_payloads_are_cut_in_events_only() {
        let big = "é".repeat(EVENT_PAYLOAD_LIMIT);
        let preview = Preview::of(&big);
        assert!(preview.truncated);
        assert!(preview.text.len() <= EVENT_PAYLOAD_LIMIT);
        assert!(big.starts_with(&preview.text));
        let small = Preview::of("\"ok\"");
        assert_eq!((small.text.as_str(), small.truncated), ("\"ok\"", false));
    }

    #[test]
    fn details_round_trip_through_storage() {
        let op = Operation::new(
            "1".into(),
            None,
            "fetch".into(),
            OperationType::Step,
            SubType::Step,
            0,
        );
        let attempt = Some(Attempt {
            number: 2,
            next_delay_ms: Some(1_500),
        });
        for details in [
            Details::Empty,
            Details::Succeeded {
                result: Preview::of("7"),
                attempt,
            },
            Details::Failed {
                error: ErrorRecord::new("E", "m"),
                attempt: None,
            },
            Details::WaitStarted {
                duration_seconds: 5,
                scheduled_end: 6_000,
            },
        ] {
            let event = Event::operation(EventType::StepSucceeded, &op, 3, details);
            let stored = serde_json::to_string(&event).unwrap();
            assert_eq!(
                serde_json::from_str::<Event>(&stored).unwrap(),
                event,
                "{stored}"
            );
        }
    }

    #[test]
    fn events_stored_before_typed_details_read_as_they_were() {
        // As written by earlier versions: the history's details JSON itself.
        for details in [
            json!({}),
            json!({"Result": {"Payload": "7", "Truncated": false},
                   "RetryDetails": {"CurrentAttempt": 1, "NextAttemptDelaySeconds": null}}),
            json!({"Duration": 5}),
        ] {
            let stored = json!({
                "event_type": "StepSucceeded", "timestamp": 3, "op_id": "1", "name": "fetch",
                "sub_type": "Step", "details": details,
            })
            .to_string();
            let event: Event = serde_json::from_str(&stored).unwrap();
            assert_eq!(event.details, Details::Legacy(details));
        }
    }

    #[test]
    fn error_messages_are_bounded() {
        let e = ErrorRecord::new("T", "é".repeat(MAX_ERROR_MESSAGE));
        assert!(e.error_message.len() <= MAX_ERROR_MESSAGE);
    }
}

//! The history of an execution as the AWS durable-functions model shows it: each
//! [`journal::Event`](Event) rendered with its EventId, its operation's fields and a
//! `<EventType>Details` record (present even when empty).
//!
//! The journal records what happened ([`Details`]); the wire shapes are here and only here:
//! `{Payload, Truncated}` for results and errors, `RetryDetails {CurrentAttempt,
//! NextAttemptDelaySeconds}` for a step's attempt, RFC 3339 timestamps, durations in seconds.

use crate::journal::{Attempt, Details, ErrorRecord, Event, Preview, format_ts};
use serde_json::{Map, Value, json};

/// `event`, whose EventId is `event_id`, as the history API shows it.
pub fn event(event_id: u64, event: &Event) -> Value {
    let mut obj = Map::new();
    let event_type = serde_json::to_value(event.event_type).unwrap_or(Value::Null);
    let details_key = format!("{}Details", event_type.as_str().unwrap_or("Unknown"));
    obj.insert("EventType".into(), event_type);
    obj.insert("EventId".into(), json!(event_id));
    obj.insert("EventTimestamp".into(), json!(format_ts(event.timestamp)));
    if let Some(id) = &event.op_id {
        obj.insert("Id".into(), json!(id));
    }
    if let Some(name) = &event.name {
        obj.insert("Name".into(), json!(name));
    }
    if let Some(parent) = &event.parent_id {
        obj.insert("ParentId".into(), json!(parent));
    }
    if let Some(sub_type) = &event.sub_type {
        obj.insert("SubType".into(), json!(sub_type));
    }
    obj.insert(details_key, details(&event.details));
    Value::Object(obj)
}

/// The `<EventType>Details` record of `details`.
fn details(details: &Details) -> Value {
    match details {
        Details::Empty => json!({}),
        Details::Started {
            input,
            timeout_seconds,
        } => json!({"Input": payload(input), "ExecutionTimeout": timeout_seconds}),
        Details::Succeeded { result, attempt } => {
            with_retry(json!({"Result": payload(result)}), attempt.as_ref())
        }
        Details::Failed { error: e, attempt } => {
            with_retry(json!({"Error": error(e)}), attempt.as_ref())
        }
        Details::WaitStarted {
            duration_seconds,
            scheduled_end,
        } => json!({
            "Duration": duration_seconds,
            "ScheduledEndTimestamp": format_ts(*scheduled_end),
        }),
        Details::WaitEnded { duration_seconds } => json!({"Duration": duration_seconds}),
        Details::CallbackStarted {
            callback_id,
            timeout_seconds,
            heartbeat_timeout_seconds,
        } => json!({
            "CallbackId": callback_id,
            "Timeout": timeout_seconds,
            "HeartbeatTimeout": heartbeat_timeout_seconds,
        }),
        Details::Invocation {
            started,
            ended,
            request_id,
            error: e,
        } => {
            let mut details = json!({
                "StartTimestamp": format_ts(*started),
                "EndTimestamp": format_ts(*ended),
                "RequestId": request_id,
            });
            if let Some(e) = e {
                details["Error"] = error(e);
            }
            details
        }
        // Written as the history's JSON by an earlier version: shown as it was stored.
        Details::Legacy(stored) => stored.clone(),
    }
}

/// A step's ending carries its `RetryDetails`; other endings have none.
fn with_retry(mut details: Value, attempt: Option<&Attempt>) -> Value {
    if let Some(attempt) = attempt {
        details["RetryDetails"] = retry_details(attempt);
    }
    details
}

/// The attempt that ended and, when a retry is scheduled, the delay before it in seconds (else
/// `null`).
fn retry_details(attempt: &Attempt) -> Value {
    json!({
        "CurrentAttempt": attempt.number,
        "NextAttemptDelaySeconds": attempt.next_delay_ms.map(|d| d as f64 / 1000.0),
    })
}

/// A `{Payload, Truncated}` record for a JSON result.
fn payload(preview: &Preview) -> Value {
    json!({"Payload": preview.text, "Truncated": preview.truncated})
}

/// A `{Payload, Truncated}` record for an error: `{ErrorType, ErrorMessage, ErrorData}`.
fn error(error: &ErrorRecord) -> Value {
    json!({
        "Payload": {
            "ErrorType": error.error_type,
            "ErrorMessage": error.error_message,
            "ErrorData": error.error_data,
        },
        "Truncated": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{EVENT_PAYLOAD_LIMIT, EventType, Operation, OperationType, SubType};

    fn step() -> Operation {
        Operation::new(
            "1".into(),
            Some("0".into()),
            "fetch".into(),
            OperationType::Step,
            SubType::Step,
            0,
        )
    }

    /// The history JSON of `details` on an event of `step()`, as text: what clients read.
    fn shown(event_type: EventType, details: Details) -> String {
        let e = Event::operation(event_type, &step(), 1_764_133_200_123, details);
        event(7, &e).to_string()
    }

    #[test]
    fn every_event_has_its_fields_and_details_even_when_empty() {
        assert_eq!(
            shown(EventType::StepStarted, Details::Empty),
            r#"{"EventId":7,"EventTimestamp":"2025-11-26T05:00:00.123Z","EventType":"StepStarted","Id":"1","Name":"fetch","ParentId":"0","StepStartedDetails":{},"SubType":"Step"}"#
        );
        let e = Event::execution(EventType::ExecutionStarted, 0, Details::Empty);
        let v = event(1, &e);
        assert_eq!(v["ExecutionStartedDetails"], json!({}));
        assert!(v.get("Id").is_none() && v.get("ParentId").is_none());
    }

    #[test]
    fn step_endings_carry_retry_details() {
        let succeeded = Details::Succeeded {
            result: Preview::of("7"),
            attempt: Some(Attempt {
                number: 1,
                next_delay_ms: None,
            }),
        };
        assert!(
            shown(EventType::StepSucceeded, succeeded).contains(
                r#""StepSucceededDetails":{"Result":{"Payload":"7","Truncated":false},"RetryDetails":{"CurrentAttempt":1,"NextAttemptDelaySeconds":null}}"#
            )
        );
        let mut error = ErrorRecord::new("E", "m");
        error.error_data = Some("{}".into());
        let failed = Details::Failed {
            error,
            attempt: Some(Attempt {
                number: 2,
                next_delay_ms: Some(1_500),
            }),
        };
        assert!(
            shown(EventType::StepFailed, failed).contains(
                r#""StepFailedDetails":{"Error":{"Payload":{"ErrorData":"{}","ErrorMessage":"m","ErrorType":"E"},"Truncated":false},"RetryDetails":{"CurrentAttempt":2,"NextAttemptDelaySeconds":1.5}}"#
            )
        );
    }

    #[test]
    fn other_endings_have_a_result_or_an_error_only() {
        let failed = Details::Failed {
            error: ErrorRecord::new("Callback.Timeout", "Callback timed out"),
            attempt: None,
        };
        assert!(
            shown(EventType::CallbackTimedOut, failed).contains(
                r#""CallbackTimedOutDetails":{"Error":{"Payload":{"ErrorData":null,"ErrorMessage":"Callback timed out","ErrorType":"Callback.Timeout"},"Truncated":false}}"#
            )
        );
        let big = "x".repeat(EVENT_PAYLOAD_LIMIT + 1);
        let succeeded = Details::Succeeded {
            result: Preview::of(&big),
            attempt: None,
        };
        let v = details(&succeeded);
        assert_eq!(v["Result"]["Truncated"], true);
        assert_eq!(
            v["Result"]["Payload"].as_str().unwrap().len(),
            EVENT_PAYLOAD_LIMIT
        );
        assert!(v.get("RetryDetails").is_none());
    }

    #[test]
    fn starts_show_durations_and_timeouts_in_seconds() {
        assert_eq!(
            details(&Details::Started {
                input: Preview::of("{}"),
                timeout_seconds: None
            })
            .to_string(),
            r#"{"ExecutionTimeout":null,"Input":{"Payload":"{}","Truncated":false}}"#
        );
        assert_eq!(
            details(&Details::WaitStarted {
                duration_seconds: 5,
                scheduled_end: 6_000
            })
            .to_string(),
            r#"{"Duration":5,"ScheduledEndTimestamp":"1970-01-01T00:00:06.000Z"}"#
        );
        assert_eq!(
            details(&Details::WaitEnded {
                duration_seconds: 5
            })
            .to_string(),
            r#"{"Duration":5}"#
        );
        assert_eq!(
            details(&Details::CallbackStarted {
                callback_id: "cb_1".into(),
                timeout_seconds: 60,
                heartbeat_timeout_seconds: None,
            })
            .to_string(),
            r#"{"CallbackId":"cb_1","HeartbeatTimeout":null,"Timeout":60}"#
        );
    }

    #[test]
    fn an_invocation_shows_its_times_and_a_trap() {
        let mut invocation = Details::Invocation {
            started: 0,
            ended: 1_500,
            request_id: "act_1".into(),
            error: None,
        };
        assert_eq!(
            details(&invocation).to_string(),
            r#"{"EndTimestamp":"1970-01-01T00:00:01.500Z","RequestId":"act_1","StartTimestamp":"1970-01-01T00:00:00.000Z"}"#
        );
        if let Details::Invocation { error, .. } = &mut invocation {
            *error = Some(ErrorRecord::new("Aegis.NonDeterminism", "m"));
        }
        assert_eq!(
            details(&invocation)["Error"]["Payload"]["ErrorType"],
            "Aegis.NonDeterminism"
        );
    }

    #[test]
    fn legacy_details_are_shown_as_stored() {
        let stored = json!({"Result": {"Payload": "7", "Truncated": false}, "Extra": [1]});
        assert_eq!(details(&Details::Legacy(stored.clone())), stored);
    }
}

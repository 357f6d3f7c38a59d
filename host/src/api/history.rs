//! The history of an execution as the AWS durable-functions model shows it: each
//! [`journal::Event`](Event) rendered with its EventId, its operation's fields and a
//! `<EventType>Details` record (present even when empty).
//!
//! The journal records what happened ([`Details`]); the wire shapes are here and only here:
//! `{Payload, Truncated}` for results and errors, `RetryDetails {CurrentAttempt,
//! NextAttemptDelaySeconds}` for a step's attempt, durations in seconds. `/v1` shows RFC 3339
//! timestamps ([`event`]); the Lambda surface shows what AWS clients parse, epoch seconds, with
//! absent values left out rather than null, and payloads left out when the caller asks for no
//! execution data ([`event_as`]).

use crate::config::{LambdaConfig, durable_execution_arn, function_arn};
use crate::journal::{Attempt, Details, ErrorRecord, Event, Millis, Preview, format_ts};
use serde_json::{Map, Value, json};

/// How an event is shown.
#[derive(Clone, Copy, Debug)]
pub struct Style<'a> {
    /// Timestamps as epoch seconds (numbers, with a fraction), not RFC 3339 strings; and no
    /// null values (AWS leaves a key out instead).
    pub aws: bool,
    /// Results, errors and inputs are shown; without them, each `{Payload, Truncated}` is
    /// `{Truncated: true}`.
    pub include_data: bool,
    /// How the Lambda surface names functions and executions: a chained invoke's child is
    /// shown by its `DurableExecutionArn` with it, and by its `ExecutionId` without.
    pub lambda: Option<&'a LambdaConfig>,
}

impl Style<'_> {
    /// What `/v1` shows.
    pub const V1: Style<'static> = Style {
        aws: false,
        include_data: true,
        lambda: None,
    };

    fn timestamp(self, at: Millis) -> Value {
        if self.aws {
            json!(epoch_seconds(at))
        } else {
            json!(format_ts(at))
        }
    }
}

/// `at` in seconds since the epoch, with milliseconds as the fraction: the timestamp AWS clients
/// parse (an RFC 3339 string makes the JavaScript SDK throw).
pub fn epoch_seconds(at: Millis) -> f64 {
    at as f64 / 1000.0
}

/// `event`, whose EventId is `event_id`, as `/v1` shows it.
pub fn event(event_id: u64, event: &Event) -> Value {
    event_as(event_id, event, Style::V1)
}

/// `event`, whose EventId is `event_id`, shown in `style`.
pub fn event_as(event_id: u64, event: &Event, style: Style<'_>) -> Value {
    let mut obj = Map::new();
    let event_type = serde_json::to_value(event.event_type).unwrap_or(Value::Null);
    let details_key = format!("{}Details", event_type.as_str().unwrap_or("Unknown"));
    obj.insert("EventType".into(), event_type);
    obj.insert("EventId".into(), json!(event_id));
    obj.insert("EventTimestamp".into(), style.timestamp(event.timestamp));
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
    obj.insert(details_key, details(&event.details, style));
    let mut shown = Value::Object(obj);
    if style.aws {
        drop_nulls(&mut shown);
    }
    shown
}

/// Removes every null member, at any depth: AWS leaves absent values out.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The `<EventType>Details` record of `details`.
fn details(details: &Details, style: Style<'_>) -> Value {
    match details {
        Details::Empty => json!({}),
        Details::Started {
            input,
            timeout_seconds,
        } => json!({"Input": payload(input, style), "ExecutionTimeout": timeout_seconds}),
        Details::Succeeded { result, attempt } => with_retry(
            json!({"Result": payload(result, style)}),
            attempt.as_ref(),
            style,
        ),
        Details::Failed { error: e, attempt } => {
            with_retry(json!({"Error": error(e, style)}), attempt.as_ref(), style)
        }
        Details::WaitStarted {
            duration_seconds,
            scheduled_end,
        } => json!({
            "Duration": duration_seconds,
            "ScheduledEndTimestamp": style.timestamp(*scheduled_end),
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
        Details::ChainedInvokeStarted {
            function_name,
            executed_version,
            input,
            tenant_id,
            child_id,
            child_name,
        } => {
            let mut details = json!({
                "FunctionName": function_name,
                "TenantId": tenant_id,
                "Input": payload(input, style),
                "ExecutedVersion": executed_version,
            });
            match style.lambda {
                Some(config) => {
                    let workflow = config
                        .parse_function(function_name)
                        .map_or_else(|_| function_name.clone(), |f| f.name);
                    let function = function_arn(config, &workflow, executed_version);
                    details["DurableExecutionArn"] =
                        json!(durable_execution_arn(&function, child_name, child_id));
                }
                None => details["ExecutionId"] = json!(child_id),
            }
            details
        }
        Details::Invocation {
            started,
            ended,
            request_id,
            error: e,
        } => {
            let mut details = json!({
                "StartTimestamp": style.timestamp(*started),
                "EndTimestamp": style.timestamp(*ended),
                "RequestId": request_id,
            });
            if let Some(e) = e {
                details["Error"] = error(e, style);
            }
            details
        }
        // Written as the history's JSON by an earlier version: shown as it was stored.
        Details::Legacy(stored) => stored.clone(),
    }
}

/// A step's ending carries its `RetryDetails`; other endings have none.
fn with_retry(mut details: Value, attempt: Option<&Attempt>, style: Style<'_>) -> Value {
    if let Some(attempt) = attempt {
        details["RetryDetails"] = retry_details(attempt, style);
    }
    details
}

/// The attempt that ended and, when a retry is scheduled, the delay before it in seconds (else
/// `null`). AWS's model types the delay as an integer: the Lambda surface shows whole seconds
/// (rounded to the nearest), `/v1` the exact fraction.
fn retry_details(attempt: &Attempt, style: Style<'_>) -> Value {
    let delay = attempt.next_delay_ms.map(|d| {
        if style.aws {
            json!(d.saturating_add(500) / 1000)
        } else {
            json!(d as f64 / 1000.0)
        }
    });
    json!({
        "CurrentAttempt": attempt.number,
        "NextAttemptDelaySeconds": delay,
    })
}

/// A `{Payload, Truncated}` record for a JSON result.
fn payload(preview: &Preview, style: Style<'_>) -> Value {
    if !style.include_data {
        return json!({"Truncated": true});
    }
    json!({"Payload": preview.text, "Truncated": preview.truncated})
}

/// A `{Payload, Truncated}` record for an error: `{ErrorType, ErrorMessage, ErrorData}`.
fn error(error: &ErrorRecord, style: Style<'_>) -> Value {
    if !style.include_data {
        return json!({"Truncated": true});
    }
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
        let v = details(&succeeded, Style::V1);
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
            details(
                &Details::Started {
                    input: Preview::of("{}"),
                    timeout_seconds: None
                },
                Style::V1
            )
            .to_string(),
            r#"{"ExecutionTimeout":null,"Input":{"Payload":"{}","Truncated":false}}"#
        );
        assert_eq!(
            details(
                &Details::WaitStarted {
                    duration_seconds: 5,
                    scheduled_end: 6_000
                },
                Style::V1
            )
            .to_string(),
            r#"{"Duration":5,"ScheduledEndTimestamp":"1970-01-01T00:00:06.000Z"}"#
        );
        assert_eq!(
            details(
                &Details::WaitEnded {
                    duration_seconds: 5
                },
                Style::V1
            )
            .to_string(),
            r#"{"Duration":5}"#
        );
        assert_eq!(
            details(
                &Details::CallbackStarted {
                    callback_id: "cb_1".into(),
                    timeout_seconds: 60,
                    heartbeat_timeout_seconds: None,
                },
                Style::V1
            )
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
            details(&invocation, Style::V1).to_string(),
            r#"{"EndTimestamp":"1970-01-01T00:00:01.500Z","RequestId":"act_1","StartTimestamp":"1970-01-01T00:00:00.000Z"}"#
        );
        if let Details::Invocation { error, .. } = &mut invocation {
            *error = Some(ErrorRecord::new("Aegis.NonDeterminism", "m"));
        }
        assert_eq!(
            details(&invocation, Style::V1)["Error"]["Payload"]["ErrorType"],
            "Aegis.NonDeterminism"
        );
    }

    #[test]
    fn a_chained_invoke_names_its_child_by_arn_on_the_lambda_surface_and_by_id_on_v1() {
        let started = Details::ChainedInvokeStarted {
            function_name: "echo:2".into(),
            executed_version: "2".into(),
            input: Preview::of("\"hi\""),
            tenant_id: Some("t-9".into()),
            child_id: "ex_child".into(),
            child_name: "cb_1".into(),
        };
        let config = LambdaConfig::default();
        let lambda = Style {
            aws: true,
            include_data: true,
            lambda: Some(&config),
        };
        assert_eq!(
            details(&started, lambda),
            json!({
                "FunctionName": "echo:2",
                "TenantId": "t-9",
                "Input": {"Payload": "\"hi\"", "Truncated": false},
                "ExecutedVersion": "2",
                "DurableExecutionArn": "arn:aws:lambda:us-east-1:000000000000:function:echo:2/durable-execution/cb_1/ex_child",
            })
        );
        let v1 = details(&started, Style::V1);
        assert_eq!(v1["ExecutionId"], "ex_child");
        assert!(v1.get("DurableExecutionArn").is_none());
    }

    #[test]
    fn legacy_details_are_shown_as_stored() {
        let stored = json!({"Result": {"Payload": "7", "Truncated": false}, "Extra": [1]});
        assert_eq!(details(&Details::Legacy(stored.clone()), Style::V1), stored);
    }

    #[test]
    fn the_aws_style_shows_epoch_seconds_and_leaves_nulls_and_withheld_data_out() {
        let aws = Style {
            aws: true,
            include_data: true,
            lambda: None,
        };
        let failed = Details::Failed {
            error: ErrorRecord::new("E", "m"),
            attempt: Some(Attempt {
                number: 1,
                next_delay_ms: None,
            }),
        };
        let e = Event::operation(EventType::StepFailed, &step(), 1_764_133_200_123, failed);
        assert_eq!(
            event_as(3, &e, aws).to_string(),
            r#"{"EventId":3,"EventTimestamp":1764133200.123,"EventType":"StepFailed","Id":"1","Name":"fetch","ParentId":"0","StepFailedDetails":{"Error":{"Payload":{"ErrorMessage":"m","ErrorType":"E"},"Truncated":false},"RetryDetails":{"CurrentAttempt":1}},"SubType":"Step"}"#
        );
        let withheld = Style {
            aws: true,
            include_data: false,
            lambda: None,
        };
        let succeeded = Details::Succeeded {
            result: Preview::of("\"secret\""),
            attempt: None,
        };
        let e = Event::operation(EventType::StepSucceeded, &step(), 0, succeeded);
        let shown = event_as(4, &e, withheld);
        assert_eq!(
            shown["StepSucceededDetails"],
            json!({"Result": {"Truncated": true}})
        );
        // AWS's model types NextAttemptDelaySeconds as an integer: whole seconds, rounded.
        let retried = Details::Failed {
            error: ErrorRecord::new("E", "m"),
            attempt: Some(Attempt {
                number: 1,
                next_delay_ms: Some(2_600),
            }),
        };
        let e = Event::operation(EventType::StepFailed, &step(), 0, retried);
        assert_eq!(
            event_as(6, &e, aws)["StepFailedDetails"]["RetryDetails"],
            json!({"CurrentAttempt": 1, "NextAttemptDelaySeconds": 3})
        );
        let wait = Details::WaitStarted {
            duration_seconds: 5,
            scheduled_end: 1_500,
        };
        let e = Event::operation(EventType::WaitStarted, &step(), 0, wait);
        assert_eq!(
            event_as(5, &e, aws)["WaitStartedDetails"],
            json!({"Duration": 5, "ScheduledEndTimestamp": 1.5})
        );
    }
}

//! Starting an execution's history, and ending the execution: succeeded, failed, stopped by
//! request, or timed out.
//!
//! Every ending writes the same things, built once here: the terminal history event, the
//! host's own `execution.<status>` workflow event, the execution's status and outcome, and the
//! clean-up (every timer cleared, every callback still waiting cancelled, since nothing can
//! complete it any more). Callers add what is theirs: the activation its
//! `InvocationCompleted` before the ending and its lease; the scheduler and a stop request the
//! conditions [`time_out`] and [`stop`] carry.

use super::timer_fired;
use crate::journal::{Details, ErrorRecord, Event, EventType, Millis, Preview};
use crate::store::{Batch, Condition, ExecutionRecord, ExecutionStatus, Finish, Timer};
use serde::Serialize;

/// How an execution ends.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// `run` returned this result (JSON).
    Succeeded(String),
    /// The workflow failed, or the host failed it (a trap, a limit).
    Failed(ErrorRecord),
    /// Its execution timeout passed.
    TimedOut,
    /// A caller stopped it, with this error (by default [`stopped_error`]).
    Stopped(ErrorRecord),
}

/// The first event of every history: the execution's input and its timeout in seconds, if it
/// has one.
pub fn started_event(input: &str, timeout_seconds: Option<u64>, now: Millis) -> Event {
    Event::execution(
        EventType::ExecutionStarted,
        now,
        Details::Started {
            input: Preview::of(input),
            timeout_seconds,
        },
    )
}

/// The error a timed-out execution records.
pub fn timeout_error() -> ErrorRecord {
    ErrorRecord::new("Execution.Timeout", "Execution timed out")
}

/// The error a stopped execution records.
pub fn stopped_error() -> ErrorRecord {
    ErrorRecord::new("Execution.Stopped", "the execution was stopped by request")
}

/// The writes that end an execution of `workflow` at `now`, with no conditions of their own.
pub fn end(ending: Ending, workflow: &str, now: Millis) -> Batch {
    let (status, event, result, error) = match ending {
        Ending::Succeeded(result) => (
            ExecutionStatus::Succeeded,
            EventType::ExecutionSucceeded,
            Some(result),
            None,
        ),
        Ending::Failed(error) => (
            ExecutionStatus::Failed,
            EventType::ExecutionFailed,
            None,
            Some(error),
        ),
        Ending::TimedOut => (
            ExecutionStatus::TimedOut,
            EventType::ExecutionTimedOut,
            None,
            Some(timeout_error()),
        ),
        Ending::Stopped(error) => (
            ExecutionStatus::Stopped,
            EventType::ExecutionStopped,
            None,
            Some(error),
        ),
    };
    let details = match (&result, &error) {
        (Some(result), _) => Details::Succeeded {
            result: Preview::of(result),
            attempt: None,
        },
        (None, Some(error)) => Details::Failed {
            error: error.clone(),
            attempt: None,
        },
        (None, None) => Details::Empty,
    };
    Batch {
        events: vec![Event::execution(event, now, details)],
        publish: vec![ended_event(status, workflow, error.as_ref())],
        finish: Some(Finish {
            status,
            result,
            error,
        }),
        clear_all_timers: true,
        cancel_open_callbacks: true,
        ..Batch::default()
    }
}

/// Stops a running execution by request, recording `error` as its error; refused (nothing
/// written) once it has ended.
pub fn stop(workflow: &str, error: ErrorRecord, now: Millis) -> Batch {
    let mut batch = Batch {
        conditions: vec![Condition::ExecutionRunning],
        ..Batch::default()
    };
    batch.append(end(Ending::Stopped(error), workflow, now));
    batch
}

/// Times a running execution out when its `timer` (an `ExecutionTimeout`) fires.
pub fn time_out(timer: &Timer, workflow: &str, now: Millis) -> Batch {
    let mut batch = timer_fired(timer, now);
    batch.append(end(Ending::TimedOut, workflow, now));
    batch
}

/// Whether `existing`, which holds the name a start asks for, is that same start: the same
/// workflow, version and input. Starting it again then answers the existing execution
/// (idempotency by name); anything else conflicts with it.
pub fn same_start(existing: &ExecutionRecord, workflow: &str, version: u32, input: &str) -> bool {
    existing.workflow == workflow && existing.version == version && existing.input == input
}

/// The host's own workflow event when an execution ends: `execution.succeeded`,
/// `execution.failed`, `execution.timed_out` or `execution.stopped`, as (kind, JSON data).
pub fn ended_event(
    status: ExecutionStatus,
    workflow: &str,
    error: Option<&ErrorRecord>,
) -> (String, String) {
    let kind = format!("execution.{}", status.as_str().to_ascii_lowercase());
    let data = EndedData {
        error: error.map(|e| EndedError {
            error_message: &e.error_message,
            error_type: &e.error_type,
        }),
        status: status.as_str(),
        workflow,
    };
    let data = serde_json::to_string(&data).expect("plain strings serialize");
    (kind, data)
}

/// The data of an `execution.<status>` event, as subscribers (webhooks, SNS, EventBridge)
/// receive it. Fields are in alphabetical order, the order the JSON map this replaced wrote, so
/// the events' bytes did not change.
#[derive(Serialize)]
struct EndedData<'a> {
    error: Option<EndedError<'a>>,
    status: &'a str,
    workflow: &'a str,
}

/// Why an execution failed: the type and message of its error, without its data.
#[derive(Serialize)]
struct EndedError<'a> {
    error_message: &'a str,
    error_type: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TimerKind;
    use crate::transitions::fixtures;
    use serde_json::Value;

    fn only_event(batch: &Batch) -> (EventType, &Details) {
        assert_eq!(batch.events.len(), 1);
        (batch.events[0].event_type, &batch.events[0].details)
    }

    #[test]
    fn a_taken_name_is_the_same_start_only_with_the_same_workflow_version_and_input() {
        let existing = ExecutionRecord {
            id: fixtures::execution(),
            tenant: crate::ids::TenantId::default_tenant(),
            name: "nightly".into(),
            workflow: "report".into(),
            version: 2,
            digest: crate::ids::ComponentDigest::of(b"wasm"),
            input: r#"{"day":1}"#.into(),
            status: ExecutionStatus::Succeeded,
            result: None,
            error: None,
            created_at: 1,
            updated_at: 2,
            timeout_at: None,
            wake_seq: 1,
        };
        assert!(same_start(&existing, "report", 2, r#"{"day":1}"#));
        assert!(!same_start(&existing, "report", 2, r#"{"day":2}"#));
        assert!(!same_start(&existing, "report", 3, r#"{"day":1}"#));
        assert!(!same_start(&existing, "other", 2, r#"{"day":1}"#));
    }

    #[test]
    fn the_started_event_carries_the_input_and_the_timeout() {
        let event = started_event(r#"{"n":1}"#, Some(60), 3);
        assert_eq!(event.event_type, EventType::ExecutionStarted);
        assert_eq!(event.timestamp, 3);
        assert_eq!(
            event.details,
            Details::Started {
                input: Preview::of(r#"{"n":1}"#),
                timeout_seconds: Some(60)
            }
        );
        assert!(matches!(
            started_event("{}", None, 3).details,
            Details::Started {
                timeout_seconds: None,
                ..
            }
        ));
    }

    #[test]
    fn every_ending_clears_the_timers_and_cancels_the_open_callbacks() {
        for ending in [
            Ending::Succeeded("1".into()),
            Ending::Failed(ErrorRecord::new("E", "m")),
            Ending::TimedOut,
            Ending::Stopped(stopped_error()),
        ] {
            let batch = end(ending.clone(), "wf", 5);
            assert!(batch.clear_all_timers, "{ending:?}");
            assert!(batch.cancel_open_callbacks, "{ending:?}");
            assert!(batch.conditions.is_empty(), "{ending:?}");
            assert!(!batch.wake && !batch.release_lease, "{ending:?}");
            assert_eq!(batch.publish.len(), 1);
            assert_eq!(batch.events[0].timestamp, 5);
        }
    }

    #[test]
    fn success_records_its_result_and_failure_its_error() {
        let batch = end(Ending::Succeeded(r#"{"a":1}"#.into()), "wf", 1);
        let (event, details) = only_event(&batch);
        assert_eq!(event, EventType::ExecutionSucceeded);
        assert_eq!(
            *details,
            Details::Succeeded {
                result: Preview::of(r#"{"a":1}"#),
                attempt: None
            }
        );
        let finish = batch.finish.unwrap();
        assert_eq!(finish.status, ExecutionStatus::Succeeded);
        assert_eq!(finish.result.as_deref(), Some(r#"{"a":1}"#));
        assert!(finish.error.is_none());
        assert_eq!(batch.publish[0].0, "execution.succeeded");

        let batch = end(Ending::Failed(ErrorRecord::new("E.x", "boom")), "wf", 1);
        let (event, details) = only_event(&batch);
        assert_eq!(event, EventType::ExecutionFailed);
        assert!(
            matches!(details, Details::Failed { error, attempt: None } if error.error_type == "E.x")
        );
        let finish = batch.finish.unwrap();
        assert_eq!(finish.status, ExecutionStatus::Failed);
        assert!(finish.result.is_none());
        assert_eq!(finish.error.unwrap().error_message, "boom");
    }

    #[test]
    fn a_stop_applies_only_to_a_running_execution() {
        let batch = stop("wf", stopped_error(), 1);
        assert!(matches!(
            batch.conditions.as_slice(),
            [Condition::ExecutionRunning]
        ));
        assert_eq!(only_event(&batch).0, EventType::ExecutionStopped);
        let finish = batch.finish.unwrap();
        assert_eq!(finish.status, ExecutionStatus::Stopped);
        assert_eq!(finish.error, Some(stopped_error()));
        assert!(batch.cancel_open_callbacks);
        let asked = ErrorRecord::new("Ops.Cancelled", "not needed any more");
        let finish = stop("wf", asked.clone(), 1).finish.unwrap();
        assert_eq!(finish.error, Some(asked));
    }

    #[test]
    fn a_timeout_consumes_its_timer_and_applies_only_when_due() {
        let timer = fixtures::timer(TimerKind::ExecutionTimeout, 100);
        let batch = time_out(&timer, "wf", 150);
        assert!(matches!(
            batch.conditions.as_slice(),
            [
                Condition::ExecutionRunning,
                Condition::TimerDue {
                    now: 150,
                    kind: TimerKind::ExecutionTimeout,
                    ..
                }
            ]
        ));
        assert_eq!(
            batch.clear_timers,
            vec![(timer.op_id.clone(), TimerKind::ExecutionTimeout)]
        );
        assert_eq!(only_event(&batch).0, EventType::ExecutionTimedOut);
        let finish = batch.finish.unwrap();
        assert_eq!(finish.status, ExecutionStatus::TimedOut);
        assert_eq!(finish.error.unwrap().error_type, "Execution.Timeout");
        assert!(batch.clear_all_timers && batch.cancel_open_callbacks);
    }

    #[test]
    fn the_ended_event_names_the_status_and_the_error() {
        let (kind, data) = ended_event(
            ExecutionStatus::TimedOut,
            "wf",
            Some(&ErrorRecord::new("Execution.Timeout", "late")),
        );
        assert_eq!(kind, "execution.timed_out");
        let data: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(data["status"], "TIMED_OUT");
        assert_eq!(data["workflow"], "wf");
        assert_eq!(data["error"]["error_type"], "Execution.Timeout");
        let (_, data) = ended_event(ExecutionStatus::Succeeded, "wf", None);
        assert_eq!(
            serde_json::from_str::<Value>(&data).unwrap()["error"],
            Value::Null
        );
        // The bytes subscribers have always received: keys in alphabetical order.
        let (_, data) = ended_event(
            ExecutionStatus::Failed,
            "wf",
            Some(&ErrorRecord::new("Boom", "it broke")),
        );
        assert_eq!(
            data,
            r#"{"error":{"error_message":"it broke","error_type":"Boom"},"status":"FAILED","workflow":"wf"}"#
        );
    }
}

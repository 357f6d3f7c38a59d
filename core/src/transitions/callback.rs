//! Callbacks: start one with its timers, complete or fail it from outside, heartbeat it, and
//! time it out.
//!
//! Every transition of a waiting callback applies only while its operation is STARTED and the
//! execution runs, so a completion racing a timeout (or a duplicate delivery) has one winner.
//! Closing a callback writes its operation, its event and its record, clears both of its
//! timers and wakes the execution.

use super::{only_from, recorded, timer_fired};
use crate::ids::{CallbackId, ExecutionId, TenantId};
use crate::journal::{
    Details, ErrorRecord, EventType, Millis, Operation, OperationType, Preview, Status,
};
use crate::store::{Batch, CallbackRecord, Condition, Timer, TimerKind};

/// A callback to start: the id handed to the outside world, whose execution it belongs to,
/// and its timeouts.
#[derive(Clone, Debug)]
pub struct NewCallback {
    pub id: CallbackId,
    pub tenant: TenantId,
    pub execution: ExecutionId,
    pub timeout_ms: u64,
    pub heartbeat_timeout_ms: Option<u64>,
    /// For agent invocations: the agent and the input sent.
    pub agent: Option<(String, String)>,
}

/// Starts the new callback operation `op`: its record, its timeout and (with a heartbeat
/// timeout) its heartbeat timer, both counted from the operation's start.
pub fn start(new: NewCallback, mut op: Operation, now: Millis) -> Batch {
    op.callback_id = Some(new.id.to_string());
    let details = Details::CallbackStarted {
        callback_id: new.id.to_string(),
        timeout_seconds: new.timeout_ms / 1000,
        heartbeat_timeout_seconds: new.heartbeat_timeout_ms.map(|h| h / 1000),
    };
    let timer = |after: u64, kind| Timer {
        fire_at: op.start_ts + after as Millis,
        execution_id: new.execution.clone(),
        op_id: op.id.clone(),
        kind,
    };
    let mut timers = vec![timer(new.timeout_ms, TimerKind::CallbackTimeout)];
    if let Some(hb) = new.heartbeat_timeout_ms {
        timers.push(timer(hb, TimerKind::CallbackHeartbeat));
    }
    let record = CallbackRecord {
        id: new.id,
        tenant: new.tenant,
        execution_id: new.execution,
        op_id: op.id.clone(),
        name: op.name.clone(),
        status: Status::Started,
        heartbeat_timeout_ms: new.heartbeat_timeout_ms,
        agent: new.agent,
    };
    let mut batch = recorded(op, EventType::CallbackStarted, details, now);
    batch.set_timers = timers;
    batch.callbacks.push(record);
    batch
}

/// How the outside world closes a callback.
#[derive(Clone, Debug, PartialEq)]
pub enum Closing {
    /// With this result (JSON).
    Succeeded(String),
    Failed(ErrorRecord),
    /// The work behind it was stopped (a chained invoke's child execution stopped by request).
    Stopped(ErrorRecord),
}

/// Completes or fails the waiting callback `record` (its operation `op`) from outside.
pub fn complete(record: &CallbackRecord, op: Operation, closing: Closing, now: Millis) -> Batch {
    let mut batch = while_waiting(&op);
    let outcome = match closing {
        Closing::Succeeded(payload) => Ok(payload),
        Closing::Failed(error) => Err((Status::Failed, error)),
        Closing::Stopped(error) => Err((Status::Stopped, error)),
    };
    close(&mut batch, record, op, outcome, now);
    batch
}

/// A heartbeat on the waiting callback `record`: its heartbeat timer moves to `now` plus its
/// heartbeat timeout (no event). `None` for a callback without a heartbeat timeout, which a
/// heartbeat does not change.
pub fn heartbeat(record: &CallbackRecord, op: &Operation, now: Millis) -> Option<Batch> {
    let hb = record.heartbeat_timeout_ms?;
    let mut batch = while_waiting(op);
    batch.set_timers.push(Timer {
        fire_at: now + hb as Millis,
        execution_id: record.execution_id.clone(),
        op_id: op.id.clone(),
        kind: TimerKind::CallbackHeartbeat,
    });
    Some(batch)
}

/// The error of a callback timed out by a timer of `kind`: its plain timeout, or its heartbeat
/// timeout passing without a heartbeat.
pub fn timeout_error(kind: TimerKind) -> ErrorRecord {
    if kind == TimerKind::CallbackHeartbeat {
        ErrorRecord::new("Callback.Heartbeat", "Callback timed out on heartbeat")
    } else {
        ErrorRecord::new("Callback.Timeout", "Callback timed out")
    }
}

/// Times the waiting callback `record` (its operation `op`) out when its `timer` fires.
pub fn time_out(timer: &Timer, record: &CallbackRecord, op: Operation, now: Millis) -> Batch {
    let mut batch = timer_fired(timer, now);
    batch.conditions.push(only_from(&op, Status::Started));
    let error = if op.op_type == OperationType::ChainedInvoke {
        super::invoke::timeout_error(&op, timer.fire_at)
    } else {
        timeout_error(timer.kind)
    };
    close(&mut batch, record, op, Err((Status::TimedOut, error)), now);
    batch
}

/// The conditions of an outside transition: the execution runs and the callback still waits.
fn while_waiting(op: &Operation) -> Batch {
    Batch {
        conditions: vec![Condition::ExecutionRunning, only_from(op, Status::Started)],
        ..Batch::default()
    }
}

/// The events that end a callback (or a chained invoke, kept as one): succeeded, failed, timed
/// out, stopped.
fn ending_events(op: &Operation) -> [EventType; 4] {
    if op.op_type == OperationType::ChainedInvoke {
        [
            EventType::ChainedInvokeSucceeded,
            EventType::ChainedInvokeFailed,
            EventType::ChainedInvokeTimedOut,
            EventType::ChainedInvokeStopped,
        ]
    } else {
        [
            EventType::CallbackSucceeded,
            EventType::CallbackFailed,
            EventType::CallbackTimedOut,
            EventType::CallbackFailed,
        ]
    }
}

/// Adds to `batch` the writes that end a callback: its operation, its event, its record, its
/// timers, and a wake-up for the execution.
fn close(
    batch: &mut Batch,
    record: &CallbackRecord,
    mut op: Operation,
    outcome: Result<String, (Status, ErrorRecord)>,
    now: Millis,
) {
    op.end_ts = Some(now);
    let [succeeded, failed, timed_out, stopped] = ending_events(&op);
    let (event_type, details) = match outcome {
        Ok(payload) => {
            op.status = Status::Succeeded;
            let details = Details::Succeeded {
                result: Preview::of(&payload),
                attempt: None,
            };
            op.result = Some(payload);
            (succeeded, details)
        }
        Err((status, error)) => {
            op.status = status;
            let details = Details::Failed {
                error: error.clone(),
                attempt: None,
            };
            op.error = Some(error);
            let event = match status {
                Status::TimedOut => timed_out,
                Status::Stopped => stopped,
                _ => failed,
            };
            (event, details)
        }
    };
    batch.callbacks.push(CallbackRecord {
        status: op.status,
        ..record.clone()
    });
    batch
        .clear_timers
        .push((op.id.clone(), TimerKind::CallbackTimeout));
    batch
        .clear_timers
        .push((op.id.clone(), TimerKind::CallbackHeartbeat));
    batch.append(recorded(op, event_type, details, now));
    batch.wake = true;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::SubType;
    use crate::transitions::fixtures;

    fn callback_op() -> Operation {
        let mut op = fixtures::op(OperationType::Callback, SubType::Callback, 1_000);
        op.callback_id = Some("cb_1".into());
        op
    }

    fn new_callback(heartbeat_timeout_ms: Option<u64>) -> NewCallback {
        NewCallback {
            id: CallbackId::from_raw("cb_1"),
            tenant: TenantId::from_raw("t_1"),
            execution: fixtures::execution(),
            timeout_ms: 60_000,
            heartbeat_timeout_ms,
            agent: None,
        }
    }

    fn is_guarded_while_waiting(batch: &Batch) -> bool {
        matches!(
            batch.conditions.as_slice(),
            [
                Condition::ExecutionRunning,
                Condition::OperationStatus {
                    status: Status::Started,
                    ..
                }
            ]
        )
    }

    #[test]
    fn a_start_records_the_callback_and_arms_its_timers() {
        let op = fixtures::op(OperationType::Callback, SubType::Callback, 1_000);
        let batch = start(new_callback(Some(5_000)), op, 1_000);
        assert_eq!(batch.operations[0].callback_id.as_deref(), Some("cb_1"));
        let details = &batch.events[0].details;
        assert_eq!(batch.events[0].event_type, EventType::CallbackStarted);
        assert_eq!(
            *details,
            Details::CallbackStarted {
                callback_id: "cb_1".into(),
                timeout_seconds: 60,
                heartbeat_timeout_seconds: Some(5),
            }
        );
        assert_eq!(
            batch.set_timers,
            vec![
                fixtures::timer(TimerKind::CallbackTimeout, 61_000),
                fixtures::timer(TimerKind::CallbackHeartbeat, 6_000),
            ]
        );
        assert_eq!(batch.callbacks, vec![fixtures::callback(Some(5_000))]);

        let op = fixtures::op(OperationType::Callback, SubType::Callback, 1_000);
        let batch = start(new_callback(None), op, 1_000);
        assert_eq!(batch.set_timers.len(), 1);
        assert!(matches!(
            batch.events[0].details,
            Details::CallbackStarted {
                heartbeat_timeout_seconds: None,
                ..
            }
        ));
    }

    #[test]
    fn a_completion_closes_the_callback_once_and_wakes() {
        let record = fixtures::callback(None);
        let batch = complete(
            &record,
            callback_op(),
            Closing::Succeeded("\"ok\"".into()),
            7,
        );
        assert!(is_guarded_while_waiting(&batch));
        let op = &batch.operations[0];
        assert_eq!(op.status, Status::Succeeded);
        assert_eq!((op.end_ts, op.result.as_deref()), (Some(7), Some("\"ok\"")));
        assert_eq!(batch.events[0].event_type, EventType::CallbackSucceeded);
        assert_eq!(batch.callbacks[0].status, Status::Succeeded);
        assert_eq!(
            batch.clear_timers,
            vec![
                ("op_1".into(), TimerKind::CallbackTimeout),
                ("op_1".into(), TimerKind::CallbackHeartbeat)
            ]
        );
        assert!(batch.wake);

        let failed = complete(
            &record,
            callback_op(),
            Closing::Failed(ErrorRecord::new("No", "declined")),
            7,
        );
        assert_eq!(failed.operations[0].status, Status::Failed);
        assert_eq!(failed.events[0].event_type, EventType::CallbackFailed);
        assert_eq!(failed.callbacks[0].status, Status::Failed);
        assert_eq!(
            failed.events[0].details,
            Details::Failed {
                error: ErrorRecord::new("No", "declined"),
                attempt: None
            }
        );
    }

    #[test]
    fn a_heartbeat_moves_only_the_heartbeat_timer() {
        assert!(heartbeat(&fixtures::callback(None), &callback_op(), 9).is_none());
        let batch = heartbeat(&fixtures::callback(Some(3_000)), &callback_op(), 9).unwrap();
        assert!(is_guarded_while_waiting(&batch));
        assert_eq!(
            batch.set_timers,
            vec![fixtures::timer(TimerKind::CallbackHeartbeat, 3_009)]
        );
        assert!(batch.events.is_empty() && batch.operations.is_empty() && !batch.wake);
    }

    #[test]
    fn a_timeout_names_the_timer_that_fired() {
        let record = fixtures::callback(Some(3_000));
        for (kind, error_type) in [
            (TimerKind::CallbackTimeout, "Callback.Timeout"),
            (TimerKind::CallbackHeartbeat, "Callback.Heartbeat"),
        ] {
            let batch = time_out(&fixtures::timer(kind, 50), &record, callback_op(), 60);
            assert!(matches!(
                batch.conditions.as_slice(),
                [
                    Condition::ExecutionRunning,
                    Condition::TimerDue { now: 60, .. },
                    Condition::OperationStatus {
                        status: Status::Started,
                        ..
                    }
                ]
            ));
            let op = &batch.operations[0];
            assert_eq!(op.status, Status::TimedOut);
            assert_eq!(op.error.as_ref().unwrap().error_type, error_type);
            assert_eq!(batch.events[0].event_type, EventType::CallbackTimedOut);
            assert_eq!(batch.callbacks[0].status, Status::TimedOut);
            // The timer that fired is consumed, and both of the callback's are cleared.
            assert!(batch.clear_timers.contains(&("op_1".into(), kind)));
            assert!(batch.wake);
        }
    }
}

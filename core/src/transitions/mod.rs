//! Pure domain transitions: what each step in the life of an execution writes.
//!
//! Every function here turns an operation (or an execution) and an input into the
//! [`Batch`] that records the transition: the operation as it becomes, its history event, the
//! timers it arms or clears, the callback records, the conditions under which it may apply,
//! and whether it wakes or ends the execution. Nothing here reads or writes storage, runs a
//! guest or knows a route: callers (the engine, the scheduler, the callbacks and the
//! executions driver) read what a transition needs, call it, and commit what it returns. So
//! the rules of the operation model live in one place, are tested without a host, and the
//! backends only store what a batch says.
//!
//! Key items:
//! - [`execution`]: end an execution (succeeded, failed, stopped, timed out).
//! - [`step`]: start a step, end it (succeed, fail, or schedule a retry by its
//!   [`step::RetryPolicy`]), make a retry ready.
//! - [`wait`]: start a wait, end it when its time comes.
//! - [`callback`]: start a callback, complete or fail it from outside, heartbeat it, time it
//!   out.
//! - [`context`]: start a child context, end it with its result or error.
//! - [`invoke`]: start a chained invoke (its end and timeout are a callback's).
//!
//! **Boundary:** depends only on `journal`, `ids` and the `store` batch and record types, so
//! that it can move into a core crate with them.

pub mod callback;
pub mod context;
pub mod execution;
pub mod invoke;
pub mod step;
pub mod wait;

use crate::journal::{Details, Event, EventType, Millis, Operation, Status};
use crate::store::{Batch, Condition, Timer};

/// The part every timer's transition shares: it applies only while the execution runs and the
/// timer is due at `now` (so a timer fires once, and a timer a heartbeat moved does not fire
/// early), and it consumes the timer.
fn timer_fired(timer: &Timer, now: Millis) -> Batch {
    Batch {
        conditions: vec![
            Condition::ExecutionRunning,
            Condition::TimerDue {
                op_id: timer.op_id.clone(),
                kind: timer.kind,
                now,
            },
        ],
        clear_timers: vec![(timer.op_id.clone(), timer.kind)],
        ..Batch::default()
    }
}

/// The condition of a transition that is allowed only from `status`: a racing transition of the
/// same operation (a completion and a timeout, a duplicate delivery) then has one winner.
fn only_from(op: &Operation, status: Status) -> Condition {
    Condition::OperationStatus {
        op_id: op.id.clone(),
        status,
    }
}

/// An operation as it becomes, with the event that records it.
fn recorded(op: Operation, event: EventType, details: Details, now: Millis) -> Batch {
    Batch {
        events: vec![Event::operation(event, &op, now, details)],
        operations: vec![op],
        ..Batch::default()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Operations and records the transitions' tests start from.

    use crate::ids::{CallbackId, ExecutionId, TenantId};
    use crate::journal::{Millis, Operation, OperationType, Status, SubType};
    use crate::store::{CallbackRecord, Timer, TimerKind};

    pub fn execution() -> ExecutionId {
        ExecutionId::from_raw("ex_1")
    }

    pub fn op(op_type: OperationType, sub_type: SubType, start: Millis) -> Operation {
        Operation::new("op_1".into(), None, "a".into(), op_type, sub_type, start)
    }

    pub fn timer(kind: TimerKind, fire_at: Millis) -> Timer {
        Timer {
            fire_at,
            execution_id: execution(),
            op_id: "op_1".into(),
            kind,
        }
    }

    pub fn callback(heartbeat_timeout_ms: Option<u64>) -> CallbackRecord {
        CallbackRecord {
            id: CallbackId::from_raw("cb_1"),
            tenant: TenantId::from_raw("t_1"),
            execution_id: execution(),
            op_id: "op_1".into(),
            name: "a".into(),
            status: Status::Started,
            heartbeat_timeout_ms,
            agent: None,
        }
    }
}

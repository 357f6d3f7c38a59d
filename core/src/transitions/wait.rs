//! Waits: start one with its `WaitEnd` timer, and end it when the timer fires.

use super::{only_from, recorded, timer_fired};
use crate::ids::ExecutionId;
use crate::journal::{Details, EventType, Millis, Operation, Status};
use crate::store::{Batch, Timer, TimerKind};

/// Starts the new wait `op` of `execution` for `duration_ms` from its start.
pub fn start(execution: &ExecutionId, mut op: Operation, duration_ms: u64, now: Millis) -> Batch {
    let end = op.start_ts + duration_ms as Millis;
    op.scheduled_end_ts = Some(end);
    let details = Details::WaitStarted {
        duration_seconds: duration_ms / 1000,
        scheduled_end: end,
    };
    let timer = Timer {
        fire_at: end,
        execution_id: execution.clone(),
        op_id: op.id.clone(),
        kind: TimerKind::WaitEnd,
    };
    let mut batch = recorded(op, EventType::WaitStarted, details, now);
    batch.set_timers.push(timer);
    batch
}

/// Ends the STARTED wait `op` when its `timer` fires, and wakes the execution.
pub fn end(timer: &Timer, mut op: Operation, now: Millis) -> Batch {
    let mut batch = timer_fired(timer, now);
    batch.conditions.push(only_from(&op, Status::Started));
    op.status = Status::Succeeded;
    op.end_ts = Some(now);
    op.result = Some("null".into());
    let seconds = (op.scheduled_end_ts.unwrap_or(now) - op.start_ts) / 1000;
    batch.append(recorded(
        op,
        EventType::WaitSucceeded,
        Details::WaitEnded {
            duration_seconds: seconds,
        },
        now,
    ));
    batch.wake = true;
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{OperationType, SubType};
    use crate::store::Condition;
    use crate::transitions::fixtures;

    fn wait() -> Operation {
        fixtures::op(OperationType::Wait, SubType::Wait, 1_000)
    }

    #[test]
    fn a_wait_arms_its_timer_at_its_scheduled_end() {
        let batch = start(&fixtures::execution(), wait(), 5_000, 1_000);
        let op = &batch.operations[0];
        assert_eq!(op.scheduled_end_ts, Some(6_000));
        assert_eq!(op.status, Status::Started);
        let event = &batch.events[0];
        assert_eq!(event.event_type, EventType::WaitStarted);
        assert_eq!(
            event.details,
            Details::WaitStarted {
                duration_seconds: 5,
                scheduled_end: 6_000
            }
        );
        assert_eq!(
            batch.set_timers,
            vec![fixtures::timer(TimerKind::WaitEnd, 6_000)]
        );
        assert!(batch.conditions.is_empty() && !batch.wake);
    }

    #[test]
    fn a_due_wait_succeeds_once_and_wakes() {
        let mut op = wait();
        op.scheduled_end_ts = Some(6_000);
        let timer = fixtures::timer(TimerKind::WaitEnd, 6_000);
        let batch = end(&timer, op, 6_010);
        let op = &batch.operations[0];
        assert_eq!(op.status, Status::Succeeded);
        assert_eq!(
            (op.end_ts, op.result.as_deref()),
            (Some(6_010), Some("null"))
        );
        assert_eq!(batch.events[0].event_type, EventType::WaitSucceeded);
        assert_eq!(
            batch.events[0].details,
            Details::WaitEnded {
                duration_seconds: 5
            }
        );
        assert!(batch.wake);
        assert!(matches!(
            batch.conditions.as_slice(),
            [
                Condition::ExecutionRunning,
                Condition::TimerDue { now: 6_010, .. },
                Condition::OperationStatus {
                    status: Status::Started,
                    ..
                }
            ]
        ));
        assert_eq!(
            batch.clear_timers,
            vec![("op_1".into(), TimerKind::WaitEnd)]
        );
    }
}

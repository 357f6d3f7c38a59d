//! Chained invokes: an operation that starts another workflow as a child execution and waits
//! for its end.
//!
//! A chained invoke is kept as a callback whose record names the child to start (see
//! [`crate::journal::Invoke`]), so it shares the callback's machinery: its timeout timer, one
//! winner between the child's end and the timeout, and the wake-up of the parent. Only the
//! child's end closes it (never the callback API), with
//! [`callback::complete`](super::callback::complete); its events are the `ChainedInvoke*`
//! ones, chosen by the operation's type.

use super::recorded;
use crate::journal::{Details, ErrorRecord, EventType, Invoke, Millis, Operation, Preview, Status};
use crate::store::{Batch, CallbackRecord, Timer, TimerKind};

/// The version a function name asks for, as the history shows it: the qualifier after the
/// last `:` of a name or ARN that carries one, else `$LATEST`.
pub fn executed_version(function: &str) -> String {
    let parts: Vec<&str> = function.split(':').collect();
    let qualifier = match parts.as_slice() {
        [_, qualifier] => Some(*qualifier),
        [_, "function", _, qualifier] => Some(*qualifier),
        ["arn", _, "lambda", _, _, "function", _, qualifier] => Some(*qualifier),
        _ => None,
    };
    qualifier.unwrap_or("$LATEST").to_string()
}

/// Starts the chained invoke `op`: its record (naming the child to start), its event, and a
/// timeout timer when it has a timeout.
pub fn start(invoke: &Invoke, mut op: Operation, timeout_ms: Option<u64>, now: Millis) -> Batch {
    op.callback_id = Some(invoke.callback_id.to_string());
    let details = Details::ChainedInvokeStarted {
        function_name: invoke.function.clone(),
        executed_version: executed_version(&invoke.function),
        input: Preview::of(&invoke.input),
        tenant_id: invoke.tenant_id.clone(),
        child_id: invoke.child.to_string(),
        child_name: invoke.callback_id.to_string(),
    };
    let record = CallbackRecord {
        id: invoke.callback_id.clone(),
        tenant: invoke.tenant.clone(),
        execution_id: invoke.parent.clone(),
        op_id: op.id.clone(),
        name: op.name.clone(),
        status: Status::Started,
        heartbeat_timeout_ms: None,
        agent: Some(invoke.stored()),
    };
    let timers = timeout_ms
        .map(|after| Timer {
            fire_at: op.start_ts + after as Millis,
            execution_id: record.execution_id.clone(),
            op_id: op.id.clone(),
            kind: TimerKind::CallbackTimeout,
        })
        .into_iter()
        .collect();
    let mut batch = recorded(op, EventType::ChainedInvokeStarted, details, now);
    batch.set_timers = timers;
    batch.callbacks.push(record);
    batch
}

/// The error of a chained invoke whose timeout (counted from its start) passed.
pub fn timeout_error(op: &Operation, fire_at: Millis) -> ErrorRecord {
    let seconds = (fire_at - op.start_ts).max(0) / 1000;
    ErrorRecord::new(
        "ChainedInvoke.Timeout",
        format!("CHAINED_INVOKE timed out after {seconds} seconds."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CallbackId, ExecutionId, TenantId};
    use crate::journal::{OperationType, SubType, Task};
    use crate::store::Condition;
    use crate::transitions::callback::{self, Closing};
    use crate::transitions::fixtures;

    fn invoke() -> Invoke {
        Invoke {
            callback_id: CallbackId::from_raw("cb_1"),
            tenant: TenantId::from_raw("t_1"),
            parent: fixtures::execution(),
            function: "echo:3".into(),
            tenant_id: None,
            child: ExecutionId::from_raw("ex_child"),
            input: "\"hi\"".into(),
        }
    }

    fn invoke_op() -> Operation {
        fixtures::op(OperationType::ChainedInvoke, SubType::ChainedInvoke, 1_000)
    }

    #[test]
    fn the_executed_version_is_the_qualifier_or_latest() {
        assert_eq!(executed_version("echo"), "$LATEST");
        assert_eq!(executed_version("echo:7"), "7");
        assert_eq!(executed_version("123456789012:function:echo"), "$LATEST");
        assert_eq!(
            executed_version("123456789012:function:echo:$LATEST"),
            "$LATEST"
        );
        assert_eq!(
            executed_version("arn:aws:lambda:us-east-1:123456789012:function:echo:4"),
            "4"
        );
        assert_eq!(
            executed_version("arn:aws:lambda:us-east-1:123456789012:function:echo"),
            "$LATEST"
        );
    }

    #[test]
    fn a_start_records_the_invoke_its_child_and_its_timeout() {
        let batch = start(&invoke(), invoke_op(), Some(30_000), 1_000);
        assert_eq!(batch.operations[0].callback_id.as_deref(), Some("cb_1"));
        assert_eq!(batch.events[0].event_type, EventType::ChainedInvokeStarted);
        assert_eq!(
            batch.events[0].details,
            Details::ChainedInvokeStarted {
                function_name: "echo:3".into(),
                executed_version: "3".into(),
                input: Preview::of("\"hi\""),
                tenant_id: None,
                child_id: "ex_child".into(),
                child_name: "cb_1".into(),
            }
        );
        assert_eq!(
            batch.set_timers,
            vec![fixtures::timer(TimerKind::CallbackTimeout, 31_000)]
        );
        // The record names the child, so that only its end closes the invoke.
        let record = &batch.callbacks[0];
        assert!(Task::is_invoke(record));
        assert_eq!(Task::of(record), Some(Task::Invoke(invoke())));

        let without = start(&invoke(), invoke_op(), None, 1_000);
        assert!(without.set_timers.is_empty());
    }

    #[test]
    fn its_end_and_timeout_are_chained_invoke_events() {
        let record = start(&invoke(), invoke_op(), Some(30_000), 1_000).callbacks[0].clone();
        for (closing, event, status) in [
            (
                Closing::Succeeded("1".into()),
                EventType::ChainedInvokeSucceeded,
                Status::Succeeded,
            ),
            (
                Closing::Failed(ErrorRecord::new("E", "m")),
                EventType::ChainedInvokeFailed,
                Status::Failed,
            ),
            (
                Closing::Stopped(ErrorRecord::new("Execution.Stopped", "m")),
                EventType::ChainedInvokeStopped,
                Status::Stopped,
            ),
        ] {
            let batch = callback::complete(&record, invoke_op(), closing, 5_000);
            assert_eq!(batch.events[0].event_type, event);
            assert_eq!(batch.operations[0].status, status);
            assert!(batch.wake);
        }
        let timer = fixtures::timer(TimerKind::CallbackTimeout, 31_000);
        let batch = callback::time_out(&timer, &record, invoke_op(), 31_000);
        assert!(matches!(
            batch.conditions[1],
            Condition::TimerDue { now: 31_000, .. }
        ));
        assert_eq!(batch.events[0].event_type, EventType::ChainedInvokeTimedOut);
        assert_eq!(
            batch.operations[0].error,
            Some(ErrorRecord::new(
                "ChainedInvoke.Timeout",
                "CHAINED_INVOKE timed out after 30 seconds."
            ))
        );
    }

    #[test]
    fn agent_records_stay_agent_tasks() {
        let mut record = fixtures::callback(None);
        assert_eq!(Task::of(&record), None);
        record.agent = Some(("researcher".into(), "{}".into()));
        assert!(!Task::is_invoke(&record));
        assert!(matches!(Task::of(&record), Some(Task::Agent(d)) if d.agent == "researcher"));
    }
}

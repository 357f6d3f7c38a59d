//! Child contexts (run-in-child-context, parallel and its branches, map and its iterations,
//! wait-for-callback): start one, end it with the guest's result or error.
//!
//! A context has no timers and no rules beyond its status: it is STARTED when the guest enters
//! it and ends once, SUCCEEDED or FAILED, when the guest leaves it. Its operations (steps,
//! waits, callbacks, nested contexts) record their own transitions.

use super::recorded;
use crate::journal::{Details, ErrorRecord, EventType, Millis, Operation, Preview, Status};
use crate::store::Batch;

/// Starts the new context `op`.
pub fn start(mut op: Operation, now: Millis) -> Batch {
    op.status = Status::Started;
    recorded(op, EventType::ContextStarted, Details::Empty, now)
}

/// Ends the open context `op` with `outcome`: its JSON result, or the error it failed with.
pub fn end(mut op: Operation, outcome: Result<String, ErrorRecord>, now: Millis) -> Batch {
    op.end_ts = Some(now);
    match outcome {
        Ok(payload) => {
            op.status = Status::Succeeded;
            let details = Details::Succeeded {
                result: Preview::of(&payload),
                attempt: None,
            };
            op.result = Some(payload);
            recorded(op, EventType::ContextSucceeded, details, now)
        }
        Err(error) => {
            op.status = Status::Failed;
            let details = Details::Failed {
                error: error.clone(),
                attempt: None,
            };
            op.error = Some(error);
            recorded(op, EventType::ContextFailed, details, now)
        }
    }
}

/// Ends the open context `op` with a result too large to keep (`payload`, over the payload
/// limit): the context succeeds with no result, marked `replay_children`, and its event carries
/// only a preview of the result. A later replay runs the context's body again over its recorded
/// children to rebuild the result, as AWS does for a child context's result over 256 KiB.
pub fn end_replaying_children(mut op: Operation, payload: &str, now: Millis) -> Batch {
    op.end_ts = Some(now);
    op.status = Status::Succeeded;
    op.result = None;
    op.replay_children = true;
    let details = Details::Succeeded {
        result: Preview::of(payload),
        attempt: None,
    };
    recorded(op, EventType::ContextSucceeded, details, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{OperationType, SubType};
    use crate::transitions::fixtures;

    fn context(sub_type: SubType) -> Operation {
        fixtures::op(OperationType::Context, sub_type, 10)
    }

    #[test]
    fn a_start_records_the_context_with_empty_details() {
        for sub_type in [
            SubType::RunInChildContext,
            SubType::Parallel,
            SubType::ParallelBranch,
            SubType::Map,
            SubType::MapIteration,
            SubType::WaitForCallback,
        ] {
            let batch = start(context(sub_type), 20);
            let op = &batch.operations[0];
            assert_eq!(
                (op.status, op.sub_type, op.end_ts),
                (Status::Started, sub_type, None)
            );
            let event = &batch.events[0];
            assert_eq!(event.event_type, EventType::ContextStarted);
            assert_eq!((event.timestamp, event.sub_type), (20, Some(sub_type)));
            assert_eq!(event.details, Details::Empty);
            assert!(batch.conditions.is_empty() && batch.set_timers.is_empty() && !batch.wake);
        }
    }

    #[test]
    fn a_success_records_the_result() {
        let batch = end(context(SubType::Map), Ok(r#"[1,2]"#.into()), 30);
        let op = &batch.operations[0];
        assert_eq!(op.status, Status::Succeeded);
        assert_eq!((op.end_ts, op.result.as_deref()), (Some(30), Some("[1,2]")));
        assert!(op.error.is_none());
        let event = &batch.events[0];
        assert_eq!(event.event_type, EventType::ContextSucceeded);
        assert_eq!(
            event.details,
            Details::Succeeded {
                result: Preview::of("[1,2]"),
                attempt: None
            }
        );
        assert!(batch.set_timers.is_empty() && batch.callbacks.is_empty() && !batch.wake);
    }

    #[test]
    fn a_failure_records_the_error() {
        let error = ErrorRecord::new("Branch.Failed", "no");
        let batch = end(context(SubType::ParallelBranch), Err(error.clone()), 30);
        let op = &batch.operations[0];
        assert_eq!((op.status, op.end_ts), (Status::Failed, Some(30)));
        assert_eq!(
            (op.error.as_ref(), op.result.as_ref()),
            (Some(&error), None)
        );
        let event = &batch.events[0];
        assert_eq!(event.event_type, EventType::ContextFailed);
        assert_eq!(
            event.details,
            Details::Failed {
                error,
                attempt: None
            }
        );
    }

    #[test]
    fn a_result_too_large_to_keep_is_replayed_from_the_children() {
        let large = format!("\"{}\"", "x".repeat(300 * 1024));
        let batch = end_replaying_children(context(SubType::Map), &large, 30);
        let op = &batch.operations[0];
        assert_eq!(
            (
                op.status,
                op.result.as_deref(),
                op.replay_children,
                op.end_ts
            ),
            (Status::Succeeded, None, true, Some(30))
        );
        let event = &batch.events[0];
        assert_eq!(event.event_type, EventType::ContextSucceeded);
        match &event.details {
            Details::Succeeded { result, attempt } => {
                assert!(result.truncated && large.starts_with(&result.text));
                assert_eq!(*attempt, None);
            }
            other => panic!("unexpected details {other:?}"),
        }
        // The mark survives the store's encoding, and an operation without it reads as before.
        let stored = serde_json::to_string(op).unwrap();
        assert!(stored.contains("\"replay_children\":true"));
        assert_eq!(serde_json::from_str::<Operation>(&stored).unwrap(), *op);
        let plain = end(context(SubType::Map), Ok("1".into()), 30).operations[0].clone();
        assert!(
            !serde_json::to_string(&plain)
                .unwrap()
                .contains("replay_children")
        );
    }
}

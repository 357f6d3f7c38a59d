//! Steps: start one, end it (succeed, fail, or schedule a retry), make a retry ready.
//!
//! A step's attempt count is the number of finished attempts: ending one adds one. A failure
//! that its [`RetryPolicy`] retries makes the step PENDING until its retry timer fires
//! ([`ready`]); a final failure or a success ends it. Every ending event records the
//! [`Attempt`] that ended and the delay before the next one (the history's `RetryDetails`).

use super::{only_from, recorded, timer_fired};
use crate::ids::ExecutionId;
use crate::journal::{
    Attempt, Details, ErrorRecord, EventType, Millis, Operation, Preview, Status,
};
use crate::store::{Batch, Timer, TimerKind};

/// Longest delay between two attempts (the model's 366 days).
pub const MAX_RETRY_DELAY_MS: u64 = 366 * 24 * 3600 * 1000;

/// How a failed step is retried: the host's copy of the guest's `retry-policy` (the engine
/// converts it), so that the rule does not depend on the wasmtime bindings.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_delay_ms: u64,
    /// Upper bound on any delay (0: none but the model's).
    pub max_delay_ms: u64,
    /// Each delay is the previous one times this factor.
    pub backoff_rate: f64,
    /// Draw each delay between half of it and all of it.
    pub jitter: bool,
    /// Error types that are retried; empty retries every one.
    pub retry_on: Vec<String>,
}

/// The delay before the next attempt after `finished_attempts`, or `None` when the failure
/// (of type `error_type`) is final.
pub fn retry_delay_ms(
    policy: &RetryPolicy,
    finished_attempts: u32,
    error_type: &str,
) -> Option<u64> {
    if finished_attempts >= policy.max_attempts {
        return None;
    }
    if !policy.retry_on.is_empty() && !policy.retry_on.iter().any(|t| t == error_type) {
        return None;
    }
    let rate = if policy.backoff_rate.is_finite() && policy.backoff_rate >= 1.0 {
        policy.backoff_rate
    } else {
        1.0
    };
    let exp = finished_attempts.saturating_sub(1).min(64) as i32;
    let raw = policy.initial_delay_ms as f64 * rate.powi(exp);
    let cap = if policy.max_delay_ms == 0 {
        MAX_RETRY_DELAY_MS
    } else {
        policy.max_delay_ms.min(MAX_RETRY_DELAY_MS)
    };
    let delay = raw.min(cap as f64) as u64;
    // Jitter spreads the retries of steps that failed together (one outage); it is the only
    // input here not given by the caller, and it never leaves the half-to-full range.
    Some(if policy.jitter && delay > 1 {
        use rand::RngExt;
        rand::rng().random_range(delay / 2..=delay)
    } else {
        delay
    })
}

/// Starts an attempt of `op` (new, or READY for a retry).
pub fn start(mut op: Operation, now: Millis) -> Batch {
    op.status = Status::Started;
    op.next_attempt_ts = None;
    recorded(op, EventType::StepStarted, Details::Empty, now)
}

/// What ending an attempt decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Ended {
    /// The step succeeded or failed for good; here is its final operation.
    Done(Box<Operation>),
    /// A retry is due at this time.
    RetryAt(Millis),
}

/// Ends the running attempt of `op` of `execution` with `outcome` (a JSON result, or a failure
/// that `policy` may retry). A retried step becomes PENDING with a `StepRetry` timer.
pub fn end(
    execution: &ExecutionId,
    mut op: Operation,
    outcome: Result<String, ErrorRecord>,
    policy: Option<&RetryPolicy>,
    now: Millis,
) -> (Batch, Ended) {
    op.attempt += 1;
    let error = match outcome {
        Ok(payload) => {
            op.status = Status::Succeeded;
            op.end_ts = Some(now);
            let details = Details::Succeeded {
                result: Preview::of(&payload),
                attempt: Some(Attempt {
                    number: op.attempt,
                    next_delay_ms: None,
                }),
            };
            op.result = Some(payload);
            return (
                recorded(op.clone(), EventType::StepSucceeded, details, now),
                Ended::Done(Box::new(op)),
            );
        }
        Err(error) => error,
    };
    let delay = policy.and_then(|p| retry_delay_ms(p, op.attempt, &error.error_type));
    let details = Details::Failed {
        error: error.clone(),
        attempt: Some(Attempt {
            number: op.attempt,
            next_delay_ms: delay,
        }),
    };
    op.error = Some(error);
    match delay {
        Some(delay) => {
            let due = now + delay as Millis;
            op.status = Status::Pending;
            op.next_attempt_ts = Some(due);
            let timer = Timer {
                fire_at: due,
                execution_id: execution.clone(),
                op_id: op.id.clone(),
                kind: TimerKind::StepRetry,
            };
            let mut batch = recorded(op, EventType::StepFailed, details, now);
            batch.set_timers.push(timer);
            (batch, Ended::RetryAt(due))
        }
        None => {
            op.status = Status::Failed;
            op.end_ts = Some(now);
            (
                recorded(op.clone(), EventType::StepFailed, details, now),
                Ended::Done(Box::new(op)),
            )
        }
    }
}

/// Fails for good an at-most-once step found STARTED on replay: its body may have run before
/// a crash, and at-most-once forbids running it again.
pub fn interrupted(execution: &ExecutionId, op: Operation, now: Millis) -> (Batch, Operation) {
    let error = ErrorRecord::new(
        "Step.Interrupted",
        format!("step {:?} was interrupted and is at-most-once", op.name),
    );
    match end(execution, op, Err(error), None, now) {
        (batch, Ended::Done(op)) => (batch, *op),
        (_, Ended::RetryAt(_)) => unreachable!("no policy, no retry"),
    }
}

/// Makes a PENDING step READY when its retry `timer` fires (no event), and wakes the execution
/// to run the attempt.
pub fn ready(timer: &Timer, mut op: Operation, now: Millis) -> Batch {
    let mut batch = timer_fired(timer, now);
    batch.conditions.push(only_from(&op, Status::Pending));
    op.status = Status::Ready;
    batch.operations.push(op);
    batch.wake = true;
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{OperationType, SubType};
    use crate::store::Condition;
    use crate::transitions::fixtures;

    fn policy(max: u32, initial: u64, rate: f64, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            max_attempts: max,
            initial_delay_ms: initial,
            max_delay_ms: 10_000,
            backoff_rate: rate,
            jitter,
            retry_on: vec![],
        }
    }

    fn step() -> Operation {
        fixtures::op(OperationType::Step, SubType::Step, 10)
    }

    fn attempt(number: u32, next_delay_ms: Option<u64>) -> Attempt {
        Attempt {
            number,
            next_delay_ms,
        }
    }

    #[test]
    fn exponential_backoff_grows_and_is_capped() {
        let p = policy(10, 1000, 2.0, false);
        assert_eq!(retry_delay_ms(&p, 1, "E"), Some(1000));
        assert_eq!(retry_delay_ms(&p, 2, "E"), Some(2000));
        assert_eq!(retry_delay_ms(&p, 3, "E"), Some(4000));
        assert_eq!(retry_delay_ms(&p, 6, "E"), Some(10_000));
        assert_eq!(retry_delay_ms(&p, 10, "E"), None);
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let p = policy(10, 1000, 1.0, true);
        for _ in 0..100 {
            let d = retry_delay_ms(&p, 1, "E").unwrap();
            assert!((500..=1000).contains(&d), "{d}");
        }
    }

    #[test]
    fn only_listed_errors_retry() {
        let mut p = policy(3, 10, 1.0, false);
        p.retry_on = vec!["Net.Timeout".into()];
        assert_eq!(retry_delay_ms(&p, 1, "Net.Timeout"), Some(10));
        assert_eq!(retry_delay_ms(&p, 1, "Bad.Input"), None);
    }

    #[test]
    fn a_start_records_the_attempt_and_forgets_the_retry_time() {
        let mut op = step();
        op.status = Status::Ready;
        op.next_attempt_ts = Some(5);
        let batch = start(op, 20);
        assert_eq!(batch.operations[0].status, Status::Started);
        assert_eq!(batch.operations[0].next_attempt_ts, None);
        assert_eq!(batch.events[0].event_type, EventType::StepStarted);
        assert_eq!(batch.events[0].details, Details::Empty);
        assert!(batch.conditions.is_empty() && batch.set_timers.is_empty());
    }

    #[test]
    fn a_success_ends_the_step_and_counts_the_attempt() {
        let (batch, ended) = end(&fixtures::execution(), step(), Ok("7".into()), None, 30);
        let Ended::Done(op) = ended else {
            panic!("{ended:?}")
        };
        assert_eq!((op.status, op.attempt), (Status::Succeeded, 1));
        assert_eq!((op.end_ts, op.result.as_deref()), (Some(30), Some("7")));
        assert_eq!(batch.operations, vec![*op]);
        let event = &batch.events[0];
        assert_eq!(event.event_type, EventType::StepSucceeded);
        assert_eq!(
            event.details,
            Details::Succeeded {
                result: Preview::of("7"),
                attempt: Some(attempt(1, None)),
            }
        );
    }

    #[test]
    fn a_retried_failure_is_pending_with_a_timer() {
        let p = policy(3, 1000, 2.0, false);
        let mut op = step();
        op.attempt = 1;
        let error = ErrorRecord::new("E", "m");
        let (batch, ended) = end(&fixtures::execution(), op, Err(error), Some(&p), 50);
        assert_eq!(ended, Ended::RetryAt(2050));
        let op = &batch.operations[0];
        assert_eq!((op.status, op.attempt), (Status::Pending, 2));
        assert_eq!((op.next_attempt_ts, op.end_ts), (Some(2050), None));
        assert_eq!(op.error.as_ref().unwrap().error_type, "E");
        assert_eq!(batch.events[0].event_type, EventType::StepFailed);
        assert_eq!(
            batch.events[0].details,
            Details::Failed {
                error: ErrorRecord::new("E", "m"),
                attempt: Some(attempt(2, Some(2000))),
            }
        );
        assert_eq!(
            batch.set_timers,
            vec![Timer {
                fire_at: 2050,
                execution_id: fixtures::execution(),
                op_id: "op_1".into(),
                kind: TimerKind::StepRetry,
            }]
        );
    }

    #[test]
    fn a_failure_past_the_policy_is_final() {
        let p = policy(2, 1000, 2.0, false);
        let mut op = step();
        op.attempt = 1;
        let (batch, ended) = end(
            &fixtures::execution(),
            op,
            Err(ErrorRecord::new("E", "m")),
            Some(&p),
            50,
        );
        let Ended::Done(op) = ended else {
            panic!("{ended:?}")
        };
        assert_eq!(
            (op.status, op.attempt, op.end_ts),
            (Status::Failed, 2, Some(50))
        );
        assert!(batch.set_timers.is_empty());
        assert_eq!(
            batch.events[0].details,
            Details::Failed {
                error: ErrorRecord::new("E", "m"),
                attempt: Some(attempt(2, None)),
            }
        );
    }

    #[test]
    fn an_interrupted_at_most_once_step_fails_without_retry() {
        let (batch, op) = interrupted(&fixtures::execution(), step(), 9);
        assert_eq!((op.status, op.attempt), (Status::Failed, 1));
        assert_eq!(op.error.as_ref().unwrap().error_type, "Step.Interrupted");
        assert!(batch.set_timers.is_empty());
        assert_eq!(batch.events[0].event_type, EventType::StepFailed);
    }

    #[test]
    fn a_due_retry_makes_a_pending_step_ready_and_wakes() {
        let mut op = step();
        op.status = Status::Pending;
        let timer = fixtures::timer(TimerKind::StepRetry, 100);
        let batch = ready(&timer, op, 100);
        assert_eq!(batch.operations[0].status, Status::Ready);
        assert!(batch.events.is_empty());
        assert!(batch.wake);
        assert!(matches!(
            batch.conditions.as_slice(),
            [
                Condition::ExecutionRunning,
                Condition::TimerDue { .. },
                Condition::OperationStatus {
                    status: Status::Pending,
                    ..
                }
            ]
        ));
        assert_eq!(
            batch.clear_timers,
            vec![("op_1".into(), TimerKind::StepRetry)]
        );
    }
}

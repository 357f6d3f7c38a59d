//! Steps: start one, end it (succeed, fail, or schedule a retry), make a retry ready.
//!
//! A step's attempt count is the number of finished attempts: ending one adds one. A failure
//! that its [`RetryPolicy`] retries makes the step PENDING until its retry timer fires
//! ([`ready`]); a final failure or a success ends it. Every ending event records the
//! [`Attempt`] that ended and the delay before the next one (the history's `RetryDetails`).
//!
//! A wait-for-condition is a step too (sub-type `WaitForCondition`): each attempt runs its check
//! on the state the previous attempt left, and [`retry_with_state`] schedules the next attempt
//! with the new state as the step's result, as AWS's RETRY with a payload does.
//!
//! Delays follow AWS's retry strategies: whole seconds, at least one, drawn by the host with the
//! policy's [`Jitter`] ([`delay_ms`]), so that the guest never holds randomness a replay could
//! see differently; the delay is recorded and never drawn again.

use super::{only_from, recorded, timer_fired};
use crate::ids::ExecutionId;
use crate::journal::{
    Attempt, Details, ErrorRecord, EventType, Millis, Operation, Preview, Status,
};
use crate::store::{Batch, Timer, TimerKind};

/// Longest delay between two attempts (the model's 366 days).
pub const MAX_RETRY_DELAY_MS: u64 = 366 * 24 * 3600 * 1000;

/// How a delay is randomised, as AWS's jitter strategies: spreading the retries of steps that
/// failed together (one outage) so that they do not all come back at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Jitter {
    /// The delay as computed.
    #[default]
    None,
    /// Anywhere from nothing to the whole delay.
    Full,
    /// Anywhere from half of the delay to all of it.
    Half,
}

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
    /// How each delay is randomised.
    pub jitter: Jitter,
    /// Error types that are retried; empty retries every one.
    pub retry_on: Vec<String>,
}

/// The delay the host schedules for a computed delay of `base_ms`: jittered, then rounded up to
/// a whole second, and at least one second (as AWS's strategies do: the model's delays are whole
/// seconds). `base_ms` is at most [`MAX_RETRY_DELAY_MS`], and so is the delay.
pub fn delay_ms(base_ms: u64, jitter: Jitter) -> u64 {
    use rand::RngExt;
    let base_ms = base_ms.min(MAX_RETRY_DELAY_MS);
    let jittered = match jitter {
        Jitter::None => base_ms,
        Jitter::Full => rand::rng().random_range(0..=base_ms),
        Jitter::Half => rand::rng().random_range(base_ms / 2..=base_ms),
    };
    jittered.div_ceil(1000).max(1) * 1000
}

/// The delay before the next attempt after `finished_attempts`, or `None` when the failure
/// (of type `error_type`) is final: `initial * rate^(finished - 1)`, capped, then as
/// [`delay_ms`] makes it.
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
    Some(delay_ms(raw.min(cap as f64) as u64, policy.jitter))
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
        Some(delay) => pending(execution, op, EventType::StepFailed, details, delay, now),
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

/// Makes `op` PENDING until `now + delay`, with its `StepRetry` timer and the event that
/// records the attempt that ended.
fn pending(
    execution: &ExecutionId,
    mut op: Operation,
    event: EventType,
    details: Details,
    delay: u64,
    now: Millis,
) -> (Batch, Ended) {
    let due = now + delay as Millis;
    op.status = Status::Pending;
    op.next_attempt_ts = Some(due);
    let timer = Timer {
        fire_at: due,
        execution_id: execution.clone(),
        op_id: op.id.clone(),
        kind: TimerKind::StepRetry,
    };
    let mut batch = recorded(op, event, details, now);
    batch.set_timers.push(timer);
    (batch, Ended::RetryAt(due))
}

/// Ends the running attempt of `op` (a wait-for-condition's check) with its new `state` (JSON)
/// and schedules the next attempt `delay` ms later: AWS's RETRY with a payload. The state
/// becomes the step's result, which the next attempt starts from, and the event is a
/// `StepSucceeded` carrying it with the attempt and the delay.
pub fn retry_with_state(
    execution: &ExecutionId,
    mut op: Operation,
    state: String,
    delay: u64,
    now: Millis,
) -> (Batch, Ended) {
    op.attempt += 1;
    let details = Details::Succeeded {
        result: Preview::of(&state),
        attempt: Some(Attempt {
            number: op.attempt,
            next_delay_ms: Some(delay),
        }),
    };
    op.result = Some(state);
    pending(execution, op, EventType::StepSucceeded, details, delay, now)
}

/// Fails the attempt of an at-most-once step found STARTED on replay: its body may have run
/// before a crash, and at-most-once forbids running that attempt again. The failure,
/// `Step.Interrupted`, follows `policy` as any failed attempt does: a next attempt, or the end.
pub fn interrupted(
    execution: &ExecutionId,
    op: Operation,
    policy: Option<&RetryPolicy>,
    now: Millis,
) -> (Batch, Ended) {
    let error = ErrorRecord::new(
        "Step.Interrupted",
        format!("step {:?} was interrupted and is at-most-once", op.name),
    );
    end(execution, op, Err(error), policy, now)
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

    fn policy(max: u32, initial: u64, rate: f64, jitter: Jitter) -> RetryPolicy {
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
        let p = policy(10, 1000, 2.0, Jitter::None);
        assert_eq!(retry_delay_ms(&p, 1, "E"), Some(1000));
        assert_eq!(retry_delay_ms(&p, 2, "E"), Some(2000));
        assert_eq!(retry_delay_ms(&p, 3, "E"), Some(4000));
        assert_eq!(retry_delay_ms(&p, 6, "E"), Some(10_000));
        assert_eq!(retry_delay_ms(&p, 10, "E"), None);
    }

    #[test]
    fn full_jitter_stays_between_one_second_and_the_delay() {
        let p = policy(10, 5000, 1.0, Jitter::Full);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let d = retry_delay_ms(&p, 1, "E").unwrap();
            assert!((1000..=5000).contains(&d) && d.is_multiple_of(1000), "{d}");
            seen.insert(d);
        }
        // 500 draws over five whole seconds: every one of them comes up (the chance that one
        // does not is below 10^-40).
        assert_eq!(seen.len(), 5, "{seen:?}");
    }

    #[test]
    fn half_jitter_stays_between_half_and_the_delay() {
        let p = policy(10, 10_000, 1.0, Jitter::Half);
        for _ in 0..200 {
            let d = retry_delay_ms(&p, 1, "E").unwrap();
            assert!(
                (5000..=10_000).contains(&d) && d.is_multiple_of(1000),
                "{d}"
            );
        }
    }

    #[test]
    fn delays_are_whole_seconds_and_at_least_one() {
        assert_eq!(delay_ms(0, Jitter::None), 1000);
        assert_eq!(delay_ms(250, Jitter::None), 1000);
        assert_eq!(delay_ms(1001, Jitter::None), 2000);
        assert_eq!(delay_ms(u64::MAX, Jitter::None), MAX_RETRY_DELAY_MS);
        for _ in 0..100 {
            assert_eq!(delay_ms(400, Jitter::Full), 1000);
        }
    }

    #[test]
    fn aws_default_strategy_delays() {
        // AWS's default: 6 attempts, 5 s initial, 60 s at most, 2x, full jitter.
        let p = RetryPolicy {
            max_attempts: 6,
            initial_delay_ms: 5000,
            max_delay_ms: 60_000,
            backoff_rate: 2.0,
            jitter: Jitter::Full,
            retry_on: vec![],
        };
        for (finished, ceiling) in [
            (1, 5000),
            (2, 10_000),
            (3, 20_000),
            (4, 40_000),
            (5, 60_000),
        ] {
            for _ in 0..50 {
                let d = retry_delay_ms(&p, finished, "E").unwrap();
                assert!((1000..=ceiling).contains(&d), "attempt {finished}: {d}");
            }
        }
        assert_eq!(retry_delay_ms(&p, 6, "E"), None);
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
        let p = policy(3, 1000, 2.0, Jitter::None);
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
        let p = policy(2, 1000, 2.0, Jitter::None);
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
    fn a_retry_with_state_records_the_state_as_a_success_and_waits() {
        let mut op = fixtures::op(OperationType::Step, SubType::WaitForCondition, 10);
        op.attempt = 1;
        op.result = Some("1".into());
        let (batch, ended) = retry_with_state(&fixtures::execution(), op, "2".into(), 3000, 50);
        assert_eq!(ended, Ended::RetryAt(3050));
        let op = &batch.operations[0];
        assert_eq!((op.status, op.attempt), (Status::Pending, 2));
        assert_eq!(
            (op.result.as_deref(), op.next_attempt_ts),
            (Some("2"), Some(3050))
        );
        assert_eq!(op.end_ts, None);
        let event = &batch.events[0];
        assert_eq!(event.event_type, EventType::StepSucceeded);
        assert_eq!(event.sub_type, Some(SubType::WaitForCondition));
        assert_eq!(
            event.details,
            Details::Succeeded {
                result: Preview::of("2"),
                attempt: Some(attempt(2, Some(3000))),
            }
        );
        assert_eq!(batch.set_timers.len(), 1);
        assert_eq!(batch.set_timers[0].kind, TimerKind::StepRetry);
        assert_eq!(batch.set_timers[0].fire_at, 3050);
        // The next attempt starts from that state: a start keeps the result.
        let mut ready = batch.operations[0].clone();
        ready.status = Status::Ready;
        let started = start(ready, 4000);
        assert_eq!(started.operations[0].result.as_deref(), Some("2"));
    }

    #[test]
    fn an_interrupted_at_most_once_step_fails_without_retry() {
        let (batch, Ended::Done(op)) = interrupted(&fixtures::execution(), step(), None, 9) else {
            panic!("no policy, no retry");
        };
        assert_eq!((op.status, op.attempt), (Status::Failed, 1));
        assert_eq!(op.error.as_ref().unwrap().error_type, "Step.Interrupted");
        assert!(batch.set_timers.is_empty());
        assert_eq!(batch.events[0].event_type, EventType::StepFailed);
    }

    #[test]
    fn an_interrupted_at_most_once_step_follows_its_retry_policy() {
        let retry = policy(3, 1000, 2.0, Jitter::None);
        let (batch, ended) = interrupted(&fixtures::execution(), step(), Some(&retry), 9);
        assert!(matches!(ended, Ended::RetryAt(_)), "{ended:?}");
        let op = &batch.operations[0];
        assert_eq!((op.status, op.attempt), (Status::Pending, 1));
        assert_eq!(batch.set_timers.len(), 1);
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

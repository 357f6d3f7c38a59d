//! Wait-for-condition: poll something outside the workflow until a condition holds.
//!
//! A wait-for-condition is one durable step (sub-type `WaitForCondition`) that runs a *check*
//! once per attempt. The check gets the current state and returns a new one; a [`WaitStrategy`]
//! then looks at the new state and the attempt number and decides to stop (the condition holds:
//! the operation succeeds with that state) or to check again after a delay. Between attempts the
//! execution suspends and holds no memory: the host records the new state with the step (AWS's
//! RETRY with a payload, shown as a `StepSucceeded` with its `NextAttemptDelaySeconds`) and hands
//! it to the next attempt, in a later activation.
//!
//! A check that fails, or a strategy that gives up ([`Polling`] past its attempts fails with
//! [`Error::CONDITION_EXHAUSTED`]), fails the operation for good: a wait-for-condition has no
//! retry of its own. Delays are whole seconds, at least one; the host draws their [`Jitter`].

use std::future::Future;
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use crate::executor::ask_once;
use crate::host::{self, ConditionBegin, Recorded};
use crate::plugin::{self, OperationKind};
use crate::retry::millis;
use crate::step::{RunningStep, starts_now};
use crate::{Ctx, Error, Jitter, payload};

/// What a [`WaitStrategy`] decided about a check's new state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitDecision {
    /// The condition holds: the operation succeeds with the new state.
    Stop,
    /// Check again after `delay`, randomised by `jitter` (the host rounds the delay up to a
    /// whole second, at least one; at most 366 days).
    Continue {
        /// The delay before the next check, before jitter.
        delay: Duration,
        /// How the host randomises it.
        jitter: Jitter,
    },
}

impl WaitDecision {
    /// Check again after exactly `delay` (no jitter).
    pub fn after(delay: Duration) -> Self {
        Self::Continue {
            delay,
            jitter: Jitter::None,
        }
    }
}

/// Decides, from a check's new state and its attempt number (1 for the first), whether to stop
/// or to check again. An error fails the wait-for-condition.
///
/// Any `Fn(&S, u32) -> Result<WaitDecision, Error>` is one; [`Polling`] is the ready-made one.
/// A strategy must decide from its inputs alone (no clock, no randomness), so that a replay
/// decides the same.
pub trait WaitStrategy<S> {
    /// The decision after attempt `attempt` produced `state`.
    ///
    /// # Errors
    ///
    /// Any error, which fails the wait-for-condition (for example when attempts run out).
    fn decide(&self, state: &S, attempt: u32) -> Result<WaitDecision, Error>;
}

impl<S, F> WaitStrategy<S> for F
where
    F: Fn(&S, u32) -> Result<WaitDecision, Error>,
{
    fn decide(&self, state: &S, attempt: u32) -> Result<WaitDecision, Error> {
        self(state, attempt)
    }
}

/// The wait strategy of AWS's SDKs (`createWaitStrategy`): keep polling while
/// `should_continue` says so, at most `max_attempts` checks, with a delay that starts at
/// `initial_delay` and grows by `backoff_rate` up to `max_delay`, jittered.
///
/// The defaults are AWS's: 60 attempts, 5 s, 1.5×, at most 300 s, [`Jitter::Full`].
///
/// ```
/// use std::time::Duration;
/// use aegis_sdk::{Jitter, Polling};
///
/// let strategy = Polling::new(|done: &bool| !*done)
///     .max_attempts(10)
///     .initial_delay(Duration::from_secs(2))
///     .jitter(Jitter::Half);
/// # let _ = strategy;
/// ```
pub struct Polling<S> {
    should_continue: Box<dyn Fn(&S) -> bool>,
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    backoff_rate: f64,
    jitter: Jitter,
}

impl<S> Polling<S> {
    /// Polls while `should_continue` holds for the latest state, with AWS's defaults.
    pub fn new(should_continue: impl Fn(&S) -> bool + 'static) -> Self {
        Self {
            should_continue: Box::new(should_continue),
            max_attempts: 60,
            initial_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(300),
            backoff_rate: 1.5,
            jitter: Jitter::Full,
        }
    }

    /// Polls while `should_continue` holds, every `delay` exactly (no backoff, no jitter), at
    /// most 60 checks.
    pub fn fixed(delay: Duration, should_continue: impl Fn(&S) -> bool + 'static) -> Self {
        Self::new(should_continue)
            .initial_delay(delay)
            .max_delay(delay)
            .backoff_rate(1.0)
            .jitter(Jitter::None)
    }

    /// At most `max_attempts` checks (0 is treated as 1); a state that still says "continue"
    /// on the last one fails with [`Error::CONDITION_EXHAUSTED`].
    #[must_use]
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// The delay after the first check.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Caps every delay (before jitter).
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Multiplies each delay by `rate`; a rate below 1, NaN or infinite is treated as 1.
    #[must_use]
    pub fn backoff_rate(mut self, rate: f64) -> Self {
        self.backoff_rate = if rate.is_finite() && rate >= 1.0 {
            rate
        } else {
            1.0
        };
        self
    }

    /// How the host randomises each delay.
    #[must_use]
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }
}

impl<S> WaitStrategy<S> for Polling<S> {
    fn decide(&self, state: &S, attempt: u32) -> Result<WaitDecision, Error> {
        // A condition met on the last attempt still succeeds (as in AWS's SDKs).
        if !(self.should_continue)(state) {
            return Ok(WaitDecision::Stop);
        }
        if attempt >= self.max_attempts {
            return Err(Error::new(
                Error::CONDITION_EXHAUSTED,
                format!(
                    "wait_for_condition exhausted {} attempts before the condition was met",
                    self.max_attempts
                ),
            ));
        }
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let grown = self.initial_delay.as_secs_f64() * self.backoff_rate.powi(exp);
        let delay = Duration::try_from_secs_f64(grown)
            .unwrap_or(Duration::MAX)
            .min(self.max_delay);
        Ok(WaitDecision::Continue {
            delay,
            jitter: self.jitter,
        })
    }
}

impl Ctx {
    /// Runs `check` once per attempt, starting from `initial_state`, until `strategy` stops it,
    /// and resolves to the final state.
    ///
    /// `check` gets the state the previous attempt returned (the first attempt gets
    /// `initial_state`) and the attempt number (1 for the first), and returns the new state; it
    /// runs at most once per activation, like a step's body, and between attempts the execution
    /// suspends. The state is recorded as JSON after each attempt.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use aegis_sdk::{Ctx, Error, Polling};
    /// # async fn example(ctx: Ctx) -> Result<(), Error> {
    /// // Polls every second until a counter reaches 3.
    /// let count: u32 = ctx
    ///     .wait_for_condition(
    ///         "count",
    ///         0,
    ///         Polling::fixed(Duration::from_secs(1), |n: &u32| *n < 3),
    ///         |n, _attempt| Ok(n + 1),
    ///     )
    ///     .await?;
    /// # let _ = count;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Resolves to the check's or the strategy's error (recorded as the operation's failure), to
    /// [`Error::PAYLOAD_ENCODE`] if a state cannot be encoded, and to [`Error::PAYLOAD_DECODE`] if
    /// a recorded state does not decode into `S`.
    pub fn wait_for_condition<S, W, C>(
        &self,
        name: &str,
        initial_state: S,
        strategy: W,
        check: C,
    ) -> impl Future<Output = Result<S, Error>> + use<S, W, C>
    where
        S: Serialize + DeserializeOwned,
        W: WaitStrategy<S>,
        C: FnOnce(S, u32) -> Result<S, Error>,
    {
        let (ctx, name) = (self.clone(), name.to_owned());
        async move {
            let recorded =
                ask_once(|| run_condition(ctx.id(), &name, initial_state, &strategy, check))
                    .await?;
            payload::decode(&recorded)
        }
    }
}

/// One activation's worth of a wait-for-condition: begin, maybe run one check, report. `None`
/// means pending (the next check is scheduled, or not due yet).
fn run_condition<S, W, C>(
    ctx: &str,
    name: &str,
    initial_state: S,
    strategy: &W,
    check: C,
) -> Option<Recorded>
where
    S: Serialize + DeserializeOwned,
    W: WaitStrategy<S>,
    C: FnOnce(S, u32) -> Result<S, Error>,
{
    match host::condition_begin(ctx, name) {
        ConditionBegin::Done(recorded) => Some(recorded),
        ConditionBegin::Pending => None,
        ConditionBegin::Run {
            operation_id,
            attempt,
            state,
        } => {
            let running = plugin::Running {
                id: &operation_id,
                name,
                kind: OperationKind::WaitForCondition,
                ctx,
                attempt,
            };
            if starts_now(&running) {
                plugin::operation_started(&running);
            }
            plugin::attempt_started(&running);
            let current = match state {
                Some(recorded) => payload::decode(&recorded),
                None => Ok(initial_state),
            };
            let checked = current.and_then(|state| {
                let _running = RunningStep::enter(&operation_id);
                check(state, attempt)
            });
            plugin::attempt_ended(&running, &checked);
            let (checked, next) = settle(checked, strategy, attempt);
            let verdict = host::condition_end(&operation_id, checked, next);
            if let Some(recorded) = &verdict {
                plugin::operation_ended(&running, recorded);
            }
            verdict
        }
    }
}

/// What to report for a check's outcome: the new state (JSON) and, if the strategy continues,
/// the delay (ms) and its jitter; or the failure of the check, the strategy or the encoding.
fn settle<S: Serialize, W: WaitStrategy<S>>(
    checked: Result<S, Error>,
    strategy: &W,
    attempt: u32,
) -> (Recorded, Option<(u64, Jitter)>) {
    let decided = checked.and_then(|state| {
        let decision = strategy.decide(&state, attempt)?;
        Ok((payload::encode(&state)?, decision))
    });
    match decided {
        Ok((state, WaitDecision::Stop)) => (Ok(state), None),
        Ok((state, WaitDecision::Continue { delay, jitter })) => {
            (Ok(state), Some((millis(delay), jitter)))
        }
        Err(error) => (Err(error), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn below(n: u32) -> Polling<u32> {
        Polling::new(move |s: &u32| *s < n)
    }

    #[test]
    fn polling_stops_when_the_condition_holds() {
        assert_eq!(below(3).decide(&3, 1).unwrap(), WaitDecision::Stop);
        // Met on the last attempt: still a success.
        assert_eq!(
            below(3).max_attempts(2).decide(&5, 2).unwrap(),
            WaitDecision::Stop
        );
    }

    #[test]
    fn polling_defaults_are_aws_ones() {
        let strategy = below(100);
        assert_eq!(
            strategy.decide(&0, 1).unwrap(),
            WaitDecision::Continue {
                delay: Duration::from_secs(5),
                jitter: Jitter::Full
            }
        );
        // 5 s × 1.5^3 = 16.875 s.
        assert_eq!(
            strategy.decide(&0, 4).unwrap(),
            WaitDecision::Continue {
                delay: Duration::from_secs_f64(16.875),
                jitter: Jitter::Full
            }
        );
        // Capped at 300 s.
        assert_eq!(
            strategy.decide(&0, 40).unwrap(),
            WaitDecision::Continue {
                delay: Duration::from_secs(300),
                jitter: Jitter::Full
            }
        );
        let exhausted = strategy.decide(&0, 60).unwrap_err();
        assert!(exhausted.is(Error::CONDITION_EXHAUSTED), "{exhausted:?}");
        assert!(exhausted.message.contains("60 attempts"));
    }

    #[test]
    fn fixed_polling_waits_the_same_delay_without_jitter() {
        let strategy = Polling::fixed(Duration::from_secs(2), |s: &u32| *s < 10).max_attempts(3);
        for attempt in 1..3 {
            assert_eq!(
                strategy.decide(&0, attempt).unwrap(),
                WaitDecision::after(Duration::from_secs(2))
            );
        }
        assert!(strategy.decide(&0, 3).is_err());
        assert_eq!(
            Polling::fixed(Duration::from_secs(1), |_: &u32| true)
                .max_attempts(0)
                .decide(&0, 1)
                .unwrap_err()
                .error_type,
            Error::CONDITION_EXHAUSTED
        );
    }

    #[test]
    fn a_closure_is_a_strategy() {
        let strategy = |state: &String, attempt: u32| -> Result<WaitDecision, Error> {
            if state.len() >= 2 || attempt > 5 {
                Ok(WaitDecision::Stop)
            } else {
                Ok(WaitDecision::after(Duration::from_secs(1)))
            }
        };
        assert_eq!(
            strategy.decide(&"x".to_owned(), 1).unwrap(),
            WaitDecision::after(Duration::from_secs(1))
        );
        assert_eq!(
            strategy.decide(&"xx".to_owned(), 2).unwrap(),
            WaitDecision::Stop
        );
    }

    #[test]
    fn settle_reports_the_state_and_the_delay() {
        let strategy = Polling::fixed(Duration::from_millis(1500), |s: &u32| *s < 3);
        assert_eq!(
            settle(Ok(1), &strategy, 1),
            (Ok("1".to_owned()), Some((1500, Jitter::None)))
        );
        assert_eq!(settle(Ok(3), &strategy, 2), (Ok("3".to_owned()), None));
    }

    #[test]
    fn settle_fails_on_a_check_error_or_exhaustion() {
        let strategy = Polling::fixed(Duration::from_secs(1), |s: &u32| *s < 3).max_attempts(2);
        let (outcome, next) = settle(Err(Error::new("Check.Failed", "boom")), &strategy, 1);
        assert_eq!(outcome.unwrap_err().error_type, "Check.Failed");
        assert_eq!(next, None);
        let (outcome, next) = settle(Ok(0), &strategy, 2);
        assert!(outcome.unwrap_err().is(Error::CONDITION_EXHAUSTED));
        assert_eq!(next, None);
    }

    #[test]
    fn settle_fails_on_a_state_that_cannot_be_encoded() {
        use std::collections::HashMap;
        let state: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
        let strategy = |_: &HashMap<(u8, u8), u8>, _: u32| -> Result<WaitDecision, Error> {
            Ok(WaitDecision::Stop)
        };
        let (outcome, next) = settle(Ok(state), &strategy, 1);
        assert!(outcome.unwrap_err().is(Error::PAYLOAD_ENCODE));
        assert_eq!(next, None);
    }
}

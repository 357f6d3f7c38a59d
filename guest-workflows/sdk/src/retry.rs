//! Retry policies for steps, and the jitter that AWS's retry strategies apply.
//!
//! The guest only *describes* the policy; the host applies it. When a step body fails, the SDK
//! hands the policy to `step-end`, and the host decides whether to schedule another attempt and
//! when. Retry delays therefore never sleep inside the guest: the execution suspends and a later
//! activation runs the next attempt.
//!
//! Delays follow AWS's retry strategies: the host draws the [`Jitter`] (so no randomness lives
//! in the guest, where a replay could see it differently), then rounds each delay up to a whole
//! second, at least one. [`RetryPolicy::aws_default`] is AWS's default strategy.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::Error;
use crate::raw::aegis::workflow::types::{Jitter as WireJitter, RetryPolicy as WireRetryPolicy};

/// How the host randomises a delay, as AWS's jitter strategies do: retries of steps that failed
/// together (one outage) spread out instead of all coming back at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Jitter {
    /// The delay as computed. The default.
    #[default]
    None,
    /// Uniformly from nothing to the whole delay (then at least one second).
    Full,
    /// Uniformly from half of the delay to all of it.
    Half,
}

impl Jitter {
    pub(crate) fn to_wire(self) -> WireJitter {
        match self {
            Jitter::None => WireJitter::None,
            Jitter::Full => WireJitter::Full,
            Jitter::Half => WireJitter::Half,
        }
    }
}

/// A guest-side test of whether an error is retried (see [`RetryPolicy::retry_if`]).
type Predicate = Rc<dyn Fn(&Error) -> bool>;

/// How a failed step is retried: attempts, backoff, jitter and which errors qualify.
///
/// ```
/// use std::time::Duration;
/// use aegis_sdk::{Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::exponential(5, Duration::from_secs(1))
///     .max_delay(Duration::from_secs(30))
///     .jitter(Jitter::Full)
///     .retry_on(["Http.Unavailable", "Http.Timeout"])
///     .retry_if(|error| !error.message.contains("permanent"));
/// # let _ = policy;
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    backoff_rate: f64,
    jitter: Jitter,
    retry_on: Vec<String>,
    retry_if: Option<Predicate>,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("initial_delay", &self.initial_delay)
            .field("max_delay", &self.max_delay)
            .field("backoff_rate", &self.backoff_rate)
            .field("jitter", &self.jitter)
            .field("retry_on", &self.retry_on)
            .field("retry_if", &self.retry_if.as_ref().map(|_| "<predicate>"))
            .finish()
    }
}

/// Equal when every setting is, and both have no predicate or the same one (the same `Rc`).
impl PartialEq for RetryPolicy {
    fn eq(&self, other: &Self) -> bool {
        let same_predicate = match (&self.retry_if, &other.retry_if) {
            (None, None) => true,
            (Some(a), Some(b)) => Rc::ptr_eq(a, b),
            _ => false,
        };
        self.max_attempts == other.max_attempts
            && self.initial_delay == other.initial_delay
            && self.max_delay == other.max_delay
            && self.backoff_rate == other.backoff_rate
            && self.jitter == other.jitter
            && self.retry_on == other.retry_on
            && same_predicate
    }
}

impl RetryPolicy {
    /// The cap on delays that [`exponential`](Self::exponential) starts with.
    pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(300);

    /// Up to `max_attempts` attempts in total (the first included), waiting `initial_delay` before
    /// the second and doubling each time, capped at [`DEFAULT_MAX_DELAY`](Self::DEFAULT_MAX_DELAY)
    /// (or at `initial_delay` if that is larger). No jitter; every error is retried.
    ///
    /// `max_attempts` of 0 is treated as 1.
    pub fn exponential(max_attempts: u32, initial_delay: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            initial_delay,
            max_delay: initial_delay.max(Self::DEFAULT_MAX_DELAY),
            backoff_rate: 2.0,
            jitter: Jitter::None,
            retry_on: Vec::new(),
            retry_if: None,
        }
    }

    /// AWS's default retry strategy (the SDKs' `RetryPresets.default` / `retryPresets.default`):
    /// 6 attempts in total, 5 s before the second, doubling up to 60 s, with [`Jitter::Full`];
    /// every error is retried.
    pub fn aws_default() -> Self {
        Self::exponential(6, Duration::from_secs(5))
            .max_delay(Duration::from_secs(60))
            .jitter(Jitter::Full)
    }

    /// Up to `max_attempts` attempts in total, always waiting `delay` in between.
    ///
    /// `max_attempts` of 0 is treated as 1.
    pub fn fixed(max_attempts: u32, delay: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            initial_delay: delay,
            max_delay: delay,
            backoff_rate: 1.0,
            jitter: Jitter::None,
            retry_on: Vec::new(),
            retry_if: None,
        }
    }

    /// A single attempt: the first failure is final.
    pub fn none() -> Self {
        Self::fixed(1, Duration::ZERO)
    }

    /// Caps every delay at `max_delay`.
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Multiplies each delay by `rate`. A rate below 1, NaN or infinite is treated as 1 (a fixed
    /// backoff), so the policy sent to the host is always well-formed.
    #[must_use]
    pub fn backoff_rate(mut self, rate: f64) -> Self {
        self.backoff_rate = if rate.is_finite() && rate >= 1.0 {
            rate
        } else {
            1.0
        };
        self
    }

    /// Randomises each delay with `jitter` (the host draws it, so it is recorded like
    /// everything else).
    #[must_use]
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Retries only errors of these types; other errors fail the step at once. Without this
    /// call every error is retried.
    #[must_use]
    pub fn retry_on<I, S>(mut self, error_types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.retry_on = error_types.into_iter().map(Into::into).collect();
        self
    }

    /// Retries only errors that `predicate` accepts (on top of [`retry_on`](Self::retry_on)):
    /// the place for AWS's message patterns, or any rule on the error's type, message or data.
    /// It runs in the guest when an attempt fails, on that attempt's error, so it must decide
    /// from the error alone.
    #[must_use]
    pub fn retry_if(mut self, predicate: impl Fn(&Error) -> bool + 'static) -> Self {
        self.retry_if = Some(Rc::new(predicate));
        self
    }

    /// Whether the policy may retry `error`, as far as the guest can tell: the predicate of
    /// [`retry_if`](Self::retry_if) (the host then applies the attempts and the types).
    pub(crate) fn admits(&self, error: &Error) -> bool {
        self.retry_if.as_ref().is_none_or(|accepts| accepts(error))
    }

    /// The policy as the WIT carries it (delays in milliseconds).
    pub(crate) fn to_wire(&self) -> WireRetryPolicy {
        WireRetryPolicy {
            max_attempts: self.max_attempts,
            initial_delay_ms: millis(self.initial_delay),
            max_delay_ms: millis(self.max_delay),
            backoff_rate: self.backoff_rate,
            jitter: self.jitter.to_wire(),
            retry_on: self.retry_on.clone(),
        }
    }
}

/// Whole milliseconds, saturating at `u64::MAX` (about 584 million years).
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_defaults() {
        let wire = RetryPolicy::exponential(3, Duration::from_millis(250)).to_wire();
        assert_eq!(wire.max_attempts, 3);
        assert_eq!(wire.initial_delay_ms, 250);
        assert_eq!(wire.max_delay_ms, 300_000);
        assert!((wire.backoff_rate - 2.0).abs() < f64::EPSILON);
        assert_eq!(wire.jitter, WireJitter::None);
        assert!(wire.retry_on.is_empty());
    }

    #[test]
    fn exponential_cap_never_cuts_below_the_first_delay() {
        let wire = RetryPolicy::exponential(3, Duration::from_secs(600)).to_wire();
        assert_eq!(wire.max_delay_ms, 600_000);
    }

    #[test]
    fn builder_sets_every_field() {
        let wire = RetryPolicy::exponential(4, Duration::from_secs(1))
            .max_delay(Duration::from_secs(10))
            .backoff_rate(3.0)
            .jitter(Jitter::Half)
            .retry_on(["A.B", "C.D"])
            .to_wire();
        assert_eq!(wire.max_attempts, 4);
        assert_eq!(wire.initial_delay_ms, 1000);
        assert_eq!(wire.max_delay_ms, 10_000);
        assert!((wire.backoff_rate - 3.0).abs() < f64::EPSILON);
        assert_eq!(wire.jitter, WireJitter::Half);
        assert_eq!(wire.retry_on, vec!["A.B".to_owned(), "C.D".to_owned()]);
    }

    #[test]
    fn fixed_keeps_the_delay_constant() {
        let wire = RetryPolicy::fixed(2, Duration::from_millis(40)).to_wire();
        assert_eq!((wire.initial_delay_ms, wire.max_delay_ms), (40, 40));
        assert!((wire.backoff_rate - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn zero_attempts_means_one() {
        assert_eq!(
            RetryPolicy::fixed(0, Duration::ZERO).to_wire().max_attempts,
            1
        );
        assert_eq!(RetryPolicy::none().to_wire().max_attempts, 1);
    }

    #[test]
    fn bad_backoff_rates_become_fixed() {
        for rate in [f64::NAN, f64::INFINITY, 0.5, -2.0] {
            let wire = RetryPolicy::exponential(2, Duration::from_secs(1))
                .backoff_rate(rate)
                .to_wire();
            assert!(
                (wire.backoff_rate - 1.0).abs() < f64::EPSILON,
                "rate {rate}"
            );
        }
    }

    #[test]
    fn aws_default_is_the_sdks_default_preset() {
        let wire = RetryPolicy::aws_default().to_wire();
        assert_eq!(wire.max_attempts, 6);
        assert_eq!((wire.initial_delay_ms, wire.max_delay_ms), (5_000, 60_000));
        assert!((wire.backoff_rate - 2.0).abs() < f64::EPSILON);
        assert_eq!(wire.jitter, WireJitter::Full);
        assert!(wire.retry_on.is_empty());
    }

    #[test]
    fn every_jitter_reaches_the_wire() {
        for (jitter, wire) in [
            (Jitter::None, WireJitter::None),
            (Jitter::Full, WireJitter::Full),
            (Jitter::Half, WireJitter::Half),
        ] {
            let policy = RetryPolicy::fixed(2, Duration::from_secs(1)).jitter(jitter);
            assert_eq!(policy.to_wire().jitter, wire);
        }
        assert_eq!(Jitter::default(), Jitter::None);
    }

    #[test]
    fn the_predicate_decides_in_the_guest() {
        let policy = RetryPolicy::fixed(3, Duration::from_secs(1))
            .retry_if(|e| e.message.contains("timeout"));
        assert!(policy.admits(&Error::new("Net", "read timeout")));
        assert!(!policy.admits(&Error::new("Net", "refused")));
        assert!(RetryPolicy::none().admits(&Error::new("Any", "thing")));
    }

    #[test]
    fn policies_with_the_same_predicate_are_equal() {
        let policy = RetryPolicy::fixed(3, Duration::from_secs(1)).retry_if(|_| true);
        assert_eq!(policy.clone(), policy);
        let other = RetryPolicy::fixed(3, Duration::from_secs(1)).retry_if(|_| true);
        assert_ne!(policy, other);
        assert_ne!(policy, RetryPolicy::fixed(3, Duration::from_secs(1)));
        assert!(format!("{policy:?}").contains("<predicate>"));
    }

    #[test]
    fn huge_durations_saturate() {
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}

//! Retry policies for steps.
//!
//! The guest only *describes* the policy; the host applies it. When a step body fails, the SDK
//! hands the policy to `step-end`, and the host decides whether to schedule another attempt and
//! when. Retry delays therefore never sleep inside the guest: the execution suspends and a later
//! activation runs the next attempt.

use std::time::Duration;

use crate::raw::aegis::workflow::types::RetryPolicy as WireRetryPolicy;

/// How a failed step is retried: attempts, backoff, jitter and which errors qualify.
///
/// ```
/// use std::time::Duration;
/// use aegis_sdk::RetryPolicy;
///
/// let policy = RetryPolicy::exponential(5, Duration::from_secs(1))
///     .max_delay(Duration::from_secs(30))
///     .jitter(true)
///     .retry_on(["Http.Unavailable", "Http.Timeout"]);
/// # let _ = policy;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    backoff_rate: f64,
    jitter: bool,
    retry_on: Vec<String>,
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
            jitter: false,
            retry_on: Vec::new(),
        }
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
            jitter: false,
            retry_on: Vec::new(),
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

    /// Randomises each delay, uniformly between half of it and all of it (the host draws the
    /// randomness, so it is recorded like everything else).
    #[must_use]
    pub fn jitter(mut self, jitter: bool) -> Self {
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

    /// The policy as the WIT carries it (delays in milliseconds).
    pub(crate) fn to_wire(&self) -> WireRetryPolicy {
        WireRetryPolicy {
            max_attempts: self.max_attempts,
            initial_delay_ms: millis(self.initial_delay),
            max_delay_ms: millis(self.max_delay),
            backoff_rate: self.backoff_rate,
            jitter: self.jitter,
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
        assert!(!wire.jitter);
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
            .jitter(true)
            .retry_on(["A.B", "C.D"])
            .to_wire();
        assert_eq!(wire.max_attempts, 4);
        assert_eq!(wire.initial_delay_ms, 1000);
        assert_eq!(wire.max_delay_ms, 10_000);
        assert!((wire.backoff_rate - 3.0).abs() < f64::EPSILON);
        assert!(wire.jitter);
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
    fn huge_durations_saturate() {
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}

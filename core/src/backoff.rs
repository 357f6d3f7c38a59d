//! The one backoff policy of the host's retry loops: how long to wait after the n-th failure in
//! a row. [`Backoff`] is exponential, capped, and optionally jittered; each loop names its own
//! policy as a constant beside it (an activation whose store failed, an agent dispatch, a
//! DynamoDB transaction that lost a race, a notification a sink refused for now).
//!
//! A loop keeps its own count of failures and its own limit, because what giving up means
//! differs: an execution fails as `Aegis.ComponentUnavailable`, a dispatch as
//! `Agent.DispatchFailed`, an event is dead-lettered. The AWS SDK's own retries of each request
//! stay the SDK's (see `aws`).

use std::time::Duration;

/// Waits that grow by `factor` after each failure in a row, from `first` up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// Each later wait is this many times the one before.
    pub factor: u32,
    /// No wait is longer.
    pub max: Duration,
    /// Draw each wait from half of it to all of it (whole milliseconds), so that the many
    /// callers that one outage failed together do not all come back together.
    pub jitter: bool,
}

impl Backoff {
    /// The longest wait after the `failures`-th failure in a row (1-based; 0 counts as 1):
    /// `first * factor^(failures - 1)`, at most `max`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let growth = self.factor.saturating_pow(failures.saturating_sub(1));
        self.first.saturating_mul(growth).min(self.max)
    }

    /// The wait after the `failures`-th failure in a row: the [`Self::ceiling`], jittered if
    /// the policy says so.
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = self.ceiling(failures);
        if !self.jitter {
            return ceiling;
        }
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        use rand::RngExt;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
    }

    /// Sleeps for [`Self::delay`] of `failures`.
    pub async fn sleep(&self, failures: u32) {
        tokio::time::sleep(self.delay(failures)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_grow_by_the_factor_up_to_the_cap() {
        let b = Backoff {
            first: 500 * MS,
            factor: 2,
            max: Duration::from_secs(60),
            jitter: false,
        };
        let waits: Vec<_> = (1..=9).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]
        );
        // Failure 0 waits as failure 1; a huge count saturates instead of overflowing.
        assert_eq!(b.delay(0), 500 * MS);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn a_factor_of_four_without_a_cap() {
        let b = Backoff {
            first: Duration::from_secs(1),
            factor: 4,
            max: Duration::MAX,
            jitter: false,
        };
        let waits: Vec<_> = (1..=4).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 4, 16, 64]);
        // The growth saturates (at u32::MAX times the first wait) instead of overflowing.
        assert_eq!(b.delay(1_000), Duration::from_secs(u32::MAX.into()));
    }

    #[test]
    fn jitter_draws_from_half_the_wait_to_all_of_it() {
        let b = Backoff {
            first: 10 * MS,
            factor: 2,
            max: Duration::from_secs(1),
            jitter: true,
        };
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            let d = b.delay(3);
            assert!((20 * MS..=40 * MS).contains(&d), "{d:?}");
            seen.insert(d);
        }
        // Every whole millisecond of the range comes up, the ends included.
        assert_eq!(seen.len(), 21, "{seen:?}");
        for _ in 0..200 {
            let d = b.delay(30);
            assert!((500 * MS..=1000 * MS).contains(&d), "{d:?}");
        }
    }

    #[tokio::test]
    async fn sleep_waits_the_delay() {
        let b = Backoff {
            first: 20 * MS,
            factor: 2,
            max: Duration::MAX,
            jitter: false,
        };
        let start = std::time::Instant::now();
        b.sleep(2).await;
        assert!(start.elapsed() >= 40 * MS, "{:?}", start.elapsed());
    }
}

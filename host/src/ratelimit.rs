//! Token buckets: the tenants' request rate, and the limits per callback and per source address
//! on the routes that take no API key.
//!
//! Hand-written rather than `governor`: the arithmetic is a few lines, and what matters here is
//! that the state is bounded. A [`Keyed`] limiter keeps its buckets in an LRU of fixed capacity,
//! so a caller that cycles through random callback ids or source addresses evicts the least
//! recently seen keys instead of growing the map; an evicted key starts again with a full
//! bucket, which errs on the side of letting a real caller through.

use lru::LruCache;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: refills at `rate` per second, holds at most `burst`.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Takes one token at `now`.
    ///
    /// # Errors
    /// How long until a token is there, when the bucket is empty.
    pub fn take(&mut self, rate: u32, burst: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        let burst = f64::from(burst.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now.max(self.last);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// A rate and a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// One bucket per key, at most `capacity` keys.
pub struct Keyed<K: Hash + Eq> {
    rate: Rate,
    buckets: Mutex<LruCache<K, Bucket>>,
}

impl<K: Hash + Eq> Keyed<K> {
    pub fn new(rate: Rate, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            rate,
            buckets: Mutex::new(LruCache::new(capacity)),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes one token from `key`'s bucket.
    ///
    /// # Errors
    /// How long to wait, when the bucket is empty.
    pub fn check(&self, key: K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: K, now: Instant) -> Result<(), Duration> {
        let Rate { per_second, burst } = self.rate;
        let mut buckets = self.buckets.lock().expect("rate buckets poisoned");
        buckets
            .get_or_insert_mut(key, || Bucket::full(burst, now))
            .take(per_second, burst, now)
    }

    /// How many keys have a bucket.
    pub fn len(&self) -> usize {
        self.buckets.lock().expect("rate buckets poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::full(3, start);
        for _ in 0..3 {
            bucket.take(10, 3, start).unwrap();
        }
        let wait = bucket.take(10, 3, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // A tenth of a second later one more token is there, and only one.
        let later = start + Duration::from_millis(100);
        bucket.take(10, 3, later).unwrap();
        assert!(bucket.take(10, 3, later).is_err());
        // A long pause refills up to the burst, not beyond.
        let much_later = later + Duration::from_secs(3600);
        for _ in 0..3 {
            bucket.take(10, 3, much_later).unwrap();
        }
        assert!(bucket.take(10, 3, much_later).is_err());
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let limiter = Keyed::new(
            Rate {
                per_second: 1,
                burst: 2,
            },
            100,
        );
        let now = Instant::now();
        assert!(limiter.check_at("a", now).is_ok());
        assert!(limiter.check_at("a", now).is_ok());
        assert!(limiter.check_at("a", now).is_err());
        assert!(limiter.check_at("b", now).is_ok());
    }

    #[test]
    fn the_keyed_state_is_bounded() {
        let limiter = Keyed::new(
            Rate {
                per_second: 1,
                burst: 1,
            },
            1_000,
        );
        let now = Instant::now();
        for i in 0..100_000u32 {
            let _ = limiter.check_at(i, now);
        }
        assert_eq!(limiter.len(), 1_000);
        // The most recent keys are the ones kept: their buckets are still empty.
        assert!(limiter.check_at(99_999, now).is_err());
    }
}

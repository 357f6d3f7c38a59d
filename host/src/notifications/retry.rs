//! What becomes of an event a sink did not take: when it is offered again ([`RetryPolicy`]),
//! and the dead letter it ends as. Its own file so that the policy reads apart from the loop
//! that applies it (`delivery`).

use super::sink::SinkError;
use crate::journal::{Millis, now_ms};
use crate::store::{DeadLetter, WorkflowEvent};
use serde_json::Value;
use std::time::Duration;

/// What a sink's words may add to a dead letter.
const MAX_ERROR_CHARS: usize = 1024;

/// How an event that failed retriably is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; the last failure dead-letters the event.
    pub max_attempts: u32,
    /// The wait after the first failure; each later wait is four times the one before.
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`-th failure (1-based). No jitter: one host delivers, one
    /// event at a time, so there is no crowd to spread.
    pub(super) fn backoff(&self, failures: u32) -> Duration {
        crate::backoff::Backoff {
            first: self.first_backoff,
            factor: 4,
            max: Duration::MAX,
            jitter: false,
        }
        .delay(failures)
    }
}

/// An event set aside after a retriable failure.
#[derive(Clone, Debug)]
pub(super) struct Retry {
    pub(super) failures: u32,
    /// When it may be offered again.
    pub(super) due: Millis,
}

/// The dead letter of `event`, offered as `body`, after `error`.
pub(super) fn dead_letter(
    event: &WorkflowEvent,
    body: &Value,
    error: &SinkError,
    attempts: u32,
) -> DeadLetter {
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    DeadLetter {
        event: WorkflowEvent {
            data: data.to_string(),
            ..event.clone()
        },
        sink: error.sink.to_string(),
        attempts,
        last_error: error.message.chars().take(MAX_ERROR_CHARS).collect(),
        dead_at: now_ms(),
    }
}

//! One delivery pass of the outbox relay: claim the outbox role, offer undelivered events in
//! order to every sink, and record what each did (delivered, set aside for a retry, or
//! dead-lettered). Its own file because the ordering and retry rules of the module doc live
//! here, apart from the loop that calls it (`notifier`).

use super::notifier::{BATCH, Notifier};
use super::retry::{Retry, dead_letter};
use super::sink::{Failure, SinkError};
use super::{OUTBOX_ROLE, to_json, webhook};
use crate::ids::ExecutionId;
use crate::journal::{Millis, now_ms};
use crate::store::{Leasing, WorkflowEvent};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

/// Retriable failures in a row that end a delivery pass (the sink is struggling).
const FAILURES_PER_PASS: u32 = 3;
/// Pages of the outbox read in one pass, at most: a pass behind many waiting events stays short.
const PAGES_PER_PASS: usize = 8;

/// What this host's claim on the outbox role allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outbox {
    /// Another host holds the role.
    NotHeld,
    /// Held without a break since the last claim.
    Held,
    /// Held now, but it had lapsed: another host may have delivered in between.
    Taken,
}

impl Notifier {
    /// Offers undelivered events in order, if this host holds the outbox role: records what
    /// was taken, dead-letters what was refused for good, and sets aside what failed retriably
    /// (see the module doc). Ends at an unreachable sink, or after a few retriable failures in
    /// a row; the next tick carries on.
    pub(super) async fn deliver(&self) {
        let Some(mut page) = self.read(self.store.undelivered_events(0, BATCH)).await else {
            return;
        };
        if page.is_empty() {
            return;
        }
        match self.claim_outbox().await {
            Outbox::NotHeld => {
                // Another host delivers; its view of retries is its own.
                self.lock_retries().clear();
                return;
            }
            Outbox::Held => {}
            // The previous holder may have delivered some of these since they were read.
            Outbox::Taken => match self.read(self.store.undelivered_events(0, BATCH)).await {
                Some(fresh) => page = fresh,
                None => return,
            },
        }
        // Executions with an earlier event set aside: their later events wait, in order.
        let mut held_back: HashSet<ExecutionId> = HashSet::new();
        let mut failures_in_a_row = 0;
        let mut offered = false;
        for _ in 0..PAGES_PER_PASS {
            let mut delivered = Vec::new();
            let mut dead = Vec::new();
            let mut stop = false;
            for event in &page {
                if held_back.contains(&event.execution_id) {
                    continue;
                }
                let waiting = self.lock_retries().get(&event.seq).cloned();
                if waiting.as_ref().is_some_and(|r| r.due > now_ms()) {
                    held_back.insert(event.execution_id.clone());
                    continue;
                }
                // Renewed as it runs low, so that no other host takes the role over mid-pass
                // and posts what this one has posted but not yet marked.
                if offered && self.claim_outbox().await != Outbox::Held {
                    stop = true;
                    break;
                }
                offered = true;
                let (body, outcome) = self.deliver_one(event).await;
                let Err(error) = outcome else {
                    self.lock_retries().remove(&event.seq);
                    failures_in_a_row = 0;
                    delivered.push(event.seq);
                    continue;
                };
                let failures = waiting.map_or(0, |r| r.failures) + 1;
                match error.failure {
                    Failure::Unreachable => {
                        tracing::warn!(seq = event.seq, sink = error.sink, error = %error.message, "event sink unreachable; will retry");
                        stop = true;
                        break;
                    }
                    Failure::Retriable if failures < self.retry.max_attempts => {
                        let wait = self.retry.backoff(failures);
                        tracing::warn!(seq = event.seq, sink = error.sink, failures, error = %error.message, retry_in = ?wait, "event sink failed; will retry");
                        self.lock_retries().insert(
                            event.seq,
                            Retry {
                                failures,
                                due: now_ms() + wait.as_millis() as Millis,
                            },
                        );
                        held_back.insert(event.execution_id.clone());
                        failures_in_a_row += 1;
                        if failures_in_a_row >= FAILURES_PER_PASS {
                            stop = true;
                            break;
                        }
                    }
                    Failure::Retriable | Failure::Permanent => {
                        tracing::warn!(seq = event.seq, sink = error.sink, attempts = failures, error = %error.message, "event refused for good; dead-lettered");
                        self.lock_retries().remove(&event.seq);
                        dead.push(dead_letter(event, &body, &error, failures));
                    }
                }
            }
            if !dead.is_empty() && self.read(self.store.dead_letter(&dead)).await.is_none() {
                // Not stored: offered again (and refused again) on a later pass.
                stop = true;
            }
            if !delivered.is_empty() {
                self.read(self.store.mark_delivered(&delivered)).await;
            }
            if stop || page.len() < BATCH {
                return;
            }
            let after = page.last().map_or(0, |e| e.seq);
            match self.read(self.store.undelivered_events(after, BATCH)).await {
                Some(next) if !next.is_empty() => page = next,
                _ => return,
            }
        }
    }

    pub(super) fn lock_retries(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Retry>> {
        self.retries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This host's claim on the outbox role: kept while at least half of it is left, renewed
    /// when less is left.
    pub(super) async fn claim_outbox(&self) -> Outbox {
        let now = now_ms();
        let half = (self.leasing.ttl_ms / 2) as Millis;
        let held_until = self.held_until.load(Ordering::Relaxed);
        if held_until > now + half {
            return Outbox::Held;
        }
        let Leasing { host_id, ttl_ms } = &self.leasing;
        let ttl_ms = *ttl_ms;
        let held = self
            .read(self.store.claim_role(OUTBOX_ROLE, host_id, now, ttl_ms))
            .await
            .unwrap_or(false);
        self.held_until.store(
            if held { now + ttl_ms as Millis } else { 0 },
            Ordering::Relaxed,
        );
        match (held, held_until > now) {
            (false, _) => Outbox::NotHeld,
            (true, true) => Outbox::Held,
            (true, false) => Outbox::Taken,
        }
    }

    /// Sends one event to every configured sink. Returns the event as offered (bounded) and
    /// the first refusal.
    async fn deliver_one(&self, event: &WorkflowEvent) -> (Value, Result<(), SinkError>) {
        let body = to_json(event);
        if let Some(hook) = &self.webhook
            && let Err(e) = webhook::post(&self.client, hook, event, &body).await
        {
            return (body, Err(e));
        }
        if let Some(sinks) = &self.sinks
            && let Err(e) = sinks.deliver(event).await
        {
            return (body, Err(e));
        }
        (body, Ok(()))
    }
}

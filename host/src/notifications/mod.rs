//! Workflow events after they are committed: the live event stream and the webhook.
//!
//! Events are written to the store in the same commit as the operation that published them (an
//! outbox), so none is lost in a crash and none is published twice by a replay. This module
//! reads them back: it broadcasts each new event to stream subscribers (SSE), and posts each one
//! to the configured webhook.
//!
//! A webhook request carries the event as JSON with `X-Aegis-Event` (the kind),
//! `X-Aegis-Delivery` (the event's sequence number, stable across retries) and
//! `X-Aegis-Signature: sha256=<hex HMAC-SHA256 of the body, keyed by the webhook secret>`.
//!
//! Beside the webhook, two optional AWS sinks ([`aws::AwsSinks`], `[notifications]` in the
//! configuration): `approval.requested` events go to an SNS topic, and workflow events go to an
//! EventBridge bus. An event counts as delivered only when every configured sink accepted it.
//! Delivery is therefore at least once: a sink that accepted an event may see it again when
//! another sink refused it, so consumers dedupe on the event's `seq`.
//!
//! # Size
//!
//! An event as delivered (the JSON of [`to_json`]: envelope, kind and data) is at most
//! [`MAX_EVENT_BYTES`]: well under EventBridge's 256 KB entry and what webhooks commonly take.
//! Guests' `publish` data is capped when published; the host's own events carry error messages,
//! which may be long, so [`to_json`] shortens the longest strings of an oversized event's data,
//! marking each cut, and every surface (webhook, SNS, EventBridge, API, SSE) sees the same
//! bounded event.
//!
//! # Refusals, retries and dead letters
//!
//! Events are offered in seq order, but one event a sink will not take never holds back the
//! others (of any tenant): it is set aside, and the events behind it go on.
//! - A *permanent* refusal (HTTP 4xx other than 408/429, a redirect, an SNS or EventBridge
//!   error that says the entry is invalid or too large) dead-letters the event at once.
//! - A *retriable* failure (HTTP 5xx, 408, 429, a timeout, a throttled or failing AWS call) is
//!   retried with exponential backoff ([`RetryPolicy`]: 1 s, 4 s, 16 s, 64 s); the fifth failure
//!   dead-letters the event. Meanwhile the later events *of the same execution* wait, so that an
//!   execution's events still arrive in order; other executions' events go on. Three retriable
//!   failures in a row end the pass: the sink is struggling, and is not hammered.
//! - A sink that cannot be reached at all (no connection) is an outage, not a refusal: nothing
//!   is charged to the event, and delivery stops until the next tick, as before. An outage of
//!   the webhook therefore never dead-letters events by itself.
//!
//! A dead letter ([`crate::store::DeadLetter`]) keeps the event as offered, the sink, the
//! attempts and the sink's last words; `GET /v1/events/dead-letters` lists a tenant's. Attempts
//! are counted in the memory of the host delivering: a restart, or the outbox role moving to
//! another host, starts an event's count again (it stays bounded per holder).
//!
//! Hosts that share a store share its outbox. Only the holder of the store's `outbox` role
//! ([`Store::claim_role`], renewed while it delivers, lasting the lease TTL) posts, so each event
//! goes out once for the fleet, not once per host, and in order; when the holder dies, another
//! host takes the role once its claim expires. Every host still streams every event to its own
//! SSE subscribers.

pub mod aws;
mod delivery;
mod event;
mod notifier;
mod retry;
mod sink;
mod webhook;

pub use event::{MAX_EVENT_BYTES, bound_event, to_json};
pub use notifier::{Notifier, OUTBOX_ROLE};
pub use retry::RetryPolicy;
pub use sink::{Failure, SinkError, classify_status};
pub use webhook::{Webhook, signature};

#[cfg(test)]
mod tests;

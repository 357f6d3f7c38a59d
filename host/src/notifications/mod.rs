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

use crate::ids::ExecutionId;
use crate::ids::TenantId;
use crate::journal::{Millis, format_ts, now_ms};
use crate::store::{DeadLetter, Leasing, WorkflowEvent};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

/// The largest event as delivered: its JSON (envelope, kind and data), in bytes.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// What a sink's words may add to a dead letter.
const MAX_ERROR_CHARS: usize = 1024;
/// Retriable failures in a row that end a delivery pass (the sink is struggling).
const FAILURES_PER_PASS: u32 = 3;
/// Pages of the outbox read in one pass, at most: a pass behind many waiting events stays short.
const PAGES_PER_PASS: usize = 8;
/// How long connecting to the webhook may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one webhook request may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
    fn backoff(&self, failures: u32) -> Duration {
        crate::backoff::Backoff {
            first: self.first_backoff,
            factor: 4,
            max: Duration::MAX,
            jitter: false,
        }
        .delay(failures)
    }
}

/// How a sink failed to take an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: the sink is down, whichever event is offered.
    Unreachable,
    /// The sink may take the event later (5xx, 408, 429, timeouts, throttling).
    Retriable,
    /// The sink refused this event and will refuse it again (4xx, an invalid or oversized
    /// entry).
    Permanent,
}

/// A sink's refusal of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkError {
    /// `webhook`, `sns` or `eventbridge`.
    pub sink: &'static str,
    pub failure: Failure,
    pub message: String,
}

impl SinkError {
    pub fn new(sink: &'static str, failure: Failure, message: impl Into<String>) -> Self {
        Self {
            sink,
            failure,
            message: message.into(),
        }
    }
}

/// How an HTTP answer of a sink counts: 2xx taken; 408, 429 and 5xx worth a retry; anything
/// else (other 4xx, a redirect, which is never followed) refused for good.
pub fn classify_status(status: reqwest::StatusCode) -> Option<Failure> {
    if status.is_success() {
        None
    } else if status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        Some(Failure::Retriable)
    } else {
        Some(Failure::Permanent)
    }
}

/// An event set aside after a retriable failure.
#[derive(Clone, Debug)]
struct Retry {
    failures: u32,
    /// When it may be offered again.
    due: Millis,
}

/// Where events are posted.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    pub secret: String,
}

/// How often the outbox is checked without a kick (picks up retries).
const TICK: Duration = Duration::from_secs(1);
const BATCH: usize = 256;
/// The store role whose holder delivers the outbox.
pub const OUTBOX_ROLE: &str = "outbox";

pub struct Notifier {
    store: Arc<dyn crate::store::Outbox>,
    webhook: Option<Webhook>,
    sinks: Option<aws::AwsSinks>,
    client: reqwest::Client,
    retry: RetryPolicy,
    /// Events waiting for a retry, by seq (only the delivering task touches it).
    retries: Mutex<HashMap<u64, Retry>>,
    kick: Notify,
    stream: broadcast::Sender<WorkflowEvent>,
    /// This host's name and claim length, as for execution leases.
    leasing: Leasing,
    /// Until when this host's claim on the outbox role lasts (0: not held).
    held_until: AtomicI64,
}

/// What this host's claim on the outbox role allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outbox {
    /// Another host holds the role.
    NotHeld,
    /// Held without a break since the last claim.
    Held,
    /// Held now, but it had lapsed: another host may have delivered in between.
    Taken,
}

/// The JSON shape of an event, on the stream, in the API and in webhook bodies; at most
/// [`MAX_EVENT_BYTES`] as JSON (see [`bound_event`]).
pub fn to_json(event: &WorkflowEvent) -> Value {
    let body = EventBody {
        created_at: format_ts(event.created_at),
        data: serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null),
        execution_id: &event.execution_id,
        kind: &event.kind,
        seq: event.seq,
        tenant_id: &event.tenant,
    };
    let mut value = serde_json::to_value(body).expect("an event body serializes");
    bound_event(&mut value, MAX_EVENT_BYTES);
    value
}

/// An event as subscribers receive it. Fields are in alphabetical order, the order the JSON
/// map this replaced wrote, so the bodies' bytes (which webhooks sign) did not change.
#[derive(serde::Serialize)]
struct EventBody<'a> {
    created_at: String,
    data: Value,
    execution_id: &'a ExecutionId,
    kind: &'a str,
    seq: u64,
    tenant_id: &'a TenantId,
}

fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// The longest string in `value` (object keys aside).
fn longest_string(value: &mut Value) -> Option<&mut String> {
    match value {
        Value::String(s) => Some(s),
        Value::Array(items) => items
            .iter_mut()
            .filter_map(longest_string)
            .max_by_key(|s| s.len()),
        Value::Object(map) => map
            .values_mut()
            .filter_map(longest_string)
            .max_by_key(|s| s.len()),
        _ => None,
    }
}

/// Shortens an event's `data` until the event's JSON is at most `limit` bytes: the longest
/// string is cut (on a character boundary) and ends with `…[truncated N bytes]`, again while
/// the event is too large. Data with no string long enough to help (a huge array of numbers)
/// is replaced by `{"truncated": true, "original_bytes": N}`. Why here and not where events are
/// made: the host's own `execution.*` events carry error messages of any length, and one
/// oversized event must not be refused by every sink.
pub fn bound_event(event: &mut Value, limit: usize) {
    if json_len(event) <= limit {
        return;
    }
    let Some(slot) = event.get_mut("data") else {
        return;
    };
    let mut data = slot.take();
    let original = json_len(&data);
    // The envelope with `null` data; the data's JSON takes the place of those 4 bytes.
    let envelope = json_len(event).saturating_sub(4);
    let budget = limit.saturating_sub(envelope);
    let marker_room = "…[truncated 18446744073709551615 bytes]".len();
    let mut size = original;
    // Each cut takes about the excess off the JSON (a string whose escaping is uneven may need
    // another round); the bound is a guard.
    for _ in 0..32 {
        if size <= budget {
            break;
        }
        let excess = size - budget;
        let Some(longest) = longest_string(&mut data) else {
            break;
        };
        // JSON escaping makes a string's JSON longer than its bytes (up to 6 to 1): keep the
        // share of its bytes that its JSON may keep.
        let escaped = serde_json::to_vec(longest.as_str()).map_or(usize::MAX, |v| v.len());
        let want = excess + marker_room;
        if escaped <= want + 16 {
            break;
        }
        let mut keep =
            (longest.len() as u128 * (escaped - want) as u128 / escaped as u128) as usize;
        while !longest.is_char_boundary(keep) {
            keep -= 1;
        }
        let dropped = longest.len() - keep;
        longest.truncate(keep);
        longest.push_str(&format!("…[truncated {dropped} bytes]"));
        size = json_len(&data);
    }
    if size > budget {
        data = json!({"truncated": true, "original_bytes": original});
    }
    event["data"] = data;
}

/// `sha256=<hex>` of the body, keyed by `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Notifier {
    /// Delivers to the webhook and the configured SNS/EventBridge sinks, claiming the outbox
    /// as the host `leasing` names.
    pub fn new(
        store: Arc<dyn crate::store::Outbox>,
        webhook: Option<Webhook>,
        sinks: Option<aws::AwsSinks>,
        leasing: Leasing,
    ) -> Arc<Self> {
        Self::with_retry(store, webhook, sinks, leasing, RetryPolicy::default())
    }

    /// As [`Notifier::new`], retrying as `retry` says.
    pub fn with_retry(
        store: Arc<dyn crate::store::Outbox>,
        webhook: Option<Webhook>,
        sinks: Option<aws::AwsSinks>,
        leasing: Leasing,
        retry: RetryPolicy,
    ) -> Arc<Self> {
        // No redirects: a webhook that answers 3xx is refused, never followed to a host it
        // names (which could be anywhere, the loopback included). Timeouts bound a slow sink.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("http client builds");
        Arc::new(Self {
            store,
            webhook,
            sinks,
            client,
            retry,
            retries: Mutex::new(HashMap::new()),
            kick: Notify::new(),
            stream: broadcast::channel(4096).0,
            leasing,
            held_until: AtomicI64::new(0),
        })
    }

    /// Says new events may have been committed.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Events committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<WorkflowEvent> {
        self.stream.subscribe()
    }

    /// Broadcasts and delivers events until the process ends.
    pub async fn run(self: Arc<Self>) {
        let mut last = self.latest_seq().await;
        loop {
            tokio::select! {
                _ = self.kick.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
            last = self.broadcast_after(last).await;
            self.deliver().await;
        }
    }

    /// The outcome of a store call, or `None` (logged) when it failed: the loop carries on at
    /// the next tick.
    async fn read<T>(
        &self,
        call: impl std::future::Future<Output = crate::store::Result<T>>,
    ) -> Option<T> {
        match call.await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "event outbox: store read failed");
                None
            }
        }
    }

    /// Published events after `after`, oldest first: of one tenant, and of one execution when
    /// given.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn events(
        &self,
        tenant: &TenantId,
        execution: Option<&ExecutionId>,
        after: u64,
        limit: usize,
    ) -> crate::store::Result<Vec<WorkflowEvent>> {
        self.store
            .workflow_events(Some(tenant), execution, after, limit)
            .await
    }

    /// Dead letters after `after`, oldest first: of one tenant, or of every tenant.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        after: u64,
        limit: usize,
    ) -> crate::store::Result<Vec<DeadLetter>> {
        self.store.dead_letters(tenant, after, limit).await
    }

    async fn latest_seq(&self) -> u64 {
        let mut last = 0;
        while let Some(events) = self
            .read(self.store.workflow_events(None, None, last, BATCH))
            .await
        {
            match events.last() {
                Some(e) => last = e.seq,
                None => break,
            }
        }
        last
    }

    async fn broadcast_after(&self, mut last: u64) -> u64 {
        loop {
            let after = last;
            let Some(events) = self
                .read(self.store.workflow_events(None, None, after, BATCH))
                .await
            else {
                return last;
            };
            for event in &events {
                last = event.seq;
                let _ = self.stream.send(event.clone());
            }
            if events.len() < BATCH {
                return last;
            }
        }
    }

    /// Offers undelivered events in order, if this host holds the outbox role: records what
    /// was taken, dead-letters what was refused for good, and sets aside what failed retriably
    /// (see the module doc). Ends at an unreachable sink, or after a few retriable failures in
    /// a row; the next tick carries on.
    async fn deliver(&self) {
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

    fn lock_retries(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Retry>> {
        self.retries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This host's claim on the outbox role: kept while at least half of it is left, renewed
    /// when less is left.
    async fn claim_outbox(&self) -> Outbox {
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
            && let Err(e) = self.post_webhook(hook, event, &body).await
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

    async fn post_webhook(
        &self,
        hook: &Webhook,
        event: &WorkflowEvent,
        body: &Value,
    ) -> Result<(), SinkError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let sent = self
            .client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-aegis-event", &event.kind)
            .header("x-aegis-delivery", event.seq.to_string())
            .header("x-aegis-signature", signature(&hook.secret, &bytes))
            .body(bytes)
            .send()
            .await;
        // The answer's body is never read: dropping the response closes it, whatever its size.
        match sent {
            Ok(resp) => match classify_status(resp.status()) {
                None => Ok(()),
                Some(failure) => {
                    let mut message = format!("HTTP {}", resp.status());
                    if resp.status().is_redirection() {
                        message.push_str(" (a redirect; redirects are not followed)");
                    }
                    Err(SinkError::new("webhook", failure, message))
                }
            },
            Err(e) if e.is_connect() => Err(SinkError::new(
                "webhook",
                Failure::Unreachable,
                error_chain(&e),
            )),
            Err(e) => Err(SinkError::new(
                "webhook",
                Failure::Retriable,
                error_chain(&e),
            )),
        }
    }
}

/// An error with its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// The dead letter of `event`, offered as `body`, after `error`.
fn dead_letter(
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

#[cfg(test)]
mod tests;

//! Workflow events after they are committed: the live event stream and the webhook.
//!
//! Events are written to the store in the same commit as the operation that published them (an
//! outbox), so none is lost in a crash and none is published twice by a replay. This module
//! reads them back: it broadcasts each new event to stream subscribers (SSE), and posts each one
//! to the configured webhook, in order, until the webhook accepts it.
//!
//! A webhook request carries the event as JSON with `X-Aegis-Event` (the kind),
//! `X-Aegis-Delivery` (the event's sequence number, stable across retries) and
//! `X-Aegis-Signature: sha256=<hex HMAC-SHA256 of the body, keyed by the webhook secret>`.
//!
//! Beside the webhook, two optional AWS sinks ([`aws::AwsSinks`], `[notifications]` in the
//! configuration): `approval.requested` events go to an SNS topic, and workflow events go to an
//! EventBridge bus. An event counts as delivered only when every configured sink accepted it;
//! until then it is retried in order, like the webhook. Delivery is therefore at least once: a
//! sink that accepted an event may see it again when another sink refused it, so consumers
//! dedupe on the event's `seq`.
//!
//! Hosts that share a store share its outbox. Only the holder of the store's `outbox` role
//! ([`Store::claim_role`], renewed while it delivers, lasting the lease TTL) posts, so each event
//! goes out once for the fleet, not once per host, and in order; when the holder dies, another
//! host takes the role once its claim expires. Every host still streams every event to its own
//! SSE subscribers.

pub mod aws;

use crate::journal::{Millis, format_ts, now_ms};
use crate::store::{Leasing, Store, WorkflowEvent};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

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
    store: Arc<dyn Store>,
    webhook: Option<Webhook>,
    sinks: Option<aws::AwsSinks>,
    client: reqwest::Client,
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

/// The JSON shape of an event, on the stream, in the API and in webhook bodies.
pub fn to_json(event: &WorkflowEvent) -> Value {
    json!({
        "seq": event.seq,
        "kind": event.kind,
        "tenant_id": event.tenant,
        "execution_id": event.execution_id,
        "data": serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null),
        "created_at": format_ts(event.created_at),
    })
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
        store: Arc<dyn Store>,
        webhook: Option<Webhook>,
        sinks: Option<aws::AwsSinks>,
        leasing: Leasing,
    ) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client builds");
        Arc::new(Self {
            store,
            webhook,
            sinks,
            client,
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

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> crate::store::Result<T> + Send + 'static,
    ) -> Option<T> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "event outbox: store read failed");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "event outbox: task failed");
                None
            }
        }
    }

    async fn latest_seq(&self) -> u64 {
        let mut last = 0;
        while let Some(events) = self
            .read(move |s| s.workflow_events(None, None, last, BATCH))
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
                .read(move |s| s.workflow_events(None, None, after, BATCH))
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

    /// Posts undelivered events in order, if this host holds the outbox role; stops at the
    /// first refusal and retries on a later tick.
    async fn deliver(&self) {
        let Some(mut events) = self.read(|s| s.undelivered_events(BATCH)).await else {
            return;
        };
        if events.is_empty() {
            return;
        }
        match self.claim_outbox().await {
            Outbox::NotHeld => return,
            Outbox::Held => {}
            // The previous holder may have delivered some of these since they were read.
            Outbox::Taken => match self.read(|s| s.undelivered_events(BATCH)).await {
                Some(fresh) => events = fresh,
                None => return,
            },
        }
        let mut delivered = Vec::new();
        for event in &events {
            // Renewed as it runs low, so that no other host takes the role over mid-batch and
            // posts what this one has posted but not yet marked.
            if (!delivered.is_empty() && self.claim_outbox().await != Outbox::Held)
                || !self.deliver_one(event).await
            {
                break;
            }
            delivered.push(event.seq);
        }
        if !delivered.is_empty() {
            self.read(move |s| s.mark_delivered(&delivered)).await;
        }
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
        let Leasing { host_id, ttl_ms } = self.leasing.clone();
        let held = self
            .read(move |s| s.claim_role(OUTBOX_ROLE, &host_id, now, ttl_ms))
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

    /// Sends one event to every configured sink; false (logged) when one refused it.
    async fn deliver_one(&self, event: &WorkflowEvent) -> bool {
        if let Some(hook) = &self.webhook {
            let body = serde_json::to_vec(&to_json(event)).unwrap_or_default();
            let sent = self
                .client
                .post(&hook.url)
                .header("content-type", "application/json")
                .header("x-aegis-event", &event.kind)
                .header("x-aegis-delivery", event.seq.to_string())
                .header("x-aegis-signature", signature(&hook.secret, &body))
                .body(body)
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {}
                Ok(resp) => {
                    tracing::warn!(seq = event.seq, status = %resp.status(), "webhook refused an event; will retry");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(seq = event.seq, error = %e, "webhook unreachable; will retry");
                    return false;
                }
            }
        }
        if let Some(sinks) = &self.sinks
            && let Err(e) = sinks.deliver(event).await
        {
            tracing::warn!(seq = event.seq, error = %e, "event sink refused an event; will retry");
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::{Notifier, OUTBOX_ROLE, Outbox};
    use crate::journal::now_ms;
    use crate::store::{Leasing, Store, sqlite::SqliteStore};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn the_outbox_claim_says_when_it_lapsed_and_another_host_may_have_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("aegis.db")).unwrap());
        let ttl_ms = 1_000;
        let leasing = Leasing {
            host_id: "a".into(),
            ttl_ms,
        };
        let notifier = Notifier::new(store.clone(), None, None, leasing);
        // Nothing held before: the first claim takes the role.
        assert_eq!(notifier.claim_outbox().await, Outbox::Taken);
        assert_eq!(notifier.claim_outbox().await, Outbox::Held);
        assert!(
            !store
                .claim_role(OUTBOX_ROLE, "b", now_ms(), ttl_ms)
                .unwrap()
        );

        // Lapsed, and host b took it: host a may not deliver.
        tokio::time::sleep(Duration::from_millis(ttl_ms + 100)).await;
        assert!(
            store
                .claim_role(OUTBOX_ROLE, "b", now_ms(), ttl_ms)
                .unwrap()
        );
        assert_eq!(notifier.claim_outbox().await, Outbox::NotHeld);

        // Lapsed again: host a takes it back, told that b may have delivered meanwhile.
        tokio::time::sleep(Duration::from_millis(ttl_ms + 100)).await;
        assert_eq!(notifier.claim_outbox().await, Outbox::Taken);
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

//! The [`Notifier`]: what the rest of the host holds of this module. It owns the state the
//! delivery loop shares, runs that loop (a tick or a kick, then broadcast and deliver), streams
//! new events to subscribers, and reads events and dead letters for the API. How one pass
//! delivers is `delivery`'s.

use super::retry::{Retry, RetryPolicy};
use super::{Webhook, aws, webhook};
use crate::ids::{ExecutionId, TenantId};
use crate::store::{DeadLetter, Leasing, WorkflowEvent};
use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

/// How often the outbox is checked without a kick (picks up retries).
const TICK: Duration = Duration::from_secs(1);
pub(super) const BATCH: usize = 256;
/// The store role whose holder delivers the outbox.
pub const OUTBOX_ROLE: &str = "outbox";

/// Reads committed events back from the outbox: streams them to subscribers, and (as the
/// holder of the outbox role) delivers them to the sinks.
pub struct Notifier {
    pub(super) store: Arc<dyn crate::store::Outbox>,
    pub(super) webhook: Option<Webhook>,
    pub(super) sinks: Option<aws::AwsSinks>,
    pub(super) client: reqwest::Client,
    pub(super) retry: RetryPolicy,
    /// Events waiting for a retry, by seq (only the delivering task touches it).
    pub(super) retries: Mutex<HashMap<u64, Retry>>,
    pub(super) kick: Notify,
    pub(super) stream: broadcast::Sender<WorkflowEvent>,
    /// This host's name and claim length, as for execution leases.
    pub(super) leasing: Leasing,
    /// Until when this host's claim on the outbox role lasts (0: not held).
    pub(super) held_until: AtomicI64,
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
        let client = webhook::client();
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
    pub(super) async fn read<T>(
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
}

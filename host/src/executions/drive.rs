//! Wake-ups and the drive loop: one activation per execution at a time, under the execution's
//! lease (claimed, renewed while the guest runs and agent tasks are sent, given back with the
//! last commit), with a wake-up during an activation running it again after; and sending the
//! agent tasks an activation recorded.

use super::{BACKOFF, Next, Outcome, Runtime};
use crate::ids::{ExecutionId, TenantId};
use crate::journal::{Dispatch, Task, now_ms};
use crate::store::{self, Claim, Condition};
use std::sync::Arc;
use std::time::Duration;

impl Runtime {
    /// Makes sure the execution gets an activation soon.
    pub fn wake(self: &Arc<Self>, id: ExecutionId) {
        {
            let mut running = self.running.lock().expect("running set poisoned");
            if let Some(again) = running.get_mut(&id) {
                *again = true;
                return;
            }
            running.insert(id.clone(), false);
        }
        let this = self.clone();
        tokio::spawn(async move { this.drive(id).await });
    }

    /// Wakes `id` unless it already has an activation in flight here (the sweep uses this, so
    /// that finding an execution it is running anyway does not run it twice).
    pub fn wake_if_idle(self: &Arc<Self>, id: ExecutionId) {
        if !self
            .running
            .lock()
            .expect("running set poisoned")
            .contains_key(&id)
        {
            self.wake(id);
        }
    }

    async fn drive(self: Arc<Self>, id: ExecutionId) {
        let mut failures = 0u32;
        let mut tenant = None;
        loop {
            // The slot queue is per tenant: learn the execution's tenant once.
            let owner = match &tenant {
                Some(owner) => Some(owner),
                None => match self.tenant_of(&id).await {
                    Ok(found) => {
                        tenant = found;
                        tenant.as_ref()
                    }
                    Err(e) => {
                        tracing::warn!(execution = %id, error = %e, "cannot read the execution; trying again");
                        failures += 1;
                        BACKOFF.sleep(failures).await;
                        continue;
                    }
                },
            };
            let next = match owner {
                Some(owner) => self.turn(&id, owner, failures).await,
                None => Next::Done,
            };
            match next {
                Next::RetryIn(delay) => {
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Next::Backoff => {
                    failures += 1;
                    BACKOFF.sleep(failures).await;
                    continue;
                }
                Next::Done => failures = 0,
            }
            let mut running = self.running.lock().expect("running set poisoned");
            match running.get_mut(&id) {
                Some(again) if *again => *again = false,
                _ => {
                    running.remove(&id);
                    return;
                }
            }
        }
    }

    /// The tenant of execution `id`, or `None` when there is no such execution.
    async fn tenant_of(self: &Arc<Self>, id: &ExecutionId) -> Result<Option<TenantId>, String> {
        self.journal
            .execution(id)
            .await
            .map(|record| record.map(|r| r.tenant))
            .map_err(|e| e.to_string())
    }

    /// One turn: claim the lease, run one activation under it, send its agent tasks, give the
    /// lease back. `failures` counts the turns in a row that the infrastructure failed.
    async fn turn(self: &Arc<Self>, id: &ExecutionId, tenant: &TenantId, failures: u32) -> Next {
        // A slot first, then the lease: a lease is not held (nor left to expire) while the
        // execution queues for an instance.
        let cap = self.tenancy.quotas(tenant).await.max_activation_slots as usize;
        let permit = self.slots.acquire(tenant, cap).await;
        let claim = self
            .journal
            .acquire_lease(id, &self.leasing.host_id, now_ms(), self.leasing.ttl_ms)
            .await;
        let (lease, taken_over) = match claim {
            Ok(Claim::Acquired { lease, taken_over }) => (lease, taken_over),
            Ok(Claim::Idle) => return Next::Done,
            Ok(Claim::Busy { owner, until }) => {
                // Its holder is working on it (and will not see a wake-up recorded here) or
                // died: ask again soon, and at the latest when the lease runs out.
                tracing::debug!(execution = %id, %owner, "lease held elsewhere; waiting");
                let left = (until - now_ms()).max(0) as u64;
                return Next::RetryIn(Duration::from_millis(left.clamp(50, 500)));
            }
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "cannot claim the lease");
                return Next::Backoff;
            }
        };
        if taken_over {
            tracing::info!(execution = %id, token = lease.token, "took over an execution whose lease had expired");
        }
        let renewer = tokio::spawn(self.clone().keep_lease(id.clone(), lease.clone()));
        let this = self.clone();
        let run_id = id.clone();
        let token = lease.token;
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            store::blocking_scope(|| this.activate(&run_id, token, failures))
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(execution = %id, error = %e, "activation panicked");
            Outcome {
                next: Next::Backoff,
                dispatches: Vec::new(),
                wake_seq: 0,
            }
        });
        // The previous holder may have died before sending agent tasks it had recorded; agents
        // deduplicate by the callback id, so sending one twice is harmless.
        let mut dispatches = outcome.dispatches;
        if taken_over {
            dispatches.extend(self.unsent_dispatches(id).await);
        }
        if !dispatches.is_empty() {
            for task in dispatches {
                self.clone().send(task).await;
            }
            self.settle_after_dispatch(id, token, outcome.wake_seq)
                .await;
        }
        renewer.abort();
        outcome.next
    }

    /// Renews the lease every third of its life until aborted (or lost).
    async fn keep_lease(self: Arc<Self>, id: ExecutionId, lease: store::Lease) {
        let every = Duration::from_millis(self.leasing.ttl_ms / 3);
        loop {
            tokio::time::sleep(every).await;
            let renewed = self
                .journal
                .renew_lease(&id, &lease, now_ms(), self.leasing.ttl_ms)
                .await;
            match renewed {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(execution = %id, token = lease.token, "lease lost to another host; its writes will be refused");
                    return;
                }
                Err(e) => tracing::warn!(execution = %id, error = %e, "cannot renew the lease"),
            }
        }
    }

    /// Agent tasks and chained invokes of `id` still waiting (sent again after a takeover).
    async fn unsent_dispatches(self: &Arc<Self>, id: &ExecutionId) -> Vec<Task> {
        match self.callbacks.pending_callbacks(id).await {
            Ok(callbacks) => callbacks.iter().filter_map(Task::of).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the agent tasks to send again");
                Vec::new()
            }
        }
    }

    /// Once an activation's agent tasks are out, marks the execution idle (unless it was woken
    /// meanwhile) and gives the lease back. Until then a host that dies mid-dispatch leaves the
    /// execution runnable under an expiring lease, so another host takes it over and sends the
    /// tasks again.
    async fn settle_after_dispatch(self: &Arc<Self>, id: &ExecutionId, token: u64, wake_seq: u64) {
        let batch = store::Batch {
            conditions: vec![Condition::Lease(token)],
            settle: Some(wake_seq),
            release_lease: true,
            ..store::Batch::default()
        };
        match self.journal.commit(id, batch).await {
            Ok(()) | Err(store::Error::ConditionFailed(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot settle after sending agent tasks; the lease will expire")
            }
        }
    }

    /// Sends what an activation left to send: an agent task, or a chained invoke's child to
    /// start.
    pub(super) async fn send(self: Arc<Self>, task: Task) {
        match task {
            Task::Agent(dispatch) => self.dispatch(dispatch).await,
            Task::Invoke(invoke) => self.start_child(invoke).await,
        }
    }

    /// Sends an agent task; a synchronous answer or a failed dispatch completes the callback
    /// at once.
    async fn dispatch(self: Arc<Self>, dispatch: Dispatch) {
        let answer = match self.agents.dispatch(&dispatch).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(agent = %dispatch.agent, %error, "agent dispatch failed");
                crate::agents::Answer::Failed(error)
            }
        };
        let outcome = match &answer {
            crate::agents::Answer::Working => "working",
            crate::agents::Answer::Failed(_) => "failed",
            _ => "answered",
        };
        metrics::counter!("aegis_agent_dispatches_total", "outcome" => outcome).increment(1);
        if answer == crate::agents::Answer::Working {
            return;
        }
        if let Err(e) = crate::callbacks::answer(&self, dispatch.callback_id.as_str(), answer).await
        {
            tracing::warn!(callback = %dispatch.callback_id, error = %e, "cannot record the agent's answer");
        }
    }
}

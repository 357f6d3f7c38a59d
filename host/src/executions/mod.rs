//! Executions: start them, drive them from activation to activation, and finish them.
//!
//! [`Runtime::activate`] is the driver, and reads as the life of an execution:
//! load the execution and its journal → load the component → run the guest (replaying the
//! journal) → record how the activation ended → hand new timers to the scheduler and send agent
//! tasks. A wake-up that arrives while an activation runs is not lost: the execution is run
//! again right after.
//!
//! Every activation runs under the execution's lease ([`store::Lease`]), so that hosts sharing
//! a store never run one execution at once: [`Runtime::drive`] claims it, keeps it renewed
//! while the guest runs and agent tasks are sent, and gives it back with the activation's last
//! commit. A lease held by another host is waited for; one that expired (its host died) is
//! taken over, and the agent tasks its holder may not have sent are sent again. The [`sweep`]
//! finds executions nobody woke on this host: those whose holder died, and timers armed
//! elsewhere.

mod hosts;
mod slots;
pub mod sweep;

use crate::agents::Agents;
use crate::artifacts::ArtifactStore;
use crate::backoff::Backoff;
use crate::engine::activation::{self, Ending};
use crate::engine::budget::Budget;
use crate::engine::host::Activation;
use crate::engine::trap::{Trap, TrapKind};
use crate::engine::{Engine, Limits, LoadError};
use crate::ids::{ComponentDigest, ExecutionId, TenantId};
use crate::journal::{Details, Dispatch, ErrorRecord, Event, EventType, Millis, now_ms};
use crate::notifications::Notifier;
use crate::scheduler::Scheduler;
use crate::store::{
    self, Claim, Condition, Created, ExecutionRecord, ExecutionStatus, NewExecution, Store,
};
use crate::tenancy::Tenancy;
use crate::transitions::execution;
use slots::Slots;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// Longest execution timeout (the model's 366 days).
pub const MAX_EXECUTION_TIMEOUT_SECS: u64 = 366 * 86_400;

/// A request to start an execution.
#[derive(Clone, Debug)]
pub struct StartRequest {
    pub workflow: String,
    pub version: Option<u32>,
    pub input: String,
    pub name: Option<String>,
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("workflow {0:?} not found")]
    WorkflowNotFound(String),
    #[error("an execution named {0:?} already exists with different input")]
    NameConflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the tenant already runs {0} executions, its limit (max_running_executions)")]
    OverQuota(u32),
    #[error(transparent)]
    Store(#[from] store::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("execution not found")]
    NotFound,
    #[error("the execution already ended")]
    NotRunning,
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// What the runtime is built from (see `server.rs`).
pub struct Services {
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub agents: Arc<Agents>,
    pub tenancy: Arc<Tenancy>,
    pub notifier: Arc<Notifier>,
    pub limits: Limits,
    pub scheduler: Scheduler,
    /// Agent results larger than this travel as artifact references.
    pub agent_inline_limit: usize,
    pub leasing: Leasing,
}

pub use crate::store::Leasing;

/// What one turn of the drive loop asks for next.
enum Next {
    /// Done for now (unless a wake-up came meanwhile).
    Done,
    /// Try again after this delay: another host holds the lease.
    RetryIn(Duration),
    /// The infrastructure failed (the store, a component fetch, a full pool): try again after
    /// a delay that grows with each failure in a row (see [`BACKOFF`]).
    Backoff,
}

/// Failures in a row after which an execution whose component cannot be loaded fails as
/// `Aegis.ComponentUnavailable` (about half an hour of backoff): the component is gone, not
/// late.
const MAX_LOAD_ATTEMPTS: u32 = 40;

/// The wait before the `failures`-th retry in a row: 250 to 500 ms after the first failure,
/// doubling up to 60 s, with jitter so that executions failed by one outage do not all come
/// back at once.
const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(500),
    factor: 2,
    max: Duration::from_secs(60),
    jitter: true,
};

/// How an activation ended, for the drive loop.
struct Outcome {
    next: Next,
    /// Agent tasks to send; the lease is kept (and the execution left runnable) until they are.
    dispatches: Vec<Dispatch>,
    /// The wake sequence the activation ran at (to settle once the dispatches are sent).
    wake_seq: u64,
}

pub struct Runtime {
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub agents: Arc<Agents>,
    pub tenancy: Arc<Tenancy>,
    pub notifier: Arc<Notifier>,
    /// Agent results larger than this travel as artifact references.
    pub agent_inline_limit: usize,
    /// Host-wide engine limits; each activation runs under its tenant's quotas within them.
    pub limits: Limits,
    pub scheduler: Scheduler,
    pub leasing: Leasing,
    /// Executions with an activation in flight; `true` means "run again when done".
    running: Mutex<HashMap<ExecutionId, bool>>,
    /// Bounds concurrent activations to the instance pool, fairly between tenants.
    slots: Arc<Slots>,
    finished: broadcast::Sender<ExecutionId>,
}

impl Runtime {
    pub fn new(services: Services) -> Self {
        let Services {
            store,
            engine,
            artifacts,
            agents,
            tenancy,
            notifier,
            limits,
            scheduler,
            agent_inline_limit,
            leasing,
        } = services;
        let slots = Slots::new(limits.activation_slots());
        Self {
            store,
            engine,
            artifacts,
            agents,
            tenancy,
            notifier,
            agent_inline_limit,
            limits,
            scheduler,
            leasing,
            running: Mutex::new(HashMap::new()),
            slots,
            finished: broadcast::channel(4096).0,
        }
    }

    /// Carries on every execution that was running or due when the host stopped, and re-arms
    /// every timer.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn recover(self: &Arc<Self>) -> Result<usize, store::Error> {
        for timer in self.store.timers(Millis::MAX)? {
            self.scheduler.add(timer);
        }
        // Executions another live host is running stay with it; the sweep takes them if its
        // lease runs out.
        let now = now_ms();
        let mut count = 0;
        for runnable in self.store.runnable()? {
            if runnable.lease.available_to(&self.leasing.host_id, now) {
                count += 1;
                self.wake(runnable.id);
            }
        }
        // A crash may have come between recording an agent invocation and sending it; send every
        // waiting one again. Agents deduplicate by the callback id (the A2A message id).
        for callback in self.store.pending_agent_callbacks()? {
            let Some(dispatch) = Dispatch::of(callback.id, callback.agent) else {
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move { this.dispatch(dispatch).await });
        }
        Ok(count)
    }

    /// Learns when executions finish (for long-polling clients).
    pub fn subscribe(&self) -> broadcast::Receiver<ExecutionId> {
        self.finished.subscribe()
    }

    /// Starts an execution, idempotently by name.
    ///
    /// # Errors
    /// [`StartError`] for an unknown workflow, a name conflict or bad parameters.
    pub async fn start(
        self: &Arc<Self>,
        tenant: &TenantId,
        req: StartRequest,
    ) -> Result<(ExecutionRecord, bool), StartError> {
        let timeout = match req.timeout_seconds {
            Some(0) => {
                return Err(StartError::Invalid(
                    "timeout_seconds must be at least 1".into(),
                ));
            }
            Some(s) if s > MAX_EXECUTION_TIMEOUT_SECS => {
                return Err(StartError::Invalid(format!(
                    "timeout_seconds must be at most {MAX_EXECUTION_TIMEOUT_SECS} (366 days)"
                )));
            }
            other => other,
        };
        let max_running = self.tenancy.quotas(tenant).max_running_executions;
        let this = self.clone();
        let tenant = tenant.clone();
        let created = tokio::task::spawn_blocking(move || -> Result<Created, StartError> {
            let component = this
                .store
                .find_component(&tenant, &req.workflow, req.version)?
                .ok_or_else(|| StartError::WorkflowNotFound(req.workflow.clone()))?;
            let now = now_ms();
            let timeout_at = timeout.map(|s| now + s as Millis * 1000);
            let started_event = execution::started_event(&req.input, timeout, now);
            Ok(this.store.create_execution(NewExecution {
                id: ExecutionId::generate(),
                tenant,
                name: req.name,
                workflow: req.workflow,
                version: component.version,
                digest: component.digest,
                input: req.input,
                now,
                timeout_at,
                max_running: Some(max_running),
                started_event,
            })?)
        })
        .await
        .unwrap_or_else(crate::task::rethrow)?;
        match created {
            Created::New(record) => {
                if let Some(at) = record.timeout_at {
                    self.scheduler.add(store::Timer {
                        fire_at: at,
                        execution_id: record.id.clone(),
                        op_id: String::new(),
                        kind: store::TimerKind::ExecutionTimeout,
                    });
                }
                self.wake(record.id.clone());
                Ok((record, true))
            }
            Created::Existing(record) => Ok((record, false)),
            Created::Conflict(record) => Err(StartError::NameConflict(record.name)),
            Created::OverQuota(max) => Err(StartError::OverQuota(max)),
        }
    }

    /// Stops a running execution: its status becomes STOPPED, its timers are cleared and its
    /// callbacks can no longer be completed. An activation in flight finds its writes refused.
    ///
    /// # Errors
    /// [`StopError::NotFound`] for another tenant's or an unknown execution,
    /// [`StopError::NotRunning`] when it already ended.
    pub async fn stop(
        self: &Arc<Self>,
        tenant: &TenantId,
        id: &ExecutionId,
    ) -> Result<ExecutionRecord, StopError> {
        let this = self.clone();
        let (tenant, id) = (tenant.clone(), id.clone());
        let stopped = tokio::task::spawn_blocking(move || -> Result<ExecutionRecord, StopError> {
            let record = this
                .store
                .execution(&id)?
                .filter(|r| r.tenant == tenant)
                .ok_or(StopError::NotFound)?;
            if record.status.is_terminal() {
                return Err(StopError::NotRunning);
            }
            let batch = execution::stop(&record.workflow, now_ms());
            match this.store.commit(&id, batch) {
                Ok(()) => {}
                Err(store::Error::ConditionFailed(_)) => return Err(StopError::NotRunning),
                Err(e) => return Err(e.into()),
            }
            Ok(this.store.execution(&id)?.unwrap_or(record))
        })
        .await
        .unwrap_or_else(crate::task::rethrow)?;
        self.notify_finished(&stopped.id);
        self.notifier.kick();
        Ok(stopped)
    }

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
        let this = self.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || this.store.execution(&id))
            .await
            .map_err(|e| format!("execution lookup task: {e}"))?
            .map(|record| record.map(|r| r.tenant))
            .map_err(|e| e.to_string())
    }

    /// One turn: claim the lease, run one activation under it, send its agent tasks, give the
    /// lease back. `failures` counts the turns in a row that the infrastructure failed.
    async fn turn(self: &Arc<Self>, id: &ExecutionId, tenant: &TenantId, failures: u32) -> Next {
        // A slot first, then the lease: a lease is not held (nor left to expire) while the
        // execution queues for an instance.
        let cap = self.tenancy.quotas(tenant).max_activation_slots as usize;
        let permit = self.slots.acquire(tenant, cap).await;
        let this = self.clone();
        let claim_id = id.clone();
        let claim = tokio::task::spawn_blocking(move || {
            this.store.acquire_lease(
                &claim_id,
                &this.leasing.host_id,
                now_ms(),
                this.leasing.ttl_ms,
            )
        })
        .await;
        let (lease, taken_over) = match claim {
            Ok(Ok(Claim::Acquired { lease, taken_over })) => (lease, taken_over),
            Ok(Ok(Claim::Idle)) => return Next::Done,
            Ok(Ok(Claim::Busy { owner, until })) => {
                // Its holder is working on it (and will not see a wake-up recorded here) or
                // died: ask again soon, and at the latest when the lease runs out.
                tracing::debug!(execution = %id, %owner, "lease held elsewhere; waiting");
                let left = (until - now_ms()).max(0) as u64;
                return Next::RetryIn(Duration::from_millis(left.clamp(50, 500)));
            }
            Ok(Err(e)) => {
                tracing::error!(execution = %id, error = %e, "cannot claim the lease");
                return Next::Backoff;
            }
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "lease task failed");
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
            this.activate(&run_id, token, failures)
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
            for dispatch in dispatches {
                self.clone().dispatch(dispatch).await;
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
            let this = self.clone();
            let (renew_id, renew_lease) = (id.clone(), lease.clone());
            let renewed = tokio::task::spawn_blocking(move || {
                this.store
                    .renew_lease(&renew_id, &renew_lease, now_ms(), this.leasing.ttl_ms)
            })
            .await;
            match renewed {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::warn!(execution = %id, token = lease.token, "lease lost to another host; its writes will be refused");
                    return;
                }
                Ok(Err(e)) => tracing::warn!(execution = %id, error = %e, "cannot renew the lease"),
                Err(e) => tracing::warn!(execution = %id, error = %e, "lease renewal task failed"),
            }
        }
    }

    /// Agent tasks of `id` still waiting for an answer (sent again after a takeover).
    async fn unsent_dispatches(self: &Arc<Self>, id: &ExecutionId) -> Vec<Dispatch> {
        let this = self.clone();
        let id = id.clone();
        let pending = tokio::task::spawn_blocking(move || this.store.pending_callbacks(&id)).await;
        match pending {
            Ok(Ok(callbacks)) => callbacks
                .into_iter()
                .filter_map(|c| Dispatch::of(c.id, c.agent))
                .collect(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot list the agent tasks to send again");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, "agent task listing failed");
                Vec::new()
            }
        }
    }

    /// Once an activation's agent tasks are out, marks the execution idle (unless it was woken
    /// meanwhile) and gives the lease back. Until then a host that dies mid-dispatch leaves the
    /// execution runnable under an expiring lease, so another host takes it over and sends the
    /// tasks again.
    async fn settle_after_dispatch(self: &Arc<Self>, id: &ExecutionId, token: u64, wake_seq: u64) {
        let this = self.clone();
        let id = id.clone();
        let batch = store::Batch {
            conditions: vec![Condition::Lease(token)],
            settle: Some(wake_seq),
            release_lease: true,
            ..store::Batch::default()
        };
        let settled = tokio::task::spawn_blocking(move || this.store.commit(&id, batch)).await;
        match settled {
            Ok(Ok(())) | Ok(Err(store::Error::ConditionFailed(_))) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot settle after sending agent tasks; the lease will expire")
            }
            Err(e) => tracing::warn!(error = %e, "settle task failed"),
        }
    }

    /// One activation of `id` under the lease with fencing token `token`. Its outcome says
    /// when it must be tried again because the infrastructure (not the workflow) failed;
    /// `failures` counts the turns in a row that it did.
    fn activate(self: &Arc<Self>, id: &ExecutionId, token: u64, failures: u32) -> Outcome {
        let outcome = |next| Outcome {
            next,
            dispatches: Vec::new(),
            wake_seq: 0,
        };
        let retry = || outcome(Next::Backoff);
        let execution = match self.store.execution(id) {
            Ok(Some(e)) if e.status == ExecutionStatus::Running => e,
            Ok(_) => return outcome(Next::Done),
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "cannot load execution");
                return retry();
            }
        };
        let journal = match self.store.operations(id) {
            Ok(ops) => ops,
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "cannot load journal");
                return retry();
            }
        };
        let started = now_ms();
        let wake_seq = execution.wake_seq;
        let quotas = self.tenancy.quotas(&execution.tenant);
        let limits = Limits {
            memory_bytes: (quotas.memory_limit_mb as usize) << 20,
            cpu_deadline: Duration::from_millis(quotas.cpu_deadline_ms),
            wall_deadline: Duration::from_millis(quotas.wall_deadline_ms),
            ..self.limits.clone()
        };
        let digest = execution.digest.clone();
        let workflow = execution.workflow.clone();
        let (ending, mut activation) = match crate::components::load(
            &self.engine,
            &*self.artifacts,
            &digest,
        ) {
            Ok(pre) => {
                let activation = Activation::new(
                    execution,
                    journal,
                    self.store.clone(),
                    self.artifacts.clone(),
                )
                .with_lease(token)
                .with_budget(Budget::new(&quotas));
                activation::run(&pre, activation, &limits)
            }
            // A disk or S3 error, or a component not fetched yet, is the host's trouble: the
            // activation is tried again with backoff, and only a component still missing after
            // many tries fails the execution.
            Err(LoadError::Io(e)) if failures + 1 < MAX_LOAD_ATTEMPTS => {
                tracing::warn!(execution = %id, %digest, error = %e, attempt = failures + 1, "cannot load the component; trying again");
                return retry();
            }
            Err(e) => {
                let ending = Ending::Failed(component_unavailable(&digest, &e.to_string()).into());
                (
                    ending,
                    Activation::new(
                        execution,
                        journal,
                        self.store.clone(),
                        self.artifacts.clone(),
                    )
                    .with_lease(token),
                )
            }
        };
        let mut batch = activation.take_pending();
        let invocation = |error: Option<&ErrorRecord>| {
            let ended = now_ms();
            let details = Details::Invocation {
                started,
                ended,
                request_id: format!("act_{:016x}", rand::random::<u64>()),
                error: error.cloned(),
            };
            Event::execution(EventType::InvocationCompleted, ended, details)
        };
        let mut terminal = false;
        match ending {
            Ending::Abandoned {
                retry: again,
                reason,
            } => {
                tracing::warn!(execution = %id, %reason, "activation abandoned");
                return if again { retry() } else { outcome(Next::Done) };
            }
            Ending::Suspended => {
                batch.events.push(invocation(None));
                // With agent tasks to send, the execution stays runnable under the lease until
                // they are out (see `settle_after_dispatch`).
                if activation.dispatches.is_empty() {
                    batch.settle = Some(wake_seq);
                    batch.release_lease = true;
                }
            }
            Ending::Completed(result) => {
                terminal = true;
                batch.events.push(invocation(None));
                batch.append(execution::end(
                    execution::Ending::Succeeded(result),
                    &workflow,
                    now_ms(),
                ));
            }
            Ending::Failed(fault) => {
                terminal = true;
                tracing::info!(execution = %id, error_type = %fault.error_type(), trapped = fault.is_trap(), "execution failed");
                // A trap failed the activation itself; a failure the guest returned did not.
                let trapped = fault.is_trap();
                let error = fault.into_record();
                batch.events.push(invocation(trapped.then_some(&error)));
                batch.append(execution::end(
                    execution::Ending::Failed(error),
                    &workflow,
                    now_ms(),
                ));
            }
        }
        if terminal {
            batch.release_lease = true;
        }
        batch.conditions.splice(0..0, activation.guards());
        let new_timers = batch.set_timers.clone();
        let committed = match self.store.commit(id, batch) {
            // The activation's last writes do not fit one commit (a store's transaction limit):
            // the execution fails, naming the limit, with a batch that holds only its ending.
            Err(store::Error::TooLarge(reason)) => {
                terminal = true;
                let error = Trap::new(
                    TrapKind::ActivationLimitExceeded,
                    format!("the activation's writes do not fit one commit: {reason}"),
                )
                .into_record();
                self.store
                    .commit(id, too_large_ending(&activation, &workflow, error))
            }
            other => other,
        };
        match committed {
            Ok(()) => {}
            Err(store::Error::ConditionFailed(reason) | store::Error::NotFound(reason)) => {
                tracing::info!(execution = %id, %reason, "activation superseded: the execution ended or another host took it over");
                return outcome(Next::Done);
            }
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "cannot record activation");
                return retry();
            }
        }
        if !activation.published.is_empty() || terminal {
            self.notifier.kick();
        }
        if terminal {
            let _ = self.finished.send(id.clone());
        } else {
            for timer in activation.committed_timers.drain(..).chain(new_timers) {
                self.scheduler.add(timer);
            }
        }
        Outcome {
            next: Next::Done,
            // A finished execution's callbacks are cancelled: nothing to send.
            dispatches: if terminal {
                Vec::new()
            } else {
                std::mem::take(&mut activation.dispatches)
            },
            wake_seq,
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
        if answer == crate::agents::Answer::Working {
            return;
        }
        if let Err(e) = crate::callbacks::answer(&self, dispatch.callback_id.as_str(), answer).await
        {
            tracing::warn!(callback = %dispatch.callback_id, error = %e, "cannot record the agent's answer");
        }
    }

    /// Marks an execution finished by an outside event (timeout), and tells waiters.
    pub fn notify_finished(&self, id: &ExecutionId) {
        let _ = self.finished.send(id.clone());
    }
}

/// The batch that fails an execution whose activation's own writes were too large to commit:
/// its ending alone, under the activation's guards.
fn too_large_ending(activation: &Activation, workflow: &str, error: ErrorRecord) -> store::Batch {
    let mut batch = store::Batch {
        conditions: activation.guards(),
        release_lease: true,
        ..store::Batch::default()
    };
    batch.append(execution::end(
        execution::Ending::Failed(error),
        workflow,
        now_ms(),
    ));
    batch
}

fn component_unavailable(digest: &ComponentDigest, reason: &str) -> Trap {
    Trap::new(
        TrapKind::ComponentUnavailable,
        format!("component {digest} cannot be loaded: {reason}"),
    )
}

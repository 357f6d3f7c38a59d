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
//!
//! One concern a file: `start.rs` (start and stop), `drive.rs` (wake-ups, the drive loop, the
//! lease, sending agent tasks), `activate.rs` (one activation), `recovery.rs` (start-up),
//! `slots.rs` (fair activation slots), `sweep.rs` (executions and timers no one woke here) and
//! `hosts.rs` (the runtime as the host the layers below it declare).

mod activate;
mod drive;
mod hosts;
mod invoke;
mod queries;
mod recovery;
mod slots;
mod start;
pub mod sweep;

use crate::agents::Agents;
use crate::artifacts::ArtifactStore;
use crate::backoff::Backoff;
use crate::config::LambdaConfig;
use crate::engine::{Engine, Limits};
use crate::ids::{ExecutionId, TenantId};
use crate::journal::Task;
use crate::notifications::Notifier;
use crate::scheduler::Scheduler;
use crate::store::{self, Callbacks, Catalog, Journal, Store, Timers};
use crate::tenancy::Tenancy;
use slots::Slots;
use std::collections::HashMap;
use std::path::Path;
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

/// What the runtime is built from (see `server.rs`): the wiring, so it holds the whole store,
/// which [`Runtime::new`] splits into the roles its parts use.
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
    /// The `[lambda]` section: how chained invokes name functions (a function ARN must be of
    /// this region and account), and the execution ARN each activation's guest is told
    /// (`AEGIS_EXECUTION_ARN`).
    pub lambda: LambdaConfig,
}

pub use crate::store::Leasing;

/// What one turn of the drive loop asks for next.
enum Next {
    /// Done for now (unless a wake-up came meanwhile).
    Done,
    /// Try again after this delay: another host holds the lease, or the guest crashed (its
    /// activation runs again after a pause; see `activate::rerun_after_crash`).
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
    /// Agent tasks and chained invokes to send; the lease is kept (and the execution left
    /// runnable) until they are.
    dispatches: Vec<Task>,
    /// The wake sequence the activation ran at (to settle once the dispatches are sent).
    wake_seq: u64,
}

/// The executions service, and the host of the layers below it (`hosts.rs`).
///
/// Its parts are private: callers outside `executions` get the few they need through the
/// accessors below, and the store only as the roles a module uses, never whole.
pub struct Runtime {
    /// Executions, operations, history, batches and leases: what activations write.
    journal: Arc<dyn Journal>,
    /// Pending timers, read at start-up and by the sweep.
    timers: Arc<dyn Timers>,
    /// Callbacks, read by the callback service, the scheduler and the agent dispatch.
    callbacks: Arc<dyn Callbacks>,
    /// Components, read to start an execution and written by uploads.
    catalog: Arc<dyn Catalog>,
    engine: Arc<Engine>,
    artifacts: Arc<dyn ArtifactStore>,
    agents: Arc<Agents>,
    tenancy: Arc<Tenancy>,
    notifier: Arc<Notifier>,
    /// Agent results larger than this travel as artifact references.
    agent_inline_limit: usize,
    /// Host-wide engine limits; each activation runs under its tenant's quotas within them.
    limits: Limits,
    scheduler: Scheduler,
    leasing: Leasing,
    /// How chained invokes name functions, and the execution ARN each activation's guest is
    /// told.
    lambda: LambdaConfig,
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
            lambda,
        } = services;
        let slots = Slots::new(limits.activation_slots());
        // Each role is coerced once here, so callers borrow the narrow `Arc` they hold.
        Self {
            journal: store.clone(),
            timers: store.clone(),
            callbacks: store.clone(),
            catalog: store,
            engine,
            artifacts,
            agents,
            tenancy,
            notifier,
            agent_inline_limit,
            limits,
            scheduler,
            leasing,
            lambda,
            running: Mutex::new(HashMap::new()),
            slots,
            finished: broadcast::channel(4096).0,
        }
    }

    /// The tenants, their keys and quotas: what the API authenticates and limits requests with.
    pub fn tenancy(&self) -> &Arc<Tenancy> {
        &self.tenancy
    }

    /// Published workflow events, live and from the outbox: what the event routes read.
    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Where artifacts are kept: the API serves and lists them.
    pub fn artifacts(&self) -> &Arc<dyn ArtifactStore> {
        &self.artifacts
    }

    /// Where people and agents reach this host (no trailing slash): the links the API hands
    /// out to its web console are made with it.
    pub fn public_url(&self) -> &str {
        self.agents.public_url()
    }

    /// The folder components are kept in: the API spools uploads under it.
    pub fn components_dir(&self) -> &Path {
        self.engine.dir()
    }

    /// The id this host takes leases as.
    pub fn host_id(&self) -> &str {
        &self.leasing.host_id
    }

    /// Activation slots `tenant` holds on this host now (its use of `max_activation_slots`).
    pub fn slots_held(&self, tenant: &TenantId) -> usize {
        self.slots.held(tenant)
    }

    /// Activations waiting for a slot on this host now.
    pub fn activations_waiting(&self) -> usize {
        self.slots.waiting()
    }

    /// Learns when executions finish (for long-polling clients).
    pub fn subscribe(&self) -> broadcast::Receiver<ExecutionId> {
        self.finished.subscribe()
    }

    /// Marks an execution finished by an outside event (timeout), and tells waiters.
    pub fn notify_finished(&self, id: &ExecutionId) {
        let _ = self.finished.send(id.clone());
    }
}

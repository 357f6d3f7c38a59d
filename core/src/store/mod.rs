//! Storage: executions, their journals and histories, timers, callbacks and component metadata.
//!
//! Key items:
//! - The roles a backend plays, one async trait per kind of caller: [`Journal`] (executions,
//!   their operations and events, batches, leases), [`Timers`], [`Callbacks`], [`Catalog`]
//!   (components, tenants, keys) and [`Outbox`] (published events, dead letters). A caller
//!   holds only the roles it uses; [`Store`] is every role at once, for wiring a host up.
//!   Writes go through [`Batch`]es, each applied atomically and only if its [`Condition`]s
//!   hold, so two writers (an activation and a callback, or two hosts) can never both win a
//!   transition.
//! - [`Lease`]: which host runs an execution's activations; its fencing token is checked by
//!   every activation's writes ([`Condition::Lease`]). Backends hold no
//!   business rules: they check conditions and apply batches.
//!
//! The backends are crates of their own: `aegis-store-sqlite` (the embedded default) and
//! `aegis-store-dynamo`. They depend on this module, never the other way round, and the
//! contract every backend must show is `aegis-store-contract`.

pub mod logs;
mod roles;

pub use logs::{LogLevel, LogLimits, LogLine, LogRecord, LogUsage};
pub use roles::{
    Callbacks, Catalog, Journal, Outbox, Store, Timers, blocking_io, blocking_scope,
    in_blocking_scope, wait,
};

use crate::ids::{CallbackId, ComponentDigest, ExecutionId, TenantId};
use crate::journal::{ErrorRecord, Event, Millis, Operation, Status};
use serde::{Deserialize, Serialize};

/// Why a store call failed. Callers decide what to do by kind, not by message: a
/// [`Error::Retriable`] failure may pass if the call is made again (later), the others will
/// not (see [`Error::is_retriable`]).
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// A batch's condition did not hold; nothing was written.
    #[error("condition failed: {0}")]
    ConditionFailed(String),
    /// The record the call is about does not exist (an execution committed to, a tenant
    /// updated). Reads of a record that may be missing answer `None` instead.
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend failed for a reason that passes: busy or locked, throttled, timed out,
    /// unreachable, an I/O error, a 5xx. Nothing is known to have been written; the call may
    /// be made again.
    #[error("storage backend: {0}")]
    Retriable(String),
    /// The backend refused the call or cannot serve it, for a reason that making it again
    /// cannot fix: a corrupt record, a broken constraint, a request the backend rejects as
    /// invalid, a store that was shut down.
    #[error("storage backend (fatal): {0}")]
    Fatal(String),
    /// The batch is larger than the backend takes in one write; retrying it cannot help.
    #[error("the batch is too large for the store: {0}")]
    TooLarge(String),
}

impl Error {
    /// Whether making the same call again may succeed. Only backend failures that pass are:
    /// a failed condition, a missing record or a batch over the limits stays as it is.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::Retriable(_))
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }

    /// A corrupt stored record: a bug or damage, which reading it again does not mend.
    pub fn corrupt(what: impl std::fmt::Display) -> Self {
        Error::Fatal(format!("corrupt record: {what}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::corrupt(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod error_tests {
    use super::Error;

    #[test]
    fn an_undecodable_record_is_corrupt_and_fatal() {
        let corrupt = Error::from(serde_json::from_str::<u32>("{").unwrap_err());
        assert!(matches!(corrupt, Error::Fatal(_)), "{corrupt:?}");
        assert!(!corrupt.is_retriable() && !corrupt.is_not_found());
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Stopped,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Stopped => "STOPPED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "RUNNING" => ExecutionStatus::Running,
            "SUCCEEDED" => ExecutionStatus::Succeeded,
            "FAILED" => ExecutionStatus::Failed,
            "TIMED_OUT" => ExecutionStatus::TimedOut,
            "STOPPED" => ExecutionStatus::Stopped,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        self != ExecutionStatus::Running
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComponentRecord {
    pub tenant: TenantId,
    pub name: String,
    pub version: u32,
    pub digest: ComponentDigest,
    pub size: u64,
    pub created_at: Millis,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionRecord {
    pub id: ExecutionId,
    pub tenant: TenantId,
    pub name: String,
    pub workflow: String,
    pub version: u32,
    pub digest: ComponentDigest,
    pub input: String,
    pub status: ExecutionStatus,
    pub result: Option<String>,
    pub error: Option<ErrorRecord>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub timeout_at: Option<Millis>,
    /// Bumped on every wake-up; an activation may mark the execution idle only if no wake-up
    /// happened since it loaded the execution.
    pub wake_seq: u64,
}

/// A tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
    pub overrides: crate::quotas::Overrides,
    pub created_at: Millis,
}

/// An API key; `hash` is the SHA-256 of its secret.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    pub tenant: TenantId,
    pub hash: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
    /// The whole key string, sealed (AES-256-GCM, bound to `id`) with a key derived from the
    /// host's `credentials_key` or admin key: what SigV4 verification needs, which the hash
    /// alone cannot give. `None` for keys made before SigV4 support (they work as bearer keys
    /// only). The store keeps it as it is given; only the host seals and opens it.
    pub sealed_secret: Option<String>,
}

/// Which executions to list.
#[derive(Clone, Debug, Default)]
pub struct ExecutionFilter {
    pub workflow: Option<String>,
    pub status: Option<ExecutionStatus>,
    pub created_after: Option<Millis>,
    pub created_before: Option<Millis>,
    /// Continue after this (created_at, id), newest first.
    pub after: Option<(Millis, ExecutionId)>,
    pub limit: usize,
}

/// A published workflow event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkflowEvent {
    pub seq: u64,
    pub tenant: TenantId,
    pub execution_id: ExecutionId,
    pub kind: String,
    /// JSON.
    pub data: String,
    pub created_at: Millis,
}

/// An event a sink refused for good (or kept failing until its attempts ran out): out of the
/// outbox, so the events behind it flow, and kept so that it can be listed and acted on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The event as it was offered to the sink (its data bounded as delivered).
    pub event: WorkflowEvent,
    /// The sink that refused it: `webhook`, `sns` or `eventbridge`.
    pub sink: String,
    /// Delivery attempts made, the last one included.
    pub attempts: u32,
    /// What the sink said the last time.
    pub last_error: String,
    pub dead_at: Millis,
}

/// What deleting a component version did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    NotFound,
    /// A running execution is pinned to it.
    InUse,
}

/// A callback handed to the outside world.
#[derive(Clone, Debug, PartialEq)]
pub struct CallbackRecord {
    pub id: CallbackId,
    pub tenant: TenantId,
    pub execution_id: ExecutionId,
    pub op_id: String,
    pub name: String,
    pub status: Status,
    pub heartbeat_timeout_ms: Option<u64>,
    /// For agent invocations: the agent and the input sent, to send again after a restart.
    pub agent: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimerKind {
    WaitEnd,
    StepRetry,
    CallbackTimeout,
    CallbackHeartbeat,
    ExecutionTimeout,
}

impl TimerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::WaitEnd => "wait_end",
            TimerKind::StepRetry => "step_retry",
            TimerKind::CallbackTimeout => "callback_timeout",
            TimerKind::CallbackHeartbeat => "callback_heartbeat",
            TimerKind::ExecutionTimeout => "execution_timeout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "wait_end" => TimerKind::WaitEnd,
            "step_retry" => TimerKind::StepRetry,
            "callback_timeout" => TimerKind::CallbackTimeout,
            "callback_heartbeat" => TimerKind::CallbackHeartbeat,
            "execution_timeout" => TimerKind::ExecutionTimeout,
            _ => return None,
        })
    }
}

/// A durable timer. `op_id` is empty for the execution's own timeout.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timer {
    pub fire_at: Millis,
    pub execution_id: ExecutionId,
    pub op_id: String,
    pub kind: TimerKind,
}

/// The right to run an execution's activations and write its journal, held by one host at a
/// time until `expires_at` (renewed while it works).
///
/// `token` is the fencing token: every acquisition raises it, and an activation's writes carry
/// [`Condition::Lease`], so once another host has taken the lease over, the writes of the
/// host that lost it (paused, partitioned, or slow to learn it died) are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    /// The host that holds or last held it (`cluster.host_id`); empty if nobody ever did.
    pub owner: String,
    pub token: u64,
    /// 0 once released.
    pub expires_at: Millis,
}

impl Lease {
    /// Whether `host` may take the lease at `now`: it is free, expired, or already its own
    /// (a restarted host with the same id).
    pub fn available_to(&self, host: &str, now: Millis) -> bool {
        self.expires_at <= now || self.owner == host
    }

    /// What `host` asking at `now` for this lease gets, the rule every backend applies:
    /// `Idle` when the execution is not runnable, `Busy` while another host holds it, else
    /// `Acquired` with the lease to write (token raised), which the backend writes only if the
    /// token is still this one.
    pub fn claim(&self, runnable: bool, host: &str, now: Millis, ttl_ms: u64) -> Claim {
        if !runnable {
            return Claim::Idle;
        }
        if !self.available_to(host, now) {
            return Claim::Busy {
                owner: self.owner.clone(),
                until: self.expires_at,
            };
        }
        Claim::Acquired {
            lease: Lease {
                owner: host.to_string(),
                token: self.token + 1,
                expires_at: now + ttl_ms as Millis,
            },
            taken_over: self.expires_at != 0,
        }
    }
}

/// This host's name in leases (of executions and of fleet-wide roles), and how long one lasts.
#[derive(Clone, Debug)]
pub struct Leasing {
    pub host_id: String,
    pub ttl_ms: u64,
}

/// What asking for an execution's lease gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The lease is ours. `taken_over` when the previous holder never released it (it died or
    /// stalled mid-activation): its agent dispatches may not have left.
    Acquired { lease: Lease, taken_over: bool },
    /// Another host holds it until `until`.
    Busy { owner: String, until: Millis },
    /// Nothing to run: the execution ended, is idle (not runnable) or does not exist.
    Idle,
}

/// A runnable execution and its lease, as the start-up and takeover sweeps see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runnable {
    pub id: ExecutionId,
    pub lease: Lease,
}

/// What must hold for a batch to apply.
#[derive(Clone, Debug)]
pub enum Condition {
    ExecutionRunning,
    /// The execution's lease token is still this one: nobody took the lease over.
    Lease(u64),
    OperationStatus {
        op_id: String,
        status: Status,
    },
    /// The timer exists and is due at `now` (so each timer fires once, and a timer moved by a
    /// heartbeat does not fire early).
    TimerDue {
        op_id: String,
        kind: TimerKind,
        now: Millis,
    },
}

/// How an execution ended.
#[derive(Clone, Debug)]
pub struct Finish {
    pub status: ExecutionStatus,
    pub result: Option<String>,
    pub error: Option<ErrorRecord>,
}

/// One atomic write to an execution.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub conditions: Vec<Condition>,
    /// Operations to insert or replace.
    pub operations: Vec<Operation>,
    /// Events to append, in order; the store numbers them.
    pub events: Vec<Event>,
    pub set_timers: Vec<Timer>,
    pub clear_timers: Vec<(String, TimerKind)>,
    /// Remove every timer of the execution (it ended).
    pub clear_all_timers: bool,
    /// Callbacks to insert or replace.
    pub callbacks: Vec<CallbackRecord>,
    /// Cancel every callback of the execution still STARTED once `callbacks` are written (the
    /// execution ends, so they can no longer be completed). A set decided inside the write,
    /// like `clear_all_timers`: a callback that a racing activation created between the
    /// caller's reads and this commit is cancelled too, so none outlives its execution.
    pub cancel_open_callbacks: bool,
    pub finish: Option<Finish>,
    /// Workflow events to publish (kind, JSON data), numbered by the store.
    pub publish: Vec<(String, String)>,
    /// Mark the execution runnable and bump its wake sequence.
    pub wake: bool,
    /// Mark the execution idle, if its wake sequence is still this one.
    pub settle: Option<u64>,
    /// Give the lease up (its expiry becomes 0; the token stays, so it keeps fencing).
    pub release_lease: bool,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
            && self.events.is_empty()
            && self.set_timers.is_empty()
            && self.clear_timers.is_empty()
            && !self.clear_all_timers
            && self.callbacks.is_empty()
            && !self.cancel_open_callbacks
            && self.finish.is_none()
            && self.publish.is_empty()
            && !self.wake
            && self.settle.is_none()
            && !self.release_lease
    }

    /// Moves everything of `other` after what this batch holds.
    pub fn append(&mut self, mut other: Batch) {
        self.conditions.append(&mut other.conditions);
        self.operations.append(&mut other.operations);
        self.events.append(&mut other.events);
        self.set_timers.append(&mut other.set_timers);
        self.clear_timers.append(&mut other.clear_timers);
        self.clear_all_timers |= other.clear_all_timers;
        self.callbacks.append(&mut other.callbacks);
        self.cancel_open_callbacks |= other.cancel_open_callbacks;
        if other.finish.is_some() {
            self.finish = other.finish;
        }
        self.publish.append(&mut other.publish);
        self.wake |= other.wake;
        if other.settle.is_some() {
            self.settle = other.settle;
        }
        self.release_lease |= other.release_lease;
    }
}

/// A request to start an execution.
#[derive(Clone, Debug)]
pub struct NewExecution {
    pub id: ExecutionId,
    pub tenant: TenantId,
    pub name: Option<String>,
    pub workflow: String,
    pub version: u32,
    pub digest: ComponentDigest,
    pub input: String,
    pub now: Millis,
    pub timeout_at: Option<Millis>,
    /// A condition of the start: refuse it if the tenant already has this many running
    /// executions, counted inside the same write (so two racing starts cannot both pass).
    pub max_running: Option<u32>,
    /// The ExecutionStarted event.
    pub started_event: Event,
}

/// What starting an execution did.
#[derive(Clone, Debug)]
pub enum Created {
    New(ExecutionRecord),
    /// The name is held by this execution, whatever it was started with; nothing was
    /// written. Whether that answers the start or conflicts with it is the caller's rule
    /// (`transitions::execution::same_start`), not the backend's.
    NameTaken(ExecutionRecord),
    /// The tenant already runs `max_running` executions.
    OverQuota(u32),
}

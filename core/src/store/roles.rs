//! The roles a backend plays, one trait per kind of caller.
//!
//! Each caller holds only the roles it uses: the engine writes the [`Journal`], the scheduler
//! reads [`Timers`] and commits to the journal, the callback service reads [`Callbacks`], the
//! tenancy and component services the [`Catalog`], the notifier the [`Outbox`]. [`Store`] is all
//! of them at once, for the one place that opens a backend and hands its roles out.
//!
//! Every call is async. A backend that blocks (SQLite) does its blocking work inside itself, on
//! its writer thread or the blocking pool; one that does I/O (DynamoDB) is async through and
//! through. Callers just `.await`.
//!
//! The one synchronous caller is the engine: a guest runs on a blocking thread and its host calls
//! are synchronous, so it waits for the journal with [`wait`]. On such a thread a backend may do
//! its blocking work inline ([`in_blocking_scope`]) instead of hopping to yet another thread.

use super::{
    Batch, CallbackRecord, Claim, ComponentRecord, Created, DeadLetter, Deleted, ExecutionFilter,
    ExecutionRecord, KeyRecord, Lease, LogLimits, LogLine, LogRecord, NewExecution, Result,
    Runnable, TenantRecord, Timer, WorkflowEvent,
};
use crate::ids::{CallbackId, ComponentDigest, ExecutionId, TenantId};
use crate::journal::{Event, Millis, Operation};
use std::cell::Cell;
use std::future::Future;

/// Executions, their operations and history, the batches that change them, and their leases:
/// what an activation, a start or a stop needs.
#[async_trait::async_trait]
pub trait Journal: Send + Sync + 'static {
    /// Creates an execution, idempotently by name.
    async fn create_execution(&self, new: NewExecution) -> Result<Created>;
    async fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>>;
    /// A tenant's executions, newest first.
    async fn list_executions(
        &self,
        tenant: &TenantId,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>>;
    async fn operations(&self, id: &ExecutionId) -> Result<Vec<Operation>>;
    async fn operation(&self, id: &ExecutionId, op_id: &str) -> Result<Option<Operation>>;
    /// Events with an EventId above `after`, at most `limit`, in order.
    async fn history(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>>;

    /// Appends `lines` to the execution's log, numbered after its last record, within
    /// `limits` as [`super::logs::admit`] decides inside the write (a full log drops them).
    /// A write of its own, outside any batch: an activation appends its lines before each
    /// commit and when it ends, whatever the guest did, so a line is kept even when the guest
    /// crashes before its next commit. Lines appended for an execution that does not exist
    /// are kept with nothing to read them through; callers append for their own execution.
    async fn append_logs(
        &self,
        id: &ExecutionId,
        lines: Vec<LogLine>,
        limits: LogLimits,
    ) -> Result<()>;
    /// Log records with a `seq` above `after`, at most `limit`, in order.
    async fn logs(&self, id: &ExecutionId, after: u64, limit: usize) -> Result<Vec<LogRecord>>;

    /// Applies `batch` atomically if its conditions hold.
    ///
    /// # Errors
    /// [`super::Error::ConditionFailed`] when a condition does not hold (nothing is written).
    async fn commit(&self, execution: &ExecutionId, batch: Batch) -> Result<()>;

    /// Executions that were running (or woken) and not idle, with their leases: carried on at
    /// start-up, and taken over from dead hosts by the sweep.
    async fn runnable(&self) -> Result<Vec<Runnable>>;
    /// Takes the lease of a runnable execution for `host` until `now + ttl_ms`, raising its
    /// token, if it is free, expired or already `host`'s.
    async fn acquire_lease(
        &self,
        id: &ExecutionId,
        host: &str,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<Claim>;
    /// Extends a lease still held with `lease.token` to `now + ttl_ms`; `false` when it was
    /// taken over or released.
    async fn renew_lease(
        &self,
        id: &ExecutionId,
        lease: &Lease,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<bool>;
}

/// Durable timers, as the scheduler reads them (they are set and cleared by batches).
#[async_trait::async_trait]
pub trait Timers: Send + Sync + 'static {
    /// Pending timers due at or before `before` (`Millis::MAX` for all).
    async fn timers(&self, before: Millis) -> Result<Vec<Timer>>;
}

/// Callbacks handed to the outside world, as the callback service and the agent dispatch read
/// them (they are created and closed by batches).
#[async_trait::async_trait]
pub trait Callbacks: Send + Sync + 'static {
    async fn callback(&self, id: &CallbackId) -> Result<Option<CallbackRecord>>;
    /// Agent invocations still waiting, of every execution (sent again at start-up).
    async fn pending_agent_callbacks(&self) -> Result<Vec<CallbackRecord>>;
    /// Callbacks of the execution that are still waiting.
    async fn pending_callbacks(&self, id: &ExecutionId) -> Result<Vec<CallbackRecord>>;
    /// Binds an agent invocation's callback to the task the agent created for it (the A2A
    /// `Task.id` of its answer to the dispatch), if the callback is waiting and not bound yet.
    /// Returns the task now bound (the earlier one when it already was), or `None` when the
    /// callback does not exist or no longer waits. The first binding wins: pushes naming any
    /// other task are refused, so a push cannot make the host fetch a task of someone else.
    async fn bind_agent_task(&self, id: &CallbackId, task_id: &str) -> Result<Option<String>>;
    /// The task an agent invocation's callback is bound to, if any.
    async fn agent_task(&self, id: &CallbackId) -> Result<Option<String>>;
}

/// Components, tenants and API keys: what uploads, tenancy and authentication need.
#[async_trait::async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Records a component under `name`, giving it the next version unless the same digest is
    /// already there. Returns the record and whether it is new.
    async fn put_component(
        &self,
        tenant: &TenantId,
        name: &str,
        digest: &ComponentDigest,
        size: u64,
        now: Millis,
    ) -> Result<(ComponentRecord, bool)>;
    /// The given version of a component, or its latest.
    async fn find_component(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<ComponentRecord>>;
    /// All versions of every component of a tenant, by name then version.
    async fn components(
        &self,
        tenant: &TenantId,
        name: Option<&str>,
    ) -> Result<Vec<ComponentRecord>>;
    /// Deletes a component version unless a running execution is pinned to it.
    async fn delete_component(
        &self,
        tenant: &TenantId,
        name: &str,
        version: u32,
    ) -> Result<Deleted>;

    /// Creates a tenant and its first key; `false` when the name is taken.
    async fn create_tenant(&self, tenant: &TenantRecord, key: &KeyRecord) -> Result<bool>;
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>>;
    async fn tenants(&self) -> Result<Vec<TenantRecord>>;
    async fn update_tenant(&self, tenant: &TenantRecord) -> Result<()>;
    async fn api_key(&self, id: &str) -> Result<Option<KeyRecord>>;
    /// Inserts or replaces a key (revoking is replacing with `revoked_at` set).
    async fn put_api_key(&self, key: &KeyRecord) -> Result<()>;
    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>>;
}

/// Published workflow events and their delivery: what the notifier and the event routes need.
#[async_trait::async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Workflow events after `after`, oldest first: of one tenant (and optionally one
    /// execution), or of every tenant when `tenant` is `None`.
    async fn workflow_events(
        &self,
        tenant: Option<&TenantId>,
        execution: Option<&ExecutionId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<WorkflowEvent>>;
    /// Events after `after` that the sinks have not accepted yet (nor were dead-lettered),
    /// oldest first. Paging past `after` lets delivery go on behind events that wait for a retry.
    async fn undelivered_events(&self, after: u64, limit: usize) -> Result<Vec<WorkflowEvent>>;
    async fn mark_delivered(&self, seqs: &[u64]) -> Result<()>;
    /// Stores each letter and takes its event out of the outbox. Idempotent by the event's seq;
    /// a letter is stored before its event leaves the outbox, so a crash between the two only
    /// means the event is offered (and dead-lettered) again.
    async fn dead_letter(&self, letters: &[DeadLetter]) -> Result<()>;
    /// Dead letters whose event's seq is above `after`, oldest first: of one tenant, or of every
    /// tenant when `tenant` is `None`.
    async fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>>;
    /// Takes or keeps the fleet-wide role `name` for `host` until `now + ttl_ms`, if nobody
    /// holds it, its holder's claim expired, or `host` holds it already; `false` while another
    /// host's claim lasts. One host at a time delivers the outbox this way, so a sink sees an
    /// event once, not once per host.
    async fn claim_role(&self, name: &str, host: &str, now: Millis, ttl_ms: u64) -> Result<bool>;
}

/// Every role of one backend: what the host opens at start-up and hands out role by role.
pub trait Store: Journal + Timers + Callbacks + Catalog + Outbox {}

impl<T: Journal + Timers + Callbacks + Catalog + Outbox> Store for T {}

thread_local! {
    static BLOCKING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` marked as blocking work on a thread that may block (a guest's activation thread),
/// so that backends run their blocking calls inline there rather than hopping to another thread.
pub fn blocking_scope<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            BLOCKING.with(|b| b.set(self.0));
        }
    }
    let _reset = Reset(BLOCKING.with(|b| b.replace(true)));
    f()
}

/// Whether the current thread is inside [`blocking_scope`]: a backend may block it.
pub fn in_blocking_scope() -> bool {
    BLOCKING.with(Cell::get)
}

/// Runs the blocking I/O `f` without holding up an async worker: inline on a thread that may
/// block (inside [`blocking_scope`], an activation's), else on tokio's blocking pool. What a
/// backend does for each call that touches the disk.
pub async fn blocking_io<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    if in_blocking_scope() {
        return f();
    }
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(crate::task::rethrow)
}

/// Waits for a store call from synchronous code on a blocking thread (inside
/// [`blocking_scope`]): the engine's host calls. The future runs on this thread, driven by the
/// host's runtime, so a SQLite call costs what it did when the store was synchronous.
///
/// # Panics
/// Outside a tokio runtime's blocking thread (on a worker thread, or with no runtime at all).
pub fn wait<T>(fut: impl Future<Output = T>) -> T {
    let handle = tokio::runtime::Handle::current();
    blocking_scope(|| handle.block_on(fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocking_scope_is_marked_only_while_it_lasts_and_nests() {
        assert!(!in_blocking_scope());
        blocking_scope(|| {
            assert!(in_blocking_scope());
            blocking_scope(|| assert!(in_blocking_scope()));
            assert!(in_blocking_scope());
        });
        assert!(!in_blocking_scope());
    }

    #[tokio::test]
    async fn wait_runs_a_future_from_a_blocking_thread_inside_the_scope() {
        let inside = tokio::task::spawn_blocking(|| wait(async { in_blocking_scope() }))
            .await
            .unwrap();
        assert!(inside);
    }
}

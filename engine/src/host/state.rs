//! The [`Activation`]: what one activation knows (its execution, the replay cursor, its
//! budget) and has done (pending writes, committed timers, agent dispatches), and how its
//! writes reach the store.
//!
//! Every durable call goes through [`Activation::begin`] (derive the id, check the journal,
//! charge the budget) and records what a transition returns with [`Activation::apply`];
//! [`Activation::flush`] commits the pending batch under the activation's guards before the
//! guest learns an outcome it could act on.

use super::{Failure, check_json, checked_error, to_info};
use crate::aegis::workflow::types::{ErrorInfo, Outcome};
use crate::budget::{Budget, Charge};
use aegis_core::artifacts::ArtifactStore;
use aegis_core::journal::replay::{self, Cursor};
use aegis_core::journal::{ErrorRecord, Operation, OperationType, Status, SubType, Task, now_ms};
use aegis_core::store::{Batch, Condition, ExecutionRecord, Journal, LogLimits, LogLine, Timer};
use aegis_core::transitions::step;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Longest operation name.
const MAX_NAME: usize = 256;
/// Pending operations (or bytes) past which the next new operation first commits what is
/// pending: a fan-out of thousands of waits is written in batches that any store takes in one
/// transaction (DynamoDB allows 100 items), not in one batch no store accepts.
const FLUSH_AT_OPERATIONS: usize = 16;
const FLUSH_AT_BYTES: usize = 1 << 20;

/// What one activation knows and has done.
pub struct Activation {
    pub execution: ExecutionRecord,
    pub cursor: Cursor,
    pub(super) pending: Batch,
    pub(super) store: Arc<dyn Journal>,
    pub(super) artifacts: Arc<dyn ArtifactStore>,
    /// Steps whose body is running now (answered `run` and not yet ended).
    pub(super) running_steps: HashSet<String>,
    /// The running steps whose attempt began in an earlier activation that did not end it (a
    /// crash): their body runs again.
    pub(super) resumed_steps: HashSet<String>,
    /// Contexts whose recorded success kept no result ([`Operation::replay_children`]): their
    /// body runs again over the recorded children to rebuild the result, and may add nothing.
    pub(super) rebuilding: HashSet<String>,
    /// Virtual contexts entered in this activation (FLAT nesting), each with the recorded
    /// context its operations name as their parent.
    pub(super) virtual_contexts: HashMap<String, String>,
    pub failure: Option<Failure>,
    /// Timers committed during the activation, for the scheduler.
    pub committed_timers: Vec<Timer>,
    pub dispatches: Vec<Task>,
    /// Kinds of the workflow events published in this activation.
    pub published: Vec<String>,
    /// The fencing token of the lease this activation runs under: every commit carries it.
    lease: Option<u64>,
    /// The execution's ARN, for the guest's environment (`activation.rs`); the host formats it.
    pub execution_arn: Option<String>,
    /// What this activation may still make the host hold.
    pub(super) budget: Budget,
    /// Bytes recorded since the last commit.
    pending_bytes: usize,
    /// Log lines not yet appended to the execution's log (see `logs.rs`).
    pub(super) logs: Vec<LogLine>,
    /// What the execution's log may hold, from its tenant's quotas.
    pub(super) log_limits: LogLimits,
    /// The guest's stdout, whose lines join `logs` (see `stdout.rs`).
    pub(super) stdout: super::Stdout,
    /// Wall time spent on the host's own I/O for the guest (store commits, artifacts): not
    /// counted against the guest's wall-clock deadline.
    pub io_time: std::time::Duration,
}

impl Activation {
    pub fn new(
        execution: ExecutionRecord,
        journal: Vec<Operation>,
        store: Arc<dyn Journal>,
        artifacts: Arc<dyn ArtifactStore>,
    ) -> Self {
        Self {
            execution,
            cursor: Cursor::new(journal),
            pending: Batch::default(),
            store,
            artifacts,
            running_steps: HashSet::new(),
            resumed_steps: HashSet::new(),
            rebuilding: HashSet::new(),
            virtual_contexts: HashMap::new(),
            failure: None,
            committed_timers: Vec::new(),
            dispatches: Vec::new(),
            published: Vec::new(),
            lease: None,
            execution_arn: None,
            budget: Budget::new(&aegis_core::quotas::Quotas::default()),
            pending_bytes: 0,
            logs: Vec::new(),
            log_limits: LogLimits::of(&aegis_core::quotas::Quotas::default()),
            stdout: super::Stdout::default(),
            io_time: std::time::Duration::ZERO,
        }
    }

    /// Runs `io` (the host's own I/O), counting its time as the host's.
    pub(super) fn io<T>(&mut self, io: impl FnOnce(&mut Self) -> T) -> T {
        let started = std::time::Instant::now();
        let result = io(self);
        self.io_time += started.elapsed();
        result
    }

    /// Runs under `budget` (from the tenant's quotas) instead of the default one.
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Keeps the execution's log within `limits` (from its tenant's quotas) instead of the
    /// default ones.
    pub fn with_log_limits(mut self, limits: LogLimits) -> Self {
        self.log_limits = limits;
        self
    }

    /// The guest's stdout, for its WASI context.
    pub fn stdout(&self) -> super::Stdout {
        self.stdout.clone()
    }

    /// The guest is done: what it printed last, without a newline, is a line too.
    pub fn end_stdout(&mut self) {
        self.stdout.close();
        self.take_stdout();
    }

    /// Tells the guest its execution's ARN (`AEGIS_EXECUTION_ARN`), as AWS hands one to each
    /// invocation of a handler: the engine cannot name it, since the region and account are the
    /// host's settings.
    pub fn with_execution_arn(mut self, arn: String) -> Self {
        self.execution_arn = Some(arn);
        self
    }

    /// Runs under the lease with fencing token `token`: a commit after another host took the
    /// lease over is refused, and the activation ends.
    pub fn with_lease(mut self, token: u64) -> Self {
        self.lease = Some(token);
        self
    }

    /// The conditions every commit of this activation carries.
    pub fn guards(&self) -> Vec<Condition> {
        // The lease first: when another host took over and then finished the execution, "taken
        // over" is the reason worth reporting.
        let mut guards: Vec<Condition> = self.lease.map(Condition::Lease).into_iter().collect();
        guards.push(Condition::ExecutionRunning);
        guards
    }

    /// Writes still waiting for a commit.
    pub fn take_pending(&mut self) -> Batch {
        std::mem::take(&mut self.pending)
    }

    /// Records `failure` and returns the trap that ends the activation.
    pub(crate) fn trap(&mut self, failure: Failure) -> wasmtime::Error {
        let message = failure.message().to_string();
        if self.failure.is_none() {
            self.failure = Some(failure);
        }
        wasmtime::Error::msg(message)
    }

    pub(super) fn replay_error(&mut self, e: replay::Error) -> wasmtime::Error {
        match e {
            replay::Error::NonDeterminism { .. } => {
                self.trap(Failure::NonDeterminism(e.to_string()))
            }
            other => self.trap(Failure::InvalidCall(other.to_string())),
        }
    }

    /// Commits everything pending, after the log lines written before it. Called before the
    /// guest learns an outcome it could act on.
    pub(super) fn flush(&mut self) -> wasmtime::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.flush_logs_or_trap()?;
        let mut batch = self.take_pending();
        batch.conditions.splice(0..0, self.guards());
        let timers = batch.set_timers.clone();
        let execution = self.execution.id.clone();
        let committed = self.io(|a| crate::commit::commit(&*a.store, &execution, batch));
        match committed {
            Ok(()) => {
                self.committed_timers.extend(timers);
                self.budget.committed();
                self.pending_bytes = 0;
                Ok(())
            }
            // The execution ended elsewhere, or is gone: this activation's writes are void.
            Err(
                aegis_core::store::Error::ConditionFailed(m)
                | aegis_core::store::Error::NotFound(m),
            ) => Err(self.trap(Failure::Superseded(m))),
            Err(e @ aegis_core::store::Error::TooLarge(_)) => {
                Err(self.trap(Failure::LimitExceeded(e.to_string())))
            }
            Err(e) => Err(self.trap(Failure::Store(e.to_string()))),
        }
    }

    /// Charges the activation's budget; over it, the activation ends.
    pub(super) fn charge(&mut self, charge: Charge) -> wasmtime::Result<()> {
        match self.budget.charge(charge) {
            Ok(()) => Ok(()),
            Err(message) => Err(self.trap(Failure::LimitExceeded(message))),
        }
    }

    /// An operation the guest names by id; it must exist.
    pub(super) fn known_op(&mut self, id: &str) -> wasmtime::Result<Operation> {
        match self.cursor.get(id) {
            Ok(op) => Ok(op.clone()),
            Err(e) => Err(self.replay_error(e)),
        }
    }

    /// Adds a transition's writes (see `aegis_core::transitions`) to the pending batch, within the
    /// budget: each operation with its event, then its timers, then its callback records.
    pub(super) fn apply(&mut self, writes: Batch) -> wasmtime::Result<()> {
        // The guards are the activation's own (see `guards`), and the transitions a guest
        // drives neither wake nor end the execution nor clear timers: nothing else to carry.
        debug_assert!(
            writes.conditions.is_empty()
                && writes.clear_timers.is_empty()
                && !writes.wake
                && writes.finish.is_none(),
            "a guest-driven transition writes only operations, events, timers and callbacks"
        );
        let Batch {
            operations,
            events,
            set_timers,
            callbacks,
            ..
        } = writes;
        debug_assert_eq!(operations.len(), events.len(), "one event per operation");
        for (op, event) in operations.into_iter().zip(events) {
            // What the record holds in memory until it is committed: the operation (its
            // payloads) twice, once in the batch and once in the event's details, plus a fixed
            // overhead.
            let bytes = 2
                * (op.name.len()
                    + op.result.as_ref().map_or(0, String::len)
                    + op.error.as_ref().map_or(0, |e| {
                        e.error_type.len()
                            + e.error_message.len()
                            + e.error_data.as_ref().map_or(0, String::len)
                    }))
                + 256;
            self.charge(Charge::Pending(bytes))?;
            self.pending_bytes += bytes;
            self.pending.events.push(event);
            self.cursor.put(op.clone());
            self.pending.operations.push(op);
        }
        for timer in set_timers {
            self.charge(Charge::Timer)?;
            self.pending.set_timers.push(timer);
        }
        self.pending.callbacks.extend(callbacks);
        Ok(())
    }

    /// Checks a payload the guest hands over is JSON.
    pub(super) fn check_json(&mut self, what: &str, payload: &str) -> wasmtime::Result<()> {
        match check_json(what, payload) {
            Ok(()) => Ok(()),
            Err(failure) => Err(self.trap(failure)),
        }
    }

    /// A failure the guest reports, within the limits of what the host stores.
    pub(super) fn guest_error(&mut self, info: ErrorInfo) -> wasmtime::Result<ErrorRecord> {
        match checked_error(info) {
            Ok(error) => Ok(error),
            Err(failure) => Err(self.trap(failure)),
        }
    }

    pub(super) fn check_name(&mut self, name: &str) -> wasmtime::Result<()> {
        if name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(self.trap(Failure::InvalidCall(format!(
                "operation name {name:?} must be at most {MAX_NAME} printable characters"
            ))));
        }
        Ok(())
    }

    /// Starts (or finds) an operation: derives its id, checks the journal, validates the name.
    pub(super) fn begin(
        &mut self,
        ctx: &str,
        name: &str,
        op_type: OperationType,
        sub_type: SubType,
    ) -> wasmtime::Result<(String, Option<Operation>)> {
        self.check_name(name)?;
        let id = self.cursor.next_id(ctx).map_err(|e| self.replay_error(e))?;
        let existing = self
            .cursor
            .expect(&id, op_type, sub_type, name)
            .map(|op| op.cloned())
            .map_err(|e| self.replay_error(e))?;
        if existing.is_none() {
            if self.rebuilding.contains(self.recorded_context(ctx)) {
                return Err(self.trap(Failure::NonDeterminism(format!(
                    "operation {id} ({name:?}) is not in the journal, but its context {ctx} succeeded \
                     without it: the context's body, run again to rebuild its result, took another path"
                ))));
            }
            if let Err(message) = self.budget.journal_has_room(self.cursor.len()) {
                return Err(self.trap(Failure::LimitExceeded(message)));
            }
            self.charge(Charge::Operation)?;
            // Between operations, never inside one: an operation's records (its callback, its
            // timers) always land in one commit.
            if self.pending.operations.len() >= FLUSH_AT_OPERATIONS
                || self.pending_bytes >= FLUSH_AT_BYTES
            {
                self.flush()?;
            }
        }
        Ok((id, existing))
    }

    /// The recorded context that operations made in `ctx` name as their parent: `ctx` itself,
    /// or for a virtual context, the recorded context it was entered from.
    pub(super) fn recorded_context<'a>(&'a self, ctx: &'a str) -> &'a str {
        self.virtual_contexts.get(ctx).map_or(ctx, String::as_str)
    }

    pub(super) fn new_op(
        &self,
        id: String,
        ctx: &str,
        name: &str,
        op_type: OperationType,
        sub_type: SubType,
    ) -> Operation {
        let parent = self.recorded_context(ctx);
        let parent = (!parent.is_empty()).then(|| parent.to_string());
        Operation::new(id, parent, name.to_string(), op_type, sub_type, now_ms())
    }

    pub(super) fn recorded_outcome(op: &Operation) -> Outcome {
        match op.status {
            Status::Succeeded => {
                Outcome::Succeeded(op.result.clone().unwrap_or_else(|| "null".into()))
            }
            _ => Outcome::Failed(to_info(op.error.clone().unwrap_or_else(|| {
                ErrorRecord::new(
                    "Aegis.Unknown",
                    format!("operation {} ended {:?}", op.id, op.status),
                )
            }))),
        }
    }

    /// A value produced by the host once and replayed after: a step with a reserved name.
    pub(super) fn recorded_value(
        &mut self,
        ctx: &str,
        name: &str,
        produce: impl FnOnce(&mut Self) -> wasmtime::Result<Result<String, ErrorRecord>>,
    ) -> wasmtime::Result<Result<String, ErrorInfo>> {
        let (id, existing) = self.begin(ctx, name, OperationType::Step, SubType::Step)?;
        if let Some(op) = existing.filter(|op| op.status.is_final()) {
            return Ok(match Self::recorded_outcome(&op) {
                Outcome::Succeeded(v) => Ok(v),
                Outcome::Failed(e) => Err(e),
            });
        }
        let op = self.new_op(id, ctx, name, OperationType::Step, SubType::Step);
        let started = now_ms();
        self.apply(step::start(op.clone(), started))?;
        let produced = produce(self)?;
        let (writes, _) = step::end(&self.execution.id, op, produced.clone(), None, started);
        self.apply(writes)?;
        Ok(produced.map_err(to_info))
    }
}

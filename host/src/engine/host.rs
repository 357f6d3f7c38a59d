//! The imports a guest calls: durable steps, waits, callbacks, contexts, agents, artifacts, time,
//! randomness and logging.
//!
//! Each call consults the replay [`Cursor`]: a recorded outcome is returned as it is; a new call
//! is recorded in the activation's pending [`Batch`]. The batch is committed (fsynced) before
//! the guest is told any outcome it could act on: a step's result, a callback id it could hand
//! out, or an agent dispatch. Starts of waits and contexts ride along with the next commit or the
//! activation's last one.
//!
//! Errors take one of two roads, chosen explicitly: a guest-visible [`ErrorInfo`] inside an
//! outcome, or a trap that ends the activation with a [`Failure`] recorded beside it.

use super::aegis::workflow::durable::{
    self, Callback, ContextBegin, Poll, StepAction, StepVerdict,
};
use super::aegis::workflow::types::{
    self, ContextKind, ErrorInfo, LogLevel, Outcome, RetryPolicy, StepSemantics,
};
use super::aegis::workflow::{artifacts, events};
use super::budget::{Budget, Charge};
use super::limits::Meter;
use crate::artifacts::{ArtifactRef, ArtifactStore};
use crate::ids::CallbackId;
use crate::journal::replay::{self, Cursor};
use crate::journal::{ErrorRecord, Operation, OperationType, Status, SubType, now_ms};
use crate::store::{Batch, Condition, ExecutionRecord, Store, Timer};
use crate::transitions::{callback, context, step, wait};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

/// Largest result a durable operation may record; bigger payloads belong in artifacts.
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// Longest operation name.
const MAX_NAME: usize = 256;
/// Longest error type a guest may record.
pub const MAX_ERROR_TYPE: usize = 256;
/// Longest log line kept; a longer one is cut, marked as cut.
const MAX_LOG_LINE: usize = 4096;
/// Pending operations (or bytes) past which the next new operation first commits what is
/// pending: a fan-out of thousands of waits is written in batches that any store takes in one
/// transaction (DynamoDB allows 100 items), not in one batch no store accepts.
const FLUSH_AT_OPERATIONS: usize = 16;
const FLUSH_AT_BYTES: usize = 1 << 20;
/// Shortest and longest wait or callback timeout.
const MIN_TIMEOUT_MS: u64 = 1_000;
const MAX_TIMEOUT_MS: u64 = 366 * 24 * 3600 * 1000;

/// Why the host stopped a guest. Recorded before trapping, read by the activation.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// The replay diverged from the journal.
    NonDeterminism(String),
    /// The guest broke the calling protocol (unknown operation, bad context).
    InvalidCall(String),
    /// The execution stopped or ended elsewhere; this activation's writes are void.
    Superseded(String),
    /// Storage failed; the activation is abandoned and tried again later.
    Store(String),
    /// The guest tried to block (sleep, or poll a clock); see `engine::wasi`.
    Blocking(String),
    /// The activation went over one of its budgets (see `engine::budget`).
    LimitExceeded(String),
    /// The guest handed the host a payload that is not JSON.
    InvalidPayload(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::NonDeterminism(m)
            | Failure::InvalidCall(m)
            | Failure::Superseded(m)
            | Failure::Store(m)
            | Failure::Blocking(m)
            | Failure::LimitExceeded(m)
            | Failure::InvalidPayload(m) => m,
        }
    }
}

/// An agent task to send once the callback that receives its answer is durable.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub callback_id: CallbackId,
    pub agent: String,
    pub input: String,
}

impl Dispatch {
    /// The task of a recorded agent invocation (to send again), or `None` for other callbacks.
    pub fn of(callback: crate::store::CallbackRecord) -> Option<Self> {
        let (agent, input) = callback.agent?;
        Some(Self {
            callback_id: callback.id,
            agent,
            input,
        })
    }
}

/// What one activation knows and has done.
pub struct Activation {
    pub execution: ExecutionRecord,
    pub cursor: Cursor,
    pending: Batch,
    store: Arc<dyn Store>,
    artifacts: Arc<dyn ArtifactStore>,
    /// Steps whose body is running now (answered `run` and not yet ended).
    running_steps: HashSet<String>,
    pub failure: Option<Failure>,
    /// Timers committed during the activation, for the scheduler.
    pub committed_timers: Vec<Timer>,
    pub dispatches: Vec<Dispatch>,
    /// Kinds of the workflow events published in this activation.
    pub published: Vec<String>,
    /// The fencing token of the lease this activation runs under: every commit carries it.
    lease: Option<u64>,
    /// What this activation may still make the host hold.
    budget: Budget,
    /// Bytes recorded since the last commit.
    pending_bytes: usize,
    /// Wall time spent on the host's own I/O for the guest (store commits, artifacts): not
    /// counted against the guest's wall-clock deadline.
    pub io_time: std::time::Duration,
}

impl Activation {
    pub fn new(
        execution: ExecutionRecord,
        journal: Vec<Operation>,
        store: Arc<dyn Store>,
        artifacts: Arc<dyn ArtifactStore>,
    ) -> Self {
        Self {
            execution,
            cursor: Cursor::new(journal),
            pending: Batch::default(),
            store,
            artifacts,
            running_steps: HashSet::new(),
            failure: None,
            committed_timers: Vec::new(),
            dispatches: Vec::new(),
            published: Vec::new(),
            lease: None,
            budget: Budget::new(&crate::tenancy::Quotas::default()),
            pending_bytes: 0,
            io_time: std::time::Duration::ZERO,
        }
    }

    /// Runs `io` (the host's own I/O), counting its time as the host's.
    fn io<T>(&mut self, io: impl FnOnce(&mut Self) -> T) -> T {
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
    pub(super) fn trap(&mut self, failure: Failure) -> wasmtime::Error {
        let message = failure.message().to_string();
        if self.failure.is_none() {
            self.failure = Some(failure);
        }
        wasmtime::Error::msg(message)
    }

    fn replay_error(&mut self, e: replay::Error) -> wasmtime::Error {
        match e {
            replay::Error::NonDeterminism { .. } => {
                self.trap(Failure::NonDeterminism(e.to_string()))
            }
            other => self.trap(Failure::InvalidCall(other.to_string())),
        }
    }

    /// Commits everything pending. Called before the guest learns an outcome it could act on.
    fn flush(&mut self) -> wasmtime::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut batch = self.take_pending();
        batch.conditions.splice(0..0, self.guards());
        let timers = batch.set_timers.clone();
        let execution = self.execution.id.clone();
        match self.io(|a| a.store.commit(&execution, batch)) {
            Ok(()) => {
                self.committed_timers.extend(timers);
                self.budget.committed();
                self.pending_bytes = 0;
                Ok(())
            }
            // The execution ended elsewhere, or is gone: this activation's writes are void.
            Err(crate::store::Error::ConditionFailed(m) | crate::store::Error::NotFound(m)) => {
                Err(self.trap(Failure::Superseded(m)))
            }
            Err(e @ crate::store::Error::TooLarge(_)) => {
                Err(self.trap(Failure::LimitExceeded(e.to_string())))
            }
            Err(e) => Err(self.trap(Failure::Store(e.to_string()))),
        }
    }

    /// Charges the activation's budget; over it, the activation ends.
    fn charge(&mut self, charge: Charge) -> wasmtime::Result<()> {
        match self.budget.charge(charge) {
            Ok(()) => Ok(()),
            Err(message) => Err(self.trap(Failure::LimitExceeded(message))),
        }
    }

    /// An operation the guest names by id; it must exist.
    fn known_op(&mut self, id: &str) -> wasmtime::Result<Operation> {
        match self.cursor.get(id) {
            Ok(op) => Ok(op.clone()),
            Err(e) => Err(self.replay_error(e)),
        }
    }

    /// Adds a transition's writes (see `crate::transitions`) to the pending batch, within the
    /// budget: each operation with its event, then its timers, then its callback records.
    fn apply(&mut self, writes: Batch) -> wasmtime::Result<()> {
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
    fn check_json(&mut self, what: &str, payload: &str) -> wasmtime::Result<()> {
        match check_json(what, payload) {
            Ok(()) => Ok(()),
            Err(failure) => Err(self.trap(failure)),
        }
    }

    /// A failure the guest reports, within the limits of what the host stores.
    fn guest_error(&mut self, info: ErrorInfo) -> wasmtime::Result<ErrorRecord> {
        match checked_error(info) {
            Ok(error) => Ok(error),
            Err(failure) => Err(self.trap(failure)),
        }
    }

    fn check_name(&mut self, name: &str) -> wasmtime::Result<()> {
        if name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(self.trap(Failure::InvalidCall(format!(
                "operation name {name:?} must be at most {MAX_NAME} printable characters"
            ))));
        }
        Ok(())
    }

    /// Starts (or finds) an operation: derives its id, checks the journal, validates the name.
    fn begin(
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

    fn new_op(
        &self,
        id: String,
        ctx: &str,
        name: &str,
        op_type: OperationType,
        sub_type: SubType,
    ) -> Operation {
        let parent = (!ctx.is_empty()).then(|| ctx.to_string());
        Operation::new(id, parent, name.to_string(), op_type, sub_type, now_ms())
    }

    fn recorded_outcome(op: &Operation) -> Outcome {
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

    fn step_begin(
        &mut self,
        ctx: &str,
        name: &str,
        semantics: StepSemantics,
    ) -> wasmtime::Result<StepAction> {
        let (id, existing) = self.begin(ctx, name, OperationType::Step, SubType::Step)?;
        let op = match existing {
            Some(op) => match op.status {
                Status::Succeeded | Status::Failed => {
                    return Ok(StepAction::Done(Self::recorded_outcome(&op)));
                }
                Status::Pending => return Ok(StepAction::Pending),
                Status::Started if semantics == StepSemantics::AtMostOnce => {
                    let (writes, op) = step::interrupted(&self.execution.id, op, now_ms());
                    self.apply(writes)?;
                    self.flush()?;
                    return Ok(StepAction::Done(Self::recorded_outcome(&op)));
                }
                _ => op,
            },
            None => self.new_op(id.clone(), ctx, name, OperationType::Step, SubType::Step),
        };
        let attempt = op.attempt + 1;
        self.apply(step::start(op, now_ms()))?;
        if semantics == StepSemantics::AtMostOnce {
            self.flush()?;
        }
        self.running_steps.insert(id.clone());
        Ok(StepAction::Run((id, attempt)))
    }

    fn step_end(
        &mut self,
        id: &str,
        outcome: Outcome,
        policy: Option<RetryPolicy>,
    ) -> wasmtime::Result<StepVerdict> {
        if !self.running_steps.remove(id) {
            return Err(self.trap(Failure::InvalidCall(format!(
                "step-end for operation {id:?}, which is not running"
            ))));
        }
        let op = self.known_op(id)?;
        let now = now_ms();
        let outcome = match outcome {
            Outcome::Succeeded(payload) if payload.len() > MAX_PAYLOAD => {
                Outcome::Failed(ErrorInfo {
                    error_type: "Step.ResultTooLarge".into(),
                    error_message: format!(
                        "step {:?} returned {} bytes; the limit is {MAX_PAYLOAD}: store large results as artifacts",
                        op.name,
                        payload.len()
                    ),
                    error_data: None,
                })
            }
            other => other,
        };
        let outcome = match outcome {
            Outcome::Succeeded(payload) => {
                self.check_json(&format!("the result of step {:?}", op.name), &payload)?;
                Ok(payload)
            }
            Outcome::Failed(info) => Err(self.guest_error(info)?),
        };
        let policy = policy.map(step::RetryPolicy::from);
        let (writes, ended) = step::end(&self.execution.id, op, outcome, policy.as_ref(), now);
        self.apply(writes)?;
        match ended {
            step::Ended::RetryAt(_) => Ok(StepVerdict::RetryScheduled),
            step::Ended::Done(op) => {
                self.flush()?;
                Ok(StepVerdict::Done(Self::recorded_outcome(&op)))
            }
        }
    }

    fn check_timeout(&mut self, what: &str, ms: u64) -> wasmtime::Result<()> {
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&ms) {
            return Err(self.trap(Failure::InvalidCall(format!(
                "{what} of {ms} ms is out of range: it must be between 1 s and 366 days"
            ))));
        }
        Ok(())
    }

    fn wait(&mut self, ctx: &str, name: &str, duration_ms: u64) -> wasmtime::Result<Poll> {
        let (id, existing) = self.begin(ctx, name, OperationType::Wait, SubType::Wait)?;
        if let Some(op) = existing {
            return Ok(if op.status == Status::Started {
                Poll::Pending
            } else {
                Poll::Ready(Self::recorded_outcome(&op))
            });
        }
        self.check_timeout("wait duration", duration_ms)?;
        let op = self.new_op(id, ctx, name, OperationType::Wait, SubType::Wait);
        self.apply(wait::start(&self.execution.id, op, duration_ms, now_ms()))?;
        Ok(Poll::Pending)
    }

    fn callback_create(
        &mut self,
        ctx: &str,
        name: &str,
        timeout_ms: u64,
        heartbeat_ms: Option<u64>,
    ) -> wasmtime::Result<Callback> {
        let (id, existing) = self.begin(ctx, name, OperationType::Callback, SubType::Callback)?;
        if let Some(op) = existing {
            let callback_id = op.callback_id.clone().unwrap_or_default();
            return Ok(Callback {
                operation_id: id,
                callback_id,
            });
        }
        let callback_id =
            self.start_callback(id.clone(), ctx, name, timeout_ms, heartbeat_ms, None)?;
        // The id may be handed out as soon as the guest has it: make it durable first.
        self.flush()?;
        Ok(Callback {
            operation_id: id,
            callback_id: callback_id.to_string(),
        })
    }

    /// Records a new callback operation with its timers.
    fn start_callback(
        &mut self,
        id: String,
        ctx: &str,
        name: &str,
        timeout_ms: u64,
        heartbeat_ms: Option<u64>,
        agent: Option<(String, String)>,
    ) -> wasmtime::Result<CallbackId> {
        self.check_timeout("callback timeout", timeout_ms)?;
        if let Some(hb) = heartbeat_ms {
            self.check_timeout("callback heartbeat timeout", hb)?;
        }
        self.charge(Charge::Callback)?;
        let callback_id = CallbackId::generate();
        let op = self.new_op(id, ctx, name, OperationType::Callback, SubType::Callback);
        let new = callback::NewCallback {
            id: callback_id.clone(),
            tenant: self.execution.tenant.clone(),
            execution: self.execution.id.clone(),
            timeout_ms,
            heartbeat_timeout_ms: heartbeat_ms,
            agent,
        };
        self.apply(callback::start(new, op, now_ms()))?;
        Ok(callback_id)
    }

    fn callback_poll(&mut self, id: &str) -> wasmtime::Result<Poll> {
        let op = self.known_op(id)?;
        if op.op_type != OperationType::Callback {
            let msg = format!("callback-poll on operation {id:?}, which is not a callback");
            return Err(self.trap(Failure::InvalidCall(msg)));
        }
        Ok(if op.status == Status::Started {
            Poll::Pending
        } else {
            Poll::Ready(Self::recorded_outcome(&op))
        })
    }

    fn agent_invoke(
        &mut self,
        ctx: &str,
        name: &str,
        agent: &str,
        input: String,
        timeout_ms: u64,
    ) -> wasmtime::Result<Poll> {
        let (id, existing) = self.begin(ctx, name, OperationType::Callback, SubType::Callback)?;
        if let Some(op) = existing {
            return self.callback_poll(&op.id);
        }
        if input.len() > MAX_PAYLOAD {
            let msg = format!(
                "agent input for {name:?} is {} bytes; the limit is {MAX_PAYLOAD}: pass an artifact reference",
                input.len()
            );
            return Err(self.trap(Failure::InvalidCall(msg)));
        }
        self.check_json(&format!("the input of agent call {name:?}"), &input)?;
        self.charge(Charge::AgentCall)?;
        let callback_id = self.start_callback(
            id,
            ctx,
            name,
            timeout_ms,
            None,
            Some((agent.to_string(), input.clone())),
        )?;
        self.flush()?;
        self.dispatches.push(Dispatch {
            callback_id,
            agent: agent.to_string(),
            input,
        });
        Ok(Poll::Pending)
    }

    fn context_enter(
        &mut self,
        ctx: &str,
        name: &str,
        kind: ContextKind,
    ) -> wasmtime::Result<ContextBegin> {
        let sub_type = match kind {
            ContextKind::RunInChildContext => SubType::RunInChildContext,
            ContextKind::Parallel => SubType::Parallel,
            ContextKind::ParallelBranch => SubType::ParallelBranch,
            ContextKind::Map => SubType::Map,
            ContextKind::MapIteration => SubType::MapIteration,
            ContextKind::WaitForCallback => SubType::WaitForCallback,
        };
        let (id, existing) = self.begin(ctx, name, OperationType::Context, sub_type)?;
        match existing {
            Some(op) if op.status.is_final() => Ok(ContextBegin::Done(Self::recorded_outcome(&op))),
            Some(_) => {
                self.cursor.enter_context(&id);
                Ok(ContextBegin::Run(id))
            }
            None => {
                let op = self.new_op(id.clone(), ctx, name, OperationType::Context, sub_type);
                self.apply(context::start(op, now_ms()))?;
                self.cursor.enter_context(&id);
                Ok(ContextBegin::Run(id))
            }
        }
    }

    fn context_exit(&mut self, id: &str, outcome: Outcome) -> wasmtime::Result<()> {
        let op = self.known_op(id)?;
        if op.op_type != OperationType::Context || op.status != Status::Started {
            let msg = format!("context-exit for operation {id:?}, which is not an open context");
            return Err(self.trap(Failure::InvalidCall(msg)));
        }
        let outcome = match outcome {
            Outcome::Succeeded(payload) if payload.len() <= MAX_PAYLOAD => {
                self.check_json(&format!("the result of context {:?}", op.name), &payload)?;
                Ok(payload)
            }
            Outcome::Succeeded(payload) => Err(ErrorRecord::new(
                "Context.ResultTooLarge",
                format!(
                    "context {:?} returned {} bytes; the limit is {MAX_PAYLOAD}",
                    op.name,
                    payload.len()
                ),
            )),
            Outcome::Failed(info) => Err(self.guest_error(info)?),
        };
        self.apply(context::end(op, outcome, now_ms()))
    }

    /// A value produced by the host once and replayed after: a step with a reserved name.
    fn recorded_value(
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

impl From<RetryPolicy> for step::RetryPolicy {
    fn from(p: RetryPolicy) -> Self {
        Self {
            max_attempts: p.max_attempts,
            initial_delay_ms: p.initial_delay_ms,
            max_delay_ms: p.max_delay_ms,
            backoff_rate: p.backoff_rate,
            jitter: p.jitter,
            retry_on: p.retry_on,
        }
    }
}

pub fn to_info(e: ErrorRecord) -> ErrorInfo {
    ErrorInfo {
        error_type: e.error_type,
        error_message: e.error_message,
        error_data: e.error_data,
    }
}

/// A payload the guest hands the host must be a JSON document: a result that is not would be
/// stored and then served as `null`.
pub fn check_json(what: &str, payload: &str) -> Result<(), Failure> {
    serde_json::from_str::<serde::de::IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|e| Failure::InvalidPayload(format!("{what} is not JSON: {e}")))
}

/// A failure reported by the guest, as the host stores it: the type at most
/// [`MAX_ERROR_TYPE`] printable characters, the data JSON within the payload limit, and the
/// message cut at [`crate::journal::MAX_ERROR_MESSAGE`] bytes by [`ErrorRecord::new`] (a long
/// message is kept, marked as cut, since it is what a reader needs first).
///
/// # Errors
/// The failure that ends the activation, for a type or data the host will not store.
pub fn checked_error(info: ErrorInfo) -> Result<ErrorRecord, Failure> {
    let ErrorInfo {
        error_type,
        error_message,
        error_data,
    } = info;
    if error_type.is_empty()
        || error_type.chars().count() > MAX_ERROR_TYPE
        || error_type.chars().any(char::is_control)
    {
        let shown: String = error_type.chars().take(64).collect();
        return Err(Failure::InvalidCall(format!(
            "error type {shown:?}… ({} bytes) must be 1 to {MAX_ERROR_TYPE} printable characters",
            error_type.len()
        )));
    }
    if let Some(data) = &error_data {
        if data.len() > MAX_PAYLOAD {
            return Err(Failure::InvalidPayload(format!(
                "the error data of {error_type:?} is {} bytes; the limit is {MAX_PAYLOAD}",
                data.len()
            )));
        }
        check_json(&format!("the error data of {error_type:?}"), data)?;
    }
    let mut record = ErrorRecord::new(error_type, error_message);
    record.error_data = error_data;
    Ok(record)
}

/// A guest's log line as one line of the host's log: cut at [`MAX_LOG_LINE`] bytes, with
/// newlines and other control characters escaped (`\n`, `\u{1b}`).
fn escape_log_line(message: &str) -> String {
    let cut = crate::journal::cut(message.to_string(), MAX_LOG_LINE);
    let mut line = String::with_capacity(cut.len());
    for c in cut.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// The store data of one guest instance.
pub struct HostState {
    pub activation: Activation,
    pub meter: Meter,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl HostState {
    pub fn new(activation: Activation, meter: Meter, wasi: WasiCtx) -> Self {
        Self {
            activation,
            meter,
            wasi,
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl durable::Host for HostState {
    fn step_begin(
        &mut self,
        ctx: String,
        name: String,
        semantics: StepSemantics,
    ) -> wasmtime::Result<StepAction> {
        self.activation.step_begin(&ctx, &name, semantics)
    }

    fn step_end(
        &mut self,
        operation_id: String,
        result: Outcome,
        policy: Option<RetryPolicy>,
    ) -> wasmtime::Result<StepVerdict> {
        self.activation.step_end(&operation_id, result, policy)
    }

    fn wait(&mut self, ctx: String, name: String, duration_ms: u64) -> wasmtime::Result<Poll> {
        self.activation.wait(&ctx, &name, duration_ms)
    }

    fn callback_create(
        &mut self,
        ctx: String,
        name: String,
        timeout_ms: u64,
        heartbeat_timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Callback> {
        self.activation
            .callback_create(&ctx, &name, timeout_ms, heartbeat_timeout_ms)
    }

    fn callback_poll(&mut self, operation_id: String) -> wasmtime::Result<Poll> {
        self.activation.callback_poll(&operation_id)
    }

    fn agent_invoke(
        &mut self,
        ctx: String,
        name: String,
        agent: String,
        input: String,
        timeout_ms: u64,
    ) -> wasmtime::Result<Poll> {
        self.activation
            .agent_invoke(&ctx, &name, &agent, input, timeout_ms)
    }

    fn context_enter(
        &mut self,
        ctx: String,
        name: String,
        kind: ContextKind,
    ) -> wasmtime::Result<ContextBegin> {
        self.activation.context_enter(&ctx, &name, kind)
    }

    fn context_exit(&mut self, operation_id: String, result: Outcome) -> wasmtime::Result<()> {
        self.activation.context_exit(&operation_id, result)
    }

    fn now(&mut self, ctx: String) -> wasmtime::Result<u64> {
        let a = &mut self.activation;
        let v = a.recorded_value(&ctx, "$now", |_| Ok(Ok(now_ms().to_string())))?;
        Ok(v.ok().and_then(|v| v.parse().ok()).unwrap_or_default())
    }

    fn random(&mut self, ctx: String) -> wasmtime::Result<u64> {
        let a = &mut self.activation;
        let v = a.recorded_value(&ctx, "$random", |_| {
            Ok(Ok(rand::random::<u64>().to_string()))
        })?;
        Ok(v.ok().and_then(|v| v.parse().ok()).unwrap_or_default())
    }

    fn log(&mut self, ctx: String, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let a = &mut self.activation;
        if a.cursor.is_replaying(&ctx) {
            return Ok(());
        }
        a.charge(Charge::LogLine(message.len()))?;
        let execution = a.execution.id.as_str();
        let tenant = a.execution.tenant.as_str();
        // The line is the guest's: its newlines and other control characters are escaped, so
        // it stays one line and cannot forge the host's own.
        let message = escape_log_line(&message);
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "aegis::guest", tenant, execution, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "aegis::guest", tenant, execution, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "aegis::guest", tenant, execution, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "aegis::guest", tenant, execution, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "aegis::guest", tenant, execution, "{message}")
            }
        }
        Ok(())
    }
}

/// Longest event kind and event data. An event as delivered (data, kind and envelope) is at
/// most 64 KiB (`notifications`); 63 KiB of data leaves room for the envelope, so a guest's event
/// is never cut on its way out.
const MAX_EVENT_KIND: usize = 128;
const MAX_EVENT_DATA: usize = 63 * 1024;

impl events::Host for HostState {
    fn publish(&mut self, ctx: String, kind: String, data: String) -> wasmtime::Result<()> {
        let a = &mut self.activation;
        let well_formed = !kind.is_empty()
            && kind.len() <= MAX_EVENT_KIND
            && kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !well_formed
            || data.len() > MAX_EVENT_DATA
            || serde_json::from_str::<Value>(&data).is_err()
        {
            let msg = format!(
                "publish: the kind must be 1-{MAX_EVENT_KIND} characters of [A-Za-z0-9._-] and the data JSON of at most {MAX_EVENT_DATA} bytes"
            );
            return Err(a.trap(Failure::InvalidCall(msg)));
        }
        a.charge(Charge::Event(kind.len() + data.len()))?;
        a.charge(Charge::Pending(kind.len() + data.len()))?;
        let name = format!("$publish:{kind}");
        // Publishing cannot fail once validated, so the recorded value is always `null`.
        let _recorded = a.recorded_value(&ctx, &name, |a| {
            a.pending.publish.push((kind.clone(), data.clone()));
            a.published.push(kind.clone());
            Ok(Ok("null".to_string()))
        })?;
        Ok(())
    }
}

impl artifacts::Host for HostState {
    fn put(
        &mut self,
        ctx: String,
        key: String,
        content_type: String,
        content: Vec<u8>,
    ) -> wasmtime::Result<Result<String, ErrorInfo>> {
        let a = &mut self.activation;
        let name = format!("$artifact.put:{key}");
        a.recorded_value(&ctx, &name, |a| {
            a.charge(Charge::Artifact(content.len()))?;
            let tenant = a.execution.tenant.clone();
            let execution = a.execution.id.clone();
            Ok(a.io(|a| {
                a.artifacts
                    .put(&tenant, &execution, &key, &content_type, &content)
            })
            .map(|r| Value::String(r.to_string()).to_string())
            .map_err(|e| ErrorRecord::new(e.put_error_type(), e.to_string())))
        })
        .map(|r| r.map(|json| serde_json::from_str::<String>(&json).unwrap_or(json)))
    }

    fn get(&mut self, reference: String) -> wasmtime::Result<Result<Vec<u8>, ErrorInfo>> {
        let a = &mut self.activation;
        let parsed = ArtifactRef::parse(&reference)
            .map_err(|e| to_info(ErrorRecord::new("Artifact.BadReference", e.to_string())));
        Ok(parsed.and_then(|r| {
            a.io(|a| a.artifacts.get(&a.execution.tenant, &r))
                .map(|(bytes, _)| bytes)
                .map_err(|e| to_info(ErrorRecord::new("Artifact.GetFailed", e.to_string())))
        }))
    }

    fn presign(
        &mut self,
        ctx: String,
        reference: String,
        expires_in_seconds: u64,
    ) -> wasmtime::Result<Result<String, ErrorInfo>> {
        let a = &mut self.activation;
        a.recorded_value(&ctx, "$artifact.presign", |a| {
            let url = ArtifactRef::parse(&reference)
                .and_then(|r| {
                    a.artifacts
                        .presign(&a.execution.tenant, &r, expires_in_seconds)
                })
                .map(|url| Value::String(url).to_string())
                .map_err(|e| ErrorRecord::new("Artifact.PresignFailed", e.to_string()));
            Ok(url)
        })
        .map(|r| r.map(|json| serde_json::from_str::<String>(&json).unwrap_or(json)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_errors_are_bounded() {
        let info = |t: &str, m: String, d: Option<&str>| ErrorInfo {
            error_type: t.into(),
            error_message: m,
            error_data: d.map(str::to_string),
        };
        let e = checked_error(info("Step.Failed", "m".into(), Some(r#"{"a":1}"#))).unwrap();
        assert_eq!(e.error_type, "Step.Failed");
        let long_type = "T".repeat(MAX_ERROR_TYPE + 1);
        assert!(matches!(
            checked_error(info(&long_type, "m".into(), None)),
            Err(Failure::InvalidCall(_))
        ));
        assert!(matches!(
            checked_error(info("A\nB", "m".into(), None)),
            Err(Failure::InvalidCall(_))
        ));
        assert!(matches!(
            checked_error(info("E", "m".into(), Some("not json"))),
            Err(Failure::InvalidPayload(_))
        ));
        let big = format!("\"{}\"", "x".repeat(MAX_PAYLOAD));
        assert!(matches!(
            checked_error(info("E", "m".into(), Some(&big))),
            Err(Failure::InvalidPayload(_))
        ));
        let max = crate::journal::MAX_ERROR_MESSAGE;
        let e = checked_error(info("E", "é".repeat(max), None)).unwrap();
        assert!(e.error_message.len() <= max, "{}", e.error_message.len());
        assert!(
            e.error_message
                .ends_with(&format!("[cut: {} bytes in all]", 2 * max))
        );
    }

    #[test]
    fn log_lines_stay_one_line() {
        assert_eq!(
            escape_log_line("ok\nERROR aegis: forged\r\u{1b}[2J"),
            "ok\\nERROR aegis: forged\\r\\u{1b}[2J"
        );
        assert_eq!(escape_log_line("naïve – fine"), "naïve – fine");
        assert!(escape_log_line(&"x".repeat(10_000)).len() <= MAX_LOG_LINE);
    }

    #[test]
    fn payloads_must_be_json() {
        assert!(check_json("r", r#"{"a": [1, 2]}"#).is_ok());
        assert!(check_json("r", "null").is_ok());
        assert!(matches!(
            check_json("r", "hello"),
            Err(Failure::InvalidPayload(_))
        ));
        assert!(matches!(
            check_json("r", ""),
            Err(Failure::InvalidPayload(_))
        ));
    }
}

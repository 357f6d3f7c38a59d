//! The durable operations a guest calls: steps (with retries), wait-for-conditions, waits,
//! callbacks, agent invocations and child contexts.
//!
//! Each checks what the guest asks for, finds a recorded outcome through the replay cursor or
//! records what its `transitions` function returns, and commits first whenever the guest is
//! about to learn something it could act on: a step's final result, a callback id it could
//! hand out, an agent dispatch.

use super::state::Activation;
use super::{Dispatch, Failure, MAX_PAYLOAD};
use crate::aegis::workflow::durable::{
    Callback, ConditionAction, ConditionAttempt, ConditionDelay, ContextBegin, Poll, StepAction,
    StepVerdict,
};
use crate::aegis::workflow::types::{ContextKind, Jitter, Outcome, RetryPolicy, StepSemantics};
use crate::budget::Charge;
use aegis_core::ids::{CallbackId, ExecutionId};
use aegis_core::journal::{
    ErrorRecord, Invoke, Operation, OperationType, Status, SubType, Task, now_ms,
};
use aegis_core::transitions::{callback, context, invoke, step, wait};

/// Shortest and longest wait or callback timeout.
const MIN_TIMEOUT_MS: u64 = 1_000;
const MAX_TIMEOUT_MS: u64 = 366 * 24 * 3600 * 1000;

/// Longest function name (or ARN, with a qualifier) and tenant id a chained invoke may pass:
/// AWS's bound on a function ARN.
const MAX_FUNCTION_NAME: usize = 256;

/// `ms` rounded up to a whole second, as AWS counts timeouts.
fn whole_seconds(ms: u64) -> u64 {
    ms.div_ceil(1000) * 1000
}

impl Activation {
    /// Begins step `name`. `policy` is the at-most-once step's retry policy, which a step found
    /// interrupted follows (see `step::interrupted`); `step-begin` gives none.
    pub(super) fn step_begin(
        &mut self,
        ctx: &str,
        name: &str,
        semantics: StepSemantics,
        policy: Option<RetryPolicy>,
    ) -> wasmtime::Result<StepAction> {
        let (id, existing) = self.begin(ctx, name, OperationType::Step, SubType::Step)?;
        let interrupted = existing
            .as_ref()
            .is_some_and(|op| op.status == Status::Started);
        let op = match existing {
            Some(op) => match op.status {
                Status::Succeeded | Status::Failed => {
                    return Ok(StepAction::Done(Self::recorded_outcome(&op)));
                }
                Status::Pending => return Ok(StepAction::Pending),
                Status::Started if semantics == StepSemantics::AtMostOnce => {
                    let policy = policy.map(step::RetryPolicy::from);
                    let (writes, ended) =
                        step::interrupted(&self.execution.id, op, policy.as_ref(), now_ms());
                    self.apply(writes)?;
                    return match ended {
                        step::Ended::RetryAt(_) => Ok(StepAction::Pending),
                        step::Ended::Done(op) => {
                            self.flush()?;
                            Ok(StepAction::Done(Self::recorded_outcome(&op)))
                        }
                    };
                }
                _ => op,
            },
            None => self.new_op(id.clone(), ctx, name, OperationType::Step, SubType::Step),
        };
        let attempt = op.attempt + 1;
        // A step found STARTED was interrupted (the guest crashed, or its host died) and runs
        // again as the same attempt: as on AWS, with no second StepStarted.
        if interrupted {
            self.resumed_steps.insert(id.clone());
        } else {
            self.apply(step::start(op, now_ms()))?;
        }
        if semantics == StepSemantics::AtMostOnce {
            self.flush()?;
        }
        self.running_steps.insert(id.clone());
        Ok(StepAction::Run((id, attempt)))
    }

    /// The running operation `id` that `call` ends (a step's or a condition's attempt), no longer
    /// running; it must be running, and of `sub_type` (else it is `wrong_kind`).
    fn end_running(
        &mut self,
        call: &str,
        id: &str,
        sub_type: SubType,
        wrong_kind: &str,
    ) -> wasmtime::Result<Operation> {
        self.resumed_steps.remove(id);
        if !self.running_steps.remove(id) {
            return Err(self.trap(Failure::InvalidCall(format!(
                "{call} for operation {id:?}, which is not running"
            ))));
        }
        let op = self.known_op(id)?;
        if op.sub_type != sub_type {
            return Err(self.trap(Failure::InvalidCall(format!(
                "{call} for operation {id:?}, which is {wrong_kind}"
            ))));
        }
        Ok(op)
    }

    pub(super) fn step_end(
        &mut self,
        id: &str,
        outcome: Outcome,
        policy: Option<RetryPolicy>,
    ) -> wasmtime::Result<StepVerdict> {
        let op = self.end_running(
            "step-end",
            id,
            SubType::Step,
            "a wait-for-condition: end it with condition-end",
        )?;
        let now = now_ms();
        let outcome = self.step_outcome(&op.name, outcome)?;
        let policy = policy.map(step::RetryPolicy::from);
        let (writes, ended) = step::end(&self.execution.id, op, outcome, policy.as_ref(), now);
        self.apply(writes)?;
        let result = match &ended {
            step::Ended::RetryAt(_) => "retried",
            step::Ended::Done(op) if op.status == Status::Succeeded => "succeeded",
            step::Ended::Done(_) => "failed",
        };
        metrics::counter!("aegis_steps_total", "result" => result).increment(1);
        match ended {
            step::Ended::RetryAt(_) => Ok(StepVerdict::RetryScheduled),
            step::Ended::Done(op) => {
                self.flush()?;
                Ok(StepVerdict::Done(Self::recorded_outcome(&op)))
            }
        }
    }

    /// The outcome of a step's attempt as the host records it: a result within
    /// [`MAX_PAYLOAD`] (a larger one fails the step with `Step.ResultTooLarge`) that is JSON, or
    /// the guest's failure within the limits of what the host stores.
    fn step_outcome(
        &mut self,
        name: &str,
        outcome: Outcome,
    ) -> wasmtime::Result<Result<String, ErrorRecord>> {
        match outcome {
            Outcome::Succeeded(payload) if payload.len() > MAX_PAYLOAD => {
                Ok(Err(ErrorRecord::new(
                    "Step.ResultTooLarge",
                    format!(
                        "step {name:?} returned {} bytes; the limit is {MAX_PAYLOAD}: store large results as artifacts",
                        payload.len()
                    ),
                )))
            }
            // An operation's result is the guest's text (JSON unless its serdes says
            // otherwise, as AWS allows): recorded and handed back as given.
            Outcome::Succeeded(payload) => Ok(Ok(payload)),
            Outcome::Failed(info) => Ok(Err(self.guest_error(info)?)),
        }
    }

    pub(super) fn condition_begin(
        &mut self,
        ctx: &str,
        name: &str,
    ) -> wasmtime::Result<ConditionAction> {
        let sub_type = SubType::WaitForCondition;
        let (id, existing) = self.begin(ctx, name, OperationType::Step, sub_type)?;
        let op = match existing {
            Some(op) => match op.status {
                Status::Succeeded | Status::Failed => {
                    return Ok(ConditionAction::Done(Self::recorded_outcome(&op)));
                }
                Status::Pending => return Ok(ConditionAction::Pending),
                // A check interrupted by a crash runs again, as the same attempt, on the same
                // state (checks are at-least-once, like AWS's).
                Status::Started => {
                    self.resumed_steps.insert(id.clone());
                    op
                }
                _ => {
                    self.apply(step::start(op.clone(), now_ms()))?;
                    op
                }
            },
            None => {
                let op = self.new_op(id.clone(), ctx, name, OperationType::Step, sub_type);
                self.apply(step::start(op.clone(), now_ms()))?;
                op
            }
        };
        self.running_steps.insert(id.clone());
        Ok(ConditionAction::Run(ConditionAttempt {
            operation_id: id,
            attempt: op.attempt + 1,
            // The state the previous attempt left: the result its RETRY recorded.
            state: op.result,
        }))
    }

    pub(super) fn condition_end(
        &mut self,
        id: &str,
        checked: Outcome,
        next: Option<ConditionDelay>,
    ) -> wasmtime::Result<StepVerdict> {
        let op = self.end_running(
            "condition-end",
            id,
            SubType::WaitForCondition,
            "not a wait-for-condition",
        )?;
        let delay = match &next {
            Some(next) => Some(condition_delay_ms(next).map_err(|f| self.trap(f))?),
            None => None,
        };
        let now = now_ms();
        let (writes, ended) = match (self.step_outcome(&op.name, checked)?, delay) {
            (Ok(state), Some(delay)) => {
                step::retry_with_state(&self.execution.id, op, state, delay, now)
            }
            (outcome, _) => step::end(&self.execution.id, op, outcome, None, now),
        };
        self.apply(writes)?;
        match ended {
            step::Ended::RetryAt(_) => Ok(StepVerdict::RetryScheduled),
            step::Ended::Done(op) => {
                self.flush()?;
                Ok(StepVerdict::Done(Self::recorded_outcome(&op)))
            }
        }
    }

    pub(super) fn check_timeout(&mut self, what: &str, ms: u64) -> wasmtime::Result<()> {
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&ms) {
            return Err(self.trap(Failure::InvalidCall(format!(
                "{what} of {ms} ms is out of range: it must be between 1 s and 366 days"
            ))));
        }
        Ok(())
    }

    pub(super) fn wait(
        &mut self,
        ctx: &str,
        name: &str,
        duration_ms: u64,
    ) -> wasmtime::Result<Poll> {
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

    pub(super) fn callback_create(
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
    pub(super) fn start_callback(
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
        metrics::counter!("aegis_callbacks_created_total").increment(1);
        Ok(callback_id)
    }

    pub(super) fn callback_poll(&mut self, id: &str) -> wasmtime::Result<Poll> {
        let op = self.known_op(id)?;
        if !matches!(
            op.op_type,
            OperationType::Callback | OperationType::ChainedInvoke
        ) {
            let msg = format!("callback-poll on operation {id:?}, which is not a callback");
            return Err(self.trap(Failure::InvalidCall(msg)));
        }
        Ok(if op.status == Status::Started {
            Poll::Pending
        } else {
            Poll::Ready(Self::recorded_outcome(&op))
        })
    }

    pub(super) fn agent_invoke(
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
        self.dispatches.push(Task::Agent(Dispatch {
            callback_id,
            agent: agent.to_string(),
            input,
        }));
        Ok(Poll::Pending)
    }

    /// Starts (or replays) the chained invoke `name`: the child execution is started once the
    /// operation is durable (the activation's [`Task::Invoke`]), and its end closes the
    /// operation.
    pub(super) fn chained_invoke(
        &mut self,
        ctx: &str,
        name: &str,
        function: &str,
        input: String,
        tenant_id: Option<String>,
        timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Poll> {
        let (id, existing) = self.begin(
            ctx,
            name,
            OperationType::ChainedInvoke,
            SubType::ChainedInvoke,
        )?;
        if let Some(op) = existing {
            return self.callback_poll(&op.id);
        }
        if function.is_empty() || function.len() > MAX_FUNCTION_NAME {
            let msg = format!(
                "chained invoke {name:?} names the function {function:?}: it must be 1 to \
                 {MAX_FUNCTION_NAME} bytes"
            );
            return Err(self.trap(Failure::InvalidCall(msg)));
        }
        if let Some(tenant_id) = &tenant_id
            && (tenant_id.is_empty() || tenant_id.len() > MAX_FUNCTION_NAME)
        {
            let msg = format!(
                "chained invoke {name:?} passes a tenant id of {} bytes: it must be 1 to \
                 {MAX_FUNCTION_NAME}",
                tenant_id.len()
            );
            return Err(self.trap(Failure::InvalidCall(msg)));
        }
        if input.len() > MAX_PAYLOAD {
            let msg = format!(
                "the input of chained invoke {name:?} is {} bytes; the limit is {MAX_PAYLOAD}: \
                 pass an artifact reference",
                input.len()
            );
            return Err(self.trap(Failure::InvalidCall(msg)));
        }
        self.check_json(&format!("the input of chained invoke {name:?}"), &input)?;
        if let Some(ms) = timeout_ms {
            self.check_timeout("chained invoke timeout", ms)?;
        }
        self.charge(Charge::Callback)?;
        self.charge(Charge::AgentCall)?;
        let invoke = Invoke {
            callback_id: CallbackId::generate(),
            tenant: self.execution.tenant.clone(),
            parent: self.execution.id.clone(),
            function: function.to_string(),
            tenant_id,
            child: ExecutionId::generate(),
            input,
        };
        let op = self.new_op(
            id,
            ctx,
            name,
            OperationType::ChainedInvoke,
            SubType::ChainedInvoke,
        );
        let timeout_ms = timeout_ms.map(whole_seconds);
        self.apply(invoke::start(&invoke, op, timeout_ms, now_ms()))?;
        metrics::counter!("aegis_callbacks_created_total").increment(1);
        // The child is started only once the operation that waits for it is durable.
        self.flush()?;
        self.dispatches.push(Task::Invoke(invoke));
        Ok(Poll::Pending)
    }

    pub(super) fn context_enter(
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
            // Its result was too large to keep: the body runs again over the recorded
            // children, and `context_exit` takes the rebuilt result without recording it.
            Some(op) if op.status == Status::Succeeded && op.replay_children => {
                self.cursor.enter_context(&id);
                self.rebuilding.insert(id.clone());
                Ok(ContextBegin::Run(id))
            }
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

    /// Enters a virtual context of `ctx` (FLAT nesting): an id for the calls made in it, and
    /// nothing recorded. Its id takes the next position in `ctx`, so a replay derives the same
    /// ids; that position must be free in the journal.
    pub(super) fn virtual_context_enter(&mut self, ctx: &str) -> wasmtime::Result<String> {
        let id = self.cursor.next_id(ctx).map_err(|e| self.replay_error(e))?;
        if let Ok(op) = self.cursor.get(&id) {
            let message = format!(
                "a virtual context was entered at {id}, where the journal holds operation {:?}",
                op.name
            );
            return Err(self.trap(Failure::NonDeterminism(message)));
        }
        // Bounded like operations: a guest entering them in a loop holds host memory.
        self.charge(Charge::Operation)?;
        let recorded = self.recorded_context(ctx).to_owned();
        self.cursor.enter_context(&id);
        self.virtual_contexts.insert(id.clone(), recorded);
        Ok(id)
    }

    pub(super) fn context_exit(&mut self, id: &str, outcome: Outcome) -> wasmtime::Result<()> {
        let op = self.known_op(id)?;
        if self.rebuilding.remove(id) {
            // The rebuilt result is the guest's to use; the journal already has the success.
            return match outcome {
                Outcome::Succeeded(_) => Ok(()),
                Outcome::Failed(info) => Err(self.trap(Failure::NonDeterminism(format!(
                    "context {:?} ({id}) succeeded in the journal, but failed with {} when its \
                     body ran again to rebuild its result",
                    op.name, info.error_type
                )))),
            };
        }
        if op.op_type != OperationType::Context || op.status != Status::Started {
            let msg = format!("context-exit for operation {id:?}, which is not an open context");
            return Err(self.trap(Failure::InvalidCall(msg)));
        }
        let outcome = match outcome {
            Outcome::Succeeded(payload) => {
                if payload.len() > MAX_PAYLOAD {
                    // Too large to keep: replays rebuild it from the children (ReplayChildren).
                    return self.apply(context::end_replaying_children(op, &payload, now_ms()));
                }
                Ok(payload)
            }
            Outcome::Failed(info) => Err(self.guest_error(info)?),
        };
        self.apply(context::end(op, outcome, now_ms()))
    }
}

/// The delay before a wait-for-condition's next check: the guest's delay, jittered and rounded
/// up to a whole second by [`step::delay_ms`].
///
/// # Errors
/// The failure that ends the activation, for a delay beyond the model's 366 days.
fn condition_delay_ms(next: &ConditionDelay) -> Result<u64, Failure> {
    if next.delay_ms > step::MAX_RETRY_DELAY_MS {
        return Err(Failure::InvalidCall(format!(
            "wait-for-condition delay of {} ms is out of range: it must be at most 366 days",
            next.delay_ms
        )));
    }
    Ok(step::delay_ms(next.delay_ms, next.jitter.into()))
}

impl From<RetryPolicy> for step::RetryPolicy {
    fn from(p: RetryPolicy) -> Self {
        Self {
            max_attempts: p.max_attempts,
            initial_delay_ms: p.initial_delay_ms,
            max_delay_ms: p.max_delay_ms,
            backoff_rate: p.backoff_rate,
            jitter: p.jitter.into(),
            retry_on: p.retry_on,
        }
    }
}

impl From<Jitter> for step::Jitter {
    fn from(j: Jitter) -> Self {
        match j {
            Jitter::None => Self::None,
            Jitter::Full => Self::Full,
            Jitter::Half => Self::Half,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(delay_ms: u64, jitter: Jitter) -> ConditionDelay {
        ConditionDelay { delay_ms, jitter }
    }

    #[test]
    fn a_condition_delay_beyond_366_days_is_refused() {
        let max = step::MAX_RETRY_DELAY_MS;
        assert_eq!(condition_delay_ms(&next(max, Jitter::None)), Ok(max));
        assert!(matches!(
            condition_delay_ms(&next(max + 1, Jitter::None)),
            Err(Failure::InvalidCall(m)) if m.contains("366 days")
        ));
        assert!(matches!(
            condition_delay_ms(&next(u64::MAX, Jitter::Full)),
            Err(Failure::InvalidCall(_))
        ));
    }

    #[test]
    fn condition_delays_are_whole_seconds_within_their_jitter() {
        assert_eq!(condition_delay_ms(&next(0, Jitter::None)), Ok(1000));
        assert_eq!(condition_delay_ms(&next(1500, Jitter::None)), Ok(2000));
        for _ in 0..200 {
            let full = condition_delay_ms(&next(4000, Jitter::Full)).unwrap();
            assert!(
                (1000..=4000).contains(&full) && full.is_multiple_of(1000),
                "{full}"
            );
            let half = condition_delay_ms(&next(4000, Jitter::Half)).unwrap();
            assert!(
                (2000..=4000).contains(&half) && half.is_multiple_of(1000),
                "{half}"
            );
        }
    }

    /// Host calls on an activation over a journal that keeps what is committed.
    mod activation {
        use super::*;
        use crate::host::fake::{NoArtifacts, RecordingJournal, running_execution};
        use aegis_core::journal::Operation;
        use aegis_core::store::ExecutionRecord;
        use std::sync::Arc;

        fn record() -> ExecutionRecord {
            running_execution("poll", 1)
        }

        /// An activation that replays `journal`, and the journal it commits to.
        fn activation(journal: Vec<Operation>) -> (Activation, Arc<RecordingJournal>) {
            let store = Arc::new(RecordingJournal::default());
            let a = Activation::new(record(), journal, store.clone(), Arc::new(NoArtifacts));
            (a, store)
        }

        fn run(action: ConditionAction) -> ConditionAttempt {
            match action {
                ConditionAction::Run(attempt) => attempt,
                ConditionAction::Done(_) => panic!("done, not run"),
                ConditionAction::Pending => panic!("pending, not run"),
            }
        }

        /// A commit waits for the store on the host's runtime, as the engine's blocking thread
        /// does.
        fn runtime() -> tokio::runtime::Runtime {
            tokio::runtime::Runtime::new().expect("a runtime")
        }

        #[test]
        fn the_state_is_carried_from_one_attempt_to_the_next() {
            let rt = runtime();
            let _inside = rt.enter();
            let (mut a, _) = activation(vec![]);
            let first = run(a.condition_begin("", "count").unwrap());
            assert_eq!((first.attempt, first.state.as_deref()), (1, None));
            let verdict = a
                .condition_end(
                    &first.operation_id,
                    Outcome::Succeeded("1".into()),
                    Some(next(1000, Jitter::None)),
                )
                .unwrap();
            assert!(matches!(verdict, StepVerdict::RetryScheduled));
            let batch = a.take_pending();
            let op = batch.operations.last().unwrap().clone();
            assert_eq!(op.sub_type, SubType::WaitForCondition);
            assert_eq!((op.status, op.attempt), (Status::Pending, 1));
            assert_eq!(op.result.as_deref(), Some("1"));
            assert_eq!(batch.set_timers.len(), 1);

            // Pending until the retry timer makes it READY (no event), then the next
            // activation's check gets the state the first one left.
            let (mut a, _) = activation(vec![op.clone()]);
            assert!(matches!(
                a.condition_begin("", "count").unwrap(),
                ConditionAction::Pending
            ));
            let mut ready = op;
            ready.status = Status::Ready;
            let (mut a, store) = activation(vec![ready]);
            let second = run(a.condition_begin("", "count").unwrap());
            assert_eq!(second.operation_id, first.operation_id);
            assert_eq!((second.attempt, second.state.as_deref()), (2, Some("1")));
            let verdict = a
                .condition_end(&second.operation_id, Outcome::Succeeded("2".into()), None)
                .unwrap();
            assert!(matches!(verdict, StepVerdict::Done(Outcome::Succeeded(ref s)) if s == "2"));
            // The final state is durable before the guest learns it.
            let commits = store.commits.lock().unwrap();
            let done = commits.last().unwrap().operations.last().unwrap().clone();
            assert_eq!((done.status, done.attempt), (Status::Succeeded, 2));
            assert_eq!(done.result.as_deref(), Some("2"));

            // A replay finds the final state without running the check.
            let (mut a, _) = activation(vec![done]);
            assert!(matches!(
                a.condition_begin("", "count").unwrap(),
                ConditionAction::Done(Outcome::Succeeded(ref s)) if s == "2"
            ));
        }

        #[test]
        fn a_check_interrupted_by_a_crash_runs_again_on_the_same_state() {
            let rt = runtime();
            let _inside = rt.enter();
            let (mut a, _) = activation(vec![]);
            let first = run(a.condition_begin("", "count").unwrap());
            a.condition_end(
                &first.operation_id,
                Outcome::Succeeded("1".into()),
                Some(next(1000, Jitter::None)),
            )
            .unwrap();
            let mut started = a.take_pending().operations.pop().unwrap();
            // Attempt 2 began (READY, then STARTED), and its activation crashed.
            started.status = Status::Started;
            let (mut a, _) = activation(vec![started]);
            let again = run(a.condition_begin("", "count").unwrap());
            assert_eq!((again.attempt, again.state.as_deref()), (2, Some("1")));
            assert!(
                a.take_pending().events.is_empty(),
                "the same attempt: no second StepStarted"
            );
        }

        #[test]
        fn a_delay_beyond_366_days_ends_the_activation() {
            let rt = runtime();
            let _inside = rt.enter();
            let (mut a, _) = activation(vec![]);
            let first = run(a.condition_begin("", "count").unwrap());
            let too_long = next(step::MAX_RETRY_DELAY_MS + 1000, Jitter::Full);
            let ended = a.condition_end(
                &first.operation_id,
                Outcome::Succeeded("1".into()),
                Some(too_long),
            );
            assert!(ended.is_err());
            assert!(
                matches!(&a.failure, Some(Failure::InvalidCall(m)) if m.contains("366 days")),
                "{:?}",
                a.failure
            );
        }

        #[test]
        fn a_failed_check_fails_the_condition_even_with_a_delay() {
            let rt = runtime();
            let _inside = rt.enter();
            let (mut a, store) = activation(vec![]);
            let first = run(a.condition_begin("", "count").unwrap());
            let error = crate::aegis::workflow::types::ErrorInfo {
                error_type: "Check.Failed".into(),
                error_message: "boom".into(),
                error_data: None,
            };
            let verdict = a
                .condition_end(
                    &first.operation_id,
                    Outcome::Failed(error),
                    Some(next(1000, Jitter::None)),
                )
                .unwrap();
            assert!(matches!(
                verdict,
                StepVerdict::Done(Outcome::Failed(ref e)) if e.error_type == "Check.Failed"
            ));
            let commits = store.commits.lock().unwrap();
            let op = commits.last().unwrap().operations.last().unwrap();
            assert_eq!((op.status, op.attempt), (Status::Failed, 1));
            assert!(commits.iter().all(|b| b.set_timers.is_empty()), "no retry");
        }

        #[test]
        fn the_two_endings_are_not_interchangeable() {
            let rt = runtime();
            let _inside = rt.enter();
            let (mut a, _) = activation(vec![]);
            let condition = run(a.condition_begin("", "count").unwrap());
            let ended = a.step_end(
                &condition.operation_id,
                Outcome::Succeeded("1".into()),
                None,
            );
            assert!(ended.is_err());
            assert!(
                matches!(&a.failure, Some(Failure::InvalidCall(m)) if m.contains("condition-end")),
                "{:?}",
                a.failure
            );

            let (mut a, _) = activation(vec![]);
            let StepAction::Run((id, _)) = a
                .step_begin("", "plain", StepSemantics::AtLeastOnce, None)
                .unwrap()
            else {
                panic!("a new step runs")
            };
            assert!(
                a.condition_end(&id, Outcome::Succeeded("1".into()), None)
                    .is_err()
            );
            assert!(
                matches!(&a.failure, Some(Failure::InvalidCall(m)) if m.contains("not a wait-for-condition")),
                "{:?}",
                a.failure
            );
        }

        use crate::aegis::workflow::types::ErrorInfo;

        fn entered(begin: ContextBegin) -> String {
            match begin {
                ContextBegin::Run(id) => id,
                ContextBegin::Done(_) => panic!("done, not run"),
            }
        }

        fn ran(action: StepAction) -> String {
            match action {
                StepAction::Run((id, _)) => id,
                _ => panic!("the step does not run"),
            }
        }

        /// A JSON string of more than the 256 KiB a context keeps.
        fn large() -> String {
            format!("\"{}\"", "x".repeat(MAX_PAYLOAD))
        }

        #[test]
        fn a_context_result_too_large_to_keep_is_rebuilt_from_the_children() {
            let rt = runtime();
            let _inside = rt.enter();
            let (mut a, store) = activation(vec![]);
            let ctx = entered(
                a.context_enter("", "big", ContextKind::RunInChildContext)
                    .unwrap(),
            );
            let step = ran(a
                .step_begin(&ctx, "seed", StepSemantics::AtLeastOnce, None)
                .unwrap());
            a.step_end(&step, Outcome::Succeeded("1".into()), None)
                .unwrap();
            a.context_exit(&ctx, Outcome::Succeeded(large())).unwrap();
            // The journal: what was committed (the step's success), then what is pending.
            let mut journal: Vec<Operation> = Vec::new();
            let committed = store.commits.lock().unwrap().clone();
            for op in committed
                .into_iter()
                .chain([a.take_pending()])
                .flat_map(|b| b.operations)
            {
                journal.retain(|kept| kept.id != op.id);
                journal.push(op);
            }
            let op = journal.iter().find(|op| op.id == ctx).unwrap();
            assert_eq!(
                (op.status, op.result.as_deref(), op.replay_children),
                (Status::Succeeded, None, true)
            );

            // The replay runs the body again: its step is replayed, and the rebuilt result is
            // taken without a write.
            let (mut a, _) = activation(journal.clone());
            let again = entered(
                a.context_enter("", "big", ContextKind::RunInChildContext)
                    .unwrap(),
            );
            assert_eq!(again, ctx);
            assert!(matches!(
                a.step_begin(&again, "seed", StepSemantics::AtLeastOnce, None).unwrap(),
                StepAction::Done(Outcome::Succeeded(ref v)) if v == "1"
            ));
            a.context_exit(&again, Outcome::Succeeded(large())).unwrap();
            assert!(a.take_pending().operations.is_empty());

            // A body that takes another path on the rebuild is non-determinism.
            let (mut a, _) = activation(journal.clone());
            let again = entered(
                a.context_enter("", "big", ContextKind::RunInChildContext)
                    .unwrap(),
            );
            assert!(
                a.step_begin(&again, "seed", StepSemantics::AtLeastOnce, None)
                    .is_ok()
            );
            assert!(
                a.step_begin(&again, "extra", StepSemantics::AtLeastOnce, None)
                    .is_err()
            );
            assert!(
                matches!(&a.failure, Some(Failure::NonDeterminism(_))),
                "{:?}",
                a.failure
            );
            let (mut a, _) = activation(journal);
            let again = entered(
                a.context_enter("", "big", ContextKind::RunInChildContext)
                    .unwrap(),
            );
            let failed = Outcome::Failed(ErrorInfo {
                error_type: "E".into(),
                error_message: "m".into(),
                error_data: None,
            });
            assert!(a.context_exit(&again, failed).is_err());
            assert!(
                matches!(&a.failure, Some(Failure::NonDeterminism(_))),
                "{:?}",
                a.failure
            );
        }

        #[test]
        fn a_virtual_context_records_its_operations_under_its_recorded_parent() {
            let rt = runtime();
            let _inside = rt.enter();
            let (mut a, _) = activation(vec![]);
            let map = entered(a.context_enter("", "map", ContextKind::Map).unwrap());
            let first = a.virtual_context_enter(&map).unwrap();
            let second = a.virtual_context_enter(&map).unwrap();
            // Nested: a virtual context in a virtual context still records under the map.
            let inner = a.virtual_context_enter(&second).unwrap();
            let steps: Vec<String> = [&first, &second, &inner]
                .into_iter()
                .map(|ctx| {
                    ran(a
                        .step_begin(ctx, "s", StepSemantics::AtLeastOnce, None)
                        .unwrap())
                })
                .collect();
            assert_eq!(steps.len(), 3);
            assert!(steps[0] != steps[1] && steps[1] != steps[2] && steps[0] != steps[2]);
            let batch = a.take_pending();
            // The map and three steps: nothing recorded for the virtual contexts themselves.
            assert_eq!(batch.operations.len(), 4);
            for op in batch
                .operations
                .iter()
                .filter(|op| op.op_type == OperationType::Step)
            {
                assert_eq!(op.parent_id.as_deref(), Some(map.as_str()));
            }

            // A replay derives the same ids; a virtual context where the journal holds an
            // operation is non-determinism.
            let (mut a, _) = activation(batch.operations.clone());
            let map = entered(a.context_enter("", "map", ContextKind::Map).unwrap());
            let again = a.virtual_context_enter(&map).unwrap();
            assert_eq!(again, first);
            let (mut a, _) = activation(batch.operations);
            assert!(a.virtual_context_enter("").is_err());
            assert!(
                matches!(&a.failure, Some(Failure::NonDeterminism(_))),
                "{:?}",
                a.failure
            );
        }

        #[test]
        fn a_chained_invoke_is_durable_before_its_child_is_started() {
            let rt = runtime();
            let _inside = rt.enter();
            let (mut a, store) = activation(vec![]);
            let poll = a
                .chained_invoke("", "call", "echo", "\"hi\"".into(), None, Some(1_500))
                .unwrap();
            assert!(matches!(poll, Poll::Pending));
            // Committed first, then left for the host to start the child.
            let commits = store.commits.lock().unwrap().clone();
            let op = commits.last().unwrap().operations[0].clone();
            assert_eq!(op.op_type, OperationType::ChainedInvoke);
            // The timeout is rounded up to whole seconds.
            let timer = &commits.last().unwrap().set_timers[0];
            assert_eq!(timer.fire_at, op.start_ts + 2_000);
            let [Task::Invoke(invoke)] = a.dispatches.as_slice() else {
                panic!("one invoke to send, got {:?}", a.dispatches);
            };
            assert_eq!(
                (invoke.function.as_str(), invoke.input.as_str()),
                ("echo", "\"hi\"")
            );
            assert_eq!(invoke.parent, record().id);
            assert_eq!(op.callback_id.as_deref(), Some(invoke.callback_id.as_str()));

            // A replay waits while the child runs, then answers with its result, and starts
            // nothing again.
            let (mut a, _) = activation(vec![op.clone()]);
            let again = a
                .chained_invoke("", "call", "echo", "\"hi\"".into(), None, Some(1_500))
                .unwrap();
            assert!(matches!(again, Poll::Pending));
            assert!(a.dispatches.is_empty());
            let mut done = op;
            done.status = Status::Succeeded;
            done.result = Some("\"hi\"".into());
            let (mut a, _) = activation(vec![done]);
            assert!(matches!(
                a.chained_invoke("", "call", "echo", "\"hi\"".into(), None, None).unwrap(),
                Poll::Ready(Outcome::Succeeded(ref v)) if v == "\"hi\""
            ));
        }

        #[test]
        fn a_chained_invoke_refuses_what_it_cannot_send() {
            let rt = runtime();
            let _inside = rt.enter();
            for (function, input, timeout) in [
                ("", "1", None),
                ("echo", "not json", None),
                ("echo", "1", Some(10)),
            ] {
                let (mut a, _) = activation(vec![]);
                let call = a.chained_invoke("", "call", function, input.into(), None, timeout);
                assert!(call.is_err(), "{function:?} {input:?} {timeout:?}");
                assert!(
                    matches!(
                        &a.failure,
                        Some(Failure::InvalidCall(_) | Failure::InvalidPayload(_))
                    ),
                    "{:?}",
                    a.failure
                );
            }
        }
    }

    #[test]
    fn the_wit_jitter_maps_to_the_host_one() {
        assert_eq!(step::Jitter::from(Jitter::None), step::Jitter::None);
        assert_eq!(step::Jitter::from(Jitter::Full), step::Jitter::Full);
        assert_eq!(step::Jitter::from(Jitter::Half), step::Jitter::Half);
    }
}

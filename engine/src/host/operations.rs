//! The durable operations a guest calls: steps (with retries), waits, callbacks, agent
//! invocations and child contexts.
//!
//! Each checks what the guest asks for, finds a recorded outcome through the replay cursor or
//! records what its `transitions` function returns, and commits first whenever the guest is
//! about to learn something it could act on: a step's final result, a callback id it could
//! hand out, an agent dispatch.

use super::state::Activation;
use super::{Dispatch, Failure, MAX_PAYLOAD};
use crate::aegis::workflow::durable::{Callback, ContextBegin, Poll, StepAction, StepVerdict};
use crate::aegis::workflow::types::{ContextKind, ErrorInfo, Outcome, RetryPolicy, StepSemantics};
use crate::budget::Charge;
use aegis_core::ids::CallbackId;
use aegis_core::journal::{OperationType, Status, SubType, now_ms};
use aegis_core::transitions::{callback, context, step, wait};

/// Shortest and longest wait or callback timeout.
const MIN_TIMEOUT_MS: u64 = 1_000;
const MAX_TIMEOUT_MS: u64 = 366 * 24 * 3600 * 1000;

impl Activation {
    pub(super) fn step_begin(
        &mut self,
        ctx: &str,
        name: &str,
        semantics: StepSemantics,
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

    pub(super) fn step_end(
        &mut self,
        id: &str,
        outcome: Outcome,
        policy: Option<RetryPolicy>,
    ) -> wasmtime::Result<StepVerdict> {
        self.resumed_steps.remove(id);
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
        Ok(callback_id)
    }

    pub(super) fn callback_poll(&mut self, id: &str) -> wasmtime::Result<Poll> {
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
        self.dispatches.push(Dispatch {
            callback_id,
            agent: agent.to_string(),
            input,
        });
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
                Outcome::Succeeded(payload) => {
                    self.check_json(&format!("the result of context {:?}", op.name), &payload)
                }
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
                self.check_json(&format!("the result of context {:?}", op.name), &payload)?;
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

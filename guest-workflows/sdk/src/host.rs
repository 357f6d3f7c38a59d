//! The only module that calls the host's imports.
//!
//! Every wrapper here does two things beyond the raw call: it counts the call for the executor's
//! progress check ([`note_host_call`]), and it turns WIT shapes into SDK shapes (an `outcome`
//! becomes a [`Recorded`], an `error-info` becomes an [`Error`]). Keeping that in one place means
//! no other module can forget either.

use crate::executor::note_host_call;
use crate::raw::aegis::workflow::{artifacts, durable, events, types};
use crate::{Error, Jitter, LogLevel, RetryPolicy, StepSemantics};

pub(crate) use types::ContextKind;

/// A finished operation's outcome: its JSON payload, or its failure.
pub(crate) type Recorded = Result<String, Error>;

/// What `step-begin` told the guest to do.
pub(crate) enum StepBegin {
    /// Run the body now (this is attempt `attempt`), then call [`step_end`].
    Run { operation_id: String, attempt: u32 },
    /// The step finished earlier.
    Done(Recorded),
    /// A retry is scheduled and not due yet.
    Pending,
}

/// What `condition-begin` told the guest to do.
pub(crate) enum ConditionBegin {
    /// Run the check now (attempt `attempt`) on `state` (none: the initial state), then call
    /// [`condition_end`].
    Run {
        operation_id: String,
        attempt: u32,
        state: Option<String>,
    },
    /// The condition finished earlier.
    Done(Recorded),
    /// The next check is scheduled and not due yet.
    Pending,
}

/// What `context-enter` told the guest to do.
pub(crate) enum ContextBegin {
    /// Run the body in the context with this id, then call [`context_exit`].
    Run(String),
    /// The context finished earlier.
    Done(Recorded),
}

/// Begins a step; `interrupted_retry` is the policy an at-most-once step found interrupted
/// follows (the host then fails that attempt with `Step.Interrupted` and may retry it).
pub(crate) fn step_begin(
    ctx: &str,
    name: &str,
    semantics: StepSemantics,
    interrupted_retry: Option<&RetryPolicy>,
) -> StepBegin {
    note_host_call();
    let action = match semantics {
        StepSemantics::AtLeastOnce => {
            durable::step_begin(ctx, name, types::StepSemantics::AtLeastOnce)
        }
        StepSemantics::AtMostOnce => durable::step_begin_at_most_once(
            ctx,
            name,
            interrupted_retry.map(RetryPolicy::to_wire).as_ref(),
        ),
    };
    match action {
        durable::StepAction::Run((operation_id, attempt)) => StepBegin::Run {
            operation_id,
            attempt,
        },
        durable::StepAction::Done(outcome) => StepBegin::Done(recorded(outcome)),
        durable::StepAction::Pending => StepBegin::Pending,
    }
}

/// Reports a step body's outcome; `None` means a retry is scheduled (the step is pending).
pub(crate) fn step_end(
    operation_id: &str,
    outcome: Recorded,
    policy: Option<&RetryPolicy>,
) -> Option<Recorded> {
    note_host_call();
    let policy = policy.map(RetryPolicy::to_wire);
    match durable::step_end(operation_id, &to_outcome(outcome), policy.as_ref()) {
        durable::StepVerdict::Done(outcome) => Some(recorded(outcome)),
        durable::StepVerdict::RetryScheduled => None,
    }
}

pub(crate) fn condition_begin(ctx: &str, name: &str) -> ConditionBegin {
    note_host_call();
    match durable::condition_begin(ctx, name) {
        durable::ConditionAction::Run(attempt) => ConditionBegin::Run {
            operation_id: attempt.operation_id,
            attempt: attempt.attempt,
            state: attempt.state,
        },
        durable::ConditionAction::Done(outcome) => ConditionBegin::Done(recorded(outcome)),
        durable::ConditionAction::Pending => ConditionBegin::Pending,
    }
}

/// Reports a check's outcome; with `next` (a delay and its jitter) another attempt is scheduled
/// and the answer is `None` (pending).
pub(crate) fn condition_end(
    operation_id: &str,
    checked: Recorded,
    next: Option<(u64, Jitter)>,
) -> Option<Recorded> {
    note_host_call();
    let next = next.map(|(delay_ms, jitter)| durable::ConditionDelay {
        delay_ms,
        jitter: jitter.to_wire(),
    });
    match durable::condition_end(operation_id, &to_outcome(checked), next) {
        durable::StepVerdict::Done(outcome) => Some(recorded(outcome)),
        durable::StepVerdict::RetryScheduled => None,
    }
}

/// Whether the running step `operation_id` began in an activation that crashed before the step
/// ended (a question about this activation: nothing is recorded).
pub(crate) fn step_resumed(operation_id: &str) -> bool {
    durable::step_resumed(operation_id)
}

/// Starts or replays a durable wait; `None` means it has not elapsed yet.
pub(crate) fn wait(ctx: &str, name: &str, duration_ms: u64) -> Option<Recorded> {
    note_host_call();
    ready(durable::wait(ctx, name, duration_ms))
}

/// Creates or replays a callback; returns `(operation id, callback id)`.
pub(crate) fn callback_create(
    ctx: &str,
    name: &str,
    timeout_ms: u64,
    heartbeat_timeout_ms: Option<u64>,
) -> (String, String) {
    note_host_call();
    let callback = durable::callback_create(ctx, name, timeout_ms, heartbeat_timeout_ms);
    (callback.operation_id, callback.callback_id)
}

/// Asks whether a callback has finished; `None` means not yet.
pub(crate) fn callback_poll(operation_id: &str) -> Option<Recorded> {
    note_host_call();
    ready(durable::callback_poll(operation_id))
}

/// Dispatches to an agent or replays its answer; `None` means no answer yet.
pub(crate) fn agent_invoke(
    ctx: &str,
    name: &str,
    agent: &str,
    input: &str,
    timeout_ms: u64,
) -> Option<Recorded> {
    note_host_call();
    ready(durable::agent_invoke(ctx, name, agent, input, timeout_ms))
}

/// Records a chained invoke or replays its child's result; `None` means no result yet.
pub(crate) fn invoke(
    ctx: &str,
    name: &str,
    function: &str,
    input: &str,
    tenant_id: Option<&str>,
    timeout_ms: Option<u64>,
) -> Option<Recorded> {
    note_host_call();
    let options = durable::InvokeOptions {
        tenant_id: tenant_id.map(str::to_owned),
        timeout_ms,
    };
    ready(durable::invoke(ctx, name, function, input, &options))
}

pub(crate) fn context_enter(ctx: &str, name: &str, kind: ContextKind) -> ContextBegin {
    note_host_call();
    match durable::context_enter(ctx, name, kind) {
        durable::ContextBegin::Run(id) => ContextBegin::Run(id),
        durable::ContextBegin::Done(outcome) => ContextBegin::Done(recorded(outcome)),
    }
}

pub(crate) fn context_exit(operation_id: &str, outcome: Recorded) {
    note_host_call();
    durable::context_exit(operation_id, &to_outcome(outcome));
}

/// Enters a virtual child context of `ctx` (nothing recorded) and returns its id.
pub(crate) fn virtual_context_enter(ctx: &str) -> String {
    note_host_call();
    durable::virtual_context_enter(ctx)
}

pub(crate) fn now(ctx: &str) -> u64 {
    note_host_call();
    durable::now(ctx)
}

pub(crate) fn random(ctx: &str) -> u64 {
    note_host_call();
    durable::random(ctx)
}

pub(crate) fn log(ctx: &str, level: LogLevel, message: &str) {
    note_host_call();
    let level = match level {
        LogLevel::Trace => types::LogLevel::Trace,
        LogLevel::Debug => types::LogLevel::Debug,
        LogLevel::Info => types::LogLevel::Info,
        LogLevel::Warn => types::LogLevel::Warn,
        LogLevel::Error => types::LogLevel::Error,
    };
    durable::log(ctx, level, message);
}

pub(crate) fn artifact_put(
    ctx: &str,
    key: &str,
    content_type: &str,
    content: &[u8],
) -> Result<String, Error> {
    note_host_call();
    artifacts::put(ctx, key, content_type, content).map_err(Error::from)
}

pub(crate) fn artifact_get(reference: &str) -> Result<Vec<u8>, Error> {
    note_host_call();
    artifacts::get(reference).map_err(Error::from)
}

pub(crate) fn artifact_presign(
    ctx: &str,
    reference: &str,
    expires_in_seconds: u64,
) -> Result<String, Error> {
    note_host_call();
    artifacts::presign(ctx, reference, expires_in_seconds).map_err(Error::from)
}

pub(crate) fn publish(ctx: &str, kind: &str, data: &str) {
    note_host_call();
    events::publish(ctx, kind, data);
}

fn ready(poll: durable::Poll) -> Option<Recorded> {
    match poll {
        durable::Poll::Ready(outcome) => Some(recorded(outcome)),
        durable::Poll::Pending => None,
    }
}

fn recorded(outcome: types::Outcome) -> Recorded {
    match outcome {
        types::Outcome::Succeeded(payload) => Ok(payload),
        types::Outcome::Failed(info) => Err(info.into()),
    }
}

fn to_outcome(outcome: Recorded) -> types::Outcome {
    match outcome {
        Ok(payload) => types::Outcome::Succeeded(payload),
        Err(error) => types::Outcome::Failed(error.into()),
    }
}

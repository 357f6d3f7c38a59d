//! Callbacks: completing, failing and heartbeating them from the outside (their timeouts are
//! the scheduler's).
//!
//! The callback id is the only capability needed, so every path checks it strictly: an id that
//! does not exist, or a callback that already ended, is refused and changes nothing. The writes
//! are [`crate::transitions::callback`]'s, each a conditional write (the operation must still be
//! STARTED), so a completion racing a timeout or a duplicate delivery has exactly one winner.

use crate::agents::Agents;
use crate::artifacts::ArtifactStore;
use crate::ids::{CallbackId, ExecutionId};
use crate::journal::{ErrorRecord, Status, Task, now_ms};
use crate::scheduler::Scheduler;
use crate::store::{self, Batch, CallbackRecord, Callbacks, Journal};
use crate::tenancy::Tenancy;
use crate::transitions::{self, callback::Closing};
use std::sync::Arc;

/// What completing a callback needs from the host: the parts it reads and writes through, and
/// waking the execution a completion made runnable. Declared here, and implemented by
/// `executions::Runtime`, so that callbacks depend on these parts and on waking, not on the
/// runtime as a whole, and of the store only on the two roles they use.
pub trait Host: Send + Sync + 'static {
    /// The operations a completion closes, and the commit that closes them.
    fn journal(&self) -> &Arc<dyn Journal>;
    /// The callback records and the agent tasks they are bound to.
    fn callbacks(&self) -> &Arc<dyn Callbacks>;
    fn agents(&self) -> &Agents;
    /// Where agent results too large to inline are stored.
    fn artifacts(&self) -> &Arc<dyn ArtifactStore>;
    fn tenancy(&self) -> &Tenancy;
    /// The queue a heartbeat's moved deadline goes to.
    fn scheduler(&self) -> &Scheduler;
    /// Agent results larger than this travel as artifact references.
    fn agent_inline_limit(&self) -> usize;
    /// Runs the execution a completion made runnable.
    fn wake(self: &Arc<Self>, id: ExecutionId);
}

/// What the outside world says about a callback.
#[derive(Clone, Debug)]
pub enum Completion {
    Succeed(String),
    Fail(ErrorRecord),
    Heartbeat,
    /// The work behind it was stopped: only a chained invoke's child, stopped by request,
    /// closes one so ([`close_invoke`]).
    Stopped(ErrorRecord),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("callback not found")]
    NotFound,
    #[error("callback already completed")]
    AlreadyCompleted,
    #[error("callback timed out before it was completed")]
    TimedOut,
    #[error("the execution of this callback has ended")]
    ExecutionEnded,
    #[error("callback result is {size} bytes; the limit is {limit} (max_payload_kb)")]
    PayloadTooLarge { size: usize, limit: usize },
    /// A push named a task this callback is not bound to (it is bound to another one).
    #[error("this callback is bound to another task than {0:?}")]
    TaskMismatch(String),
    /// A push named a task before the agent's answer to the dispatch bound one; retry later.
    #[error(
        "no task is bound to this callback yet (the agent's answer to the dispatch has not been recorded); retry"
    )]
    TaskNotBound,
    #[error(transparent)]
    Store(#[from] store::Error),
}

fn refusal(status: Status) -> Error {
    match status {
        Status::TimedOut => Error::TimedOut,
        Status::Cancelled | Status::Stopped => Error::ExecutionEnded,
        _ => Error::AlreadyCompleted,
    }
}

/// How long a push naming a task waits for the dispatch's answer to bind one, at most.
const BIND_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Receives an agent's push (or simple-form answer). A push that names a task must name the
/// task bound to this callback at dispatch ([`crate::agents`], "Binding pushes to their task"):
/// another task is refused ([`Error::TaskMismatch`]); with none bound yet, the push waits up to
/// [`BIND_WAIT`] for the dispatch's answer to bind one (a fast agent can push before it is
/// recorded), then is refused with [`Error::TaskNotBound`], which the agent may retry. In both
/// cases nothing is fetched and nothing changes.
///
/// # Errors
/// As [`answer`], and the two above.
pub async fn push(
    rt: &Arc<impl Host>,
    raw_id: &str,
    reading: crate::agents::Reading,
) -> Result<CallbackRecord, Error> {
    if let Some(named) = &reading.task_id {
        match bound_task(rt, raw_id).await? {
            Binding::Bound(bound) if bound == *named => {}
            Binding::Bound(_) => {
                return Err(Error::TaskMismatch(named.chars().take(128).collect()));
            }
            Binding::Unbound => return Err(Error::TaskNotBound),
            // A plain callback answered in A2A's shape: no agent, so nothing could be fetched
            // for it; the token decides, as before.
            Binding::NotAgent => {}
        }
    }
    answer(rt, raw_id, reading.answer).await
}

/// What a waiting callback is bound to.
enum Binding {
    Bound(String),
    /// An agent invocation whose dispatch answer named no task (yet).
    Unbound,
    /// Not an agent invocation.
    NotAgent,
}

/// The task bound to a waiting callback, waiting for the binding up to [`BIND_WAIT`].
async fn bound_task(rt: &Arc<impl Host>, raw_id: &str) -> Result<Binding, Error> {
    if !CallbackId::is_well_formed(raw_id) {
        return Err(Error::NotFound);
    }
    let id = CallbackId::from_raw(raw_id);
    let deadline = tokio::time::Instant::now() + BIND_WAIT;
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        let record = rt.callbacks().callback(&id).await?;
        let task = rt.callbacks().agent_task(&id).await?;
        let record = record.ok_or(Error::NotFound)?;
        if record.status != Status::Started {
            return Err(refusal(record.status));
        }
        if Task::is_invoke(&record) {
            return Err(Error::NotFound);
        }
        if record.agent.is_none() {
            return Ok(Binding::NotAgent);
        }
        if let Some(task) = task {
            return Ok(Binding::Bound(task));
        }
        if tokio::time::Instant::now() + pause > deadline {
            return Ok(Binding::Unbound);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(250));
    }
}

/// Records an agent's answer. A result over the runtime's inline limit is stored as an artifact
/// of the execution and the workflow receives `{"$artifact": ref, "size", "content_type"}`, so
/// the journal stays small.
///
/// # Errors
/// As [`complete`].
pub async fn answer(
    rt: &Arc<impl Host>,
    raw_id: &str,
    answer: crate::agents::Answer,
) -> Result<CallbackRecord, Error> {
    let answer = match answer {
        crate::agents::Answer::Fetch { task_id } => fetch_result(rt, raw_id, &task_id).await?,
        crate::agents::Answer::Accepted { task_id } => {
            return bind(rt, raw_id, &task_id).await;
        }
        other => other,
    };
    let kind = match &answer {
        crate::agents::Answer::Failed(_) => "failed",
        crate::agents::Answer::Done(_) => "done",
        _ => "working",
    };
    metrics::counter!("aegis_agent_answers_total", "kind" => kind).increment(1);
    let completion = match answer {
        crate::agents::Answer::Working
        | crate::agents::Answer::Fetch { .. }
        | crate::agents::Answer::Accepted { .. } => {
            return heartbeat_if_pending(rt, raw_id).await;
        }
        crate::agents::Answer::Failed(error) => Completion::Fail(error),
        crate::agents::Answer::Done(value) => {
            let payload = value.to_string();
            if payload.len() <= rt.agent_inline_limit() {
                Completion::Succeed(payload)
            } else {
                Completion::Succeed(spill(rt, raw_id, payload).await?)
            }
        }
    };
    complete(rt, raw_id, completion).await
}

/// Binds a waiting agent invocation to the task its agent created (the dispatch's answer).
async fn bind(rt: &Arc<impl Host>, raw_id: &str, task_id: &str) -> Result<CallbackRecord, Error> {
    if !CallbackId::is_well_formed(raw_id) {
        return Err(Error::NotFound);
    }
    let id = CallbackId::from_raw(raw_id);
    outside(rt.callbacks().callback(&id).await?)?;
    let bound = rt.callbacks().bind_agent_task(&id, task_id).await?;
    let record = rt.callbacks().callback(&id).await?;
    let record = record.ok_or(Error::NotFound)?;
    match bound {
        None => Err(refusal(record.status)),
        Some(bound) => {
            if bound != task_id {
                // The agent answered a resent dispatch with a new task; the first one stays.
                tracing::warn!(callback = raw_id, %bound, answered = task_id, "agent answered with another task than the one bound; keeping the first");
            }
            Ok(record)
        }
    }
}

/// Asks the agent of a waiting callback for a task's result (its push said only "completed").
async fn fetch_result(
    rt: &Arc<impl Host>,
    raw_id: &str,
    task_id: &str,
) -> Result<crate::agents::Answer, Error> {
    let record = waiting(rt, raw_id).await?;
    let Some((agent, _)) = record.agent else {
        return Err(Error::NotFound);
    };
    Ok(
        match rt.agents().fetch_task(&agent, raw_id, task_id).await {
            Ok(answer) => answer,
            Err(error) => crate::agents::Answer::Failed(error),
        },
    )
}

/// The callback `raw_id` if it exists and is still waiting. The routes that take no key ask
/// this before they read a request's body: the id is the capability, so a request without one
/// costs a lookup, not the reading and parsing of whatever body it sent.
///
/// # Errors
/// [`Error::NotFound`], or why the callback no longer waits.
pub async fn waiting(rt: &Arc<impl Host>, raw_id: &str) -> Result<CallbackRecord, Error> {
    if !CallbackId::is_well_formed(raw_id) {
        return Err(Error::NotFound);
    }
    let id = CallbackId::from_raw(raw_id);
    let record = outside(rt.callbacks().callback(&id).await?)?;
    if record.status != Status::Started {
        return Err(refusal(record.status));
    }
    Ok(record)
}

/// `record`, if the outside world may close it: a callback or an agent call, not a chained
/// invoke (only its child's end closes one, through [`close_invoke`]; to anyone else it does
/// not exist).
fn outside(record: Option<CallbackRecord>) -> Result<CallbackRecord, Error> {
    record
        .filter(|r| !Task::is_invoke(r))
        .ok_or(Error::NotFound)
}

/// The callbacks of execution `id` that are still waiting for the outside world (its chained
/// invokes, which wait for their children, are not among them).
///
/// # Errors
/// When the store cannot be read.
pub async fn pending(
    rt: &impl Host,
    id: &ExecutionId,
) -> Result<Vec<CallbackRecord>, store::Error> {
    let mut pending = rt.callbacks().pending_callbacks(id).await?;
    pending.retain(|record| !Task::is_invoke(record));
    Ok(pending)
}

/// Progress from an agent: the callback must exist and be waiting; it counts as a heartbeat.
async fn heartbeat_if_pending(rt: &Arc<impl Host>, raw_id: &str) -> Result<CallbackRecord, Error> {
    complete(rt, raw_id, Completion::Heartbeat).await
}

/// Stores a large agent result as an artifact and returns the reference payload.
async fn spill(rt: &Arc<impl Host>, raw_id: &str, payload: String) -> Result<String, Error> {
    if !CallbackId::is_well_formed(raw_id) {
        return Err(Error::NotFound);
    }
    let id = CallbackId::from_raw(raw_id);
    let record = outside(rt.callbacks().callback(&id).await?)?;
    if record.status != Status::Started {
        return Err(refusal(record.status));
    }
    let key = format!("agent-results/{}.json", record.op_id);
    let reference = rt
        .artifacts()
        .put(
            &record.tenant,
            &record.execution_id,
            &key,
            "application/json",
            payload.as_bytes(),
        )
        .await
        .map_err(|e| store::Error::Retriable(format!("store agent result: {e}")))?;
    let spilled = Spilled {
        artifact: reference.to_string(),
        content_type: "application/json",
        size: payload.len(),
    };
    Ok(serde_json::to_string(&spilled).expect("plain fields serialize"))
}

/// What a workflow receives instead of an agent result too large to inline: the artifact that
/// holds it. The guest SDK reads this shape (`$artifact`); fields are in the order the JSON map
/// this replaced wrote, so the journal's bytes did not change.
#[derive(serde::Serialize)]
struct Spilled {
    #[serde(rename = "$artifact")]
    artifact: String,
    content_type: &'static str,
    size: usize,
}

/// Applies an outside completion to the callback `raw_id`, then wakes its execution.
///
/// # Errors
/// [`Error::NotFound`], [`Error::AlreadyCompleted`], [`Error::TimedOut`] or
/// [`Error::ExecutionEnded`]; in each case nothing changed.
pub async fn complete(
    rt: &Arc<impl Host>,
    raw_id: &str,
    completion: Completion,
) -> Result<CallbackRecord, Error> {
    if !CallbackId::is_well_formed(raw_id) {
        return Err(Error::NotFound);
    }
    let id = CallbackId::from_raw(raw_id);
    let record = outside(rt.callbacks().callback(&id).await?)?;
    let (record, woke) = apply(&**rt, record, completion).await?;
    if woke {
        rt.wake(record.execution_id.clone());
    }
    Ok(record)
}

/// Closes the chained invoke `record` as its child execution ended (`closing`), then wakes
/// the execution that waits for it.
///
/// # Errors
/// As [`complete`]: an invoke that no longer waits (timed out, or its execution ended) is
/// left as it is.
pub async fn close_invoke(
    rt: &Arc<impl Host>,
    record: CallbackRecord,
    closing: Closing,
) -> Result<(), Error> {
    if !Task::is_invoke(&record) {
        return Err(Error::NotFound);
    }
    let completion = match closing {
        Closing::Succeeded(result) => Completion::Succeed(result),
        Closing::Failed(error) => Completion::Fail(error),
        Closing::Stopped(error) => Completion::Stopped(error),
    };
    let (record, woke) = apply(&**rt, record, completion).await?;
    if woke {
        rt.wake(record.execution_id.clone());
    }
    Ok(())
}

async fn apply(
    rt: &impl Host,
    record: CallbackRecord,
    completion: Completion,
) -> Result<(CallbackRecord, bool), Error> {
    let id = &record.id.clone();
    if record.status != Status::Started {
        return Err(refusal(record.status));
    }
    if let Completion::Succeed(payload) = &completion {
        let limit = rt
            .tenancy()
            .quotas(&record.tenant)
            .await
            .max_payload_bytes();
        if payload.len() > limit {
            return Err(Error::PayloadTooLarge {
                size: payload.len(),
                limit,
            });
        }
    }
    let op = rt
        .journal()
        .operation(&record.execution_id, &record.op_id)
        .await?
        .ok_or(Error::NotFound)?;
    let now = now_ms();
    let closing = match completion {
        Completion::Heartbeat => {
            let Some(batch) = transitions::callback::heartbeat(&record, &op, now) else {
                return Ok((record, false));
            };
            let timers = batch.set_timers.clone();
            commit_or_explain(rt, id, &record.execution_id, batch).await?;
            for timer in timers {
                rt.scheduler().add(timer);
            }
            return Ok((record, false));
        }
        Completion::Succeed(payload) => Closing::Succeeded(payload),
        Completion::Fail(error) => Closing::Failed(error),
        Completion::Stopped(error) => Closing::Stopped(error),
    };
    let how = match &closing {
        Closing::Succeeded(_) => "succeeded",
        Closing::Failed(_) => "failed",
        Closing::Stopped(_) => "stopped",
    };
    let batch = transitions::callback::complete(&record, op, closing, now);
    commit_or_explain(rt, id, &record.execution_id, batch).await?;
    metrics::counter!("aegis_callbacks_closed_total", "how" => how).increment(1);
    Ok((record, true))
}

/// Commits, and on a lost race reports what the callback became instead.
async fn commit_or_explain(
    rt: &impl Host,
    id: &CallbackId,
    execution: &ExecutionId,
    batch: Batch,
) -> Result<(), Error> {
    match rt.journal().commit(execution, batch).await {
        Ok(()) => Ok(()),
        Err(store::Error::ConditionFailed(_)) => {
            let now = rt.callbacks().callback(id).await?.ok_or(Error::NotFound)?;
            Err(if now.status == Status::Started {
                Error::ExecutionEnded
            } else {
                refusal(now.status)
            })
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::Spilled;

    #[test]
    fn a_spilled_result_reads_as_the_guest_sdk_expects() {
        let spilled = Spilled {
            artifact: "artifact://ex_1/agent-results/op.json".into(),
            content_type: "application/json",
            size: 3,
        };
        assert_eq!(
            serde_json::to_string(&spilled).unwrap(),
            r#"{"$artifact":"artifact://ex_1/agent-results/op.json","content_type":"application/json","size":3}"#
        );
    }
}

//! Chained invokes: starting the child execution an invoke recorded, and closing the invoke
//! when its child ends.
//!
//! The child is named after the invoke's callback id and started with the id the invoke
//! recorded, so starting it again (after a restart or a takeover) finds it instead of making
//! a second one. Its end closes the invoke: the runtime looks for an invoke only when an
//! execution whose name has the shape of a callback id ends, and closes it only if that
//! invoke's record names this very execution as its child, so no other execution (whatever
//! its name) can close an invoke. A crash between a child's end and the closing is repaired
//! by starting the child again at recovery, which finds it ended and closes the invoke then.

use super::{BACKOFF, Runtime, StartError, StartRequest};
use crate::ids::{CallbackId, ExecutionId};
use crate::journal::{ErrorRecord, Invoke, Task};
use crate::store::{ExecutionRecord, ExecutionStatus};
use crate::transitions::callback::Closing;
use std::sync::Arc;

/// Attempts at starting a child while the store fails, before it is left to the next
/// recovery.
const START_ATTEMPTS: u32 = 8;

impl Runtime {
    /// Starts the child of `invoke` (or finds it started), and closes the invoke at once when
    /// the child cannot start or has already ended.
    pub(super) async fn start_child(self: &Arc<Self>, invoke: Invoke) {
        let mut failures = 0;
        let started = loop {
            match self.try_start_child(&invoke).await {
                Err(StartError::Store(e)) if e.is_retriable() && failures < START_ATTEMPTS => {
                    failures += 1;
                    tracing::warn!(callback = %invoke.callback_id, error = %e, "cannot start a chained invoke's child yet; trying again");
                    BACKOFF.sleep(failures).await;
                }
                other => break other,
            }
        };
        match started {
            Ok(child) => self.close_parent(child).await,
            Err(StartError::Store(e)) => {
                tracing::error!(callback = %invoke.callback_id, error = %e, "cannot start a chained invoke's child; it is started again at the next recovery");
            }
            Err(e) => self.fail_invoke(&invoke, refusal(&invoke, e)).await,
        }
    }

    async fn try_start_child(
        self: &Arc<Self>,
        invoke: &Invoke,
    ) -> Result<ExecutionRecord, StartError> {
        // Started before (this is a resend): it is found by its id, whatever version of the
        // workflow is the latest now.
        if let Some(child) = self.journal.execution(&invoke.child).await? {
            return Ok(child);
        }
        let function = self
            .lambda
            .parse_function(&invoke.function)
            .map_err(StartError::Invalid)?;
        let version = crate::config::version(function.qualifier.as_deref())
            .map_err(|_| StartError::WorkflowNotFound(invoke.function.clone()))?;
        let request = StartRequest {
            workflow: function.name,
            version,
            input: invoke.input.clone(),
            name: Some(invoke.callback_id.to_string()),
            timeout_seconds: None,
        };
        let (record, _) = self
            .start_as(&invoke.tenant, request, invoke.child.clone())
            .await?;
        Ok(record)
    }

    /// Fails the invoke `invoke` with `error` (its child could not start).
    async fn fail_invoke(self: &Arc<Self>, invoke: &Invoke, error: ErrorRecord) {
        match self.callbacks.callback(&invoke.callback_id).await {
            Ok(Some(record)) => {
                let closed =
                    crate::callbacks::close_invoke(self, record, Closing::Failed(error)).await;
                if let Err(e) = closed {
                    tracing::debug!(callback = %invoke.callback_id, error = %e, "chained invoke not failed");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(callback = %invoke.callback_id, error = %e, "cannot read a chained invoke to fail it")
            }
        }
    }

    /// Tells the executions waiting for `id` that it ended, and closes the chained invoke it
    /// is the child of, if any. `name` is its name when the caller knows it (an execution
    /// whose name cannot be a callback id is no child, and costs no read).
    pub(super) fn finished_now(self: &Arc<Self>, id: &ExecutionId, name: Option<&str>) {
        self.notify_finished(id);
        if name.is_some_and(|name| !CallbackId::is_well_formed(name)) {
            return;
        }
        let this = self.clone();
        let id = id.clone();
        tokio::spawn(async move {
            match this.journal.execution(&id).await {
                Ok(Some(record)) => this.close_parent(record).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(execution = %id, error = %e, "cannot read an ended execution to close its chained invoke; recovery will")
                }
            }
        });
    }

    /// Closes the chained invoke whose child `child` is, once `child` has ended.
    async fn close_parent(self: &Arc<Self>, child: ExecutionRecord) {
        let Some(closing) = closing(&child) else {
            return;
        };
        if !CallbackId::is_well_formed(&child.name) {
            return;
        }
        let id = CallbackId::from_raw(child.name.clone());
        let record = match self.callbacks.callback(&id).await {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(callback = %id, error = %e, "cannot read a chained invoke to close it; recovery will");
                return;
            }
        };
        // Only the invoke that started this very execution is closed by its end.
        let is_parent = matches!(
            Task::of(&record),
            Some(Task::Invoke(invoke)) if invoke.child == child.id && invoke.tenant == child.tenant
        );
        if !is_parent {
            return;
        }
        if let Err(e) = crate::callbacks::close_invoke(self, record, closing).await {
            tracing::debug!(callback = %id, error = %e, "chained invoke not closed (it no longer waits)");
        }
    }
}

/// How a child's end closes its invoke; `None` while the child runs.
fn closing(child: &ExecutionRecord) -> Option<Closing> {
    let error = || {
        child.error.clone().unwrap_or_else(|| {
            ErrorRecord::new("ChainedInvoke.Failed", "the child execution failed")
        })
    };
    Some(match child.status {
        ExecutionStatus::Running => return None,
        ExecutionStatus::Succeeded => {
            Closing::Succeeded(child.result.clone().unwrap_or_else(|| "null".into()))
        }
        ExecutionStatus::Stopped => Closing::Stopped(error()),
        ExecutionStatus::Failed | ExecutionStatus::TimedOut => Closing::Failed(error()),
    })
}

/// The error an invoke fails with when its child cannot start, in AWS's words.
fn refusal(invoke: &Invoke, error: StartError) -> ErrorRecord {
    match error {
        StartError::WorkflowNotFound(_) => ErrorRecord::new(
            "ResourceNotFoundException",
            format!("Function not found: {}", invoke.function),
        ),
        StartError::Invalid(why) => ErrorRecord::new("InvalidParameterValueException", why),
        StartError::NameConflict(name) => ErrorRecord::new(
            "ResourceConflictException",
            format!("an execution named {name:?} already exists with a different start"),
        ),
        StartError::OverQuota(_) => ErrorRecord::new("TooManyRequestsException", error.to_string()),
        StartError::Store(e) => ErrorRecord::new("ServiceException", e.to_string()),
    }
}

//! Starting an execution (idempotent by name, pinned to a component digest) and stopping one
//! by request.

use super::{MAX_EXECUTION_TIMEOUT_SECS, Runtime, StartError, StartRequest, StopError};
use crate::ids::{ExecutionId, TenantId};
use crate::journal::{ErrorRecord, Millis, now_ms};
use crate::store::{self, Created, ExecutionRecord, NewExecution};
use crate::transitions::execution;
use std::sync::Arc;

impl Runtime {
    /// Starts an execution, idempotently by name.
    ///
    /// # Errors
    /// [`StartError`] for an unknown workflow, a name conflict or bad parameters.
    pub async fn start(
        self: &Arc<Self>,
        tenant: &TenantId,
        req: StartRequest,
    ) -> Result<(ExecutionRecord, bool), StartError> {
        self.start_as(tenant, req, ExecutionId::generate()).await
    }

    /// [`Runtime::start`], with the id the execution gets if it is new (a chained invoke's
    /// child gets the id its invoke recorded).
    pub(super) async fn start_as(
        self: &Arc<Self>,
        tenant: &TenantId,
        req: StartRequest,
        id: ExecutionId,
    ) -> Result<(ExecutionRecord, bool), StartError> {
        let timeout = match req.timeout_seconds {
            Some(0) => {
                return Err(StartError::Invalid(
                    "timeout_seconds must be at least 1".into(),
                ));
            }
            Some(s) if s > MAX_EXECUTION_TIMEOUT_SECS => {
                return Err(StartError::Invalid(format!(
                    "timeout_seconds must be at most {MAX_EXECUTION_TIMEOUT_SECS} (366 days)"
                )));
            }
            other => other,
        };
        let max_running = self.tenancy.quotas(tenant).await.max_running_executions;
        let tenant = tenant.clone();
        let asked;
        let created = {
            let component = self
                .catalog
                .find_component(&tenant, &req.workflow, req.version)
                .await?
                .ok_or_else(|| StartError::WorkflowNotFound(req.workflow.clone()))?;
            let now = now_ms();
            let timeout_at = timeout.map(|s| now + s as Millis * 1000);
            let started_event = execution::started_event(&req.input, timeout, now);
            // What a taken name is compared with; only named starts can find one.
            asked = req
                .name
                .is_some()
                .then(|| (req.workflow.clone(), component.version, req.input.clone()));
            self.journal
                .create_execution(NewExecution {
                    id,
                    tenant,
                    name: req.name,
                    workflow: req.workflow,
                    version: component.version,
                    digest: component.digest,
                    input: req.input,
                    now,
                    timeout_at,
                    max_running: Some(max_running),
                    started_event,
                })
                .await?
        };
        match created {
            Created::New(record) => {
                if let Some(at) = record.timeout_at {
                    self.scheduler.add(store::Timer {
                        fire_at: at,
                        execution_id: record.id.clone(),
                        op_id: String::new(),
                        kind: store::TimerKind::ExecutionTimeout,
                    });
                }
                self.wake(record.id.clone());
                Ok((record, true))
            }
            Created::NameTaken(record) => match &asked {
                Some((workflow, version, input))
                    if execution::same_start(&record, workflow, *version, input) =>
                {
                    Ok((record, false))
                }
                _ => Err(StartError::NameConflict(record.name)),
            },
            Created::OverQuota(max) => Err(StartError::OverQuota(max)),
        }
    }

    /// Stops a running execution: its status becomes STOPPED with `error` (by default
    /// `Execution.Stopped`), its timers are cleared and its callbacks can no longer be
    /// completed. An activation in flight finds its writes refused.
    ///
    /// # Errors
    /// [`StopError::NotFound`] for another tenant's or an unknown execution,
    /// [`StopError::NotRunning`] when it already ended.
    pub async fn stop(
        self: &Arc<Self>,
        tenant: &TenantId,
        id: &ExecutionId,
        error: Option<ErrorRecord>,
    ) -> Result<ExecutionRecord, StopError> {
        let record = self
            .journal
            .execution(id)
            .await?
            .filter(|r| &r.tenant == tenant)
            .ok_or(StopError::NotFound)?;
        if record.status.is_terminal() {
            return Err(StopError::NotRunning);
        }
        let error = error.unwrap_or_else(execution::stopped_error);
        let batch = execution::stop(&record.workflow, error, now_ms());
        match self.journal.commit(id, batch).await {
            Ok(()) => {}
            Err(store::Error::ConditionFailed(_)) => return Err(StopError::NotRunning),
            Err(e) => return Err(e.into()),
        }
        let stopped = self.journal.execution(id).await?.unwrap_or(record);
        self.finished_now(&stopped.id, Some(&stopped.name));
        self.notifier.kick();
        Ok(stopped)
    }
}

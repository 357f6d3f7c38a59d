//! One activation: load the execution, its journal and its component, run the guest, and
//! record how it ended (the driver [`Runtime::activate`] reads as the life of an execution).

use super::{MAX_LOAD_ATTEMPTS, Next, Outcome, Runtime};
use crate::engine::activation::{self, Ending};
use crate::engine::budget::Budget;
use crate::engine::host::Activation;
use crate::engine::trap::{Trap, TrapKind};
use crate::engine::{Limits, LoadError};
use crate::ids::{ComponentDigest, ExecutionId};
use crate::journal::{Details, ErrorRecord, Event, EventType, now_ms};
use crate::store::{self, ExecutionStatus};
use crate::transitions::execution;
use std::sync::Arc;
use std::time::Duration;

impl Runtime {
    /// One activation of `id` under the lease with fencing token `token`. Its outcome says
    /// when it must be tried again because the infrastructure (not the workflow) failed;
    /// `failures` counts the turns in a row that it did.
    pub(super) fn activate(
        self: &Arc<Self>,
        id: &ExecutionId,
        token: u64,
        failures: u32,
    ) -> Outcome {
        let outcome = |next| Outcome {
            next,
            dispatches: Vec::new(),
            wake_seq: 0,
        };
        let retry = || outcome(Next::Backoff);
        let execution = match store::wait(self.journal.execution(id)) {
            Ok(Some(e)) if e.status == ExecutionStatus::Running => e,
            Ok(_) => return outcome(Next::Done),
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "cannot load execution");
                return retry();
            }
        };
        let journal = match store::wait(self.journal.operations(id)) {
            Ok(ops) => ops,
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "cannot load journal");
                return retry();
            }
        };
        let started = now_ms();
        let wake_seq = execution.wake_seq;
        let quotas = store::wait(self.tenancy.quotas(&execution.tenant));
        let limits = Limits {
            memory_bytes: (quotas.memory_limit_mb as usize) << 20,
            cpu_deadline: Duration::from_millis(quotas.cpu_deadline_ms),
            wall_deadline: Duration::from_millis(quotas.wall_deadline_ms),
            ..self.limits.clone()
        };
        let digest = execution.digest.clone();
        let workflow = execution.workflow.clone();
        let (ending, mut activation) = match crate::components::load(
            &self.engine,
            &*self.artifacts,
            &digest,
        ) {
            Ok(pre) => {
                let activation = Activation::new(
                    execution,
                    journal,
                    self.journal.clone(),
                    self.artifacts.clone(),
                )
                .with_lease(token)
                .with_budget(Budget::new(&quotas));
                activation::run(&pre, activation, &limits)
            }
            // A disk or S3 error, or a component not fetched yet, is the host's trouble: the
            // activation is tried again with backoff, and only a component still missing after
            // many tries fails the execution.
            Err(LoadError::Io(e)) if failures + 1 < MAX_LOAD_ATTEMPTS => {
                tracing::warn!(execution = %id, %digest, error = %e, attempt = failures + 1, "cannot load the component; trying again");
                return retry();
            }
            Err(e) => {
                let ending = Ending::Failed(component_unavailable(&digest, &e.to_string()).into());
                (
                    ending,
                    Activation::new(
                        execution,
                        journal,
                        self.journal.clone(),
                        self.artifacts.clone(),
                    )
                    .with_lease(token),
                )
            }
        };
        let mut batch = activation.take_pending();
        let invocation = |error: Option<&ErrorRecord>| {
            let ended = now_ms();
            let details = Details::Invocation {
                started,
                ended,
                request_id: format!("act_{:016x}", rand::random::<u64>()),
                error: error.cloned(),
            };
            Event::execution(EventType::InvocationCompleted, ended, details)
        };
        let mut terminal = false;
        match ending {
            Ending::Abandoned {
                retry: again,
                reason,
            } => {
                tracing::warn!(execution = %id, %reason, "activation abandoned");
                return if again { retry() } else { outcome(Next::Done) };
            }
            Ending::Suspended => {
                batch.events.push(invocation(None));
                // With agent tasks to send, the execution stays runnable under the lease until
                // they are out (see `settle_after_dispatch`).
                if activation.dispatches.is_empty() {
                    batch.settle = Some(wake_seq);
                    batch.release_lease = true;
                }
            }
            Ending::Completed(result) => {
                terminal = true;
                batch.events.push(invocation(None));
                batch.append(execution::end(
                    execution::Ending::Succeeded(result),
                    &workflow,
                    now_ms(),
                ));
            }
            Ending::Failed(fault) => {
                terminal = true;
                tracing::info!(execution = %id, error_type = %fault.error_type(), trapped = fault.is_trap(), "execution failed");
                // A trap failed the activation itself; a failure the guest returned did not.
                let trapped = fault.is_trap();
                let error = fault.into_record();
                batch.events.push(invocation(trapped.then_some(&error)));
                batch.append(execution::end(
                    execution::Ending::Failed(error),
                    &workflow,
                    now_ms(),
                ));
            }
        }
        if terminal {
            batch.release_lease = true;
        }
        batch.conditions.splice(0..0, activation.guards());
        let new_timers = batch.set_timers.clone();
        let committed = match store::wait(self.journal.commit(id, batch)) {
            // The activation's last writes do not fit one commit (a store's transaction limit):
            // the execution fails, naming the limit, with a batch that holds only its ending.
            Err(store::Error::TooLarge(reason)) => {
                terminal = true;
                let error = Trap::new(
                    TrapKind::ActivationLimitExceeded,
                    format!("the activation's writes do not fit one commit: {reason}"),
                )
                .into_record();
                store::wait(
                    self.journal
                        .commit(id, too_large_ending(&activation, &workflow, error)),
                )
            }
            other => other,
        };
        match committed {
            Ok(()) => {}
            Err(store::Error::ConditionFailed(reason) | store::Error::NotFound(reason)) => {
                tracing::info!(execution = %id, %reason, "activation superseded: the execution ended or another host took it over");
                return outcome(Next::Done);
            }
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "cannot record activation");
                return retry();
            }
        }
        if !activation.published.is_empty() || terminal {
            self.notifier.kick();
        }
        if terminal {
            let _ = self.finished.send(id.clone());
        } else {
            for timer in activation.committed_timers.drain(..).chain(new_timers) {
                self.scheduler.add(timer);
            }
        }
        Outcome {
            next: Next::Done,
            // A finished execution's callbacks are cancelled: nothing to send.
            dispatches: if terminal {
                Vec::new()
            } else {
                std::mem::take(&mut activation.dispatches)
            },
            wake_seq,
        }
    }
}

/// The batch that fails an execution whose activation's own writes were too large to commit:
/// its ending alone, under the activation's guards.
fn too_large_ending(activation: &Activation, workflow: &str, error: ErrorRecord) -> store::Batch {
    let mut batch = store::Batch {
        conditions: activation.guards(),
        release_lease: true,
        ..store::Batch::default()
    };
    batch.append(execution::end(
        execution::Ending::Failed(error),
        workflow,
        now_ms(),
    ));
    batch
}

fn component_unavailable(digest: &ComponentDigest, reason: &str) -> Trap {
    Trap::new(
        TrapKind::ComponentUnavailable,
        format!("component {digest} cannot be loaded: {reason}"),
    )
}

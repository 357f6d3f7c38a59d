//! One activation: load the execution, its journal and its component, run the guest, and
//! record how it ended (the driver [`Runtime::activate`] reads as the life of an execution).

use super::{MAX_LOAD_ATTEMPTS, Next, Outcome, Runtime};
use crate::engine::activation::{self, Ending};
use crate::engine::budget::Budget;
use crate::engine::commit::commit;
use crate::engine::host::Activation;
use crate::engine::trap::{Trap, TrapKind};
use crate::engine::{Limits, LoadError};
use crate::ids::{ComponentDigest, ExecutionId};
use crate::journal::{Details, ErrorRecord, Event, EventType, Millis, Operation, now_ms};
use crate::store::{self, ExecutionStatus, LogLimits};
use crate::transitions::execution;
use std::sync::Arc;
use std::time::Duration;

/// How an activation stops early: the driver's next move, with nothing to send.
type Stop = Next;

/// Crashes in a row ([`Ending::Crashed`]) at which the execution fails instead of running again.
const MAX_CRASHES_IN_A_ROW: u32 = 5;

/// History events read per page while counting crashes.
const CRASH_SCAN_PAGE: usize = 1000;

/// How long to wait before running an activation again after its `crashes`-th crash in a row:
/// 1 s, doubling (1, 2, 4, 8 s before the fifth crash fails the execution).
fn rerun_after_crash(crashes: u32) -> Duration {
    Duration::from_secs(1 << crashes.saturating_sub(1).min(6))
}

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
        self.try_activate(id, token, failures)
            .unwrap_or_else(|next| Outcome {
                next,
                dispatches: Vec::new(),
                wake_seq: 0,
            })
    }

    /// The life of one activation: load, run the guest, record how it ended, commit, then tell
    /// the scheduler, the notifier and the driver what changed.
    fn try_activate(
        self: &Arc<Self>,
        id: &ExecutionId,
        token: u64,
        failures: u32,
    ) -> Result<Outcome, Stop> {
        let (execution, journal) = self.load(id)?;
        let started = now_ms();
        let clock = std::time::Instant::now();
        if !journal.is_empty() {
            metrics::counter!("aegis_replays_total").increment(1);
            metrics::histogram!("aegis_replayed_operations").record(journal.len() as f64);
        }
        let wake_seq = execution.wake_seq;
        let workflow = execution.workflow.clone();
        let name = execution.name.clone();
        let (ending, mut activation) = self.run_guest(execution, journal, token, failures)?;
        let (ending, rerun) = self.count_crash(id, ending)?;
        metrics::counter!("aegis_activations_total", "ending" => ending_label(&ending))
            .increment(1);
        let mut batch = activation.take_pending();
        let ended = record_ending(
            &mut batch,
            &activation,
            ending,
            id,
            &workflow,
            started,
            wake_seq,
        )?;
        // The guest's log lines go before the journal records that follow them.
        if let Err(e) = activation.flush_logs() {
            tracing::error!(execution = %id, error = %e, "cannot append the activation's log lines");
            return Err(Next::Backoff);
        }
        batch.conditions.splice(0..0, activation.guards());
        let new_timers = batch.set_timers.clone();
        let terminal = self.commit(id, batch, &activation, &workflow)? || ended;
        metrics::histogram!("aegis_activation_seconds").record(clock.elapsed().as_secs_f64());
        if !activation.published.is_empty() || terminal {
            self.notifier.kick();
        }
        if terminal {
            self.finished_now(id, Some(&name));
        } else {
            for timer in activation.committed_timers.drain(..).chain(new_timers) {
                self.scheduler.add(timer);
            }
        }
        Ok(Outcome {
            next: rerun.map_or(Next::Done, Next::RetryIn),
            // A finished execution's callbacks are cancelled: nothing to send.
            dispatches: if terminal {
                Vec::new()
            } else {
                std::mem::take(&mut activation.dispatches)
            },
            wake_seq,
        })
    }

    /// Decides what a crash ([`Ending::Crashed`]) leads to: running the activation again after
    /// a delay (returned), or, at the [`MAX_CRASHES_IN_A_ROW`]th crash in a row, failing the
    /// execution with it. Any other ending passes through.
    fn count_crash(
        &self,
        id: &ExecutionId,
        ending: Ending,
    ) -> Result<(Ending, Option<Duration>), Stop> {
        let Ending::Crashed(trap) = ending else {
            return Ok((ending, None));
        };
        let crashes = self.crashes_in_a_row(id)? + 1;
        if crashes >= MAX_CRASHES_IN_A_ROW {
            let message = format!(
                "{} (crash {crashes} in a row: the activation is not run again)",
                trap.message
            );
            return Ok((Ending::Failed(Trap::new(trap.kind, message).into()), None));
        }
        let delay = rerun_after_crash(crashes);
        tracing::warn!(execution = %id, error = %trap.message, crashes, delay_ms = delay.as_millis() as u64, "the guest exited mid-activation; running it again");
        Ok((Ending::Crashed(trap), Some(delay)))
    }

    /// How many activations in a row, up to now, ended with a crash: the `InvocationCompleted`
    /// events with a `Runtime.ExitError` after the last one that ended otherwise. Read from the
    /// history (only when a guest has just crashed), so the count survives a host restart.
    fn crashes_in_a_row(&self, id: &ExecutionId) -> Result<u32, Stop> {
        let crash_type = TrapKind::RuntimeExit.error_type();
        let (mut after, mut crashes) = (0, 0);
        loop {
            let page = store::wait(self.journal.history(id, after, CRASH_SCAN_PAGE)).map_err(|e| {
                tracing::error!(execution = %id, error = %e, "cannot read the history to count crashes");
                Next::Backoff
            })?;
            for (event_id, event) in &page {
                after = *event_id;
                if let Details::Invocation { error, .. } = &event.details {
                    let crashed = error.as_ref().is_some_and(|e| e.error_type == crash_type);
                    crashes = if crashed { crashes + 1 } else { 0 };
                }
            }
            if page.len() < CRASH_SCAN_PAGE {
                return Ok(crashes);
            }
        }
    }

    /// The running execution and its journal; an execution that is no longer running is done.
    fn load(&self, id: &ExecutionId) -> Result<(store::ExecutionRecord, Vec<Operation>), Stop> {
        let execution = match store::wait(self.journal.execution(id)) {
            Ok(Some(e)) if e.status == ExecutionStatus::Running => e,
            Ok(_) => return Err(Next::Done),
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "cannot load execution");
                return Err(Next::Backoff);
            }
        };
        match store::wait(self.journal.operations(id)) {
            Ok(journal) => Ok((execution, journal)),
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "cannot load journal");
                Err(Next::Backoff)
            }
        }
    }

    /// Loads the component and runs the guest under its tenant's limits. A component that
    /// cannot be loaded for good fails the execution (a host trap).
    fn run_guest(
        &self,
        execution: store::ExecutionRecord,
        journal: Vec<Operation>,
        token: u64,
        failures: u32,
    ) -> Result<(Ending, Activation), Stop> {
        let quotas = store::wait(self.tenancy.quotas(&execution.tenant));
        let limits = Limits {
            memory_bytes: (quotas.memory_limit_mb as usize) << 20,
            cpu_deadline: Duration::from_millis(quotas.cpu_deadline_ms),
            wall_deadline: Duration::from_millis(quotas.wall_deadline_ms),
            ..self.limits.clone()
        };
        let digest = execution.digest.clone();
        let id = execution.id.clone();
        let activation = |execution: store::ExecutionRecord, journal| {
            let arn = crate::config::execution_arn(&self.lambda, &execution);
            Activation::new(
                execution,
                journal,
                self.journal.clone(),
                self.artifacts.clone(),
            )
            .with_lease(token)
            .with_execution_arn(arn)
        };
        match crate::components::load(&self.engine, &*self.artifacts, &digest) {
            Ok(pre) => {
                let activation = activation(execution, journal)
                    .with_budget(Budget::new(&quotas))
                    .with_log_limits(LogLimits::of(&quotas));
                Ok(activation::run(&pre, activation, &limits))
            }
            // A disk or S3 error, or a component not fetched yet, is the host's trouble: the
            // activation is tried again with backoff, and only a component still missing after
            // many tries fails the execution.
            Err(LoadError::Io(e)) if failures + 1 < MAX_LOAD_ATTEMPTS => {
                tracing::warn!(execution = %id, %digest, error = %e, attempt = failures + 1, "cannot load the component; trying again");
                Err(Next::Backoff)
            }
            Err(e) => {
                let ending = Ending::Failed(component_unavailable(&digest, &e.to_string()).into());
                Ok((ending, activation(execution, journal)))
            }
        }
    }

    /// Commits the activation's batch. A batch too large for one commit fails the execution
    /// with a batch of its ending alone; answers whether that happened. A commit refused by
    /// its guards means another writer won: the activation is done.
    fn commit(
        &self,
        id: &ExecutionId,
        batch: store::Batch,
        activation: &Activation,
        workflow: &str,
    ) -> Result<bool, Stop> {
        let mut ended = false;
        let committed = match commit(&*self.journal, id, batch) {
            // The activation's last writes do not fit one commit (a store's transaction limit):
            // the execution fails, naming the limit, with a batch that holds only its ending.
            Err(store::Error::TooLarge(reason)) => {
                ended = true;
                let error = Trap::new(
                    TrapKind::ActivationLimitExceeded,
                    format!("the activation's writes do not fit one commit: {reason}"),
                )
                .into_record();
                commit(
                    &*self.journal,
                    id,
                    too_large_ending(activation, workflow, error),
                )
            }
            other => other,
        };
        match committed {
            Ok(()) => Ok(ended),
            Err(store::Error::ConditionFailed(reason) | store::Error::NotFound(reason)) => {
                tracing::info!(execution = %id, %reason, "activation superseded: the execution ended or another host took it over");
                Err(Next::Done)
            }
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "cannot record activation");
                Err(Next::Backoff)
            }
        }
    }
}

/// How an activation ended, as `aegis_activations_total` labels it.
fn ending_label(ending: &Ending) -> &'static str {
    match ending {
        Ending::Completed(_) => "completed",
        Ending::Failed(_) => "failed",
        Ending::Suspended => "suspended",
        Ending::Crashed(_) => "crashed",
        Ending::Abandoned { .. } => "abandoned",
    }
}

/// Adds how the guest's run ended to `batch`: the `InvocationCompleted` event, and the
/// execution's ending when the run completed or failed (answers whether it did). A suspended
/// run settles and gives up the lease, unless it has agent tasks to send first; an abandoned
/// one stops the activation.
fn record_ending(
    batch: &mut store::Batch,
    activation: &Activation,
    ending: Ending,
    id: &ExecutionId,
    workflow: &str,
    started: Millis,
    wake_seq: u64,
) -> Result<bool, Stop> {
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
    let end = match ending {
        Ending::Abandoned { retry, reason } => {
            tracing::warn!(execution = %id, %reason, "activation abandoned");
            return Err(if retry { Next::Backoff } else { Next::Done });
        }
        // The guest exited: its writes so far are kept with the crash, and the execution stays
        // runnable (not settled) so that the activation runs again, here after the delay the
        // caller chose, or on any host that recovers it.
        Ending::Crashed(trap) => {
            batch.events.push(invocation(Some(&trap.into_record())));
            batch.release_lease = true;
            return Ok(false);
        }
        Ending::Suspended => {
            batch.events.push(invocation(None));
            // With agent tasks to send, the execution stays runnable under the lease until
            // they are out (see `settle_after_dispatch`).
            if activation.dispatches.is_empty() {
                batch.settle = Some(wake_seq);
                batch.release_lease = true;
            }
            return Ok(false);
        }
        Ending::Completed(result) => {
            batch.events.push(invocation(None));
            execution::Ending::Succeeded(result)
        }
        Ending::Failed(fault) => {
            tracing::info!(execution = %id, error_type = %fault.error_type(), trapped = fault.is_trap(), "execution failed");
            // A trap failed the activation itself; a failure the guest returned did not.
            let trapped = fault.is_trap();
            let error = fault.into_record();
            batch.events.push(invocation(trapped.then_some(&error)));
            execution::Ending::Failed(error)
        }
    };
    batch.append(execution::end(end, workflow, now_ms()));
    batch.release_lease = true;
    Ok(true)
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

//! The execution item's write, first in every transaction: its new version, status, result,
//! wake-up state and lease, conditioned on the version read (optimistic concurrency) and on what
//! the batch requires of the execution. Also the running counts an ending execution leaves.

use super::guards::Guards;
use super::{Meaning, Plan};
use crate::blob;
use crate::expr::{Cond, UpdateExpr, Write, key, n, s};
use crate::io::Table;
use crate::keys;
use crate::records::ExecState;
use aegis_core::ids::ExecutionId;
use aegis_core::journal::Millis;
use aegis_core::store::{Batch, ExecutionStatus, Finish, Result};
use aws_sdk_dynamodb::types::AttributeValue;

/// The execution item: its version, status, result, wake-up state and lease, conditioned on the
/// version read and on what the batch requires of it. Returns the values spilled to make it fit.
#[allow(clippy::too_many_arguments)] // The parts of one write, each used once.
pub(super) fn execution_item(
    plan: &mut Plan,
    table: &Table,
    execution: &ExecutionId,
    state: &ExecState,
    batch: &Batch,
    token: &str,
    guards: &Guards,
    now: Millis,
) -> Result<blob::Spilled> {
    let next = Next::of(state, batch);
    let mut update = UpdateExpr::default();
    update
        .set("updated_at", n(now))
        .set("ver", n(state.ver + 1))
        .set("last_tx", s(token));
    if batch.release_lease {
        update.set("lease_exp", n(0));
    }
    if !batch.events.is_empty() {
        update.set(
            "next_event_id",
            n(state.next_event_id + batch.events.len() as u64),
        );
    }
    let mut spilled = blob::Spilled::default();
    if let Some(finish) = &batch.finish {
        set_outcome(&mut update, finish, table.spill.as_deref(), &mut spilled)?;
    }
    update
        .set("runnable", AttributeValue::Bool(next.runnable))
        .set("wake_seq", n(next.wake_seq));
    plan.after = Some(next.after(state, batch, token));
    if next.runnable && next.status == ExecutionStatus::Running {
        update
            .set("g2pk", s(keys::runnable_g2pk(execution.as_str())))
            .set("g2sk", s(execution.as_str()));
    } else {
        update.remove("g2pk").remove("g2sk");
    }
    plan.push(
        Write::Update {
            key: key(keys::execution_pk(execution), keys::ROOT_SK),
            update,
            cond: Some(condition(state, batch, guards)),
        },
        Meaning::Execution,
    );
    Ok(spilled)
}

/// The execution item's condition: the version read, and what the batch requires of it.
fn condition(state: &ExecState, batch: &Batch, guards: &Guards) -> Cond {
    let mut cond = Cond::Eq("ver", n(state.ver));
    if guards.requires_running {
        cond = cond.and(Cond::Eq("status", s(ExecutionStatus::Running.as_str())));
    }
    // Checked before planning too (see `DynamoStore::commit`); here it closes the race with a
    // takeover between that read and this write.
    if let Some(token) = guards.lease_token {
        cond = cond.and(Cond::Eq("lease_token", n(token)));
    }
    if !batch.events.is_empty() {
        cond = cond.and(Cond::Eq("next_event_id", n(state.next_event_id)));
    }
    cond
}

/// The execution's status, whether it is runnable and its wake counter once the batch applied.
struct Next {
    status: ExecutionStatus,
    runnable: bool,
    wake_seq: u64,
}

impl Next {
    fn of(state: &ExecState, batch: &Batch) -> Self {
        let mut next = Next {
            status: state.status,
            runnable: state.runnable,
            wake_seq: state.wake_seq,
        };
        if let Some(finish) = &batch.finish {
            next.status = finish.status;
            next.runnable = false;
        }
        if batch.wake && next.status == ExecutionStatus::Running {
            next.runnable = true;
            next.wake_seq += 1;
        }
        if batch.settle == Some(next.wake_seq) {
            next.runnable = false;
        }
        next
    }

    /// The execution item as the transaction leaves it.
    fn after(&self, state: &ExecState, batch: &Batch, token: &str) -> ExecState {
        let mut after = state.clone();
        after.ver += 1;
        after.last_tx = Some(token.to_string());
        after.next_event_id += batch.events.len() as u64;
        after.status = self.status;
        after.runnable = self.runnable;
        after.wake_seq = self.wake_seq;
        if batch.release_lease {
            after.lease.expires_at = 0;
        }
        after
    }
}

/// The status, result and error of a finishing execution.
fn set_outcome(
    update: &mut UpdateExpr,
    finish: &Finish,
    spill: Option<&dyn blob::SpillBucket>,
    spilled: &mut blob::Spilled,
) -> Result<()> {
    update.set("status", s(finish.status.as_str()));
    set_text(update, "result", finish.result.as_deref(), spill, spilled);
    let error = finish
        .error
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    set_text(update, "error", error.as_deref(), spill, spilled);
    Ok(())
}

/// Sets a text attribute of the execution item (inline or by reference) or removes it.
fn set_text(
    update: &mut UpdateExpr,
    field: &'static str,
    text: Option<&str>,
    spill: Option<&dyn blob::SpillBucket>,
    spilled: &mut blob::Spilled,
) {
    let reference = blob::ref_attr(field);
    match text {
        Some(text) => {
            let (value, by_ref) = blob::place_value(spill, text, spilled);
            if by_ref {
                update.set(reference, value).remove(field);
            } else {
                update.set(field, value).remove(reference);
            }
        }
        None => {
            update.remove(field).remove(reference);
        }
    }
}

/// An execution that stops running leaves the running counts its quota and component deletion
/// read.
pub(super) fn running_counts(plan: &mut Plan, state: &ExecState, batch: &Batch) {
    let ends = batch
        .finish
        .as_ref()
        .is_some_and(|f| f.status.is_terminal())
        && state.status == ExecutionStatus::Running;
    if !ends {
        return;
    }
    for sk in [
        keys::RUNNING_SK.to_string(),
        keys::running_digest_sk(&state.digest),
    ] {
        let mut dec = UpdateExpr::default();
        dec.add("n", n(-1));
        plan.push(
            Write::Update {
                key: key(keys::tenant_pk(&state.tenant), sk),
                update: dec,
                cond: None,
            },
            Meaning::Race,
        );
    }
}

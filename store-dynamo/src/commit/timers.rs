//! Timers: cleared all, then cleared some, then set some, in this order, as the embedded store
//! does. Clearing every timer of an ending execution is clean-up that may follow the
//! transaction (see [`super::limits`]), except for a timer the batch puts a condition on.

use super::guards;
use super::keyed::Keyed;
use super::{Meaning, Plan};
use crate::expr::{Cond, Write, key};
use crate::io::{Query, Sk, Table};
use crate::keys;
use crate::records;
use aegis_core::ids::ExecutionId;
use aegis_core::store::{Batch, Result, Timer, TimerKind};
use std::collections::HashMap;

enum TimerWrite {
    Put(Timer),
    Delete(ExecutionId, String, TimerKind),
}

impl TimerWrite {
    /// The operation and kind of the timer written.
    fn timer(&self) -> (String, TimerKind) {
        match self {
            TimerWrite::Put(t) => (t.op_id.clone(), t.kind),
            TimerWrite::Delete(_, op_id, kind) => (op_id.clone(), *kind),
        }
    }

    fn into_write(self, cond: Option<Cond>) -> Write {
        match self {
            TimerWrite::Put(t) => Write::Put {
                item: records::timer_item(&t),
                cond,
            },
            TimerWrite::Delete(exec, op_id, kind) => Write::Delete {
                key: key(keys::execution_pk(&exec), keys::timer_sk(&op_id, kind)),
                cond,
            },
        }
    }
}

/// Timers: clear all, then clear some, then set some, as the embedded store does. Clearing
/// every timer of an ending execution is clean-up (`tidy`), unless a timer carries a condition.
pub(super) async fn timers(
    plan: &mut Plan,
    table: &Table,
    execution: &ExecutionId,
    batch: &Batch,
    mut conditions: HashMap<(String, TimerKind), (Cond, String)>,
    tidy: &mut Vec<Write>,
) -> Result<()> {
    let exec_pk = keys::execution_pk(execution);
    let mut timers: Keyed<TimerWrite> = Keyed::new();
    let tidy_timers = if batch.clear_all_timers {
        existing(table, &exec_pk).await?
    } else {
        Vec::new()
    };
    for (op_id, kind) in &batch.clear_timers {
        timers.set(
            keys::timer_sk(op_id, *kind),
            TimerWrite::Delete(execution.clone(), op_id.clone(), *kind),
        );
    }
    for timer in &batch.set_timers {
        timers.set(
            keys::timer_sk(&timer.op_id, timer.kind),
            TimerWrite::Put(timer.clone()),
        );
    }
    // Clean-up deletes for timers the batch does not otherwise touch can wait; a timer with a
    // condition must be in the transaction.
    for (op_id, kind) in tidy_timers {
        let sk = keys::timer_sk(&op_id, kind);
        if timers.contains_key(&sk) {
            continue;
        }
        if conditions.contains_key(&(op_id.clone(), kind)) {
            timers.set(sk, TimerWrite::Delete(execution.clone(), op_id, kind));
        } else {
            tidy.push(Write::Delete {
                key: key(&exec_pk, sk),
                cond: None,
            });
        }
    }
    for (_, write) in timers.into_iter() {
        let (cond, meaning) = guards::take(&mut conditions, &write.timer());
        plan.push(write.into_write(cond), meaning);
    }
    for ((op_id, kind), (cond, message)) in conditions {
        plan.push(
            Write::Check {
                key: key(&exec_pk, keys::timer_sk(&op_id, kind)),
                cond,
            },
            Meaning::Business(message),
        );
    }
    Ok(())
}

/// The timers the execution has now (to clear them all).
async fn existing(table: &Table, exec_pk: &str) -> Result<Vec<(String, TimerKind)>> {
    let items = table
        .query_all(
            &Query::table(exec_pk, Sk::BeginsWith(keys::TIMER_PREFIX.into())),
            None,
        )
        .await?;
    let mut timers = Vec::new();
    for item in items {
        if let Some(t) = records::timer_from(&item)? {
            timers.push((t.op_id, t.kind));
        }
    }
    Ok(timers)
}

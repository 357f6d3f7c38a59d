//! Turning a [`Batch`] into one `TransactWriteItems` request.
//!
//! Every commit reads the execution item (strongly consistent) and writes it back with
//! `ver = ver + 1` under the condition `ver = <read>`: commits to one execution are serialised
//! by optimistic concurrency, so the EventIds read from `next_event_id` stay consecutive and the
//! wake/settle arithmetic is done on a snapshot nobody else changed. The batch's own conditions
//! become `ConditionExpression`s on the items they are about (the execution's status, an
//! operation's `st`, a timer's `fire_at <= now`), checked by DynamoDB in the same transaction.
//! A transaction that DynamoDB cancels writes nothing; [`Plan::why`] tells a failed business
//! condition (→ `ConditionFailed`) from a lost race (→ read again and retry).
//!
//! [`plan`] builds the transaction one kind of item at a time, each in its own module:
//!
//! - [`guards`]: the batch's conditions, grouped by the item they are about;
//! - [`execution`]: the execution item (and the running counts an ending execution leaves);
//! - [`journal`]: history events and operations;
//! - [`timers`], [`callbacks`], [`publish`]: timers, callbacks and workflow events;
//! - [`limits`]: what DynamoDB accepts in one transaction, and the clean-up that waits;
//! - [`verdict`]: reading the reasons DynamoDB gives for cancelling the transaction.
//!
//! Sending the transaction and retrying it is `Inner::commit` (`transact.rs`).

mod callbacks;
mod execution;
mod guards;
mod journal;
mod keyed;
mod limits;
mod publish;
mod timers;
mod verdict;

pub use limits::MAX_ITEMS;
pub use verdict::{Meaning, Verdict};

use super::blob;
use super::expr::Write;
use super::io::Table;
use super::records::ExecState;
use aegis_core::ids::ExecutionId;
use aegis_core::journal::now_ms;
use aegis_core::store::{Batch, Result};
use guards::Guards;

/// A batch, ready to send.
#[derive(Debug, Default)]
pub struct Plan {
    pub writes: Vec<Write>,
    pub meanings: Vec<Meaning>,
    /// Spilled values, written before the transaction.
    pub spilled: blob::Spilled,
    /// Clean-up the batch asks for (`clear_all_timers`, `cancel_open_callbacks`: what an ending
    /// execution leaves behind) that did not fit in the transaction: applied right after it.
    /// Harmless if lost: a timer of a finished execution fails its condition when it fires, and
    /// a callback of a finished execution cannot be completed.
    pub follow_ups: Vec<Write>,
    /// The execution item as it is once the transaction applied (what the next commit of this
    /// process may start from without reading it).
    pub after: Option<ExecState>,
}

impl Plan {
    fn push(&mut self, write: Write, meaning: Meaning) {
        self.writes.push(write);
        self.meanings.push(meaning);
    }
}

/// Builds the transaction for `batch` on top of the execution as `state` shows it: the
/// execution item, the running counts, events, operations, timers, callbacks and published
/// events, in this order, then the clean-up that fits.
pub async fn plan(
    table: &Table,
    execution: &ExecutionId,
    state: &ExecState,
    batch: &Batch,
    token: &str,
) -> Result<Plan> {
    let mut plan = Plan::default();
    let now = now_ms();
    let exec_pk = super::keys::execution_pk(execution);
    let mut guards = Guards::of(batch);
    // Writes that tidy up after an ending execution: in the transaction while there is room.
    let mut tidy = Vec::new();

    let mut spilled = execution::execution_item(
        &mut plan, table, execution, state, batch, token, &guards, now,
    )?;
    execution::running_counts(&mut plan, state, batch);
    journal::history(&mut plan, execution, state, batch)?;
    journal::operations(
        &mut plan,
        execution,
        batch,
        std::mem::take(&mut guards.operations),
    )?;
    timers::timers(
        &mut plan,
        table,
        execution,
        batch,
        std::mem::take(&mut guards.timers),
        &mut tidy,
    )
    .await?;
    callbacks::callbacks(&mut plan, table, &exec_pk, batch, &mut tidy).await?;
    publish::publish(&mut plan, table, execution, state, batch, now).await?;
    limits::seal(&mut plan, tidy)?;
    spilled.extend(blob::place(table.spill.as_deref(), &mut plan.writes));
    plan.spilled = spilled;
    Ok(plan)
}

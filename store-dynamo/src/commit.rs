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

use super::blob;
use super::expr::{Cond, UpdateExpr, Write, key, n, s};
use super::io::{ItemExt, Query, Sk, Table};
use super::keys;
use super::records::{self, ExecState, status_str};
use aegis_core::ids::ExecutionId;
use aegis_core::journal::{Status, now_ms};
use aegis_core::store::{
    Batch, CallbackRecord, Condition, ExecutionStatus, Result, Timer, TimerKind, WorkflowEvent,
};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Items one transaction may hold.
pub const MAX_ITEMS: usize = 100;

/// What a failed condition on an item means.
#[derive(Clone, Debug)]
pub enum Meaning {
    /// The execution item: its version moved (a race) or it stopped running.
    Execution,
    /// A condition of the batch did not hold.
    Business(String),
    /// Another writer got there first: read again and retry.
    Race,
}

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

/// How a cancelled transaction should be handled.
pub enum Verdict {
    ConditionFailed(String),
    /// Re-read the execution and try again.
    Retry,
    Fatal(String),
}

impl Plan {
    fn push(&mut self, write: Write, meaning: Meaning) {
        self.writes.push(write);
        self.meanings.push(meaning);
    }

    /// Reads the cancellation reasons (one per item, in order).
    pub fn why(&self, reasons: &[Option<String>]) -> Verdict {
        let mut verdict = Verdict::Retry;
        for (i, code) in reasons.iter().enumerate() {
            let Some(code) = code else { continue };
            match code.as_str() {
                "ConditionalCheckFailed" => match self.meanings.get(i) {
                    Some(Meaning::Business(m)) => return Verdict::ConditionFailed(m.clone()),
                    Some(Meaning::Execution | Meaning::Race) | None => {}
                },
                "TransactionConflict"
                | "ThrottlingError"
                | "ProvisionedThroughputExceeded"
                | "RequestLimitExceeded" => {}
                other => verdict = Verdict::Fatal(format!("item {i} refused: {other}")),
            }
        }
        verdict
    }
}

/// Keeps one write per item key, remembering the order of first appearance.
struct Keyed<T> {
    order: Vec<String>,
    map: HashMap<String, T>,
}

impl<T> Keyed<T> {
    fn new() -> Self {
        Self {
            order: Vec::new(),
            map: HashMap::new(),
        }
    }

    fn set(&mut self, k: String, v: T) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push(k);
        }
    }

    fn into_iter(mut self) -> impl Iterator<Item = (String, T)> {
        self.order.into_iter().filter_map(move |k| {
            let v = self.map.remove(&k)?;
            Some((k, v))
        })
    }
}

enum TimerWrite {
    Put(Timer),
    Delete(ExecutionId, String, TimerKind),
}

/// The batch's conditions, grouped by the item they are about: each becomes the condition of
/// that item's write (or a check of it) in the transaction.
#[derive(Default)]
struct Guards {
    operations: HashMap<String, (Cond, String)>,
    timers: HashMap<(String, TimerKind), (Cond, String)>,
    requires_running: bool,
    lease_token: Option<u64>,
}

impl Guards {
    fn of(batch: &Batch) -> Self {
        let mut guards = Guards::default();
        for condition in &batch.conditions {
            match condition {
                Condition::ExecutionRunning => guards.requires_running = true,
                Condition::Lease(token) => guards.lease_token = Some(*token),
                Condition::OperationStatus { op_id, status } => {
                    let cond = Cond::Eq("st", s(status_str(*status)));
                    let message = format!("operation {op_id} is not {status:?}");
                    merge(&mut guards.operations, op_id.clone(), cond, message);
                }
                Condition::TimerDue { op_id, kind, now } => {
                    let cond = Cond::Exists("pk").and(Cond::Le("fire_at", n(now)));
                    let message = format!("timer {kind:?} of operation {op_id} is not due");
                    merge(&mut guards.timers, (op_id.clone(), *kind), cond, message);
                }
            }
        }
        guards
    }
}

/// Adds a condition on one item to those already there (both must hold).
fn merge<K: std::hash::Hash + Eq>(
    conditions: &mut HashMap<K, (Cond, String)>,
    item: K,
    cond: Cond,
    message: String,
) {
    let merged = match conditions.remove(&item) {
        Some((c, m)) => (c.and(cond), format!("{m}; {message}")),
        None => (cond, message),
    };
    conditions.insert(item, merged);
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
    let exec_pk = keys::execution_pk(execution);
    let mut guards = Guards::of(batch);
    // Writes that tidy up after an ending execution: in the transaction while there is room.
    let mut tidy = Vec::new();

    let mut spilled = execution_item(
        &mut plan, table, execution, state, batch, token, &guards, now,
    )?;
    running_counts(&mut plan, state, batch);
    history(&mut plan, execution, state, batch)?;
    operations(
        &mut plan,
        execution,
        batch,
        std::mem::take(&mut guards.operations),
    )?;
    timers(
        &mut plan,
        table,
        execution,
        batch,
        std::mem::take(&mut guards.timers),
        &mut tidy,
    )
    .await?;
    callbacks(&mut plan, table, &exec_pk, batch, &mut tidy).await?;
    publish(&mut plan, table, execution, state, batch, now).await?;
    seal(&mut plan, tidy)?;
    spilled.extend(blob::place(table.spill.as_deref(), &mut plan.writes));
    plan.spilled = spilled;
    Ok(plan)
}

/// The execution item: its version, status, result, wake-up state and lease, conditioned on the
/// version read and on what the batch requires of it. Returns the values spilled to make it fit.
#[allow(clippy::too_many_arguments)] // The parts of one write, each used once.
fn execution_item(
    plan: &mut Plan,
    table: &Table,
    execution: &ExecutionId,
    state: &ExecState,
    batch: &Batch,
    token: &str,
    guards: &Guards,
    now: aegis_core::journal::Millis,
) -> Result<blob::Spilled> {
    let mut update = UpdateExpr::default();
    update
        .set("updated_at", n(now))
        .set("ver", n(state.ver + 1))
        .set("last_tx", s(token));
    let mut cond = Cond::Eq("ver", n(state.ver));
    if guards.requires_running {
        cond = cond.and(Cond::Eq("status", s(ExecutionStatus::Running.as_str())));
    }
    // Checked before planning too (see `DynamoStore::commit`); here it closes the race with a
    // takeover between that read and this write.
    if let Some(token) = guards.lease_token {
        cond = cond.and(Cond::Eq("lease_token", n(token)));
    }
    if batch.release_lease {
        update.set("lease_exp", n(0));
    }
    if !batch.events.is_empty() {
        update.set(
            "next_event_id",
            n(state.next_event_id + batch.events.len() as u64),
        );
        cond = cond.and(Cond::Eq("next_event_id", n(state.next_event_id)));
    }
    let mut status = state.status;
    let mut runnable = state.runnable;
    let mut wake_seq = state.wake_seq;
    let mut spilled = blob::Spilled::default();
    let spill = table.spill.as_deref();
    if let Some(finish) = &batch.finish {
        status = finish.status;
        runnable = false;
        update.set("status", s(finish.status.as_str()));
        set_text(
            &mut update,
            "result",
            finish.result.as_deref(),
            spill,
            &mut spilled,
        );
        let error = finish
            .error
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?;
        set_text(&mut update, "error", error.as_deref(), spill, &mut spilled);
    }
    if batch.wake && status == ExecutionStatus::Running {
        runnable = true;
        wake_seq += 1;
    }
    if batch.settle == Some(wake_seq) {
        runnable = false;
    }
    update
        .set("runnable", AttributeValue::Bool(runnable))
        .set("wake_seq", n(wake_seq));
    let mut after = state.clone();
    after.ver += 1;
    after.last_tx = Some(token.to_string());
    after.next_event_id += batch.events.len() as u64;
    after.status = status;
    after.runnable = runnable;
    after.wake_seq = wake_seq;
    if batch.release_lease {
        after.lease.expires_at = 0;
    }
    plan.after = Some(after);
    if runnable && status == ExecutionStatus::Running {
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
            cond: Some(cond),
        },
        Meaning::Execution,
    );
    Ok(spilled)
}

/// An execution that stops running leaves the running counts its quota and component deletion
/// read.
fn running_counts(plan: &mut Plan, state: &ExecState, batch: &Batch) {
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

/// History events, numbered from the execution's counter.
fn history(
    plan: &mut Plan,
    execution: &ExecutionId,
    state: &ExecState,
    batch: &Batch,
) -> Result<()> {
    for (i, event) in batch.events.iter().enumerate() {
        let item = records::event_item(execution, state.next_event_id + i as u64, event)?;
        plan.push(
            Write::Put {
                item,
                cond: Some(Cond::NotExists("pk")),
            },
            Meaning::Race,
        );
    }
    Ok(())
}

/// Operations: the last version of each wins, as with INSERT OR REPLACE in order. A condition
/// on an operation the batch does not write becomes a check of it.
fn operations(
    plan: &mut Plan,
    execution: &ExecutionId,
    batch: &Batch,
    mut conditions: HashMap<String, (Cond, String)>,
) -> Result<()> {
    let exec_pk = keys::execution_pk(execution);
    let mut ops = Keyed::new();
    for op in &batch.operations {
        ops.set(op.id.clone(), op);
    }
    for (op_id, op) in ops.into_iter() {
        let item = records::operation_item(execution, op)?;
        let (cond, meaning) = match conditions.remove(&op_id) {
            Some((c, m)) => (Some(c), Meaning::Business(m)),
            None => (None, Meaning::Race),
        };
        plan.push(Write::Put { item, cond }, meaning);
    }
    for (op_id, (cond, message)) in conditions {
        plan.push(
            Write::Check {
                key: key(&exec_pk, keys::operation_sk(&op_id)),
                cond,
            },
            Meaning::Business(message),
        );
    }
    Ok(())
}

/// Timers: clear all, then clear some, then set some, as the embedded store does. Clearing
/// every timer of an ending execution is clean-up (`tidy`), unless a timer carries a condition.
async fn timers(
    plan: &mut Plan,
    table: &Table,
    execution: &ExecutionId,
    batch: &Batch,
    mut conditions: HashMap<(String, TimerKind), (Cond, String)>,
    tidy: &mut Vec<Write>,
) -> Result<()> {
    let exec_pk = keys::execution_pk(execution);
    let mut timers: Keyed<TimerWrite> = Keyed::new();
    let mut tidy_timers = Vec::new();
    if batch.clear_all_timers {
        let existing = table
            .query_all(
                &Query::table(&exec_pk, Sk::BeginsWith(keys::TIMER_PREFIX.into())),
                None,
            )
            .await?;
        for item in existing {
            if let Some(t) = records::timer_from(&item)? {
                tidy_timers.push((t.op_id, t.kind));
            }
        }
    }
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
        if timers.map.contains_key(&sk) {
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
        let (op_id, kind) = match &write {
            TimerWrite::Put(t) => (t.op_id.clone(), t.kind),
            TimerWrite::Delete(_, op_id, kind) => (op_id.clone(), *kind),
        };
        let (cond, meaning) = match conditions.remove(&(op_id, kind)) {
            Some((c, m)) => (Some(c), Meaning::Business(m)),
            None => (None, Meaning::Race),
        };
        let write = match write {
            TimerWrite::Put(t) => Write::Put {
                item: records::timer_item(&t),
                cond,
            },
            TimerWrite::Delete(exec, op_id, kind) => Write::Delete {
                key: key(keys::execution_pk(&exec), keys::timer_sk(&op_id, kind)),
                cond,
            },
        };
        plan.push(write, meaning);
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

/// Callbacks, then the cancelling of those still waiting when the batch asks for it (clean-up,
/// into `tidy`, for those the batch does not write itself).
async fn callbacks(
    plan: &mut Plan,
    table: &Table,
    exec_pk: &str,
    batch: &Batch,
    tidy: &mut Vec<Write>,
) -> Result<()> {
    let mut callbacks: Keyed<CallbackRecord> = Keyed::new();
    for cb in &batch.callbacks {
        callbacks.set(cb.id.as_str().to_string(), cb.clone());
    }
    if batch.cancel_open_callbacks {
        for cb in callbacks.map.values_mut() {
            if cb.status == Status::Started {
                cb.status = Status::Cancelled;
            }
        }
        let existing = table
            .query_all(
                &Query::table(exec_pk, Sk::BeginsWith(keys::CALLBACK_PREFIX.into())),
                None,
            )
            .await?;
        for item in existing {
            let Some(id) = item.str("id") else { continue };
            if callbacks.map.contains_key(id) || item.str("st") != Some("STARTED") {
                continue;
            }
            let mut cancel = UpdateExpr::default();
            cancel
                .set("st", s(status_str(Status::Cancelled)))
                .remove("g2pk")
                .remove("g2sk");
            tidy.push(Write::Update {
                key: key(exec_pk, keys::callback_sk(id)),
                update: cancel,
                cond: Some(Cond::Eq("st", s("STARTED"))),
            });
        }
    }
    for (_, cb) in callbacks.into_iter() {
        plan.push(
            Write::Put {
                item: records::callback_item(&cb),
                cond: None,
            },
            Meaning::Race,
        );
        plan.push(
            Write::Put {
                item: records::callback_pointer(&cb),
                cond: None,
            },
            Meaning::Race,
        );
    }
    Ok(())
}

/// Workflow events: numbered by one counter, inside the transaction, so seqs have no gaps and
/// become visible in order (readers page through them by seq).
async fn publish(
    plan: &mut Plan,
    table: &Table,
    execution: &ExecutionId,
    state: &ExecState,
    batch: &Batch,
    now: aegis_core::journal::Millis,
) -> Result<()> {
    if batch.publish.is_empty() {
        return Ok(());
    }
    let counter = table.get(keys::EVENT_SEQ_PK, keys::ROOT_SK).await?;
    let last: u64 = counter.as_ref().and_then(|c| c.num("n")).unwrap_or(0);
    let mut bump = UpdateExpr::default();
    bump.set("n", n(last + batch.publish.len() as u64));
    let cond = if counter.is_some() {
        Cond::Eq("n", n(last))
    } else {
        Cond::NotExists("pk")
    };
    plan.push(
        Write::Update {
            key: key(keys::EVENT_SEQ_PK, keys::ROOT_SK),
            update: bump,
            cond: Some(cond),
        },
        Meaning::Race,
    );
    for (i, (kind, data)) in batch.publish.iter().enumerate() {
        let event = WorkflowEvent {
            seq: last + 1 + i as u64,
            tenant: aegis_core::ids::TenantId::from_raw(state.tenant.clone()),
            execution_id: execution.clone(),
            kind: kind.clone(),
            data: data.clone(),
            created_at: now,
        };
        for pk in [
            keys::EVENTS_PK.to_string(),
            keys::tenant_events_pk(&state.tenant),
            keys::execution_events_pk(execution.as_str()),
        ] {
            plan.push(
                Write::Put {
                    item: records::workflow_event_item(pk, &event),
                    cond: Some(Cond::NotExists("pk")),
                },
                Meaning::Race,
            );
        }
        let mut marker = key(keys::OUTBOX_PK, keys::seq(event.seq));
        marker.insert("seq".into(), n(event.seq));
        plan.push(
            Write::Put {
                item: marker,
                cond: None,
            },
            Meaning::Race,
        );
    }
    Ok(())
}

/// Lets the clean-up ride along while there is room (the rest follows the transaction), and
/// refuses a transaction DynamoDB would: over [`MAX_ITEMS`], or touching an item twice.
fn seal(plan: &mut Plan, mut tidy: Vec<Write>) -> Result<()> {
    let room = MAX_ITEMS.saturating_sub(plan.writes.len());
    let later = tidy.split_off(room.min(tidy.len()));
    for write in tidy {
        plan.push(write, Meaning::Race);
    }
    plan.follow_ups = later;
    if plan.writes.len() > MAX_ITEMS {
        return Err(aegis_core::store::Error::TooLarge(format!(
            "batch needs {} DynamoDB items in one transaction; DynamoDB allows {MAX_ITEMS}: \
             record fewer operations between commits (e.g. smaller fan-outs per activation)",
            plan.writes.len()
        )));
    }
    // DynamoDB refuses a transaction that touches an item twice; say which item.
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = plan
        .writes
        .iter()
        .map(Write::key_pair)
        .find(|k| !seen.insert(k.clone()))
    {
        return Err(aegis_core::store::Error::Fatal(format!(
            "batch writes item {dup:?} twice"
        )));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with(meanings: Vec<Meaning>) -> Plan {
        Plan {
            writes: Vec::new(),
            meanings,
            ..Plan::default()
        }
    }

    #[test]
    fn cancellation_reasons_separate_conditions_from_races() {
        let plan = plan_with(vec![
            Meaning::Execution,
            Meaning::Business("operation 1 is not Pending".into()),
            Meaning::Race,
        ]);
        let code = |c: &str| Some(c.to_string());
        assert!(matches!(
            plan.why(&[None, code("ConditionalCheckFailed"), None]),
            Verdict::ConditionFailed(m) if m.contains("operation 1")
        ));
        assert!(matches!(
            plan.why(&[code("ConditionalCheckFailed"), None, None]),
            Verdict::Retry
        ));
        assert!(matches!(
            plan.why(&[None, None, code("TransactionConflict")]),
            Verdict::Retry
        ));
        assert!(matches!(
            plan.why(&[code("ValidationError"), None, None]),
            Verdict::Fatal(_)
        ));
    }

    #[test]
    fn keyed_writes_keep_the_last_value_in_first_order() {
        let mut k = Keyed::new();
        k.set("a".into(), 1);
        k.set("b".into(), 2);
        k.set("a".into(), 3);
        assert_eq!(
            k.into_iter().collect::<Vec<_>>(),
            vec![("a".into(), 3), ("b".into(), 2)]
        );
    }
}

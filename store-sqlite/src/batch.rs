//! Applying a batch, and claiming a lease, inside the writer's transaction.

use super::rows::*;
use crate::failure::Result;
use aegis_core::journal::*;
use aegis_core::store::*;
use rusqlite::{OptionalExtension, Transaction, params};

pub(super) fn append_events(tx: &Transaction<'_>, execution: &str, events: &[Event]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let next: i64 = tx
        .prepare_cached("SELECT next_event_id FROM executions WHERE id = ?1")?
        .query_row([execution], |r| r.get(0))?;
    let mut insert =
        tx.prepare_cached("INSERT INTO events (execution_id, event_id, data) VALUES (?1, ?2, ?3)")?;
    for (i, event) in events.iter().enumerate() {
        insert.execute(params![
            execution,
            next + i as i64,
            serde_json::to_string(event)?
        ])?;
    }
    tx.prepare_cached("UPDATE executions SET next_event_id = ?2 WHERE id = ?1")?
        .execute(params![execution, next + events.len() as i64])?;
    Ok(())
}

pub(super) fn apply_batch(tx: &Transaction<'_>, execution: &str, batch: &Batch) -> Result<()> {
    let exists = tx
        .prepare_cached("SELECT 1 FROM executions WHERE id = ?1")?
        .query_row([execution], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Err(Error::NotFound(format!("execution {execution}")).into());
    }
    for condition in &batch.conditions {
        check(tx, execution, condition)?;
    }
    let now = aegis_core::journal::now_ms();
    put_operations(tx, execution, &batch.operations)?;
    append_events(tx, execution, &batch.events)?;
    apply_timers(tx, execution, batch)?;
    put_callbacks(tx, &batch.callbacks)?;
    if batch.cancel_open_callbacks {
        tx.prepare_cached(
            "UPDATE callbacks SET status = 'CANCELLED' WHERE execution_id = ?1 AND status = 'STARTED'",
        )?
        .execute([execution])?;
    }
    record_end(tx, execution, batch.finish.as_ref(), now)?;
    publish(tx, execution, &batch.publish, now)?;
    apply_scheduling(tx, execution, batch)
}

/// Fails with [`Error::ConditionFailed`], naming what did not hold, unless `condition` holds.
fn check(tx: &Transaction<'_>, execution: &str, condition: &Condition) -> Result<()> {
    match condition {
        Condition::ExecutionRunning => {
            let status: Option<String> = tx
                .prepare_cached("SELECT status FROM executions WHERE id = ?1")?
                .query_row([execution], |r| r.get(0))
                .optional()?;
            if status.as_deref() != Some("RUNNING") {
                return Err(Error::ConditionFailed(format!(
                    "execution {execution} is not running"
                ))
                .into());
            }
        }
        Condition::Lease(token) => {
            let current: Option<i64> = tx
                .prepare_cached("SELECT lease_token FROM executions WHERE id = ?1")?
                .query_row([execution], |r| r.get(0))
                .optional()?;
            if current != Some(*token as i64) {
                return Err(Error::ConditionFailed(format!(
                    "the lease of execution {execution} was taken over (token {token} is stale)"
                ))
                .into());
            }
        }
        Condition::TimerDue { op_id, kind, now } => {
            let fire_at: Option<i64> = tx
                .prepare_cached(
                    "SELECT fire_at FROM timers WHERE execution_id = ?1 AND op_id = ?2 AND kind = ?3",
                )?
                .query_row(params![execution, op_id, kind.as_str()], |r| r.get(0))
                .optional()?;
            if fire_at.is_none_or(|at| at > *now) {
                return Err(Error::ConditionFailed(format!(
                    "timer {kind:?} of operation {op_id} is not due"
                ))
                .into());
            }
        }
        Condition::OperationStatus { op_id, status } => {
            let data: Option<String> = tx
                .prepare_cached(
                    "SELECT data FROM operations WHERE execution_id = ?1 AND op_id = ?2",
                )?
                .query_row([execution, op_id.as_str()], |r| r.get(0))
                .optional()?;
            let current = data
                .map(|d| serde_json::from_str::<Operation>(&d))
                .transpose()?
                .map(|op| op.status);
            if current != Some(*status) {
                return Err(Error::ConditionFailed(format!(
                    "operation {op_id} is {current:?}, expected {status:?}"
                ))
                .into());
            }
        }
    }
    Ok(())
}

fn put_operations(tx: &Transaction<'_>, execution: &str, operations: &[Operation]) -> Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT OR REPLACE INTO operations (execution_id, op_id, data) VALUES (?1, ?2, ?3)",
    )?;
    for op in operations {
        upsert.execute(params![execution, op.id, serde_json::to_string(op)?])?;
    }
    Ok(())
}

/// Clears every timer, or the ones named, then sets the batch's timers.
fn apply_timers(tx: &Transaction<'_>, execution: &str, batch: &Batch) -> Result<()> {
    if batch.clear_all_timers {
        tx.prepare_cached("DELETE FROM timers WHERE execution_id = ?1")?
            .execute([execution])?;
    }
    let mut clear = tx.prepare_cached(
        "DELETE FROM timers WHERE execution_id = ?1 AND op_id = ?2 AND kind = ?3",
    )?;
    for (op_id, kind) in &batch.clear_timers {
        clear.execute(params![execution, op_id, kind.as_str()])?;
    }
    let mut set = tx.prepare_cached(
        "INSERT OR REPLACE INTO timers (execution_id, op_id, kind, fire_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for timer in &batch.set_timers {
        set.execute(params![
            timer.execution_id.as_str(),
            timer.op_id,
            timer.kind.as_str(),
            timer.fire_at
        ])?;
    }
    Ok(())
}

fn put_callbacks(tx: &Transaction<'_>, callbacks: &[CallbackRecord]) -> Result<()> {
    // An upsert that leaves `task_id` alone: the task an agent invocation is bound to
    // outlives the record's rewrites (see `bind_agent_task`).
    let mut upsert = tx.prepare_cached(
        "INSERT INTO callbacks
            (callback_id, tenant_id, execution_id, op_id, name, status, heartbeat_timeout_ms, agent, agent_input)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (callback_id) DO UPDATE SET
            tenant_id = excluded.tenant_id, execution_id = excluded.execution_id,
            op_id = excluded.op_id, name = excluded.name, status = excluded.status,
            heartbeat_timeout_ms = excluded.heartbeat_timeout_ms, agent = excluded.agent,
            agent_input = excluded.agent_input",
    )?;
    for cb in callbacks {
        upsert.execute(params![
            cb.id.as_str(),
            cb.tenant.as_str(),
            cb.execution_id.as_str(),
            cb.op_id,
            cb.name,
            status_str(cb.status),
            cb.heartbeat_timeout_ms.map(|v| v as i64),
            cb.agent.as_ref().map(|(a, _)| a.as_str()),
            cb.agent.as_ref().map(|(_, i)| i.as_str())
        ])?;
    }
    Ok(())
}

/// The execution's end when the batch finishes it (no longer runnable), else only its
/// `updated_at`.
fn record_end(
    tx: &Transaction<'_>,
    execution: &str,
    finish: Option<&Finish>,
    now: Millis,
) -> Result<()> {
    if let Some(finish) = finish {
        let error = finish
            .error
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?;
        tx.prepare_cached(
            "UPDATE executions SET status = ?2, result = ?3, error = ?4, updated_at = ?5, runnable = 0 WHERE id = ?1",
        )?
        .execute(params![execution, finish.status.as_str(), finish.result, error, now])?;
    } else {
        tx.prepare_cached("UPDATE executions SET updated_at = ?2 WHERE id = ?1")?
            .execute(params![execution, now])?;
    }
    Ok(())
}

/// Workflow events into the outbox, under the execution's tenant.
fn publish(
    tx: &Transaction<'_>,
    execution: &str,
    events: &[(String, String)],
    now: Millis,
) -> Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO workflow_events (tenant_id, execution_id, kind, data, created_at)
         SELECT tenant_id, id, ?2, ?3, ?4 FROM executions WHERE id = ?1",
    )?;
    for (kind, data) in events {
        insert.execute(params![execution, kind, data, now])?;
    }
    Ok(())
}

/// Wake (runnable again, a new wake sequence), settle (not runnable, unless woken since) and
/// release the lease, as the batch says.
fn apply_scheduling(tx: &Transaction<'_>, execution: &str, batch: &Batch) -> Result<()> {
    if batch.wake {
        tx.prepare_cached(
            "UPDATE executions SET runnable = 1, wake_seq = wake_seq + 1 WHERE id = ?1 AND status = 'RUNNING'",
        )?
        .execute([execution])?;
    }
    if let Some(seq) = batch.settle {
        tx.prepare_cached("UPDATE executions SET runnable = 0 WHERE id = ?1 AND wake_seq = ?2")?
            .execute(params![execution, seq as i64])?;
    }
    if batch.release_lease {
        tx.prepare_cached("UPDATE executions SET lease_expires_at = 0 WHERE id = ?1")?
            .execute([execution])?;
    }
    Ok(())
}

pub(super) fn acquire(
    tx: &Transaction<'_>,
    id: &str,
    host: &str,
    now: Millis,
    ttl_ms: u64,
) -> Result<Claim> {
    let row = tx
        .prepare_cached(
            "SELECT status, runnable, lease_owner, lease_token, lease_expires_at
             FROM executions WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>("status")?,
                r.get::<_, bool>("runnable")?,
                lease_from_row(r)?,
            ))
        })
        .optional()?;
    let Some((status, runnable, lease)) = row else {
        return Ok(Claim::Idle);
    };
    let claim = lease.claim(
        runnable && status == ExecutionStatus::Running.as_str(),
        host,
        now,
        ttl_ms,
    );
    if let Claim::Acquired { lease: taken, .. } = &claim {
        tx.prepare_cached(
            "UPDATE executions SET lease_owner = ?2, lease_token = ?3, lease_expires_at = ?4 WHERE id = ?1",
        )?
        .execute(params![id, taken.owner, taken.token as i64, taken.expires_at])?;
    }
    Ok(claim)
}

//! The batch's conditions, grouped by the item they are about. DynamoDB checks a condition on
//! the item a transaction writes (or on an item it only checks), so each condition of the batch
//! is attached to its item: the execution item's (running, lease), an operation's `st`, a
//! timer's `fire_at`. Two conditions on one item must both hold.

use super::Meaning;
use crate::expr::{Cond, n, s};
use crate::records::status_str;
use aegis_core::store::{Batch, Condition, TimerKind};
use std::collections::HashMap;

/// The batch's conditions, grouped by the item they are about: each becomes the condition of
/// that item's write (or a check of it) in the transaction.
#[derive(Default)]
pub(super) struct Guards {
    pub(super) operations: HashMap<String, (Cond, String)>,
    pub(super) timers: HashMap<(String, TimerKind), (Cond, String)>,
    pub(super) requires_running: bool,
    pub(super) lease_token: Option<u64>,
}

impl Guards {
    pub(super) fn of(batch: &Batch) -> Self {
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

/// The condition the batch puts on one item it writes, if any, and what its failure means.
pub(super) fn take<K: std::hash::Hash + Eq>(
    conditions: &mut HashMap<K, (Cond, String)>,
    item: &K,
) -> (Option<Cond>, Meaning) {
    match conditions.remove(item) {
        Some((c, m)) => (Some(c), Meaning::Business(m)),
        None => (None, Meaning::Race),
    }
}

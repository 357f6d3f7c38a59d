//! The journal part of a batch: history events, numbered from the execution's counter, and
//! operations, the last version of each winning. A condition on an operation rides on its write,
//! or on a check of it when the batch does not write it.

use super::guards;
use super::keyed::Keyed;
use super::{Meaning, Plan};
use crate::expr::{Cond, Write, key};
use crate::keys;
use crate::records::{self, ExecState};
use aegis_core::ids::ExecutionId;
use aegis_core::store::{Batch, Result};
use std::collections::HashMap;

/// History events, numbered from the execution's counter.
pub(super) fn history(
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
pub(super) fn operations(
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
        let (cond, meaning) = guards::take(&mut conditions, &op_id);
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

//! Workflow events the batch publishes. They are numbered by one counter item, bumped inside
//! the transaction, so seqs have no gaps and become visible in order (readers page through them
//! by seq). Each event is written once per way it is read, with a webhook outbox marker.

use super::{Meaning, Plan};
use crate::expr::{Cond, UpdateExpr, Write, key, n};
use crate::io::{ItemExt, Table};
use crate::keys;
use crate::records::{self, ExecState};
use aegis_core::ids::ExecutionId;
use aegis_core::journal::Millis;
use aegis_core::store::{Batch, Result, WorkflowEvent};

/// Workflow events: numbered by one counter, inside the transaction, so seqs have no gaps and
/// become visible in order (readers page through them by seq).
pub(super) async fn publish(
    plan: &mut Plan,
    table: &Table,
    execution: &ExecutionId,
    state: &ExecState,
    batch: &Batch,
    now: Millis,
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

//! Callbacks the batch writes (each item with its pointer, by which a callback is found by id),
//! and, when the batch asks for it, the cancelling of those still waiting: the batch's own in
//! the transaction, the others as clean-up that may follow it (see [`super::limits`]).

use super::keyed::Keyed;
use super::{Meaning, Plan};
use crate::expr::{Cond, UpdateExpr, Write, key, s};
use crate::io::{ItemExt, Query, Sk, Table};
use crate::keys;
use crate::records::{self, status_str};
use aegis_core::journal::Status;
use aegis_core::store::{Batch, CallbackRecord, Result};

/// Callbacks, then the cancelling of those still waiting when the batch asks for it (clean-up,
/// into `tidy`, for those the batch does not write itself).
pub(super) async fn callbacks(
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
        for cb in callbacks.values_mut() {
            if cb.status == Status::Started {
                cb.status = Status::Cancelled;
            }
        }
        cancel_waiting(table, exec_pk, &callbacks, tidy).await?;
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

/// Cancels (into `tidy`) the execution's waiting callbacks that the batch does not write.
async fn cancel_waiting(
    table: &Table,
    exec_pk: &str,
    written: &Keyed<CallbackRecord>,
    tidy: &mut Vec<Write>,
) -> Result<()> {
    let existing = table
        .query_all(
            &Query::table(exec_pk, Sk::BeginsWith(keys::CALLBACK_PREFIX.into())),
            None,
        )
        .await?;
    for item in existing {
        let Some(id) = item.str("id") else { continue };
        if written.contains_key(id) || item.str("st") != Some("STARTED") {
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
    Ok(())
}

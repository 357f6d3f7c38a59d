//! The embedded store's Callbacks role.

use super::SqliteStore;
use super::rows::*;
use aegis_core::ids::*;
use aegis_core::store::*;
use rusqlite::{OptionalExtension, params};

#[async_trait::async_trait]
impl Callbacks for SqliteStore {
    async fn callback(&self, id: &CallbackId) -> Result<Option<CallbackRecord>> {
        let id = id.clone();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT * FROM callbacks WHERE callback_id = ?1")?
                .query_row([id.as_str()], callback_from_row)
                .optional()?)
        })
        .await
    }

    async fn pending_agent_callbacks(&self) -> Result<Vec<CallbackRecord>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM callbacks WHERE status = 'STARTED' AND agent IS NOT NULL",
            )?;
            let rows = stmt.query_map([], callback_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn pending_callbacks(&self, id: &ExecutionId) -> Result<Vec<CallbackRecord>> {
        let id = id.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM callbacks WHERE execution_id = ?1 AND status = 'STARTED' ORDER BY op_id",
            )?;
            let rows = stmt.query_map([id.as_str()], callback_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn bind_agent_task(&self, id: &CallbackId, task_id: &str) -> Result<Option<String>> {
        let (id, task_id) = (id.as_str().to_string(), task_id.to_string());
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE callbacks SET task_id = ?2
                 WHERE callback_id = ?1 AND status = 'STARTED' AND task_id IS NULL",
            )?
            .execute(params![id, task_id])?;
            let (status, bound) = tx
                .prepare_cached("SELECT status, task_id FROM callbacks WHERE callback_id = ?1")?
                .query_row([&id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
                })
                .optional()?
                .unwrap_or_default();
            Ok(bound.filter(|_| status == "STARTED"))
        })
        .await
    }

    async fn agent_task(&self, id: &CallbackId) -> Result<Option<String>> {
        let id = id.clone();
        let id = id.clone();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT task_id FROM callbacks WHERE callback_id = ?1")?
                .query_row([id.as_str()], |r| r.get::<_, Option<String>>(0))
                .optional()?
                .flatten())
        })
        .await
    }
}

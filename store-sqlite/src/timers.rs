//! The embedded store's Timers role.

use super::SqliteStore;
use aegis_core::ids::*;
use aegis_core::journal::*;
use aegis_core::store::*;

#[async_trait::async_trait]
impl Timers for SqliteStore {
    async fn timers(&self, before: Millis) -> Result<Vec<Timer>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT execution_id, op_id, kind, fire_at FROM timers WHERE fire_at <= ?1",
            )?;
            let rows = stmt.query_map([before], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            let mut timers = Vec::new();
            for row in rows {
                let (execution, op_id, kind, fire_at) = row?;
                if let Some(kind) = TimerKind::parse(&kind) {
                    timers.push(Timer {
                        fire_at,
                        execution_id: ExecutionId::from_raw(execution),
                        op_id,
                        kind,
                    });
                }
            }
            Ok(timers)
        })
        .await
    }
}

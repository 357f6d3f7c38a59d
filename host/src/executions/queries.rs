//! What the API reads about executions: one of a tenant's, a page of them, a page of history,
//! a page of logs.
//! Reads go through here rather than to the store, so `api/` never holds the store.

use super::Runtime;
use crate::ids::{ExecutionId, TenantId};
use crate::journal::Event;
use crate::store::{self, ExecutionFilter, ExecutionRecord, LogRecord};

impl Runtime {
    /// The execution `id` if it is `tenant`'s: another tenant's is `None`, exactly like a
    /// missing one.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn execution(
        &self,
        tenant: &TenantId,
        id: &ExecutionId,
    ) -> Result<Option<ExecutionRecord>, store::Error> {
        Ok(self
            .journal
            .execution(id)
            .await?
            .filter(|r| &r.tenant == tenant))
    }

    /// A tenant's executions, newest first.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn executions(
        &self,
        tenant: &TenantId,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, store::Error> {
        self.journal.list_executions(tenant, filter).await
    }

    /// The history events of execution `id` with an EventId above `after`, at most `limit`.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn history(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, store::Error> {
        self.journal.history(id, after, limit).await
    }

    /// The log records of execution `id` with a sequence number above `after`, at most `limit`.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn logs(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, store::Error> {
        self.journal.logs(id, after, limit).await
    }
}

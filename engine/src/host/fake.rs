//! Stand-ins for the stores an [`Activation`](super::Activation) writes to, for unit tests that
//! drive host calls without a backend: a journal that keeps every committed batch, and an
//! artifact store that has nothing.

use aegis_core::artifacts::{self, ArtifactRef, ArtifactStore};
use aegis_core::ids::{ExecutionId, TenantId};
use aegis_core::journal::{Event, Millis, Operation};
use aegis_core::store::{
    self, Batch, Claim, Created, ExecutionFilter, ExecutionRecord, Journal, Lease, LogLimits,
    LogLine, LogRecord, NewExecution, Runnable,
};
use std::sync::Mutex;

/// A journal that accepts every commit and log append and keeps them; it serves no reads.
#[derive(Default)]
pub struct RecordingJournal {
    pub commits: Mutex<Vec<Batch>>,
    pub log_lines: Mutex<Vec<LogLine>>,
}

/// A running execution `ex_1` of version `version` of `workflow`, as an activation starts from.
pub fn running_execution(workflow: &str, version: u32) -> ExecutionRecord {
    ExecutionRecord {
        id: ExecutionId::from_raw("ex_1"),
        tenant: TenantId::default_tenant(),
        name: "ex_1".into(),
        workflow: workflow.into(),
        version,
        digest: aegis_core::ids::ComponentDigest::of(workflow.as_bytes()),
        input: "null".into(),
        status: store::ExecutionStatus::Running,
        result: None,
        error: None,
        created_at: 0,
        updated_at: 0,
        timeout_at: None,
        wake_seq: 0,
    }
}

fn unserved<T>(what: &str) -> store::Result<T> {
    Err(store::Error::Fatal(format!(
        "the fake journal serves no {what}"
    )))
}

#[async_trait::async_trait]
impl Journal for RecordingJournal {
    async fn create_execution(&self, _new: NewExecution) -> store::Result<Created> {
        unserved("create_execution")
    }
    async fn execution(&self, _id: &ExecutionId) -> store::Result<Option<ExecutionRecord>> {
        unserved("execution")
    }
    async fn list_executions(
        &self,
        _tenant: &TenantId,
        _filter: &ExecutionFilter,
    ) -> store::Result<Vec<ExecutionRecord>> {
        unserved("list_executions")
    }
    async fn operations(&self, _id: &ExecutionId) -> store::Result<Vec<Operation>> {
        unserved("operations")
    }
    async fn operation(&self, _id: &ExecutionId, _op: &str) -> store::Result<Option<Operation>> {
        unserved("operation")
    }
    async fn history(
        &self,
        _id: &ExecutionId,
        _after: u64,
        _limit: usize,
    ) -> store::Result<Vec<(u64, Event)>> {
        unserved("history")
    }
    async fn append_logs(
        &self,
        _id: &ExecutionId,
        lines: Vec<LogLine>,
        _limits: LogLimits,
    ) -> store::Result<()> {
        self.log_lines.lock().expect("log lines").extend(lines);
        Ok(())
    }
    async fn logs(
        &self,
        _id: &ExecutionId,
        _after: u64,
        _limit: usize,
    ) -> store::Result<Vec<LogRecord>> {
        unserved("logs")
    }
    async fn commit(&self, _execution: &ExecutionId, batch: Batch) -> store::Result<()> {
        self.commits.lock().expect("commits").push(batch);
        Ok(())
    }
    async fn runnable(&self) -> store::Result<Vec<Runnable>> {
        unserved("runnable")
    }
    async fn acquire_lease(
        &self,
        _id: &ExecutionId,
        _host: &str,
        _now: Millis,
        _ttl_ms: u64,
    ) -> store::Result<Claim> {
        unserved("acquire_lease")
    }
    async fn renew_lease(
        &self,
        _id: &ExecutionId,
        _lease: &Lease,
        _now: Millis,
        _ttl_ms: u64,
    ) -> store::Result<bool> {
        unserved("renew_lease")
    }
}

/// An artifact store with no artifacts.
pub struct NoArtifacts;

#[async_trait::async_trait]
impl ArtifactStore for NoArtifacts {
    async fn put(
        &self,
        _tenant: &TenantId,
        _execution: &ExecutionId,
        key: &str,
        _content_type: &str,
        _content: &[u8],
    ) -> Result<ArtifactRef, artifacts::Error> {
        Err(artifacts::Error::Backend(format!(
            "no artifact store for {key}"
        )))
    }
    async fn usage(&self, _tenant: &TenantId) -> Result<u64, artifacts::Error> {
        Ok(0)
    }
    async fn get(
        &self,
        _tenant: &TenantId,
        r: &ArtifactRef,
    ) -> Result<(Vec<u8>, String), artifacts::Error> {
        Err(artifacts::Error::NotFound(r.to_string()))
    }
    async fn presign(
        &self,
        _tenant: &TenantId,
        r: &ArtifactRef,
        _expires_in_seconds: u64,
    ) -> Result<String, artifacts::Error> {
        Err(artifacts::Error::NotFound(r.to_string()))
    }
}

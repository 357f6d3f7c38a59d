//! Components: validate an uploaded workflow, store it by digest, give it a version.
//!
//! Validation compiles the component and links it against our world, so a file that is not a
//! component, or a component that does not export `aegis:workflow/workflow`, is refused at
//! upload rather than failing its first execution.

use crate::engine::host::HostState;
use crate::engine::{LoadError, WorkflowComponentPre};
use crate::executions::Runtime;
use crate::ids::ComponentDigest;
use crate::ids::TenantId;
use crate::journal::now_ms;
use crate::store::{self, ComponentRecord};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid workflow name {0:?}: use 1-64 characters of [A-Za-z0-9_-]")]
    BadName(String),
    #[error("the component is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("cannot store the component for the other hosts: {0}")]
    Share(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The ready-to-run form of a component: from this host's cache or folder, else fetched from
/// the artifact store where the host that received the upload put it (hosts sharing a DynamoDB
/// table share an S3 bucket), checked against its digest and installed here. Blocks.
///
/// # Errors
/// When no host stored it, the bytes do not match the digest, or they do not load.
pub fn load(
    rt: &Runtime,
    digest: &ComponentDigest,
) -> Result<WorkflowComponentPre<HostState>, LoadError> {
    let local = match rt.engine.load(digest) {
        Ok(pre) => return Ok(pre),
        Err(e) => e,
    };
    let bytes = match rt.artifacts.get_component(digest) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(local),
        Err(e) => return Err(LoadError::Io(format!("fetch component {digest}: {e}"))),
    };
    if ComponentDigest::of(&bytes) != *digest {
        return Err(LoadError::Io(format!(
            "the stored bytes of component {digest} do not match its digest"
        )));
    }
    tracing::info!(%digest, "component fetched from the artifact store");
    rt.engine.install(&bytes)?;
    rt.engine.load(digest)
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Validates and stores `bytes` as the next version of workflow `name`. Uploading the same bytes
/// again returns the existing version.
///
/// # Errors
/// [`Error`] for a bad name, an oversized file, or a file that is not a workflow component.
pub async fn upload(
    rt: &Arc<Runtime>,
    tenant: &TenantId,
    name: &str,
    bytes: Vec<u8>,
    limit: usize,
) -> Result<(ComponentRecord, bool), Error> {
    if !valid_name(name) {
        return Err(Error::BadName(name.chars().take(100).collect()));
    }
    if bytes.len() > limit {
        return Err(Error::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let rt = rt.clone();
    let tenant = tenant.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let digest = rt.engine.install(&bytes)?;
        // Shared before it is recorded, so no host ever finds a version it cannot fetch.
        rt.artifacts
            .put_component(&digest, &bytes)
            .map_err(|e| Error::Share(e.to_string()))?;
        Ok(rt
            .store
            .put_component(&tenant, &name, &digest, bytes.len() as u64, now_ms())?)
    })
    .await
    .map_err(|e| Error::Store(store::Error::Backend(format!("upload task: {e}"))))?
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_restricted() {
        assert!(super::valid_name("research-pipeline_2"));
        assert!(!super::valid_name(""));
        assert!(!super::valid_name("../x"));
        assert!(!super::valid_name(&"a".repeat(65)));
    }
}

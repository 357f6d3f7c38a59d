//! The artifact interface: what the engine and the callback spill need of wherever a
//! workflow's artifacts live. The backends (the data folder, S3) are the host's; the engine
//! sees only [`ArtifactStore`] and [`ArtifactRef`], so it builds without any of them.
//!
//! The interface is async, like the storage roles, because its backends do I/O that must not
//! hold an async worker: S3 is an async SDK, the disk store hands its file I/O to the blocking
//! pool. Callers in async code `.await` it; the engine, which is synchronous, waits on it with
//! [`crate::store::wait`] on the activation's blocking thread, where a backend may block inline
//! ([`crate::store::in_blocking_scope`]).
//!
//! A reference is `artifact://<execution>/<key>`; it never crosses tenants because every
//! backend resolves it under the caller's tenant. Each tenant's stored bytes are counted
//! against its quota ([`Quota`], checked by [`check_quota`] before every write).

use crate::ids::{ComponentDigest, ExecutionId, TenantId};
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid artifact key {0:?}: use 1-200 characters of [A-Za-z0-9._-/], no '..' segment")]
    BadKey(String),
    #[error("invalid artifact reference {0:?}: expected artifact://<execution>/<key>")]
    BadReference(String),
    #[error("artifact {0} not found")]
    NotFound(String),
    #[error("artifact link expired or its signature is wrong")]
    BadSignature,
    #[error("artifact storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("artifact storage: {0}")]
    Backend(String),
    #[error(
        "artifact storage quota exceeded: the tenant stores {used} bytes of artifacts, this one \
         needs {needed} more, and the limit is {limit} bytes (max_artifact_mb)"
    )]
    QuotaExceeded { used: u64, needed: u64, limit: u64 },
}

impl Error {
    /// The error type a guest sees when `put` fails this way: `Artifact.QuotaExceeded` for the
    /// quota (the guest may clean up or give up; retrying will not help), else
    /// `Artifact.PutFailed`.
    pub fn put_error_type(&self) -> &'static str {
        match self {
            Error::QuotaExceeded { .. } => "Artifact.QuotaExceeded",
            _ => "Artifact.PutFailed",
        }
    }
}

/// Each tenant's artifact quota in bytes, asked at every `put` (so a changed quota applies at
/// once). Without one, a store has no limit. It is async because the host reads quotas from
/// its store, and a put may come from an async task (a spilled agent result) as well as from an
/// activation's thread.
#[async_trait::async_trait]
pub trait Quota: Send + Sync {
    /// The most bytes of artifacts `tenant` may keep stored.
    async fn limit(&self, tenant: &TenantId) -> u64;
}

/// A quota that is a fixed rule of the tenant id, with nothing to read (tools and tests).
#[async_trait::async_trait]
impl<F: Fn(&TenantId) -> u64 + Send + Sync> Quota for F {
    async fn limit(&self, tenant: &TenantId) -> u64 {
        self(tenant)
    }
}

/// The check every backend makes before writing: `used` bytes stored, an artifact of `new`
/// bytes replacing one of `old` bytes. Shrinking is always allowed, so a tenant over a lowered
/// quota can still replace artifacts with smaller ones.
pub fn check_quota(used: u64, old: u64, new: u64, limit: u64) -> Result<u64, Error> {
    let after = used.saturating_sub(old).saturating_add(new);
    if new > old && after > limit {
        return Err(Error::QuotaExceeded {
            used,
            needed: new - old,
            limit,
        });
    }
    Ok(after)
}

/// Where a workflow's artifacts live. References are always [`ArtifactRef`]s
/// (`artifact://<execution>/<key>`), resolved under the caller's tenant, whatever the backend.
#[async_trait::async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Stores `content` and returns its reference. Writing the same key again replaces it.
    ///
    /// # Errors
    /// A bad key or a storage failure.
    async fn put(
        &self,
        tenant: &TenantId,
        execution: &ExecutionId,
        key: &str,
        content_type: &str,
        content: &[u8],
    ) -> Result<ArtifactRef, Error>;

    /// The bytes of artifacts `tenant` keeps stored, as counted against its quota.
    ///
    /// # Errors
    /// A storage failure while counting.
    async fn usage(&self, tenant: &TenantId) -> Result<u64, Error>;

    /// The content and content type of an artifact of `tenant`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the tenant has no such artifact.
    async fn get(&self, tenant: &TenantId, r: &ArtifactRef) -> Result<(Vec<u8>, String), Error>;

    /// A URL that fetches the artifact without credentials until `expires_in_seconds` from now
    /// (each backend clamps to its own limit; S3's is 7 days).
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such artifact.
    async fn presign(
        &self,
        tenant: &TenantId,
        r: &ArtifactRef,
        expires_in_seconds: u64,
    ) -> Result<String, Error>;

    /// Keeps a component's bytes where every host sharing this store can fetch them, so a host
    /// that did not receive an upload can still run its executions. The disk store keeps
    /// nothing: one host owns it, and has its components in its own data folder.
    ///
    /// # Errors
    /// A storage failure.
    async fn put_component(&self, _digest: &ComponentDigest, _bytes: &[u8]) -> Result<(), Error> {
        Ok(())
    }

    /// A component stored by [`ArtifactStore::put_component`] (maybe by another host), or
    /// `None`.
    ///
    /// # Errors
    /// A storage failure.
    async fn get_component(&self, _digest: &ComponentDigest) -> Result<Option<Vec<u8>>, Error> {
        Ok(None)
    }

    /// Checks a link the host itself signed (`/v1/artifacts/...`) and returns the artifact.
    /// Only the disk store makes such links; S3 links go to S3, so others refuse.
    ///
    /// # Errors
    /// [`Error::BadSignature`] when the link expired, was altered or is not the host's.
    async fn fetch_signed(
        &self,
        _tenant: &TenantId,
        _r: &ArtifactRef,
        _expires: i64,
        _sig: &str,
    ) -> Result<(Vec<u8>, String), Error> {
        Err(Error::BadSignature)
    }
}

/// The `Content-Disposition` an artifact is served with: always an attachment, so a browser
/// saves it instead of rendering it, whatever content type the guest chose (an HTML artifact
/// rendered on the API's origin could script against it). The file name is the key's last
/// segment, as a quoted ASCII `filename` with anything outside `[A-Za-z0-9._-]` replaced, and
/// as an RFC 5987 `filename*` with those bytes percent-encoded.
pub fn attachment(key: &str) -> String {
    let name = key
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("artifact");
    let safe = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    let plain: String = name
        .bytes()
        .map(|b| if safe(b) { b as char } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if safe(b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

/// `artifact://<execution>/<key>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactRef {
    pub execution: ExecutionId,
    pub key: String,
}

const SCHEME: &str = "artifact://";

pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 200
        && !key.starts_with('/')
        && !key.ends_with(".meta")
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
}

fn valid_execution(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl ArtifactRef {
    /// # Errors
    /// [`Error::BadReference`] when `raw` is not a well-formed reference.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let bad = || Error::BadReference(raw.chars().take(300).collect());
        let rest = raw.strip_prefix(SCHEME).ok_or_else(bad)?;
        let (execution, key) = rest.split_once('/').ok_or_else(bad)?;
        if !valid_execution(execution) || !valid_key(key) {
            return Err(bad());
        }
        Ok(Self {
            execution: ExecutionId::from_raw(execution),
            key: key.to_string(),
        })
    }
}

impl ArtifactRef {
    /// The reference of `key` in `execution`.
    ///
    /// # Errors
    /// [`Error::BadKey`] when the key is not a valid artifact key.
    pub fn new(execution: &ExecutionId, key: &str) -> Result<Self, Error> {
        if !valid_key(key) {
            return Err(Error::BadKey(key.chars().take(300).collect()));
        }
        Ok(Self {
            execution: execution.clone(),
            key: key.to_string(),
        })
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.execution, self.key)
    }
}

//! Artifacts: the two backends of the core's [`ArtifactStore`] interface, chosen by
//! `[artifacts] backend`: [`DiskArtifacts`] (the default, below) and [`s3::S3Artifacts`]. The
//! interface is async, like the storage roles: the S3 backend awaits the SDK on the host's
//! runtime, and the disk store keeps its file I/O off the async workers, running it on tokio's
//! blocking pool, or inline on a thread that may block (an activation's, which waits on the
//! store with `store::wait`), as the SQLite store does its reads.
//!
//! The disk store's layout: `<root>/<tenant>/<execution>/<key>` plus a `<key>.meta` file holding the content
//! type. A reference is `artifact://<execution>/<key>`; a reference never crosses tenants
//! because every lookup is made under the caller's tenant folder.
//!
//! Each tenant's stored bytes are counted against its `max_artifact_mb` ([`Quota`]): a `put`
//! that would take the tenant past it fails with [`Error::QuotaExceeded`] and stores nothing.
//! The disk store sums the tenant's folder the first time it meets the tenant after a start,
//! then keeps the sum up to date, so the count survives restarts without a counter file that
//! a crash could leave wrong. Only content counts, not the small `.meta` files.
//!
//! A presigned URL carries its expiry and an HMAC-SHA256 over tenant, reference and expiry,
//! keyed by a secret that is created once in the data folder. The disk store does not encrypt
//! content at rest: it relies on the data folder's permissions (0700) and on disk encryption
//! where the operator wants it.

pub use aegis_core::artifacts::*;

pub mod s3;

use crate::ids::{ExecutionId, TenantId};
use crate::store::{blocking_io, in_blocking_scope};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct DiskArtifacts {
    disk: Arc<Disk>,
    quota: Option<Arc<dyn Quota>>,
}

/// The folder and the counts kept of it: the synchronous half of the store, shared with the
/// blocking tasks that do its file I/O.
struct Disk {
    root: PathBuf,
    secret: Vec<u8>,
    public_url: String,
    /// Stored bytes per tenant met since the start (see the module doc).
    usage: Mutex<HashMap<TenantId, u64>>,
}

impl DiskArtifacts {
    /// Opens the store under `root`, creating its signing secret on first use. Synchronous:
    /// the host opens it once while it starts, before it serves anything.
    ///
    /// # Errors
    /// When the folder or the secret cannot be created.
    pub fn open(root: &Path, public_url: String) -> Result<Self, Error> {
        std::fs::create_dir_all(root)?;
        let secret_path = root.join(".signing-key");
        let secret = match std::fs::read(&secret_path) {
            Ok(s) if s.len() >= 32 => s,
            _ => {
                let mut s = vec![0u8; 32];
                rand::fill(&mut s[..]);
                let mut f = std::fs::File::create(&secret_path)?;
                f.write_all(&s)?;
                f.sync_all()?;
                s
            }
        };
        Ok(Self {
            disk: Arc::new(Disk {
                root: root.to_path_buf(),
                secret,
                public_url,
                usage: Mutex::new(HashMap::new()),
            }),
            quota: None,
        })
    }

    /// Limits each tenant's stored bytes to what `quota` says.
    #[must_use]
    pub fn with_quota(mut self, quota: Arc<dyn Quota>) -> Self {
        self.quota = Some(quota);
        self
    }

    /// Runs the file I/O `f`: inline on a thread that may block, else on the blocking pool, so
    /// no async worker waits for the disk.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Disk) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let disk = self.disk.clone();
        blocking_io(move || f(&disk)).await
    }
}

impl Disk {
    /// Runs `f` on the tenant's count, summing its folder first if this is the first time
    /// since the start. The lock is held across the first sum, so two first puts cannot both
    /// count from zero.
    fn with_usage<T>(
        &self,
        tenant: &TenantId,
        f: impl FnOnce(&mut u64) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut usage = self.usage.lock().expect("artifact usage poisoned");
        if !usage.contains_key(tenant) {
            let sum = content_bytes(&self.root.join(tenant.as_str()))?;
            usage.insert(tenant.clone(), sum);
        }
        f(usage.get_mut(tenant).expect("counted above"))
    }

    fn path(&self, tenant: &TenantId, r: &ArtifactRef) -> PathBuf {
        self.root
            .join(tenant.as_str())
            .join(r.execution.as_str())
            .join(&r.key)
    }

    fn signature(&self, tenant: &TenantId, r: &ArtifactRef, expires: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("hmac takes any key");
        mac.update(format!("{tenant}\n{r}\n{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Writes `content` at `r`, within `limit` bytes for the tenant when there is one.
    fn put(
        &self,
        tenant: &TenantId,
        r: &ArtifactRef,
        content_type: &str,
        content: &[u8],
        limit: Option<u64>,
    ) -> Result<(), Error> {
        let path = self.path(tenant, r);
        let new = content.len() as u64;
        let old = std::fs::metadata(&path).map_or(0, |m| m.len());
        self.with_usage(tenant, |used| {
            *used = match limit {
                Some(limit) => check_quota(*used, old, new, limit)?,
                None => used.saturating_sub(old).saturating_add(new),
            };
            Ok(())
        })?;
        let written = (|| -> Result<(), Error> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_synced(
                &path.with_extension(meta_ext(&path)),
                content_type.as_bytes(),
            )?;
            write_synced(&path, content)
        })();
        if let Err(e) = written {
            // What is on disk is unknown now: count again from the folder next time.
            self.usage
                .lock()
                .expect("artifact usage poisoned")
                .remove(tenant);
            return Err(e);
        }
        Ok(())
    }

    fn get(&self, tenant: &TenantId, r: &ArtifactRef) -> Result<(Vec<u8>, String), Error> {
        let path = self.path(tenant, r);
        let content = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(r.to_string()),
            _ => Error::Io(e),
        })?;
        let content_type = std::fs::read_to_string(path.with_extension(meta_ext(&path)))
            .unwrap_or_else(|_| "application/octet-stream".into());
        Ok((content, content_type))
    }

    fn presign(
        &self,
        tenant: &TenantId,
        r: &ArtifactRef,
        expires_in_seconds: u64,
    ) -> Result<String, Error> {
        if !self.path(tenant, r).exists() {
            return Err(Error::NotFound(r.to_string()));
        }
        let expires = crate::journal::now_ms() / 1000 + expires_in_seconds.min(366 * 86_400) as i64;
        let sig = self.signature(tenant, r, expires);
        Ok(format!(
            "{}/v1/artifacts/{}/{}/{}?expires={expires}&sig={sig}",
            self.public_url.trim_end_matches('/'),
            tenant,
            r.execution,
            r.key
        ))
    }

    fn fetch_signed(
        &self,
        tenant: &TenantId,
        r: &ArtifactRef,
        expires: i64,
        sig: &str,
    ) -> Result<(Vec<u8>, String), Error> {
        let expected = self.signature(tenant, r, expires);
        let fresh = expires >= crate::journal::now_ms() / 1000;
        if !fresh || !constant_time_eq(expected.as_bytes(), sig.as_bytes()) {
            return Err(Error::BadSignature);
        }
        self.get(tenant, r)
    }
}

#[async_trait::async_trait]
impl ArtifactStore for DiskArtifacts {
    async fn put(
        &self,
        tenant: &TenantId,
        execution: &ExecutionId,
        key: &str,
        content_type: &str,
        content: &[u8],
    ) -> Result<ArtifactRef, Error> {
        let r = ArtifactRef::new(execution, key)?;
        let limit = match &self.quota {
            Some(quota) => Some(quota.limit(tenant).await),
            None => None,
        };
        // On an activation's thread the guest's content is written from where it is; a copy
        // is made only to hand it to the blocking pool.
        if in_blocking_scope() {
            self.disk.put(tenant, &r, content_type, content, limit)?;
            return Ok(r);
        }
        let (tenant, content_type, content) =
            (tenant.clone(), content_type.to_string(), content.to_vec());
        self.blocking(move |d| {
            d.put(&tenant, &r, &content_type, &content, limit)?;
            Ok(r)
        })
        .await
    }

    async fn usage(&self, tenant: &TenantId) -> Result<u64, Error> {
        let tenant = tenant.clone();
        self.blocking(move |d| d.with_usage(&tenant, |used| Ok(*used)))
            .await
    }

    async fn get(&self, tenant: &TenantId, r: &ArtifactRef) -> Result<(Vec<u8>, String), Error> {
        let (tenant, r) = (tenant.clone(), r.clone());
        self.blocking(move |d| d.get(&tenant, &r)).await
    }

    /// Links the host serves, valid up to a year.
    async fn presign(
        &self,
        tenant: &TenantId,
        r: &ArtifactRef,
        expires_in_seconds: u64,
    ) -> Result<String, Error> {
        let (tenant, r) = (tenant.clone(), r.clone());
        self.blocking(move |d| d.presign(&tenant, &r, expires_in_seconds))
            .await
    }

    async fn fetch_signed(
        &self,
        tenant: &TenantId,
        r: &ArtifactRef,
        expires: i64,
        sig: &str,
    ) -> Result<(Vec<u8>, String), Error> {
        let (tenant, r, sig) = (tenant.clone(), r.clone(), sig.to_string());
        self.blocking(move |d| d.fetch_signed(&tenant, &r, expires, &sig))
            .await
    }
}

/// The bytes of the files under `dir` (recursively), `.meta` files aside; 0 when it does not
/// exist. Artifact keys never end in `.meta`, so those are exactly the content-type files.
fn content_bytes(dir: &Path) -> Result<u64, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut sum = 0;
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            sum += content_bytes(&path)?;
        } else if kind.is_file() && path.extension().is_none_or(|e| e != "meta") {
            sum += entry.metadata()?.len();
        }
    }
    Ok(sum)
}

fn meta_ext(path: &Path) -> String {
    match path.extension() {
        Some(ext) => format!("{}.meta", ext.to_string_lossy()),
        None => "meta".into(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("partial");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests;

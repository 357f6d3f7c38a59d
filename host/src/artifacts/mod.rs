//! Artifacts: the two backends of the core's [`ArtifactStore`] interface, chosen by
//! `[artifacts] backend`: [`DiskArtifacts`] (the default, below) and [`s3::S3Artifacts`]. The
//! interface is synchronous because the engine calls it from blocking threads (guest imports);
//! the S3 backend bridges to the async SDK on its own runtime.
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
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct DiskArtifacts {
    root: PathBuf,
    secret: Vec<u8>,
    public_url: String,
    quota: Option<Quota>,
    /// Stored bytes per tenant met since the start (see the module doc).
    usage: Mutex<HashMap<TenantId, u64>>,
}

impl DiskArtifacts {
    /// Opens the store under `root`, creating its signing secret on first use.
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
            root: root.to_path_buf(),
            secret,
            public_url,
            quota: None,
            usage: Mutex::new(HashMap::new()),
        })
    }

    /// Limits each tenant's stored bytes to what `quota` says.
    #[must_use]
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }

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
}

impl ArtifactStore for DiskArtifacts {
    fn put(
        &self,
        tenant: &TenantId,
        execution: &ExecutionId,
        key: &str,
        content_type: &str,
        content: &[u8],
    ) -> Result<ArtifactRef, Error> {
        let r = ArtifactRef::new(execution, key)?;
        let path = self.path(tenant, &r);
        let new = content.len() as u64;
        let old = std::fs::metadata(&path).map_or(0, |m| m.len());
        if let Some(quota) = &self.quota {
            let limit = quota(tenant);
            self.with_usage(tenant, |used| {
                *used = check_quota(*used, old, new, limit)?;
                Ok(())
            })?;
        } else {
            self.with_usage(tenant, |used| {
                *used = used.saturating_sub(old).saturating_add(new);
                Ok(())
            })?;
        }
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
        Ok(r)
    }

    fn usage(&self, tenant: &TenantId) -> Result<u64, Error> {
        self.with_usage(tenant, |used| Ok(*used))
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

    /// Links the host serves, valid up to a year.
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
mod tests {
    use super::*;

    /// A store in a scratch folder, removed when the returned guard drops.
    fn store() -> (DiskArtifacts, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (
            DiskArtifacts::open(dir.path(), "http://host".into()).unwrap(),
            dir,
        )
    }

    #[test]
    fn references_round_trip_and_reject_traversal() {
        let r = ArtifactRef::parse("artifact://ex_1/reports/final.md").unwrap();
        assert_eq!(r.key, "reports/final.md");
        assert_eq!(r.to_string(), "artifact://ex_1/reports/final.md");
        for bad in [
            "artifact://ex_1/../x",
            "artifact://ex_1//x",
            "s3://b/k",
            "artifact://ex_1/a b",
            "artifact://../k",
        ] {
            assert!(ArtifactRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn put_get_and_presigned_fetch() {
        let (s, _dir) = store();
        let t = TenantId::from_raw("t1");
        let r = s
            .put(
                &t,
                &ExecutionId::from_raw("ex_1"),
                "report.md",
                "text/markdown",
                b"# hi",
            )
            .unwrap();
        assert_eq!(
            s.get(&t, &r).unwrap(),
            (b"# hi".to_vec(), "text/markdown".to_string())
        );
        assert!(matches!(
            s.get(&TenantId::from_raw("t2"), &r),
            Err(Error::NotFound(_))
        ));
        let url = s.presign(&t, &r, 60).unwrap();
        let query = url.split_once('?').unwrap().1;
        let expires: i64 = query
            .split('&')
            .next()
            .unwrap()
            .trim_start_matches("expires=")
            .parse()
            .unwrap();
        let sig = query.split("sig=").nth(1).unwrap();
        assert!(s.fetch_signed(&t, &r, expires, sig).is_ok());
        assert!(matches!(
            s.fetch_signed(&t, &r, expires + 1, sig),
            Err(Error::BadSignature)
        ));
        let past = crate::journal::now_ms() / 1000 - 1;
        let old_sig = s.signature(&t, &r, past);
        assert!(matches!(
            s.fetch_signed(&t, &r, past, &old_sig),
            Err(Error::BadSignature)
        ));
    }

    #[test]
    fn attachments_name_the_file_safely() {
        assert_eq!(
            attachment("reports/final.md"),
            "attachment; filename=\"final.md\"; filename*=UTF-8''final.md"
        );
        assert_eq!(
            attachment("a\"b;c\r\nd é"),
            "attachment; filename=\"a_b_c__d___\"; filename*=UTF-8''a%22b%3Bc%0D%0Ad%20%C3%A9"
        );
        assert_eq!(
            attachment("dir/"),
            "attachment; filename=\"artifact\"; filename*=UTF-8''artifact"
        );
    }

    #[test]
    fn the_quota_refuses_growth_past_it_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let quota: Quota =
            std::sync::Arc::new(|t: &TenantId| if t.as_str() == "small" { 10 } else { 1000 });
        let open = || {
            DiskArtifacts::open(dir.path(), "http://host".into())
                .unwrap()
                .with_quota(quota.clone())
        };
        let s = open();
        let (small, big) = (TenantId::from_raw("small"), TenantId::from_raw("big"));
        let ex = ExecutionId::from_raw("ex_1");
        s.put(&small, &ex, "a", "text/plain", b"123456").unwrap();
        let err = s.put(&small, &ex, "b", "text/plain", b"12345").unwrap_err();
        assert!(
            matches!(
                err,
                Error::QuotaExceeded {
                    used: 6,
                    needed: 5,
                    limit: 10
                }
            ),
            "{err}"
        );
        assert_eq!(err.put_error_type(), "Artifact.QuotaExceeded");
        assert!(err.to_string().contains("max_artifact_mb"), "{err}");
        // Nothing was stored, and the other tenant has its own room.
        assert!(matches!(
            s.get(&small, &ArtifactRef::new(&ex, "b").unwrap()),
            Err(Error::NotFound(_))
        ));
        s.put(&big, &ex, "b", "text/plain", &[0; 500]).unwrap();
        // Replacing an artifact counts only the difference; shrinking is always allowed.
        s.put(&small, &ex, "a", "text/plain", b"1234567890")
            .unwrap();
        s.put(&small, &ex, "a", "text/plain", b"12").unwrap();
        s.put(&small, &ex, "c", "text/plain", b"1234").unwrap();
        assert_eq!(s.usage(&small).unwrap(), 6);
        drop(s);
        // A new start counts the folders again.
        let s = open();
        assert_eq!(s.usage(&small).unwrap(), 6);
        assert_eq!(s.usage(&big).unwrap(), 500);
        assert_eq!(s.usage(&TenantId::from_raw("none")).unwrap(), 0);
        assert!(matches!(
            s.put(&small, &ex, "d", "text/plain", b"12345"),
            Err(Error::QuotaExceeded { .. })
        ));
    }

    #[test]
    fn quota_arithmetic() {
        assert_eq!(check_quota(0, 0, 10, 10).unwrap(), 10);
        assert!(check_quota(5, 0, 6, 10).is_err());
        assert_eq!(check_quota(5, 5, 10, 10).unwrap(), 10);
        // Over a lowered quota: shrinking passes, growing does not.
        assert_eq!(check_quota(20, 10, 5, 10).unwrap(), 15);
        assert!(check_quota(20, 10, 11, 10).is_err());
    }
}

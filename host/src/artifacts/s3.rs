//! Artifacts in an S3 bucket, for hosts that share them.
//!
//! Object key: `<prefix><tenant>/<execution>/<key>`, so a reference still resolves only under
//! the caller's tenant. Every write asks for server-side encryption (`AES256` by default, or
//! `aws:kms` with a configured key). Content over [`MULTIPART_THRESHOLD`] goes up as a multipart
//! upload in [`PART_SIZE`] parts (a single PUT is capped at 5 GiB and retries the whole body; a
//! failed multipart upload is aborted so no orphan parts are billed). Presigned GET URLs are
//! SigV4 query-signed URLs that S3 serves directly; SigV4 caps their life at 7 days, so longer
//! requests are clamped to [`MAX_PRESIGN_SECONDS`].
//!
//! Quota accounting: S3 has no atomic counter, and hosts sharing the bucket do not talk to each
//! other, so each host sums the tenant's objects (`ListObjectsV2` under `<prefix><tenant>/`)
//! the first time it meets the tenant and again after [`USAGE_REFRESH`], and adds its own puts
//! in between. The count thus survives restarts (it is read from the bucket, not kept), costs
//! one listing per 1,000 objects per tenant per refresh, and is exact for one host; with
//! several hosts a tenant can overshoot by what the other hosts stored since the last listing.
//! Presigned links ask S3 to answer with `Content-Disposition: attachment`, like the host's
//! own links; S3 serves them from its own origin, not the API's.
//!
//! Every call awaits the SDK on the caller's runtime, the host's, as the DynamoDB store does:
//! there is no runtime of its own. The engine waits on it from an activation's blocking thread
//! (`store::wait`), which drives the request there.

pub use aegis_aws::s3::{
    Bucket, MULTIPART_THRESHOLD, PART_SIZE, S3Options, S3Uri, Sse, multipart_etag, sdk_err,
    valid_bucket,
};

use super::{ArtifactRef, ArtifactStore, Error, Quota, check_quota};
use crate::aws::AwsOptions;
use crate::config::ArtifactsConfig;
use crate::ids::{ComponentDigest, ExecutionId, TenantId};
use aws_sdk_s3::presigning::PresigningConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// SigV4 presigned URLs live at most 7 days.
pub const MAX_PRESIGN_SECONDS: u64 = 7 * 86_400;
/// How long a tenant's listed usage is trusted before it is listed again (see the module doc).
pub const USAGE_REFRESH: Duration = Duration::from_secs(300);

/// The bucket `[artifacts]` names, and how to reach it.
///
/// # Errors
/// When no bucket is configured, or its name is not a valid S3 bucket name.
pub fn options_from_config(c: &ArtifactsConfig) -> anyhow::Result<S3Options> {
    let bucket = c.bucket.clone().filter(|b| !b.is_empty()).ok_or_else(|| {
        anyhow::anyhow!("artifacts.backend = \"s3\" needs artifacts.bucket (or ARTIFACT_BUCKET)")
    })?;
    anyhow::ensure!(valid_bucket(&bucket), "invalid S3 bucket name {bucket:?}");
    Ok(S3Options {
        bucket,
        prefix: c.prefix.clone(),
        sse: c.sse,
        kms_key_id: c.kms_key_id.clone().filter(|k| !k.is_empty()),
        force_path_style: c.force_path_style,
        aws: AwsOptions {
            endpoint_url: c.endpoint_url.clone().filter(|u| !u.is_empty()),
            region: c.region.clone(),
            credentials: None,
            ..AwsOptions::default()
        },
    })
}

pub struct S3Artifacts {
    bucket: Bucket,
    quota: Option<Arc<dyn Quota>>,
    /// Per tenant: stored bytes, and when they were last listed.
    usage: Mutex<HashMap<TenantId, (u64, Instant)>>,
}

impl S3Artifacts {
    /// Builds the client (no request is made: a missing bucket shows on first use).
    ///
    /// # Errors
    /// When no region is configured.
    pub async fn open(options: S3Options) -> Result<Self, Error> {
        Ok(Self {
            bucket: Bucket::connect(options).await?,
            quota: None,
            usage: Mutex::new(HashMap::new()),
        })
    }

    /// Limits each tenant's stored bytes to what `quota` says.
    #[must_use]
    pub fn with_quota(mut self, quota: Arc<dyn Quota>) -> Self {
        self.quota = Some(quota);
        self
    }

    /// The tenant's stored bytes: the count kept since the last listing, or a new listing when
    /// there is none or it is older than [`USAGE_REFRESH`].
    async fn counted(&self, tenant: &TenantId) -> Result<u64, Error> {
        if let Some((bytes, at)) = self
            .usage
            .lock()
            .expect("artifact usage poisoned")
            .get(tenant)
            && at.elapsed() < USAGE_REFRESH
        {
            return Ok(*bytes);
        }
        let prefix = self.bucket.key(&format!("{tenant}/"));
        let mut listed = 0u64;
        let mut token = None;
        loop {
            let page = self
                .bucket
                .client()
                .list_objects_v2()
                .bucket(self.bucket.name())
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| sdk_err("list objects", e))?;
            listed += page
                .contents()
                .iter()
                .filter_map(|o| o.size())
                .map(|n| n.max(0) as u64)
                .sum::<u64>();
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        self.usage
            .lock()
            .expect("artifact usage poisoned")
            .insert(tenant.clone(), (listed, Instant::now()));
        Ok(listed)
    }

    /// The size of the object at `key`, or `None` when there is none.
    async fn object_size(&self, key: &str) -> Result<Option<u64>, Error> {
        let head = self
            .bucket
            .client()
            .head_object()
            .bucket(self.bucket.name())
            .key(key)
            .send()
            .await;
        match head {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(sdk_err("head object", e)),
        }
    }

    /// The object key of `r` under `tenant`.
    pub fn object_key(&self, tenant: &TenantId, r: &ArtifactRef) -> String {
        self.bucket
            .key(&format!("{tenant}/{}/{}", r.execution, r.key))
    }

    /// The object key of a component: `<prefix>_components/<sha256>.wasm` (no tenant id starts
    /// with `_`, so it never meets an artifact).
    pub fn component_key(&self, digest: &ComponentDigest) -> String {
        self.bucket
            .key(&format!("_components/{}.wasm", digest.hex()))
    }

    /// Where `r` is in S3.
    pub fn uri(&self, tenant: &TenantId, r: &ArtifactRef) -> S3Uri {
        self.bucket.uri(self.object_key(tenant, r))
    }

    async fn get_object(&self, key: String) -> Result<Option<(Vec<u8>, String)>, Error> {
        self.bucket.get(&self.bucket.uri(key)).await
    }
}

#[async_trait::async_trait]
impl ArtifactStore for S3Artifacts {
    async fn put(
        &self,
        tenant: &TenantId,
        execution: &ExecutionId,
        key: &str,
        content_type: &str,
        content: &[u8],
    ) -> Result<ArtifactRef, Error> {
        let r = ArtifactRef::new(execution, key)?;
        let object = self.object_key(tenant, &r);
        if let Some(quota) = &self.quota {
            let limit = quota.limit(tenant).await;
            let old = self.object_size(&object).await?.unwrap_or(0);
            self.counted(tenant).await?;
            // Checked and reserved under one lock, so this host's concurrent puts cannot
            // both pass on the same room.
            let mut usage = self.usage.lock().expect("artifact usage poisoned");
            let entry = usage.entry(tenant.clone()).or_insert((0, Instant::now()));
            entry.0 = check_quota(entry.0, old, content.len() as u64, limit)?;
        } else {
            // Nothing was counted for this put: list again when the usage is asked for.
            self.usage
                .lock()
                .expect("artifact usage poisoned")
                .remove(tenant);
        }
        if let Err(e) = self
            .bucket
            .put(object, content_type, content.to_vec())
            .await
        {
            // Whether it was stored is unknown now: list again next time.
            self.usage
                .lock()
                .expect("artifact usage poisoned")
                .remove(tenant);
            return Err(e);
        }
        Ok(r)
    }

    async fn usage(&self, tenant: &TenantId) -> Result<u64, Error> {
        self.counted(tenant).await
    }

    async fn get(&self, tenant: &TenantId, r: &ArtifactRef) -> Result<(Vec<u8>, String), Error> {
        self.get_object(self.object_key(tenant, r))
            .await?
            .ok_or_else(|| Error::NotFound(r.to_string()))
    }

    async fn put_component(&self, digest: &ComponentDigest, bytes: &[u8]) -> Result<(), Error> {
        self.bucket
            .put(
                self.component_key(digest),
                "application/wasm",
                bytes.to_vec(),
            )
            .await
    }

    async fn get_component(&self, digest: &ComponentDigest) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .get_object(self.component_key(digest))
            .await?
            .map(|(bytes, _)| bytes))
    }

    /// A SigV4 query-signed GET URL, clamped to 1 s ..= 7 days.
    async fn presign(
        &self,
        tenant: &TenantId,
        r: &ArtifactRef,
        expires_in_seconds: u64,
    ) -> Result<String, Error> {
        let object = self.object_key(tenant, r);
        // Like the disk store: no link to an artifact that does not exist.
        if self.object_size(&object).await?.is_none() {
            return Err(Error::NotFound(r.to_string()));
        }
        let expires = Duration::from_secs(expires_in_seconds.clamp(1, MAX_PRESIGN_SECONDS));
        let config = PresigningConfig::expires_in(expires)
            .map_err(|e| Error::Backend(format!("presign: {e}")))?;
        let req = self
            .bucket
            .client()
            .get_object()
            .bucket(self.bucket.name())
            .key(object)
            .response_content_disposition(super::attachment(&r.key))
            .presigned(config)
            .await
            .map_err(|e| sdk_err("presign", e))?;
        Ok(req.uri().to_string())
    }
}

#[cfg(test)]
mod tests;

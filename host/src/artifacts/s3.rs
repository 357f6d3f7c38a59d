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
//! The [`ArtifactStore`] interface is synchronous (the engine calls it from blocking threads), so
//! like the DynamoDB store this owns a small runtime and waits on a channel for each call.

use super::{ArtifactRef, ArtifactStore, Error, Quota, check_quota};
use crate::aws::{AwsOptions, sdk_config};
use crate::config::{ArtifactsConfig, Sse};
use crate::ids::{ComponentDigest, ExecutionId, TenantId};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Uploads larger than this are multipart.
pub const MULTIPART_THRESHOLD: usize = 8 << 20;
/// Size of each multipart part but the last (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;
/// SigV4 presigned URLs live at most 7 days.
pub const MAX_PRESIGN_SECONDS: u64 = 7 * 86_400;
/// How long a tenant's listed usage is trusted before it is listed again (see the module doc).
pub const USAGE_REFRESH: Duration = Duration::from_secs(300);

/// `s3://bucket/key`: where an artifact physically is, for operators and tools that speak S3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    /// Parses and validates `s3://bucket/key`: the bucket follows S3's naming rules
    /// (3-63 characters of `a-z0-9.-`, starting and ending with a letter or digit, no `..`, not
    /// an IPv4 address), the key is 1-1024 bytes without control characters.
    ///
    /// # Errors
    /// [`Error::BadReference`] naming the input.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let bad = || Error::BadReference(raw.chars().take(300).collect());
        let rest = raw.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, key) = rest.split_once('/').ok_or_else(bad)?;
        if !valid_bucket(bucket)
            || key.is_empty()
            || key.len() > 1024
            || key.chars().any(char::is_control)
        {
            return Err(bad());
        }
        Ok(Self {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// S3's bucket naming rules (general purpose buckets).
pub fn valid_bucket(b: &str) -> bool {
    let bytes = b.as_bytes();
    (3..=63).contains(&b.len())
        && bytes
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[b.len() - 1].is_ascii_alphanumeric()
        && !b.contains("..")
        && b.parse::<std::net::Ipv4Addr>().is_err()
        && !b.starts_with("xn--")
        && !b.ends_with("-s3alias")
}

/// Where the bucket is and how objects are written.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub bucket: String,
    /// Prepended to every object key (a `/` is added when missing).
    pub prefix: String,
    pub sse: Sse,
    /// With `Sse::Kms`; default: the account's AWS-managed key.
    pub kms_key_id: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`), which local servers such as moto need.
    pub force_path_style: bool,
    pub aws: AwsOptions,
}

impl S3Options {
    /// # Errors
    /// When no bucket is configured.
    pub fn from_config(c: &ArtifactsConfig) -> anyhow::Result<Self> {
        let bucket = c.bucket.clone().filter(|b| !b.is_empty()).ok_or_else(|| {
            anyhow::anyhow!(
                "artifacts.backend = \"s3\" needs artifacts.bucket (or ARTIFACT_BUCKET)"
            )
        })?;
        anyhow::ensure!(valid_bucket(&bucket), "invalid S3 bucket name {bucket:?}");
        Ok(Self {
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
}

/// A bucket and the way objects are written to it: the async core that the artifact store and
/// the DynamoDB store's spill of large values share. Cheap to clone.
#[derive(Clone)]
pub struct Bucket {
    client: Client,
    options: S3Options,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("bucket", &self.options.bucket)
            .field("prefix", &self.options.prefix)
            .finish_non_exhaustive()
    }
}

/// The DynamoDB store spills values too large for an item to objects of the artifact bucket.
impl crate::store::dynamo::SpillBucket for Bucket {
    fn key(&self, name: &str) -> String {
        Bucket::key(self, name)
    }
    fn reference(&self, key: &str) -> String {
        self.uri(key.to_string()).to_string()
    }
    fn key_of(&self, reference: &str) -> Option<String> {
        S3Uri::parse(reference).ok().map(|uri| uri.key)
    }
    fn put(
        &self,
        key: String,
        json: Vec<u8>,
    ) -> futures_util::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            Bucket::put(self, key, "application/json", json)
                .await
                .map_err(|e| e.to_string())
        })
    }
    fn get<'a>(
        &'a self,
        reference: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        Box::pin(async move {
            let uri = S3Uri::parse(reference).map_err(|e| e.to_string())?;
            Ok(Bucket::get(self, &uri)
                .await
                .map_err(|e| e.to_string())?
                .map(|(bytes, _)| bytes))
        })
    }
}

impl Bucket {
    /// Builds the client on the current runtime (no request is made: a missing bucket shows
    /// on first use).
    ///
    /// # Errors
    /// When no region is configured.
    pub async fn connect(options: S3Options) -> Result<Self, Error> {
        let config = sdk_config(&options.aws)
            .await
            .map_err(|e| Error::Backend(format!("{e:#}")))?;
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(options.force_path_style)
            .build();
        Ok(Self {
            client: Client::from_conf(s3),
            options,
        })
    }

    pub fn name(&self) -> &str {
        &self.options.bucket
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `rest` under the configured prefix (a `/` is added after a prefix that lacks one).
    pub fn key(&self, rest: &str) -> String {
        let prefix = self.options.prefix.trim_start_matches('/');
        let sep = if prefix.is_empty() || prefix.ends_with('/') {
            ""
        } else {
            "/"
        };
        format!("{prefix}{sep}{rest}")
    }

    fn sse(&self) -> ServerSideEncryption {
        match self.options.sse {
            Sse::Aes256 => ServerSideEncryption::Aes256,
            Sse::Kms => ServerSideEncryption::AwsKms,
        }
    }

    fn kms_key(&self) -> Option<String> {
        match self.options.sse {
            Sse::Kms => self.options.kms_key_id.clone(),
            Sse::Aes256 => None,
        }
    }

    /// Puts one object with the configured encryption, in parts when it is large.
    ///
    /// # Errors
    /// When S3 refuses or cannot be reached (after the SDK's retries).
    pub async fn put(
        &self,
        key: String,
        content_type: &str,
        content: Vec<u8>,
    ) -> Result<(), Error> {
        let client = self.client.clone();
        let bucket = self.options.bucket.clone();
        let (sse, kms_key) = (self.sse(), self.kms_key());
        if content.len() > MULTIPART_THRESHOLD {
            return multipart(
                client,
                bucket,
                key,
                content_type.to_string(),
                sse,
                kms_key,
                content,
            )
            .await;
        }
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .body(ByteStream::from(content))
            .send()
            .await
            .map_err(|e| sdk_err("put object", e))?;
        Ok(())
    }

    /// One object's content and content type, or `None` when there is no such key.
    ///
    /// # Errors
    /// When S3 refuses or cannot be reached (after the SDK's retries).
    pub async fn get(&self, uri: &S3Uri) -> Result<Option<(Vec<u8>, String)>, Error> {
        let out = match self
            .client
            .get_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Ok(None);
            }
            Err(e) => return Err(sdk_err("get object", e)),
        };
        let content_type = out
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| Error::Backend(format!("S3 read body: {e}")))?
            .into_bytes();
        Ok(Some((bytes.to_vec(), content_type)))
    }

    /// `s3://<bucket>/<key>`.
    pub fn uri(&self, key: String) -> S3Uri {
        S3Uri {
            bucket: self.options.bucket.clone(),
            key,
        }
    }
}

pub struct S3Artifacts {
    bucket: Bucket,
    runtime: Option<tokio::runtime::Runtime>,
    quota: Option<Quota>,
    /// Per tenant: stored bytes, and when they were last listed.
    usage: Mutex<HashMap<TenantId, (u64, Instant)>>,
}

impl Drop for S3Artifacts {
    fn drop(&mut self) {
        // Dropping a runtime from async code panics; winding it down in the background does not.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn sdk_err<E: std::error::Error + 'static>(what: &str, e: E) -> Error {
    Error::Backend(format!("S3 {what}: {}", DisplayErrorContext(e)))
}

impl S3Artifacts {
    /// Builds the client (no request is made: a missing bucket shows on first use).
    ///
    /// # Errors
    /// When the runtime cannot start or no region is configured.
    pub fn open(options: S3Options) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("aegis-s3")
            .enable_all()
            .build()?;
        let bucket = block_on(&rt, Bucket::connect(options))?;
        Ok(Self {
            bucket,
            runtime: Some(rt),
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

    /// The tenant's stored bytes: the count kept since the last listing, or a new listing when
    /// there is none or it is older than [`USAGE_REFRESH`].
    fn counted(&self, tenant: &TenantId) -> Result<u64, Error> {
        if let Some((bytes, at)) = self
            .usage
            .lock()
            .expect("artifact usage poisoned")
            .get(tenant)
            && at.elapsed() < USAGE_REFRESH
        {
            return Ok(*bytes);
        }
        let client = self.bucket.client.clone();
        let bucket = self.bucket.name().to_string();
        let prefix = self.bucket.key(&format!("{tenant}/"));
        let listed = self.run(async move {
            let mut sum = 0u64;
            let mut token = None;
            loop {
                let page = client
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix(&prefix)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .map_err(|e| sdk_err("list objects", e))?;
                sum += page
                    .contents()
                    .iter()
                    .filter_map(|o| o.size())
                    .map(|n| n.max(0) as u64)
                    .sum::<u64>();
                token = page.next_continuation_token().map(str::to_string);
                if token.is_none() {
                    return Ok(sum);
                }
            }
        })?;
        self.usage
            .lock()
            .expect("artifact usage poisoned")
            .insert(tenant.clone(), (listed, Instant::now()));
        Ok(listed)
    }

    /// The size of the object at `key`, 0 when there is none.
    fn object_size(&self, key: String) -> Result<u64, Error> {
        let client = self.bucket.client.clone();
        let bucket = self.bucket.name().to_string();
        self.run(async move {
            match client.head_object().bucket(bucket).key(key).send().await {
                Ok(head) => Ok(head.content_length().unwrap_or(0).max(0) as u64),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(0),
                Err(e) => Err(sdk_err("head object", e)),
            }
        })
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

    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::Backend("the S3 runtime stopped".into()))?;
        block_on(rt, fut)
    }
}

/// Runs `fut` on `rt` and waits for it from any thread, even a runtime worker.
fn block_on<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    fut: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| Error::Backend("the S3 runtime stopped".into()))?
}

async fn multipart(
    client: Client,
    bucket: String,
    key: String,
    content_type: String,
    sse: ServerSideEncryption,
    kms_key: Option<String>,
    content: Vec<u8>,
) -> Result<(), Error> {
    let sse_is_kms = sse == ServerSideEncryption::AwsKms;
    let created = client
        .create_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .content_type(content_type)
        .server_side_encryption(sse)
        .set_ssekms_key_id(kms_key)
        .send()
        .await
        .map_err(|e| sdk_err("create multipart upload", e))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| Error::Backend("S3 returned no upload id".into()))?
        .to_string();
    let mut parts = Vec::new();
    let mut failed = None;
    for (i, chunk) in content.chunks(PART_SIZE).enumerate() {
        let number = i as i32 + 1;
        match client
            .upload_part()
            .bucket(&bucket)
            .key(&key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
        {
            Ok(out) => parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .build(),
            ),
            Err(e) => {
                failed = Some(sdk_err("upload part", e));
                break;
            }
        }
    }
    if failed.is_none()
        && let Err(e) = client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
    {
        // A 200 answer the SDK could not read leaves the outcome unknown (moto names the
        // root element CompleteMultipartUploadResponse, getmoto/moto#10055); the object read
        // back settles it: completed exactly when it has this upload's size and ETag.
        let answered_ok = matches!(&e, aws_sdk_s3::error::SdkError::ServiceError(s)
            if s.raw().status().is_success());
        if !(answered_ok && completed(&client, &bucket, &key, sse_is_kms, &content).await) {
            failed = Some(sdk_err("complete multipart upload", e));
        }
    }
    match failed {
        None => Ok(()),
        Some(e) => {
            let _ = client
                .abort_multipart_upload()
                .bucket(&bucket)
                .key(&key)
                .upload_id(&upload_id)
                .send()
                .await;
            Err(e)
        }
    }
}

/// The ETag S3 gives a multipart object: MD5 of the parts' MD5s, then `-<parts>`.
pub fn multipart_etag(content: &[u8]) -> String {
    use md5::{Digest, Md5};
    let mut digests = Vec::new();
    let mut parts = 0;
    for chunk in content.chunks(PART_SIZE) {
        digests.extend_from_slice(&Md5::digest(chunk)[..]);
        parts += 1;
    }
    format!("{}-{parts}", hex::encode(&Md5::digest(&digests)[..]))
}

/// Whether the object at `key` is the multipart upload of `content`. With SSE-KMS the ETag is
/// not an MD5, so only its part count and the size are compared.
async fn completed(client: &Client, bucket: &str, key: &str, kms: bool, content: &[u8]) -> bool {
    let Ok(head) = client.head_object().bucket(bucket).key(key).send().await else {
        return false;
    };
    let etag = head.e_tag().unwrap_or_default().trim_matches('"');
    let expected = multipart_etag(content);
    let same_etag = if kms {
        let parts = expected.rsplit_once('-').map_or("", |(_, n)| n);
        etag.rsplit_once('-').is_some_and(|(_, n)| n == parts)
    } else {
        etag == expected
    };
    same_etag && head.content_length() == Some(content.len() as i64)
}

impl S3Artifacts {
    fn put_object(&self, key: String, content_type: &str, content: &[u8]) -> Result<(), Error> {
        let bucket = self.bucket.clone();
        let (content_type, content) = (content_type.to_string(), content.to_vec());
        self.run(async move { bucket.put(key, &content_type, content).await })
    }

    fn get_object(&self, key: String) -> Result<Option<(Vec<u8>, String)>, Error> {
        let bucket = self.bucket.clone();
        self.run(async move { bucket.get(&bucket.uri(key)).await })
    }
}

impl ArtifactStore for S3Artifacts {
    fn put(
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
            let limit = quota(tenant);
            let old = self.object_size(object.clone())?;
            self.counted(tenant)?;
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
        if let Err(e) = self.put_object(object, content_type, content) {
            // Whether it was stored is unknown now: list again next time.
            self.usage
                .lock()
                .expect("artifact usage poisoned")
                .remove(tenant);
            return Err(e);
        }
        Ok(r)
    }

    fn usage(&self, tenant: &TenantId) -> Result<u64, Error> {
        self.counted(tenant)
    }

    fn get(&self, tenant: &TenantId, r: &ArtifactRef) -> Result<(Vec<u8>, String), Error> {
        self.get_object(self.object_key(tenant, r))?
            .ok_or_else(|| Error::NotFound(r.to_string()))
    }

    fn put_component(&self, digest: &ComponentDigest, bytes: &[u8]) -> Result<(), Error> {
        self.put_object(self.component_key(digest), "application/wasm", bytes)
    }

    fn get_component(&self, digest: &ComponentDigest) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .get_object(self.component_key(digest))?
            .map(|(bytes, _)| bytes))
    }

    /// A SigV4 query-signed GET URL, clamped to 1 s ..= 7 days.
    fn presign(
        &self,
        tenant: &TenantId,
        r: &ArtifactRef,
        expires_in_seconds: u64,
    ) -> Result<String, Error> {
        let client = self.bucket.client.clone();
        let bucket = self.bucket.name().to_string();
        let object = self.object_key(tenant, r);
        let name = r.to_string();
        let disposition = super::attachment(&r.key);
        let expires = Duration::from_secs(expires_in_seconds.clamp(1, MAX_PRESIGN_SECONDS));
        self.run(async move {
            // Like the disk store: no link to an artifact that does not exist.
            match client
                .head_object()
                .bucket(&bucket)
                .key(&object)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                    return Err(Error::NotFound(name));
                }
                Err(e) => return Err(sdk_err("head object", e)),
            }
            let config = PresigningConfig::expires_in(expires)
                .map_err(|e| Error::Backend(format!("presign: {e}")))?;
            let req = client
                .get_object()
                .bucket(bucket)
                .key(object)
                .response_content_disposition(disposition)
                .presigned(config)
                .await
                .map_err(|e| sdk_err("presign", e))?;
            Ok(req.uri().to_string())
        })
    }
}

#[cfg(test)]
mod tests;

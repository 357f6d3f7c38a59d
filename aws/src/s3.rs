//! An S3 bucket and the way objects are written to it: the async core that the host's S3
//! artifact store and the DynamoDB store's spill of large values share.
//!
//! Every write asks for server-side encryption ([`Sse`]: `AES256` by default, or `aws:kms`).
//! Content over [`MULTIPART_THRESHOLD`] goes up as a multipart upload in [`PART_SIZE`] parts
//! (a single PUT is capped at 5 GiB and retries the whole body; a failed multipart upload is
//! aborted so no orphan parts are billed).

use crate::{AwsOptions, sdk_config};
use aegis_core::artifacts::Error;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use serde::Deserialize;
use std::fmt;

/// Uploads larger than this are multipart.
pub const MULTIPART_THRESHOLD: usize = 8 << 20;
/// Size of each multipart part but the last (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;

/// The server-side encryption every object is written with.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Sse {
    #[default]
    #[serde(rename = "AES256")]
    Aes256,
    #[serde(rename = "aws:kms")]
    Kms,
}

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

pub fn sdk_err<E: std::error::Error + 'static>(what: &str, e: E) -> Error {
    Error::Backend(format!("S3 {what}: {}", DisplayErrorContext(e)))
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

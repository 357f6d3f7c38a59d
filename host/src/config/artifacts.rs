//! The `[artifacts]` section: where artifacts are kept.

use serde::Deserialize;

/// The `[artifacts]` section.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ArtifactsConfig {
    pub backend: ArtifactsBackend,
    /// S3: the bucket (alias `ARTIFACT_BUCKET`). Setting it does not switch the backend.
    pub bucket: Option<String>,
    /// S3: prepended to `<tenant>/<execution>/<key>`.
    pub prefix: String,
    /// S3: a local server instead of AWS (plain `http://` works).
    pub endpoint_url: Option<String>,
    /// S3: default `AWS_REGION` or the AWS profile.
    pub region: Option<String>,
    /// S3 server-side encryption: `AES256` (default) or `aws:kms`.
    pub sse: Sse,
    /// S3 with `sse = "aws:kms"`: the key; default the account's AWS-managed key.
    pub kms_key_id: Option<String>,
    /// S3: path-style URLs, which local servers (moto) need.
    pub force_path_style: bool,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactsBackend {
    /// `<data_dir>/artifacts`, links served by the host.
    #[default]
    Disk,
    S3,
}

pub use aegis_aws::s3::Sse;

//! The `[store]` section: where checkpoints are kept.

use serde::Deserialize;

/// The `[store]` section.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// DynamoDB: the table is `<table_prefix>checkpoints` (a `-` is added after a prefix that
    /// does not end in `-`, `_` or `.`).
    pub table_prefix: String,
    /// DynamoDB: a local server instead of AWS (plain `http://` works).
    pub endpoint_url: Option<String>,
    /// DynamoDB: default `AWS_REGION` or the AWS profile.
    pub region: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Embedded,
            table_prefix: "aegis-".into(),
            endpoint_url: None,
            region: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// SQLite in the data folder.
    #[default]
    Embedded,
    Dynamodb,
}

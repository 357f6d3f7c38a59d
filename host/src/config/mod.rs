//! Configuration: one TOML file, then environment variables, then command-line flags, each
//! overriding the one before. Every key has a default, so no file is needed.
//! `aegis.example.toml` at the repository root lists every key.
//!
//! A tour: [`Config`] is the whole configuration, with one file per section ([`ServerConfig`],
//! [`StoreConfig`], [`UploadsConfig`], ...); `layers` reads the file and the environment into it
//! ([`Config::load`], [`ENV_KEYS`]); `agents` adds the agents that `*_AGENT_ARN` variables name.
//! Feature modules' sections (the research pipeline's `[pipeline]`) are no fields here: `features`
//! sets them aside for their module to read ([`Config::section`], [`FEATURE_SECTIONS`]).

mod agents;
mod artifacts;
mod cluster;
mod features;
mod lambda;
mod layers;
mod notifications;
mod server;
mod store;
mod uploads;

pub use agents::AGENT_ARN_ENV;
pub use artifacts::{ArtifactsBackend, ArtifactsConfig, Sse};
pub use cluster::ClusterConfig;
pub use features::{FEATURE_SECTIONS, FeatureSection};
pub use lambda::{
    FunctionRef, LambdaConfig, durable_execution_arn, durable_name, execution_arn, function_arn,
    version,
};
pub use layers::ENV_KEYS;
pub use notifications::NotificationsConfig;
pub use server::ServerConfig;
pub use store::{StoreBackend, StoreConfig};
pub use uploads::UploadsConfig;

use crate::agents::AgentConfig;
use crate::quotas::Quotas;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Folder for the embedded store, components and artifacts.
    pub data_dir: PathBuf,
    /// Base URL agents, presigned links and the console's links (approval pages) use to reach
    /// the host (default: the bound address).
    pub public_url: Option<String>,
    /// The operator key. Setting it turns on tenant API keys for every request.
    pub admin_key: Option<String>,
    /// The host secret that seals tenant keys' secrets at rest for SigV4 verification (the
    /// admin key when unset). Keys sealed under one secret stop working for SigV4 (not as bearer
    /// keys) when it changes: set this before changing the admin key, to the admin key in use.
    pub credentials_key: Option<String>,
    /// Guest instances that may exist at once.
    pub max_instances: u32,
    /// Quotas every tenant gets unless its own overrides say otherwise.
    pub quotas: Quotas,
    /// Agents by name: a URL (A2A v0.3), or a table `{url, protocol, version, bearer_token}`
    /// (`bedrock` agents: `{protocol, agent_runtime_arn, region, qualifier, url}`).
    pub agents: BTreeMap<String, AgentConfig>,
    /// Agent results larger than this travel as artifact references, in KiB.
    pub agent_inline_limit_kb: u32,
    /// Where workflow events are posted (HMAC-signed with `webhook_secret`).
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    /// Where checkpoints are kept: the embedded store (default) or DynamoDB.
    pub store: StoreConfig,
    /// Where artifacts are kept: the data folder (default) or S3.
    pub artifacts: ArtifactsConfig,
    /// Optional AWS sinks for workflow events, beside the webhook (all off by default).
    pub notifications: NotificationsConfig,
    /// Several hosts sharing one store: leases and the takeover sweep.
    pub cluster: ClusterConfig,
    /// Component uploads: how many compiles run at once, wait, and how long one may take.
    pub uploads: UploadsConfig,
    /// The HTTP server's own limits: timeouts, connections, and the rates of the routes that
    /// take no API key.
    pub server: ServerConfig,
    /// The AWS Lambda durable-functions surface: the region and account its ARNs show, and
    /// how long a synchronous Invoke waits.
    pub lambda: LambdaConfig,
    /// The sections of the feature modules compiled in, as the file and the environment set
    /// them ([`FEATURE_SECTIONS`]); each module reads its own with [`Config::section`].
    #[serde(skip)]
    pub features: figment::Figment,
    /// The same sections as the file alone sets them: [`Config::section`] reads them again
    /// without the environment's leniency, so that a number in quotes in the file is refused.
    #[serde(skip)]
    pub features_in_file: figment::Figment,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            admin_key: None,
            credentials_key: None,
            max_instances: 256,
            quotas: Quotas::default(),
            agents: BTreeMap::new(),
            agent_inline_limit_kb: 200,
            webhook_url: None,
            webhook_secret: None,
            store: StoreConfig::default(),
            artifacts: ArtifactsConfig::default(),
            notifications: NotificationsConfig::default(),
            cluster: ClusterConfig::default(),
            uploads: UploadsConfig::default(),
            server: ServerConfig::default(),
            lambda: LambdaConfig::default(),
            features: figment::Figment::new(),
            features_in_file: figment::Figment::new(),
        }
    }
}

impl Config {
    /// Refuses what cannot work, naming the setting: quotas out of range, a webhook whose
    /// posts could not be signed, an instance pool too small for one activation, an agent
    /// name with a `:`, and the sections' own checks.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.quotas
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid default quotas: {e}"))?;
        let invalid = |e: String| anyhow::anyhow!("invalid configuration: {e}");
        // Receivers check the HMAC to know a post came from this host; an empty key signs
        // nothing anyone could not forge.
        if self
            .webhook_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
            && self
                .webhook_secret
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
        {
            return Err(invalid(
                "webhook_url is set but webhook_secret is missing or empty: set webhook_secret \
                 (AEGIS_WEBHOOK_SECRET) to the key the receiver checks X-Aegis-Signature with"
                    .into(),
            ));
        }
        // The runtime gives activations half the pool's instances as slots (`max_instances /
        // 2`), so a smaller pool has no slot and every execution would wait forever.
        if self.max_instances < 2 {
            return Err(invalid(format!(
                "max_instances (AEGIS_MAX_INSTANCES) must be at least 2, got {}: activations \
                 use half of the instance pool, so a smaller pool can run none",
                self.max_instances
            )));
        }
        // Agents' names are kept where chained invokes keep their target, marked with a `:`.
        if let Some(name) = self
            .agents
            .keys()
            .find(|name| !crate::journal::valid_agent_name(name))
        {
            return Err(invalid(format!(
                "agent name {name:?} must be non-empty and may not contain ':'"
            )));
        }
        self.cluster.validate().map_err(invalid)?;
        self.lambda.validate().map_err(invalid)?;
        self.server.validate().map_err(invalid)?;
        self.uploads.validate().map_err(invalid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

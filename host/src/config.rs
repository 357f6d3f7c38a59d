//! Configuration: one TOML file, then environment variables, then command-line flags, each
//! overriding the one before. Every key has a default, so no file is needed.
//! `aegis.example.toml` at the repository root lists every key.

use crate::agents::AgentConfig;
use crate::tenancy::Quotas;
use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Folder for the embedded store, components and artifacts.
    pub data_dir: PathBuf,
    /// Base URL agents and presigned links use to reach the host (default: the bound address).
    pub public_url: Option<String>,
    /// The operator key. Setting it turns on tenant API keys for every request.
    pub admin_key: Option<String>,
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
    /// Defaults of the research pipeline's own API (`POST /workflows`).
    pub pipeline: PipelineConfig,
    /// Several hosts sharing one store: leases and the takeover sweep.
    pub cluster: ClusterConfig,
    /// Component uploads: how many compiles run at once, wait, and how long one may take.
    pub uploads: UploadsConfig,
    /// The HTTP server's own limits: timeouts, connections, and the rates of the routes that
    /// take no API key.
    pub server: ServerConfig,
}

/// The `[uploads]` section: the host-wide bounds on compiling uploaded components (the size of
/// one upload is the tenant's `max_component_mb`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// Compiles that run at once. Each takes a core (Cranelift) and can take hundreds of MB,
    /// so the default is 1: activations keep the other cores.
    pub compile_concurrency: u32,
    /// Compiles that may wait for a slot; an upload that would be one more gets 429 with
    /// `Retry-After`. Uploads of bytes being compiled already wait on that compile instead.
    pub compile_queue: u32,
    /// How long one compile (or its wait for a slot) may take, in ms; past it the upload is
    /// refused. The compile itself cannot be interrupted, so it keeps its slot until it ends.
    pub compile_timeout_ms: u64,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        Self {
            compile_concurrency: 1,
            compile_queue: 8,
            compile_timeout_ms: 120_000,
        }
    }
}

/// The `[server]` section. Every limit here protects the host from callers it cannot identify:
/// a connection that never finishes its request, or a flood on the routes that need no key.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// A connection must send a request's whole header within this time, or it is closed. It
    /// also bounds how long an idle keep-alive connection is kept. Without it, connections that
    /// send a header byte by byte (slowloris) would hold the host's connections forever.
    pub header_read_timeout_ms: u64,
    /// A request's whole body must arrive within this time, counted from the end of its
    /// header; a later body is a 408. Large enough for the largest component upload on a slow
    /// link, small enough that a trickled body cannot hold a connection for long.
    pub body_timeout_ms: u64,
    /// Connections served at once. Past it, new connections wait in the listen backlog (and
    /// are refused by the kernel once that is full) instead of taking the host's file
    /// descriptors and memory.
    pub max_connections: u32,
    /// Heartbeats (and agents' progress updates) per second on one callback, and the burst
    /// above it: each is a durable write. A callback id is a capability, not an identity:
    /// whoever holds it may post, but not as fast as they can. Completions are not limited per
    /// callback (only one can win).
    pub callback_requests_per_second: u32,
    pub callback_request_burst: u32,
    /// Requests per second from one source address on the routes that take no API key, and
    /// the burst above it. Behind a proxy every request has the proxy's address: raise it.
    pub address_requests_per_second: u32,
    pub address_request_burst: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 120_000,
            max_connections: 1024,
            callback_requests_per_second: 20,
            callback_request_burst: 50,
            address_requests_per_second: 200,
            address_request_burst: 400,
        }
    }
}

impl UploadsConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// A concurrency of 0 or over 64, a queue over 10 000, or a time limit under 100 ms or
    /// over an hour.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.compile_concurrency) {
            return Err(format!(
                "uploads.compile_concurrency must be between 1 and 64, got {}",
                self.compile_concurrency
            ));
        }
        if self.compile_queue > 10_000 {
            return Err(format!(
                "uploads.compile_queue must be at most 10000, got {}",
                self.compile_queue
            ));
        }
        if !(100..=3_600_000).contains(&self.compile_timeout_ms) {
            return Err(format!(
                "uploads.compile_timeout_ms must be between 100 and 3600000, got {}",
                self.compile_timeout_ms
            ));
        }
        Ok(())
    }
}

impl ServerConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// A timeout under 100 ms or over an hour, no connections, or a rate or burst of 0; the
    /// message names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (key, ms) in [
            ("server.header_read_timeout_ms", self.header_read_timeout_ms),
            ("server.body_timeout_ms", self.body_timeout_ms),
        ] {
            if !(100..=3_600_000).contains(&ms) {
                return Err(format!("{key} must be between 100 and 3600000, got {ms}"));
            }
        }
        for (key, n) in [
            ("server.max_connections", self.max_connections),
            (
                "server.callback_requests_per_second",
                self.callback_requests_per_second,
            ),
            ("server.callback_request_burst", self.callback_request_burst),
            (
                "server.address_requests_per_second",
                self.address_requests_per_second,
            ),
            ("server.address_request_burst", self.address_request_burst),
        ] {
            if n == 0 {
                return Err(format!("{key} must be at least 1, got 0"));
            }
        }
        Ok(())
    }
}

/// The `[cluster]` section: how hosts that share a DynamoDB table split the work.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This host's name in leases. Default with DynamoDB: `<hostname>:<port>`, so a host
    /// restarted at the same address takes its own leases back at once, while a different host
    /// waits for them to expire; with the embedded store, which one host owns, `embedded`. Two
    /// hosts must never share one.
    pub host_id: Option<String>,
    /// How long a lease lasts unless renewed (renewed every third of it while an activation
    /// runs); the time a dead host's executions wait before another host takes them. Default
    /// 10 000 ms.
    pub lease_ttl_ms: Option<u64>,
    /// How often the store is searched for executions whose lease expired and for due timers
    /// another host armed. Default 1 000 ms with DynamoDB; off (0) with the embedded store,
    /// which one host owns.
    pub sweep_interval_ms: Option<u64>,
}

impl ClusterConfig {
    pub const DEFAULT_LEASE_TTL_MS: u64 = 10_000;
    pub const DEFAULT_SWEEP_INTERVAL_MS: u64 = 1_000;

    /// Checks the values: a lease must outlive a renewal round trip.
    ///
    /// # Errors
    /// A lease shorter than 500 ms or longer than an hour, or an empty host id.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(ttl) = self.lease_ttl_ms
            && !(500..=3_600_000).contains(&ttl)
        {
            return Err(format!(
                "cluster.lease_ttl_ms must be between 500 and 3600000, got {ttl}"
            ));
        }
        if self.host_id.as_deref().is_some_and(|h| h.trim().is_empty()) {
            return Err("cluster.host_id must not be empty".into());
        }
        Ok(())
    }
}

/// The `[pipeline]` section: defaults for runs started by `POST /workflows`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// How long a run waits for its approval when the request gives no
    /// `parameters.timeouts_seconds.approval`, in hours (alias `APPROVAL_TIMEOUT_HOURS`).
    /// Default: none, so the workflow's own default (24 h) applies.
    pub approval_timeout_hours: Option<u32>,
}

impl PipelineConfig {
    /// The longest approval timeout: 366 days, the host's limit for any durable wait (and the
    /// workflow's, so a configured default never makes a run fail its input check).
    pub const MAX_APPROVAL_TIMEOUT_HOURS: u32 = 366 * 24;

    /// The default approval timeout in seconds, if one is configured.
    pub fn approval_timeout_seconds(&self) -> Option<u64> {
        self.approval_timeout_hours.map(|h| u64::from(h) * 3600)
    }

    /// Checks the values.
    ///
    /// # Errors
    /// An approval timeout of 0 hours or over [`Self::MAX_APPROVAL_TIMEOUT_HOURS`].
    pub fn validate(&self) -> Result<(), String> {
        if let Some(hours) = self.approval_timeout_hours
            && !(1..=Self::MAX_APPROVAL_TIMEOUT_HOURS).contains(&hours)
        {
            return Err(format!(
                "pipeline.approval_timeout_hours (APPROVAL_TIMEOUT_HOURS) must be between 1 and \
                 {} (366 days), got {hours}",
                Self::MAX_APPROVAL_TIMEOUT_HOURS
            ));
        }
        Ok(())
    }
}

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

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Sse {
    #[default]
    #[serde(rename = "AES256")]
    Aes256,
    #[serde(rename = "aws:kms")]
    Kms,
}

/// The `[notifications]` section: each sink is on when its target is set.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// SNS topic that receives `approval.requested` events (alias `APPROVAL_SNS_TOPIC_ARN`).
    pub approval_sns_topic_arn: Option<String>,
    /// EventBridge bus that receives workflow events (started, approval requested, completed,
    /// failed, rejected).
    pub event_bus_name: Option<String>,
    /// The `Source` of those EventBridge events.
    pub event_source: String,
    /// SNS and EventBridge: a local server instead of AWS (plain `http://` works).
    pub endpoint_url: Option<String>,
    /// SNS and EventBridge: default `AWS_REGION` or the AWS profile.
    pub region: Option<String>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            approval_sns_topic_arn: None,
            event_bus_name: None,
            event_source: "aegis".into(),
            endpoint_url: None,
            region: None,
        }
    }
}

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

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            admin_key: None,
            max_instances: 256,
            quotas: Quotas::default(),
            agents: BTreeMap::new(),
            agent_inline_limit_kb: 200,
            webhook_url: None,
            webhook_secret: None,
            store: StoreConfig::default(),
            artifacts: ArtifactsConfig::default(),
            notifications: NotificationsConfig::default(),
            pipeline: PipelineConfig::default(),
            cluster: ClusterConfig::default(),
            uploads: UploadsConfig::default(),
            server: ServerConfig::default(),
        }
    }
}

/// Environment variables that override the file, with the key each one sets. They are applied
/// in this order, whatever the environment's: where an alias and an `AEGIS_*` name set the same
/// key, the alias comes first, so the `AEGIS_*` name wins.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("AEGIS_LISTEN", "listen"),
    ("AEGIS_DATA_DIR", "data_dir"),
    // The name the research pipeline's users already know.
    ("CALLBACK_API_URL", "public_url"),
    ("AEGIS_PUBLIC_URL", "public_url"),
    ("AEGIS_ADMIN_KEY", "admin_key"),
    ("AEGIS_MAX_INSTANCES", "max_instances"),
    ("AEGIS_WEBHOOK_URL", "webhook_url"),
    ("AEGIS_AGENT_INLINE_LIMIT_KB", "agent_inline_limit_kb"),
    ("AEGIS_WEBHOOK_SECRET", "webhook_secret"),
    (
        "AEGIS_MAX_RUNNING_EXECUTIONS",
        "quotas.max_running_executions",
    ),
    ("AEGIS_MAX_COMPONENT_MB", "quotas.max_component_mb"),
    ("AEGIS_MEMORY_LIMIT_MB", "quotas.memory_limit_mb"),
    ("AEGIS_CPU_DEADLINE_MS", "quotas.cpu_deadline_ms"),
    ("AEGIS_MAX_PAYLOAD_KB", "quotas.max_payload_kb"),
    ("AEGIS_REQUESTS_PER_SECOND", "quotas.requests_per_second"),
    ("AEGIS_REQUEST_BURST", "quotas.request_burst"),
    ("AEGIS_WALL_DEADLINE_MS", "quotas.wall_deadline_ms"),
    ("AEGIS_MAX_ACTIVATION_SLOTS", "quotas.max_activation_slots"),
    ("AEGIS_MAX_ARTIFACT_MB", "quotas.max_artifact_mb"),
    ("AEGIS_STORE_BACKEND", "store.backend"),
    // The pipeline's own name for its table (here: the prefix of Aegis's table).
    ("WORKFLOW_TABLE", "store.table_prefix"),
    ("AEGIS_DYNAMODB_ENDPOINT", "store.endpoint_url"),
    ("AEGIS_ARTIFACTS_BACKEND", "artifacts.backend"),
    // The pipeline's own name for its bucket; the backend is still switched explicitly.
    ("ARTIFACT_BUCKET", "artifacts.bucket"),
    ("AEGIS_S3_ENDPOINT", "artifacts.endpoint_url"),
    (
        "APPROVAL_SNS_TOPIC_ARN",
        "notifications.approval_sns_topic_arn",
    ),
    ("AEGIS_EVENT_BUS_NAME", "notifications.event_bus_name"),
    ("AEGIS_EVENT_SOURCE", "notifications.event_source"),
    ("AEGIS_NOTIFICATIONS_ENDPOINT", "notifications.endpoint_url"),
    // The pipeline's own name for its approval timeout.
    ("APPROVAL_TIMEOUT_HOURS", "pipeline.approval_timeout_hours"),
    (
        "AEGIS_APPROVAL_TIMEOUT_HOURS",
        "pipeline.approval_timeout_hours",
    ),
    ("AEGIS_HOST_ID", "cluster.host_id"),
    ("AEGIS_LEASE_TTL_MS", "cluster.lease_ttl_ms"),
    ("AEGIS_SWEEP_INTERVAL_MS", "cluster.sweep_interval_ms"),
    ("AEGIS_COMPILE_CONCURRENCY", "uploads.compile_concurrency"),
    ("AEGIS_COMPILE_QUEUE", "uploads.compile_queue"),
    ("AEGIS_COMPILE_TIMEOUT_MS", "uploads.compile_timeout_ms"),
    (
        "AEGIS_HEADER_READ_TIMEOUT_MS",
        "server.header_read_timeout_ms",
    ),
    ("AEGIS_BODY_TIMEOUT_MS", "server.body_timeout_ms"),
    ("AEGIS_MAX_CONNECTIONS", "server.max_connections"),
    (
        "AEGIS_CALLBACK_REQUESTS_PER_SECOND",
        "server.callback_requests_per_second",
    ),
    (
        "AEGIS_CALLBACK_REQUEST_BURST",
        "server.callback_request_burst",
    ),
    (
        "AEGIS_ADDRESS_REQUESTS_PER_SECOND",
        "server.address_requests_per_second",
    ),
    (
        "AEGIS_ADDRESS_REQUEST_BURST",
        "server.address_request_burst",
    ),
];

/// Environment variables that configure a Bedrock AgentCore agent by its runtime ARN (region
/// from `AWS_REGION`, else the ARN's), unless an agent of that name is configured already.
pub const AGENT_ARN_ENV: &[(&str, &str)] = &[
    ("RESEARCHER_AGENT_ARN", "researcher"),
    ("ANALYST_AGENT_ARN", "analyst"),
    ("WRITER_AGENT_ARN", "writer"),
];

impl Config {
    /// Reads `path` (if given), then applies `env` (pairs of variable and value).
    ///
    /// # Errors
    /// A file that cannot be read or parsed, or a variable with a bad value; the message names
    /// the file or the variable.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut doc: toml::Table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("read config {}", path.display()))?;
                text.parse()
                    .with_context(|| format!("parse config {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        let mut arn_agents = Vec::new();
        let mut aws_region = None;
        // (position in ENV_KEYS, key, value), applied in table order below.
        let mut keyed = Vec::new();
        for (var, value) in env {
            if let Some((_, agent)) = AGENT_ARN_ENV.iter().find(|(name, _)| *name == var) {
                if !value.trim().is_empty() {
                    arn_agents.push((*agent, value.trim().to_string()));
                }
            } else if var == "AWS_REGION" {
                aws_region = Some(value.trim().to_string()).filter(|r| !r.is_empty());
            } else if let Some(i) = ENV_KEYS.iter().position(|(name, _)| *name == var) {
                keyed.push((i, ENV_KEYS[i].1, value));
            } else if var == "AEGIS_AGENTS" {
                for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
                    let (name, url) = pair.split_once('=').with_context(|| {
                        format!("AEGIS_AGENTS: expected name=url, got {pair:?}")
                    })?;
                    set(&mut doc, &format!("agents.{}", name.trim()), url.trim());
                }
            }
        }
        keyed.sort_by_key(|(i, _, _)| *i);
        for (_, key, value) in keyed {
            set(&mut doc, key, &value);
        }
        for (agent, arn) in arn_agents {
            let agents = doc
                .entry("agents")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(agents) = agents.as_table_mut()
                && !agents.contains_key(agent)
            {
                let mut table = toml::Table::new();
                table.insert("protocol".into(), "bedrock".into());
                table.insert("agent_runtime_arn".into(), arn.into());
                if let Some(region) = &aws_region {
                    table.insert("region".into(), region.clone().into());
                }
                agents.insert(agent.to_string(), toml::Value::Table(table));
            }
        }
        let config: Config = doc.try_into().context("invalid configuration")?;
        for (name, agent) in &config.agents {
            agent
                .endpoint()
                .check()
                .map_err(|e| anyhow::anyhow!("invalid configuration: agent {name:?}: {e}"))?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Refuses what cannot work, naming the setting: quotas out of range, a webhook whose
    /// posts could not be signed, an instance pool too small for one activation, and the
    /// sections' own checks.
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
        self.pipeline.validate().map_err(invalid)?;
        self.cluster.validate().map_err(invalid)?;
        self.server.validate().map_err(invalid)?;
        self.uploads.validate().map_err(invalid)?;
        Ok(())
    }
}

/// Sets a dotted key from a string, as TOML would read the value (a number stays a number).
fn set(doc: &mut toml::Table, dotted: &str, raw: &str) {
    let value = match raw.parse::<i64>() {
        Ok(n) => toml::Value::Integer(n),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let mut table = doc;
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            table.insert(part.to_string(), value);
            return;
        }
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        table = entry.as_table_mut().expect("made a table above");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_file_gives_the_defaults() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.quotas, Quotas::default());
        assert!(c.admin_key.is_none());
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.toml");
        std::fs::write(&path, "data_dir = \"/srv/aegis\"\n[quotas]\nmemory_limit_mb = 32\ncpu_deadline_ms = 500\n[agents]\nresearcher = \"http://a\"\n").unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("AEGIS_CPU_DEADLINE_MS", "750"),
                ("AEGIS_AGENTS", "writer=http://w"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/aegis"));
        assert_eq!(c.quotas.memory_limit_mb, 32);
        assert_eq!(c.quotas.cpu_deadline_ms, 750);
        assert_eq!(c.agents.len(), 2);
    }

    #[test]
    fn agent_arn_variables_configure_bedrock_agents() {
        use crate::agents::Protocol;
        let arn = "arn:aws:bedrock-agentcore:eu-west-1:123456789012:runtime/researcher-AbC123";
        let c = Config::load(
            None,
            env(&[
                ("AEGIS_AGENTS", "writer=http://w"),
                ("RESEARCHER_AGENT_ARN", arn),
                (
                    "WRITER_AGENT_ARN",
                    "arn:aws:bedrock-agentcore:eu-west-1:1:runtime/w",
                ),
                ("ANALYST_AGENT_ARN", ""),
                ("AWS_REGION", "eu-west-1"),
            ]),
        )
        .unwrap();
        let researcher = c.agents["researcher"].endpoint();
        assert_eq!(researcher.protocol, Protocol::Bedrock);
        assert_eq!(researcher.agent_runtime_arn.as_deref(), Some(arn));
        assert_eq!(researcher.region.as_deref(), Some("eu-west-1"));
        // A configured agent wins over the alias; an empty alias configures nothing.
        assert_eq!(c.agents["writer"].endpoint().protocol, Protocol::A2a);
        assert!(!c.agents.contains_key("analyst"));
    }

    #[test]
    fn agents_lacking_what_their_protocol_needs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.toml");
        std::fs::write(&path, "[agents.analyst]\nprotocol = \"bedrock\"\n").unwrap();
        let err = Config::load(Some(&path), env(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("agent_runtime_arn"), "{err:#}");
        std::fs::write(&path, "[agents.analyst]\nprotocol = \"simple\"\n").unwrap();
        let err = Config::load(Some(&path), env(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("url is required"), "{err:#}");
        std::fs::write(
            &path,
            "[agents.analyst]\nprotocol = \"bedrock\"\nagent_runtime_arn = \"arn:aws:bedrock-agentcore:us-west-2:1:runtime/a\"\nqualifier = \"prod\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(
            c.agents["analyst"].endpoint().qualifier.as_deref(),
            Some("prod")
        );
    }

    #[test]
    fn the_store_section_and_its_aliases() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.store, StoreConfig::default());
        assert_eq!(c.store.backend, StoreBackend::Embedded);
        let c = Config::load(
            None,
            env(&[
                ("AEGIS_STORE_BACKEND", "dynamodb"),
                ("WORKFLOW_TABLE", "research-workflows"),
                ("AEGIS_DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.store.backend, StoreBackend::Dynamodb);
        assert_eq!(c.store.table_prefix, "research-workflows");
        assert_eq!(
            c.store.endpoint_url.as_deref(),
            Some("http://127.0.0.1:8000")
        );
        let err = Config::load(None, env(&[("AEGIS_STORE_BACKEND", "postgres")])).unwrap_err();
        assert!(format!("{err:#}").contains("postgres"), "{err:#}");
    }

    #[test]
    fn the_artifacts_and_notifications_sections_and_their_aliases() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.artifacts.backend, ArtifactsBackend::Disk);
        assert_eq!(c.artifacts.sse, Sse::Aes256);
        assert!(c.notifications.approval_sns_topic_arn.is_none());
        assert_eq!(c.notifications.event_source, "aegis");
        let c = Config::load(
            None,
            env(&[
                ("ARTIFACT_BUCKET", "research-artifacts"),
                (
                    "APPROVAL_SNS_TOPIC_ARN",
                    "arn:aws:sns:us-east-1:123456789012:approvals",
                ),
            ]),
        )
        .unwrap();
        // The bucket alone does not switch the backend.
        assert_eq!(c.artifacts.backend, ArtifactsBackend::Disk);
        assert_eq!(c.artifacts.bucket.as_deref(), Some("research-artifacts"));
        assert_eq!(
            c.notifications.approval_sns_topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:approvals")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.toml");
        std::fs::write(
            &path,
            "[artifacts]\nbackend = \"s3\"\nbucket = \"b\"\nsse = \"aws:kms\"\nkms_key_id = \"k\"\nforce_path_style = true\n[notifications]\nevent_bus_name = \"bus\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(c.artifacts.backend, ArtifactsBackend::S3);
        assert_eq!(c.artifacts.sse, Sse::Kms);
        assert!(c.artifacts.force_path_style);
        assert_eq!(c.notifications.event_bus_name.as_deref(), Some("bus"));
        let err = Config::load(None, env(&[("AEGIS_ARTIFACTS_BACKEND", "gcs")])).unwrap_err();
        assert!(format!("{err:#}").contains("gcs"), "{err:#}");
    }

    #[test]
    fn the_approval_timeout_and_its_alias() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.pipeline.approval_timeout_hours, None);
        assert_eq!(c.pipeline.approval_timeout_seconds(), None);
        let c = Config::load(None, env(&[("APPROVAL_TIMEOUT_HOURS", "48")])).unwrap();
        assert_eq!(c.pipeline.approval_timeout_seconds(), Some(48 * 3600));
        // The AEGIS_* name wins over the alias, in either order of the environment.
        for pairs in [
            [
                ("APPROVAL_TIMEOUT_HOURS", "48"),
                ("AEGIS_APPROVAL_TIMEOUT_HOURS", "2"),
            ],
            [
                ("AEGIS_APPROVAL_TIMEOUT_HOURS", "2"),
                ("APPROVAL_TIMEOUT_HOURS", "48"),
            ],
        ] {
            let c = Config::load(None, env(&pairs)).unwrap();
            assert_eq!(c.pipeline.approval_timeout_hours, Some(2), "{pairs:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.toml");
        std::fs::write(&path, "[pipeline]\napproval_timeout_hours = 8784\n").unwrap();
        let c = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(c.pipeline.approval_timeout_seconds(), Some(366 * 86_400));
        // The environment overrides the file.
        let c = Config::load(Some(&path), env(&[("APPROVAL_TIMEOUT_HOURS", "1")])).unwrap();
        assert_eq!(c.pipeline.approval_timeout_hours, Some(1));

        // Zero, over 366 days, negative or not a whole number of hours: refused, naming the key.
        for bad in ["0", "8785", "-3", "1.5", "a day"] {
            let err = Config::load(None, env(&[("APPROVAL_TIMEOUT_HOURS", bad)])).unwrap_err();
            let err = format!("{err:#}");
            assert!(err.contains("approval_timeout_hours"), "{bad}: {err}");
        }
        let err = Config::load(None, env(&[("APPROVAL_TIMEOUT_HOURS", "0")])).unwrap_err();
        assert!(
            format!("{err:#}").contains("between 1 and 8784 (366 days), got 0"),
            "{err:#}"
        );
    }

    #[test]
    fn the_public_url_alias_loses_to_the_aegis_name() {
        for pairs in [
            [
                ("CALLBACK_API_URL", "https://callbacks.example.com"),
                ("AEGIS_PUBLIC_URL", "https://aegis.example.com"),
            ],
            [
                ("AEGIS_PUBLIC_URL", "https://aegis.example.com"),
                ("CALLBACK_API_URL", "https://callbacks.example.com"),
            ],
        ] {
            let c = Config::load(None, env(&pairs)).unwrap();
            assert_eq!(
                c.public_url.as_deref(),
                Some("https://aegis.example.com"),
                "{pairs:?}"
            );
        }
        let c = Config::load(
            None,
            env(&[("CALLBACK_API_URL", "https://callbacks.example.com")]),
        )
        .unwrap();
        assert_eq!(
            c.public_url.as_deref(),
            Some("https://callbacks.example.com")
        );
    }

    #[test]
    fn a_webhook_without_a_secret_is_refused() {
        let hook = ("AEGIS_WEBHOOK_URL", "https://hooks.example.com/aegis");
        for secret in [None, Some(""), Some("  ")] {
            let mut pairs = vec![hook];
            if let Some(secret) = secret {
                pairs.push(("AEGIS_WEBHOOK_SECRET", secret));
            }
            let err = Config::load(None, env(&pairs)).unwrap_err();
            let err = format!("{err:#}");
            assert!(
                err.contains("webhook_secret") && err.contains("AEGIS_WEBHOOK_SECRET"),
                "{secret:?}: {err}"
            );
        }
        let c = Config::load(None, env(&[hook, ("AEGIS_WEBHOOK_SECRET", "s3cret")])).unwrap();
        assert_eq!(c.webhook_secret.as_deref(), Some("s3cret"));
        // No webhook (or an empty URL, which means none): no secret needed.
        Config::load(None, env(&[("AEGIS_WEBHOOK_URL", "")])).unwrap();
    }

    #[test]
    fn an_instance_pool_without_room_for_an_activation_is_refused() {
        for n in ["0", "1"] {
            let err = Config::load(None, env(&[("AEGIS_MAX_INSTANCES", n)])).unwrap_err();
            let err = format!("{err:#}");
            assert!(
                err.contains("max_instances") && err.contains("at least 2"),
                "{err}"
            );
        }
        let c = Config::load(None, env(&[("AEGIS_MAX_INSTANCES", "2")])).unwrap();
        assert_eq!(c.max_instances, 2);
        // Flags change the configuration after it is loaded; validating again catches them.
        let c = Config {
            max_instances: 1,
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn the_server_section_and_its_limits() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.server, ServerConfig::default());
        let c = Config::load(
            None,
            env(&[
                ("AEGIS_HEADER_READ_TIMEOUT_MS", "2500"),
                ("AEGIS_MAX_CONNECTIONS", "64"),
                ("AEGIS_CALLBACK_REQUESTS_PER_SECOND", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.header_read_timeout_ms, 2500);
        assert_eq!(c.server.max_connections, 64);
        assert_eq!(c.server.callback_requests_per_second, 5);
        assert_eq!(
            c.server.body_timeout_ms,
            ServerConfig::default().body_timeout_ms
        );
        for (var, value, key) in [
            (
                "AEGIS_HEADER_READ_TIMEOUT_MS",
                "0",
                "server.header_read_timeout_ms",
            ),
            ("AEGIS_BODY_TIMEOUT_MS", "99", "server.body_timeout_ms"),
            ("AEGIS_MAX_CONNECTIONS", "0", "server.max_connections"),
            (
                "AEGIS_ADDRESS_REQUEST_BURST",
                "0",
                "server.address_request_burst",
            ),
        ] {
            let err = Config::load(None, env(&[(var, value)])).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{var}={value}: {err:#}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::load(None, env(&[("AEGIS_MEMORY_LIMIT_MB", "lots")])).unwrap_err();
        assert!(format!("{err:#}").contains("memory_limit_mb"), "{err:#}");
        let err = Config::load(None, env(&[("AEGIS_MAX_PAYLOAD_KB", "100000")])).unwrap_err();
        assert!(format!("{err:#}").contains("max_payload_kb"), "{err:#}");
    }

    #[test]
    fn the_uploads_section_and_its_variables() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.uploads, UploadsConfig::default());
        let c = Config::load(
            None,
            env(&[
                ("AEGIS_COMPILE_CONCURRENCY", "2"),
                ("AEGIS_COMPILE_QUEUE", "0"),
                ("AEGIS_COMPILE_TIMEOUT_MS", "5000"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.uploads,
            UploadsConfig {
                compile_concurrency: 2,
                compile_queue: 0,
                compile_timeout_ms: 5000,
            }
        );
        let err = Config::load(None, env(&[("AEGIS_COMPILE_CONCURRENCY", "0")])).unwrap_err();
        assert!(
            format!("{err:#}").contains("uploads.compile_concurrency"),
            "{err:#}"
        );
    }
}

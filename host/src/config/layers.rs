//! Reading the file and the environment into a [`Config`]. figment merges the layers and types
//! each value by the field it lands in: the environment's values are strings, and one becomes a
//! number only where the field is a number, so an all-digit secret stays a string.
//!
//! The names stay ours: [`ENV_KEYS`] maps each variable to the key it sets, because the aliases
//! the research pipeline's users know (`WORKFLOW_TABLE`, ...) follow no prefix rule.

use super::Config;
use super::agents;
use super::features::FeatureSection;
use anyhow::Context;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use std::path::Path;

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
    ("AEGIS_CREDENTIALS_KEY", "credentials_key"),
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
    ("AEGIS_LAMBDA_REGION", "lambda.region"),
    ("AEGIS_LAMBDA_ACCOUNT_ID", "lambda.account_id"),
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

impl Config {
    /// Reads `path` (if given), then applies `env` (pairs of variable and value).
    ///
    /// # Errors
    /// A file that cannot be read or parsed, or a variable with a bad value; the message names
    /// the file or the variable, and the key.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        // The feature modules' sections, apart: `Config` has no field for them.
        let mut features = Figment::new();
        // The file's own layers, read again strictly below (the generic one) and by
        // `Config::section` (the feature sections').
        let mut file = None;
        let mut features_in_file = Figment::new();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read config {}", path.display()))?;
            let mut table: toml::Table = text
                .parse()
                .with_context(|| format!("parse config {}", path.display()))?;
            let mut sections = toml::Table::new();
            for name in table.keys().cloned().collect::<Vec<_>>() {
                if let Some(section) = FeatureSection::named(&name) {
                    section.check_compiled(&format!(
                        "the [{name}] section of config file {}",
                        path.display()
                    ))?;
                    sections.extend(table.remove_entry(&name));
                }
            }
            let name = format!("config file {}", path.display());
            let value = |table: toml::Table| {
                Value::serialize(&table).with_context(|| format!("parse config {}", path.display()))
            };
            let (generic, sections) = (value(table)?, value(sections)?);
            figment = figment.merge(Layer::new(name.clone(), generic.clone()));
            features = features.merge(Layer::new(name.clone(), sections.clone()));
            features_in_file = Figment::from(Layer::new(name.clone(), sections));
            file = Some((name, generic));
        }
        let mut arn_agents = Vec::new();
        let mut aws_region = None;
        // (position in ENV_KEYS, variable, value), applied in table order below; the same for
        // the feature sections' variables, by position among them, with the key each sets.
        let mut keyed = Vec::new();
        let mut feature_keyed = Vec::new();
        for (var, value) in env {
            if let Some((section, i, key)) = FeatureSection::of_variable(&var) {
                section.check_compiled(&format!("the environment variable {var}"))?;
                feature_keyed.push((i, var, key, value));
            } else if let Some(agent) = agents::arn_variable(&var) {
                if !value.trim().is_empty() {
                    arn_agents.push((agent, value.trim().to_string()));
                }
            } else if var == "AWS_REGION" {
                aws_region = Some(value.trim().to_string()).filter(|r| !r.is_empty());
            } else if let Some(i) = ENV_KEYS.iter().position(|(name, _)| *name == var) {
                keyed.push((i, var, value));
            } else if var == "AEGIS_AGENTS" {
                for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
                    let (name, url) = pair.split_once('=').with_context(|| {
                        format!("AEGIS_AGENTS: expected name=url, got {pair:?}")
                    })?;
                    figment = figment.merge(Layer::variable(
                        "AEGIS_AGENTS",
                        &format!("agents.{}", name.trim()),
                        url.trim(),
                    ));
                }
            }
        }
        keyed.sort_by_key(|(i, _, _)| *i);
        for (i, var, value) in keyed {
            figment = figment.merge(Layer::variable(&var, ENV_KEYS[i].1, &value));
        }
        feature_keyed.sort_by_key(|(i, _, _, _)| *i);
        for (_, var, key, value) in feature_keyed {
            features = features.merge(Layer::variable(&var, key, &value));
        }
        figment = agents::add_arn_agents(figment, arn_agents, aws_region.as_deref());
        // Lossy: a string becomes a number or a boolean where the field is one, and stays a
        // string everywhere else.
        let mut config: Config = figment.extract_lossy().context("invalid configuration")?;
        // The file's values are typed as TOML types them: `"5"` is a string, refused where the
        // key is a number (or a boolean). Only the environment's values, all strings, are typed
        // by the field they land in.
        if let Some((name, generic)) = file {
            Figment::from(Layer::new(name, generic))
                .extract::<Config>()
                .map_err(quoted_in_file)?;
        }
        config.features = features;
        config.features_in_file = features_in_file;
        for (name, agent) in &config.agents {
            agent
                .endpoint()
                .check()
                .map_err(|e| anyhow::anyhow!("invalid configuration: agent {name:?}: {e}"))?;
        }
        config.validate()?;
        Ok(config)
    }
}

/// The error of a value of the file that only the environment's leniency would have taken: a
/// number or a boolean written as a string.
pub(super) fn quoted_in_file(e: figment::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "invalid configuration: {e} (in the file, a number or a boolean is written without \
         quotes; only environment variables give them as strings)"
    )
}

/// One layer of configuration: the values of one source, named in error messages.
pub(super) struct Layer {
    name: String,
    values: Dict,
}

impl Layer {
    /// A layer of `value`, a table; anything else is an empty layer.
    pub(super) fn new(name: String, value: Value) -> Self {
        Self {
            name,
            values: value.into_dict().unwrap_or_default(),
        }
    }

    /// The layer of one variable: the dotted `key` set to `value`, still a string.
    pub(super) fn variable(var: &str, key: &str, value: &str) -> Self {
        Self::new(
            format!("environment variable {var}"),
            figment::util::nest(key, Value::from(value.to_string())),
        )
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        // Errors name the key as the file writes it (`quotas.cpu_deadline_ms`).
        Metadata::named(self.name.clone()).interpolater(|_, path| path.join("."))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

//! The `[cluster]` section: leases and the takeover sweep of hosts sharing one store.

use serde::Deserialize;

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

//! Per-tenant quotas: defaults from configuration, optional overrides per tenant.

use serde::{Deserialize, Serialize};

/// The limits one tenant runs under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    /// Executions of the tenant in status RUNNING at once.
    pub max_running_executions: u32,
    /// Largest component upload, in MiB.
    pub max_component_mb: u32,
    /// Linear memory cap per guest instance, in MiB.
    pub memory_limit_mb: u32,
    /// CPU time per activation, in milliseconds: the guest's and the host's work on its calls.
    pub cpu_deadline_ms: u64,
    /// Largest execution input or callback result, in KiB.
    pub max_payload_kb: u32,
    /// Sustained API requests per second.
    pub requests_per_second: u32,
    /// Requests allowed in a burst above the sustained rate.
    pub request_burst: u32,
    /// Artifact bytes the tenant may keep stored, in MiB (all its executions together).
    pub max_artifact_mb: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_running_executions: 10_000,
            max_component_mb: 50,
            memory_limit_mb: 64,
            cpu_deadline_ms: 10_000,
            max_payload_kb: 256,
            requests_per_second: 1_000,
            request_burst: 2_000,
            max_artifact_mb: 1024,
        }
    }
}

/// Per-tenant changes to the defaults; a missing field keeps the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running_executions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_component_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_kb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_artifact_mb: Option<u32>,
}

/// Hard ceilings no quota may exceed, so a tenant cannot be configured past what the host's
/// instance pool and store accept.
pub const MAX_MEMORY_MB: u32 = 4096;
pub const MAX_PAYLOAD_KB: u32 = 256;
pub const MAX_COMPONENT_MB: u32 = 512;
pub const MAX_CPU_DEADLINE_MS: u64 = 15 * 60 * 1000;
/// 1 TiB: the counter is exact, but a larger quota is a configuration mistake.
pub const MAX_ARTIFACT_MB: u32 = 1 << 20;

impl Quotas {
    /// The defaults with `overrides` applied.
    pub fn with(&self, overrides: &Overrides) -> Quotas {
        Quotas {
            max_running_executions: overrides
                .max_running_executions
                .unwrap_or(self.max_running_executions),
            max_component_mb: overrides.max_component_mb.unwrap_or(self.max_component_mb),
            memory_limit_mb: overrides.memory_limit_mb.unwrap_or(self.memory_limit_mb),
            cpu_deadline_ms: overrides.cpu_deadline_ms.unwrap_or(self.cpu_deadline_ms),
            max_payload_kb: overrides.max_payload_kb.unwrap_or(self.max_payload_kb),
            requests_per_second: overrides
                .requests_per_second
                .unwrap_or(self.requests_per_second),
            request_burst: overrides.request_burst.unwrap_or(self.request_burst),
            max_artifact_mb: overrides.max_artifact_mb.unwrap_or(self.max_artifact_mb),
        }
    }

    /// Checks every field is within the host's ceilings.
    ///
    /// # Errors
    /// A message naming the first field out of range.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, u64, u64, u64); 8] = [
            (
                "max_running_executions",
                self.max_running_executions.into(),
                1,
                10_000_000,
            ),
            (
                "max_component_mb",
                self.max_component_mb.into(),
                1,
                MAX_COMPONENT_MB.into(),
            ),
            (
                "memory_limit_mb",
                self.memory_limit_mb.into(),
                1,
                MAX_MEMORY_MB.into(),
            ),
            (
                "cpu_deadline_ms",
                self.cpu_deadline_ms,
                10,
                MAX_CPU_DEADLINE_MS,
            ),
            (
                "max_payload_kb",
                self.max_payload_kb.into(),
                1,
                MAX_PAYLOAD_KB.into(),
            ),
            (
                "requests_per_second",
                self.requests_per_second.into(),
                1,
                1_000_000,
            ),
            ("request_burst", self.request_burst.into(), 1, 10_000_000),
            (
                "max_artifact_mb",
                self.max_artifact_mb.into(),
                1,
                MAX_ARTIFACT_MB.into(),
            ),
        ];
        for (name, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(format!(
                    "{name} must be between {min} and {max}, not {value}"
                ));
            }
        }
        Ok(())
    }

    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_kb as usize * 1024
    }

    pub fn max_component_bytes(&self) -> usize {
        self.max_component_mb as usize * 1024 * 1024
    }

    pub fn max_artifact_bytes(&self) -> u64 {
        u64::from(self.max_artifact_mb) << 20
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_name() {
        let q = Quotas::default().with(&Overrides {
            memory_limit_mb: Some(8),
            ..Overrides::default()
        });
        assert_eq!(q.memory_limit_mb, 8);
        assert_eq!(q.cpu_deadline_ms, Quotas::default().cpu_deadline_ms);
    }

    #[test]
    fn out_of_range_quotas_are_named() {
        let q = Quotas {
            max_payload_kb: 1024,
            ..Quotas::default()
        };
        assert_eq!(
            q.validate().unwrap_err(),
            "max_payload_kb must be between 1 and 256, not 1024"
        );
        assert!(Quotas::default().validate().is_ok());
    }
}

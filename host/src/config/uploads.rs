//! The `[uploads]` section: how many component compiles run at once, wait, and how long one
//! may take.

use serde::Deserialize;

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

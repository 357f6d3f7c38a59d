//! The `[pipeline]` section: the research pipeline's own defaults. It is kept apart from the
//! generic host's sections so that it can move out with the pipeline's routes.

use serde::Deserialize;

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

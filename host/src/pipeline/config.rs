//! The `[pipeline]` section: the research pipeline's own defaults. The generic configuration
//! sets it aside ([`crate::config::FEATURE_SECTIONS`]); this module reads and checks it.

use crate::config::Config;
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
    /// The section's name in the file, and in [`crate::config::FEATURE_SECTIONS`].
    pub const SECTION: &str = "pipeline";

    /// The longest approval timeout: 366 days, the host's limit for any durable wait (and the
    /// workflow's, so a configured default never makes a run fail its input check).
    pub const MAX_APPROVAL_TIMEOUT_HOURS: u32 = 366 * 24;

    /// The `[pipeline]` section of `config`, checked.
    ///
    /// # Errors
    /// A value of the wrong type, or one [`Self::validate`] refuses.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let section: Self = config.section(Self::SECTION)?;
        section
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(section)
    }

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

#[cfg(test)]
mod tests {
    use super::PipelineConfig;
    use crate::config::Config;
    use std::path::Path;

    fn load(path: Option<&Path>, pairs: &[(&str, &str)]) -> anyhow::Result<PipelineConfig> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        PipelineConfig::from_config(&Config::load(path, env)?)
    }

    #[test]
    fn the_approval_timeout_and_its_alias() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.approval_timeout_hours, None);
        assert_eq!(c.approval_timeout_seconds(), None);
        let c = load(None, &[("APPROVAL_TIMEOUT_HOURS", "48")]).unwrap();
        assert_eq!(c.approval_timeout_seconds(), Some(48 * 3600));
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
            let c = load(None, &pairs).unwrap();
            assert_eq!(c.approval_timeout_hours, Some(2), "{pairs:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.toml");
        std::fs::write(&path, "[pipeline]\napproval_timeout_hours = 8784\n").unwrap();
        let c = load(Some(&path), &[]).unwrap();
        assert_eq!(c.approval_timeout_seconds(), Some(366 * 86_400));
        // The environment overrides the file.
        let c = load(Some(&path), &[("APPROVAL_TIMEOUT_HOURS", "1")]).unwrap();
        assert_eq!(c.approval_timeout_hours, Some(1));

        // Zero, over 366 days, negative or not a whole number of hours: refused, naming the key.
        for bad in ["0", "8785", "-3", "1.5", "a day"] {
            let err = load(None, &[("APPROVAL_TIMEOUT_HOURS", bad)]).unwrap_err();
            let err = format!("{err:#}");
            assert!(err.contains("approval_timeout_hours"), "{bad}: {err}");
        }
        let err = load(None, &[("APPROVAL_TIMEOUT_HOURS", "0")]).unwrap_err();
        assert!(
            format!("{err:#}").contains("between 1 and 8784 (366 days), got 0"),
            "{err:#}"
        );
        // An unknown key of the section is refused, naming it.
        std::fs::write(&path, "[pipeline]\napproval_timeout = 2\n").unwrap();
        let err = format!("{:#}", load(Some(&path), &[]).unwrap_err());
        assert!(err.contains("approval_timeout"), "{err}");
    }
    #[test]
    fn a_number_in_quotes_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.toml");
        std::fs::write(&path, "[pipeline]\napproval_timeout_hours = \"8\"\n").unwrap();
        let err = format!("{:#}", load(Some(&path), &[]).unwrap_err());
        assert!(
            err.contains("approval_timeout_hours") && err.contains("without quotes"),
            "{err}"
        );
        // From the environment, where every value is a string, it is a number.
        let c = load(None, &[("APPROVAL_TIMEOUT_HOURS", "8")]).unwrap();
        assert_eq!(c.approval_timeout_hours, Some(8));
    }
}

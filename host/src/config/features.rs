//! Sections of the configuration that belong to feature modules (Cargo features of the `aegis`
//! crate), such as the research pipeline's `[pipeline]`.
//!
//! The generic sections are typed fields of [`Config`]; a feature module's section is not, so
//! that the generic host names no feature module. [`Config::load`] sets such a section's values
//! (from the file and from its variables) aside in [`Config::features`], where the module reads
//! its own with [`Config::section`]. A build without the feature refuses the section and its
//! variables, naming the feature: a setting the host cannot honour is never silently ignored.

use super::Config;
use super::layers::quoted_in_file;
use anyhow::Context;
use serde::de::DeserializeOwned;

/// A section a feature module reads, and the environment variables that set its keys.
pub struct FeatureSection {
    /// The table's name in the file (`[name]`).
    pub name: &'static str,
    /// The Cargo feature of the `aegis` crate that compiles the module in.
    pub feature: &'static str,
    /// What the module is, for the message that refuses its settings.
    pub what: &'static str,
    /// Whether this build has the feature.
    pub compiled: bool,
    /// Variables that set keys of the section, with the key each sets, applied in this order:
    /// where an alias and an `AEGIS_*` name set the same key, the alias comes first, so the
    /// `AEGIS_*` name wins.
    pub env: &'static [(&'static str, &'static str)],
}

/// Every feature module's section, compiled in or not: a build must know the sections it left
/// out to refuse them by name.
pub const FEATURE_SECTIONS: &[FeatureSection] = &[FeatureSection {
    name: "pipeline",
    feature: "pipeline",
    what: "the research pipeline",
    compiled: cfg!(feature = "pipeline"),
    env: &[
        // The pipeline's own name for its approval timeout.
        ("APPROVAL_TIMEOUT_HOURS", "pipeline.approval_timeout_hours"),
        (
            "AEGIS_APPROVAL_TIMEOUT_HOURS",
            "pipeline.approval_timeout_hours",
        ),
    ],
}];

impl FeatureSection {
    /// The section whose table is `name`, if it is a feature module's.
    pub(super) fn named(name: &str) -> Option<&'static Self> {
        FEATURE_SECTIONS.iter().find(|s| s.name == name)
    }

    /// The section a variable sets a key of, with the variable's position among all the
    /// sections' variables (the order they are applied in) and the key.
    pub(super) fn of_variable(var: &str) -> Option<(&'static Self, usize, &'static str)> {
        FEATURE_SECTIONS
            .iter()
            .flat_map(|s| s.env.iter().map(move |(name, key)| (s, *name, *key)))
            .enumerate()
            .find(|(_, (_, name, _))| *name == var)
            .map(|(i, (s, _, key))| (s, i, key))
    }

    /// Refuses `setting` when this build does not have the feature.
    ///
    /// # Errors
    /// When the feature is not compiled in: the message names the setting and the feature.
    pub(super) fn check_compiled(&self, setting: &str) -> anyhow::Result<()> {
        if self.compiled {
            return Ok(());
        }
        anyhow::bail!(
            "invalid configuration: {setting} configures {what}, but this host was built without \
             {what} (feature `{feature}`): remove the setting, or build the host with \
             `--features {feature}`",
            what = self.what,
            feature = self.feature,
        )
    }
}

impl Config {
    /// The feature module's section `name` as the file and the environment set it, or its
    /// default when neither did. Values from the environment are typed by the field they land
    /// in, as for the generic sections; values from the file are typed as TOML types them.
    ///
    /// # Errors
    /// A value of the wrong type (a number in quotes in the file included) or an unknown key;
    /// the message names its source and the key.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> anyhow::Result<T> {
        if !self.features.contains(name) {
            return Ok(T::default());
        }
        let section = self
            .features
            .extract_inner_lossy(name)
            .context("invalid configuration")?;
        if self.features_in_file.contains(name) {
            self.features_in_file
                .extract_inner::<T>(name)
                .map_err(quoted_in_file)?;
        }
        Ok(section)
    }
}

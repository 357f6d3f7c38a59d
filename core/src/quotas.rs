//! Per-tenant quotas: defaults from configuration, optional overrides per tenant.
//!
//! Plain types with no dependency, kept out of the host's `tenancy` module (which reads tenants from the
//! store) so that the store's records, the engine's budget and the configuration can hold them
//! without depending on the tenant registry.
//!
//! Each quota is declared once, in the [`quotas!`] table below: its type, default, valid range
//! and meaning. The table makes [`Quotas`] (the effective values), [`Overrides`] (what a
//! tenant changes), [`Quotas::with`] and [`Quotas::validate`], so a new quota cannot be added to
//! one of them and forgotten in another.

use serde::{Deserialize, Serialize};

/// Hard ceilings no quota may exceed, so a tenant cannot be configured past what the host's
/// instance pool and store accept.
pub const MAX_MEMORY_MB: u32 = 4096;
pub const MAX_PAYLOAD_KB: u32 = 256;
pub const MAX_COMPONENT_MB: u32 = 512;
pub const MAX_CPU_DEADLINE_MS: u64 = 15 * 60 * 1000;
/// 1 TiB: the counter is exact, but a larger quota is a configuration mistake.
pub const MAX_ARTIFACT_MB: u32 = 1 << 20;

macro_rules! quotas {
    ($($(#[doc = $doc:literal])* $name:ident: $ty:ty = $default:expr, $min:expr, $max:expr;)*) => {
        /// The limits one tenant runs under.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Quotas {
            $($(#[doc = $doc])* pub $name: $ty,)*
        }

        impl Default for Quotas {
            fn default() -> Self {
                Self { $($name: $default,)* }
            }
        }

        /// Per-tenant changes to the defaults; a missing field keeps the default.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Overrides {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
        }

        /// One quota as the table declares it: what the API document states for it.
        pub struct Range {
            pub name: &'static str,
            pub min: u64,
            pub max: u64,
            /// The largest value its type holds (an override may be anything up to it).
            pub type_max: u64,
            /// The table's doc comment, one line per comment line.
            pub doc: &'static [&'static str],
        }

        /// Every quota of the table, in its order.
        pub const RANGES: &[Range] = &[$(Range {
            name: stringify!($name),
            min: $min as u64,
            max: $max as u64,
            type_max: <$ty>::MAX as u64,
            doc: &[$($doc),*],
        },)*];

        impl Quotas {
            /// The defaults with `overrides` applied.
            pub fn with(&self, overrides: &Overrides) -> Quotas {
                Quotas { $($name: overrides.$name.unwrap_or(self.$name),)* }
            }

            /// Checks every field is within the host's ceilings.
            ///
            /// # Errors
            /// A message naming the first field out of range.
            pub fn validate(&self) -> Result<(), String> {
                $(
                    let (min, max): ($ty, $ty) = ($min, $max);
                    let (value, min, max) = (u64::from(self.$name), u64::from(min), u64::from(max));
                    if !(min..=max).contains(&value) {
                        return Err(format!(
                            "{} must be between {min} and {max}, not {value}",
                            stringify!($name)
                        ));
                    }
                )*
                Ok(())
            }
        }
    };
}

quotas! {
    /// Executions of the tenant in status RUNNING at once.
    max_running_executions: u32 = 10_000, 1, 10_000_000;
    /// Largest component upload, in MiB.
    max_component_mb: u32 = 50, 1, MAX_COMPONENT_MB;
    /// Linear memory cap per guest instance, in MiB: all of its memories together.
    memory_limit_mb: u32 = 64, 1, MAX_MEMORY_MB;
    /// CPU time per activation, in milliseconds: the guest's and the host's work on its calls.
    cpu_deadline_ms: u64 = 10_000, 10, MAX_CPU_DEADLINE_MS;
    /// Largest execution input or callback result, in KiB.
    max_payload_kb: u32 = 256, 1, MAX_PAYLOAD_KB;
    /// Sustained API requests per second.
    requests_per_second: u32 = 1_000, 1, 1_000_000;
    /// Requests allowed in a burst above the sustained rate.
    request_burst: u32 = 2_000, 1, 10_000_000;
    /// Wall-clock time per activation, in milliseconds, counting only the guest's own time (not
    /// the host's store commits and I/O on its calls). The backstop behind the CPU deadline.
    wall_deadline_ms: u64 = 60_000, 100, MAX_CPU_DEADLINE_MS;
    /// Activations of the tenant's executions that may run at once on one host. The rest queue,
    /// and the queues of all tenants are served in turn.
    max_activation_slots: u32 = 32, 1, 100_000;
    /// Durable operations one execution may have in its journal, over all its activations:
    /// every activation loads and replays the whole journal, so this bounds its memory and time.
    max_operations_per_execution: u32 = 100_000, 1, 10_000_000;
    /// New durable operations (steps, waits, callbacks, contexts, agent calls, recorded values)
    /// one activation may start.
    max_operations_per_activation: u32 = 10_000, 1, 1_000_000;
    /// Bytes one activation may hold recorded and not yet committed, in KiB.
    max_pending_kb_per_activation: u32 = 16_384, 64, 262_144;
    /// Workflow events one activation may publish.
    max_events_per_activation: u32 = 1_000, 1, 100_000;
    /// Bytes of workflow events one activation may publish, in KiB.
    max_event_kb_per_activation: u32 = 4_096, 1, 262_144;
    /// Log lines one activation may write (replayed activations write none).
    max_log_lines_per_activation: u32 = 1_000, 0, 1_000_000;
    /// Bytes of log lines one activation may write, in KiB.
    max_log_kb_per_activation: u32 = 256, 0, 262_144;
    /// Log lines one execution keeps, over all its activations; past it (or past
    /// `max_log_kb_per_execution`) one line says the rest was dropped, and later lines are.
    max_log_lines_per_execution: u32 = 10_000, 0, 1_000_000;
    /// Bytes of log lines one execution keeps, in KiB.
    max_log_kb_per_execution: u32 = 4_096, 0, 1_048_576;
    /// Callbacks (agent calls included) one activation may create.
    max_callbacks_per_activation: u32 = 1_000, 1, 100_000;
    /// Durable timers (waits, retries, callback timeouts and heartbeats) one activation may set.
    max_timers_per_activation: u32 = 2_000, 1, 1_000_000;
    /// Agent tasks one activation may send.
    max_agent_calls_per_activation: u32 = 100, 1, 100_000;
    /// Artifact bytes one activation may write, in MiB.
    max_artifact_mb_per_activation: u32 = 256, 1, MAX_ARTIFACT_MB;
    /// Artifact bytes the tenant may keep stored, in MiB (all its executions together).
    max_artifact_mb: u32 = 1024, 1, MAX_ARTIFACT_MB;
}

impl Quotas {
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
        let q = Quotas {
            max_operations_per_activation: 0,
            ..Quotas::default()
        };
        assert_eq!(
            q.validate().unwrap_err(),
            "max_operations_per_activation must be between 1 and 1000000, not 0"
        );
        assert!(Quotas::default().validate().is_ok());
    }

    #[test]
    fn a_missing_field_keeps_its_default_and_an_unknown_one_is_refused() {
        let q: Quotas = serde_json::from_str(r#"{"max_events_per_activation": 5}"#).unwrap();
        assert_eq!(q.max_events_per_activation, 5);
        assert_eq!(q.max_log_lines_per_activation, 1_000);
        assert!(serde_json::from_str::<Overrides>(r#"{"max_event": 5}"#).is_err());
    }
}

//! Metrics: what the host counts and times, kept by one Prometheus recorder for the process and
//! rendered by `GET /metrics`.
//!
//! Counters, gauges and histograms are recorded where the work happens, through the `metrics`
//! facade (the engine records its own: steps, callbacks made, store commits); without the
//! recorder installed those calls do nothing. This module installs the recorder, describes
//! every metric once, and keeps the names a dashboard relies on in one list ([`DESCRIPTIONS`]).

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Bucket bounds of the durations, in seconds: from a fast commit to a long activation.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Bucket bounds of the counts (records per commit, operations replayed).
const COUNTS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 10_000.0,
];

/// Every metric the host and the engine record: name, kind, unit, and what it says.
pub const DESCRIPTIONS: &[(&str, Kind, Unit, &str)] = &[
    (
        "aegis_activations_total",
        Kind::Counter,
        Unit::Count,
        "Activations run, by how they ended (completed, failed, suspended, crashed, abandoned).",
    ),
    (
        "aegis_activation_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "How long an activation took, from loading the execution to committing its end.",
    ),
    (
        "aegis_replays_total",
        Kind::Counter,
        Unit::Count,
        "Activations that replayed recorded operations before doing new work.",
    ),
    (
        "aegis_replayed_operations",
        Kind::Histogram,
        Unit::Count,
        "Recorded operations an activation started from.",
    ),
    (
        "aegis_steps_total",
        Kind::Counter,
        Unit::Count,
        "Step attempts ended, by result (succeeded, failed, retried).",
    ),
    (
        "aegis_callbacks_created_total",
        Kind::Counter,
        Unit::Count,
        "Callbacks created (agent calls and chained invokes included).",
    ),
    (
        "aegis_callbacks_closed_total",
        Kind::Counter,
        Unit::Count,
        "Callbacks closed from outside or by a chained invoke's child, by how (succeeded, failed, stopped).",
    ),
    (
        "aegis_timers_fired_total",
        Kind::Counter,
        Unit::Count,
        "Durable timers that came due and were applied, by kind.",
    ),
    (
        "aegis_timers_queued",
        Kind::Gauge,
        Unit::Count,
        "Durable timers this host's scheduler holds.",
    ),
    (
        "aegis_activations_waiting",
        Kind::Gauge,
        Unit::Count,
        "Activations waiting for a slot of the instance pool.",
    ),
    (
        "aegis_store_commit_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "How long a commit of an activation's writes to the store took (the engine's, and its ending's).",
    ),
    (
        "aegis_store_commit_records",
        Kind::Histogram,
        Unit::Count,
        "Records (operations, events, timers, callbacks) in a commit of an activation's writes.",
    ),
    (
        "aegis_agent_dispatches_total",
        Kind::Counter,
        Unit::Count,
        "Agent tasks sent, by what the agent answered (working, answered, failed).",
    ),
    (
        "aegis_agent_answers_total",
        Kind::Counter,
        Unit::Count,
        "Agents' answers recorded, by kind (done, failed, working).",
    ),
    (
        "aegis_tenant_usage",
        Kind::Gauge,
        Unit::Count,
        "A tenant's use of a quota (activation_slots, artifact_bytes), read at the scrape.",
    ),
    (
        "aegis_tenant_quota",
        Kind::Gauge,
        Unit::Count,
        "A tenant's quota (activation_slots, artifact_bytes), beside its usage.",
    ),
];

/// The kind of a metric, for its description.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The process's recorder, installed at the first call: later calls (another server in the same
/// process, as tests start) get the same one.
pub fn recorder() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_records".into()), COUNTS))
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_operations".into()), COUNTS)
                })
                .expect("the bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; GET /metrics shows none");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    for (name, kind, unit, text) in DESCRIPTIONS {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *unit, *text),
            Kind::Gauge => metrics::describe_gauge!(*name, *unit, *text),
            Kind::Histogram => metrics::describe_histogram!(*name, *unit, *text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_as_prometheus_wants() {
        for (name, kind, _, text) in DESCRIPTIONS {
            assert!(name.starts_with("aegis_"), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert_eq!(
                name.ends_with("_total"),
                matches!(kind, Kind::Counter),
                "{name}: counters, and only they, end in _total"
            );
            assert!(!text.is_empty());
        }
    }

    #[test]
    fn what_is_recorded_is_rendered_with_its_description() {
        let handle = recorder();
        metrics::counter!("aegis_steps_total", "result" => "succeeded").increment(1);
        metrics::histogram!("aegis_store_commit_seconds").record(0.002);
        let text = handle.render();
        assert!(
            text.contains("aegis_steps_total{result=\"succeeded\"}"),
            "{text}"
        );
        assert!(text.contains("# HELP aegis_steps_total"), "{text}");
        assert!(
            text.contains("aegis_store_commit_seconds_bucket{le=\"0.0025\"}"),
            "{text}"
        );
    }
}

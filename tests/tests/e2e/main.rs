//! End-to-end tests: the real `aegis` binary on port 0, driven over HTTP with the fixture
//! components. One binary, a module per story.
//!
//! Every test starts its own host outside [`guard`], so that when the guarded body fails or
//! times out, the host is dropped while the test panics and its log tail is printed.
//!
//! Most stories run in open mode (no admin key: every request is the default tenant). `api`,
//! `tenancy` and `fuzz` run the host in keyed mode and act through tenants made with the admin
//! key ([`keyed_host`], [`new_tenant`]).

mod api;
mod api_abuse;
mod artifacts;
mod aws;
mod bad_input;
mod callbacks;
mod chained;
mod cli;
mod cluster;
mod conditions;
mod console;
mod crash;
mod crash_loop;
mod flat;
mod fuzz;
mod guest_exit;
mod hostile;
mod hostile_events;
mod interop;
mod kinds;
mod lambda;
mod logs;
mod metrics;
mod operations;
mod pipeline;
mod replay;
mod replay_children;
mod sandbox;
mod store_faults;
mod tenancy;
mod uploads;

use std::future::Future;
use std::time::Duration;

pub use aegis_tests::checks::{
    StepCount, check_history_shape, check_steps_once, check_waits_end_once, details, of_type,
    step_runs, types,
};
use aegis_tests::{Client, Host, HostOptions};
use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

/// A generous bound on how long one execution may take in these tests.
pub const DONE: Duration = Duration::from_secs(60);

/// Runs the test body with a time limit. Panics (with the full error chain) when the body
/// fails or does not finish within `secs` seconds.
pub async fn guard<T>(secs: u64, body: impl Future<Output = Result<T>>) -> T {
    let body = std::pin::pin!(body);
    tokio::select! {
        outcome = body => match outcome {
            Ok(value) => value,
            Err(e) => panic!("test failed: {e:?}"),
        },
        () = tokio::time::sleep(Duration::from_secs(secs)) => {
            panic!("test did not finish within {secs} s")
        }
    }
}

/// Starts a host with default options, panicking with its log when it does not come up.
pub async fn host() -> Host {
    host_with(HostOptions::default()).await
}

/// Starts a host with `opts`, panicking with its log when it does not come up.
pub async fn host_with(opts: HostOptions) -> Host {
    match Host::start(opts).await {
        Ok(host) => host,
        Err(e) => panic!("starting aegis failed: {e:?}"),
    }
}

/// Starts a host in keyed mode (the admin key is [`aegis_tests::TEST_ADMIN_KEY`]) with `opts`.
pub async fn keyed_host(opts: HostOptions) -> Host {
    host_with(opts.keyed()).await
}

/// A tenant made through the admin API, with a client that sends its key.
#[derive(Clone, Debug)]
pub struct TenantHandle {
    pub id: String,
    pub name: String,
    pub key: String,
    pub key_id: String,
    pub client: Client,
}

/// Creates the tenant `name` with quota overrides `quotas` on a keyed host.
pub async fn new_tenant(host: &Host, name: &str, quotas: Value) -> Result<TenantHandle> {
    let body = host.admin().create_tenant(name, quotas).await?;
    let key = body["api_key"].as_str().unwrap_or_default().to_string();
    Ok(TenantHandle {
        id: body["tenant_id"].as_str().unwrap_or_default().to_string(),
        name: name.to_string(),
        key_id: body["key_id"].as_str().unwrap_or_default().to_string(),
        client: host.client().with_key(&key),
        key,
    })
}

/// Uploads each fixture under its own name.
pub async fn upload(client: &Client, fixtures: &[&str]) -> Result<()> {
    for name in fixtures {
        client.upload_fixture(name).await?;
    }
    Ok(())
}

/// Waits for the execution and checks that it FAILED with `error_type`; returns the execution.
pub async fn expect_failed(client: &Client, id: &str, error_type: &str) -> Result<Value> {
    let exec = client.wait_done(id, DONE).await?;
    ensure!(
        exec["status"] == "FAILED" && exec["error"]["error_type"] == error_type,
        "expected FAILED with {error_type}, got {exec}"
    );
    ensure!(
        exec["error"]["error_message"].as_str().is_some(),
        "a failed execution has an error message: {exec}"
    );
    Ok(exec)
}

/// What a finished execution must show to [`check_completed`].
pub struct Expected {
    pub id: String,
    /// Names it in failures (its kind).
    pub label: String,
    pub result: Value,
    /// How many steps succeed in it, when that is known.
    pub steps: Option<usize>,
}

/// Waits for every execution through `c`, all at once, then checks each: SUCCEEDED with its
/// expected result, a well-formed history, every wait and callback ended once, no step that
/// had succeeded run again (each of
/// `crashes` crashes may have interrupted one attempt, which reruns), and its number of
/// succeeded steps. Returns how many interrupted attempts ran again.
pub async fn check_completed(
    c: &Client,
    expected: &[Expected],
    patience: Duration,
    crashes: usize,
) -> Result<usize> {
    let mut waits = tokio::task::JoinSet::new();
    for (i, e) in expected.iter().enumerate() {
        let (c, id) = (c.clone(), e.id.clone());
        waits.spawn(async move { (i, c.wait_done(&id, patience).await) });
    }
    let mut done = vec![Value::Null; expected.len()];
    while let Some(joined) = waits.join_next().await {
        let (i, exec) = joined?;
        done[i] = exec?;
    }
    let mut rerun = 0;
    for (e, exec) in expected.iter().zip(&done) {
        let (id, label) = (&e.id, &e.label);
        ensure!(exec["status"] == "SUCCEEDED", "{id} ({label}): {exec}");
        ensure!(exec["result"] == e.result, "{id} ({label}) result: {exec}");
        let events = c
            .history(id)
            .await
            .with_context(|| format!("history of {id}"))?;
        check_history_shape(&events).with_context(|| format!("history of {id}"))?;
        check_waits_end_once(&events).with_context(|| format!("history of {id}"))?;
        let count = check_steps_once(&events, crashes)
            .with_context(|| format!("{id} ({label}): {:?}", types(&events)))?;
        if let Some(steps) = e.steps {
            ensure!(
                count.succeeded == steps,
                "{id} ({label}): {} succeeded steps, not {steps}",
                count.succeeded
            );
        }
        rerun += count.rerun;
    }
    Ok(rerun)
}

/// The `RetryDetails.CurrentAttempt` of a step event.
pub fn current_attempt(event: &Value) -> Option<u64> {
    details(event)["RetryDetails"]["CurrentAttempt"].as_u64()
}

#[test]
fn a_wait_or_callback_that_ends_twice_is_caught() {
    let event = |t: &str, id: &str| serde_json::json!({"EventType": t, "Id": id});
    let once = [
        event("WaitStarted", "1"),
        event("WaitSucceeded", "1"),
        event("CallbackStarted", "2"),
        event("CallbackSucceeded", "2"),
    ];
    assert!(check_waits_end_once(&once).is_ok());
    let twice = [
        event("CallbackStarted", "2"),
        event("CallbackTimedOut", "2"),
        event("CallbackSucceeded", "2"),
    ];
    assert!(check_waits_end_once(&twice).is_err());
}

#[test]
fn a_succeeded_step_that_runs_again_is_caught() {
    let event = |t: &str, id: &str| serde_json::json!({"EventType": t, "Id": id});
    // An attempt interrupted by a crash runs again: allowed, and counted.
    let interrupted = [
        event("StepStarted", "1"),
        event("StepStarted", "1"),
        event("StepSucceeded", "1"),
    ];
    let runs = step_runs(&interrupted).expect("a well-formed history");
    assert_eq!((runs.succeeded, runs.rerun), (1, 1));
    assert!(runs.twice.is_empty());
    assert!(check_steps_once(&interrupted, 1).is_ok());
    assert!(check_steps_once(&interrupted, 0).is_err());
    // A step that had succeeded and started again ran twice.
    let twice = [
        event("StepStarted", "1"),
        event("StepSucceeded", "1"),
        event("StepStarted", "2"),
        event("StepSucceeded", "2"),
        event("StepStarted", "1"),
        event("StepSucceeded", "1"),
    ];
    let runs = step_runs(&twice).expect("a well-formed history");
    assert_eq!(runs.twice.len(), 1, "{:?}", runs.twice);
    assert!(runs.twice[0].contains("step 1 had succeeded"));
    assert!(check_steps_once(&twice, 10).is_err());
}

#[test]
fn a_condition_that_continues_is_not_a_step_run_twice() {
    let event = |t: &str, delay: Value| {
        serde_json::json!({
            "EventType": t,
            "Id": "1",
            "StepSucceededDetails": {"RetryDetails": {"NextAttemptDelaySeconds": delay}},
        })
    };
    // Two checks that continue (a delay follows), then the one that stops.
    let polled = [
        event("StepStarted", Value::Null),
        event("StepSucceeded", serde_json::json!(1)),
        event("StepStarted", Value::Null),
        event("StepSucceeded", serde_json::json!(1)),
        event("StepStarted", Value::Null),
        event("StepSucceeded", Value::Null),
    ];
    let runs = step_runs(&polled).expect("a well-formed history");
    assert_eq!((runs.succeeded, runs.rerun), (1, 0));
    assert!(runs.twice.is_empty(), "{:?}", runs.twice);
    // After the stop, another check is a run again.
    let mut again = polled.to_vec();
    again.push(event("StepStarted", Value::Null));
    assert!(check_steps_once(&again, 10).is_err());
}

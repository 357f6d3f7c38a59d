//! Crashes: kill -9 the host with executions in flight, restart it on the same data dir, and
//! every execution completes with the right result, without running a succeeded step again.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::ensure;
use serde_json::{Value, json};

use crate::kinds::Kind;
use crate::{DONE, Expected, check_completed, guard, host, upload};

/// Steps in each `many_steps` execution of the crash test.
const MANY: u64 = 200;

/// The crash test's mix, by index.
fn kind_for(i: usize) -> Kind {
    match i % 10 {
        0 => Kind::Steps3(format!("c{i}")),
        1..=3 => Kind::Sleep(2 + (i as u64 % 2)),
        4..=6 => Kind::Callback,
        _ => Kind::ManySteps(MANY),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_with_fifty_in_flight_loses_nothing() {
    let mut host = host().await;
    guard(300, async {
        let c = host.client();
        upload(&c, &["steps3", "sleep", "callback", "many_steps"]).await?;

        let mut executions = Vec::new();
        for i in 0..50 {
            let kind = kind_for(i);
            let id = c.start(kind.workflow(), kind.input()).await?;
            executions.push((id, kind));
        }

        // Some callbacks are pending before the crash; their ids must survive it.
        let mut callbacks = Vec::new();
        for (i, (id, kind)) in executions.iter().enumerate() {
            if matches!(kind, Kind::Callback) {
                let cb = c
                    .pending_callback(id, "approval", Duration::from_secs(60))
                    .await?;
                callbacks.push((i, cb));
            }
        }
        let mut running: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, kind) in &executions {
            if c.get(id).await?["status"] == "RUNNING" {
                *running.entry(kind.workflow()).or_default() += 1;
            }
        }
        eprintln!("killing the host with these executions running: {running:?}");

        host.kill9()?;
        host.restart().await?;
        let c = host.client();

        let mut delivered = vec![Value::Null; executions.len()];
        for (i, cb) in &callbacks {
            let value = json!({"approved": i});
            let reply = c.callback_succeed(cb, &value).await?;
            ensure!(
                reply.status == 200,
                "callback {cb} of {} after the restart: {reply:?}",
                executions[*i].0
            );
            delivered[*i] = value;
        }

        let expected: Vec<Expected> = executions
            .iter()
            .zip(&delivered)
            .map(|((id, kind), delivered)| Expected {
                id: id.clone(),
                label: format!("{kind:?}, after the crash"),
                result: kind.expected(delivered),
                steps: kind.steps(),
            })
            .collect();
        let rerun = check_completed(&c, &expected, DONE * 2, 1).await?;
        eprintln!("{rerun} step attempts interrupted by the crash ran again");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_resumes_waits_and_callbacks() {
    let mut host = host().await;
    guard(120, async {
        let c = host.client();
        upload(&c, &["sleep", "callback"]).await?;
        let sleeper = c.start("sleep", json!({"seconds": 2})).await?;
        let waiter = c
            .start(
                "callback",
                json!({"timeout_seconds": 600, "heartbeat_seconds": null}),
            )
            .await?;
        let cb = c
            .pending_callback(&waiter, "approval", Duration::from_secs(30))
            .await?;

        host.restart().await?;
        let c = host.client();
        ensure!(
            c.result(&sleeper, DONE).await? == json!({"slept": 2}),
            "the wait fires after the restart"
        );
        let exec = c.get(&waiter).await?;
        ensure!(
            exec["pending_callbacks"][0]["callback_id"] == cb.as_str(),
            "the callback is still pending, with the same id: {exec}"
        );
        let reply = c.callback_succeed(&cb, &json!("after")).await?;
        ensure!(reply.status == 200, "{reply:?}");
        ensure!(c.result(&waiter, DONE).await? == json!({"callback": "after"}));
        Ok(())
    })
    .await;
}

/// A component the host cannot read (its files gone from the data folder, as after a disk or
/// S3 failure) is the host's trouble, not the workflow's: the execution stays RUNNING while the
/// host tries again with backoff, and completes once the files are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_the_host_cannot_read_is_retried_not_failed() {
    let mut host = host().await;
    guard(240, async {
        upload(&host.client(), &["steps3"]).await?;
        host.kill9()?;
        let components = host.data_dir().join("components");
        let aside = host.data_dir().join("components-aside");
        std::fs::rename(&components, &aside)?;
        std::fs::create_dir(&components)?;
        host.restart().await?;
        let c = host.client();
        let id = c.start("steps3", json!("late")).await?;

        // The host says it is trying again, and the execution is still running.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !host
            .log_tail(200)
            .contains("cannot load the component; trying again")
        {
            ensure!(
                std::time::Instant::now() < deadline,
                "no retry was logged:\n{}",
                host.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let exec = c.get(&id).await?;
        ensure!(exec["status"] == "RUNNING", "{exec}");

        // The files come back: the next try runs it.
        std::fs::remove_dir(&components)?;
        std::fs::rename(&aside, &components)?;
        ensure!(c.result(&id, DONE).await? == json!("late-a-b-c"));
        Ok(())
    })
    .await;
}

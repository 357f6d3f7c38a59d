//! Each durable operation end to end: steps, retries, waits, child contexts, map, and the
//! history each leaves.

use anyhow::{Context as _, ensure};
use serde_json::json;

use crate::{
    DONE, check_history_shape, check_steps_once, current_attempt, details, expect_failed, guard,
    host, of_type, types, upload,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps3_runs_three_steps() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["steps3"]).await?;
        let id = c.start("steps3", json!("s")).await?;
        let exec = c.wait_done(&id, DONE).await?;
        ensure!(exec["status"] == "SUCCEEDED", "steps3: {exec}");
        ensure!(exec["result"] == json!("s-a-b-c"), "steps3 result: {exec}");
        ensure!(exec["input"] == json!("s"), "the input is kept: {exec}");
        ensure!(exec["error"].is_null(), "no error: {exec}");
        ensure!(
            exec["workflow"] == "steps3" && exec["version"] == 1,
            "{exec}"
        );
        ensure!(
            exec["component_digest"]
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:")),
            "{exec}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps3_history_has_the_aws_shape() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["steps3"]).await?;
        let id = c.start("steps3", json!("h")).await?;
        c.result(&id, DONE).await?;
        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        ensure!(check_steps_once(&events, 0)?.succeeded == 3, "three steps");
        ensure!(
            types(&events)
                == [
                    "ExecutionStarted",
                    "StepStarted",
                    "StepSucceeded",
                    "StepStarted",
                    "StepSucceeded",
                    "StepStarted",
                    "StepSucceeded",
                    "InvocationCompleted",
                    "ExecutionSucceeded",
                ],
            "event types: {:?}",
            types(&events)
        );
        // Each step is one operation: StepStarted and StepSucceeded share its Id, the three Ids
        // differ, and each carries its sub-type and a result.
        let mut ids = Vec::new();
        for pair in events[1..7].chunks(2) {
            let (started, succeeded) = (&pair[0], &pair[1]);
            let id = started["Id"].as_str().context("StepStarted has an Id")?;
            ensure!(succeeded["Id"] == id, "pair shares the Id: {pair:?}");
            ensure!(started["SubType"] == "Step", "sub-type Step: {started}");
            ensure!(
                current_attempt(succeeded) == Some(1),
                "first attempt: {succeeded}"
            );
            let result = &details(succeeded)["Result"];
            ensure!(
                result.get("Payload").is_some() && result["Truncated"].is_boolean(),
                "Result is {{Payload, Truncated}}: {succeeded}"
            );
            ids.push(id.to_string());
        }
        ids.sort();
        ids.dedup();
        ensure!(ids.len() == 3, "three distinct step ids: {events:?}");
        ensure!(
            !details(&events[0])["Input"].is_null(),
            "ExecutionStarted has the input: {}",
            events[0]
        );
        ensure!(
            !details(&events[8])["Result"].is_null(),
            "ExecutionSucceeded has the result: {}",
            events[8]
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_steps_sums() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["many_steps"]).await?;
        let id = c.start("many_steps", json!({"steps": 50})).await?;
        let result = c.result(&id, DONE).await?;
        ensure!(result == json!({"steps": 50, "sum": 1225}), "{result}");
        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        ensure!(
            check_steps_once(&events, 0)?.succeeded == 50,
            "50 succeeded steps"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_succeeds_on_third_attempt() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["retry"]).await?;
        let input = json!({"fail_times": 2, "max_attempts": 3, "delay_ms": 1000});
        let id = c.start("retry", input).await?;
        let result = c.result(&id, DONE).await?;
        ensure!(result == json!({"attempts": 3}), "{result}");

        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        check_steps_once(&events, 0)?;
        let failed = of_type(&events, "StepFailed");
        let succeeded = of_type(&events, "StepSucceeded");
        ensure!(
            failed.len() == 2 && succeeded.len() == 1,
            "two StepFailed then one StepSucceeded: {:?}",
            types(&events)
        );
        for (n, event) in failed.iter().enumerate() {
            ensure!(
                current_attempt(event) == Some(n as u64 + 1),
                "StepFailed #{} has CurrentAttempt {}: {event}",
                n + 1,
                n + 1
            );
            ensure!(
                details(event)["RetryDetails"]["NextAttemptDelaySeconds"].is_number(),
                "a retried failure says when the next attempt comes: {event}"
            );
            ensure!(
                event["Id"] == succeeded[0]["Id"],
                "all attempts are one operation: {events:?}"
            );
        }
        ensure!(
            current_attempt(succeeded[0]) == Some(3),
            "StepSucceeded on attempt 3: {}",
            succeeded[0]
        );
        // A retry delay suspends the execution: each attempt is its own activation.
        ensure!(
            of_type(&events, "InvocationCompleted").len() >= 3,
            "one activation per attempt: {:?}",
            types(&events)
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_exhausted_fails() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["retry"]).await?;
        let input = json!({"fail_times": 5, "max_attempts": 2, "delay_ms": 1000});
        let id = c.start("retry", input).await?;
        let exec = expect_failed(&c, &id, "Flaky.Error").await?;
        ensure!(exec["result"].is_null(), "no result: {exec}");

        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        let failed = of_type(&events, "StepFailed");
        ensure!(failed.len() == 2, "two attempts: {:?}", types(&events));
        ensure!(current_attempt(failed[1]) == Some(2), "{}", failed[1]);
        ensure!(
            details(failed[1])["Error"]["Payload"]["ErrorType"] == "Flaky.Error",
            "the step error is in the AWS shape: {}",
            failed[1]
        );
        ensure!(
            of_type(&events, "StepSucceeded").is_empty(),
            "{:?}",
            types(&events)
        );
        ensure!(
            events
                .last()
                .is_some_and(|e| e["EventType"] == "ExecutionFailed"),
            "ends with ExecutionFailed: {:?}",
            types(&events)
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_the_retry_predicate_refuses_is_final() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["retry"]).await?;
        // Only "attempt 1 failed" is retried: attempt 2's failure ends the step, attempts left.
        let input = json!({
            "fail_times": 5, "max_attempts": 5, "delay_ms": 1000, "retry_if": "attempt 1 ",
        });
        let id = c.start("retry", input).await?;
        let exec = expect_failed(&c, &id, "Flaky.Error").await?;
        ensure!(
            exec["error"]["error_message"] == "attempt 2 failed",
            "{exec}"
        );
        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        let failed = of_type(&events, "StepFailed");
        ensure!(failed.len() == 2, "two attempts: {:?}", types(&events));
        let delay =
            |n: usize| details(failed[n])["RetryDetails"]["NextAttemptDelaySeconds"].clone();
        ensure!(delay(0).is_number(), "attempt 1 is retried: {}", failed[0]);
        ensure!(delay(1).is_null(), "attempt 2 is not: {}", failed[1]);
        ensure!(current_attempt(failed[1]) == Some(2), "{}", failed[1]);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_jitter_draws_whole_seconds_up_to_the_delay() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["retry"]).await?;
        // Delays of at most 2 s, then 4 s, each drawn by the host from 1 s to that.
        let input = json!({"fail_times": 2, "max_attempts": 3, "delay_ms": 2000, "jitter": "full"});
        let id = c.start("retry", input).await?;
        let result = c.result(&id, DONE).await?;
        ensure!(result == json!({"attempts": 3}), "{result}");
        let events = c.history(&id).await?;
        let failed = of_type(&events, "StepFailed");
        ensure!(failed.len() == 2, "{:?}", types(&events));
        for (event, ceiling) in failed.iter().zip([2.0, 4.0]) {
            let delay = details(event)["RetryDetails"]["NextAttemptDelaySeconds"]
                .as_f64()
                .with_context(|| format!("a delay: {event}"))?;
            ensure!(
                delay.fract() == 0.0 && (1.0..=ceiling).contains(&delay),
                "a whole number of seconds from 1 to {ceiling}: {event}"
            );
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_waits_durably() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["sleep"]).await?;
        let id = c.start("sleep", json!({"seconds": 1})).await?;
        let result = c.result(&id, DONE).await?;
        ensure!(result == json!({"slept": 1}), "{result}");

        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        let ts = types(&events);
        let started = ts.iter().position(|t| *t == "WaitStarted");
        let done = ts.iter().position(|t| *t == "WaitSucceeded");
        let (Some(started), Some(done)) = (started, done) else {
            anyhow::bail!("WaitStarted and WaitSucceeded: {ts:?}");
        };
        ensure!(started < done, "{ts:?}");
        ensure!(
            ts[started + 1..done].contains(&"InvocationCompleted"),
            "the execution suspends while it waits: {ts:?}"
        );
        ensure!(
            ts[ts.len() - 2..] == ["InvocationCompleted", "ExecutionSucceeded"],
            "{ts:?}"
        );
        ensure!(
            events[started]["Id"] == events[done]["Id"] && events[started]["SubType"] == "Wait",
            "{events:?}"
        );
        ensure!(
            !details(&events[started])["ScheduledEndTimestamp"].is_null(),
            "{}",
            events[started]
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_context_nests_steps() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["child"]).await?;
        let id = c.start("child", json!("s")).await?;
        let result = c.result(&id, DONE).await?;
        ensure!(result == json!("s-x-y-outer"), "{result}");

        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        let started = of_type(&events, "ContextStarted");
        let succeeded = of_type(&events, "ContextSucceeded");
        ensure!(
            started.len() == 1 && succeeded.len() == 1,
            "one child context: {:?}",
            types(&events)
        );
        let ctx = started[0]["Id"].as_str().context("ContextStarted Id")?;
        ensure!(
            started[0]["SubType"] == "RunInChildContext",
            "{}",
            started[0]
        );
        let inner = of_type(&events, "StepSucceeded")
            .into_iter()
            .filter(|e| e["ParentId"] == ctx)
            .count();
        ensure!(
            inner >= 2,
            "the child's steps have the context as ParentId: {events:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_doubles_items() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["map"]).await?;
        let id = c.start("map", json!([1, 2, 3])).await?;
        let result = c.result(&id, DONE).await?;
        ensure!(result == json!([2, 4, 6]), "{result}");
        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        let subtypes: Vec<_> = of_type(&events, "ContextStarted")
            .iter()
            .map(|e| e["SubType"].as_str().unwrap_or("?").to_string())
            .collect();
        ensure!(
            subtypes.iter().filter(|s| *s == "Map").count() == 1
                && subtypes.iter().filter(|s| *s == "MapIteration").count() == 3,
            "one Map context with three MapIteration children: {subtypes:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_timeout_times_out() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["sleep"]).await?;
        let body = json!({"workflow": "sleep", "input": {"seconds": 30}, "timeout_seconds": 1});
        let start = c.start_raw(&body).await?.ok("start with timeout")?;
        let id = start["execution_id"].as_str().context("execution_id")?;
        let exec = c.wait_done(id, DONE).await?;
        ensure!(exec["status"] == "TIMED_OUT", "{exec}");
        let events = c.history(id).await?;
        check_history_shape(&events)?;
        ensure!(
            events
                .last()
                .is_some_and(|e| e["EventType"] == "ExecutionTimedOut"),
            "{:?}",
            types(&events)
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_v2_leaves_running_v1_alone() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        let v1 = c.upload("pinned", &aegis_tests::fixture("sleep")).await?;
        ensure!(v1["version"] == 1, "{v1}");
        let old = c.start("pinned", json!({"seconds": 2})).await?;
        c.get(&old).await?;

        let v2 = c.upload("pinned", &aegis_tests::fixture("steps3")).await?;
        ensure!(v2["version"] == 2 && v2["digest"] != v1["digest"], "{v2}");
        let new = c.start("pinned", json!("n")).await?;
        ensure!(c.result(&new, DONE).await? == json!("n-a-b-c"), "v2 runs");

        let exec = c.wait_done(&old, DONE).await?;
        ensure!(
            exec["status"] == "SUCCEEDED"
                && exec["result"] == json!({"slept": 2})
                && exec["version"] == 1
                && exec["component_digest"] == v1["digest"],
            "the running execution stays on v1: {exec}"
        );

        let body = json!({"workflow": "pinned", "version": 1, "input": {"seconds": 1}});
        let start = c.start_raw(&body).await?.ok("start pinned to v1")?;
        let id = start["execution_id"].as_str().context("execution_id")?;
        ensure!(
            c.result(id, DONE).await? == json!({"slept": 1}),
            "version 1 can be asked for"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_waiting_on_v1_survives_v2_and_a_restart() {
    let mut host = host().await;
    guard(120, async {
        let c = host.client();
        let v1 = c
            .upload("approval-flow", &aegis_tests::fixture("callback"))
            .await?;
        ensure!(v1["version"] == 1, "{v1}");
        let old = c
            .start(
                "approval-flow",
                json!({"timeout_seconds": 600, "heartbeat_seconds": null}),
            )
            .await?;
        let cb = c
            .pending_callback(&old, "approval", std::time::Duration::from_secs(30))
            .await?;

        // v2 is another program under the same name; new starts run it.
        let v2 = c
            .upload("approval-flow", &aegis_tests::fixture("steps3"))
            .await?;
        ensure!(v2["version"] == 2 && v2["digest"] != v1["digest"], "{v2}");
        let new = c.start("approval-flow", json!("n")).await?;
        ensure!(c.result(&new, DONE).await? == json!("n-a-b-c"), "v2 runs");
        // v1 is pinned by the waiting execution: it cannot be deleted.
        c.delete_component("approval-flow", "1")
            .await?
            .assert_error(409, "component_in_use");

        // A restart replays the waiting execution from its journal: on v1, not the latest.
        host.restart().await?;
        let c = host.client();
        let exec = c.get(&old).await?;
        ensure!(
            exec["status"] == "RUNNING"
                && exec["version"] == 1
                && exec["component_digest"] == v1["digest"]
                && exec["pending_callbacks"][0]["callback_id"] == cb.as_str(),
            "still waiting on v1 after the restart: {exec}"
        );
        let reply = c.callback_succeed(&cb, &json!({"ok": 1})).await?;
        ensure!(reply.status == 200, "{reply:?}");
        let exec = c.wait_done(&old, DONE).await?;
        ensure!(
            exec["status"] == "SUCCEEDED"
                && exec["result"] == json!({"callback": {"ok": 1}})
                && exec["version"] == 1
                && exec["component_digest"] == v1["digest"],
            "the execution completes on v1's digest: {exec}"
        );
        let events = c.history(&old).await?;
        check_history_shape(&events)?;
        ensure!(
            of_type(&events, "CallbackSucceeded").len() == 1
                && check_steps_once(&events, 0)?.succeeded == 3,
            "v1's steps (prepare, the callback's submitter, finish), each once: {:?}",
            types(&events)
        );
        // Once nothing runs on it, v1 can go; v2 stays the latest.
        let deleted = c.delete_component("approval-flow", "1").await?;
        ensure!(deleted.status == 204, "{deleted:?}");
        let latest = c.start("approval-flow", json!("m")).await?;
        ensure!(c.result(&latest, DONE).await? == json!("m-a-b-c"));
        Ok(())
    })
    .await;
}

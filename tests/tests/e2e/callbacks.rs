//! Callbacks: success, failure, timeout, heartbeat timeout, and two pending at once.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::{
    DONE, check_history_shape, details, expect_failed, guard, host, of_type, types, upload,
};

/// How long a callback may take to show up as pending.
const PENDING: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_success_resumes_with_the_result() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["callback"]).await?;
        let id = c
            .start(
                "callback",
                json!({"timeout_seconds": 60, "heartbeat_seconds": null}),
            )
            .await?;
        let cb = c.pending_callback(&id, "approval", PENDING).await?;
        let exec = c.get(&id).await?;
        ensure!(
            exec["status"] == "RUNNING",
            "suspended, still RUNNING: {exec}"
        );

        let reply = c.callback_succeed(&cb, &json!({"approved": true})).await?;
        ensure!(reply.status == 200, "succeed: {reply:?}");
        let result = c.result(&id, DONE).await?;
        ensure!(
            result == json!({"callback": {"approved": true}}),
            "{result}"
        );

        let exec = c.get(&id).await?;
        ensure!(
            exec["pending_callbacks"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "nothing pending once done: {exec}"
        );
        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        let started = of_type(&events, "CallbackStarted");
        ensure!(started.len() == 1, "{:?}", types(&events));
        ensure!(
            details(started[0])["CallbackId"] == cb.as_str(),
            "CallbackStarted carries the callback id: {}",
            started[0]
        );
        ensure!(
            of_type(&events, "CallbackSucceeded").len() == 1,
            "{:?}",
            types(&events)
        );
        ensure!(
            of_type(&events, "ContextStarted")
                .iter()
                .any(|e| e["SubType"] == "WaitForCallback"),
            "wait_for_callback is a WaitForCallback context: {events:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_failure_fails_the_execution() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["callback"]).await?;
        let id = c
            .start(
                "callback",
                json!({"timeout_seconds": 60, "heartbeat_seconds": null}),
            )
            .await?;
        let cb = c.pending_callback(&id, "approval", PENDING).await?;
        let reply = c
            .callback_fail(&cb, "Review.Rejected", "the reviewer said no")
            .await?;
        ensure!(reply.status == 200, "fail: {reply:?}");
        let exec = expect_failed(&c, &id, "Review.Rejected").await?;
        ensure!(
            exec["error"]["error_message"] == "the reviewer said no",
            "{exec}"
        );
        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        ensure!(
            of_type(&events, "CallbackFailed").len() == 1,
            "{:?}",
            types(&events)
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_times_out() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["callback"]).await?;
        let id = c
            .start(
                "callback",
                // Long enough for the test to see the callback pending on a loaded machine.
                json!({"timeout_seconds": 3, "heartbeat_seconds": null}),
            )
            .await?;
        let cb = c.pending_callback(&id, "approval", PENDING).await?;
        expect_failed(&c, &id, "Callback.Timeout").await?;
        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        let timed_out = of_type(&events, "CallbackTimedOut");
        ensure!(timed_out.len() == 1, "{:?}", types(&events));
        ensure!(
            details(timed_out[0])["Error"]["Payload"]["ErrorType"] == "Callback.Timeout",
            "{}",
            timed_out[0]
        );

        // Too late: the answer is refused and changes nothing.
        let reply = c.callback_succeed(&cb, &json!("late")).await?;
        reply.assert_error(409, "callback_timed_out");
        ensure!(c.history(&id).await?.len() == events.len(), "no new event");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_heartbeat_times_out() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["callback"]).await?;
        let id = c
            .start(
                "callback",
                json!({"timeout_seconds": 60, "heartbeat_seconds": 3}),
            )
            .await?;
        let cb = c.pending_callback(&id, "approval", PENDING).await?;
        // Well inside the 3 s heartbeat timeout, even when finding the callback was slow.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let reply = c.callback_heartbeat(&cb).await?;
        ensure!(reply.status == 200, "heartbeat: {reply:?}");
        // No more heartbeats: the heartbeat timeout fires long before the 60 s timeout.
        expect_failed(&c, &id, "Callback.Heartbeat").await?;
        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        ensure!(
            of_type(&events, "CallbackTimedOut").len() == 1,
            "{:?}",
            types(&events)
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_callback_alive() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["callback"]).await?;
        let id = c
            .start(
                "callback",
                json!({"timeout_seconds": 60, "heartbeat_seconds": 5}),
            )
            .await?;
        let cb = c.pending_callback(&id, "approval", PENDING).await?;
        // Heartbeats every 0.5 s for 7 s, past the 5 s heartbeat timeout. The margin lets a
        // loaded machine stall a heartbeat for seconds without the callback timing out.
        for _ in 0..14 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let reply = c.callback_heartbeat(&cb).await?;
            ensure!(reply.status == 200, "heartbeat: {reply:?}");
        }
        let exec = c.get(&id).await?;
        ensure!(exec["status"] == "RUNNING", "kept alive: {exec}");
        let reply = c.callback_succeed(&cb, &json!(7)).await?;
        ensure!(reply.status == 200, "succeed: {reply:?}");
        ensure!(c.result(&id, DONE).await? == json!({"callback": 7}));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_callbacks_are_pending_together() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["parallel_callbacks"]).await?;
        let id = c.start("parallel_callbacks", json!({})).await?;

        // Both branches suspend on their own callback: one pending wait does not block the other.
        let deadline = tokio::time::Instant::now() + PENDING;
        let (left, right) = loop {
            let exec = c.get(&id).await?;
            let pending = exec["pending_callbacks"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let find = |name: &str| {
                pending
                    .iter()
                    .find(|cb| cb["name"] == name)
                    .and_then(|cb| cb["callback_id"].as_str())
                    .map(str::to_string)
            };
            if let (Some(l), Some(r)) = (find("left"), find("right")) {
                break (l, r);
            }
            ensure!(
                exec["status"] == "RUNNING" && tokio::time::Instant::now() < deadline,
                "both callbacks pending at once: {exec}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        ensure!(left != right, "two distinct callbacks");

        // Deliver in reverse order.
        let reply = c.callback_succeed(&right, &json!("R")).await?;
        ensure!(reply.status == 200, "{reply:?}");
        let exec = c.get(&id).await?;
        ensure!(exec["status"] == "RUNNING", "still waits for left: {exec}");
        let reply = c.callback_succeed(&left, &json!("L")).await?;
        ensure!(reply.status == 200, "{reply:?}");

        let result = c.result(&id, DONE).await?;
        ensure!(result == json!({"left": "L", "right": "R"}), "{result}");
        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        let ids: Vec<&Value> = of_type(&events, "CallbackStarted")
            .iter()
            .map(|e| &details(e)["CallbackId"])
            .collect();
        ensure!(ids.len() == 2, "{:?}", types(&events));
        let subtypes: Vec<&str> = of_type(&events, "ContextStarted")
            .iter()
            .filter_map(|e| e["SubType"].as_str())
            .collect();
        ensure!(
            subtypes.contains(&"Parallel")
                && subtypes.iter().filter(|s| **s == "ParallelBranch").count() == 2,
            "a Parallel context with two branches: {subtypes:?}"
        );
        let first_right = events
            .iter()
            .position(|e| e["EventType"] == "CallbackSucceeded")
            .context("CallbackSucceeded")?;
        ensure!(
            events[first_right]["ParentId"] != Value::Null,
            "the callback sits in its branch: {}",
            events[first_right]
        );
        Ok(())
    })
    .await;
}

//! Chained invokes: a workflow runs another workflow of its tenant as a child execution and
//! waits for it. The child's result, failure and stop reach the parent; the invoke's timeout
//! fails it without touching the child; an unknown function fails it with
//! `ResourceNotFoundException`; a tenant cannot invoke another tenant's workflow; the child's
//! name (the invoke's callback id) completes nothing through the callback API; and a host
//! killed while the child runs carries both on after its restart.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

use crate::{
    DONE, check_history_shape, details, expect_failed, guard, host, keyed_host, new_tenant,
    of_type, upload,
};
use aegis_tests::{Client, HostOptions};

/// The child execution a parent's `ChainedInvokeStarted` names, once the parent has one.
async fn child_of(c: &Client, parent: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + DONE;
    loop {
        let events = c.history(parent).await?;
        if let Some(started) = of_type(&events, "ChainedInvokeStarted").first() {
            return details(started)["ExecutionId"]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("no ExecutionId in {started}"));
        }
        if Instant::now() > deadline {
            bail!("{parent} started no chained invoke: {events:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The types of the parent's `ChainedInvoke*` events, in order.
fn invoke_events(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| e["EventType"].as_str())
        .filter(|t| t.starts_with("ChainedInvoke"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_runs_and_its_result_reaches_the_parent() {
    let host = host().await;
    guard(120, async {
        let c = host.client();
        upload(&c, &["chained", "sleep"]).await?;
        let input = json!({"function": "sleep", "input": {"seconds": 1}, "tenant_id": "acme"});
        let parent = c.start("chained", input).await?;
        let exec = c.wait_done(&parent, DONE).await?;
        ensure!(
            exec["status"] == "SUCCEEDED" && exec["result"] == json!({"child": {"slept": 1}}),
            "{exec}"
        );
        let events = c.history(&parent).await?;
        check_history_shape(&events)?;
        ensure!(
            invoke_events(&events) == ["ChainedInvokeStarted", "ChainedInvokeSucceeded"],
            "{events:?}"
        );
        let started = details(of_type(&events, "ChainedInvokeStarted")[0]);
        ensure!(
            started["FunctionName"] == "sleep"
                && started["ExecutedVersion"] == "$LATEST"
                && started["TenantId"] == "acme"
                && started["Input"]["Payload"] == r#"{"seconds":1}"#,
            "{started}"
        );
        let succeeded = details(of_type(&events, "ChainedInvokeSucceeded")[0]);
        ensure!(
            succeeded["Result"]["Payload"] == r#"{"slept":1}"#,
            "{succeeded}"
        );

        // The child is an execution of its own, of the same tenant, named after the invoke.
        let child_id = started["ExecutionId"].as_str().context("the child's id")?;
        let child = c.get(child_id).await?;
        ensure!(
            child["status"] == "SUCCEEDED" && child["workflow"] == "sleep",
            "{child}"
        );
        // That name completes nothing: the invoke is closed by its child only.
        let name = child["name"].as_str().context("the child's name")?;
        ensure!(name.starts_with("cb_"), "{child}");
        c.callback_succeed(name, &json!(1))
            .await?
            .expect_error(404, "callback_not_found")?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_or_an_unknown_function_fails_the_parent_with_its_error() {
    let host = host().await;
    guard(120, async {
        let c = host.client();
        upload(&c, &["chained"]).await?;
        // The inner invoke names no workflow: it fails with ResourceNotFoundException, which
        // fails the inner execution, whose failure fails the outer invoke with the same error.
        let inner = json!({"function": "no-such-workflow"});
        let outer = c
            .start("chained", json!({"function": "chained", "input": inner}))
            .await?;
        let exec = expect_failed(&c, &outer, "ResourceNotFoundException").await?;
        ensure!(
            exec["error"]["error_message"]
                .as_str()
                .is_some_and(|m| m.contains("no-such-workflow")),
            "{exec}"
        );
        let events = c.history(&outer).await?;
        ensure!(
            invoke_events(&events) == ["ChainedInvokeStarted", "ChainedInvokeFailed"],
            "{events:?}"
        );
        // A name that is no function of this host's region fails as an invalid parameter.
        let elsewhere = "arn:aws:lambda:eu-west-3:000000000000:function:chained";
        let id = c.start("chained", json!({"function": elsewhere})).await?;
        expect_failed(&c, &id, "InvalidParameterValueException").await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_child_stops_the_invoke_and_a_timeout_leaves_the_child_running() {
    let host = host().await;
    guard(120, async {
        let c = host.client();
        upload(&c, &["chained", "callback"]).await?;
        let waits = json!({"timeout_seconds": 3600, "heartbeat_seconds": null});

        // Stopping the child stops the invoke, with the child's stop error.
        let parent = c
            .start("chained", json!({"function": "callback", "input": waits}))
            .await?;
        let child = child_of(&c, &parent).await?;
        c.pending_callback(&child, "approval", DONE).await?;
        ensure!(c.stop(&child).await?.status == 200, "stop the child");
        let exec = c.wait_done(&parent, DONE).await?;
        let child_error = c.get(&child).await?["error"]["error_type"].clone();
        ensure!(
            exec["status"] == "FAILED" && exec["error"]["error_type"] == child_error,
            "{exec} (the child's error: {child_error})"
        );
        let events = c.history(&parent).await?;
        ensure!(
            invoke_events(&events) == ["ChainedInvokeStarted", "ChainedInvokeStopped"],
            "{events:?}"
        );

        // The invoke's own timeout fails it; the child runs on.
        let parent = c
            .start(
                "chained",
                json!({"function": "callback", "input": waits, "timeout_seconds": 1}),
            )
            .await?;
        let child = child_of(&c, &parent).await?;
        let exec = expect_failed(&c, &parent, "ChainedInvoke.Timeout").await?;
        ensure!(
            exec["error"]["error_message"] == "CHAINED_INVOKE timed out after 1 seconds.",
            "{exec}"
        );
        let events = c.history(&parent).await?;
        ensure!(
            invoke_events(&events) == ["ChainedInvokeStarted", "ChainedInvokeTimedOut"],
            "{events:?}"
        );
        ensure!(
            c.get(&child).await?["status"] == "RUNNING",
            "the child runs on"
        );
        // Its end, later, changes nothing in the parent.
        let callback = c.pending_callback(&child, "approval", DONE).await?;
        c.callback_succeed(&callback, &json!("late")).await?;
        ensure!(c.wait_done(&child, DONE).await?["status"] == "SUCCEEDED");
        ensure!(c.get(&parent).await?["status"] == "FAILED");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_invokes_only_its_own_workflows() {
    let host = keyed_host(HostOptions::default()).await;
    guard(120, async {
        let a = new_tenant(&host, "invoke-a", json!({})).await?;
        let b = new_tenant(&host, "invoke-b", json!({})).await?;
        upload(&a.client, &["sleep"]).await?;
        upload(&b.client, &["chained"]).await?;
        let id = b
            .client
            .start(
                "chained",
                json!({"function": "sleep", "input": {"seconds": 1}}),
            )
            .await?;
        expect_failed(&b.client, &id, "ResourceNotFoundException").await?;
        ensure!(
            a.client.list_all_executions("", 100).await?.is_empty(),
            "nothing ran in tenant a"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_while_the_child_runs_carries_both_on() {
    let mut host = host().await;
    guard(180, async {
        let c = host.client();
        upload(&c, &["chained", "sleep"]).await?;
        let input = json!({"function": "sleep", "input": {"seconds": 3}});
        let parent = c.start("chained", input).await?;
        let child = child_of(&c, &parent).await?;
        host.kill9()?;
        host.restart().await?;
        let c = host.client();
        let exec = c.wait_done(&parent, DONE).await?;
        ensure!(
            exec["status"] == "SUCCEEDED" && exec["result"] == json!({"child": {"slept": 3}}),
            "{exec}"
        );
        ensure!(c.get(&child).await?["status"] == "SUCCEEDED");
        // One child: starting it again after the restart found it.
        let sleeps = c.list_all_executions("workflow=sleep", 100).await?;
        ensure!(sleeps.len() == 1, "{sleeps:?}");
        Ok(())
    })
    .await;
}

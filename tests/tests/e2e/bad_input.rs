//! Bad input is refused cleanly and changes nothing: uploads that are not workflows, unknown
//! names and ids, conflicting starts, unknown and repeated callbacks.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::{DONE, guard, host, upload};

/// Bytes that are certainly not Wasm (a fixed xorshift stream).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_are_not_workflows_are_refused() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        let reply = c.upload_bytes("garbage", random_bytes(4096)).await?;
        reply.assert_error(400, "not_a_component");
        let reply = c.upload_bytes("empty", Vec::new()).await?;
        reply.assert_error(400, "not_a_component");

        // A core module is Wasm, but not a component.
        let core_module = b"\0asm\x01\0\0\0".to_vec();
        let reply = c.upload_bytes("core", core_module).await?;
        reply.assert_error(400, "not_a_component");

        let command = std::fs::read(aegis_tests::fixture("not_a_workflow"))?;
        let reply = c.upload_bytes("command", command).await?;
        reply.assert_error(400, "incompatible_component");

        // None of them became a workflow.
        for name in ["garbage", "empty", "core", "command"] {
            let reply = c
                .start_raw(&json!({"workflow": name, "input": null}))
                .await?;
            reply.assert_error(404, "workflow_not_found");
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_is_idempotent_by_content() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        let bytes = std::fs::read(aegis_tests::fixture("steps3"))?;
        let first = c.upload_bytes("steps3", bytes.clone()).await?;
        ensure!(first.status == 201, "first upload: {first:?}");
        ensure!(
            first.body["name"] == "steps3"
                && first.body["version"] == 1
                && first.body["size"] == bytes.len()
                && first.body["digest"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("sha256:") && d.len() == 7 + 64),
            "{:?}",
            first.body
        );
        let again = c.upload_bytes("steps3", bytes).await?;
        ensure!(again.status == 200, "same bytes again: {again:?}");
        ensure!(
            again.body["version"] == 1 && again.body["digest"] == first.body["digest"],
            "same version: {:?}",
            again.body
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_workflow_and_execution() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        let reply = c
            .start_raw(&json!({"workflow": "nope", "input": 1}))
            .await?;
        reply.assert_error(404, "workflow_not_found");
        let reply = c.get_raw("does-not-exist", None).await?;
        reply.assert_error(404, "execution_not_found");
        let reply = c.healthz().await?;
        ensure!(
            reply.status == 200 && reply.body == json!({"status": "ok"}),
            "{reply:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_idempotent_by_name() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["steps3"]).await?;
        let body = json!({"workflow": "steps3", "name": "order-17", "input": "o"});
        let first = c.start_raw(&body).await?;
        ensure!(first.status == 201, "{first:?}");
        let id = first.body["execution_id"]
            .as_str()
            .context("execution_id")?
            .to_string();
        let again = c.start_raw(&body).await?;
        ensure!(
            again.status == 200 && again.body["execution_id"] == id.as_str(),
            "same name and input: the same execution: {again:?}"
        );
        ensure!(c.result(&id, DONE).await? == json!("o-a-b-c"));
        // Still the same execution after it finished.
        let after = c.start_raw(&body).await?;
        ensure!(
            after.status == 200 && after.body["execution_id"] == id.as_str(),
            "{after:?}"
        );

        let other = json!({"workflow": "steps3", "name": "order-17", "input": "different"});
        let reply = c.start_raw(&other).await?;
        reply.assert_error(409, "execution_name_conflict");
        let exec = c.get(&id).await?;
        ensure!(
            exec["name"] == "order-17" && exec["input"] == json!("o"),
            "{exec}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_callback_changes_nothing() {
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
        let cb = c
            .pending_callback(&id, "approval", Duration::from_secs(30))
            .await?;
        let history = c.settled_history(&id, DONE).await?;
        let before = c.get(&id).await?;

        let unknown = format!("{cb}x");
        for reply in [
            c.callback_succeed(&unknown, &json!(1)).await?,
            c.callback_fail(&unknown, "X.Y", "no").await?,
            c.callback_heartbeat(&unknown).await?,
            c.callback_succeed("0000000000", &json!(1)).await?,
        ] {
            reply.assert_error(404, "callback_not_found");
        }

        let after = c.get(&id).await?;
        ensure!(
            after["status"] == "RUNNING"
                && after["pending_callbacks"] == before["pending_callbacks"],
            "nothing changed: {before} vs {after}"
        );
        ensure!(c.history(&id).await?.len() == history.len(), "no new event");

        let reply = c.callback_succeed(&cb, &json!("real")).await?;
        ensure!(reply.status == 200, "{reply:?}");
        ensure!(c.result(&id, DONE).await? == json!({"callback": "real"}));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_completion_is_rejected() {
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
        let cb = c
            .pending_callback(&id, "approval", Duration::from_secs(30))
            .await?;
        let reply = c.callback_succeed(&cb, &json!({"n": 1})).await?;
        ensure!(reply.status == 200, "{reply:?}");

        // At once, while the execution may still be resuming, and again once it is done.
        c.callback_succeed(&cb, &json!({"n": 2}))
            .await?
            .assert_error(409, "callback_already_completed");
        c.callback_fail(&cb, "X.Late", "late")
            .await?
            .assert_error(409, "callback_already_completed");
        let result = c.result(&id, DONE).await?;
        ensure!(result == json!({"callback": {"n": 1}}), "{result}");
        let history = c.history(&id).await?;

        c.callback_succeed(&cb, &json!({"n": 3}))
            .await?
            .assert_error(409, "callback_already_completed");
        let exec = c.get(&id).await?;
        ensure!(
            exec["status"] == "SUCCEEDED" && exec["result"] == json!({"callback": {"n": 1}}),
            "{exec}"
        );
        ensure!(c.history(&id).await?.len() == history.len(), "no new event");
        Ok(())
    })
    .await;
}

/// A step's result is the guest's own text (a custom serdes may record a form of its own, as
/// AWS allows): text that is not JSON is recorded and shown as given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_result_that_is_not_json_is_recorded_as_given() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["invalid-json"]).await?;
        let id = c.start("invalid-json", json!({"where": "step"})).await?;
        let exec = c.wait_done(&id, crate::DONE).await?;
        ensure!(
            exec["status"] == "SUCCEEDED" && exec["result"] == "after-step",
            "{exec}"
        );
        let events = c.history(&id).await?;
        let succeeded = crate::of_type(&events, "StepSucceeded");
        ensure!(
            succeeded.len() == 1
                && crate::details(succeeded[0])["Result"]["Payload"] == "this is {not JSON",
            "{succeeded:?}"
        );
        Ok(())
    })
    .await;
}

/// Input the workflow's SDK cannot decode fails the execution with the SDK's own
/// `Aegis.PayloadDecode`: a failure the guest returned, so the history records it on the
/// execution only. A host trap (here `Aegis.InvalidPayload`, a result that is not JSON) is also
/// recorded as the activation's own error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_the_guest_returns_is_not_recorded_as_a_trap() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["steps3", "invalid-json"]).await?;
        let cases = [
            ("steps3", json!(42), "Aegis.PayloadDecode", false),
            (
                "invalid-json",
                json!({"where": "result"}),
                "Aegis.InvalidPayload",
                true,
            ),
        ];
        for (workflow, input, error_type, trapped) in cases {
            let id = c.start(workflow, input).await?;
            crate::expect_failed(&c, &id, error_type).await?;
            let events = c.history(&id).await?;
            let failed = crate::of_type(&events, "ExecutionFailed");
            ensure!(
                failed.len() == 1
                    && crate::details(failed[0])["Error"]["Payload"]["ErrorType"] == error_type,
                "{workflow}: {failed:?}"
            );
            let invocations = crate::of_type(&events, "InvocationCompleted");
            let last = invocations.last().context("an InvocationCompleted")?;
            let error = &crate::details(last)["Error"];
            ensure!(
                error.is_null() != trapped,
                "{workflow}: InvocationCompleted should {}carry the error: {last}",
                if trapped { "" } else { "not " }
            );
            if trapped {
                ensure!(error["Payload"]["ErrorType"] == error_type, "{last}");
            }
        }
        Ok(())
    })
    .await;
}

/// Custom serdes (AWS's): a step's, a child context's and a map's items' results are recorded
/// as the serdes renders them (`wrapped:…`, not JSON), shown so in the history, and read back
/// through the serdes when a replay (after the wait) needs them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_recorded_through_a_serdes_are_read_back_through_it() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["serdes"]).await?;
        let id = c.start("serdes", json!({"text": "hi"})).await?;
        let exec = c.wait_done(&id, crate::DONE).await?;
        ensure!(
            exec["status"] == "SUCCEEDED"
                && exec["result"] == json!({"step": "HI", "child": "HI", "items": ["HI", "HI"]}),
            "{exec}"
        );
        let events = c.history(&id).await?;
        let payload = |e: &&Value| crate::details(e)["Result"]["Payload"].clone();
        let steps: Vec<Value> = crate::of_type(&events, "StepSucceeded")
            .iter()
            .filter(|e| e["Name"] == "step")
            .map(payload)
            .collect();
        ensure!(steps == [json!("wrapped:HI")], "{events:?}");
        let contexts: Vec<(Value, Value)> = crate::of_type(&events, "ContextSucceeded")
            .iter()
            .map(|e| (e["SubType"].clone(), payload(e)))
            .collect();
        ensure!(
            contexts.contains(&(json!("RunInChildContext"), json!("wrapped:HI")))
                && contexts
                    .iter()
                    .filter(|(kind, p)| kind == "MapIteration" && p == "wrapped:HI")
                    .count()
                    == 2,
            "{contexts:?}"
        );
        Ok(())
    })
    .await;
}

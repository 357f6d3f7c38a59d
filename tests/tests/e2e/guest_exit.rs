//! A guest that exits mid-activation (WASI `exit`): recorded as AWS records a Lambda runtime
//! crash (`Runtime.ExitError` on the activation's `InvocationCompleted`), with what it did before
//! the exit kept; the activation runs again after a pause, and only the fifth crash in a row
//! fails the execution.

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::{DONE, check_history_shape, details, guard, host, of_type, upload};

const CRASH: &str = "Runtime.ExitError";

/// The error type an `InvocationCompleted` event carries, if any.
fn invocation_error(event: &Value) -> Option<&str> {
    details(event)["Error"]["Payload"]["ErrorType"].as_str()
}

/// The `Id` of the step named `name`, from its `StepStarted`.
fn step_id<'a>(events: &'a [Value], name: &str) -> anyhow::Result<&'a str> {
    of_type(events, "StepStarted")
        .into_iter()
        .find(|e| e["Name"] == name)
        .and_then(|e| e["Id"].as_str())
        .with_context(|| format!("no StepStarted for {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_exits_is_run_again_and_its_step_resumes() {
    let host = host().await;
    guard(120, async {
        let c = host.client();
        upload(&c, &["exits"]).await?;
        let id = c.start("exits", json!({"always": false})).await?;
        let exec = c.wait_done(&id, DONE).await?;
        ensure!(
            exec["status"] == "SUCCEEDED"
                && exec["result"] == json!({"before": 1, "fragile": "survived"}),
            "{exec}"
        );
        let events = c.history(&id).await?;
        check_history_shape(&events)?;

        // The crashed activation's InvocationCompleted carries the exit; the next one does not.
        let invocations = of_type(&events, "InvocationCompleted");
        let errors: Vec<Option<&str>> = invocations.iter().map(|e| invocation_error(e)).collect();
        ensure!(errors == [Some(CRASH), None], "{invocations:?}");
        ensure!(
            details(invocations[0])["Error"]["Payload"]["ErrorMessage"]
                .as_str()
                .is_some_and(|m| m.contains("exit status 1")),
            "{}",
            invocations[0]
        );

        // `before` ran once, before the crash; `fragile` started once and, run again as the same
        // attempt, succeeded after the crash without a second StepStarted.
        let fragile = step_id(&events, "fragile")?;
        let before = step_id(&events, "before")?;
        let of_step = |id: &str| -> Vec<&str> {
            events
                .iter()
                .filter(|e| e["Id"] == id)
                .map(|e| e["EventType"].as_str().unwrap_or("?"))
                .collect()
        };
        ensure!(
            of_step(before) == ["StepStarted", "StepSucceeded"],
            "{events:?}"
        );
        ensure!(
            of_step(fragile) == ["StepStarted", "StepSucceeded"],
            "{events:?}"
        );
        let position = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred);
        let crash = position(&|e| invocation_error(e) == Some(CRASH)).context("the crash")?;
        let started = position(&|e| e["Id"] == fragile).context("fragile started")?;
        let succeeded = position(&|e| e["Id"] == fragile && e["EventType"] == "StepSucceeded")
            .context("fragile succeeded")?;
        ensure!(started < crash && crash < succeeded, "{events:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_always_exits_fails_at_the_fifth_crash_in_a_row() {
    let host = host().await;
    // Four pauses of 1, 2, 4 and 8 s between the five crashes.
    guard(180, async {
        let c = host.client();
        upload(&c, &["exits"]).await?;
        let id = c.start("exits", json!({"always": true})).await?;
        let exec = crate::expect_failed(&c, &id, CRASH).await?;
        ensure!(
            exec["error"]["error_message"]
                .as_str()
                .is_some_and(|m| m.contains("exit status 1") && m.contains("crash 5 in a row")),
            "{exec}"
        );
        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        let errors: Vec<Option<&str>> = of_type(&events, "InvocationCompleted")
            .into_iter()
            .map(invocation_error)
            .collect();
        ensure!(errors == [Some(CRASH); 5], "{errors:?}");
        // The step that exits was begun once and never ended.
        let fragile = step_id(&events, "fragile")?;
        let fragile_events = events.iter().filter(|e| e["Id"] == fragile).count();
        ensure!(fragile_events == 1, "{events:?}");
        Ok(())
    })
    .await;
}

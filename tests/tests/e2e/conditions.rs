//! Wait-for-condition: one STEP operation (sub-type `WaitForCondition`) whose check runs once
//! per attempt, a second apart, each attempt getting the state the previous one recorded, until
//! the wait strategy stops it, runs out of attempts, or the check fails. The `poll` fixture
//! counts up to a target and remembers which attempts ran.

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::{
    DONE, check_history_shape, check_steps_once, current_attempt, details, expect_failed, guard,
    host, upload,
};

/// The events of the condition operation: all carry its one `Id` and the `WaitForCondition`
/// sub-type. Returns their types, in order.
fn condition_events(events: &[Value]) -> anyhow::Result<Vec<&Value>> {
    let of_op: Vec<&Value> = events.iter().filter(|e| e["Name"] == "count").collect();
    let id = of_op.first().context("no event of the condition")?["Id"].clone();
    for event in &of_op {
        ensure!(
            event["Id"] == id && event["SubType"] == "WaitForCondition",
            "one operation, sub-type WaitForCondition: {event}"
        );
    }
    Ok(of_op)
}

fn type_of(event: &Value) -> &str {
    event["EventType"].as_str().unwrap_or("?")
}

/// The state an attempt's `StepSucceeded` recorded (its result payload, JSON).
fn recorded_state(event: &Value) -> anyhow::Result<Value> {
    let payload = details(event)["Result"]["Payload"]
        .as_str()
        .with_context(|| format!("no result payload: {event}"))?;
    Ok(serde_json::from_str(payload)?)
}

/// The delay before the next attempt, in seconds (`None` when no attempt follows).
fn next_delay(event: &Value) -> Option<f64> {
    details(event)["RetryDetails"]["NextAttemptDelaySeconds"].as_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_polls_until_it_holds_carrying_its_state() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["poll"]).await?;
        let id = c
            .start("poll", json!({"target": 3, "max_attempts": 10}))
            .await?;
        let result = c.result(&id, DONE).await?;
        // Each attempt got the state the previous one left: the attempts it saw are all there.
        ensure!(result == json!({"count": 3, "seen": [1, 2, 3]}), "{result}");

        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        // Checks that continued are attempts that ended, not successes run again.
        check_steps_once(&events, 0)?;
        let of_op = condition_events(&events)?;
        let ts: Vec<&str> = of_op.iter().map(|e| type_of(e)).collect();
        ensure!(
            ts == ["StepStarted", "StepSucceeded"].repeat(3),
            "three attempts, each started and ended: {ts:?}"
        );
        let ended: Vec<&Value> = of_op.iter().skip(1).step_by(2).copied().collect();
        for (n, event) in ended.iter().enumerate() {
            let attempt = n as u64 + 1;
            ensure!(
                current_attempt(event) == Some(attempt),
                "attempt {attempt}: {event}"
            );
            let state = recorded_state(event)?;
            let seen: Vec<u64> = (1..=attempt).collect();
            ensure!(
                state == json!({"count": attempt, "seen": seen}),
                "attempt {attempt} recorded its state: {event}"
            );
        }
        // The first two continue a second later; the last one ends the operation.
        ensure!(next_delay(ended[0]) == Some(1.0), "{}", ended[0]);
        ensure!(next_delay(ended[1]) == Some(1.0), "{}", ended[1]);
        ensure!(next_delay(ended[2]).is_none(), "{}", ended[2]);
        // Between attempts the execution suspends: one activation per attempt.
        let invocations = events
            .iter()
            .filter(|e| e["EventType"] == "InvocationCompleted")
            .count();
        ensure!(invocations == 3, "{invocations} activations: {events:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_out_of_attempts_fails() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["poll"]).await?;
        let id = c
            .start("poll", json!({"target": 5, "max_attempts": 2}))
            .await?;
        let exec = expect_failed(&c, &id, "WaitForCondition.AttemptsExhausted").await?;
        ensure!(
            exec["error"]["error_message"]
                .as_str()
                .is_some_and(|m| m.contains("exhausted 2 attempts")),
            "{exec}"
        );

        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        let of_op = condition_events(&events)?;
        let ts: Vec<&str> = of_op.iter().map(|e| type_of(e)).collect();
        ensure!(
            ts == ["StepStarted", "StepSucceeded", "StepStarted", "StepFailed"],
            "{ts:?}"
        );
        ensure!(current_attempt(of_op[3]) == Some(2), "{}", of_op[3]);
        ensure!(
            next_delay(of_op[3]).is_none(),
            "no attempt follows: {}",
            of_op[3]
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_fails_the_condition_for_good() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["poll"]).await?;
        let id = c
            .start(
                "poll",
                json!({"target": 3, "max_attempts": 10, "fail_on": 2}),
            )
            .await?;
        expect_failed(&c, &id, "Poll.Failed").await?;

        let events = c.history(&id).await?;
        check_history_shape(&events)?;
        let of_op = condition_events(&events)?;
        let ts: Vec<&str> = of_op.iter().map(|e| type_of(e)).collect();
        // The check of attempt 2 failed: no retry of its own, though attempts were left.
        ensure!(
            ts == ["StepStarted", "StepSucceeded", "StepStarted", "StepFailed"],
            "{ts:?}"
        );
        ensure!(
            recorded_state(of_op[1])? == json!({"count": 1, "seen": [1]}),
            "{}",
            of_op[1]
        );
        ensure!(
            details(of_op[3])["Error"]["Payload"]["ErrorType"] == "Poll.Failed",
            "{}",
            of_op[3]
        );
        Ok(())
    })
    .await;
}

//! Execution logs (`GET /v1/executions/{id}/logs`): the lines a workflow logs (and prints) come
//! back in order, as written, once (a replay after a wait does not log them again), to their
//! tenant only; a flooding guest is capped with one marker line; the lines of an activation that
//! failed are kept.

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use crate::{DONE, expect_failed, guard, keyed_host, new_tenant, of_type};
use aegis_tests::{Client, HostOptions};

/// The JSON line the `logs` fixture writes (`JSON_LINE` there), byte for byte.
const JSON_LINE: &str = r#"{"event":"checkout","items":3,"note":"ünïcode ✓"}"#;

/// One page of an execution's log.
async fn page(c: &Client, id: &str, query: &str) -> Result<Value> {
    c.get_path(&format!("/v1/executions/{id}/logs{query}"))
        .await?
        .expect(200, &format!("the logs of {id}{query}"))
}

/// The records of a page.
fn records(page: &Value) -> Result<&Vec<Value>> {
    page["records"]
        .as_array()
        .with_context(|| format!("no records in {page}"))
}

/// A field of each record, as strings (numbers written out).
fn field(records: &[Value], name: &str) -> Vec<String> {
    records
        .iter()
        .map(|r| match &r[name] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_lines_come_back_in_order_once_and_only_to_their_tenant() {
    let host = keyed_host(HostOptions::default()).await;
    guard(120, async {
        let a = new_tenant(&host, "logs-a", json!({})).await?;
        let b = new_tenant(&host, "logs-b", json!({})).await?;
        a.client.upload_fixture("logs").await?;
        let id = a.client.start("logs", json!({"seconds": 1})).await?;
        let exec = a.client.wait_done(&id, DONE).await?;
        ensure!(
            exec["status"] == "SUCCEEDED" && exec["result"] == "done",
            "{exec}"
        );
        // The wait suspended the execution and a second activation replayed it.
        let events = a.client.history(&id).await?;
        ensure!(
            of_type(&events, "InvocationCompleted").len() == 2
                && of_type(&events, "WaitSucceeded").len() == 1,
            "a wait and a replay: {events:?}"
        );

        let whole = page(&a.client, &id, "").await?;
        let lines = records(&whole)?;
        ensure!(
            field(lines, "message")
                == [
                    "before the wait",
                    JSON_LINE,
                    "two\nlines",
                    "in the step",
                    "printed in the step",
                    "after the wait"
                ],
            "each line once, in order, as written (stdout too): {whole}"
        );
        ensure!(
            field(lines, "level") == ["INFO", "WARN", "DEBUG", "INFO", "INFO", "ERROR"],
            "{whole}"
        );
        ensure!(
            field(lines, "sequence") == ["1", "2", "3", "4", "5", "6"],
            "{whole}"
        );
        let times: Vec<i64> = lines
            .iter()
            .map(|r| r["timestamp"].as_i64().unwrap_or(0))
            .collect();
        ensure!(
            times.iter().all(|t| *t > 1_600_000_000_000) && times.is_sorted(),
            "timestamps in ms, in order: {times:?}"
        );
        ensure!(whole["next_after"].is_null(), "{whole}");

        // Pages follow `next_after`.
        let first = page(&a.client, &id, "?limit=2").await?;
        ensure!(field(records(&first)?, "sequence") == ["1", "2"], "{first}");
        ensure!(first["next_after"] == 2, "{first}");
        let second = page(&a.client, &id, "?after=2&limit=3").await?;
        ensure!(
            field(records(&second)?, "sequence") == ["3", "4", "5"],
            "{second}"
        );
        ensure!(second["next_after"] == 5, "{second}");
        let last = page(&a.client, &id, "?after=5&limit=3").await?;
        ensure!(field(records(&last)?, "sequence") == ["6"], "{last}");
        ensure!(last["next_after"].is_null(), "{last}");

        // Another tenant's execution answers as a missing one.
        let path = format!("/v1/executions/{id}/logs");
        b.client
            .get_path(&path)
            .await?
            .expect_error(404, "execution_not_found")?;
        a.client
            .get_path("/v1/executions/ex_missing/logs")
            .await?
            .expect_error(404, "execution_not_found")?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_guest_keeps_its_first_lines_and_one_marker() {
    let host = keyed_host(HostOptions::default()).await;
    guard(120, async {
        let capped =
            new_tenant(&host, "capped", json!({"max_log_lines_per_execution": 50})).await?;
        capped.client.upload_fixture("log-flood").await?;
        let id = capped
            .client
            .start("log-flood", json!({"lines": 200, "bytes": 100}))
            .await?;
        let exec = capped.client.wait_done(&id, DONE).await?;
        ensure!(
            exec["status"] == "SUCCEEDED" && exec["result"] == 200,
            "the cap drops lines, it does not fail the execution: {exec}"
        );
        let whole = page(&capped.client, &id, "").await?;
        let lines = records(&whole)?;
        ensure!(
            lines.len() == 51,
            "50 lines and the marker: {}",
            lines.len()
        );
        for (i, line) in lines[..50].iter().enumerate() {
            let message = line["message"].as_str().unwrap_or_default();
            ensure!(
                message.starts_with(&format!("flood {i}\n")) && line["level"] == "ERROR",
                "line {i} as written: {line}"
            );
        }
        let marker = &lines[50];
        ensure!(
            marker["level"] == "WARN"
                && marker["sequence"] == 51
                && marker["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("log is full") && m.contains("50 lines")),
            "{marker}"
        );

        // With the default quotas the flood ends its activation (log lines per activation);
        // the lines it wrote before are kept.
        let open = new_tenant(&host, "uncapped", json!({})).await?;
        open.client.upload_fixture("log-flood").await?;
        let id = open.client.start("log-flood", json!({})).await?;
        expect_failed(&open.client, &id, "Aegis.ActivationLimitExceeded").await?;
        let kept = page(&open.client, &id, "?limit=10000").await?;
        let lines = records(&kept)?;
        ensure!(
            !lines.is_empty()
                && lines.len() <= 1000
                && lines.iter().all(|l| l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("flood "))),
            "the failed activation's lines, no marker: {} lines",
            lines.len()
        );
        Ok(())
    })
    .await;
}

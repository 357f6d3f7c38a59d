//! The sandbox: a guest that loops, explodes its memory or tries to escape fails only itself.

use std::path::Path;

use aegis_tests::{Client, HostOptions};
use anyhow::ensure;
use serde_json::json;

use crate::{DONE, expect_failed, guard, host, host_with, upload};

/// The host still answers and still runs workflows.
async fn still_healthy(c: &Client) -> anyhow::Result<()> {
    let reply = c.healthz().await?;
    ensure!(
        reply.status == 200 && reply.body == json!({"status": "ok"}),
        "{reply:?}"
    );
    upload(c, &["steps3"]).await?;
    let id = c.start("steps3", json!("ok")).await?;
    ensure!(c.result(&id, DONE).await? == json!("ok-a-b-c"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_hits_the_cpu_deadline() {
    let host = host_with(HostOptions::default().cpu_deadline_ms(1000)).await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["infinite_loop"]).await?;
        let id = c.start("infinite_loop", json!(null)).await?;
        // The deadline is 1 s; anything within a minute passes (no timing assertion).
        let exec = expect_failed(&c, &id, "Aegis.CpuDeadlineExceeded").await?;
        ensure!(exec["result"].is_null(), "{exec}");
        still_healthy(&c).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_hits_the_memory_limit() {
    let host = host_with(HostOptions::default().memory_limit_mb(32)).await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["memory_bomb"]).await?;
        let id = c.start("memory_bomb", json!(null)).await?;
        expect_failed(&c, &id, "Aegis.MemoryLimitExceeded").await?;
        still_healthy(&c).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_probe_finds_no_way_out() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["sandbox_probe"]).await?;
        let escape = Path::new("/tmp/aegis-escape");
        // A leftover from an earlier run must not be taken for an escape, nor hide one.
        let _ = std::fs::remove_file(escape);

        let id = c.start("sandbox_probe", json!(null)).await?;
        let result = c.result(&id, DONE).await?;
        for probe in ["read_file", "write_file", "list_dir"] {
            let answer = result[probe].as_str().unwrap_or("");
            ensure!(
                answer.starts_with("denied"),
                "{probe} was not denied: {result}"
            );
        }
        // Only what Lambda sets for a handler (the function (workflow) name and its version),
        // the execution's ARN and whether this is its first activation.
        let arn = result["env"][2][1].as_str().unwrap_or_default();
        ensure!(
            arn.starts_with(
                "arn:aws:lambda:us-east-1:000000000000:function:sandbox_probe:1/durable-execution/"
            ) && arn.ends_with(&format!("/{id}")),
            "the guest sees its execution's ARN: {result}"
        );
        ensure!(
            result["env"]
                == json!([
                    ["AWS_LAMBDA_FUNCTION_NAME", "sandbox_probe"],
                    ["AWS_LAMBDA_FUNCTION_VERSION", "1"],
                    ["AEGIS_EXECUTION_ARN", arn],
                    ["AEGIS_FIRST_ACTIVATION", "true"]
                ]),
            "the guest sees its function name, version, ARN and first activation, nothing \
             else: {result}"
        );
        ensure!(
            result["function_name"] == "sandbox_probe",
            "the SDK reads the function name: {result}"
        );
        ensure!(
            result["system_time_secs"].is_number(),
            "the probe reports the clock it saw: {result}"
        );
        ensure!(!escape.exists(), "the guest created {}", escape.display());
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_imports_sockets_is_refused_at_upload() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        let bytes = std::fs::read(aegis_tests::fixture("socket_probe"))?;
        let reply = c.upload_bytes("socket_probe", bytes).await?;
        reply.assert_error(400, "incompatible_component");
        ensure!(
            reply
                .error_message()
                .is_some_and(|m| m.contains("wasi:sockets")),
            "the refusal names the import: {}",
            reply.body
        );
        still_healthy(&c).await
    })
    .await;
}

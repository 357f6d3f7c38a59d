//! `GET /metrics`: Prometheus's text format, counting what the host did (activations, replays,
//! steps, callbacks, timers, store commits) and each tenant's use of its quotas; on a host with
//! an admin key, only with that key.

use anyhow::{Context as _, ensure};
use serde_json::json;

use crate::{DONE, guard, host, keyed_host, new_tenant, upload};
use aegis_tests::{HostOptions, TEST_ADMIN_KEY};

/// The value of the sample `name` (with its labels, as rendered) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_count_what_the_host_did() {
    let host = host().await;
    guard(120, async {
        let c = host.client();
        upload(&c, &["sleep", "callback"]).await?;
        let slept = c.start("sleep", json!({"seconds": 1})).await?;
        let waits = c
            .start(
                "callback",
                json!({"timeout_seconds": 3600, "heartbeat_seconds": null}),
            )
            .await?;
        let callback = c.pending_callback(&waits, "approval", DONE).await?;
        c.callback_succeed(&callback, &json!("yes")).await?;
        for id in [&slept, &waits] {
            ensure!(c.wait_done(id, DONE).await?["status"] == "SUCCEEDED");
        }
        let reply = c.get_path("/metrics").await?;
        ensure!(reply.status == 200, "{reply:?}");
        ensure!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")),
            "{reply:?}"
        );
        let text = reply.text();
        let at_least = |name: &str, n: f64| -> anyhow::Result<()> {
            let value = sample(&text, name).with_context(|| format!("no {name} in:\n{text}"))?;
            ensure!(value >= n, "{name} = {value}, expected at least {n}");
            Ok(())
        };
        at_least(r#"aegis_activations_total{ending="completed"}"#, 2.0)?;
        at_least(r#"aegis_activations_total{ending="suspended"}"#, 2.0)?;
        at_least("aegis_replays_total", 2.0)?;
        at_least(r#"aegis_steps_total{result="succeeded"}"#, 4.0)?;
        at_least("aegis_callbacks_created_total", 1.0)?;
        at_least(r#"aegis_callbacks_closed_total{how="succeeded"}"#, 1.0)?;
        at_least(r#"aegis_timers_fired_total{kind="WaitEnd"}"#, 1.0)?;
        at_least("aegis_store_commit_seconds_count", 4.0)?;
        at_least("aegis_activation_seconds_count", 4.0)?;
        ensure!(text.contains("# HELP aegis_steps_total"), "{text}");
        // The default tenant's use of its quotas, beside them.
        at_least(
            r#"aegis_tenant_quota{tenant="default",quota="activation_slots"}"#,
            1.0,
        )?;
        ensure!(
            sample(
                &text,
                r#"aegis_tenant_usage{tenant="default",quota="artifact_bytes"}"#
            )
            .is_some(),
            "{text}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_keyed_host_the_metrics_take_the_admin_key() {
    let host = keyed_host(HostOptions::default()).await;
    guard(60, async {
        let tenant = new_tenant(&host, "metered", json!({"max_activation_slots": 3})).await?;
        let anonymous = host.client().get_path("/metrics").await?;
        anonymous.expect_error(401, "unauthorized")?;
        let as_tenant = tenant.client.get_path("/metrics").await?;
        as_tenant.expect_error(401, "unauthorized")?;
        let reply = host
            .client()
            .with_key(TEST_ADMIN_KEY)
            .get_path("/metrics")
            .await?;
        ensure!(reply.status == 200, "{reply:?}");
        let text = reply.text();
        let name = format!(
            r#"aegis_tenant_quota{{tenant="{}",quota="activation_slots"}}"#,
            tenant.id
        );
        ensure!(sample(&text, &name) == Some(3.0), "{name} in:\n{text}");
        Ok(())
    })
    .await;
}

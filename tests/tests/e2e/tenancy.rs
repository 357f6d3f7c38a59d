//! Tenants are isolated: one tenant's key cannot read, list, stop or learn of another's
//! executions, callbacks, components, histories or artifacts, and an existing-but-foreign
//! resource answers exactly like a missing one. Quotas are per tenant: running executions,
//! component size, payload size, request rate, guest memory and CPU, and the per-activation
//! budgets.

use std::time::Duration;

use aegis_tests::{Client, HostOptions, Reply};
use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use crate::api::{exec_id, start_new, with_custom_section};
use crate::{DONE, TenantHandle, expect_failed, guard, keyed_host, new_tenant, upload};

const PENDING: Duration = Duration::from_secs(30);

/// An execution id that exists nowhere, the same length as a real one.
const MISSING_EXEC: &str = "ex_00000000000000000000000000000000";

/// Checks that `foreign` (about `foreign_id`) and `missing` (about `missing_id`) are the same
/// 404: same status, same headers that describe the body, and the same bytes once the id in
/// the foreign answer is replaced by the missing one.
fn same_as_missing(
    foreign: &Reply,
    foreign_id: &str,
    missing: &Reply,
    missing_id: &str,
) -> Result<()> {
    ensure!(
        foreign.status == 404 && missing.status == 404,
        "both 404: foreign {} {}, missing {} {}",
        foreign.status,
        foreign.text(),
        missing.status,
        missing.text()
    );
    ensure!(
        foreign.is_json_error() && foreign.error_code() == missing.error_code(),
        "same code: {} vs {}",
        foreign.text(),
        missing.text()
    );
    let substituted = foreign.text().replace(foreign_id, missing_id);
    ensure!(
        substituted == missing.text(),
        "a foreign resource answers like a missing one:\n  foreign: {}\n  missing: {}",
        foreign.text(),
        missing.text()
    );
    for header in ["content-type", "content-length"] {
        ensure!(
            foreign.header(header) == missing.header(header),
            "{header}: {:?} vs {:?}",
            foreign.header(header),
            missing.header(header)
        );
    }
    Ok(())
}

/// Every read or write route about one execution, as `a` sees it for `id`.
async fn execution_views(a: &Client, id: &str) -> Result<Vec<(String, Reply)>> {
    Ok(vec![
        ("get".into(), a.get_raw(id, None).await?),
        ("get wait".into(), a.get_raw(id, Some(50)).await?),
        ("history".into(), a.history_page(id, None, None).await?),
        (
            "history page".into(),
            a.history_page(id, Some(1), Some(2)).await?,
        ),
        ("stop".into(), a.stop(id).await?),
    ])
}

/// Fails when `text` mentions any of `secrets`.
fn leaks_none(what: &str, text: &str, secrets: &[&str]) -> Result<()> {
    for secret in secrets {
        ensure!(
            !text.contains(secret),
            "{what} shows another tenant's {secret}: {text}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_see_or_touch_each_others_executions() {
    let host = keyed_host(HostOptions::default()).await;
    guard(120, async {
        let a = new_tenant(&host, "tenant-a", json!({})).await?;
        let b = new_tenant(&host, "tenant-b", json!({})).await?;
        upload(&a.client, &["callback"]).await?;
        upload(&b.client, &["callback", "steps3"]).await?;

        // Both use the same execution name: names are per tenant.
        let waiting = json!({"timeout_seconds": 600, "heartbeat_seconds": null});
        let b_start = start_new(
            &b.client,
            json!({"workflow": "callback", "name": "same-name", "input": waiting}),
        )
        .await?;
        let b_running = exec_id(&b_start)?;
        let b_cb = b
            .client
            .pending_callback(&b_running, "approval", PENDING)
            .await?;
        let a_start = a
            .client
            .start_raw(&json!({"workflow": "callback", "name": "same-name", "input": waiting}))
            .await?
            .expect(201, "A's start of the same name is a new execution")?;
        let a_running = exec_id(&a_start)?;
        ensure!(a_running != b_running, "one execution for two tenants");
        let a_cb = a
            .client
            .pending_callback(&a_running, "approval", PENDING)
            .await?;
        let b_done = b.client.start("steps3", json!("b")).await?;
        b.client.result(&b_done, DONE).await?;
        let b_history = b.client.history(&b_running).await?;

        // Every execution route answers A about B's executions exactly as about none.
        let missing = execution_views(&a.client, MISSING_EXEC).await?;
        for foreign_id in [&b_running, &b_done] {
            let foreign = execution_views(&a.client, foreign_id).await?;
            for ((what, f), (_, m)) in foreign.iter().zip(&missing) {
                same_as_missing(f, foreign_id, m, MISSING_EXEC)
                    .with_context(|| format!("A's {what} of B's execution"))?;
            }
        }
        // A's stop did nothing to B's execution.
        let b_exec = b.client.get(&b_running).await?;
        ensure!(
            b_exec["status"] == "RUNNING"
                && b_exec["pending_callbacks"][0]["callback_id"] == b_cb.as_str(),
            "{b_exec}"
        );
        ensure!(
            b.client.history(&b_running).await?.len() == b_history.len(),
            "A's requests changed B's history"
        );

        // Nothing A can read mentions B's executions or B's callback.
        let secrets = [b_running.as_str(), b_done.as_str(), b_cb.as_str()];
        let a_list = a.client.list_all_executions("", 2).await?;
        ensure!(
            a_list.len() == 1 && a_list[0]["execution_id"] == a_running.as_str(),
            "A lists only its own: {a_list:?}"
        );
        for query in [
            "",
            "workflow=callback",
            "workflow=steps3",
            "status=RUNNING",
            "status=SUCCEEDED",
            "created_after=0",
        ] {
            let page = a.client.list_executions(query).await?;
            leaks_none(&format!("A's list ?{query}"), &page.text(), &secrets)?;
        }
        let a_exec = a.client.get_raw(&a_running, None).await?;
        leaks_none("A's execution", &a_exec.text(), &secrets)?;
        let pending: Vec<&str> = a_exec.body["pending_callbacks"]
            .as_array()
            .context("pending_callbacks")?
            .iter()
            .filter_map(|p| p["callback_id"].as_str())
            .collect();
        ensure!(
            pending == [a_cb.as_str()],
            "A sees only its callback: {pending:?}"
        );
        let a_hist = a.client.history_page(&a_running, None, None).await?;
        leaks_none("A's history", &a_hist.text(), &secrets)?;
        for reply in [
            a.client.whoami().await?,
            a.client.components().await?,
            a.client.get_path("/v1/events").await?,
        ] {
            leaks_none("A's view", &reply.text(), &secrets)?;
        }
        // A's workflow events filtered on B's execution: none.
        let events = a
            .client
            .get_path(&format!("/v1/events?execution_id={b_running}"))
            .await?
            .expect(200, "events")?;
        ensure!(events["events"] == json!([]), "{events}");

        // Callbacks are capabilities: B's completes with its id and no key; A's is untouched.
        host.client()
            .callback_succeed(&b_cb, &json!("b-ok"))
            .await?
            .expect(200, "B's callback")?;
        ensure!(b.client.result(&b_running, DONE).await? == json!({"callback": "b-ok"}));
        let a_exec = a.client.get(&a_running).await?;
        ensure!(a_exec["status"] == "RUNNING", "{a_exec}");
        // B's executions still answer A as missing once ended.
        let foreign = a.client.get_raw(&b_running, None).await?;
        let missing = a.client.get_raw(MISSING_EXEC, None).await?;
        same_as_missing(&foreign, &b_running, &missing, MISSING_EXEC)?;
        // And A's own are invisible to B.
        let foreign = b.client.get_raw(&a_running, None).await?;
        let missing = b.client.get_raw(MISSING_EXEC, None).await?;
        same_as_missing(&foreign, &a_running, &missing, MISSING_EXEC)?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_see_or_touch_each_others_components() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let a = new_tenant(&host, "tenant-a", json!({})).await?;
        let b = new_tenant(&host, "tenant-b", json!({})).await?;
        upload(&a.client, &["steps3"]).await?;
        // B's private workflow; the missing name has the same length.
        let b_v1 = b
            .client
            .upload("b-secret", &aegis_tests::fixture("sleep"))
            .await?;
        let missing_name = "b-nought";
        ensure!(missing_name.len() == "b-secret".len());

        let pairs = [
            (
                a.client.component_versions("b-secret").await?,
                a.client.component_versions(missing_name).await?,
            ),
            (
                a.client.component_version("b-secret", "1").await?,
                a.client.component_version(missing_name, "1").await?,
            ),
            (
                a.client.delete_component("b-secret", "1").await?,
                a.client.delete_component(missing_name, "1").await?,
            ),
            (
                a.client
                    .start_raw(&json!({"workflow": "b-secret", "input": {"seconds": 1}}))
                    .await?,
                a.client
                    .start_raw(&json!({"workflow": missing_name, "input": {"seconds": 1}}))
                    .await?,
            ),
        ];
        for (foreign, missing) in &pairs {
            same_as_missing(foreign, "b-secret", missing, missing_name)?;
        }
        let list = a.client.components().await?;
        leaks_none("A's components", &list.text(), &["b-secret"])?;
        let names: Vec<&str> = list.body["components"]
            .as_array()
            .context("components")?
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        ensure!(names == ["steps3"], "{names:?}");

        // B's component is intact, and B cannot see A's either.
        let versions = b
            .client
            .component_versions("b-secret")
            .await?
            .expect(200, "B's versions")?;
        ensure!(versions["versions"] == json!([b_v1]), "{versions}");
        let foreign = b.client.component_versions("steps3").await?;
        let missing = b.client.component_versions("stepsX").await?;
        same_as_missing(&foreign, "steps3", &missing, "stepsX")?;

        // The same name uploaded by A is A's own version 1; B's is unchanged.
        let a_v1 = a
            .client
            .upload("b-secret", &aegis_tests::fixture("steps3"))
            .await?;
        ensure!(a_v1["version"] == 1, "{a_v1}");
        let id = a.client.start("b-secret", json!("a")).await?;
        ensure!(
            a.client.result(&id, DONE).await? == json!("a-a-b-c"),
            "A runs its own"
        );
        let id = b.client.start("b-secret", json!({"seconds": 1})).await?;
        ensure!(
            b.client.result(&id, DONE).await? == json!({"slept": 1}),
            "B runs its own"
        );
        // The same bytes uploaded by both: each tenant has its own record of them.
        let same = b
            .client
            .upload("steps3", &aegis_tests::fixture("steps3"))
            .await?;
        ensure!(same["version"] == 1, "{same}");
        b.client
            .delete_component("steps3", "1")
            .await?
            .expect(204, "B deletes its copy")?;
        a.client
            .component_version("steps3", "1")
            .await?
            .expect(200, "A's copy stays")?;
        let id = a.client.start("steps3", json!("still")).await?;
        ensure!(a.client.result(&id, DONE).await? == json!("still-a-b-c"));
        Ok(())
    })
    .await;
}

/// The presigned URL with `from` replaced by `to` in its path (not its query).
fn swap_in_path(url: &str, from: &str, to: &str) -> String {
    match url.split_once('?') {
        Some((path, query)) => format!("{}?{query}", path.replace(from, to)),
        None => url.replace(from, to),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_read_each_others_artifacts() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let a = new_tenant(&host, "tenant-a", json!({})).await?;
        let b = new_tenant(&host, "tenant-b", json!({})).await?;
        upload(&a.client, &["artifacts"]).await?;
        upload(&b.client, &["artifacts"]).await?;
        let b_id = b
            .client
            .start(
                "artifacts",
                json!({"key": "secret.md", "content": "B's secret"}),
            )
            .await?;
        let b_result = b.client.result(&b_id, DONE).await?;
        let b_url = b_result["url"].as_str().context("B's url")?.to_string();
        let a_id = a
            .client
            .start(
                "artifacts",
                json!({"key": "secret.md", "content": "A's notes"}),
            )
            .await?;
        let a_result = a.client.result(&a_id, DONE).await?;
        let a_url = a_result["url"].as_str().context("A's url")?.to_string();
        ensure!(
            b_url.contains(&b.id) && a_url.contains(&a.id),
            "a link names its tenant: {a_url} {b_url}"
        );

        // Links work without a key.
        let anon = host.client();
        let (status, bytes) = anon.fetch(&b_url).await?;
        ensure!(
            status == 200 && bytes == b"B's secret",
            "B's link: {status}"
        );
        let (status, bytes) = anon.fetch(&a_url).await?;
        ensure!(status == 200 && bytes == b"A's notes", "A's link: {status}");

        // A cannot learn B's link: B's execution (and its result) is not visible to A.
        a.client
            .get_raw(&b_id, None)
            .await?
            .expect_error(404, "execution_not_found")?;

        // Re-aiming a link at the other tenant or its execution breaks the signature.
        let attempts = [
            swap_in_path(&a_url, &a.id, &b.id),
            swap_in_path(&a_url, &a_id, &b_id),
            swap_in_path(&swap_in_path(&a_url, &a.id, &b.id), &a_id, &b_id),
            swap_in_path(&b_url, &b.id, &a.id),
        ];
        for url in &attempts {
            ensure!(
                url != &a_url && url != &b_url,
                "the swap changed nothing: {url}"
            );
            let reply = anon.fetch_reply(url).await?;
            reply
                .expect_error(403, "link_invalid")
                .with_context(|| format!("GET {url}"))?;
            ensure!(
                !reply.raw.windows(6).any(|w| w == b"secret"),
                "the refusal shows content"
            );
        }
        // With a tenant key instead of a signature: still refused.
        let (path, _) = b_url.split_once('?').context("a query")?;
        let unsigned = a.client.fetch_reply(path).await?;
        unsigned.expect_error(403, "link_invalid")?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_and_nothing_else_changes() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let admin = host.admin();
        let a = new_tenant(&host, "tenant-a", json!({})).await?;
        let b = new_tenant(&host, "tenant-b", json!({})).await?;
        let second = admin.add_key(&a.id).await?.expect(201, "second key")?;
        let a2 = host
            .client()
            .with_key(second["api_key"].as_str().context("api_key")?);
        upload(&a.client, &["callback"]).await?;
        let id = a
            .client
            .start(
                "callback",
                json!({"timeout_seconds": 60, "heartbeat_seconds": null}),
            )
            .await?;
        let cb = a.client.pending_callback(&id, "approval", PENDING).await?;

        admin
            .revoke_key(&a.id, &a.key_id)
            .await?
            .expect(200, "revoke")?;
        for reply in [
            a.client.whoami().await?,
            a.client.get_raw(&id, None).await?,
            a.client.list_executions("").await?,
            a.client
                .start_raw(&json!({"workflow": "callback", "input": 1}))
                .await?,
            a.client.stop(&id).await?,
            a.client.components().await?,
        ] {
            reply.expect_error(401, "unauthorized")?;
        }
        // The tenant's other key, the other tenant and the running execution go on.
        ensure!(a2.get(&id).await?["status"] == "RUNNING");
        b.client.whoami().await?.expect(200, "B")?;
        host.client()
            .callback_succeed(&cb, &json!("after revocation"))
            .await?
            .expect(200, "callback")?;
        ensure!(a2.result(&id, DONE).await? == json!({"callback": "after revocation"}));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_running_executions_is_per_tenant() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let a = new_tenant(&host, "small", json!({"max_running_executions": 2})).await?;
        let b = new_tenant(&host, "large", json!({})).await?;
        upload(&a.client, &["callback", "steps3"]).await?;
        upload(&b.client, &["callback"]).await?;
        let waiting = json!({"timeout_seconds": 600, "heartbeat_seconds": null});

        let first = start_new(
            &a.client,
            json!({"workflow": "callback", "name": "one", "input": waiting}),
        )
        .await?;
        let first = exec_id(&first)?;
        let second = a.client.start("callback", waiting.clone()).await?;
        let refused = a
            .client
            .start_raw(&json!({"workflow": "callback", "input": waiting}))
            .await?;
        refused.expect_error(429, "quota_exceeded")?;
        let message = refused.error_message().unwrap_or("");
        ensure!(
            message.contains("max_running_executions") && message.contains('2'),
            "the message names the limit: {message}"
        );
        a.client
            .start_raw(&json!({"workflow": "steps3", "input": "x"}))
            .await?
            .expect_error(429, "quota_exceeded")?;
        // An idempotent start of an execution that exists is not a new one: no quota charged.
        let again = a
            .client
            .start_raw(&json!({"workflow": "callback", "name": "one", "input": waiting}))
            .await?
            .expect(200, "idempotent start at the limit")?;
        ensure!(again["execution_id"] == first.as_str(), "{again}");
        let listed = a.client.list_all_executions("", 10).await?;
        ensure!(listed.len() == 2, "nothing was created: {listed:?}");

        // The other tenant is not limited by A's quota.
        for _ in 0..3 {
            b.client.start("callback", waiting.clone()).await?;
        }

        // A slot frees when an execution ends: by its callback, or by a stop.
        let cb = a
            .client
            .pending_callback(&first, "approval", PENDING)
            .await?;
        a.client
            .callback_succeed(&cb, &json!(1))
            .await?
            .expect(200, "callback")?;
        a.client.wait_done(&first, DONE).await?;
        let third = a.client.start("steps3", json!("x")).await?;
        ensure!(a.client.result(&third, DONE).await? == json!("x-a-b-c"));
        let _fourth = a.client.start("callback", waiting.clone()).await?;
        a.client
            .start_raw(&json!({"workflow": "steps3", "input": "y"}))
            .await?
            .expect_error(429, "quota_exceeded")?;
        a.client.stop(&second).await?.expect(200, "stop")?;
        let fifth = a.client.start("steps3", json!("y")).await?;
        ensure!(a.client.result(&fifth, DONE).await? == json!("y-a-b-c"));
        // Raising the quota takes effect at once.
        host.admin()
            .set_quotas(&a.id, &json!({"max_running_executions": 3}))
            .await?
            .expect(200, "raise")?;
        a.client.start("callback", waiting.clone()).await?;
        a.client.start("callback", waiting.clone()).await?;
        a.client
            .start_raw(&json!({"workflow": "callback", "input": waiting}))
            .await?
            .expect_error(429, "quota_exceeded")?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_size_quota_is_per_tenant() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let a = new_tenant(&host, "small", json!({"max_component_mb": 1})).await?;
        let b = new_tenant(&host, "large", json!({})).await?;
        // A valid component of 1.5 MiB: the steps3 fixture with a large custom section.
        let small = std::fs::read(aegis_tests::fixture("steps3"))?;
        let big = with_custom_section(small.clone(), "padding", 1536 * 1024);
        ensure!(big.len() > 1 << 20);

        // On its own connection, which the host closes after refusing the body unread.
        let refused = a.client.unpooled().upload_bytes("big", big.clone()).await?;
        ensure!(
            refused.status == 413
                && refused.is_json_error()
                && refused.error_code() == Some("payload_too_large")
                && refused
                    .error_message()
                    .unwrap_or("")
                    .contains("max_component_mb"),
            "over max_component_mb: {refused:?}"
        );
        a.client
            .component_versions("big")
            .await?
            .expect_error(404, "component_not_found")?;
        let up = b
            .client
            .upload_bytes("big", big)
            .await?
            .expect(201, "B's upload")?;
        ensure!(up["version"] == 1, "{up}");
        let id = b.client.start("big", json!("p")).await?;
        ensure!(
            b.client.result(&id, DONE).await? == json!("p-a-b-c"),
            "the padded component runs"
        );
        a.client
            .upload_bytes("small", small)
            .await?
            .expect(201, "under the limit")?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_quota_is_per_tenant() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let a = new_tenant(&host, "small", json!({"max_payload_kb": 1})).await?;
        let b = new_tenant(&host, "large", json!({})).await?;
        upload(&a.client, &["steps3", "callback"]).await?;
        upload(&b.client, &["steps3"]).await?;
        let over = "x".repeat(2000);

        let refused = a
            .client
            .start_raw(&json!({"workflow": "steps3", "input": over}))
            .await?;
        refused.expect_error(413, "payload_too_large")?;
        ensure!(
            refused
                .error_message()
                .unwrap_or("")
                .contains("max_payload_kb"),
            "the message names the limit: {refused:?}"
        );
        ensure!(
            a.client.list_all_executions("", 10).await?.is_empty(),
            "nothing was started"
        );
        // Far over: refused while reading the body (on its own connection, which the host
        // closes after refusing the body unread).
        a.client
            .unpooled()
            .start_raw(&json!({"workflow": "steps3", "input": "y".repeat(40 * 1024)}))
            .await?
            .expect_error(413, "payload_too_large")?;
        let id = b.client.start("steps3", json!(over)).await?;
        ensure!(
            b.client.result(&id, DONE).await? == json!(format!("{over}-a-b-c")),
            "B's limit is its own"
        );
        let id = a.client.start("steps3", json!("u".repeat(500))).await?;
        a.client.result(&id, DONE).await?;

        // A callback result over the limit is refused and the callback stays pending.
        let id = a
            .client
            .start(
                "callback",
                json!({"timeout_seconds": 60, "heartbeat_seconds": null}),
            )
            .await?;
        let cb = a.client.pending_callback(&id, "approval", PENDING).await?;
        let refused = host.client().callback_succeed(&cb, &json!(over)).await?;
        refused.expect_error(413, "payload_too_large")?;
        ensure!(
            refused
                .error_message()
                .unwrap_or("")
                .contains("max_payload_kb"),
            "{refused:?}"
        );
        let exec = a.client.get(&id).await?;
        ensure!(
            exec["status"] == "RUNNING"
                && exec["pending_callbacks"][0]["callback_id"] == cb.as_str(),
            "{exec}"
        );
        host.client()
            .callback_succeed(&cb, &json!("small"))
            .await?
            .expect(200, "small result")?;
        ensure!(a.client.result(&id, DONE).await? == json!({"callback": "small"}));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_rate_is_limited_per_tenant() {
    let host = keyed_host(HostOptions::default()).await;
    guard(90, async {
        let a = new_tenant(
            &host,
            "slow",
            json!({"requests_per_second": 1, "request_burst": 3}),
        )
        .await?;
        let b = new_tenant(&host, "fast", json!({})).await?;

        let mut statuses = Vec::new();
        let mut limited: Option<Reply> = None;
        for _ in 0..6 {
            let reply = a.client.whoami().await?;
            statuses.push(reply.status);
            if reply.status == 429 && limited.is_none() {
                limited = Some(reply);
            }
        }
        ensure!(
            statuses[..3] == [200, 200, 200] && statuses[3..].contains(&429),
            "a burst of 3, then 429: {statuses:?}"
        );
        let limited = limited.context("a 429")?;
        limited.expect_error(429, "rate_limited")?;
        let retry_after: u64 = limited
            .header("retry-after")
            .context("a 429 has Retry-After")?
            .parse()
            .context("Retry-After in seconds")?;
        ensure!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
        let message = limited.error_message().unwrap_or("");
        ensure!(
            message.contains("1 per second") && message.contains("burst 3"),
            "the message names the limit: {message}"
        );

        // The other tenant is not slowed down.
        for _ in 0..30 {
            b.client.whoami().await?.expect(200, "B")?;
        }
        // After Retry-After, A may go on.
        tokio::time::sleep(Duration::from_secs(retry_after)).await;
        a.client.whoami().await?.expect(200, "after Retry-After")?;

        // Raising the rate takes effect at once.
        host.admin()
            .set_quotas(
                &a.id,
                &json!({"requests_per_second": 1000, "request_burst": 1000}),
            )
            .await?
            .expect(200, "raise")?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..20 {
            a.client.whoami().await?.expect(200, "raised rate")?;
        }
        Ok(())
    })
    .await;
}

/// Runs `fixture` as tenant `t` and checks it fails with `error_type` naming `cap`.
async fn fails_at_cap(
    t: &TenantHandle,
    fixture: &str,
    error_type: &str,
    cap: &str,
) -> Result<Value> {
    let id = t.client.start(fixture, json!(null)).await?;
    let exec = expect_failed(&t.client, &id, error_type).await?;
    let message = exec["error"]["error_message"].as_str().unwrap_or("");
    ensure!(
        message.contains(cap),
        "{} ran under its own cap ({cap}): {message}",
        t.name
    );
    Ok(exec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_cap_is_per_tenant() {
    let host = keyed_host(HostOptions::default()).await;
    guard(120, async {
        let small = new_tenant(&host, "small", json!({"memory_limit_mb": 16})).await?;
        let normal = new_tenant(&host, "normal", json!({})).await?;
        let big = new_tenant(&host, "big", json!({"memory_limit_mb": 128})).await?;
        for t in [&small, &normal, &big] {
            upload(&t.client, &["memory_bomb", "steps3"]).await?;
        }
        fails_at_cap(&small, "memory_bomb", "Aegis.MemoryLimitExceeded", "16 MiB").await?;
        // The others run fine meanwhile, under their own caps.
        let ok = normal.client.start("steps3", json!("n")).await?;
        ensure!(normal.client.result(&ok, DONE).await? == json!("n-a-b-c"));
        let ok = small.client.start("steps3", json!("s")).await?;
        ensure!(small.client.result(&ok, DONE).await? == json!("s-a-b-c"));
        fails_at_cap(
            &normal,
            "memory_bomb",
            "Aegis.MemoryLimitExceeded",
            "64 MiB",
        )
        .await?;
        fails_at_cap(&big, "memory_bomb", "Aegis.MemoryLimitExceeded", "128 MiB").await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_deadline_is_per_tenant() {
    let host = keyed_host(HostOptions::default().env("AEGIS_CPU_DEADLINE_MS", 2000)).await;
    guard(120, async {
        // 500 ms: far above the few ms of CPU `steps3` needs, debug build included.
        let small = new_tenant(&host, "small", json!({"cpu_deadline_ms": 500})).await?;
        let normal = new_tenant(&host, "normal", json!({})).await?;
        let me = normal.client.whoami().await?.expect(200, "whoami")?;
        ensure!(
            me["quotas"]["cpu_deadline_ms"] == 2000,
            "the host default: {me}"
        );
        for t in [&small, &normal] {
            upload(&t.client, &["infinite_loop", "steps3"]).await?;
        }
        // Both loop at once: each is stopped at its own deadline.
        let small_loop = small.client.start("infinite_loop", json!(null)).await?;
        let normal_loop = normal.client.start("infinite_loop", json!(null)).await?;
        let ok = normal.client.start("steps3", json!("n")).await?;
        ensure!(normal.client.result(&ok, DONE).await? == json!("n-a-b-c"));
        for (t, id, cap) in [
            (&small, &small_loop, "500 ms"),
            (&normal, &normal_loop, "2000 ms"),
        ] {
            let exec = expect_failed(&t.client, id, "Aegis.CpuDeadlineExceeded").await?;
            let message = exec["error"]["error_message"].as_str().unwrap_or("");
            ensure!(message.contains(cap), "{}: {message}", t.name);
        }
        fails_at_cap(
            &small,
            "infinite_loop",
            "Aegis.CpuDeadlineExceeded",
            "500 ms",
        )
        .await?;
        let ok = small.client.start("steps3", json!("s")).await?;
        ensure!(small.client.result(&ok, DONE).await? == json!("s-a-b-c"));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_budgets_are_per_tenant() {
    let host = keyed_host(HostOptions::default()).await;
    guard(180, async {
        let small = new_tenant(
            &host,
            "small",
            json!({"max_operations_per_activation": 50, "max_log_lines_per_activation": 0}),
        )
        .await?;
        let normal = new_tenant(&host, "normal", json!({})).await?;
        for t in [&small, &normal] {
            upload(&t.client, &["many_steps", "log_flood"]).await?;
        }
        // 100 steps in one activation: over the small tenant's 50 operations, well within the
        // default 10,000.
        let over = small
            .client
            .start("many_steps", json!({"steps": 100}))
            .await?;
        let within = normal
            .client
            .start("many_steps", json!({"steps": 100}))
            .await?;
        let exec = expect_failed(&small.client, &over, "Aegis.ActivationLimitExceeded").await?;
        let message = exec["error"]["error_message"].as_str().unwrap_or("");
        ensure!(
            message.contains("max_operations_per_activation") && message.contains("50"),
            "the message names the quota and its limit: {message}"
        );
        ensure!(
            normal.client.result(&within, DONE).await? == json!({"steps": 100, "sum": 4950}),
            "the other tenant's execution is not limited"
        );
        // A journal of at most 30 operations, over all the execution's activations.
        let short = new_tenant(&host, "short", json!({"max_operations_per_execution": 30})).await?;
        upload(&short.client, &["many_steps"]).await?;
        let long = short
            .client
            .start("many_steps", json!({"steps": 100}))
            .await?;
        let exec = expect_failed(&short.client, &long, "Aegis.ActivationLimitExceeded").await?;
        let message = exec["error"]["error_message"].as_str().unwrap_or("");
        ensure!(
            message.contains("max_operations_per_execution"),
            "{message}"
        );
        // No log lines at all for the small tenant; ten are fine for the other.
        let quiet = small
            .client
            .start("log_flood", json!({"lines": 1, "bytes": 10}))
            .await?;
        let exec = expect_failed(&small.client, &quiet, "Aegis.ActivationLimitExceeded").await?;
        let message = exec["error"]["error_message"].as_str().unwrap_or("");
        ensure!(
            message.contains("max_log_lines_per_activation"),
            "{message}"
        );
        let chatty = normal
            .client
            .start("log_flood", json!({"lines": 10, "bytes": 100}))
            .await?;
        ensure!(normal.client.result(&chatty, DONE).await? == json!(10));
        Ok(())
    })
    .await;
}

//! The web console at `/ui`, in a real browser: Debian's chromium driven by Playwright for
//! Python (`tests/console/*.py`), against the real host in keyed mode.
//!
//! - a reviewer opens a research pipeline run's approval link cold, gives the key the page asks
//!   for, reads the analysis rendered as a page, finds the run among the pending approvals,
//!   comments and approves: the run completes and the comment is the decision the workflow got;
//! - the executions list (with its filters), executions' timelines (a step retried, waits,
//!   callbacks, a map and a child context) and the events, with the owner's key; with another
//!   tenant's key, none of it.
//!
//! The browser checks need `/usr/bin/chromium` (or `AEGIS_CHROMIUM`) and `python3` with
//! `playwright==1.65.2` (`make ui-deps`). Without them each test is skipped with a loud
//! message, unless `AEGIS_REQUIRE_BROWSER` is set (CI sets it), in which case it fails.
//!
//! The page weights the scripts measure (bytes moved, cold cache) are printed, not asserted.

use std::path::{Path, PathBuf};
use std::process::Command;

use aegis_tests::HostOptions;
use aegis_tests::agents::DemoAgents;
use aegis_tests::pipeline;
use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};

use crate::pipeline::{RUN, TOPIC, demo_config, parameters, pipeline_host};
use crate::{DONE, guard, keyed_host, new_tenant, upload};

fn chromium() -> PathBuf {
    std::env::var_os("AEGIS_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("console")
        .join(name)
}

/// Why the browser checks cannot run here, if they cannot.
fn browser_missing() -> Option<String> {
    if !chromium().exists() {
        return Some(format!("no chromium at {}", chromium().display()));
    }
    let out = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .output();
    match out {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Some(format!("cannot run python3: {e}")),
    }
}

/// Whether `test` must be skipped for want of a browser: loudly, and never when
/// `AEGIS_REQUIRE_BROWSER` is set (then it panics).
fn skip(test: &str) -> bool {
    let Some(why) = browser_missing() else {
        return false;
    };
    let required =
        std::env::var_os("AEGIS_REQUIRE_BROWSER").is_some_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "AEGIS_REQUIRE_BROWSER is set, but the browser checks cannot run ({why}); \
         install what they need with `make ui-deps`"
    );
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! SKIPPED {test}:\n\
         !! the console's browser checks cannot run ({why}).\n\
         !! Run `make ui-deps` (apt-get install chromium; pip install playwright==1.65.2),\n\
         !! or set AEGIS_REQUIRE_BROWSER=1 to make this a failure.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    true
}

/// Runs `tests/console/<name>` with `args` off the async threads; its JSON result.
async fn run_script(name: &str, args: Vec<String>) -> Result<Value> {
    let path = script(name);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&path)
            .args(&args)
            .env("AEGIS_CHROMIUM", chromium())
            .env("PYTHONUNBUFFERED", "1")
            .output()
    })
    .await?
    .with_context(|| format!("running {name}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{name} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{name} printed no JSON: {stdout}"))
}

/// Prints a page's weight as the script measured it.
fn print_weight(page: &str, weight: &Value) {
    eprintln!(
        "console page weight, {page} (cold cache): {} bytes ({} console files, {} API answers)",
        weight["total"], weight["files"], weight["api"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_approves_in_the_browser_through_the_approval_link() {
    if skip("a_reviewer_approves_in_the_browser_through_the_approval_link") {
        return;
    }
    let agents = DemoAgents::start(None).await.expect("demo agents");
    let host = pipeline_host(&demo_config(&agents), HostOptions::default().keyed()).await;
    guard(240, async {
        let tenant = new_tenant(&host, "reviewers", json!({})).await?;
        let client = &tenant.client;
        pipeline::upload(client).await?;
        let id = pipeline::start(client, TOPIC, parameters()).await?;
        let mut seen = Vec::new();
        let waiting = pipeline::poll_until(client, &id, RUN, &mut seen, |v| {
            v["status"] == "AWAITING_APPROVAL"
        })
        .await?;
        // The link the reviewer gets is the console's approval page for this run.
        let link = waiting["approval_url"]
            .as_str()
            .with_context(|| format!("no approval_url while awaiting approval: {waiting}"))?;
        ensure!(
            link == format!("{}/ui/approvals/{id}", host.base_url()),
            "approval_url: {link}"
        );
        // The event the pipeline sends (webhook, SNS, EventBridge) carries the same link, and
        // so does the line it logs.
        let events = pipeline::events(client, &id).await?;
        let requested = events
            .iter()
            .find(|e| e["kind"] == "approval.requested")
            .context("no approval.requested event")?;
        ensure!(
            requested["data"]["approval_url"] == link
                && requested["data"]["review_url"] == waiting["review_url"],
            "approval.requested: {requested}"
        );
        let logs = client
            .get_path(&format!("/v1/executions/{id}/logs"))
            .await?
            .expect(200, "logs")?;
        ensure!(
            logs.to_string().contains(&format!("review {link}")),
            "the approval's log line: {logs}"
        );

        let comment = "Approved from the browser: keep the latency numbers <b>and</b> cite them.";
        let page = run_script(
            "approve.py",
            vec![link.to_string(), tenant.key.clone(), comment.to_string()],
        )
        .await?;
        print_weight("approval", &page["weight"]);
        // The analysis was a page: the demo analyst's sections as headings, not JSON text.
        let headings: Vec<&str> = page["headings"]
            .as_array()
            .context("headings")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        ensure!(
            headings.len() >= 2
                && headings.contains(&"Findings")
                && page["raw_json_shown"] == false,
            "the analysis as the page showed it: {page}"
        );
        ensure!(
            page["pending"] == json!([id]) && page["back_to"] == link,
            "the pending approvals page: {page}"
        );
        ensure!(
            page["status"] == "AWAITING_APPROVAL"
                && page["decision"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("Approved"))
                && page["page_errors"] == json!([]),
            "the approval page: {page}"
        );

        let view = pipeline::wait_ended(client, &id, RUN, &mut seen).await?;
        ensure!(view["status"] == "COMPLETED", "after approval: {view}");
        // The decision the workflow got is the one the page sent, comment and all.
        let history = client.history(&id).await?;
        let decided = history
            .iter()
            .find(|e| e["EventType"] == "CallbackSucceeded" && e["Name"] == "human_approval")
            .context("no human_approval callback succeeded in the history")?;
        let payload = decided["CallbackSucceededDetails"]["Result"]["Payload"]
            .as_str()
            .context("the decision's payload")?;
        let decision: Value = serde_json::from_str(payload)?;
        ensure!(
            decision == json!({"decision": "approve", "comment": comment}),
            "the decision the workflow got: {decision}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_tenant_its_executions_and_another_tenant_nothing() {
    if skip("the_console_shows_a_tenant_its_executions_and_another_tenant_nothing") {
        return;
    }
    let host = keyed_host(HostOptions::default()).await;
    guard(240, async {
        let owner = new_tenant(&host, "owner", json!({})).await?;
        let other = new_tenant(&host, "other", json!({})).await?;
        upload(&owner.client, &["demo"]).await?;
        let id = owner
            .client
            .start("demo", json!({"topic": "Durable consoles"}))
            .await?;
        let callback = owner.client.pending_callback(&id, "approval", DONE).await?;
        owner
            .client
            .callback_succeed(&callback, &json!({"approved": true}))
            .await?
            .expect(200, "approve the demo")?;
        let done = owner.client.wait_done(&id, DONE).await?;
        ensure!(done["status"] == "SUCCEEDED", "the demo execution: {done}");
        // A step that fails twice, then succeeds on its third attempt.
        upload(&owner.client, &["retry"]).await?;
        let retried = owner
            .client
            .start(
                "retry",
                json!({"fail_times": 2, "max_attempts": 5, "delay_ms": 10, "jitter": "none"}),
            )
            .await?;
        let done = owner.client.wait_done(&retried, DONE).await?;
        ensure!(done["status"] == "SUCCEEDED", "the retry execution: {done}");

        let seen = run_script(
            "browse.py",
            vec![
                host.base_url().to_string(),
                owner.key.clone(),
                other.key.clone(),
                id.clone(),
                retried.clone(),
            ],
        )
        .await?;
        let mine = &seen["owner"];
        print_weight("executions", &mine["weight"]);
        ensure!(
            mine["listed"] == json!([retried, id]) && mine["succeeded"] == json!([retried, id]),
            "the owner's executions list, newest first: {mine}"
        );
        let (head, events) = (
            mine["retried_head"].as_str().unwrap_or_default(),
            mine["retried_events"].as_str().unwrap_or_default(),
        );
        ensure!(
            head.contains("flaky")
                && head.contains("3 attempts")
                && events.contains("attempt 1 · retry in ")
                && events.contains("attempt 2 failed"),
            "the retried step in the timeline: {head}\n{events}"
        );
        ensure!(
            mine["status"] == "SUCCEEDED" && mine["stray_text"] == json!([]),
            "the execution page: {mine}"
        );
        let ops: Vec<&str> = mine["operations"]
            .as_array()
            .context("operations")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for op in [
            "fetch-topic",
            "score",
            "cool-down",
            "approval",
            "finalize",
            "report",
        ] {
            ensure!(ops.contains(&op), "no {op} in the timeline: {ops:?}");
        }
        ensure!(
            mine["first_op_events"]
                .as_str()
                .is_some_and(|t| t.contains("durable consoles")),
            "the first operation's result: {mine}"
        );
        ensure!(
            mine["events_mention_execution"] == true && mine["page_errors"] == json!([]),
            "the owner's events: {mine}"
        );
        let theirs = &seen["other"];
        ensure!(
            theirs["execution_error"]
                .as_str()
                .is_some_and(|e| e.contains("404")),
            "another tenant's view of the execution: {theirs}"
        );
        ensure!(
            theirs["events_mention_execution"] == false && theirs["page_errors"] == json!([]),
            "another tenant's events: {theirs}"
        );
        Ok(())
    })
    .await;
}

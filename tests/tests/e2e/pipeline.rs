//! The research pipeline end to end: the real host, the real demo agents (researcher, analyst,
//! writer over A2A v0.3 and v1.0), the embedded store, and the pipeline's own REST shapes
//! (`POST /workflows`, `GET /workflows/{id}`, `POST /workflows/{id}/approval`).
//!
//! - approve: COMPLETED with a markdown report whose citations all resolve, the seven steps in
//!   order, the statuses a poller sees, the event list and the HMAC-signed webhook posts;
//! - reject: REJECTED, no report;
//! - SIGKILL of the host while each agent works and while the pipeline awaits approval, restarted
//!   on the same port (agents post to the URL they were given): it still completes, once;
//! - a 1 MB research result travels as an artifact reference and the journal stays small.
//! - `APPROVAL_TIMEOUT_HOURS` is the approval wait of runs whose request gives none.
//! - the demo agents killed and restarted while the host waits for the researcher's task: the
//!   task was on their disk, so its answer still arrives, and the task can still be read.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aegis_tests::agents::{AgentsConfig, DemoAgents, SimpleAgent, WebhookReceiver};
use aegis_tests::pipeline::{self, STEPS};
use aegis_tests::{Client, Host, HostOptions};
use anyhow::{Context as _, Result, bail, ensure};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{check_history_shape, check_steps_once, details, guard, host_with, of_type};

/// How long a whole pipeline run may take here (the agents work in milliseconds).
pub(crate) const RUN: Duration = Duration::from_secs(60);
/// The secret the webhook posts are signed with.
const WEBHOOK_SECRET: &str = "e2e-webhook-secret-7f3a";
pub(crate) const TOPIC: &str = "durable execution for long-running AI agent workflows";

/// The demo agents as the host's researcher (A2A v0.3), analyst (v1.0) and writer (v0.3):
/// both method generations in one run, as `aegis demo` does.
pub(crate) fn demo_config(agents: &DemoAgents) -> AgentsConfig {
    AgentsConfig::new()
        .a2a("researcher", &agents.url("researcher"), "0.3")
        .a2a("analyst", &agents.url("analyst"), "1.0")
        .a2a("writer", &agents.url("writer"), "0.3")
}

pub(crate) async fn pipeline_host(config: &AgentsConfig, opts: HostOptions) -> Host {
    let mut opts = opts;
    opts.extra_args
        .extend(config.args().expect("writing the agents config"));
    host_with(opts).await
}

pub(crate) fn parameters() -> Value {
    json!({"depth": 2, "sources": 4, "word_limit": 400})
}

/// `sha256=<hex HMAC-SHA256 of body keyed by secret>`.
fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Every file under `dir` named `name`.
fn files_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name) {
                found.push(path);
            }
        }
    }
    found
}

/// The numbers cited as `[n]` in `text`.
fn citations(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find(']')
            && let Ok(n) = rest[..close].parse::<u32>()
        {
            out.push(n);
        }
    }
    out
}

/// Checks a report: a markdown title, a References section, at least one citation in the body,
/// and every citation number resolving to a References entry (and every entry cited).
pub(crate) fn check_report(markdown: &str) -> Result<()> {
    ensure!(
        markdown.starts_with("# "),
        "the report has no markdown title: {markdown:.200}"
    );
    let (body, references) = markdown
        .split_once("## References")
        .with_context(|| format!("the report has no References section:\n{markdown}"))?;
    let cited: std::collections::BTreeSet<u32> = citations(body).into_iter().collect();
    ensure!(!cited.is_empty(), "the report cites nothing:\n{markdown}");
    let listed: std::collections::BTreeSet<u32> = references
        .lines()
        .filter_map(|l| l.trim().strip_prefix('['))
        .filter_map(|l| l.split_once(']'))
        .filter_map(|(n, _)| n.parse().ok())
        .collect();
    ensure!(
        cited == listed,
        "citations {cited:?} do not match the references {listed:?}:\n{markdown}"
    );
    Ok(())
}

/// Fetches the report at the view's `report_url` and checks it; returns the markdown.
async fn fetch_report(view: &Value) -> Result<String> {
    let url = view["report_url"]
        .as_str()
        .with_context(|| format!("a completed pipeline has a report_url: {view}"))?;
    let (status, content_type, body) = pipeline::fetch(url).await?;
    ensure!(status == 200, "GET report_url {url}: HTTP {status}");
    ensure!(
        content_type.starts_with("text/markdown"),
        "the report is served as {content_type:?}, not text/markdown"
    );
    let markdown = String::from_utf8(body).context("the report is not UTF-8")?;
    check_report(&markdown)?;
    Ok(markdown)
}

/// How many events of each kind.
fn kind_counts(events: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for kind in pipeline::kinds(events) {
        *counts.entry(kind.to_string()).or_default() += 1;
    }
    counts
}

/// The checks every COMPLETED run passes: the view, the report, the execution, exactly one of
/// each event, exactly one report artifact, and a history in which every callback completed once.
async fn check_completed(client: &Client, host: &Host, id: &str, view: &Value) -> Result<()> {
    ensure!(view["status"] == "COMPLETED", "not COMPLETED: {view}");
    ensure!(
        pipeline::steps(view) == STEPS,
        "steps_completed are not the seven steps in order: {:?}",
        pipeline::steps(view)
    );
    ensure!(
        view["current_step"] == "finalize_workflow" && view["topic"] == TOPIC,
        "view of a completed run: {view}"
    );
    for key in ["created_at", "updated_at"] {
        ensure!(view[key].is_string(), "the view has no {key}: {view}");
    }
    ensure!(
        view["result"]["status"] == "COMPLETED"
            && view["result"]["report_url"] == view["report_url"]
            && view["result"]["word_count"].as_u64().is_some_and(|n| n > 0),
        "the result of a completed run: {view}"
    );
    fetch_report(view).await?;

    let exec = client.get(id).await?;
    ensure!(
        exec["status"] == "SUCCEEDED" && exec["workflow"] == "research-pipeline",
        "the execution behind a completed pipeline: {exec}"
    );
    ensure!(
        exec["result"] == view["result"],
        "the execution's result {} differs from the view's {}",
        exec["result"],
        view["result"]
    );

    let events = pipeline::events(client, id).await?;
    let counts = kind_counts(&events);
    for (kind, n) in [
        ("approval.requested", 1),
        ("workflow.completed", 1),
        ("workflow.step_completed", 7),
    ] {
        ensure!(
            counts.get(kind) == Some(&n),
            "expected {n} {kind} event(s), got {counts:?}"
        );
    }
    ensure!(
        !counts.contains_key("workflow.failed") && !counts.contains_key("workflow.rejected"),
        "a completed run published {counts:?}"
    );
    let reports = files_named(&host.data_dir().join("artifacts"), "report.md");
    ensure!(
        reports.len() == 1,
        "expected one report artifact, found {reports:?}"
    );
    let completed = events
        .iter()
        .find(|e| e["kind"] == "workflow.completed")
        .expect("counted above");
    ensure!(
        completed["data"]["report_url"] == view["report_url"]
            && completed["data"]["topic"] == TOPIC,
        "workflow.completed event: {completed}"
    );

    let history = client.history(id).await?;
    check_history_shape(&history)?;
    let names = |t: &str| -> Vec<String> {
        of_type(&history, t)
            .iter()
            .map(|e| e["Name"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    let callbacks = [
        "research_phase",
        "analysis_phase",
        "human_approval",
        "writing_phase",
    ];
    ensure!(
        names("CallbackStarted") == callbacks && names("CallbackSucceeded") == callbacks,
        "each agent and the approval called back exactly once: started {:?}, succeeded {:?}",
        names("CallbackStarted"),
        names("CallbackSucceeded")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_pipeline_completes_with_a_cited_report_events_and_signed_webhooks() {
    // A delay per task, so that a poller sees RUNNING before and after the approval even when a
    // loaded machine slows its polls.
    let agents = DemoAgents::start(Some(1000)).await.expect("demo agents");
    let webhook = WebhookReceiver::start().await.expect("webhook receiver");
    let config = demo_config(&agents);
    let opts = HostOptions::default()
        .env("AEGIS_WEBHOOK_URL", webhook.url())
        .env("AEGIS_WEBHOOK_SECRET", WEBHOOK_SECRET);
    let host = pipeline_host(&config, opts).await;
    guard(120, async {
        let client = host.client();
        pipeline::upload(&client).await?;
        let id = pipeline::start(&client, TOPIC, parameters()).await?;
        let mut seen = Vec::new();

        let waiting = pipeline::poll_until(&client, &id, RUN, &mut seen, |v| {
            v["status"] == "AWAITING_APPROVAL"
        })
        .await?;
        ensure!(
            waiting["current_step"] == "human_approval"
                && pipeline::steps(&waiting) == STEPS[..4]
                && waiting["report_url"].is_null(),
            "the view while awaiting approval: {waiting}"
        );
        // The review URL serves the analysis.
        let review_url = waiting["review_url"]
            .as_str()
            .with_context(|| format!("no review_url while awaiting approval: {waiting}"))?
            .to_string();
        pipeline::review_analysis(&review_url).await?;

        let approved = pipeline::decide(&client, &id, "approve", "looks right").await?;
        let body = approved.expect(200, "approve")?;
        ensure!(
            body["workflow_id"] == id.as_str() && body["decision"] == "approve",
            "approval answer: {body}"
        );
        let view = pipeline::wait_ended(&client, &id, RUN, &mut seen).await?;
        ensure!(
            seen == ["RUNNING", "AWAITING_APPROVAL", "RUNNING", "COMPLETED"],
            "statuses seen by polling: {seen:?}"
        );
        check_completed(&client, &host, &id, &view).await?;

        // A second decision is refused: nothing awaits one any more.
        pipeline::decide(&client, &id, "reject", "too late")
            .await?
            .expect_error(409, "not_awaiting_approval")?;

        // The event list has the approval request (with the same review URL) and the completion.
        let events = pipeline::events(&client, &id).await?;
        let requested = events
            .iter()
            .find(|e| e["kind"] == "approval.requested")
            .context("no approval.requested event")?;
        ensure!(
            requested["data"]["review_url"] == review_url.as_str()
                && requested["execution_id"] == id.as_str(),
            "approval.requested event: {requested}"
        );

        // The webhook got them, each signed over its exact body. The host's own
        // `execution.succeeded` is the run's last event.
        for kind in [
            "approval.requested",
            "workflow.completed",
            "execution.succeeded",
        ] {
            webhook.wait_for(kind, &id, RUN).await?;
        }
        let posts = webhook.posts();
        ensure!(!posts.is_empty(), "no webhook posts");
        let mut deliveries: BTreeMap<String, String> = BTreeMap::new();
        for post in &posts {
            let expected = signature(WEBHOOK_SECRET, &post.raw);
            ensure!(
                post.header("x-aegis-signature") == Some(expected.as_str()),
                "webhook post {} has signature {:?}, expected {expected}",
                post.body,
                post.header("x-aegis-signature")
            );
            ensure!(
                post.header("x-aegis-event") == post.body["kind"].as_str()
                    && post.header("content-type") == Some("application/json"),
                "webhook headers {:?} for {}",
                post.headers,
                post.body
            );
            let delivery = post
                .header("x-aegis-delivery")
                .with_context(|| format!("webhook post without X-Aegis-Delivery: {}", post.body))?;
            ensure!(
                delivery.parse::<u64>().ok() == post.body["seq"].as_u64(),
                "X-Aegis-Delivery {delivery} is not the event's seq: {}",
                post.body
            );
            let kind = post.body["kind"].as_str().unwrap_or("?").to_string();
            if let Some(before) = deliveries.insert(delivery.to_string(), kind.clone()) {
                ensure!(
                    before == kind,
                    "delivery {delivery} carried {before} and {kind}"
                );
            }
        }
        // Signed with this secret, and only with it.
        let post = webhook.wait_for("workflow.completed", &id, RUN).await?;
        ensure!(
            post.header("x-aegis-signature")
                != Some(signature("another secret", &post.raw).as_str()),
            "the signature does not depend on the secret"
        );
        ensure!(
            post.body["data"]["report_url"] == view["report_url"],
            "workflow.completed webhook: {}",
            post.body
        );
        // Every event of the run was delivered (`execution.succeeded` is the last one, and
        // deliveries go in order).
        let published: std::collections::BTreeSet<String> =
            events.iter().map(|e| e["seq"].to_string()).collect();
        let delivered: std::collections::BTreeSet<String> = posts
            .iter()
            .filter(|p| p.body["execution_id"] == id.as_str())
            .map(|p| p.body["seq"].to_string())
            .collect();
        ensure!(
            published == delivered,
            "events {published:?} but webhook deliveries {delivered:?}"
        );
        let kinds: Vec<&String> = deliveries.values().collect();
        for kind in ["approval.requested", "workflow.completed"] {
            let n = kinds.iter().filter(|k| **k == kind).count();
            ensure!(n == 1, "{n} distinct {kind} deliveries: {deliveries:?}");
        }
        Ok(())
    })
    .await;
    drop(agents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_pipeline_ends_rejected_without_a_report() {
    let agents = DemoAgents::start(None).await.expect("demo agents");
    let config = demo_config(&agents);
    let host = pipeline_host(&config, HostOptions::default()).await;
    guard(120, async {
        let client = host.client();
        pipeline::upload(&client).await?;
        let id = pipeline::start(&client, TOPIC, parameters()).await?;
        let mut seen = Vec::new();
        pipeline::poll_until(&client, &id, RUN, &mut seen, |v| {
            v["status"] == "AWAITING_APPROVAL"
        })
        .await?;
        pipeline::decide(&client, &id, "reject", "not convincing")
            .await?
            .expect(200, "reject")?;
        let view = pipeline::wait_ended(&client, &id, RUN, &mut seen).await?;
        ensure!(
            view["status"] == "REJECTED" && view["report_url"].is_null(),
            "a rejected run: {view}"
        );
        ensure!(
            view["result"]
                == json!({"status": "REJECTED", "topic": TOPIC, "comment": "not convincing"}),
            "the result of a rejected run: {}",
            view["result"]
        );
        ensure!(
            pipeline::steps(&view) == STEPS[..5],
            "steps of a rejected run: {:?}",
            pipeline::steps(&view)
        );
        ensure!(
            seen.last().map(String::as_str) == Some("REJECTED")
                && !seen.iter().any(|s| s == "COMPLETED" || s == "FAILED"),
            "statuses seen: {seen:?}"
        );
        // A rejection is a normal ending, not a failure.
        let exec = client.get(&id).await?;
        ensure!(exec["status"] == "SUCCEEDED", "execution: {exec}");

        let events = pipeline::events(&client, &id).await?;
        let counts = kind_counts(&events);
        ensure!(
            counts.get("workflow.rejected") == Some(&1)
                && !counts.contains_key("workflow.completed"),
            "events of a rejected run: {counts:?}"
        );
        let reports = files_named(&host.data_dir().join("artifacts"), "report.md");
        ensure!(reports.is_empty(), "a rejected run wrote {reports:?}");
        // The writer was never asked: no writing_phase callback.
        let history = client.history(&id).await?;
        ensure!(
            !history.iter().any(|e| e["Name"] == "writing_phase"),
            "a rejected run dispatched the writer"
        );
        pipeline::decide(&client, &id, "approve", "changed my mind")
            .await?
            .expect_error(409, "not_awaiting_approval")?;
        Ok(())
    })
    .await;
    drop(agents);
}

/// The demo agents are SIGKILLed while the host waits for the researcher's task, and restarted
/// on the same port and state folder: the task is read back from disk and run again, its answer
/// reaches the host through the callback the host waits on (no second dispatch), and `tasks/get`
/// still finds it. The agents first run with an hour's delay, so the task cannot have finished
/// before the kill however slow the machine; they come back without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_agent_restarted_while_the_host_waits_still_answers() {
    let mut agents = DemoAgents::start(Some(3_600_000))
        .await
        .expect("demo agents");
    let config = demo_config(&agents);
    let host = pipeline_host(&config, HostOptions::default()).await;
    guard(180, async {
        let client = host.client();
        pipeline::upload(&client).await?;
        let id = pipeline::start(&client, TOPIC, parameters()).await?;
        wait_in_phase(&client, &id, "research_phase").await?;
        // The researcher has accepted the task: it is on its disk, working (in its delay).
        let deadline = std::time::Instant::now() + RUN;
        let task = loop {
            let working: Vec<Value> = agents
                .tasks_on_disk("researcher")?
                .into_iter()
                .filter(|r| r["task"]["state"] == "Working")
                .collect();
            if let [record] = &working[..] {
                break record["task"].clone();
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "the researcher never kept a working task: {:?}",
                agents.tasks_on_disk("researcher")?
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let task_id = task["id"].as_str().context("task id")?.to_string();

        agents.restart(None).await?;
        let mut seen = Vec::new();
        pipeline::poll_until(&client, &id, RUN, &mut seen, |v| {
            v["status"] == "AWAITING_APPROVAL"
        })
        .await
        .with_context(|| agents.log_tail(30))?;
        pipeline::decide(&client, &id, "approve", "after the restart")
            .await?
            .expect(200, "approve")?;
        let view = pipeline::wait_ended(&client, &id, RUN, &mut seen).await?;
        check_completed(&client, &host, &id, &view).await?;
        // The researcher answers the task it had. One case asks it again, and is allowed: the
        // kill landing between the agent keeping the task and the host reading its reply cuts
        // the dispatch itself, which fails as a dispatch (not as a lost task), and the pipeline
        // retries it; the host does not show when a task is bound, so the test cannot wait it out.
        let history = client.history(&id).await?;
        if history.iter().any(|e| e["Name"] == "research_phase#2") {
            let cut = history.iter().any(|e| {
                e["Name"] == "research_phase"
                    && e["EventType"] == "CallbackFailed"
                    && crate::details(e)["Error"]["Payload"]["ErrorType"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("Agent."))
            });
            ensure!(
                cut,
                "the researcher was asked again though its dispatch was not cut: {history:?}"
            );
            eprintln!("the kill cut the dispatch's reply; the pipeline asked again, as it should");
        }

        // The task the researcher had before the kill ran to its end, and can be read.
        let rpc = json!({"jsonrpc": "2.0", "id": "get", "method": "tasks/get",
            "params": {"id": task_id}});
        let got: Value = reqwest::Client::new()
            .post(agents.url("researcher"))
            .json(&rpc)
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            got["result"]["id"] == task_id.as_str()
                && got["result"]["status"]["state"] == "completed"
                && got["result"]["artifacts"][0]["parts"][0]["data"]["sources"].is_array(),
            "tasks/get of the task from before the restart: {got}"
        );
        Ok(())
    })
    .await;
    drop(agents);
}

/// Waits until the pipeline is in `step` with its agent callback pending (the task is out to the
/// agent), and checks the view says so.
async fn wait_in_phase(client: &Client, id: &str, step: &str) -> Result<()> {
    let mut seen = Vec::new();
    pipeline::poll_until(client, id, RUN, &mut seen, |v| {
        v["current_step"] == step && v["status"] == "RUNNING"
    })
    .await?;
    client.pending_callback(id, step, RUN).await?;
    let view = pipeline::view(client, id).await?;
    ensure!(
        view["current_step"] == step && view["status"] == "RUNNING",
        "expected RUNNING in {step}: {view}"
    );
    Ok(())
}

/// Milliseconds since the Unix epoch of a `YYYY-MM-DDTHH:MM:SS.mmmZ` timestamp.
fn epoch_ms(ts: &str) -> Option<i64> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let mut ymd = date.split('-').map(str::parse::<i64>);
    let (y, m, d) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut parts = hms.split(':').map(str::parse::<i64>);
    let (h, mi, sec) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    let millis: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000 + millis)
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_millis()).expect("fits")
}

/// Checks that `step` completed after `killed_at` (ms since the epoch): the host was killed while
/// the step's agent was still at work.
fn completed_after(events: &[Value], step: &str, killed_at: i64) -> Result<()> {
    let event = events
        .iter()
        .find(|e| e["kind"] == "workflow.step_completed" && e["data"]["step"] == step)
        .with_context(|| format!("no step_completed event for {step}"))?;
    let at = event["created_at"]
        .as_str()
        .and_then(epoch_ms)
        .with_context(|| format!("bad created_at in {event}"))?;
    ensure!(
        at > killed_at,
        "{step} completed at {at}, before the host was killed at {killed_at}: the kill did not \
         happen while the agent worked"
    );
    Ok(())
}

/// SIGKILL, then a restart on the same data dir and port.
async fn crash(host: &mut Host) -> Result<Client> {
    host.kill9()?;
    host.restart_same_address().await?;
    Ok(host.client())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_survives_sigkill_while_each_agent_works() {
    // Each task takes 3 s, so the host dies while the agent works on it, even when a loaded
    // machine slows the polls that find the task out.
    let agents = DemoAgents::start(Some(3000)).await.expect("demo agents");
    let config = demo_config(&agents);
    let mut host = pipeline_host(&config, HostOptions::default()).await;
    guard(240, async {
        let mut client = host.client();
        let base = client.base_url().to_string();
        pipeline::upload(&client).await?;
        let id = pipeline::start(&client, TOPIC, parameters()).await?;

        let mut kills = Vec::new();
        for step in ["research_phase", "analysis_phase"] {
            wait_in_phase(&client, &id, step).await?;
            kills.push((step, now_ms()));
            client = crash(&mut host).await?;
            ensure!(
                client.base_url() == base,
                "the host moved to {}",
                client.base_url()
            );
        }
        let mut seen = Vec::new();
        pipeline::poll_until(&client, &id, RUN, &mut seen, |v| {
            v["status"] == "AWAITING_APPROVAL"
        })
        .await?;
        pipeline::decide(&client, &id, "approve", "ok")
            .await?
            .expect(200, "approve")?;
        wait_in_phase(&client, &id, "writing_phase").await?;
        kills.push(("writing_phase", now_ms()));
        client = crash(&mut host).await?;

        let view = pipeline::wait_ended(&client, &id, RUN, &mut seen).await?;
        check_completed(&client, &host, &id, &view).await?;
        check_steps_once(&client.history(&id).await?, 3)?;
        let events = pipeline::events(&client, &id).await?;
        for (step, killed_at) in kills {
            completed_after(&events, step, killed_at)?;
        }
        Ok(())
    })
    .await;
    drop(agents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_survives_sigkill_while_awaiting_approval() {
    let agents = DemoAgents::start(None).await.expect("demo agents");
    let config = demo_config(&agents);
    let mut host = pipeline_host(&config, HostOptions::default()).await;
    guard(180, async {
        let mut client = host.client();
        pipeline::upload(&client).await?;
        let id = pipeline::start(&client, TOPIC, parameters()).await?;
        let mut seen = Vec::new();
        let before = pipeline::poll_until(&client, &id, RUN, &mut seen, |v| {
            v["status"] == "AWAITING_APPROVAL"
        })
        .await?;
        client = crash(&mut host).await?;
        // The restarted host still shows the run awaiting approval, with the same review URL.
        let after = pipeline::view(&client, &id).await?;
        ensure!(
            after["status"] == "AWAITING_APPROVAL"
                && after["review_url"] == before["review_url"]
                && pipeline::steps(&after) == STEPS[..4],
            "after the restart: {after} (before: {before})"
        );
        pipeline::decide(&client, &id, "approve", "approved after a crash")
            .await?
            .expect(200, "approve")?;
        let view = pipeline::wait_ended(&client, &id, RUN, &mut seen).await?;
        check_completed(&client, &host, &id, &view).await?;
        check_steps_once(&client.history(&id).await?, 1)?;
        Ok(())
    })
    .await;
    drop(agents);
}

/// A research result of about `bytes` bytes, every passage carrying `marker`.
fn big_research(topic: &str, bytes: usize, marker: &str) -> Value {
    let text = format!("{marker} {}", "lorem ipsum dolor sit amet ".repeat(36));
    let n = bytes / (text.len() + 60) + 1;
    let passages: Vec<Value> = (0..n)
        .map(|i| json!({"source": format!("doc-{i}.md"), "title": format!("Doc {i}"), "text": text, "score": 1.5}))
        .collect();
    json!({
        "topic": topic,
        "query_terms": ["large", "payload"],
        "passages": passages,
        "sources": [{"source": "doc-0.md", "title": "Doc 0", "score": 2.0}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1mb_research_result_travels_as_an_artifact_reference() {
    // The test plays all three agents over the simple protocol, so that it controls every answer.
    let agent = SimpleAgent::start().await.expect("simple agent");
    let config = AgentsConfig::new()
        .simple("researcher", &agent.url("/researcher"))
        .simple("analyst", &agent.url("/analyst"))
        .simple("writer", &agent.url("/writer"));
    let host = pipeline_host(&config, HostOptions::default()).await;
    guard(120, async {
        let client = host.client();
        pipeline::upload(&client).await?;
        let topic = "large payloads";
        let id = pipeline::start(&client, topic, json!({"word_limit": 100})).await?;

        // Research: answer with ~1 MB.
        let task = agent.task("/researcher", 0, RUN).await?;
        ensure!(
            task.input == json!({"topic": topic, "parameters": {"depth": 2, "sources": 5, "word_limit": 100}}),
            "research input: {}",
            task.input
        );
        let marker = "MARKER-7d1c-large-research";
        let research = big_research(topic, 1 << 20, marker);
        let research_text = research.to_string();
        ensure!(research_text.len() >= 1 << 20, "the research is {} bytes", research_text.len());
        let reply = agent.answer(&task, "SUCCESS", &research).await?;
        ensure!(
            reply.status == 200 && reply.body["status"] == "accepted",
            "the 1 MB answer was refused: HTTP {} {}",
            reply.status,
            reply.body
        );

        // Analysis: its input (topic + the research) is over 200 KB, so it comes by reference,
        // with a presigned URL that serves exactly that input.
        let task = agent.task("/analyst", 0, RUN).await?;
        let reference = task.input["$artifact"]
            .as_str()
            .with_context(|| format!("the analyst's input is not a reference: {:.300}", task.input.to_string()))?;
        ensure!(reference.starts_with("artifact://"), "reference {reference}");
        let url = task.input["url"].as_str().context("the reference has no url")?;
        let (status, _, body) = pipeline::fetch(url).await?;
        ensure!(status == 200, "GET the analyst's input: HTTP {status}");
        let fetched: Value = serde_json::from_slice(&body).context("the input is JSON")?;
        ensure!(
            fetched == json!({"topic": topic, "research": research}),
            "the referenced input is not {{topic, research}}"
        );
        ensure!(
            task.input["size"].as_u64() == Some(body.len() as u64),
            "reference size {} for {} bytes",
            task.input["size"],
            body.len()
        );
        let analysis = json!({"topic": topic, "findings": [{"text": "Large payloads travel by reference.", "source": "doc-0.md", "title": "Doc 0", "score": 1.0}], "figures": [], "keywords": [], "sources": research["sources"]});
        agent
            .answer(&task, "SUCCESS", &analysis)
            .await?
            .expect(200, "the analysis answer")?;

        let mut seen = Vec::new();
        pipeline::poll_until(&client, &id, RUN, &mut seen, |v| {
            v["status"] == "AWAITING_APPROVAL"
        })
        .await?;
        pipeline::decide(&client, &id, "approve", "")
            .await?
            .expect(200, "approve")?;

        let task = agent.task("/writer", 0, RUN).await?;
        ensure!(
            task.input == json!({"topic": topic, "analysis": analysis, "word_limit": 100}),
            "writer input: {}",
            task.input
        );
        let report = "# Large payloads\n\nThey travel by reference [1].\n\n## References\n\n[1] Doc 0 (`doc-0.md`)\n";
        agent
            .answer(&task, "SUCCESS", &json!({"report_markdown": report, "word_count": 9}))
            .await?
            .expect(200, "the writer's answer")?;

        let view = pipeline::wait_ended(&client, &id, RUN, &mut seen).await?;
        ensure!(view["status"] == "COMPLETED", "the run: {view}");
        ensure!(
            pipeline::steps(&view) == STEPS,
            "steps: {:?}",
            pipeline::steps(&view)
        );
        let (status, _, body) = pipeline::fetch(view["report_url"].as_str().unwrap_or("")).await?;
        ensure!(
            status == 200 && body == report.as_bytes(),
            "the report: HTTP {status} {:?}",
            String::from_utf8_lossy(&body)
        );

        // The journal stays small: no history event over 64 KB, and the research callback
        // recorded a reference, not the megabyte.
        let history = client.history(&id).await?;
        check_history_shape(&history)?;
        for event in &history {
            let size = event.to_string().len();
            ensure!(
                size <= 64 * 1024,
                "history event {} {} is {size} bytes",
                event["EventId"],
                event["EventType"]
            );
        }
        let research_done = of_type(&history, "CallbackSucceeded")
            .into_iter()
            .find(|e| e["Name"] == "research_phase")
            .context("no CallbackSucceeded for research_phase")?;
        let recorded = &details(research_done)["Result"];
        ensure!(
            recorded["Truncated"] == false,
            "the recorded research result was truncated: {recorded}"
        );
        let payload: Value = serde_json::from_str(recorded["Payload"].as_str().unwrap_or(""))
            .with_context(|| format!("the recorded research result is not JSON: {recorded}"))?;
        ensure!(
            payload["$artifact"].as_str().is_some_and(|r| r.starts_with("artifact://"))
                && payload["size"].as_u64() == Some(research_text.len() as u64)
                && payload["content_type"] == "application/json",
            "the recorded research result is not an artifact reference: {payload}"
        );
        // Nothing in the store holds the megabyte: the marker is in no file of the database.
        let mut scanned = 0;
        for entry in std::fs::read_dir(host.data_dir())?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("aegis.db") {
                continue;
            }
            let bytes = std::fs::read(entry.path())?;
            scanned += 1;
            if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                bail!("{name} holds the research text: it was journaled inline");
            }
        }
        ensure!(scanned > 0, "no aegis.db files in {}", host.data_dir().display());
        Ok(())
    })
    .await;
}

/// `APPROVAL_TIMEOUT_HOURS`, the pipeline's own variable, is how long a run started without an
/// approval timeout waits for its decision: it is written into the run's input and the approval
/// callback waits that long. A request's own timeout wins, and a value out of range stops the
/// host at start with a message naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_timeout_hours_is_the_default_approval_wait() {
    let refused = Host::start(HostOptions::default().env("APPROVAL_TIMEOUT_HOURS", "0")).await;
    let Err(error) = refused else {
        panic!("a host with APPROVAL_TIMEOUT_HOURS=0 started");
    };
    assert!(
        format!("{error:#}").contains("APPROVAL_TIMEOUT_HOURS")
            && format!("{error:#}").contains("between 1 and 8784"),
        "{error:#}"
    );

    let agents = DemoAgents::start(None).await.expect("demo agents");
    let config = demo_config(&agents);
    let opts = HostOptions::default().env("APPROVAL_TIMEOUT_HOURS", "48");
    let host = pipeline_host(&config, opts).await;
    guard(120, async {
        let client = host.client();
        pipeline::upload(&client).await?;
        let defaulted = pipeline::start(&client, TOPIC, parameters()).await?;
        let own = pipeline::start(
            &client,
            TOPIC,
            json!({"timeouts_seconds": {"research": 900, "approval": 600}}),
        )
        .await?;
        for (id, approval, research) in [(&defaulted, 48 * 3600, None), (&own, 600, Some(900))] {
            let mut seen = Vec::new();
            pipeline::poll_until(&client, id, RUN, &mut seen, |v| {
                v["status"] == "AWAITING_APPROVAL"
            })
            .await?;
            let exec = client.get(id).await?;
            let timeouts = &exec["input"]["parameters"]["timeouts_seconds"];
            ensure!(
                timeouts["approval"] == approval && timeouts["research"].as_u64() == research,
                "the timeouts in the input of {id}: {timeouts}"
            );
            // The workflow waits that long: the callback's timeout, in seconds.
            let history = client.history(id).await?;
            let waits: Vec<&Value> = of_type(&history, "CallbackStarted")
                .into_iter()
                .filter(|e| e["Name"] == "human_approval")
                .map(|e| &details(e)["Timeout"])
                .collect();
            ensure!(
                waits == [&json!(approval)],
                "the approval wait of {id}: {waits:?}"
            );
        }
        // The rest of the request is as it was.
        let exec = client.get(&defaulted).await?;
        ensure!(
            exec["input"]["parameters"]["depth"] == parameters()["depth"]
                && exec["input"]["topic"] == TOPIC,
            "the input of a run with the default approval timeout: {}",
            exec["input"]
        );
        Ok(())
    })
    .await;
    drop(agents);
}

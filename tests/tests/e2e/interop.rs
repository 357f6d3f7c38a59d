//! Agents talking to the host over the wire, with the `agent-call` fixture (one agent invocation,
//! its answer as the output):
//!
//! - an agent written with the official Python A2A SDK (`a2a-sdk` 1.3.0, `tests/interop/
//!   a2a_agent.py`), configured as A2A v1.0, answers through the SDK's own push sender;
//! - the research pipeline against three such agents (researcher, analyst, writer) that answer
//!   only with text parts, as agents we did not write do: one run approved through to the
//!   report, one rejected;
//! - agent callbacks that must be refused without changing anything: a duplicate answer (409), a
//!   late answer after the agent's timeout (409 `callback_timed_out`), and forged tokens (404).
//!   These use a simple-protocol agent run by the test, which records each dispatched
//!   `{task_id, callback_url, token, input}` and lets the test answer when it wants.
//!
//! The Python test needs `python3` with `a2a-sdk[http-server]==1.3.0` and uvicorn
//! (`make interop-deps`). Without them it is skipped with a loud message, unless
//! `AEGIS_REQUIRE_INTEROP` is set (CI sets it), in which case it fails.

use aegis_tests::agents::{
    AgentsConfig, Dispatched, PythonAgent, SimpleAgent, python_a2a_sdk, python_agent_script,
};
use aegis_tests::pipeline::{self, STEPS};
use aegis_tests::{Client, Host, HostOptions, Reply};
use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{DONE, check_history_shape, guard, host_with, of_type};

/// The fixture that invokes one agent.
const AGENT_CALL: &str = "agent-call";

async fn agents_host(config: &AgentsConfig) -> Host {
    let opts = HostOptions {
        extra_args: config.args().expect("writing the agents config"),
        ..HostOptions::default()
    };
    host_with(opts).await
}

/// Starts `agent-call` on `agent` with `input`, giving it `timeout_seconds`.
async fn call(client: &Client, agent: &str, input: &Value, timeout_seconds: u64) -> Result<String> {
    client
        .start(
            AGENT_CALL,
            json!({"agent": agent, "input": input, "timeout_seconds": timeout_seconds}),
        )
        .await
}

fn require_interop() -> bool {
    std::env::var_os("AEGIS_REQUIRE_INTEROP").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether `test` must be skipped because python3 cannot import the SDK: loudly, and never when
/// `AEGIS_REQUIRE_INTEROP` is set (then it panics).
fn sdk_missing(test: &str) -> bool {
    let Err(why) = python_a2a_sdk() else {
        return false;
    };
    assert!(
        !require_interop(),
        "AEGIS_REQUIRE_INTEROP is set, but python3 cannot import the A2A SDK ({why}); \
         install it with `make interop-deps`"
    );
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! SKIPPED {test}:\n\
         !! python3 cannot import the official A2A SDK ({why}).\n\
         !! Run `make interop-deps` (pip install \"a2a-sdk[http-server]==1.3.0\" uvicorn),\n\
         !! or set AEGIS_REQUIRE_INTEROP=1 to make this a failure.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_a2a_sdk_v1_agent_answers_through_its_push_sender() {
    if sdk_missing("python_a2a_sdk_v1_agent_answers_through_its_push_sender") {
        return;
    }
    let agent = PythonAgent::start(None)
        .await
        .unwrap_or_else(|e| panic!("starting {} failed: {e:?}", python_agent_script().display()));
    let config = AgentsConfig::new().a2a("upper", agent.url(), "1.0");
    let host = agents_host(&config).await;
    guard(120, async {
        // It is the SDK's server: its agent card (v1.0 shape) offers push notifications.
        let card: Value = reqwest::get(format!("{}/.well-known/agent-card.json", agent.url()))
            .await?
            .error_for_status()?
            .json()
            .await?;
        ensure!(
            card["name"] == "upper-case agent" && card["capabilities"]["pushNotifications"] == true,
            "agent card: {card}"
        );

        let client = host.client();
        client.upload_fixture(AGENT_CALL).await?;
        let input = json!({"topic": "durable execution", "tags": ["wasm", "a2a"], "urgent": true});
        let id = call(&client, "upper", &input, 20).await?;
        let exec = client.wait_done(&id, DONE).await?;
        let expected = json!({"answer": {"topic": "DURABLE EXECUTION", "echo": input, "agent": "python-a2a-sdk"}});
        ensure!(
            exec["status"] == "SUCCEEDED" && exec["result"] == expected,
            "the a2a-sdk agent's answer did not come through.\nexecution: {exec}\nexpected result: \
             {expected}\nthe agent's log:\n{}\nthe host's log:\n{}",
            agent.log_tail(40),
            host.log_tail(20)
        );
        let history = client.history(&id).await?;
        check_history_shape(&history)?;
        ensure!(
            of_type(&history, "CallbackSucceeded").len() == 1,
            "one agent answer recorded: {history:?}"
        );
        Ok(())
    })
    .await;
    drop(agent);
}

/// How long one pipeline run may take against the Python agents.
const PIPELINE_RUN: std::time::Duration = std::time::Duration::from_secs(90);

/// The names of the history's events of type `t`, in order.
fn names(history: &[Value], t: &str) -> Vec<String> {
    of_type(history, t)
        .iter()
        .map(|e| e["Name"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The research pipeline against agents on the official SDK that answer only with text: each
/// completes its task with one `text/markdown` artifact and a text status message, no data part.
/// The researcher's notes reach the analyst as text, the analyst's text is what the reviewer is
/// shown and what the writer gets, and the writer's markdown is the report; a second run is
/// rejected at the approval and never reaches the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_on_a2a_sdk_agents_that_answer_only_with_text() {
    if sdk_missing("the_pipeline_runs_on_a2a_sdk_agents_that_answer_only_with_text") {
        return;
    }
    let mut agents = Vec::new();
    for role in ["researcher", "analyst", "writer"] {
        let agent = PythonAgent::start_as(role, None)
            .await
            .unwrap_or_else(|e| panic!("starting the a2a-sdk {role} failed: {e:?}"));
        agents.push(agent);
    }
    let [researcher, analyst, writer] = &agents[..] else {
        unreachable!("three agents were started")
    };
    let config = AgentsConfig::new()
        .a2a("researcher", researcher.url(), "1.0")
        .a2a("analyst", analyst.url(), "1.0")
        .a2a("writer", writer.url(), "1.0");
    let host = agents_host(&config).await;
    let logs = || {
        format!(
            "researcher's log:\n{}\nanalyst's log:\n{}\nwriter's log:\n{}\nhost's log:\n{}",
            researcher.log_tail(15),
            analyst.log_tail(15),
            writer.log_tail(15),
            host.log_tail(30)
        )
    };
    guard(240, async {
        let client = host.client();
        pipeline::upload(&client).await?;
        let topic = "durable execution";
        let parameters = json!({"depth": 2, "sources": 3, "word_limit": 400});
        let approved = pipeline::start(&client, topic, parameters.clone()).await?;
        let rejected = pipeline::start(&client, "replayed journals", parameters).await?;

        let mut seen = Vec::new();
        let waiting = pipeline::poll_until(&client, &approved, PIPELINE_RUN, &mut seen, |v| {
            v["status"] == "AWAITING_APPROVAL"
        })
        .await
        .with_context(logs)?;
        // The reviewer is shown the analyst's own text, made from the researcher's notes.
        let review_url = waiting["review_url"]
            .as_str()
            .with_context(|| format!("no review_url: {waiting}"))?;
        let (status, _, body) = pipeline::fetch(review_url).await?;
        ensure!(status == 200, "GET the review URL: HTTP {status}");
        let analysis: Value = serde_json::from_slice(&body).context("analysis.json is JSON")?;
        let analysis = analysis
            .as_str()
            .with_context(|| format!("the analysis is the analyst's text: {analysis}"))?;
        ensure!(
            analysis.starts_with(&format!("## Analysis of {topic}\n"))
                && analysis.contains("The research holds 3 notes")
                && analysis.contains(&format!("- Finding 1.1 on {topic} comes from source 1."))
                && analysis.contains(&format!("Finding 3.2 on {topic} comes from source 3.")),
            "the analysis is not the analyst's reading of the research notes:\n{analysis}"
        );
        // The approval page shows that markdown as a page: a heading and a list, not text.
        let review = client
            .get_path(&format!("/workflows/{approved}/review"))
            .await?
            .expect(200, "the run's review")?;
        let html = review["analysis_html"].as_str().context("analysis_html")?;
        ensure!(
            html.starts_with(&format!("<h2>Analysis of {topic}</h2>"))
                && html.contains(&format!("<ul>\n<li>Finding 1.1 on {topic} comes from source 1."))
                && review["awaiting_decision"] == true,
            "the analysis as the approval page shows it: {review}"
        );
        pipeline::decide(&client, &approved, "approve", "fine")
            .await?
            .expect(200, "approve")?;
        let view = pipeline::wait_ended(&client, &approved, PIPELINE_RUN, &mut seen)
            .await
            .with_context(logs)?;
        ensure!(
            view["status"] == "COMPLETED" && pipeline::steps(&view) == STEPS,
            "the approved run did not complete: {view}\n{}",
            logs()
        );
        // The report is the writer's markdown, built from the analysis.
        let url = view["report_url"].as_str().context("report_url")?;
        let (status, content_type, body) = pipeline::fetch(url).await?;
        ensure!(
            status == 200 && content_type.starts_with("text/markdown"),
            "GET report_url: HTTP {status}, {content_type}"
        );
        let report = String::from_utf8(body).context("the report is UTF-8")?;
        ensure!(
            report.starts_with(&format!("# {topic}\n\nWritten by the a2a-sdk writer.\n"))
                && report.contains(&format!("- Finding 1.1 on {topic} comes from source 1."))
                && report.contains(&format!("Finding 3.2 on {topic} comes from source 3.")),
            "the report is not the writer's markdown from the analysis:\n{report}"
        );
        let words = report.split_whitespace().count() as u64;
        ensure!(
            view["result"]["word_count"] == words,
            "word_count {} for a report of {words} words",
            view["result"]["word_count"]
        );
        let history = client.history(&approved).await?;
        check_history_shape(&history)?;
        let callbacks = [
            "research_phase",
            "analysis_phase",
            "human_approval",
            "writing_phase",
        ];
        ensure!(
            names(&history, "CallbackSucceeded") == callbacks,
            "each agent and the approval answered once: {:?}",
            names(&history, "CallbackSucceeded")
        );

        // The second run, rejected: it ends REJECTED and the writer is never asked.
        let mut seen = Vec::new();
        pipeline::poll_until(&client, &rejected, PIPELINE_RUN, &mut seen, |v| {
            v["status"] == "AWAITING_APPROVAL"
        })
        .await
        .with_context(logs)?;
        pipeline::decide(&client, &rejected, "reject", "too thin")
            .await?
            .expect(200, "reject")?;
        let view = pipeline::wait_ended(&client, &rejected, PIPELINE_RUN, &mut seen).await?;
        ensure!(
            view["status"] == "REJECTED"
                && view["result"]
                    == json!({"status": "REJECTED", "topic": "replayed journals", "comment": "too thin"}),
            "the rejected run: {view}"
        );
        let history = client.history(&rejected).await?;
        ensure!(
            names(&history, "CallbackSucceeded") == callbacks[..3],
            "a rejected run's callbacks: {:?}",
            names(&history, "CallbackSucceeded")
        );
        Ok(())
    })
    .await;
    drop(agents);
}

/// A host with the test's simple agent configured as `simple`, and `agent-call` uploaded.
async fn simple_setup() -> (SimpleAgent, AgentsConfig, Host) {
    let agent = SimpleAgent::start().await.expect("simple agent");
    let config = AgentsConfig::new().simple("simple", &agent.url("/simple"));
    let host = agents_host(&config).await;
    (agent, config, host)
}

/// Waits for the dispatch of execution `id`'s agent call and checks its shape: the token is the
/// callback id (a `cb_` id the execution lists as pending), the task id is the token, the
/// callback URL is this host's, and the input is the workflow's.
async fn dispatched(
    agent: &SimpleAgent,
    host: &Host,
    client: &Client,
    id: &str,
    input: &Value,
) -> Result<Dispatched> {
    let task = agent.task("/simple", 0, DONE).await?;
    let pending = client.pending_callback(id, "call", DONE).await?;
    ensure!(
        task.token == pending && task.task_id == pending && task.token.starts_with("cb_"),
        "dispatch {:?} for pending callback {pending}",
        task.body
    );
    ensure!(
        task.callback_url == format!("{}/v1/agents/callbacks/{pending}", host.base_url()),
        "callback_url {} (host {})",
        task.callback_url,
        host.base_url()
    );
    ensure!(task.input == *input, "dispatched input {}", task.input);
    ensure!(
        task.idempotency_key.as_deref() == Some(pending.as_str()),
        "Idempotency-Key {:?}",
        task.idempotency_key
    );
    Ok(task)
}

/// An A2A push of a completed task carrying `data`: v1.0 (`{"task": ...}`) or v0.3 (a bare task).
fn completed_push(v1: bool, data: &Value) -> Value {
    if v1 {
        json!({"task": {"id": "t-1", "contextId": "c-1",
            "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [{"artifactId": "a-1", "parts": [{"data": data, "mediaType": "application/json"}]}]}})
    } else {
        json!({"kind": "task", "id": "t-1", "contextId": "c-1",
            "status": {"state": "completed"},
            "artifacts": [{"artifactId": "a-1", "parts": [{"kind": "data", "data": data}]}]})
    }
}

/// Every form an agent can answer `task` in, each carrying `data`: the simple form (success and
/// failure, to the token URL and to the bare URL), A2A pushes of both generations, a "working"
/// push, and the generic callback routes. Returns each form's name and the host's reply.
async fn answer_every_way(
    agent: &SimpleAgent,
    client: &Client,
    task: &Dispatched,
    data: &Value,
) -> Result<Vec<(&'static str, Reply)>> {
    let token = task.token.as_str();
    let bare = task
        .callback_url
        .rsplit_once('/')
        .map(|(base, _)| base.to_string())
        .context("callback URL")?;
    let header = [("X-A2A-Notification-Token", token)];
    let v1_headers = [("X-A2A-Notification-Token", token), ("A2A-Version", "1.0")];
    let working = json!({"task": {"id": "t-1", "status": {"state": "TASK_STATE_WORKING"}}});
    Ok(vec![
        ("simple SUCCESS", agent.answer(task, "SUCCESS", data).await?),
        (
            "simple FAILURE",
            agent.answer(task, "FAILURE", &json!("it broke")).await?,
        ),
        (
            "simple SUCCESS to the bare URL",
            agent
                .post_to(
                    &bare,
                    &json!({"token": token, "status": "SUCCESS", "result": data}),
                    &[],
                )
                .await?,
        ),
        (
            "A2A v1.0 push",
            agent
                .post_to(&task.callback_url, &completed_push(true, data), &v1_headers)
                .await?,
        ),
        (
            "A2A v0.3 push",
            agent
                .post_to(&task.callback_url, &completed_push(false, data), &header)
                .await?,
        ),
        (
            "A2A working push",
            agent
                .post_to(&task.callback_url, &working, &v1_headers)
                .await?,
        ),
        (
            "POST /v1/callbacks/{id}/succeed",
            client.callback_succeed(token, data).await?,
        ),
        (
            "POST /v1/callbacks/{id}/fail",
            client.callback_fail(token, "Agent.Failed", "late").await?,
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_agent_answer_is_refused_and_changes_nothing() {
    let (agent, _config, host) = simple_setup().await;
    guard(90, async {
        let client = host.client();
        client.upload_fixture(AGENT_CALL).await?;
        let input = json!({"question": "what is durable execution?"});
        let id = call(&client, "simple", &input, 600).await?;
        let task = dispatched(&agent, &host, &client, &id, &input).await?;

        let first = agent
            .answer(&task, "SUCCESS", &json!({"n": "first"}))
            .await?;
        let body = first.expect(200, "the first answer")?;
        ensure!(
            body == json!({"execution_id": id, "status": "accepted"}),
            "first answer: {body}"
        );
        // At once, before the workflow has even resumed.
        agent
            .answer(&task, "SUCCESS", &json!({"n": "second"}))
            .await?
            .expect_error(409, "callback_already_completed")?;
        let result = client.result(&id, DONE).await?;
        ensure!(
            result == json!({"answer": {"n": "first"}}),
            "result {result}"
        );
        let history = client.history(&id).await?;
        let exec = client.get(&id).await?;

        for (form, reply) in
            answer_every_way(&agent, &client, &task, &json!({"n": "third"})).await?
        {
            reply
                .expect_error(409, "callback_already_completed")
                .with_context(|| format!("a duplicate answer as {form}"))?;
        }
        ensure!(client.history(&id).await? == history, "the history changed");
        let after = client.get(&id).await?;
        ensure!(
            after["status"] == "SUCCEEDED" && after["result"] == exec["result"],
            "the execution changed: {after}"
        );
        let succeeded = of_type(&history, "CallbackSucceeded");
        ensure!(succeeded.len() == 1, "callback events: {history:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_agent_answers_have_exactly_one_winner() {
    let (agent, _config, host) = simple_setup().await;
    guard(90, async {
        let client = host.client();
        client.upload_fixture(AGENT_CALL).await?;
        let input = json!({"question": "race"});
        let id = call(&client, "simple", &input, 600).await?;
        let task = dispatched(&agent, &host, &client, &id, &input).await?;

        // 16 answers at once, half in the simple form and half as A2A v1.0 pushes.
        let agent = std::sync::Arc::new(agent);
        let mut racers = tokio::task::JoinSet::new();
        for i in 0..16u32 {
            let (agent, task) = (agent.clone(), task.clone());
            racers.spawn(async move {
                let data = json!({"n": i});
                let reply = if i % 2 == 0 {
                    agent.answer(&task, "SUCCESS", &data).await
                } else {
                    let headers = [
                        ("X-A2A-Notification-Token", task.token.as_str()),
                        ("A2A-Version", "1.0"),
                    ];
                    agent
                        .post_to(&task.callback_url, &completed_push(true, &data), &headers)
                        .await
                };
                (i, reply)
            });
        }
        let mut winners = Vec::new();
        while let Some(joined) = racers.join_next().await {
            let (i, reply) = joined?;
            let reply = reply?;
            if reply.status == 200 {
                winners.push(i);
            } else {
                reply
                    .expect_error(409, "callback_already_completed")
                    .with_context(|| format!("racing answer {i}"))?;
            }
        }
        ensure!(winners.len() == 1, "winners: {winners:?}");
        let result = client.result(&id, DONE).await?;
        ensure!(
            result == json!({"answer": {"n": winners[0]}}),
            "the winner was answer {} but the result is {result}",
            winners[0]
        );
        let history = client.history(&id).await?;
        ensure!(
            of_type(&history, "CallbackSucceeded").len() == 1,
            "one answer recorded: {history:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_agent_answer_after_the_timeout_is_refused() {
    let (agent, _config, host) = simple_setup().await;
    guard(90, async {
        let client = host.client();
        client.upload_fixture(AGENT_CALL).await?;
        let input = json!({"question": "slow"});
        // 3 s: long enough for the test to see the dispatch and the pending callback before
        // the timeout, even on a loaded machine.
        let id = call(&client, "simple", &input, 3).await?;
        let task = dispatched(&agent, &host, &client, &id, &input).await?;

        let exec = client.wait_done(&id, DONE).await?;
        ensure!(
            exec["status"] == "FAILED" && exec["error"]["error_type"] == "Callback.Timeout",
            "an agent that does not answer within 3 s fails the call with Callback.Timeout: {exec}"
        );
        let history = client.history(&id).await?;
        ensure!(
            of_type(&history, "CallbackTimedOut").len() == 1,
            "history of a timed-out call: {history:?}"
        );

        for (form, reply) in answer_every_way(&agent, &client, &task, &json!({"n": "late"})).await?
        {
            reply
                .expect_error(409, "callback_timed_out")
                .with_context(|| format!("a late answer as {form}"))?;
        }
        ensure!(client.history(&id).await? == history, "the history changed");
        let after = client.get(&id).await?;
        ensure!(
            after["status"] == "FAILED" && after["error"] == exec["error"],
            "the execution changed: {after} (was {exec})"
        );
        Ok(())
    })
    .await;
}

/// A well-formed callback id that was never issued.
fn forged_token() -> String {
    let seed = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    format!("cb_{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_agent_callbacks_are_not_found_and_change_nothing() {
    let (agent, _config, host) = simple_setup().await;
    guard(90, async {
        let client = host.client();
        client.upload_fixture(AGENT_CALL).await?;
        let input = json!({"question": "who are you?"});
        let id = call(&client, "simple", &input, 600).await?;
        let task = dispatched(&agent, &host, &client, &id, &input).await?;
        let history = client.settled_history(&id, DONE).await?;
        let exec = client.get(&id).await?;

        let forged = forged_token();
        ensure!(
            forged.len() == task.token.len(),
            "{forged} vs {}",
            task.token
        );
        let base = format!("{}/v1/agents/callbacks", host.base_url());
        // The real token with its last character changed.
        let mut near = task.token.clone();
        let last = near.pop().expect("non-empty");
        near.push(if last == '0' { '1' } else { '0' });
        let data = json!({"n": "forged"});
        let simple = |token: &str| json!({"token": token, "status": "SUCCESS", "result": data});
        let attempts: Vec<(&str, Reply)> =
            vec![
            (
                "simple form to a random token's URL",
                agent.post_to(&format!("{base}/{forged}"), &simple(&forged), &[]).await?,
            ),
            (
                "simple form to a near-miss token's URL",
                agent.post_to(&format!("{base}/{near}"), &simple(&near), &[]).await?,
            ),
            (
                "A2A push to a random token's URL",
                agent
                    .post_to(
                        &format!("{base}/{forged}"),
                        &completed_push(true, &data),
                        &[("X-A2A-Notification-Token", &forged), ("A2A-Version", "1.0")],
                    )
                    .await?,
            ),
            (
                "simple form to the bare URL with a random token",
                agent.post_to(&base, &simple(&forged), &[]).await?,
            ),
            (
                "A2A push to the real URL with a mismatched X-A2A-Notification-Token",
                agent
                    .post_to(
                        &task.callback_url,
                        &completed_push(true, &data),
                        &[("X-A2A-Notification-Token", &forged), ("A2A-Version", "1.0")],
                    )
                    .await?,
            ),
            (
                "simple form to the real URL naming another token in the body",
                agent.post_to(&task.callback_url, &simple(&forged), &[]).await?,
            ),
            (
                "a malformed token",
                agent
                    .post_to(&format!("{base}/cb_not-a-real-id"), &simple("cb_not-a-real-id"), &[])
                    .await?,
            ),
            (
                "a working push to a random token's URL",
                agent
                    .post_to(
                        &format!("{base}/{forged}"),
                        &json!({"task": {"id": "t", "status": {"state": "TASK_STATE_WORKING"}}}),
                        &[("A2A-Version", "1.0")],
                    )
                    .await?,
            ),
        ];
        for (what, reply) in attempts {
            reply
                .expect_error(404, "callback_not_found")
                .with_context(|| format!("a forged callback: {what}"))?;
        }

        // Nothing changed: still waiting on the same callback, the same history.
        ensure!(client.history(&id).await? == history, "the history changed");
        let after = client.get(&id).await?;
        ensure!(
            after["status"] == "RUNNING" && after["pending_callbacks"] == exec["pending_callbacks"],
            "the execution changed: {after} (was {exec})"
        );
        // The real answer still goes through.
        agent
            .answer(&task, "SUCCESS", &json!({"n": "real"}))
            .await?
            .expect(200, "the real answer")?;
        let result = client.result(&id, DONE).await?;
        ensure!(
            result == json!({"answer": {"n": "real"}}),
            "result {result}"
        );
        Ok(())
    })
    .await;
}

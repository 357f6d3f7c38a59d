//! Hostile tenants, as seen by workflow events and agents:
//! - an event the webhook refuses (400) becomes a dead letter; the events behind it, of this
//!   tenant and another, are delivered, and the dead letter is listed by the API, to its tenant
//!   only;
//! - a push naming a task that was not bound to its callback at dispatch is refused, and the
//!   host asks the agent for nothing; the bound task's push is taken;
//! - an agent that redirects, or answers with a huge body, fails its call cleanly with a clear
//!   error type, and the host stays healthy.
//!
//! Everything runs on the loopback: the webhook and the agents are servers in this process.
//! Nothing here waits on a clock: every wait is for something the host does, with generous
//! bounds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_tests::agents::AgentsConfig;
use aegis_tests::{Client, HostOptions};
use anyhow::{Result, bail, ensure};
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{DONE, expect_failed, guard, host_with, keyed_host, new_tenant};

const STEPS: &str = "steps3";
const AGENT_CALL: &str = "agent-call";

/// Serves `router` on `127.0.0.1:0`; returns its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a test server");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    base
}

/// Polls `probe` until it gives a value (each probe is a request to the host), up to `DONE`.
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = tokio::time::Instant::now() + DONE;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what}: not within {DONE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The webhook: refuses with 400 every event of the workflow named `refused` (the host's own
/// `execution.*` events name their workflow in `data.workflow`), takes the others; records
/// every post.
#[derive(Clone, Default)]
struct Webhook {
    posts: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    async fn start(&self) -> String {
        let posts = self.posts.clone();
        let router = axum::Router::new().fallback(axum::routing::post(move |body: Bytes| {
            let posts = posts.clone();
            async move {
                let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let refused = event["data"]["workflow"] == "refused";
                posts.lock().unwrap().push(event);
                if refused {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                }
            }
        }));
        format!("{}/hook", serve(router).await)
    }

    /// The posts of execution `id`.
    fn posts_of(&self, id: &str) -> Vec<Value> {
        let posts = self.posts.lock().unwrap();
        posts
            .iter()
            .filter(|p| p["execution_id"] == id)
            .cloned()
            .collect()
    }
}

async fn dead_letters(client: &Client) -> Result<Vec<Value>> {
    let page = client
        .get_path("/v1/events/dead-letters")
        .await?
        .ok("listing dead letters")?;
    Ok(page["dead_letters"].as_array().cloned().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_dead_lettered_and_the_events_behind_it_are_delivered() {
    let webhook = Webhook::default();
    let url = webhook.start().await;
    let host = keyed_host(
        HostOptions::default()
            .env("AEGIS_WEBHOOK_URL", &url)
            .env("AEGIS_WEBHOOK_SECRET", "e2e-webhook-secret"),
    )
    .await;
    guard(180, async {
        let a = new_tenant(&host, "events-a", json!({})).await?;
        let b = new_tenant(&host, "events-b", json!({})).await?;
        let steps = aegis_tests::fixture(STEPS);
        a.client.upload("refused", &steps).await?;
        a.client.upload("fine", &steps).await?;
        b.client.upload("fine", &steps).await?;

        // The refused event comes first: it ends before the others start.
        let refused = a.client.start("refused", json!("x")).await?;
        a.client.wait_done(&refused, DONE).await?;
        let after_a = a.client.start("fine", json!("y")).await?;
        let after_b = b.client.start("fine", json!("z")).await?;
        for (client, id) in [(&a.client, &after_a), (&b.client, &after_b)] {
            let exec = client.wait_done(id, DONE).await?;
            ensure!(exec["status"] == "SUCCEEDED", "{exec}");
        }

        // Behind the refused event, both tenants' events arrive.
        for id in [&after_a, &after_b] {
            eventually("the event after the refused one", async || {
                Ok(webhook
                    .posts_of(id)
                    .iter()
                    .any(|p| p["kind"] == "execution.succeeded")
                    .then_some(()))
            })
            .await?;
        }

        // The refused event is a dead letter of tenant A, listed with what the webhook said.
        let letters = eventually("the dead letter", async || {
            let letters = dead_letters(&a.client).await?;
            Ok((!letters.is_empty()).then_some(letters))
        })
        .await?;
        ensure!(letters.len() == 1, "one dead letter: {letters:?}");
        let letter = &letters[0];
        ensure!(
            letter["event"]["execution_id"] == refused.as_str(),
            "{letter}"
        );
        ensure!(letter["event"]["kind"] == "execution.succeeded", "{letter}");
        ensure!(letter["event"]["tenant_id"] == a.id.as_str(), "{letter}");
        ensure!(letter["sink"] == "webhook", "{letter}");
        ensure!(letter["last_error"] == "HTTP 400 Bad Request", "{letter}");
        // A 400 is final: one attempt, and it was posted once.
        ensure!(letter["attempts"] == 1, "{letter}");
        ensure!(
            webhook.posts_of(&refused).len() == 1,
            "posted once: {:?}",
            webhook.posts_of(&refused)
        );

        // Tenant B sees none of A's dead letters; the operator sees them all.
        ensure!(dead_letters(&b.client).await?.is_empty());
        let all = host
            .admin()
            .get_path("/v1/admin/dead-letters")
            .await?
            .ok("the admin's dead letters")?;
        ensure!(
            all["dead_letters"].as_array().map(Vec::len) == Some(1),
            "{all}"
        );
        let next = all["next_after"].as_u64().unwrap_or_default();
        let empty = host
            .admin()
            .get_path(&format!("/v1/admin/dead-letters?after={next}"))
            .await?
            .ok("the next page")?;
        ensure!(empty["dead_letters"] == json!([]), "{empty}");
        Ok(())
    })
    .await;
}

/// An A2A (v0.3) agent in this process: answers `message/send` with the working task
/// `task-bound`, records the push token (the callback id) it was given, and counts `tasks/get`
/// calls, answering them with the task completed with `{"fetched": <task id>}`.
#[derive(Clone, Default)]
struct A2aAgent {
    tokens: Arc<Mutex<Vec<String>>>,
    gets: Arc<AtomicUsize>,
}

impl A2aAgent {
    async fn start(&self) -> String {
        let this = self.clone();
        let router = axum::Router::new().fallback(axum::routing::post(move |body: Bytes| {
            let this = this.clone();
            async move {
                let rpc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let id = rpc["id"].clone();
                let result = match rpc["method"].as_str() {
                    Some("message/send") => {
                        let token = &rpc["params"]["configuration"]["pushNotificationConfig"]["token"];
                        this.tokens
                            .lock()
                            .unwrap()
                            .push(token.as_str().unwrap_or_default().to_string());
                        json!({"kind": "task", "id": "task-bound", "contextId": "c",
                            "status": {"state": "working"}})
                    }
                    Some("tasks/get") => {
                        this.gets.fetch_add(1, Ordering::SeqCst);
                        let task = rpc["params"]["id"].clone();
                        json!({"kind": "task", "id": task, "contextId": "c",
                            "status": {"state": "completed"},
                            "artifacts": [{"parts": [{"kind": "data", "data": {"fetched": task}}]}]})
                    }
                    _ => json!({}),
                };
                axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
            }
        }));
        serve(router).await
    }

    async fn token(&self) -> Result<String> {
        eventually("the dispatch", async || {
            Ok(self.tokens.lock().unwrap().first().cloned())
        })
        .await
    }
}

/// A status-update push saying the task completed (its result is to be fetched).
fn completed_push(task_id: &str) -> Value {
    json!({"kind": "status-update", "taskId": task_id, "contextId": "c",
        "status": {"state": "completed"}, "final": true})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_for_a_task_not_bound_at_dispatch_is_refused_and_fetches_nothing() {
    let agent = A2aAgent::default();
    let url = agent.start().await;
    let config = AgentsConfig::new().a2a("worker", &url, "0.3");
    let host = host_with(HostOptions {
        extra_args: config.args().expect("writing the agents config"),
        ..HostOptions::default()
    })
    .await;
    guard(180, async {
        let c = host.client();
        c.upload_fixture(AGENT_CALL).await?;
        let id = c
            .start(
                AGENT_CALL,
                json!({"agent": "worker", "input": {"q": 1}, "timeout_seconds": 300}),
            )
            .await?;
        let token = agent.token().await?;
        let push = format!("/v1/agents/callbacks/{token}");

        // Progress of the bound task: taken once the dispatch's answer is recorded (a push that
        // comes before waits for it, then asks to be retried with 503).
        eventually("the bound task's progress push", async || {
            let reply = c
                .without_key()
                .post_path(
                    &push,
                    &json!({"kind": "task", "id": "task-bound", "contextId": "c",
                    "status": {"state": "working"}}),
                )
                .await?;
            if reply.status == 503 {
                reply.expect_error(503, "task_not_bound")?;
                return Ok(None);
            }
            ensure!(reply.body["status"] == "working", "{reply:?}");
            Ok(Some(()))
        })
        .await?;

        // Another task: refused, and the agent is asked for nothing.
        let refused = c
            .without_key()
            .post_path(&push, &completed_push("task-of-someone-else"))
            .await?;
        refused.expect_error(409, "task_mismatch")?;
        ensure!(
            agent.gets.load(Ordering::SeqCst) == 0,
            "no tasks/get was made"
        );
        let exec = c.get(&id).await?;
        ensure!(exec["status"] == "RUNNING", "nothing changed: {exec}");

        // The bound task: taken, its result fetched once, and the workflow gets it.
        c.without_key()
            .post_path(&push, &completed_push("task-bound"))
            .await?
            .ok("the bound task's push")?;
        let exec = c.wait_done(&id, DONE).await?;
        ensure!(exec["status"] == "SUCCEEDED", "{exec}");
        ensure!(
            exec["result"] == json!({"answer": {"fetched": "task-bound"}}),
            "{exec}"
        );
        ensure!(agent.gets.load(Ordering::SeqCst) == 1, "one tasks/get");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_redirects_or_answers_too_much_fails_its_call_cleanly() {
    let target_hits = Arc::new(AtomicUsize::new(0));
    let hits = target_hits.clone();
    let router = axum::Router::new()
        .route(
            "/redirect",
            axum::routing::post(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/target")],
                )
                    .into_response()
            }),
        )
        .route(
            "/target",
            axum::routing::post(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                async { axum::Json(json!({"jsonrpc": "2.0", "id": "x", "result": {}})) }
            }),
        )
        .route(
            "/huge",
            axum::routing::post(|| async { vec![b' '; 8 << 20] }),
        );
    let base = serve(router).await;
    let config = AgentsConfig::new()
        .a2a("redirecting", &format!("{base}/redirect"), "0.3")
        .a2a("huge", &format!("{base}/huge"), "0.3");
    let host = host_with(HostOptions {
        extra_args: config.args().expect("writing the agents config"),
        ..HostOptions::default()
    })
    .await;
    guard(180, async {
        let c = host.client();
        c.upload_fixture(AGENT_CALL).await?;
        c.upload_fixture(STEPS).await?;
        let call = |agent: &str| json!({"agent": agent, "input": {"q": 1}, "timeout_seconds": 300});
        let redirected = c.start(AGENT_CALL, call("redirecting")).await?;
        let huge = c.start(AGENT_CALL, call("huge")).await?;
        let exec = expect_failed(&c, &redirected, "Agent.Redirected").await?;
        ensure!(
            exec["error"]["error_message"]
                .as_str()
                .is_some_and(|m| m.contains("307")),
            "{exec}"
        );
        ensure!(
            target_hits.load(Ordering::SeqCst) == 0,
            "the redirect was not followed"
        );
        let exec = expect_failed(&c, &huge, "Agent.ResponseTooLarge").await?;
        ensure!(
            exec["error"]["error_message"]
                .as_str()
                .is_some_and(|m| m.contains("larger than")),
            "{exec}"
        );

        // The host carries on.
        c.healthz().await?.ok("healthz")?;
        let fine = c.start(STEPS, json!("after")).await?;
        let exec = c.wait_done(&fine, DONE).await?;
        ensure!(exec["status"] == "SUCCEEDED", "{exec}");
        Ok(())
    })
    .await;
}

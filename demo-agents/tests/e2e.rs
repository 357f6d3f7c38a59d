//! End-to-end: starts the real `aegis-agents` binary, talks to it over HTTP in both A2A
//! generations and the simple form, and receives its push notifications and callbacks on a
//! loopback HTTP receiver started by the test.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc};

const WAIT: Duration = Duration::from_secs(20);

/// A running `aegis-agents`; killed on drop.
struct Agents {
    base: String,
    _child: Child,
}

async fn start_agents(args: &[&str]) -> Agents {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aegis-agents"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("OPENAI_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("aegis-agents starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("aegis-agents prints its address in time")
        .unwrap()
        .expect("a line on stdout");
    let base = line
        .strip_prefix("aegis-agents listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Agents {
        base,
        _child: child,
    }
}

#[derive(Debug)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone)]
struct ReceiverState {
    tx: mpsc::UnboundedSender<Hit>,
    fail_first: usize,
    seen: Arc<AtomicUsize>,
}

/// A loopback webhook receiver; answers 503 to the first `fail_first` requests, 200 after.
struct Receiver {
    base: String,
    rx: Mutex<mpsc::UnboundedReceiver<Hit>>,
}

async fn start_receiver(fail_first: usize) -> Receiver {
    async fn hook(
        State(st): State<ReceiverState>,
        Path(path): Path<String>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        if st.seen.fetch_add(1, Ordering::SeqCst) < st.fail_first {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let body = serde_json::from_slice(&body).expect("push bodies are JSON");
        st.tx
            .send(Hit {
                path,
                headers,
                body,
            })
            .unwrap();
        StatusCode::OK
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/hook/{path}", post(hook))
        .with_state(ReceiverState {
            tx,
            fail_first,
            seen: Arc::default(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        base: format!("http://{addr}/hook"),
        rx: Mutex::new(rx),
    }
}

impl Receiver {
    async fn next(&self) -> Hit {
        tokio::time::timeout(WAIT, self.rx.lock().await.recv())
            .await
            .expect("a push arrives in time")
            .expect("receiver alive")
    }

    async fn nothing_within(&self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.rx.lock().await.recv())
            .await
            .is_err()
    }
}

fn token(hit: &Hit) -> Option<&str> {
    hit.headers
        .get("x-a2a-notification-token")
        .and_then(|v| v.to_str().ok())
}

/// POSTs a JSON-RPC request; `v1` adds `A2A-Version: 1.0`. Returns the response's A2A-Version
/// header and body.
async fn rpc(url: &str, v1: bool, method: &str, params: Value) -> (Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .json(&json!({"jsonrpc": "2.0", "id": "req-1", "method": method, "params": params}));
    if v1 {
        req = req.header("A2A-Version", "1.0");
    }
    let resp = req.send().await.expect("agent answers");
    assert_eq!(resp.status(), 200, "JSON-RPC always answers HTTP 200");
    let version = resp
        .headers()
        .get("a2a-version")
        .map(|v| v.to_str().unwrap().to_string());
    (version, resp.json().await.unwrap())
}

fn v03_message(id: &str, data: Value) -> Value {
    json!({"kind": "message", "role": "user", "messageId": id, "parts": [{"kind": "data", "data": data}]})
}

fn v10_message(id: &str, data: Value) -> Value {
    json!({"role": "ROLE_USER", "messageId": id, "parts": [{"data": data, "mediaType": "application/json"}]})
}

#[tokio::test]
async fn v03_push_delivers_the_completed_task_with_a_real_result() {
    let agents = start_agents(&["--role", "researcher", "--delay-ms", "300"]).await;
    let hooks = start_receiver(0).await;
    let params = json!({
        "message": v03_message("m-v03-1", json!({"topic": "fsync latency and group commit", "parameters": {"depth": 2, "sources": 3}})),
        "configuration": {"pushNotificationConfig": {"url": format!("{}/v03", hooks.base), "token": "tok-03"}}
    });
    let (version, resp) = rpc(&agents.base, false, "message/send", params.clone()).await;
    assert_eq!(version, None, "v0.3 answers carry no version header");
    let task = &resp["result"];
    assert_eq!(task["kind"], "task");
    let state = task["status"]["state"].as_str().unwrap();
    assert!(state == "submitted" || state == "working", "{state}");
    let task_id = task["id"].as_str().unwrap().to_string();

    let hit = hooks.next().await;
    assert_eq!(hit.path, "v03");
    assert_eq!(token(&hit), Some("tok-03"));
    let pushed = &hit.body;
    assert_eq!(pushed["kind"], "task");
    assert_eq!(pushed["id"], task_id.as_str());
    assert_eq!(pushed["status"]["state"], "completed");
    assert!(
        pushed.get("history").is_none(),
        "pushes leave the history out"
    );
    let result = &pushed["artifacts"][0]["parts"][0];
    assert_eq!(result["kind"], "data");
    let data = &result["data"];
    assert_eq!(data["topic"], "fsync latency and group commit");
    assert_eq!(data["sources"].as_array().unwrap().len(), 3);
    assert_eq!(data["passages"].as_array().unwrap().len(), 6);
    let first = data["sources"][0]["source"].as_str().unwrap();
    assert!(
        first == "group-commit.md" || first == "storage-fsync-latency.md",
        "{first}"
    );
    assert!(
        data["passages"][0]["text"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("fsync")
    );

    // tasks/get agrees.
    let (_, got) = rpc(&agents.base, false, "tasks/get", json!({"id": task_id})).await;
    assert_eq!(got["result"]["status"]["state"], "completed");
    assert_eq!(got["result"]["artifacts"][0]["parts"][0]["data"], *data);

    // The same messageId again: the same task, no second run, no second push.
    let (_, again) = rpc(&agents.base, false, "message/send", params).await;
    assert_eq!(again["result"]["id"], task_id.as_str());
    assert_eq!(again["result"]["status"]["state"], "completed");
    assert!(hooks.nothing_within(Duration::from_millis(700)).await);

    // Re-registering the same push config (as a host does after message/send) does not push
    // again; a new config on a finished task gets the final state at once.
    let push = json!({"url": format!("{}/v03", hooks.base), "token": "tok-03"});
    let (_, set) = rpc(
        &agents.base,
        false,
        "tasks/pushNotificationConfig/set",
        json!({"taskId": task_id, "pushNotificationConfig": push}),
    )
    .await;
    assert_eq!(set["result"]["taskId"], task_id.as_str());
    assert_eq!(set["result"]["pushNotificationConfig"]["token"], "tok-03");
    assert!(hooks.nothing_within(Duration::from_millis(500)).await);
    let late = json!({"url": format!("{}/v03-late", hooks.base), "token": "tok-late"});
    rpc(
        &agents.base,
        false,
        "tasks/pushNotificationConfig/set",
        json!({"taskId": task_id, "pushNotificationConfig": late}),
    )
    .await;
    let hit = hooks.next().await;
    assert_eq!(hit.path, "v03-late");
    assert_eq!(token(&hit), Some("tok-late"));
    assert_eq!(hit.body["status"]["state"], "completed");

    // Cancelling a finished task is refused.
    let (_, cancel) = rpc(&agents.base, false, "tasks/cancel", json!({"id": task_id})).await;
    assert_eq!(cancel["error"]["code"], -32002);
}

#[tokio::test]
async fn v10_push_delivers_a_stream_response_with_the_completed_task() {
    let agents = start_agents(&["--role", "all", "--delay-ms", "200"]).await;
    let hooks = start_receiver(0).await;
    let researcher = format!("{}/researcher", agents.base);
    let analyst = format!("{}/analyst", agents.base);
    let writer = format!("{}/writer", agents.base);

    // Blocking v1.0 call to the researcher: the answer holds the completed task.
    let (version, resp) = rpc(
        &researcher,
        true,
        "SendMessage",
        json!({"message": v10_message("m-v10-r", json!({"topic": "WebAssembly sandbox memory limits", "parameters": {"word_limit": 350}}))}),
    )
    .await;
    assert_eq!(version.as_deref(), Some("1.0"));
    let task = &resp["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED");
    assert!(task.get("kind").is_none());
    let research = task["artifacts"][0]["parts"][0]["data"].clone();
    assert_eq!(
        research["sources"][0]["source"],
        "webassembly-sandboxing.md"
    );

    // Analyst with a push config: answers at once, pushes {"task": ...} later.
    let (_, resp) = rpc(
        &analyst,
        true,
        "SendMessage",
        json!({
            "message": v10_message("m-v10-a", json!({"research": research})),
            "configuration": {"taskPushNotificationConfig": {"url": format!("{}/v10", hooks.base), "token": "tok-10"}}
        }),
    )
    .await;
    let task = &resp["result"]["task"];
    let state = task["status"]["state"].as_str().unwrap();
    assert!(
        state == "TASK_STATE_SUBMITTED" || state == "TASK_STATE_WORKING",
        "{state}"
    );
    let hit = hooks.next().await;
    assert_eq!(token(&hit), Some("tok-10"));
    assert_eq!(
        hit.headers.get("a2a-version").map(|v| v.to_str().unwrap()),
        Some("1.0")
    );
    let pushed = &hit.body["task"];
    assert_eq!(pushed["id"], task["id"]);
    assert_eq!(pushed["status"]["state"], "TASK_STATE_COMPLETED");
    assert_eq!(pushed["status"]["message"]["role"], "ROLE_AGENT");
    let part = &pushed["artifacts"][0]["parts"][0];
    assert_eq!(part["mediaType"], "application/json");
    let analysis = part["data"].clone();
    assert!(!analysis["findings"].as_array().unwrap().is_empty());
    assert!(!analysis["figures"].as_array().unwrap().is_empty());
    assert_eq!(analysis["parameters"]["word_limit"], 350);

    // Writer: returnImmediately, then CreateTaskPushNotificationConfig.
    let (_, resp) = rpc(
        &writer,
        true,
        "SendMessage",
        json!({
            "message": v10_message("m-v10-w", json!({"topic": "WebAssembly sandbox memory limits", "analysis": analysis})),
            "configuration": {"returnImmediately": true}
        }),
    )
    .await;
    let writer_task = resp["result"]["task"]["id"].as_str().unwrap().to_string();
    let (_, created) = rpc(
        &writer,
        true,
        "CreateTaskPushNotificationConfig",
        json!({"taskId": writer_task, "url": format!("{}/v10-writer", hooks.base), "token": "tok-w"}),
    )
    .await;
    assert_eq!(created["result"]["taskId"], writer_task.as_str());
    assert_eq!(
        created["result"]["url"],
        format!("{}/v10-writer", hooks.base)
    );
    assert!(created["result"]["id"].is_string());
    let hit = hooks.next().await;
    assert_eq!(hit.path, "v10-writer");
    assert_eq!(token(&hit), Some("tok-w"));
    let report = &hit.body["task"]["artifacts"][0]["parts"][0]["data"];
    let md = report["report_markdown"].as_str().unwrap();
    assert!(md.starts_with("# Research report: WebAssembly sandbox memory limits"));
    assert!(md.contains("[1]") && md.contains("## References"));
    let citations = report["citations"].as_array().unwrap();
    assert!(!citations.is_empty());
    for c in citations {
        let source = c["source"].as_str().unwrap();
        assert!(
            research["sources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["source"] == source),
            "cited {source} was not researched"
        );
        assert!(md.contains(&format!("[{}] {}", c["n"], c["title"].as_str().unwrap())));
    }
    assert!(report["word_count"].as_u64().unwrap() <= 350);
    let markdown_part = &hit.body["task"]["artifacts"][0]["parts"][1];
    assert_eq!(markdown_part["mediaType"], "text/markdown");
    assert_eq!(markdown_part["text"], md);

    // GetTask in v1.0 shape.
    let (_, got) = rpc(
        &writer,
        true,
        "GetTask",
        json!({"id": writer_task, "historyLength": 0}),
    )
    .await;
    assert_eq!(got["result"]["status"]["state"], "TASK_STATE_COMPLETED");
    assert!(got["result"].get("history").is_none());

    // The agent card names the role and its base URL.
    let card: Value = reqwest::get(format!("{writer}/.well-known/agent-card.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["url"], writer.as_str());
    assert_eq!(card["skills"][0]["id"], "writer");
}

#[tokio::test]
async fn simple_form_calls_back_with_success_and_failure() {
    let agents = start_agents(&["--role", "researcher"]).await;
    // The first delivery attempt fails: the callback is retried.
    let hooks = start_receiver(1).await;
    let http = reqwest::Client::new();
    let submit = |task_id: &str, topic: &str| {
        http.post(format!("{}/researcher/tasks", agents.base))
            .header("Idempotency-Key", task_id)
            .json(&json!({
                "task_id": task_id,
                "callback_url": format!("{}/{task_id}", hooks.base),
                "token": format!("cb-{task_id}"),
                "input": {"topic": topic, "parameters": {"sources": 2, "depth": 1}}
            }))
            .send()
    };
    let resp = submit("t-ok", "retry policies with backoff").await.unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "accepted");
    let hit = hooks.next().await;
    assert_eq!(hit.path, "t-ok");
    assert_eq!(hit.body["token"], "cb-t-ok");
    assert_eq!(hit.body["status"], "SUCCESS");
    assert_eq!(
        hit.body["result"]["sources"][0]["source"],
        "retry-policies.md"
    );
    assert_eq!(hit.body["result"]["passages"].as_array().unwrap().len(), 2);

    // A repeat does no new work but delivers the final state again.
    let resp = submit("t-ok", "retry policies with backoff").await.unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["duplicate"], true);
    assert_eq!(body["status"], "completed");
    assert_eq!(hooks.next().await.body["status"], "SUCCESS");

    // Nothing in the corpus matches: FAILURE with the reason.
    submit("t-fail", "zzyzx qwxv").await.unwrap();
    let hit = hooks.next().await;
    assert_eq!(hit.body["status"], "FAILURE");
    assert!(
        hit.body["result"]["error"]
            .as_str()
            .unwrap()
            .contains("no document")
    );

    // Bad input is refused synchronously.
    let resp = http
        .post(format!("{}/tasks", agents.base))
        .json(&json!({"task_id": "t-bad", "callback_url": "http://127.0.0.1:9/x", "token": "t", "input": {"nope": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let status: Value = reqwest::get(format!("{}/tasks/t-ok", agents.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "completed");
}

#[tokio::test]
async fn cancel_stops_a_running_task_and_pushes_the_canceled_state() {
    let agents = start_agents(&["--role", "writer", "--delay-ms", "30000"]).await;
    let hooks = start_receiver(0).await;
    let (_, resp) = rpc(
        &agents.base,
        true,
        "SendMessage",
        json!({
            "message": v10_message("m-cancel", json!({"topic": "x", "findings": [{"text": "Fsync takes 2 ms.", "source": "a.md"}]})),
            "configuration": {"taskPushNotificationConfig": {"url": format!("{}/c", hooks.base), "token": "tc"}}
        }),
    )
    .await;
    let id = resp["result"]["task"]["id"].as_str().unwrap().to_string();
    // A follow-up message naming the unfinished task returns it.
    let mut follow_up = v10_message("m-follow", json!({"topic": "x"}));
    follow_up["taskId"] = json!(id);
    let (_, same) = rpc(
        &agents.base,
        true,
        "SendMessage",
        json!({"message": follow_up.clone(), "configuration": {"returnImmediately": true}}),
    )
    .await;
    assert_eq!(same["result"]["task"]["id"], id.as_str());
    // Still unfinished: whether the worker has picked it up yet depends on scheduling.
    let state = same["result"]["task"]["status"]["state"]
        .as_str()
        .unwrap_or_default();
    assert!(
        matches!(state, "TASK_STATE_SUBMITTED" | "TASK_STATE_WORKING"),
        "the follow-up should return the unfinished task, got {state}"
    );
    let (_, canceled) = rpc(&agents.base, true, "CancelTask", json!({"id": id})).await;
    assert_eq!(canceled["result"]["status"]["state"], "TASK_STATE_CANCELED");
    let hit = hooks.next().await;
    assert_eq!(hit.body["task"]["status"]["state"], "TASK_STATE_CANCELED");
    assert!(hit.body["task"].get("artifacts").is_none());
    // A finished task accepts no further messages.
    follow_up["messageId"] = json!("m-follow-2");
    let (_, refused) = rpc(
        &agents.base,
        true,
        "SendMessage",
        json!({"message": follow_up}),
    )
    .await;
    assert_eq!(refused["error"]["code"], -32004);
}

#[tokio::test]
async fn protocol_errors_use_the_standard_codes() {
    let agents = start_agents(&["--role", "analyst"]).await;
    let http = reqwest::Client::new();
    let raw = |body: &'static str| {
        http.post(&agents.base)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let code = |v: Value| v["error"]["code"].as_i64().unwrap();

    let parse: Value = raw("{not json").await.unwrap().json().await.unwrap();
    assert_eq!(code(parse.clone()), -32700);
    assert_eq!(parse["id"], Value::Null);
    let invalid: Value = raw(r#"{"jsonrpc":"1.0","id":3,"method":"tasks/get"}"#)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(invalid.clone()), -32600);
    assert_eq!(invalid["id"], 3);

    let (_, r) = rpc(&agents.base, false, "tasks/explode", json!({})).await;
    assert_eq!(code(r), -32601);
    // The analyst cannot work on a bare topic.
    let (_, r) = rpc(
        &agents.base,
        false,
        "message/send",
        json!({"message": {"role": "user", "messageId": "e1", "parts": [{"kind": "text", "text": "durable execution"}]}}),
    )
    .await;
    assert_eq!(code(r.clone()), -32602, "{r}");
    let (_, r) = rpc(&agents.base, false, "tasks/get", json!({"id": "missing"})).await;
    assert_eq!(code(r), -32001);
    let (v, r) = rpc(&agents.base, true, "GetTask", json!({"id": "missing"})).await;
    assert_eq!(v.as_deref(), Some("1.0"));
    assert_eq!(code(r), -32001);
    let (_, r) = rpc(&agents.base, true, "CancelTask", json!({})).await;
    assert_eq!(code(r), -32602);
    // Generation mismatches name the header to send.
    let (_, r) = rpc(&agents.base, false, "SendMessage", json!({})).await;
    assert_eq!(code(r.clone()), -32009);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("A2A-Version: 1.0")
    );
    let (_, r) = rpc(&agents.base, true, "message/send", json!({})).await;
    assert_eq!(code(r), -32009);
    // Streaming is not offered.
    let (_, r) = rpc(&agents.base, true, "SendStreamingMessage", json!({})).await;
    assert_eq!(code(r), -32004);
    // An unknown protocol version.
    let r: Value = http
        .post(&agents.base)
        .header("A2A-Version", "7.0")
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "GetTask", "params": {"id": "x"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(r.clone()), -32009);
    assert_eq!(r["id"], 9);

    // A single-role server also answers under its role prefix (with or without a trailing
    // slash), and serves its card there.
    for base in [
        format!("{}/analyst", agents.base),
        format!("{}/analyst/", agents.base),
    ] {
        let (_, r) = rpc(&base, false, "tasks/get", json!({"id": "missing"})).await;
        assert_eq!(code(r), -32001, "{base}");
    }
    let card: Value = reqwest::get(format!("{}/.well-known/agent.json", agents.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["name"], "Aegis demo analyst");
}

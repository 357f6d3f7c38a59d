//! The research pipeline's own REST shapes, as its users call them:
//! `POST /workflows`, `GET /workflows/{id}`, `POST /workflows/{id}/approval`, plus the event
//! list (`GET /v1/events?execution_id=`) and presigned links.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};

use crate::client::{Client, Reply};

/// The component name pipeline runs start.
pub const PIPELINE: &str = "research-pipeline";

/// The seven steps, in order.
pub const STEPS: [&str; 7] = [
    "init_workflow",
    "research_phase",
    "analysis_phase",
    "request_approval",
    "human_approval",
    "writing_phase",
    "finalize_workflow",
];

/// Pipeline statuses after which nothing changes any more.
pub const ENDED: &[&str] = &["COMPLETED", "REJECTED", "FAILED", "CANCELLED"];

/// Uploads the `research-pipeline` component.
///
/// # Errors
/// When the upload is refused.
pub async fn upload(client: &Client) -> Result<Value> {
    client
        .upload(PIPELINE, &crate::fixture("research_pipeline"))
        .await
}

/// `POST /workflows {"topic", "parameters"}`.
///
/// # Errors
/// When the request fails (no answer).
pub async fn start_raw(client: &Client, topic: &str, parameters: Value) -> Result<Reply> {
    client
        .post_path(
            "/workflows",
            &json!({"topic": topic, "parameters": parameters}),
        )
        .await
}

/// Starts a pipeline run; checks the documented answer (201 `{"workflow_id", "status":
/// "RUNNING", "message"}`) and returns the workflow id.
///
/// # Errors
/// When the start is refused or answered in another shape.
pub async fn start(client: &Client, topic: &str, parameters: Value) -> Result<String> {
    let reply = start_raw(client, topic, parameters).await?;
    let body = reply.expect(201, "POST /workflows")?;
    let (Some(id), Some("RUNNING"), Some(_)) = (
        body["workflow_id"].as_str(),
        body["status"].as_str(),
        body["message"].as_str(),
    ) else {
        bail!("POST /workflows answered {body}, not {{workflow_id, status: RUNNING, message}}");
    };
    Ok(id.to_string())
}

/// `GET /workflows/{id}`.
///
/// # Errors
/// Unless the answer is 200.
pub async fn view(client: &Client, id: &str) -> Result<Value> {
    client
        .get_path(&format!("/workflows/{id}"))
        .await?
        .ok(&format!("GET /workflows/{id}"))
}

/// `POST /workflows/{id}/approval {"decision", "comment"}`.
///
/// # Errors
/// When the request fails (no answer).
pub async fn decide(client: &Client, id: &str, decision: &str, comment: &str) -> Result<Reply> {
    client
        .post_path(
            &format!("/workflows/{id}/approval"),
            &json!({"decision": decision, "comment": comment}),
        )
        .await
}

/// The names in `steps_completed`, in order.
pub fn steps(view: &Value) -> Vec<String> {
    view["steps_completed"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| s["step"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `GET /workflows/{id}` every 20 ms until `done` holds for the view; returns that view
/// and every status seen on the way (consecutive repeats folded).
///
/// # Errors
/// When it does not hold within `timeout`, or a request fails. A pipeline that ended without
/// `done` holding is an error at once.
pub async fn poll_until(
    client: &Client,
    id: &str,
    timeout: Duration,
    seen: &mut Vec<String>,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = view(client, id).await?;
        let status = v["status"].as_str().unwrap_or("?").to_string();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if done(&v) {
            return Ok(v);
        }
        if ENDED.contains(&status.as_str()) {
            bail!("pipeline {id} ended {status} before the awaited state: {v}");
        }
        if Instant::now() >= deadline {
            bail!("pipeline {id} did not reach the awaited state within {timeout:?}: {v}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until the pipeline ended (COMPLETED, REJECTED, FAILED or CANCELLED).
///
/// # Errors
/// As [`poll_until`].
pub async fn wait_ended(
    client: &Client,
    id: &str,
    timeout: Duration,
    seen: &mut Vec<String>,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = view(client, id).await?;
        let status = v["status"].as_str().unwrap_or("?").to_string();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if ENDED.contains(&status.as_str()) {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("pipeline {id} did not end within {timeout:?}: {v}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every workflow event of the execution (`GET /v1/events?execution_id=`), oldest first.
///
/// # Errors
/// Unless the answers are 200 with an `events` list.
pub async fn events(client: &Client, execution_id: &str) -> Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut after = 0u64;
    loop {
        let body = client
            .get_path(&format!(
                "/v1/events?execution_id={execution_id}&after={after}&limit=1000"
            ))
            .await?
            .ok("GET /v1/events")?;
        let page = body["events"]
            .as_array()
            .with_context(|| format!("events answer without events: {body}"))?
            .clone();
        if page.is_empty() {
            return Ok(all);
        }
        after = body["next_after"]
            .as_u64()
            .with_context(|| format!("events answer without next_after: {body}"))?;
        all.extend(page);
    }
}

/// The kinds of `events`, in order.
pub fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("?"))
        .collect()
}

/// `GET url` (a presigned link, no key); returns the status, the content type and the body.
///
/// # Errors
/// When the request fails (no answer).
pub async fn fetch(url: &str) -> Result<(u16, String, Vec<u8>)> {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.bytes().await?.to_vec();
    Ok((status, content_type, body))
}

/// `GET` a review URL: checks it serves the analysis (HTTP 200, JSON, with findings); returns
/// the content type and the analysis.
///
/// # Errors
/// When the request fails or the answer is not such an analysis.
pub async fn review_analysis(url: &str) -> Result<(String, Value)> {
    let (status, content_type, body) = fetch(url).await?;
    ensure!(
        status == 200,
        "GET the review URL: HTTP {status}, {content_type}"
    );
    let analysis: Value = serde_json::from_slice(&body).context("the analysis is JSON")?;
    ensure!(
        analysis["findings"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "the analysis under review has no findings: {analysis}"
    );
    Ok((content_type, analysis))
}

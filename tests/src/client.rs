//! A small REST client for the Aegis API, with exactly the calls a client service makes.
//!
//! Methods named `*_raw` (and the callback calls) return the [`Reply`] whatever its status, for
//! tests that check error answers; the others fail unless the call succeeded.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

/// Execution statuses after which nothing changes any more.
pub const TERMINAL: &[&str] = &["SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"];

/// A client for one host.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// An HTTP answer: its status and JSON body (`Null` when empty, a string when not JSON). Error
/// answers have the body `{"error": {"code", "message"}}`.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// `error.code` of an error body.
    pub fn error_code(&self) -> Option<&str> {
        self.body.pointer("/error/code").and_then(Value::as_str)
    }

    /// `error.message` of an error body.
    pub fn error_message(&self) -> Option<&str> {
        self.body.pointer("/error/message").and_then(Value::as_str)
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Fails unless the status is 2xx; returns the body.
    ///
    /// # Errors
    /// With the status and body, when the status is not 2xx.
    pub fn ok(self, what: &str) -> Result<Value> {
        if self.is_success() {
            Ok(self.body)
        } else {
            bail!("{what}: HTTP {} {}", self.status, self.body)
        }
    }

    /// Checks that this is an error answer with `status` and `code`.
    ///
    /// # Panics
    /// When it is not.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.error_code()),
            (status, Some(code)),
            "expected HTTP {status} with error code {code}, got HTTP {} {}",
            self.status,
            self.body
        );
        assert!(
            self.error_message().is_some(),
            "an error body has a message: {}",
            self.body
        );
    }
}

impl Client {
    /// A client for the host at `base` (e.g. `http://127.0.0.1:40123`).
    pub fn new(base: &str) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
            .build()
            .expect("building the HTTP client");
        Client {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn reply(resp: reqwest::Response) -> Result<Reply> {
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.context("reading the body")?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Reply { status, body })
    }

    async fn get_json(&self, path: &str) -> Result<Reply> {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        Self::reply(resp).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<Reply> {
        let resp = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Self::reply(resp).await
    }

    /// `GET /healthz`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn healthz(&self) -> Result<Reply> {
        self.get_json("/healthz").await
    }

    /// `POST /v1/components/{name}` with raw bytes.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn upload_bytes(&self, name: &str, bytes: Vec<u8>) -> Result<Reply> {
        let path = format!("/v1/components/{name}");
        let resp = self
            .http
            .post(self.url(&path))
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Self::reply(resp).await
    }

    /// Uploads the component at `file` as workflow `name`; returns the upload's body.
    ///
    /// # Errors
    /// When the file cannot be read or the upload is refused.
    pub async fn upload(&self, name: &str, file: &Path) -> Result<Value> {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        self.upload_bytes(name, bytes)
            .await?
            .ok(&format!("uploading {name}"))
    }

    /// Uploads the fixture `name` as workflow `name`.
    ///
    /// # Errors
    /// As [`Client::upload`].
    pub async fn upload_fixture(&self, name: &str) -> Result<Value> {
        self.upload(name, &crate::fixture(name)).await
    }

    /// `POST /v1/executions` with any body.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn start_raw(&self, body: &Value) -> Result<Reply> {
        self.post_json("/v1/executions", body).await
    }

    /// Starts `workflow` on `input`; returns the execution id.
    ///
    /// # Errors
    /// When the start is refused.
    pub async fn start(&self, workflow: &str, input: Value) -> Result<String> {
        let body = self
            .start_raw(&json!({ "workflow": workflow, "input": input }))
            .await?
            .ok(&format!("starting {workflow}"))?;
        match body.get("execution_id").and_then(Value::as_str) {
            Some(id) => Ok(id.to_string()),
            None => bail!("start answer without execution_id: {body}"),
        }
    }

    /// `GET /v1/executions/{id}`, with `?wait_ms=` when given.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn get_raw(&self, id: &str, wait_ms: Option<u64>) -> Result<Reply> {
        match wait_ms {
            Some(ms) => {
                self.get_json(&format!("/v1/executions/{id}?wait_ms={ms}"))
                    .await
            }
            None => self.get_json(&format!("/v1/executions/{id}")).await,
        }
    }

    /// The execution `id`.
    ///
    /// # Errors
    /// Unless the answer is 200.
    pub async fn get(&self, id: &str) -> Result<Value> {
        self.get_raw(id, None)
            .await?
            .ok(&format!("getting execution {id}"))
    }

    /// Long-polls the execution until its status is terminal; returns it.
    ///
    /// # Errors
    /// When it is still running after `timeout`, or a request fails.
    pub async fn wait_done(&self, id: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait_ms = left.as_millis().clamp(1, 10_000) as u64;
            let asked = Instant::now();
            let exec = self
                .get_raw(id, Some(wait_ms))
                .await?
                .ok(&format!("waiting for execution {id}"))?;
            let status = exec.get("status").and_then(Value::as_str).unwrap_or("");
            if TERMINAL.contains(&status) {
                return Ok(exec);
            }
            if Instant::now() >= deadline {
                bail!("execution {id} still {status} after {timeout:?}: {exec}");
            }
            // A host that answers before wait_ms is up must not be hammered.
            if asked.elapsed() < Duration::from_millis(50) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Waits for the execution and checks that it SUCCEEDED; returns its result.
    ///
    /// # Errors
    /// When it ends otherwise or does not end in time.
    pub async fn result(&self, id: &str, timeout: Duration) -> Result<Value> {
        let exec = self.wait_done(id, timeout).await?;
        if exec["status"] != "SUCCEEDED" {
            bail!("execution {id} did not succeed: {exec}");
        }
        Ok(exec["result"].clone())
    }

    /// The history events of the execution.
    ///
    /// # Errors
    /// Unless the answer is 200 with an `events` list.
    pub async fn history(&self, id: &str) -> Result<Vec<Value>> {
        let body = self
            .get_json(&format!("/v1/executions/{id}/history"))
            .await?
            .ok(&format!("history of {id}"))?;
        match body.get("events").and_then(Value::as_array) {
            Some(events) => Ok(events.clone()),
            None => bail!("history without events: {body}"),
        }
    }

    /// Polls the execution until a pending callback named `name` appears; returns its id.
    ///
    /// # Errors
    /// When none appears within `timeout`, or the execution ends first.
    pub async fn pending_callback(
        &self,
        id: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let exec = self.get(id).await?;
            let pending = exec
                .get("pending_callbacks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(cb) = pending
                .iter()
                .find(|cb| cb.get("name").and_then(Value::as_str) == Some(name))
            {
                match cb.get("callback_id").and_then(Value::as_str) {
                    Some(cb_id) => return Ok(cb_id.to_string()),
                    None => bail!("pending callback without callback_id: {cb}"),
                }
            }
            let status = exec.get("status").and_then(Value::as_str).unwrap_or("");
            if TERMINAL.contains(&status) {
                bail!("execution {id} ended ({status}) with no pending callback `{name}`: {exec}");
            }
            if Instant::now() >= deadline {
                bail!("no pending callback `{name}` on {id} after {timeout:?}: {exec}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `POST /v1/callbacks/{id}/succeed` with `result`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn callback_succeed(&self, callback_id: &str, result: &Value) -> Result<Reply> {
        self.post_json(&format!("/v1/callbacks/{callback_id}/succeed"), result)
            .await
    }

    /// `POST /v1/callbacks/{id}/fail`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn callback_fail(
        &self,
        callback_id: &str,
        error_type: &str,
        error_message: &str,
    ) -> Result<Reply> {
        let body = json!({ "error_type": error_type, "error_message": error_message });
        self.post_json(&format!("/v1/callbacks/{callback_id}/fail"), &body)
            .await
    }

    /// `POST /v1/callbacks/{id}/heartbeat`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn callback_heartbeat(&self, callback_id: &str) -> Result<Reply> {
        let path = format!("/v1/callbacks/{callback_id}/heartbeat");
        let resp = self
            .http
            .post(self.url(&path))
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Self::reply(resp).await
    }

    /// `GET` on any URL (e.g. an artifact's presigned URL); returns status and bytes.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn fetch(&self, url: &str) -> Result<(u16, Vec<u8>)> {
        // A relative URL is taken against the host.
        let url = if url.starts_with('/') {
            self.url(url)
        } else {
            url.to_string()
        };
        let url = url.as_str();
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status().as_u16();
        Ok((status, resp.bytes().await?.to_vec()))
    }
}

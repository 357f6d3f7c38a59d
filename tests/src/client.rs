//! A small REST client for the Aegis API, with exactly the calls a client service makes.
//!
//! Methods named `*_raw` (and the callback calls, the admin calls and the other route helpers
//! that return a [`Reply`]) return the answer whatever its status, for tests that check error
//! answers; the others fail unless the call succeeded.
//!
//! A client may carry an API key ([`Client::with_key`]): every request then sends
//! `Authorization: Bearer <key>`. Without one (open mode), no header is sent.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// Execution statuses after which nothing changes any more.
pub const TERMINAL: &[&str] = &["SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"];

/// A client for one host.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    key: Option<String>,
}

/// An HTTP answer: its status and JSON body (`Null` when empty, a string when not JSON). Error
/// answers have the body `{"error": {"code", "message", "doc"}}`.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body exactly as received.
    pub raw: Vec<u8>,
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

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The raw body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// Whether this is a well-formed JSON error answer: `Content-Type: application/json` and a
    /// body `{"error": {"code": string, "message": string, "doc": string}}` and nothing else,
    /// where `doc` is the code's entry in `docs/errors/api.md`.
    pub fn is_json_error(&self) -> bool {
        let json = self
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"));
        let doc = self.error_code().map(|c| format!("docs/errors/api.md#{c}"));
        let shape = self.body.as_object().is_some_and(|o| o.len() == 1)
            && self.body["error"].as_object().is_some_and(|e| e.len() == 3)
            && self.error_code().is_some_and(|c| !c.is_empty())
            && self.error_message().is_some_and(|m| !m.is_empty())
            && self.body["error"]["doc"].as_str() == doc.as_deref();
        json && shape
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

    /// Like [`Reply::assert_error`], as an error instead of a panic, and also checking the
    /// whole error shape ([`Reply::is_json_error`]).
    ///
    /// # Errors
    /// When the answer is not that error.
    pub fn expect_error(&self, status: u16, code: &str) -> Result<()> {
        if self.status != status || self.error_code() != Some(code) || !self.is_json_error() {
            bail!(
                "expected HTTP {status} with error code {code}, got HTTP {} {} (content-type {:?})",
                self.status,
                self.text(),
                self.header("content-type")
            );
        }
        Ok(())
    }

    /// Like [`Reply::expect_error`], with any of `codes`.
    ///
    /// # Errors
    /// When the answer is not one of those errors.
    pub fn expect_error_in(&self, status: u16, codes: &[&str]) -> Result<()> {
        let code_ok = self.error_code().is_some_and(|c| codes.contains(&c));
        if self.status != status || !code_ok || !self.is_json_error() {
            bail!(
                "expected HTTP {status} with an error code in {codes:?}, got HTTP {} {} \
                 (content-type {:?})",
                self.status,
                self.text(),
                self.header("content-type")
            );
        }
        Ok(())
    }

    /// Checks this is the answer to a JSON body of the wrong shape (a wrong type, a missing or
    /// unknown field): 400 `invalid_request`, as the body does not match the API's schema.
    ///
    /// # Errors
    /// When it is not.
    pub fn expect_bad_body(&self) -> Result<()> {
        self.expect_error(400, "invalid_request")
    }

    /// Fails unless the status is exactly `status`; returns the body.
    ///
    /// # Errors
    /// With the status and body, otherwise.
    pub fn expect(self, status: u16, what: &str) -> Result<Value> {
        if self.status == status {
            Ok(self.body)
        } else {
            bail!(
                "{what}: expected HTTP {status}, got HTTP {} {}",
                self.status,
                self.text()
            )
        }
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
            key: None,
        }
    }

    /// The same client, but every request on a new connection: for tests that send bodies the
    /// host may refuse without reading (an oversized body makes it close the connection, and a
    /// pooled connection could then be reused just as it closes).
    pub fn unpooled(&self) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(0)
            .build()
            .expect("building the HTTP client");
        Client {
            http,
            ..self.clone()
        }
    }

    /// The same client, sending `Authorization: Bearer <key>` on every request.
    pub fn with_key(&self, key: &str) -> Client {
        Client {
            key: Some(key.to_string()),
            ..self.clone()
        }
    }

    /// The same client without a key.
    pub fn without_key(&self) -> Client {
        Client {
            key: None,
            ..self.clone()
        }
    }

    /// The key this client sends, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Reads a response into a [`Reply`] (the body as JSON when it is JSON, else as text).
    pub(crate) async fn reply(resp: reqwest::Response) -> Result<Reply> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.context("reading the body")?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Reply {
            status,
            body,
            headers,
            raw: bytes.to_vec(),
        })
    }

    /// A request to `path` on this host, with the client's key.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match &self.key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// Sends any request: `method` on `path`, with `body` as raw bytes under `content_type`
    /// when given. Returns the answer whatever its status.
    ///
    /// # Errors
    /// When the request fails (no answer).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<Reply> {
        let mut req = self.request(method.clone(), path);
        if let Some((bytes, content_type)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        Self::reply(resp).await
    }

    /// Sends raw bytes as a JSON body (`Content-Type: application/json`), whatever they are.
    ///
    /// # Errors
    /// When the request fails (no answer).
    pub async fn send_json_bytes(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Reply> {
        self.send(method, path, Some((body, "application/json")))
            .await
    }

    /// `GET path`.
    ///
    /// # Errors
    /// When the request fails (no answer).
    pub async fn get_path(&self, path: &str) -> Result<Reply> {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    /// When the request fails (no answer).
    pub async fn post_path(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send_json_bytes(Method::POST, path, serde_json::to_vec(body)?)
            .await
    }

    /// `PUT path` with a JSON body.
    ///
    /// # Errors
    /// When the request fails (no answer).
    pub async fn put_path(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send_json_bytes(Method::PUT, path, serde_json::to_vec(body)?)
            .await
    }

    /// `DELETE path`.
    ///
    /// # Errors
    /// When the request fails (no answer).
    pub async fn delete_path(&self, path: &str) -> Result<Reply> {
        self.send(Method::DELETE, path, None).await
    }

    async fn get_json(&self, path: &str) -> Result<Reply> {
        self.get_path(path).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<Reply> {
        self.post_path(path, body).await
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
        self.send(Method::POST, &path, Some((bytes, "application/wasm")))
            .await
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

    /// The history once the execution has suspended or ended: its last event is
    /// `InvocationCompleted`. A history read while an activation still commits can grow by the
    /// activation's remaining events, so a test comparing histories takes its baseline here.
    ///
    /// # Errors
    /// When the execution does not settle within `timeout`.
    pub async fn settled_history(&self, id: &str, timeout: Duration) -> Result<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let history = self.history(id).await?;
            if history
                .last()
                .is_some_and(|e| e["EventType"] == "InvocationCompleted")
            {
                return Ok(history);
            }
            if Instant::now() >= deadline {
                bail!("execution {id} did not settle within {timeout:?}: {history:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
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
        self.send(Method::POST, &path, None).await
    }

    /// `GET /v1/executions/{id}/history?after=&limit=` (each only when given).
    ///
    /// # Errors
    /// When the request fails.
    pub async fn history_page(
        &self,
        id: &str,
        after: Option<u64>,
        limit: Option<u64>,
    ) -> Result<Reply> {
        let mut query = Vec::new();
        if let Some(after) = after {
            query.push(format!("after={after}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        self.get_path(&format!("/v1/executions/{id}/history{query}"))
            .await
    }

    /// `GET /v1/executions?{query}` (`query` already encoded, may be empty).
    ///
    /// # Errors
    /// When the request fails.
    pub async fn list_executions(&self, query: &str) -> Result<Reply> {
        if query.is_empty() {
            self.get_path("/v1/executions").await
        } else {
            self.get_path(&format!("/v1/executions?{query}")).await
        }
    }

    /// Every execution the list shows for `query`, following `next_cursor` with pages of
    /// `limit`; fails on a page that is not 200 or a list that does not end within 1000 pages.
    ///
    /// # Errors
    /// As described.
    pub async fn list_all_executions(&self, query: &str, limit: u32) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let mut q = format!("limit={limit}");
            if !query.is_empty() {
                q = format!("{query}&{q}");
            }
            if let Some(c) = &cursor {
                q = format!("{q}&cursor={c}");
            }
            let page = self.list_executions(&q).await?.expect(200, "list page")?;
            let Some(items) = page["executions"].as_array() else {
                bail!("a list page without executions: {page}");
            };
            all.extend(items.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return Ok(all),
            }
        }
        bail!("the list did not end within 1000 pages")
    }

    /// `POST /v1/executions/{id}/stop`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn stop(&self, id: &str) -> Result<Reply> {
        self.send(Method::POST, &format!("/v1/executions/{id}/stop"), None)
            .await
    }

    /// `GET /v1/tenant`: who the key belongs to, and its quotas.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn whoami(&self) -> Result<Reply> {
        self.get_path("/v1/tenant").await
    }

    /// `GET /v1/components`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn components(&self) -> Result<Reply> {
        self.get_path("/v1/components").await
    }

    /// `GET /v1/components/{name}`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn component_versions(&self, name: &str) -> Result<Reply> {
        self.get_path(&format!("/v1/components/{name}")).await
    }

    /// `GET /v1/components/{name}/versions/{version}`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn component_version(&self, name: &str, version: &str) -> Result<Reply> {
        self.get_path(&format!("/v1/components/{name}/versions/{version}"))
            .await
    }

    /// `DELETE /v1/components/{name}/versions/{version}`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn delete_component(&self, name: &str, version: &str) -> Result<Reply> {
        self.delete_path(&format!("/v1/components/{name}/versions/{version}"))
            .await
    }

    /// `POST /v1/admin/tenants` (needs the admin key).
    ///
    /// # Errors
    /// When the request fails.
    pub async fn create_tenant_raw(&self, body: &Value) -> Result<Reply> {
        self.post_path("/v1/admin/tenants", body).await
    }

    /// Creates a tenant named `name` with quota overrides `quotas` (needs the admin key);
    /// returns the answer's body (with `tenant_id`, `api_key` and `key_id`).
    ///
    /// # Errors
    /// Unless the answer is 201 with those fields.
    pub async fn create_tenant(&self, name: &str, quotas: Value) -> Result<Value> {
        let body = self
            .create_tenant_raw(&json!({"name": name, "quotas": quotas}))
            .await?
            .expect(201, &format!("creating tenant {name}"))?;
        for field in ["tenant_id", "api_key", "key_id"] {
            if !body[field].is_string() {
                bail!("the new tenant has no {field}: {body}");
            }
        }
        Ok(body)
    }

    /// `GET /v1/admin/tenants`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn tenants(&self) -> Result<Reply> {
        self.get_path("/v1/admin/tenants").await
    }

    /// `GET /v1/admin/tenants/{id}`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn tenant(&self, id: &str) -> Result<Reply> {
        self.get_path(&format!("/v1/admin/tenants/{id}")).await
    }

    /// `PUT /v1/admin/tenants/{id}/quotas` with `overrides`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn set_quotas(&self, id: &str, overrides: &Value) -> Result<Reply> {
        self.put_path(&format!("/v1/admin/tenants/{id}/quotas"), overrides)
            .await
    }

    /// `POST /v1/admin/tenants/{id}/keys`: a new key.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn add_key(&self, id: &str) -> Result<Reply> {
        self.send(Method::POST, &format!("/v1/admin/tenants/{id}/keys"), None)
            .await
    }

    /// `GET /v1/admin/tenants/{id}/keys`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn keys(&self, id: &str) -> Result<Reply> {
        self.get_path(&format!("/v1/admin/tenants/{id}/keys")).await
    }

    /// `DELETE /v1/admin/tenants/{id}/keys/{key_id}`: revokes the key.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn revoke_key(&self, id: &str, key_id: &str) -> Result<Reply> {
        self.delete_path(&format!("/v1/admin/tenants/{id}/keys/{key_id}"))
            .await
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

    /// `GET` on any URL without a key (a presigned link is its own credential); returns the
    /// whole [`Reply`].
    ///
    /// # Errors
    /// When the request fails.
    pub async fn fetch_reply(&self, url: &str) -> Result<Reply> {
        let url = if url.starts_with('/') {
            self.url(url)
        } else {
            url.to_string()
        };
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        Self::reply(resp).await
    }
}

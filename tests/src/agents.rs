//! Agents for the end-to-end tests, all real processes or real HTTP servers:
//!
//! - [`DemoAgents`]: the shipped `aegis-agents --role all` binary (researcher, analyst, writer over
//!   A2A), optionally slowed down with `--delay-ms`;
//! - [`PythonAgent`]: `tests/interop/a2a_agent.py`, a tiny A2A v1.0 agent written with the
//!   official Python SDK (`a2a-sdk`), started with `python3`;
//! - [`SimpleAgent`]: an HTTP server in the test process that speaks the host's "simple" agent
//!   protocol: it records every dispatched `{task_id, callback_url, token, input}` and answers
//!   202, so that the test decides when, how and how often to answer;
//! - [`WebhookReceiver`]: an HTTP server that records every webhook post, headers and raw body;
//! - [`AgentsConfig`]: a TOML configuration file with an `[agents.NAME]` table per agent, for
//!   `aegis serve --config`.
//!
//! Processes are started on port 0 and waited for by their `listening on` line (never a sleep);
//! their stderr goes to a log file whose tail [`DemoAgents::log_tail`] and
//! [`PythonAgent::log_tail`] return. Dropping a handle kills its process.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::Notify;

use crate::client::Reply;

/// How long a process may take to print its `listening on` line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A child process with its stderr in a log file; killed on drop.
pub(crate) struct Process {
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl Process {
    /// Spawns `cmd` and waits for a stdout line containing `marker` (at its start for our own
    /// processes; after a timestamp for servers that log with `tracing`); returns the rest of
    /// the line after it.
    pub(crate) async fn spawn(
        mut cmd: Command,
        what: &str,
        marker: &str,
    ) -> Result<(Process, String)> {
        let dir = tempfile::Builder::new()
            .prefix("aegis-e2e-agent-")
            .tempdir()
            .context("creating the agent's temp dir")?;
        let log = dir.path().join("stderr.log");
        let file = std::fs::File::create(&log).context("creating the agent log")?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file));
        // As for the host: a test process killed without unwinding must not leave agents behind.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: prctl(2) is async-signal-safe, as a pre_exec hook requires.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().with_context(|| format!("spawning {what}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let wanted = marker.to_string();
        std::thread::Builder::new()
            .name(format!("{what}-stdout"))
            .spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(at) = line.find(&wanted)
                        && let Some(tx) = tx.take()
                    {
                        let rest = &line[at + wanted.len()..];
                        let _ = tx.send(rest.trim().trim_end_matches('/').to_string());
                    }
                }
            })
            .context("spawning the stdout reader")?;
        let mut process = Process {
            child,
            log,
            _dir: dir,
        };
        match tokio::time::timeout(READY_TIMEOUT, rx).await {
            Ok(Ok(url)) => Ok((process, url)),
            _ => {
                let _ = process.child.kill();
                let _ = process.child.wait();
                bail!(
                    "{what} printed no `{marker}…` line within {READY_TIMEOUT:?} (or exited); \
                     its log:\n{}",
                    read_tail(&process.log, 40)
                )
            }
        }
    }
}

impl Process {
    /// Kills the process (SIGKILL) and reaps it; its log stays readable.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- agent log ({}), last lines ----\n{}\n---- end of agent log ----",
                self.log.display(),
                read_tail(&self.log, 40)
            );
        }
    }
}

fn read_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A binary beside the `aegis` binary the tests run (`target/<profile>/NAME`), or `$env_var`.
fn sibling_binary(name: &str, env_var: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(env_var).filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let aegis = crate::host::aegis_bin();
    aegis
        .parent()
        .expect("the aegis binary has a directory")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The demo agents (`aegis-agents --role all`): researcher, analyst, writer over A2A, keeping
/// their tasks in a state folder of their own, which outlives [`DemoAgents::restart`].
pub struct DemoAgents {
    process: Process,
    base: String,
    state: TempDir,
}

impl DemoAgents {
    /// Starts `aegis-agents --role all` on port 0, with `--delay-ms delay_ms` before each task's
    /// work when given.
    ///
    /// # Errors
    /// When the binary is missing (build it with `cargo build -p aegis-demo-agents`, or set
    /// `AEGIS_AGENTS_BIN`) or does not come up.
    pub async fn start(delay_ms: Option<u64>) -> Result<DemoAgents> {
        let state = tempfile::Builder::new()
            .prefix("aegis-e2e-agents-state-")
            .tempdir()
            .context("creating the agents' state dir")?;
        let (process, base) = Self::spawn("127.0.0.1:0", state.path(), delay_ms).await?;
        Ok(DemoAgents {
            process,
            base,
            state,
        })
    }

    /// Kills the agents (SIGKILL: nothing is flushed or handed over) and starts them again on
    /// the same address and state folder, with `delay_ms`: the tasks they had are read back.
    ///
    /// # Errors
    /// As [`DemoAgents::start`].
    pub async fn restart(&mut self, delay_ms: Option<u64>) -> Result<()> {
        self.process.kill();
        let listen = self
            .base
            .strip_prefix("http://")
            .context("the agents' base URL is http")?
            .to_string();
        let (process, base) = Self::spawn(&listen, self.state.path(), delay_ms).await?;
        ensure!(base == self.base, "restarted on {base}, not {}", self.base);
        self.process = process;
        Ok(())
    }

    async fn spawn(listen: &str, state: &Path, delay_ms: Option<u64>) -> Result<(Process, String)> {
        let bin = sibling_binary("aegis-agents", "AEGIS_AGENTS_BIN");
        if !bin.is_file() {
            bail!(
                "the demo agents binary is missing: expected {} (build it with `cargo build -p \
                 aegis-demo-agents`, or set AEGIS_AGENTS_BIN)",
                bin.display()
            );
        }
        let mut cmd = Command::new(&bin);
        cmd.args(["--role", "all", "--listen", listen])
            .arg("--state-dir")
            .arg(state);
        if let Some(ms) = delay_ms {
            cmd.args(["--delay-ms", &ms.to_string()]);
        }
        // The agents' own settings come from the flags only.
        for (name, _) in std::env::vars_os() {
            if let Some(name) = name.to_str()
                && (name.starts_with("AEGIS_") || name.starts_with("OPENAI_"))
            {
                cmd.env_remove(name);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        Process::spawn(cmd, "aegis-agents", "aegis-agents listening on ").await
    }

    /// The task records `role` keeps on disk (`{"task": {...}, "keys", "undelivered"}`).
    ///
    /// # Errors
    /// When a record cannot be read.
    pub fn tasks_on_disk(&self, role: &str) -> Result<Vec<Value>> {
        let dir = self.state.path().join(role);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut records = Vec::new();
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("task-") && name.ends_with(".json") {
                let bytes = std::fs::read(&path)?;
                records.push(
                    serde_json::from_slice(&bytes)
                        .with_context(|| format!("reading {}", path.display()))?,
                );
            }
        }
        Ok(records)
    }

    /// The base URL of `role` (`researcher`, `analyst` or `writer`).
    pub fn url(&self, role: &str) -> String {
        format!("{}/{role}", self.base)
    }

    /// The last `n` lines of the agents' log.
    pub fn log_tail(&self, n: usize) -> String {
        read_tail(&self.process.log, n)
    }
}

/// The path of the Python interop agent, `tests/interop/a2a_agent.py`.
pub fn python_agent_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/a2a_agent.py")
}

/// Whether `python3` can import the official A2A SDK's server side (`a2a-sdk[http-server]`) and
/// uvicorn; the error output when it cannot.
pub fn python_a2a_sdk() -> Result<(), String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import a2a, a2a.server.routes, uvicorn, httpx, starlette; \
             from importlib.metadata import version; print(version('a2a-sdk'))",
        ])
        .output();
    match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Err(format!("cannot run python3: {e}")),
    }
}

/// The Python A2A v1.0 agent built on the official SDK.
pub struct PythonAgent {
    process: Process,
    base: String,
}

impl PythonAgent {
    /// Starts `python3 tests/interop/a2a_agent.py --port 0 [--delay-ms N]`: the upper-case agent.
    ///
    /// # Errors
    /// When python3 or the SDK is missing, or the agent does not come up.
    pub async fn start(delay_ms: Option<u64>) -> Result<PythonAgent> {
        Self::start_as("upper", delay_ms).await
    }

    /// Starts the agent as `role`: `upper`, or the research pipeline's `researcher`, `analyst`
    /// or `writer`, which answer only with text parts (see the script's doc).
    ///
    /// # Errors
    /// When python3 or the SDK is missing, or the agent does not come up.
    pub async fn start_as(role: &str, delay_ms: Option<u64>) -> Result<PythonAgent> {
        let mut cmd = Command::new("python3");
        cmd.arg(python_agent_script())
            .args(["--port", "0", "--role", role]);
        if let Some(ms) = delay_ms {
            cmd.args(["--delay-ms", &ms.to_string()]);
        }
        cmd.env("PYTHONUNBUFFERED", "1");
        let what = format!("the a2a-sdk {role} agent");
        let (process, base) = Process::spawn(cmd, &what, "a2a-sdk agent listening on ").await?;
        Ok(PythonAgent { process, base })
    }

    /// Its base URL (JSON-RPC at `/`, the agent card at `/.well-known/agent-card.json`).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        read_tail(&self.process.log, n)
    }
}

/// A TOML configuration file for `aegis serve --config`, with the agents it names. It lives
/// (in its own temp dir) as long as this value, so it outlasts host restarts.
pub struct AgentsConfig {
    agents: BTreeMap<String, Value>,
    extra: String,
    dir: TempDir,
}

impl AgentsConfig {
    /// An empty configuration.
    ///
    /// # Panics
    /// When no temp dir can be made.
    pub fn new() -> AgentsConfig {
        AgentsConfig {
            agents: BTreeMap::new(),
            extra: String::new(),
            dir: tempfile::Builder::new()
                .prefix("aegis-e2e-config-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// An A2A agent; `version` is `"0.3"` or `"1.0"`.
    pub fn a2a(mut self, name: &str, url: &str, version: &str) -> Self {
        self.agents.insert(
            name.to_string(),
            json!({"url": url, "protocol": "a2a", "version": version}),
        );
        self
    }

    /// An agent reached by the simple JSON dispatch.
    pub fn simple(mut self, name: &str, url: &str) -> Self {
        self.agents
            .insert(name.to_string(), json!({"url": url, "protocol": "simple"}));
        self
    }

    /// Top-level TOML lines to add (e.g. `agent_inline_limit_kb = 100`).
    pub fn raw(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        let mut out = self.extra.clone();
        for (name, table) in &self.agents {
            out.push_str(&format!("\n[agents.{}]\n", toml_string(name)));
            for (key, value) in table.as_object().into_iter().flatten() {
                let value = value.as_str().unwrap_or_default();
                out.push_str(&format!("{key} = {}\n", toml_string(value)));
            }
        }
        out
    }

    /// Writes the file and returns the `serve` arguments that load it (`--config PATH`).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn args(&self) -> Result<Vec<String>> {
        let path = self.dir.path().join("aegis.toml");
        std::fs::write(&path, self.to_toml()).context("writing the host config")?;
        Ok(vec!["--config".into(), path.display().to_string()])
    }
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string encodes")
}

/// Starts an axum router on `127.0.0.1:0`; returns its base URL and the server task (which the
/// owner aborts when dropped).
pub(crate) async fn serve(router: axum::Router) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a test server")?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((format!("http://{addr}"), task))
}

/// One task the host dispatched to a [`SimpleAgent`].
#[derive(Clone, Debug)]
pub struct Dispatched {
    /// The path it was posted to (one server plays several agents, one per path).
    pub path: String,
    pub task_id: String,
    pub callback_url: String,
    pub token: String,
    pub input: Value,
    /// The whole body.
    pub body: Value,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
}

struct Recorded<T> {
    items: Mutex<Vec<T>>,
    added: Notify,
}

impl<T> Default for Recorded<T> {
    fn default() -> Self {
        Self {
            items: Mutex::new(Vec::new()),
            added: Notify::new(),
        }
    }
}

impl<T: Clone> Recorded<T> {
    fn push(&self, item: T) {
        self.items.lock().expect("lock").push(item);
        self.added.notify_waiters();
    }

    fn all(&self) -> Vec<T> {
        self.items.lock().expect("lock").clone()
    }

    /// Waits until `pick` finds something in the items; returns it.
    async fn wait_for<R>(&self, timeout: Duration, pick: impl Fn(&[T]) -> Option<R>) -> Option<R> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.added.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(found) = pick(&self.items.lock().expect("lock")) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return pick(&self.items.lock().expect("lock"));
            }
        }
    }
}

/// A test-run agent speaking the simple protocol: `POST {url} {"task_id", "callback_url",
/// "token", "input"}` → 202. It never answers by itself: the test answers with
/// [`SimpleAgent::answer`] (or any request it likes) when it wants.
pub struct SimpleAgent {
    base: String,
    tasks: Arc<Recorded<Dispatched>>,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

async fn record_task(
    State(tasks): State<Arc<Recorded<Dispatched>>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "not JSON"})),
        );
    };
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    let task = Dispatched {
        path: uri.path().to_string(),
        task_id: text("task_id"),
        callback_url: text("callback_url"),
        token: text("token"),
        input: body["input"].clone(),
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    };
    let reply = json!({"task_id": task.task_id, "status": "accepted"});
    tasks.push(task);
    (StatusCode::ACCEPTED, axum::Json(reply))
}

impl SimpleAgent {
    /// Starts the agent on `127.0.0.1:0`; every path takes tasks.
    ///
    /// # Errors
    /// When it cannot bind.
    pub async fn start() -> Result<SimpleAgent> {
        let tasks = Arc::new(Recorded::<Dispatched>::default());
        let router = axum::Router::new()
            .fallback(axum::routing::post(record_task))
            .with_state(tasks.clone());
        let (base, server) = serve(router).await?;
        Ok(SimpleAgent {
            base,
            tasks,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            server,
        })
    }

    /// The URL of the agent at `path` (e.g. `/researcher`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every task received so far, in order.
    pub fn tasks(&self) -> Vec<Dispatched> {
        self.tasks.all()
    }

    /// Waits for task number `index` (from 0) posted to `path`.
    ///
    /// # Errors
    /// When it does not come within `timeout`.
    pub async fn task(&self, path: &str, index: usize, timeout: Duration) -> Result<Dispatched> {
        let found = self
            .tasks
            .wait_for(timeout, |all| {
                all.iter().filter(|t| t.path == path).nth(index).cloned()
            })
            .await;
        match found {
            Some(task) => Ok(task),
            None => bail!(
                "the simple agent got no task #{index} on {path} within {timeout:?} (it got: {:?})",
                self.tasks()
                    .iter()
                    .map(|t| (t.path.clone(), t.task_id.clone()))
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// Posts `body` to the task's callback URL, with `headers`; returns the host's answer.
    ///
    /// # Errors
    /// When the request fails (no answer).
    pub async fn post_to(
        &self,
        url: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<Reply> {
        let mut req = self.http.post(url).json(body);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.with_context(|| format!("POST {url}"))?;
        crate::client::Client::reply(resp).await
    }

    /// Answers `task` in the simple form: `{"token", "status", "result"}` to its callback URL.
    ///
    /// # Errors
    /// When the request fails (no answer).
    pub async fn answer(&self, task: &Dispatched, status: &str, result: &Value) -> Result<Reply> {
        let body = json!({"token": task.token, "status": status, "result": result});
        self.post_to(&task.callback_url, &body, &[]).await
    }
}

impl Drop for SimpleAgent {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One webhook post.
#[derive(Clone, Debug)]
pub struct WebhookPost {
    pub headers: HeaderMap,
    /// The body exactly as received (the signature covers these bytes).
    pub raw: Vec<u8>,
    pub body: Value,
}

impl WebhookPost {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP server that records every post and answers 200.
pub struct WebhookReceiver {
    base: String,
    posts: Arc<Recorded<WebhookPost>>,
    server: tokio::task::JoinHandle<()>,
}

async fn record_post(
    State(posts): State<Arc<Recorded<WebhookPost>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    posts.push(WebhookPost {
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
    });
    StatusCode::OK
}

impl WebhookReceiver {
    /// Starts the receiver on `127.0.0.1:0`.
    ///
    /// # Errors
    /// When it cannot bind.
    pub async fn start() -> Result<WebhookReceiver> {
        let posts = Arc::new(Recorded::<WebhookPost>::default());
        let router = axum::Router::new()
            .fallback(axum::routing::post(record_post))
            .with_state(posts.clone());
        let (base, server) = serve(router).await?;
        Ok(WebhookReceiver {
            base,
            posts,
            server,
        })
    }

    /// The URL to post to.
    pub fn url(&self) -> String {
        format!("{}/hooks/aegis", self.base)
    }

    /// Every post so far, in order of arrival.
    pub fn posts(&self) -> Vec<WebhookPost> {
        self.posts.all()
    }

    /// Waits for a post of event `kind` about `execution_id`.
    ///
    /// # Errors
    /// When none arrives within `timeout`.
    pub async fn wait_for(
        &self,
        kind: &str,
        execution_id: &str,
        timeout: Duration,
    ) -> Result<WebhookPost> {
        let found = self
            .posts
            .wait_for(timeout, |all| {
                all.iter()
                    .find(|p| p.body["kind"] == kind && p.body["execution_id"] == execution_id)
                    .cloned()
            })
            .await;
        match found {
            Some(post) => Ok(post),
            None => bail!(
                "no {kind} webhook for {execution_id} within {timeout:?}; received: {:?}",
                self.posts()
                    .iter()
                    .map(|p| p.body["kind"].clone())
                    .collect::<Vec<_>>()
            ),
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

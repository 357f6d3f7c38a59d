//! Agents: outside processes that do long work and answer through a callback.
//!
//! The engine records an agent invocation as a callback operation and, once that callback is
//! durable, the runtime asks this module to send the task. The task carries the callback URL
//! and a token (the callback id). The agent answers by push (A2A) or by the simple callback form,
//! or at once when it finishes synchronously. A dispatch that cannot be delivered fails the
//! callback with `Agent.DispatchFailed`, so the workflow sees a clear error.
//!
//! Protocols, per agent in configuration:
//! - `a2a` (JSON-RPC 2.0), version `0.3` (default) or `1.0`: see [`a2a`];
//! - `simple`: `POST url {"task_id","callback_url","token","input"}`; the agent later posts
//!   `{"token","status":"SUCCESS"|"FAILURE","result"}` to the callback URL.
//! - `bedrock`: Amazon Bedrock AgentCore Runtime, `InvokeAgentRuntime` signed with SigV4 (AWS
//!   credentials from aws-config's default chain: variables, profiles, SSO, web identity, the
//!   container endpoint, the instance role), with
//!   `agent_runtime_arn`, `region` (default: the ARN's), `qualifier` (default `DEFAULT`) and `url`
//!   as the endpoint base (default `https://bedrock-agentcore.{region}.amazonaws.com`). The agent
//!   gets `{"input","callback_url","token"}` and answers at once, or `{"status":"accepted"}` and
//!   later posts the simple form to the callback URL: see [`bedrock`].
//!
//! # Binding pushes to their task
//!
//! When an A2A agent answers the dispatch with a running task, the callback is bound durably to
//! that task's id ([`Answer::Accepted`], `Store::bind_agent_task`; the first binding wins). A
//! push that names a task must name that one: a push naming another task is refused and
//! nothing is fetched, so the callback token alone cannot make the host read someone else's
//! task with its own credentials (`GetTask` / `tasks/get`). A push can arrive before the
//! dispatch's answer is recorded (a fast agent): it then waits for the binding, briefly (see
//! `callbacks::push`), and is answered 503 with `Retry-After` if the binding has still not
//! come; agents that retry pushes on 5xx (as the demo agents do) deliver it then. Pushes that
//! name no task (and the simple form) are authenticated by the token alone, as before; they
//! can make the host fetch nothing.
//!
//! # Outbound calls
//!
//! Calls to agents follow no redirects (a 3xx fails the call with `Agent.Redirected`: an agent
//! must be configured with its final URL, and a redirect could point the host anywhere, the
//! loopback included), time out (connect [`CONNECT_TIMEOUT`], whole call [`CALL_TIMEOUT`];
//! `bedrock` has its own longer call timeout), and read at most [`MAX_RESPONSE_BYTES`] of an
//! answer, streaming it and stopping there (`Agent.ResponseTooLarge`).

pub mod a2a;
pub mod bedrock;

use crate::backoff::Backoff;
use crate::journal::Dispatch;
use crate::journal::ErrorRecord;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// How an agent is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    A2a,
    Simple,
    /// Amazon Bedrock AgentCore Runtime (`InvokeAgentRuntime`, SigV4).
    Bedrock,
}

/// One agent in configuration: a URL (A2A v0.3), or a table.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum AgentConfig {
    Url(String),
    Endpoint(Endpoint),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The agent's URL; for `bedrock`, the endpoint base (optional there).
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub protocol: Protocol,
    /// A2A method generation: "0.3" (default) or "1.0".
    #[serde(default)]
    pub version: Option<a2a::Version>,
    /// Sent as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// `bedrock`: the agent runtime's ARN (required there).
    #[serde(default)]
    pub agent_runtime_arn: Option<String>,
    /// `bedrock`: the AWS region (default: the one in the ARN).
    #[serde(default)]
    pub region: Option<String>,
    /// `bedrock`: the endpoint or version qualifier (default `DEFAULT`).
    #[serde(default)]
    pub qualifier: Option<String>,
}

impl Endpoint {
    /// Whether the endpoint has what its protocol needs.
    ///
    /// # Errors
    /// A message saying what is missing.
    pub fn check(&self) -> Result<(), String> {
        match self.protocol {
            Protocol::Bedrock => bedrock::Target::from_endpoint(self).map(|_| ()),
            Protocol::A2a | Protocol::Simple if self.url.trim().is_empty() => {
                Err("url is required".to_string())
            }
            Protocol::A2a | Protocol::Simple => Ok(()),
        }
    }
}

impl AgentConfig {
    pub fn endpoint(&self) -> Endpoint {
        match self {
            AgentConfig::Url(url) => Endpoint {
                url: url.clone(),
                ..Endpoint::default()
            },
            AgentConfig::Endpoint(e) => e.clone(),
        }
    }
}

/// What an agent said, through a push, the simple form or a synchronous answer.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Done(Value),
    Failed(ErrorRecord),
    /// Progress only (the task is still running).
    Working,
    /// The task completed, and its result must be read from the agent (`GetTask`).
    Fetch {
        task_id: String,
    },
    /// The agent took the task and runs it as `task_id` (its answer to the dispatch): the
    /// callback is bound to that task, and its outcome comes by push.
    Accepted {
        task_id: String,
    },
}

/// A push or simple-form answer as read: the token it carries (simple form), the task it names
/// (A2A), and what it says.
#[derive(Debug, PartialEq)]
pub struct Reading {
    pub token: Option<String>,
    pub task_id: Option<String>,
    pub answer: Answer,
}

/// Tries of one dispatch in all, every protocol: the first and two retries.
pub const DISPATCH_ATTEMPTS: u32 = 3;

/// The wait before each retry of a dispatch, every protocol: 400 ms, then 800 ms. Throttling and
/// a restarting agent usually clear within a second, and the caller waits for the answer.
pub const DISPATCH_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(400),
    factor: 2,
    max: Duration::MAX,
    jitter: false,
};

/// The most of an agent's answer that is read; past it the call fails.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// How long connecting to an agent may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call to an agent may take in all (A2A and the simple form).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a response's body, chunk by chunk, failing as soon as it passes `limit` bytes (a
/// `Content-Length` over it fails before anything is read).
///
/// # Errors
/// [`BodyError::TooLarge`], or the transport's error.
pub async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Transport(e.to_string()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why an answer's body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge(usize),
    Transport(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(f, "the answer is larger than {limit} bytes"),
            BodyError::Transport(e) => write!(f, "the answer could not be read: {e}"),
        }
    }
}

pub struct Agents {
    endpoints: BTreeMap<String, Endpoint>,
    public_url: String,
    client: reqwest::Client,
    /// AWS credentials for `bedrock` agents.
    aws_credentials: bedrock::CredentialSource,
}

fn dispatch_failed(agent: &str, message: String) -> ErrorRecord {
    ErrorRecord::new(
        "Agent.DispatchFailed",
        format!("agent {agent:?}: {message}"),
    )
}

impl Agents {
    /// `agents` maps names to their configuration; `public_url` is where agents reach this host.
    pub fn new(agents: &BTreeMap<String, AgentConfig>, public_url: String) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .build()
            .expect("http client builds");
        let endpoints = agents
            .iter()
            .map(|(k, v)| (k.clone(), v.endpoint()))
            .collect();
        Self {
            endpoints,
            public_url,
            client,
            aws_credentials: bedrock::CredentialSource::default_chain(),
        }
    }

    /// Signs `bedrock` dispatches with these credentials instead of the default chain's.
    #[must_use]
    pub fn with_aws_credentials(self, credentials: bedrock::AwsCredentials) -> Self {
        self.with_aws_credential_source(bedrock::CredentialSource::from_provider(
            aws_credential_types::Credentials::new(
                credentials.access_key_id,
                credentials.secret_access_key,
                credentials.session_token,
                None,
                "aegis",
            ),
        ))
    }

    /// Signs `bedrock` dispatches with credentials from `source` instead of the default chain.
    #[must_use]
    pub fn with_aws_credential_source(mut self, source: bedrock::CredentialSource) -> Self {
        self.aws_credentials = source;
        self
    }

    /// Where agents, presigned links and people reach this host (`public_url`, else the bound
    /// address).
    pub fn public_url(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// The URL an agent posts its answer to for `callback_id`.
    pub fn callback_url(&self, callback_id: &str) -> String {
        format!("{}/v1/agents/callbacks/{callback_id}", self.public_url())
    }

    /// Sends the task, retrying transient failures. The callback id doubles as the idempotency
    /// key (the A2A message id), so an agent that sees the same task twice can do the work once.
    /// Returns the answer when the agent finished synchronously.
    ///
    /// # Errors
    /// An `Agent.NotConfigured` or `Agent.DispatchFailed` error record.
    pub async fn dispatch(&self, dispatch: &Dispatch) -> Result<Answer, ErrorRecord> {
        let endpoint = self.endpoints.get(&dispatch.agent).ok_or_else(|| {
            ErrorRecord::new(
                "Agent.NotConfigured",
                format!("agent {:?} is not configured on this host", dispatch.agent),
            )
        })?;
        let input: Value =
            serde_json::from_str(&dispatch.input).unwrap_or(Value::String(dispatch.input.clone()));
        let id = dispatch.callback_id.as_str();
        let callback_url = self.callback_url(id);
        match endpoint.protocol {
            Protocol::Bedrock => {
                let failed = |message: String| dispatch_failed(&dispatch.agent, message);
                let target = bedrock::Target::from_endpoint(endpoint).map_err(failed)?;
                let credentials = self.aws_credentials.credentials().await.map_err(failed)?;
                let payload = bedrock::request_body(&input, &callback_url, id);
                bedrock::invoke(&self.client, &target, &credentials, id, &payload)
                    .await
                    .map_err(failed)
            }
            Protocol::Simple => {
                let body = json!({"task_id": id, "callback_url": callback_url, "token": id, "input": input});
                self.post(endpoint, &dispatch.agent, &body, None).await?;
                Ok(Answer::Working)
            }
            Protocol::A2a => {
                let version = endpoint.version.unwrap_or(a2a::Version::V03);
                let request = a2a::send_request(version, id, &input, &callback_url, id);
                let reply = self
                    .post(endpoint, &dispatch.agent, &request, Some(version))
                    .await?;
                let result = rpc_result(&dispatch.agent, &reply)?;
                let Some(task) = a2a::find_task(&result).or(Some(&result)) else {
                    return Ok(Answer::Working);
                };
                match a2a::outcome(task) {
                    a2a::TaskOutcome::Completed(value) => Ok(Answer::Done(value)),
                    a2a::TaskOutcome::CompletedElsewhere => Ok(Answer::Done(Value::Null)),
                    a2a::TaskOutcome::Failed(words) => {
                        Ok(Answer::Failed(agent_failed(&dispatch.agent, &words)))
                    }
                    a2a::TaskOutcome::Working => {
                        let Some(task_id) = a2a::task_id(task) else {
                            return Ok(Answer::Working);
                        };
                        // The push config rode along with the send; registering it again covers
                        // agents that only take it through the dedicated method.
                        let set = a2a::push_config_request(version, id, task_id, &callback_url, id);
                        if let Err(e) = self
                            .post(endpoint, &dispatch.agent, &set, Some(version))
                            .await
                        {
                            tracing::debug!(agent = %dispatch.agent, error = %e, "push config registration refused");
                        }
                        Ok(Answer::Accepted {
                            task_id: task_id.to_string(),
                        })
                    }
                }
            }
        }
    }

    /// Reads a finished task from an A2A agent (`GetTask` / `tasks/get`), for agents whose push
    /// said "completed" without the result.
    ///
    /// # Errors
    /// `Agent.NotConfigured` or `Agent.DispatchFailed`.
    pub async fn fetch_task(
        &self,
        agent: &str,
        callback_id: &str,
        task_id: &str,
    ) -> Result<Answer, ErrorRecord> {
        let endpoint = self.endpoints.get(agent).ok_or_else(|| {
            ErrorRecord::new(
                "Agent.NotConfigured",
                format!("agent {agent:?} is not configured on this host"),
            )
        })?;
        if endpoint.protocol != Protocol::A2a {
            return Err(dispatch_failed(
                agent,
                "only A2A agents can be asked for a task".into(),
            ));
        }
        let version = endpoint.version.unwrap_or(a2a::Version::V03);
        let request = a2a::get_task_request(version, callback_id, task_id);
        let reply = self.post(endpoint, agent, &request, Some(version)).await?;
        let result = rpc_result(agent, &reply)?;
        let task = a2a::find_task(&result).unwrap_or(&result);
        Ok(match a2a::outcome(task) {
            a2a::TaskOutcome::Completed(v) => Answer::Done(v),
            a2a::TaskOutcome::Failed(words) => Answer::Failed(agent_failed(agent, &words)),
            a2a::TaskOutcome::Working => Answer::Working,
            a2a::TaskOutcome::CompletedElsewhere => Answer::Done(Value::Null),
        })
    }

    async fn post(
        &self,
        endpoint: &Endpoint,
        agent: &str,
        body: &Value,
        version: Option<a2a::Version>,
    ) -> Result<Value, ErrorRecord> {
        let mut last_error = String::new();
        for attempt in 0..DISPATCH_ATTEMPTS {
            if attempt > 0 {
                DISPATCH_BACKOFF.sleep(attempt).await;
            }
            let mut request = self.client.post(&endpoint.url).json(body);
            if let Some(id) = body
                .get("id")
                .and_then(Value::as_str)
                .or_else(|| body.get("task_id").and_then(Value::as_str))
            {
                request = request.header("Idempotency-Key", id);
            }
            if version == Some(a2a::Version::V10) {
                request = request.header("A2A-Version", "1.0");
            }
            if let Some(token) = &endpoint.bearer_token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(resp) if resp.status().is_redirection() => {
                    let to = resp
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("nowhere")
                        .chars()
                        .take(256)
                        .collect::<String>();
                    return Err(ErrorRecord::new(
                        "Agent.Redirected",
                        format!(
                            "agent {agent:?}: answered HTTP {} (to {to:?}); redirects are not \
                             followed: configure the agent's final URL",
                            resp.status()
                        ),
                    ));
                }
                Ok(resp) if resp.status().is_success() => {
                    return match read_limited(resp, MAX_RESPONSE_BYTES).await {
                        Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null)),
                        Err(BodyError::TooLarge(limit)) => Err(ErrorRecord::new(
                            "Agent.ResponseTooLarge",
                            format!(
                                "agent {agent:?}: its answer is larger than {limit} bytes, the \
                                 most the host reads"
                            ),
                        )),
                        Err(e) => Err(dispatch_failed(agent, e.to_string())),
                    };
                }
                Ok(resp) if resp.status().is_client_error() => {
                    return Err(dispatch_failed(
                        agent,
                        format!("refused the task: HTTP {}", resp.status()),
                    ));
                }
                Ok(resp) => last_error = format!("HTTP {}", resp.status()),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(dispatch_failed(
            agent,
            format!("{} could not be reached: {last_error}", endpoint.url),
        ))
    }
}

fn agent_failed(agent: &str, words: &str) -> ErrorRecord {
    ErrorRecord::new("Agent.Failed", format!("agent {agent:?}: {words}"))
}

/// The `result` of a JSON-RPC answer, or its error as a dispatch failure.
fn rpc_result(agent: &str, reply: &Value) -> Result<Value, ErrorRecord> {
    if let Some(error) = reply.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        let code = error
            .get("code")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        return Err(dispatch_failed(
            agent,
            format!("JSON-RPC error {code}: {message}"),
        ));
    }
    Ok(reply.get("result").cloned().unwrap_or(Value::Null))
}

/// Reads an answer posted to a callback URL: an A2A push (`{"task": ...}` or a bare task), or
/// the simple form `{"token", "status": "SUCCESS"|"FAILURE", "result"}`. Returns the token the
/// simple form carries, if any.
///
/// # Errors
/// A message saying what the body lacks.
pub fn read_answer(body: &Value) -> Result<Reading, String> {
    let (token, task_id, answer) = read_parts(body)?;
    Ok(Reading {
        token,
        task_id,
        answer,
    })
}

type Parts = (Option<String>, Option<String>, Answer);

fn read_parts(body: &Value) -> Result<Parts, String> {
    if let Some(status) = body.get("status").and_then(Value::as_str) {
        let token = body.get("token").and_then(Value::as_str).map(str::to_owned);
        let result = body.get("result").cloned().unwrap_or(Value::Null);
        let answer = match status.to_ascii_uppercase().as_str() {
            "SUCCESS" => Answer::Done(result),
            "FAILURE" => {
                let message = match &result {
                    Value::String(s) => s.clone(),
                    Value::Null => "the agent reported a failure".to_string(),
                    other => other.to_string(),
                };
                Answer::Failed(ErrorRecord::new("Agent.Failed", message))
            }
            other => return Err(format!("status must be SUCCESS or FAILURE, not {other:?}")),
        };
        return Ok((token, None, answer));
    }
    // Updates first: a v0.3 `status-update` has a `status` too, and read as a task it would
    // lose its `taskId`.
    if a2a::find_update(body).is_none()
        && let Some(task) = a2a::find_task(body)
    {
        let task_id = a2a::task_id(task).map(str::to_owned);
        return Ok((
            None,
            task_id.clone(),
            answer_of(a2a::outcome(task), task_id),
        ));
    }
    match a2a::find_update(body) {
        Some((task_id, Some(status))) => {
            let task_id = task_id.map(str::to_owned);
            Ok((None, task_id.clone(), answer_of(a2a::outcome(&status), task_id)))
        }
        // An artifact update is progress; the completion that follows brings (or points to) it.
        Some((task_id, None)) => Ok((None, task_id.map(str::to_owned), Answer::Working)),
        None => Err(
            "expected an A2A task ({\"task\": ...}), a task update ({\"statusUpdate\"|\"artifactUpdate\": ...}) or {\"token\",\"status\",\"result\"}"
                .into(),
        ),
    }
}

fn answer_of(outcome: a2a::TaskOutcome, task_id: Option<String>) -> Answer {
    match outcome {
        a2a::TaskOutcome::Completed(v) => Answer::Done(v),
        a2a::TaskOutcome::Failed(words) => Answer::Failed(ErrorRecord::new("Agent.Failed", words)),
        a2a::TaskOutcome::Working => Answer::Working,
        a2a::TaskOutcome::CompletedElsewhere => match task_id {
            Some(task_id) => Answer::Fetch { task_id },
            None => Answer::Failed(ErrorRecord::new(
                "Agent.Failed",
                "the agent said the task completed but named no task to read the result from",
            )),
        },
    }
}

#[cfg(test)]
mod tests;

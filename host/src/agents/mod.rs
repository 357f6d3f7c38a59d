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
//!   credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), with
//!   `agent_runtime_arn`, `region` (default: the ARN's), `qualifier` (default `DEFAULT`) and `url`
//!   as the endpoint base (default `https://bedrock-agentcore.{region}.amazonaws.com`). The agent
//!   gets `{"input","callback_url","token"}` and answers at once, or `{"status":"accepted"}` and
//!   later posts the simple form to the callback URL: see [`bedrock`].

pub mod a2a;
pub mod bedrock;

use crate::engine::host::Dispatch;
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
}

pub struct Agents {
    endpoints: BTreeMap<String, Endpoint>,
    public_url: String,
    client: reqwest::Client,
    /// AWS credentials for `bedrock` agents; `None` reads the environment at each dispatch.
    aws_credentials: Option<bedrock::AwsCredentials>,
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
            .timeout(Duration::from_secs(30))
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
            aws_credentials: None,
        }
    }

    /// Signs `bedrock` dispatches with these credentials instead of the `AWS_*` environment.
    #[must_use]
    pub fn with_aws_credentials(mut self, credentials: bedrock::AwsCredentials) -> Self {
        self.aws_credentials = Some(credentials);
        self
    }

    /// The URL an agent posts its answer to for `callback_id`.
    pub fn callback_url(&self, callback_id: &str) -> String {
        format!(
            "{}/v1/agents/callbacks/{callback_id}",
            self.public_url.trim_end_matches('/')
        )
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
                let credentials = match &self.aws_credentials {
                    Some(c) => c.clone(),
                    None => bedrock::AwsCredentials::from_env().map_err(failed)?,
                };
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
                        // The push config rode along with the send; registering it again covers
                        // agents that only take it through the dedicated method.
                        if let Some(task_id) = a2a::task_id(task) {
                            let set =
                                a2a::push_config_request(version, id, task_id, &callback_url, id);
                            if let Err(e) = self
                                .post(endpoint, &dispatch.agent, &set, Some(version))
                                .await
                            {
                                tracing::debug!(agent = %dispatch.agent, error = %e, "push config registration refused");
                            }
                        }
                        Ok(Answer::Working)
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
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
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
                Ok(resp) if resp.status().is_success() => {
                    return Ok(resp.json::<Value>().await.unwrap_or(Value::Null));
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
pub fn read_answer(body: &Value) -> Result<(Option<String>, Answer), String> {
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
        return Ok((token, answer));
    }
    if let Some(task) = a2a::find_task(body) {
        let task_id = a2a::task_id(task).map(str::to_owned);
        return Ok((None, answer_of(a2a::outcome(task), task_id)));
    }
    match a2a::find_update(body) {
        Some((task_id, Some(status))) => Ok((None, answer_of(a2a::outcome(&status), task_id.map(str::to_owned)))),
        // An artifact update is progress; the completion that follows brings (or points to) it.
        Some((_, None)) => Ok((None, Answer::Working)),
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
mod tests {
    use super::*;

    #[test]
    fn simple_form_and_pushes_are_read() {
        let (token, answer) =
            read_answer(&json!({"token": "cb_x", "status": "SUCCESS", "result": {"r": 1}}))
                .unwrap();
        assert_eq!(token.as_deref(), Some("cb_x"));
        assert_eq!(answer, Answer::Done(json!({"r": 1})));
        let (_, answer) =
            read_answer(&json!({"token": "t", "status": "FAILURE", "result": "boom"})).unwrap();
        assert_eq!(
            answer,
            Answer::Failed(ErrorRecord::new("Agent.Failed", "boom"))
        );
        assert!(read_answer(&json!({"token": "t", "status": "MAYBE"})).is_err());
        let push = json!({"task": {"id": "t", "status": {"state": "TASK_STATE_WORKING"}}});
        assert_eq!(read_answer(&push).unwrap().1, Answer::Working);
        assert!(read_answer(&json!({"hello": 1})).is_err());
    }

    #[test]
    fn url_shorthand_is_a2a_v03() {
        let e = AgentConfig::Url("http://a".into()).endpoint();
        assert_eq!((e.protocol, e.version), (Protocol::A2a, None));
    }
}

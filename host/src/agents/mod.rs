//! Agents: outside processes that do long work and answer through a callback.
//!
//! The engine records an agent invocation as a callback operation and, once that callback is
//! durable, asks this module to send the task. The task carries the callback URL and its token
//! (the callback id); the agent answers by completing the callback. A dispatch that cannot be
//! delivered fails the callback with `Agent.DispatchFailed`, so the workflow sees a clear error.
//!
//! Agents are named in configuration (`name=url`). This module speaks the simple JSON form
//! `POST url {"task_id","callback_url","token","input"}`; A2A and Bedrock AgentCore come with
//! the research-pipeline work.

use crate::engine::host::Dispatch;
use crate::journal::ErrorRecord;
use std::collections::HashMap;
use std::time::Duration;

pub struct Agents {
    endpoints: HashMap<String, String>,
    public_url: String,
    client: reqwest::Client,
}

impl Agents {
    /// `endpoints` maps agent names to URLs; `public_url` is where agents reach this host.
    pub fn new(endpoints: HashMap<String, String>, public_url: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client builds");
        Self {
            endpoints,
            public_url,
            client,
        }
    }

    /// Sends the task, retrying transient failures. The callback id doubles as the idempotency
    /// key, so an agent that sees the same task twice can do the work once.
    ///
    /// # Errors
    /// An `Agent.NotConfigured` or `Agent.DispatchFailed` error record.
    pub async fn dispatch(&self, dispatch: &Dispatch) -> Result<(), ErrorRecord> {
        let url = self.endpoints.get(&dispatch.agent).ok_or_else(|| {
            ErrorRecord::new(
                "Agent.NotConfigured",
                format!("agent {:?} is not configured on this host", dispatch.agent),
            )
        })?;
        let input: serde_json::Value = serde_json::from_str(&dispatch.input)
            .unwrap_or(serde_json::Value::String(dispatch.input.clone()));
        let body = serde_json::json!({
            "task_id": dispatch.callback_id.as_str(),
            "callback_url": format!("{}/v1/callbacks/{}", self.public_url.trim_end_matches('/'), dispatch.callback_id),
            "token": dispatch.callback_id.as_str(),
            "input": input,
        });
        let mut last_error = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
            }
            match self
                .client
                .post(url)
                .header("Idempotency-Key", dispatch.callback_id.as_str())
                .json(&body)
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) if resp.status().is_client_error() => {
                    return Err(ErrorRecord::new(
                        "Agent.DispatchFailed",
                        format!(
                            "agent {:?} refused the task: HTTP {}",
                            dispatch.agent,
                            resp.status()
                        ),
                    ));
                }
                Ok(resp) => last_error = format!("HTTP {}", resp.status()),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(ErrorRecord::new(
            "Agent.DispatchFailed",
            format!(
                "agent {:?} at {url} could not be reached: {last_error}",
                dispatch.agent
            ),
        ))
    }
}

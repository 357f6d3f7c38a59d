//! A minimal client for OpenAI-compatible `/chat/completions` endpoints.
//!
//! Optional by design: the agents must work offline, so the model is only an alternative
//! author of the analyst's findings and the writer's prose. Temperature 0 keeps replies as
//! repeatable as the server allows; every reply is checked by the caller before use.

use serde_json::{Value, json};
use std::time::Duration;

/// How long one completion may take before the caller falls back to the offline result.
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// Base URL up to and including the API version, e.g. `http://127.0.0.1:8000/v1`;
    /// `/chat/completions` is appended.
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("model request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("model endpoint answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("model reply has no choices[0].message.content")]
    NoContent,
}

#[derive(Debug, Clone)]
pub struct LlmClient {
    config: LlmConfig,
    http: reqwest::Client,
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .expect("HTTP client configuration is static and valid");
        Self { config, http }
    }

    /// `llm:<model>`, recorded in results so a reader knows who wrote them.
    pub fn generator(&self) -> String {
        format!("llm:{}", self.config.model)
    }

    pub fn endpoint(&self) -> String {
        format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        )
    }

    /// Sends one system + user exchange and returns the assistant's text.
    ///
    /// # Errors
    /// Transport failures, non-2xx answers and replies without content.
    pub async fn complete(&self, system: &str, user: &str) -> Result<String, LlmError> {
        let body = json!({
            "model": self.config.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
        });
        let mut request = self.http.post(self.endpoint()).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            let mut body = response.text().await.unwrap_or_default();
            body.truncate(300);
            return Err(LlmError::Status {
                status: status.as_u16(),
                body,
            });
        }
        let reply: Value = response.json().await?;
        reply
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(LlmError::NoContent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/v1/")
    }

    #[tokio::test]
    async fn sends_model_messages_and_key_and_reads_the_reply() {
        let seen: Seen = Arc::default();
        let record = seen.clone();
        let app = Router::new().route(
            "/v1/chat/completions",
            post(move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
                let record = record.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_string());
                    record.lock().unwrap().push((auth, body));
                    axum::Json(json!({
                        "id": "cmpl-1",
                        "object": "chat.completion",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello [1]"}, "finish_reason": "stop"}]
                    }))
                }
            }),
        );
        let client = LlmClient::new(LlmConfig {
            base_url: serve(app).await,
            api_key: Some("sk-test".into()),
            model: "m1".into(),
        });
        assert_eq!(client.complete("sys", "usr").await.unwrap(), "hello [1]");
        let seen = seen.lock().unwrap();
        let (auth, body) = &seen[0];
        assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
        assert_eq!(body["model"], "m1");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "usr");
        assert_eq!(client.generator(), "llm:m1");
    }

    #[tokio::test]
    async fn errors_are_reported_not_swallowed() {
        let app = Router::new()
            .route(
                "/v1/chat/completions",
                post(|| async { (StatusCode::TOO_MANY_REQUESTS, "slow down") }),
            )
            .route(
                "/v2/chat/completions",
                post(|| async { axum::Json(json!({"choices": []})) }),
            );
        let base = serve(app).await;
        let limited = LlmClient::new(LlmConfig {
            base_url: base.clone(),
            api_key: None,
            model: "m".into(),
        });
        let err = limited.complete("s", "u").await.unwrap_err();
        assert!(matches!(err, LlmError::Status { status: 429, .. }), "{err}");
        let empty = LlmClient::new(LlmConfig {
            base_url: base.replace("/v1/", "/v2"),
            api_key: None,
            model: "m".into(),
        });
        assert!(matches!(
            empty.complete("s", "u").await.unwrap_err(),
            LlmError::NoContent
        ));
    }
}

//! Delivering a task's final state to the URLs its client registered.
//!
//! Push delivery is the only way a client that used a push config learns the outcome, so it is
//! retried: transport errors, 5xx, 408 and 429 are retried with exponential backoff; any other
//! 4xx is final, because the receiver has understood and refused the notification (a duplicate
//! completion, a bad token) and repeating it cannot help.
//!
//! Headers: A2A pushes carry the registered token in `X-A2A-Notification-Token` (the header
//! the A2A SDKs send and check) and, when the config had `authentication` credentials,
//! `Authorization: <scheme> <credentials>`. v1.0 pushes also carry `A2A-Version: 1.0`.

use crate::a2a::{v03, v10};
use crate::simple;
use crate::tasks::{PushFormat, PushTarget, Task};
use serde_json::Value;
use std::time::Duration;

pub const TOKEN_HEADER: &str = "X-A2A-Notification-Token";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// One HTTP POST to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

/// Renders `task` for `target` in the target's wire format.
pub fn delivery_for(task: &Task, target: &PushTarget) -> Delivery {
    let mut headers = Vec::new();
    let body = match target.format {
        // Pushes carry the final state and artifacts but no history: the receiver sent the
        // request message itself, and repeating a large input would double the payload.
        PushFormat::V03 => v03::task_json(task, Some(0)),
        PushFormat::V10 => {
            headers.push((crate::a2a::VERSION_HEADER, "1.0".to_string()));
            v10::stream_response(task)
        }
        PushFormat::Simple => simple::callback_body(task, target.token.as_deref().unwrap_or("")),
    };
    if target.format != PushFormat::Simple {
        if let Some(token) = &target.token {
            headers.push((TOKEN_HEADER, token.clone()));
        }
        if let Some(auth) = &target.auth {
            headers.push((
                "Authorization",
                format!("{} {}", auth.scheme, auth.credentials),
            ));
        }
    }
    Delivery {
        url: target.url.clone(),
        headers,
        body,
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    #[error("receiver refused the notification with HTTP {0}")]
    Refused(u16),
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: String },
}

#[derive(Debug, Clone)]
pub struct Pusher {
    http: reqwest::Client,
    attempts: u32,
    first_backoff: Duration,
}

impl Pusher {
    pub fn new(attempts: u32, first_backoff: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("HTTP client configuration is static and valid");
        Self {
            http,
            attempts: attempts.max(1),
            first_backoff,
        }
    }

    /// POSTs `delivery`, retrying as described in the module docs. Returns the final HTTP
    /// status on success.
    ///
    /// # Errors
    /// `Refused` for a final 4xx, `Exhausted` when every attempt failed.
    pub async fn deliver(&self, delivery: &Delivery) -> Result<u16, PushError> {
        let mut last = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                let backoff = self
                    .first_backoff
                    .saturating_mul(2u32.saturating_pow(attempt - 1))
                    .min(MAX_BACKOFF);
                tokio::time::sleep(backoff).await;
            }
            let mut request = self.http.post(&delivery.url).json(&delivery.body);
            for (name, value) in &delivery.headers {
                request = request.header(*name, value);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        return Ok(status.as_u16());
                    }
                    let code = status.as_u16();
                    if status.is_client_error() && code != 408 && code != 429 {
                        return Err(PushError::Refused(code));
                    }
                    last = format!("HTTP {code}");
                }
                Err(e) => last = e.to_string(),
            }
            tracing::debug!(url = %delivery.url, attempt, %last, "push attempt failed");
        }
        Err(PushError::Exhausted {
            attempts: self.attempts,
            last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Role;
    use crate::tasks::PushAuth;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn done_task() -> Task {
        let mut t = Task::new(
            "t1".into(),
            "c1".into(),
            Role::Writer,
            None,
            json!({"topic": "x"}),
        );
        t.state = crate::tasks::TaskState::Completed;
        t.result = Some(json!({"report_markdown": "# R"}));
        t
    }

    fn target(format: PushFormat) -> PushTarget {
        PushTarget {
            id: "cfg".into(),
            url: "http://127.0.0.1:1/hook".into(),
            token: Some("secret".into()),
            auth: Some(PushAuth {
                scheme: "Bearer".into(),
                credentials: "jwt".into(),
            }),
            format,
        }
    }

    #[test]
    fn deliveries_are_shaped_per_format() {
        let task = done_task();
        let v03 = delivery_for(&task, &target(PushFormat::V03));
        assert_eq!(v03.body["kind"], "task");
        assert_eq!(v03.body["status"]["state"], "completed");
        assert!(v03.headers.contains(&(TOKEN_HEADER, "secret".into())));
        assert!(
            v03.headers
                .contains(&("Authorization", "Bearer jwt".into()))
        );

        let v10 = delivery_for(&task, &target(PushFormat::V10));
        assert_eq!(v10.body["task"]["status"]["state"], "TASK_STATE_COMPLETED");
        assert!(v10.headers.contains(&("A2A-Version", "1.0".into())));
        assert!(v10.headers.contains(&(TOKEN_HEADER, "secret".into())));

        let simple = delivery_for(&task, &target(PushFormat::Simple));
        assert_eq!(simple.body["token"], "secret");
        assert_eq!(simple.body["status"], "SUCCESS");
        assert!(simple.headers.is_empty());
    }

    async fn receiver(fail_first: u32, fail_status: StatusCode) -> (String, Arc<AtomicU32>) {
        let hits = Arc::new(AtomicU32::new(0));
        let counter = hits.clone();
        let app = Router::new().route(
            "/hook",
            post(move || {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    if n < fail_first {
                        fail_status
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/hook"), hits)
    }

    fn delivery(url: String) -> Delivery {
        Delivery {
            url,
            headers: vec![],
            body: json!({}),
        }
    }

    #[tokio::test]
    async fn retries_transient_failures_then_succeeds() {
        let (url, hits) = receiver(2, StatusCode::SERVICE_UNAVAILABLE).await;
        let pusher = Pusher::new(4, Duration::from_millis(5));
        assert_eq!(pusher.deliver(&delivery(url)).await, Ok(200));
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refusal_is_final() {
        let (url, hits) = receiver(10, StatusCode::CONFLICT).await;
        let pusher = Pusher::new(4, Duration::from_millis(5));
        assert_eq!(
            pusher.deliver(&delivery(url)).await,
            Err(PushError::Refused(409))
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gives_up_after_the_attempt_budget() {
        let (url, hits) = receiver(10, StatusCode::TOO_MANY_REQUESTS).await;
        let pusher = Pusher::new(3, Duration::from_millis(5));
        let err = pusher.deliver(&delivery(url)).await.unwrap_err();
        assert!(
            matches!(err, PushError::Exhausted { attempts: 3, .. }),
            "{err}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        let unreachable = Pusher::new(2, Duration::from_millis(5));
        assert!(matches!(
            unreachable
                .deliver(&delivery("http://127.0.0.1:9/hook".into()))
                .await,
            Err(PushError::Exhausted { attempts: 2, .. })
        ));
    }
}

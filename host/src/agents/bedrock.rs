//! Amazon Bedrock AgentCore Runtime as an agent protocol: `InvokeAgentRuntime`, signed with
//! AWS Signature Version 4.
//!
//! The wire request, per task:
//!
//! ```text
//! POST {base}/runtimes/{percent-encoded agent runtime ARN}/invocations?qualifier={qualifier}
//! Content-Type: application/json
//! Accept: application/json
//! X-Amzn-Bedrock-AgentCore-Runtime-Session-Id: aegis-{sha256 hex of the callback id}
//! X-Amz-Date: {now, yyyymmddThhmmssZ}
//! X-Amz-Security-Token: {the session token, with temporary credentials}
//! Authorization: AWS4-HMAC-SHA256 Credential={key id}/{date}/{region}/bedrock-agentcore/aws4_request, SignedHeaders=..., Signature=...
//!
//! {"input": <the task input>, "callback_url": "{public_url}/v1/agents/callbacks/{callback id}", "token": "{callback id}"}
//! ```
//!
//! `base` is the endpoint's `url`, by default `https://bedrock-agentcore.{region}.amazonaws.com`;
//! the region is the endpoint's `region`, else the one inside the ARN. The session id (70
//! characters; AgentCore wants 33 to 256) is the same for every attempt at one task, so retries
//! land in the same runtime session, and it is a hash rather than the callback id itself, so the
//! capability does not end up in AWS logs. Credentials come from aws-config's default chain (the
//! `AWS_*` variables, profiles and SSO, web identity, the ECS/EKS container endpoint, the EC2
//! instance role), kept until shortly before they expire: see [`CredentialSource`].
//!
//! What a 2xx answer means (the convention for AgentCore agents written for Aegis):
//! - `{"status": "accepted"}` (any case; also `"working"`): the agent took the task and will post
//!   its answer to `callback_url` later, in the simple form `{"token","status","result"}`;
//! - `{"status": "SUCCESS"|"FAILURE", "result": ...}` (optionally with `token`, nothing else): the
//!   simple callback form given synchronously, read as if it had been posted;
//! - anything else: the synchronous result itself. A `text/event-stream` answer (a streaming
//!   agent) is gathered: its `data:` events, JSON strings joined into one text (parsed as JSON when
//!   it is JSON), or the single JSON event, or the list of events.
//!
//! A 4xx answer fails the dispatch with the status and AWS's error type (`x-amzn-errortype`) and
//! message (body `message`); 429 (throttling), 5xx and connection failures are retried with
//! backoff, three attempts in all. A synchronous invocation may take up to 15 minutes; one that
//! times out is not retried (the agent may still be working on it).

use super::{Answer, DISPATCH_ATTEMPTS, DISPATCH_BACKOFF};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::{Value, json};
use sha2::Digest;
use std::time::{Duration, SystemTime};

/// The SigV4 signing name of the AgentCore data plane.
pub const SERVICE: &str = "bedrock-agentcore";
/// The header naming the runtime session.
pub const SESSION_HEADER: &str = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id";
/// The qualifier used when the endpoint names none.
pub const DEFAULT_QUALIFIER: &str = "DEFAULT";
/// How long one synchronous invocation may take.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// AWS credentials: an access key, and the session token that temporary keys come with.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

impl From<&Credentials> for AwsCredentials {
    fn from(c: &Credentials) -> Self {
        Self {
            access_key_id: c.access_key_id().to_string(),
            secret_access_key: c.secret_access_key().to_string(),
            session_token: c.session_token().map(str::to_string),
        }
    }
}

/// How long credentials that say nothing of their expiry (keys in the environment or in a
/// file) are kept before the chain is asked again, as the AWS SDK's own cache does.
const UNDATED_CREDENTIALS_TTL: Duration = Duration::from_secs(15 * 60);
/// Credentials that expire are renewed this long before they do, so that no request is signed
/// with keys about to lapse.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Where `bedrock` dispatches get their credentials: a provider (by default aws-config's
/// default chain, see [`crate::aws::default_credentials`]: variables, profiles and SSO, web
/// identity, the container endpoint, the instance role), asked once and then kept until shortly
/// before the credentials expire. The chain itself caches nothing, and an instance role or web
/// identity would otherwise cost a call per dispatch.
pub struct CredentialSource {
    provider: tokio::sync::OnceCell<SharedCredentialsProvider>,
    /// The last credentials, and when to ask again.
    cached: tokio::sync::Mutex<Option<(Credentials, SystemTime)>>,
}

impl CredentialSource {
    /// aws-config's default chain, built at the first dispatch (building it reads the region,
    /// which may take a call to the instance metadata service).
    pub fn default_chain() -> Self {
        Self {
            provider: tokio::sync::OnceCell::new(),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// Another provider, such as fixed keys or one profile of a credentials file.
    pub fn from_provider(provider: impl ProvideCredentials + 'static) -> Self {
        Self {
            provider: tokio::sync::OnceCell::new_with(Some(SharedCredentialsProvider::new(
                provider,
            ))),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The credentials to sign with now.
    ///
    /// # Errors
    /// A message saying why no provider of the chain had credentials.
    pub async fn credentials(&self) -> Result<AwsCredentials, String> {
        // One caller at a time asks the provider; the others wait and take its answer.
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some((credentials, renew_at)) = cached.as_ref()
            && now < *renew_at
        {
            return Ok(credentials.into());
        }
        let provider = self
            .provider
            .get_or_init(|| async {
                SharedCredentialsProvider::new(crate::aws::default_credentials().await)
            })
            .await;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials: {:#}", anyhow::Error::new(e)))?;
        let renew_at = match credentials.expiry() {
            Some(expiry) => expiry
                .checked_sub(RENEW_BEFORE_EXPIRY)
                .unwrap_or(expiry)
                .max(now),
            None => now + UNDATED_CREDENTIALS_TTL,
        };
        let signing = AwsCredentials::from(&credentials);
        *cached = Some((credentials, renew_at));
        Ok(signing)
    }
}

/// Signs requests with SigV4 for one region and service.
pub struct Signer<'a> {
    pub credentials: &'a AwsCredentials,
    pub region: &'a str,
    pub service: &'a str,
}

impl Signer<'_> {
    /// The headers to add to a request so that it is signed as of `time`: `x-amz-date`,
    /// `authorization` and, with a session token, `x-amz-security-token`. `url` must be in the
    /// form it is sent (already percent-encoded); `headers` are the ones to sign (`host` is taken
    /// from `url` when absent). The URI path is encoded once more for the canonical request, as
    /// every AWS service but S3 expects.
    ///
    /// # Errors
    /// A URL that does not parse, or a header the signer refuses.
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        time: SystemTime,
    ) -> Result<Vec<(String, String)>, String> {
        let identity = aws_credential_types::Credentials::new(
            self.credentials.access_key_id.clone(),
            self.credentials.secret_access_key.clone(),
            self.credentials.session_token.clone(),
            None,
            "aegis",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign the request: {e}"))?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("cannot sign a request to {url}: {e}"))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| format!("cannot sign a request to {url}: {e}"))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect())
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (so `:` and `/` too).
fn encode_component(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where and how one Bedrock agent is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub agent_runtime_arn: String,
    pub region: String,
    pub qualifier: String,
    /// The endpoint base, without a trailing slash.
    pub base: String,
}

impl Target {
    /// From an agent's configuration: the ARN is required; the region defaults to the ARN's,
    /// the qualifier to `DEFAULT`, the base to the regional AgentCore endpoint.
    ///
    /// # Errors
    /// A message saying what is missing.
    pub fn from_endpoint(endpoint: &super::Endpoint) -> Result<Self, String> {
        let arn = endpoint
            .agent_runtime_arn
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or("a bedrock agent needs agent_runtime_arn")?;
        let region = endpoint
            .region
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .or_else(|| arn_region(arn))
            .ok_or_else(|| {
                format!("no region: set region, or use an ARN that names one (got {arn:?})")
            })?;
        let qualifier = endpoint
            .qualifier
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .unwrap_or(DEFAULT_QUALIFIER);
        let base = match endpoint.url.trim() {
            "" => format!("https://bedrock-agentcore.{region}.amazonaws.com"),
            url => url.trim_end_matches('/').to_string(),
        };
        Ok(Self {
            agent_runtime_arn: arn.to_string(),
            region: region.to_string(),
            qualifier: qualifier.to_string(),
            base,
        })
    }

    /// `{base}/runtimes/{ARN}/invocations?qualifier={q}`, encoded as sent.
    pub fn invocation_url(&self) -> String {
        format!(
            "{}/runtimes/{}/invocations?qualifier={}",
            self.base,
            encode_component(&self.agent_runtime_arn),
            encode_component(&self.qualifier)
        )
    }
}

/// The region field of an ARN (`arn:partition:service:region:account:resource`).
fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next() == Some("arn"))
        .then(|| parts.nth(2))
        .flatten()
        .filter(|r| !r.is_empty())
}

/// The runtime session id for a task: stable across retries, 70 characters of `[a-z0-9-]`, and
/// not the callback id itself (which is a capability).
pub fn session_id(callback_id: &str) -> String {
    let digest = sha2::Sha256::digest(format!("aegis-agentcore-session:{callback_id}").as_bytes());
    format!("aegis-{}", hex::encode(digest))
}

/// The payload an AgentCore agent receives.
pub fn request_body(input: &Value, callback_url: &str, token: &str) -> Value {
    json!({"input": input, "callback_url": callback_url, "token": token})
}

/// Reads a 2xx answer's body (see the module doc for the convention).
pub fn read_reply(content_type: &str, body: &[u8]) -> Answer {
    let value = if content_type.starts_with("text/event-stream") {
        gather_events(body)
    } else {
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
    };
    if let Some(status) = value.get("status").and_then(Value::as_str) {
        let status = status.to_ascii_lowercase();
        if status == "accepted" || status == "working" {
            return Answer::Working;
        }
        let simple_form = value.as_object().is_some_and(|o| {
            o.keys()
                .all(|k| matches!(k.as_str(), "status" | "result" | "token"))
        });
        if simple_form
            && (status == "success" || status == "failure")
            && let Ok(reading) = super::read_answer(&value)
        {
            return reading.answer;
        }
    }
    Answer::Done(value)
}

/// The value of a server-sent-event stream (see the module doc).
fn gather_events(body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    let events: Vec<Value> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| {
            let data = data.trim();
            serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_string()))
        })
        .collect();
    if !events.is_empty() && events.iter().all(Value::is_string) {
        let joined: String = events.iter().filter_map(Value::as_str).collect();
        return serde_json::from_str(&joined).unwrap_or(Value::String(joined));
    }
    match <[Value; 1]>::try_from(events) {
        Ok([one]) => one,
        Err(many) => Value::Array(many),
    }
}

/// AWS's words for a refused request: the error type and the message.
fn aws_error(headers: &reqwest::header::HeaderMap, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let kind = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_string())
        .or_else(|| {
            let t = parsed.as_ref()?.get("__type")?.as_str()?;
            Some(t.rsplit('#').next().unwrap_or(t).to_string())
        });
    let message = parsed
        .as_ref()
        .and_then(|b| b.get("message").or_else(|| b.get("Message")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            let text = String::from_utf8_lossy(body).trim().to_string();
            (!text.is_empty()).then(|| text.chars().take(300).collect())
        });
    match (kind, message) {
        (Some(k), Some(m)) => format!("{k}: {m}"),
        (Some(k), None) => k,
        (None, Some(m)) => m,
        (None, None) => "no error message".to_string(),
    }
}

/// Sends `InvokeAgentRuntime` once per attempt, signed afresh each time, retrying throttling,
/// server errors and connection failures with the backoff the other protocols use.
///
/// # Errors
/// A message for `Agent.DispatchFailed`.
pub async fn invoke(
    client: &reqwest::Client,
    target: &Target,
    credentials: &AwsCredentials,
    callback_id: &str,
    payload: &Value,
) -> Result<Answer, String> {
    let url = target.invocation_url();
    let body = serde_json::to_vec(payload).map_err(|e| format!("cannot encode the task: {e}"))?;
    let session = session_id(callback_id);
    let signer = Signer {
        credentials,
        region: &target.region,
        service: SERVICE,
    };
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json"),
        (
            "x-amzn-bedrock-agentcore-runtime-session-id",
            session.as_str(),
        ),
    ];
    let mut last_error = String::new();
    for attempt in 0..DISPATCH_ATTEMPTS {
        if attempt > 0 {
            DISPATCH_BACKOFF.sleep(attempt).await;
        }
        let signed = signer.sign("POST", &url, &headers, &body, SystemTime::now())?;
        let mut request = client
            .post(&url)
            .timeout(INVOCATION_TIMEOUT)
            .body(body.clone());
        for (name, value) in headers.iter().copied() {
            request = request.header(name, value);
        }
        for (name, value) in &signed {
            request = request.header(name.as_str(), value.as_str());
        }
        match request.send().await {
            Ok(resp) => {
                let status = resp.status();
                let response_headers = resp.headers().clone();
                let bytes = match super::read_limited(resp, super::MAX_RESPONSE_BYTES).await {
                    Ok(bytes) => bytes,
                    Err(e @ super::BodyError::TooLarge(_)) => {
                        return Err(format!("InvokeAgentRuntime at {url}: {e}"));
                    }
                    Err(_) => Vec::new(),
                };
                if status.is_success() {
                    let content_type = response_headers
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("application/json");
                    return Ok(read_reply(content_type, &bytes));
                }
                let words = aws_error(&response_headers, &bytes);
                // A redirect is never followed (the client follows none) nor retried.
                if (status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS)
                    || status.is_redirection()
                {
                    return Err(format!(
                        "InvokeAgentRuntime refused the task: HTTP {status}: {words}"
                    ));
                }
                last_error = format!("HTTP {status}: {words}");
            }
            Err(e) if e.is_timeout() => {
                return Err(format!(
                    "InvokeAgentRuntime at {url} gave no answer within {} s",
                    INVOCATION_TIMEOUT.as_secs()
                ));
            }
            Err(e) => last_error = e.to_string(),
        }
        tracing::debug!(%url, attempt, error = %last_error, "InvokeAgentRuntime will be retried");
    }
    Err(format!(
        "InvokeAgentRuntime at {url} failed after {DISPATCH_ATTEMPTS} attempts: {last_error}"
    ))
}

#[cfg(test)]
mod tests;

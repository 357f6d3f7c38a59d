//! The webhook sink: where events are posted, how each post is signed, and how its answer
//! counts. Its own file because the signature and the headers are a contract with receivers.

use super::sink::{Failure, SinkError, classify_status, error_chain};
use crate::store::WorkflowEvent;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::time::Duration;

/// How long connecting to the webhook may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one webhook request may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where events are posted.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    pub secret: String,
}

/// `sha256=<hex>` of the body, keyed by `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The client posts go through. No redirects: a webhook that answers 3xx is refused, never
/// followed to a host it names (which could be anywhere, the loopback included). Timeouts bound
/// a slow sink.
pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("http client builds")
}

/// Posts one event, as `body`, to `hook`, signed (see the module doc of `notifications` for
/// the headers).
pub(super) async fn post(
    client: &reqwest::Client,
    hook: &Webhook,
    event: &WorkflowEvent,
    body: &Value,
) -> Result<(), SinkError> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let sent = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("x-aegis-event", &event.kind)
        .header("x-aegis-delivery", event.seq.to_string())
        .header("x-aegis-signature", signature(&hook.secret, &bytes))
        .body(bytes)
        .send()
        .await;
    // The answer's body is never read: dropping the response closes it, whatever its size.
    match sent {
        Ok(resp) => match classify_status(resp.status()) {
            None => Ok(()),
            Some(failure) => {
                let mut message = format!("HTTP {}", resp.status());
                if resp.status().is_redirection() {
                    message.push_str(" (a redirect; redirects are not followed)");
                }
                Err(SinkError::new("webhook", failure, message))
            }
        },
        Err(e) if e.is_connect() => Err(SinkError::new(
            "webhook",
            Failure::Unreachable,
            error_chain(&e),
        )),
        Err(e) => Err(SinkError::new(
            "webhook",
            Failure::Retriable,
            error_chain(&e),
        )),
    }
}

//! What every sink (webhook, SNS, EventBridge) says when it does not take an event, and how
//! those answers are sorted into outage, retry and refusal. Its own file so that each sink
//! speaks the same words to the delivery loop.

/// How a sink failed to take an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: the sink is down, whichever event is offered.
    Unreachable,
    /// The sink may take the event later (5xx, 408, 429, timeouts, throttling).
    Retriable,
    /// The sink refused this event and will refuse it again (4xx, an invalid or oversized
    /// entry).
    Permanent,
}

/// A sink's refusal of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkError {
    /// `webhook`, `sns` or `eventbridge`.
    pub sink: &'static str,
    pub failure: Failure,
    pub message: String,
}

impl SinkError {
    pub fn new(sink: &'static str, failure: Failure, message: impl Into<String>) -> Self {
        Self {
            sink,
            failure,
            message: message.into(),
        }
    }
}

/// How an HTTP answer of a sink counts: 2xx taken; 408, 429 and 5xx worth a retry; anything
/// else (other 4xx, a redirect, which is never followed) refused for good.
pub fn classify_status(status: reqwest::StatusCode) -> Option<Failure> {
    if status.is_success() {
        None
    } else if status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        Some(Failure::Retriable)
    } else {
        Some(Failure::Permanent)
    }
}

/// An error with its causes, as one line.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

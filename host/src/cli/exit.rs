//! How a client command fails: a [`Failure`] carries the message for a person and the
//! [`Class`] of the failure, whose exit code a script can branch on without reading text.
//!
//! The codes are part of the CLI's interface (README.md, "Exit codes"): a script that retries
//! on 6 and 7 but not on 3 or 4 relies on them, so a code never changes meaning.

use serde_json::{Value, json};
use std::fmt;

/// What kind of failure ended a command, and so its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Something local failed: `cargo` could not build the crate `deploy` was given, or the
    /// output could not be written.
    Local,
    /// The command line was wrong (clap's own errors use 2 too), or the API refused the request
    /// as malformed (400).
    Usage,
    /// What the command names does not exist (404): an execution, a callback, a component, a
    /// tenant, a route the host does not serve.
    NotFound,
    /// The host understood and refused: a conflict (409), a payload over a quota (413), a
    /// compile that timed out (422), a rate or quota limit (429).
    Refused,
    /// The key is missing, wrong or revoked (401, 403).
    Auth,
    /// The host failed or is unavailable (5xx), or answered something that is not the API.
    Server,
    /// No answer at all: nothing listens at the URL, the name does not resolve, the request
    /// timed out.
    Connection,
    /// `watch` saw the execution end, but not with SUCCEEDED.
    NotSucceeded,
}

impl Class {
    /// The process exit code of this class.
    pub fn code(self) -> u8 {
        match self {
            Class::Local => 1,
            Class::Usage => 2,
            Class::NotFound => 3,
            Class::Refused => 4,
            Class::Auth => 5,
            Class::Server => 6,
            Class::Connection => 7,
            Class::NotSucceeded => 8,
        }
    }

    /// The class of an error answer with HTTP status `status`.
    pub fn of_status(status: u16) -> Class {
        match status {
            400 | 405 => Class::Usage,
            401 | 403 => Class::Auth,
            404 => Class::NotFound,
            400..=499 => Class::Refused,
            _ => Class::Server,
        }
    }
}

/// A command's failure: its class, the message a person reads, and, when the host answered
/// with an error, that answer's JSON (what `--json` prints).
#[derive(Debug)]
pub struct Failure {
    pub class: Class,
    pub message: String,
    /// The API's error body (`{"error": {"code", "message", "doc"}}`), when there was one.
    pub body: Option<Value>,
}

impl Failure {
    pub fn new(class: Class, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            body: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Class::Usage, message)
    }

    pub fn local(message: impl Into<String>) -> Self {
        Self::new(Class::Local, message)
    }

    /// The failure an error answer stands for: its code and message when the body is the API's
    /// error shape, else the status and the start of whatever came (a proxy's page, say).
    pub fn from_answer(status: u16, body: &[u8]) -> Self {
        let class = Class::of_status(status);
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().map(|v| &v["error"]);
        match error.and_then(|e| Some((e["code"].as_str()?, e["message"].as_str()?))) {
            Some((code, message)) => {
                let mut text = format!("{code}: {message} (HTTP {status})");
                if let Some(doc) = error.and_then(|e| e["doc"].as_str()) {
                    text.push_str(&format!("; see {doc}"));
                }
                Self {
                    class,
                    message: text,
                    body: parsed,
                }
            }
            None => {
                let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
                let snippet = snippet.trim();
                let message = if snippet.is_empty() {
                    format!("the host answered HTTP {status} with no error body")
                } else {
                    format!("the host answered HTTP {status}: {snippet}")
                };
                Self::new(class, message)
            }
        }
    }

    /// What `--json` prints for this failure: the API's own error body, or one in the same
    /// shape whose code names the class (`connection_failed`, ...), so a script reads every
    /// failure one way.
    pub fn json(&self) -> Value {
        if let Some(body) = &self.body {
            return body.clone();
        }
        let code = match self.class {
            Class::Local => "local_failure",
            Class::Usage => "usage",
            Class::NotFound => "not_found",
            Class::Refused => "refused",
            Class::Auth => "unauthorized",
            Class::Server => "server_failure",
            Class::Connection => "connection_failed",
            Class::NotSucceeded => "not_succeeded",
        };
        json!({"error": {"code": code, "message": self.message}})
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A command's outcome.
pub type Outcome<T = ()> = Result<T, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_its_own_code() {
        let classes = [
            Class::Local,
            Class::Usage,
            Class::NotFound,
            Class::Refused,
            Class::Auth,
            Class::Server,
            Class::Connection,
            Class::NotSucceeded,
        ];
        let codes: std::collections::BTreeSet<u8> = classes.iter().map(|c| c.code()).collect();
        assert_eq!(codes.len(), classes.len());
        assert!(!codes.contains(&0), "0 is success");
    }

    #[test]
    fn statuses_map_to_classes() {
        assert_eq!(Class::of_status(400), Class::Usage);
        assert_eq!(Class::of_status(401), Class::Auth);
        assert_eq!(Class::of_status(404), Class::NotFound);
        assert_eq!(Class::of_status(409), Class::Refused);
        assert_eq!(Class::of_status(413), Class::Refused);
        assert_eq!(Class::of_status(429), Class::Refused);
        assert_eq!(Class::of_status(500), Class::Server);
        assert_eq!(Class::of_status(503), Class::Server);
    }

    #[test]
    fn an_api_error_names_its_code_message_and_doc() {
        let body = br#"{"error":{"code":"execution_not_found","message":"execution \"ex_1\" not found","doc":"docs/errors/api.md#execution_not_found"}}"#;
        let f = Failure::from_answer(404, body);
        assert_eq!(f.class, Class::NotFound);
        assert_eq!(
            f.message,
            "execution_not_found: execution \"ex_1\" not found (HTTP 404); see \
             docs/errors/api.md#execution_not_found"
        );
        assert_eq!(f.json()["error"]["code"], "execution_not_found");
    }

    #[test]
    fn an_answer_that_is_not_the_api_shows_its_start() {
        let f = Failure::from_answer(502, b"<html>Bad Gateway</html>");
        assert_eq!(f.class, Class::Server);
        assert_eq!(
            f.message,
            "the host answered HTTP 502: <html>Bad Gateway</html>"
        );
        assert_eq!(f.json()["error"]["code"], "server_failure");
        let f = Failure::from_answer(503, b"");
        assert!(f.message.contains("no error body"), "{}", f.message);
    }
}

//! The one error type of the SDK.
//!
//! A failure travels through three places: a step body returns it, the journal stores it (as the
//! WIT `error-info`), and a replay hands it back to the workflow. So [`Error`] is a plain,
//! serialisable record (type, message, optional JSON data) rather than a Rust enum: whatever an
//! author puts in comes back out unchanged, on the first run and on every replay, and it can sit
//! inside a recorded [`BatchResult`](crate::BatchResult).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::raw::aegis::workflow::types::ErrorInfo;

/// A workflow failure: a stable dotted type, a message for humans and optional JSON detail.
///
/// Step bodies, callbacks, agents and whole workflows fail with this type. A workflow that returns
/// `Err(error)` ends its execution as failed with exactly this error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Error {
    /// A stable, dotted type such as `Step.Failed`, `Callback.Timeout` or the author's own.
    pub error_type: String,
    /// A human-readable message.
    pub message: String,
    /// Optional structured detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl Error {
    /// A recorded payload could not be decoded into the type the workflow asked for.
    pub const PAYLOAD_DECODE: &str = "Aegis.PayloadDecode";
    /// A value could not be encoded as JSON (for example a map with non-string keys).
    pub const PAYLOAD_ENCODE: &str = "Aegis.PayloadEncode";
    /// A batch item that had not finished when the batch's completion rule was met.
    pub const NOT_FINISHED: &str = "Aegis.NotFinished";
    /// A batch configured with a value it cannot run with (a max concurrency of 0, a tolerated
    /// failure percentage outside 0 to 100). Raised before the batch starts, so nothing is recorded.
    pub const INVALID_BATCH_CONFIG: &str = "Aegis.InvalidBatchConfig";
    /// A wait-for-condition whose [`Polling`](crate::Polling) strategy ran out of attempts before
    /// the condition was met.
    pub const CONDITION_EXHAUSTED: &str = "WaitForCondition.AttemptsExhausted";

    /// An error with this type and message, and no data.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
            data: None,
        }
    }

    /// The same error carrying structured detail.
    #[must_use]
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Whether this error has the given type.
    pub fn is(&self, error_type: &str) -> bool {
        self.error_type == error_type
    }

    pub(crate) fn payload_decode(err: &serde_json::Error) -> Self {
        Self::new(
            Self::PAYLOAD_DECODE,
            format!("cannot decode payload: {err}"),
        )
    }

    pub(crate) fn payload_encode(err: &serde_json::Error) -> Self {
        Self::new(
            Self::PAYLOAD_ENCODE,
            format!("cannot encode payload: {err}"),
        )
    }

    pub(crate) fn not_finished() -> Self {
        Self::new(
            Self::NOT_FINISHED,
            "the batch completed before this item finished",
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for Error {}

impl From<ErrorInfo> for Error {
    /// Error data that is not valid JSON (the host should never send that) is kept as a string
    /// rather than dropped, so no detail is lost.
    fn from(info: ErrorInfo) -> Self {
        Self {
            error_type: info.error_type,
            message: info.error_message,
            data: info
                .error_data
                .map(|data| serde_json::from_str(&data).unwrap_or(Value::String(data))),
        }
    }
}

impl From<Error> for ErrorInfo {
    fn from(error: Error) -> Self {
        Self {
            error_type: error.error_type,
            error_message: error.message,
            error_data: error.data.map(|data| data.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn error_info_round_trips_with_data() {
        let error = Error::new("Flaky.Error", "attempt 1 failed").with_data(json!({"n": 1}));
        let info = ErrorInfo::from(error.clone());
        assert_eq!(info.error_data.as_deref(), Some(r#"{"n":1}"#));
        assert_eq!(Error::from(info), error);
    }

    #[test]
    fn non_json_error_data_is_kept_as_a_string() {
        let info = ErrorInfo {
            error_type: "X".into(),
            error_message: "m".into(),
            error_data: Some("not json".into()),
        };
        assert_eq!(Error::from(info).data, Some(json!("not json")));
    }

    #[test]
    fn display_shows_type_and_message() {
        assert_eq!(
            Error::new("A.B", "went wrong").to_string(),
            "A.B: went wrong"
        );
    }

    #[test]
    fn serialised_form_omits_missing_data() {
        let text = serde_json::to_string(&Error::new("A", "b")).unwrap();
        assert_eq!(text, r#"{"error_type":"A","message":"b"}"#);
    }
}

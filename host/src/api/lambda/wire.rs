//! The Lambda surface's wire conventions, shared by its routes: query strings as the service
//! model writes them (lists repeat their key, booleans and numbers are text, timestamps ISO
//! 8601), and the `ErrorObject` that stops and failed callbacks carry.

use super::error::LambdaError;
use crate::journal::{ErrorRecord, Millis};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A request's query parameters, each perhaps repeated, checked against the names a route
/// takes so a misspelled one is an error rather than silently ignored.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Reads `raw` (the query string, if any), refusing a name outside `known`.
    ///
    /// # Errors
    /// An unknown parameter, named with the ones the route takes.
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Self, LambdaError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if let Some((unknown, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(LambdaError::invalid(format!(
                "unknown query parameter {unknown:?}; this operation takes {}",
                known.join(", ")
            )));
        }
        Ok(Self(pairs))
    }

    /// The parameter's value; the last one when it is repeated.
    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean, `true` or `false`; `default` when absent.
    ///
    /// # Errors
    /// Any other text.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, LambdaError> {
        match self.one(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(LambdaError::invalid(format!(
                "{name} must be true or false, got {other:?}"
            ))),
        }
    }

    /// `MaxItems`: 0..=1000, where 0 (or absent) is the default of 100.
    ///
    /// # Errors
    /// Not a number, or out of range.
    pub fn max_items(&self) -> Result<usize, LambdaError> {
        const DEFAULT: usize = 100;
        match self.one("MaxItems") {
            None => Ok(DEFAULT),
            Some(raw) => match raw.parse::<usize>() {
                Ok(0) => Ok(DEFAULT),
                Ok(n) if n <= 1000 => Ok(n),
                _ => Err(LambdaError::invalid(format!(
                    "MaxItems must be a whole number from 0 to 1000, got {raw:?}"
                ))),
            },
        }
    }

    /// A timestamp (ISO 8601, as botocore writes it in a query string), in milliseconds.
    ///
    /// # Errors
    /// Text that is not an RFC 3339 timestamp.
    pub fn timestamp(&self, name: &str) -> Result<Option<Millis>, LambdaError> {
        self.one(name)
            .map(|raw| {
                OffsetDateTime::parse(raw, &Rfc3339)
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Millis)
                    .map_err(|_| {
                        LambdaError::invalid(format!(
                            "{name} must be an ISO 8601 timestamp such as 2025-01-01T00:00:00Z, \
                             got {raw:?}"
                        ))
                    })
            })
            .transpose()
    }
}

/// An error as the Lambda API carries it (`ErrorObject`): the body of StopDurableExecution and
/// SendDurableExecutionCallbackFailure, and the `Error` of GetDurableExecution.
#[derive(Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ErrorObject {
    #[serde(rename = "ErrorType", default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(
        rename = "ErrorMessage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error_message: Option<String>,
    #[serde(rename = "ErrorData", default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<String>,
    #[serde(
        rename = "StackTrace",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stack_trace: Option<Vec<String>>,
}

/// The most an `ErrorObject` body may hold: the service model's 1 MB.
pub const MAX_ERROR_BYTES: usize = 1024 * 1024;

impl ErrorObject {
    /// Reads a body that is an `ErrorObject`; an empty body is `None`.
    ///
    /// # Errors
    /// A body that is not one, with what was wrong.
    pub fn parse(body: &[u8]) -> Result<Option<Self>, LambdaError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(body).map(Some).map_err(|e| {
            LambdaError::invalid(format!(
                "the body must be an ErrorObject {{ErrorType, ErrorMessage, ErrorData, \
                 StackTrace}}: {e}"
            ))
        })
    }

    /// As the journal records it, with `default_type` and `default_message` where the object
    /// leaves them out. A stack trace has no place in the record; it is dropped.
    pub fn into_record(self, default_type: &str, default_message: &str) -> ErrorRecord {
        let mut record = ErrorRecord::new(
            self.error_type.unwrap_or_else(|| default_type.into()),
            self.error_message.unwrap_or_else(|| default_message.into()),
        );
        record.error_data = self.error_data;
        record
    }

    pub fn of(record: &ErrorRecord) -> Self {
        Self {
            error_type: Some(record.error_type.clone()),
            error_message: Some(record.error_message.clone()),
            error_data: record.error_data.clone(),
            stack_trace: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_repeat_their_key_and_unknown_names_are_refused() {
        let p = Params::parse(
            Some("Statuses=RUNNING&Statuses=SUCCEEDED&MaxItems=5&ReverseOrder=true"),
            &["Statuses", "MaxItems", "ReverseOrder"],
        )
        .unwrap();
        assert_eq!(p.all("Statuses"), ["RUNNING", "SUCCEEDED"]);
        assert_eq!(p.max_items().unwrap(), 5);
        assert!(p.flag("ReverseOrder", false).unwrap());
        assert!(!p.flag("Other", false).unwrap());
        let e = Params::parse(Some("Marker=x&Colour=red"), &["Marker"])
            .err()
            .unwrap();
        assert!(e.message.contains("\"Colour\""), "{}", e.message);
    }

    #[test]
    fn numbers_flags_and_timestamps_are_checked() {
        let p = |q| {
            Params::parse(
                Some(q),
                &["MaxItems", "IncludeExecutionData", "StartedAfter"],
            )
            .unwrap()
        };
        assert_eq!(p("MaxItems=0").max_items().unwrap(), 100);
        assert_eq!(p("MaxItems=1000").max_items().unwrap(), 1000);
        assert!(p("MaxItems=1001").max_items().is_err());
        assert!(p("MaxItems=-1").max_items().is_err());
        assert!(
            p("IncludeExecutionData=yes")
                .flag("IncludeExecutionData", true)
                .is_err()
        );
        assert_eq!(
            p("StartedAfter=2025-01-01T00:00:01Z")
                .timestamp("StartedAfter")
                .unwrap(),
            Some(1_735_689_601_000)
        );
        assert_eq!(
            p("StartedAfter=2025-01-01T00:00:01.250000Z")
                .timestamp("StartedAfter")
                .unwrap(),
            Some(1_735_689_601_250)
        );
        assert!(
            p("StartedAfter=yesterday")
                .timestamp("StartedAfter")
                .is_err()
        );
    }

    #[test]
    fn an_error_object_reads_with_defaults_and_refuses_other_shapes() {
        assert_eq!(ErrorObject::parse(b"").unwrap(), None);
        let e = ErrorObject::parse(br#"{"ErrorType":"Bad","ErrorData":"{}","StackTrace":["a"]}"#)
            .unwrap()
            .unwrap()
            .into_record("Default.Type", "default message");
        assert_eq!(e.error_type, "Bad");
        assert_eq!(e.error_message, "default message");
        assert_eq!(e.error_data.as_deref(), Some("{}"));
        assert!(ErrorObject::parse(br#"{"errorType":"x"}"#).is_err());
        assert!(ErrorObject::parse(b"[1]").is_err());
    }
}

//! The errors of the Lambda surface, in the shape AWS clients parse: the exception's name in
//! the `x-amzn-ErrorType` header (botocore and the JavaScript SDK read the error code from it;
//! without it an error parses as code `'400'` or `Unknown`), a body `{"Type", "message"}` or
//! `{"Type", "Message"}` (the casing each exception has in the service model), and a request
//! id in `x-amzn-RequestId`.

use crate::api::{ApiError, Code};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// An exception of the Lambda service model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    InvalidParameterValue,
    InvalidRequestContent,
    RequestTooLarge,
    ResourceNotFound,
    ResourceConflict,
    DurableExecutionAlreadyStarted,
    CallbackTimeout,
    TooManyRequests,
    Service,
    /// The request is not signed, on a host that requires keys.
    MissingAuthenticationToken,
    /// The access key id names no key (or a revoked one).
    UnrecognizedClient,
    /// The signature does not match the request.
    InvalidSignature,
    /// The key is known but cannot sign (see the message).
    AccessDenied,
}

impl Exception {
    /// The name clients match on, and the HTTP status it comes with.
    fn name_and_status(self) -> (&'static str, StatusCode) {
        use Exception as E;
        match self {
            E::InvalidParameterValue => ("InvalidParameterValueException", StatusCode::BAD_REQUEST),
            E::InvalidRequestContent => ("InvalidRequestContentException", StatusCode::BAD_REQUEST),
            E::RequestTooLarge => ("RequestTooLargeException", StatusCode::PAYLOAD_TOO_LARGE),
            E::ResourceNotFound => ("ResourceNotFoundException", StatusCode::NOT_FOUND),
            E::ResourceConflict => ("ResourceConflictException", StatusCode::CONFLICT),
            E::DurableExecutionAlreadyStarted => (
                "DurableExecutionAlreadyStartedException",
                StatusCode::CONFLICT,
            ),
            E::CallbackTimeout => ("CallbackTimeoutException", StatusCode::BAD_REQUEST),
            E::TooManyRequests => ("TooManyRequestsException", StatusCode::TOO_MANY_REQUESTS),
            E::Service => ("ServiceException", StatusCode::INTERNAL_SERVER_ERROR),
            E::MissingAuthenticationToken => {
                ("MissingAuthenticationTokenException", StatusCode::FORBIDDEN)
            }
            E::UnrecognizedClient => ("UnrecognizedClientException", StatusCode::FORBIDDEN),
            E::InvalidSignature => ("InvalidSignatureException", StatusCode::FORBIDDEN),
            E::AccessDenied => ("AccessDeniedException", StatusCode::FORBIDDEN),
        }
    }

    /// The service model writes most messages as `message`, some as `Message`.
    fn message_member(self) -> &'static str {
        use Exception as E;
        match self {
            E::CallbackTimeout
            | E::ResourceNotFound
            | E::DurableExecutionAlreadyStarted
            | E::Service => "Message",
            _ => "message",
        }
    }
}

/// An error answer of the Lambda surface.
#[derive(Debug)]
pub struct LambdaError {
    pub exception: Exception,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, at least 1) with a `TooManyRequestsException`.
    pub retry_after: Option<Duration>,
}

impl LambdaError {
    pub fn new(exception: Exception, message: impl Into<String>) -> Self {
        Self {
            exception,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Exception::InvalidParameterValue, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Exception::ResourceNotFound, message)
    }
}

/// The request id AWS clients log with an error: 128 random bits shaped as a UUID.
pub fn request_id() -> String {
    let hex = crate::ids::ExecutionId::generate().as_str()[3..].to_string();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl IntoResponse for LambdaError {
    fn into_response(self) -> Response {
        let (name, status) = self.exception.name_and_status();
        let kind = if status.is_server_error() {
            "Service"
        } else {
            "User"
        };
        let mut body = serde_json::Map::new();
        body.insert("Type".into(), kind.into());
        body.insert(self.exception.message_member().into(), self.message.into());
        if self.exception == Exception::TooManyRequests {
            body.insert("Reason".into(), "CallerRateLimitExceeded".into());
        }
        let mut response = (status, axum::Json(serde_json::Value::Object(body))).into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(name));
        if let Some(wait) = self.retry_after {
            // Rounded up: a client that waits what it is told finds a token there.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// The host's own errors, from the parts the Lambda surface shares with `/v1` (body reading,
/// the runtime's start and stop), as the exception of the same meaning.
impl From<ApiError> for LambdaError {
    fn from(e: ApiError) -> Self {
        let exception = match (e.status, e.code) {
            (_, Code::InvalidJson) => Exception::InvalidRequestContent,
            (StatusCode::PAYLOAD_TOO_LARGE, _) => Exception::RequestTooLarge,
            (StatusCode::NOT_FOUND, _) => Exception::ResourceNotFound,
            (StatusCode::CONFLICT, Code::ExecutionNameConflict) => {
                Exception::DurableExecutionAlreadyStarted
            }
            (StatusCode::CONFLICT, _) => Exception::ResourceConflict,
            (StatusCode::TOO_MANY_REQUESTS, _) => Exception::TooManyRequests,
            (s, _) if s.is_client_error() => Exception::InvalidParameterValue,
            _ => Exception::Service,
        };
        Self {
            exception,
            message: e.message,
            retry_after: e.retry_after,
        }
    }
}

impl From<crate::store::Error> for LambdaError {
    fn from(e: crate::store::Error) -> Self {
        ApiError::store(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn shown(e: LambdaError) -> (StatusCode, Vec<(String, String)>, String) {
        let response = e.into_response();
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn an_error_names_its_exception_in_the_header_and_the_casing_of_its_model() {
        let (status, headers, body) = shown(LambdaError::invalid("bad MaxItems")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(headers.contains(&(
            "x-amzn-errortype".into(),
            "InvalidParameterValueException".into()
        )));
        assert_eq!(body, r#"{"Type":"User","message":"bad MaxItems"}"#);
        let (status, _, body) = shown(LambdaError::not_found("no such execution")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, r#"{"Message":"no such execution","Type":"User"}"#);
        let mut limited = LambdaError::new(Exception::TooManyRequests, "slow down");
        limited.retry_after = Some(Duration::from_millis(1_200));
        let (status, headers, body) = shown(limited).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(headers.contains(&("retry-after".into(), "2".into())));
        assert!(body.contains(r#""Reason":"CallerRateLimitExceeded""#));
    }

    #[test]
    fn host_errors_become_the_exception_of_the_same_meaning() {
        let conflict = ApiError::new(StatusCode::CONFLICT, Code::ExecutionNameConflict, "taken");
        assert_eq!(
            LambdaError::from(conflict).exception,
            Exception::DurableExecutionAlreadyStarted
        );
        let not_json = ApiError::bad_request(Code::InvalidJson, "not JSON");
        assert_eq!(
            LambdaError::from(not_json).exception,
            Exception::InvalidRequestContent
        );
        assert_eq!(
            LambdaError::from(ApiError::bug("x")).exception,
            Exception::Service
        );
    }

    #[test]
    fn request_ids_are_shaped_as_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }
}

//! The one HTTP error type: every domain error maps to a status and a stable code here, and the
//! client gets `{"error": {"code", "message"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, at least 1).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 429 `rate_limited` with `Retry-After`; `message` names the limit.
    pub fn rate_limited(wait: Duration, message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A server-side failure: details go to the log, the client gets a short message.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the host could not complete the request; try again",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = super::openapi::ErrorBody {
            error: super::openapi::ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            // Rounded up: a client that waits what it is told finds a token there.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        ApiError::internal(e)
    }
}

impl From<crate::components::Error> for ApiError {
    fn from(e: crate::components::Error) -> Self {
        use crate::components::Error as E;
        use crate::engine::LoadError;
        match e {
            E::BadName(_) => ApiError::bad_request("invalid_name", e.to_string()),
            E::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            E::Load(LoadError::NotAComponent(_)) => {
                ApiError::bad_request("not_a_component", e.to_string())
            }
            E::Load(LoadError::Incompatible(_)) => {
                ApiError::bad_request("incompatible_component", e.to_string())
            }
            E::Load(LoadError::OverLimits(_)) => {
                ApiError::bad_request("component_over_limits", e.to_string())
            }
            // The upload can simply be sent again.
            E::Share(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "component_storage_unavailable",
                e.to_string(),
            ),
            // The handler adds `Retry-After`.
            E::Busy { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "compile_queue_full",
                e.to_string(),
            ),
            // The component is too costly to compile within the host's limit: sending it
            // again would cost the same.
            E::CompileTimeout { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "compile_timeout",
                e.to_string(),
            ),
            E::Body(_) => ApiError::bad_request("invalid_body", e.to_string()),
            E::Load(LoadError::Io(_)) | E::Store(_) | E::Internal(_) => ApiError::internal(e),
        }
    }
}

impl From<crate::executions::StartError> for ApiError {
    fn from(e: crate::executions::StartError) -> Self {
        use crate::executions::StartError as E;
        match e {
            E::WorkflowNotFound(_) => ApiError::not_found("workflow_not_found", e.to_string()),
            E::NameConflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "execution_name_conflict",
                e.to_string(),
            ),
            E::Invalid(_) => ApiError::bad_request("invalid_request", e.to_string()),
            E::OverQuota(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                e.to_string(),
            ),
            E::Store(e) => ApiError::internal(e),
        }
    }
}

impl From<crate::executions::StopError> for ApiError {
    fn from(e: crate::executions::StopError) -> Self {
        use crate::executions::StopError as E;
        match e {
            E::NotFound => ApiError::not_found("execution_not_found", e.to_string()),
            E::NotRunning => {
                ApiError::new(StatusCode::CONFLICT, "execution_not_running", e.to_string())
            }
            E::Store(e) => ApiError::internal(e),
        }
    }
}

impl From<crate::tenancy::Error> for ApiError {
    fn from(e: crate::tenancy::Error) -> Self {
        use crate::tenancy::Error as E;
        match e {
            E::MissingKey | E::BadKey => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
            }
            E::TenantNotFound => ApiError::not_found("tenant_not_found", e.to_string()),
            E::KeyNotFound => ApiError::not_found("key_not_found", e.to_string()),
            E::NameTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "tenant_name_taken", e.to_string())
            }
            E::BadName(_) => ApiError::bad_request("invalid_name", e.to_string()),
            E::BadQuota(_) => ApiError::bad_request("invalid_quota", e.to_string()),
            E::Store(e) => ApiError::internal(e),
        }
    }
}

impl From<crate::callbacks::Error> for ApiError {
    fn from(e: crate::callbacks::Error) -> Self {
        use crate::callbacks::Error as E;
        match e {
            E::NotFound => ApiError::not_found("callback_not_found", e.to_string()),
            E::AlreadyCompleted => ApiError::new(
                StatusCode::CONFLICT,
                "callback_already_completed",
                e.to_string(),
            ),
            E::TimedOut => ApiError::new(StatusCode::CONFLICT, "callback_timed_out", e.to_string()),
            E::ExecutionEnded => {
                ApiError::new(StatusCode::CONFLICT, "execution_ended", e.to_string())
            }
            E::PayloadTooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            E::TaskMismatch(_) => {
                ApiError::new(StatusCode::CONFLICT, "task_mismatch", e.to_string())
            }
            E::TaskNotBound => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "task_not_bound",
                e.to_string(),
            ),
            E::Store(e) => ApiError::internal(e),
        }
    }
}

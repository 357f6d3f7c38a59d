//! The one HTTP error type: every domain error maps to a status and a stable [`Code`] here,
//! and the client gets `{"error": {"code", "message", "doc"}}`, where `doc` points at the
//! code's entry in `docs/errors/api.md`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Declares [`Code`]: each variant with the string clients see (stable: clients match on it).
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)*) => {
        /// The stable, machine-readable codes of the API's error answers. Each has an entry in
        /// `docs/errors/api.md` (a test holds the two to each other), so a client that gets one
        /// can read what it means and what to do.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
            /// A code of a feature module's own routes, which the generic host does not know.
            Feature(FeatureCode),
        }

        impl Code {
            /// Every code of the generic host, for the check that each one is documented.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The string in error bodies, such as `execution_not_found`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                    Code::Feature(code) => code.0,
                }
            }
        }
    };
}

codes! {
    /// The body is not valid JSON.
    InvalidJson = "invalid_json",
    /// The body does not match the OpenAPI schema, or a parameter is wrong.
    InvalidRequest = "invalid_request",
    InvalidName = "invalid_name",
    InvalidCursor = "invalid_cursor",
    InvalidQuota = "invalid_quota",
    /// A path or query parameter that does not parse (axum's own rejections).
    BadRequest = "bad_request",
    NotAComponent = "not_a_component",
    IncompatibleComponent = "incompatible_component",
    ComponentOverLimits = "component_over_limits",
    /// The request body broke off while it was read.
    InvalidBody = "invalid_body",
    Unauthorized = "unauthorized",
    LinkInvalid = "link_invalid",
    WorkflowNotFound = "workflow_not_found",
    ComponentNotFound = "component_not_found",
    ExecutionNotFound = "execution_not_found",
    CallbackNotFound = "callback_not_found",
    TenantNotFound = "tenant_not_found",
    KeyNotFound = "key_not_found",
    ArtifactNotFound = "artifact_not_found",
    RouteNotFound = "route_not_found",
    MethodNotAllowed = "method_not_allowed",
    /// The client sent the body too slowly.
    RequestTimeout = "request_timeout",
    ExecutionNameConflict = "execution_name_conflict",
    CallbackAlreadyCompleted = "callback_already_completed",
    CallbackTimedOut = "callback_timed_out",
    ExecutionEnded = "execution_ended",
    ExecutionNotRunning = "execution_not_running",
    ComponentInUse = "component_in_use",
    TenantNameTaken = "tenant_name_taken",
    /// An agent answered for another task than the one bound to its callback.
    TaskMismatch = "task_mismatch",
    PayloadTooLarge = "payload_too_large",
    CompileTimeout = "compile_timeout",
    CompileQueueFull = "compile_queue_full",
    QuotaExceeded = "quota_exceeded",
    RateLimited = "rate_limited",
    /// A bug: a handler panicked, or met a failure that retrying cannot mend.
    Internal = "internal",
    /// The host could not complete the request for now (storage busy or unreachable); retry.
    Unavailable = "unavailable",
    ComponentStorageUnavailable = "component_storage_unavailable",
    /// An agent's answer came before its task was bound to the callback; retry.
    TaskNotBound = "task_not_bound",
}

/// An error code a feature module owns (`Code::Feature`), for answers of its own routes: it is
/// written and linked like the host's own codes. Its entry is on the module's page of
/// `docs/errors/`, and `docs/errors/api.md` has a heading for it, under "Feature modules'
/// codes", that links there, so that its `doc` link lands like the others (a test holds each
/// such heading to its entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeatureCode(&'static str);

impl FeatureCode {
    /// The code `code`, the string in error bodies.
    pub const fn new(code: &'static str) -> Self {
        Self(code)
    }
}

impl Code {
    /// Where the code is explained: its entry in the API's error page, relative to the
    /// repository's root (each entry's heading is the code, so the code is its anchor).
    pub fn doc(self) -> String {
        format!("docs/errors/api.md#{}", self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, at least 1).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
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
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, message)
        }
    }

    pub fn bad_request(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A server-side failure that may pass (a disk or backend error): details go to the log,
    /// the client gets a short message and a 503 `unavailable` that says to try again. A
    /// failure that will not pass is [`ApiError::bug`] (500).
    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "the host could not complete the request; try again",
        )
    }

    /// A failure that trying again will not mend (a bug, a corrupt record): 500 `internal`,
    /// with the details in the log only.
    pub fn bug(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            "the host failed on this request",
        )
    }

    /// A store failure: 503 when the store says trying again may help, else 500.
    pub fn store(error: crate::store::Error) -> Self {
        if error.is_retriable() {
            Self::unavailable(error)
        } else {
            Self::bug(error)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = super::openapi::ErrorBody {
            error: super::openapi::ErrorDetail {
                code: self.code.as_str(),
                doc: self.code.doc(),
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
        ApiError::store(e)
    }
}

impl From<crate::components::Error> for ApiError {
    fn from(e: crate::components::Error) -> Self {
        use crate::components::Error as E;
        use crate::engine::LoadError;
        match e {
            E::BadName(_) => ApiError::bad_request(Code::InvalidName, e.to_string()),
            E::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::PayloadTooLarge,
                e.to_string(),
            ),
            E::Load(LoadError::NotAComponent(_)) => {
                ApiError::bad_request(Code::NotAComponent, e.to_string())
            }
            E::Load(LoadError::Incompatible(_)) => {
                ApiError::bad_request(Code::IncompatibleComponent, e.to_string())
            }
            E::Load(LoadError::OverLimits(_)) => {
                ApiError::bad_request(Code::ComponentOverLimits, e.to_string())
            }
            // The upload can simply be sent again.
            E::Share(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::ComponentStorageUnavailable,
                e.to_string(),
            ),
            // The handler adds `Retry-After`.
            E::Busy { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                Code::CompileQueueFull,
                e.to_string(),
            ),
            // The component is too costly to compile within the host's limit: sending it
            // again would cost the same.
            E::CompileTimeout { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::CompileTimeout,
                e.to_string(),
            ),
            E::Body(_) => ApiError::bad_request(Code::InvalidBody, e.to_string()),
            E::Store(e) => ApiError::store(e),
            E::Load(LoadError::Io(_)) | E::Internal(_) => ApiError::unavailable(e),
        }
    }
}

impl From<crate::executions::StartError> for ApiError {
    fn from(e: crate::executions::StartError) -> Self {
        use crate::executions::StartError as E;
        match e {
            E::WorkflowNotFound(_) => ApiError::not_found(Code::WorkflowNotFound, e.to_string()),
            E::NameConflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                Code::ExecutionNameConflict,
                e.to_string(),
            ),
            E::Invalid(_) => ApiError::bad_request(Code::InvalidRequest, e.to_string()),
            E::OverQuota(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                Code::QuotaExceeded,
                e.to_string(),
            ),
            E::Store(e) => ApiError::store(e),
        }
    }
}

impl From<crate::executions::StopError> for ApiError {
    fn from(e: crate::executions::StopError) -> Self {
        use crate::executions::StopError as E;
        match e {
            E::NotFound => ApiError::not_found(Code::ExecutionNotFound, e.to_string()),
            E::NotRunning => ApiError::new(
                StatusCode::CONFLICT,
                Code::ExecutionNotRunning,
                e.to_string(),
            ),
            E::Store(e) => ApiError::store(e),
        }
    }
}

impl From<crate::tenancy::Error> for ApiError {
    fn from(e: crate::tenancy::Error) -> Self {
        use crate::tenancy::Error as E;
        match e {
            E::MissingKey | E::BadKey => {
                ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, e.to_string())
            }
            // SigV4 credentials that cannot be checked: refused, as AWS refuses them (403).
            E::UnknownAccessKey(_) | E::NotSigningKey(_) | E::Unseal(_) | E::NoSealingKey => {
                ApiError::new(StatusCode::FORBIDDEN, Code::Unauthorized, e.to_string())
            }
            E::TenantNotFound => ApiError::not_found(Code::TenantNotFound, e.to_string()),
            E::KeyNotFound => ApiError::not_found(Code::KeyNotFound, e.to_string()),
            E::NameTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, Code::TenantNameTaken, e.to_string())
            }
            E::BadName(_) => ApiError::bad_request(Code::InvalidName, e.to_string()),
            E::BadQuota(_) => ApiError::bad_request(Code::InvalidQuota, e.to_string()),
            E::Store(e) => ApiError::store(e),
        }
    }
}

impl From<crate::callbacks::Error> for ApiError {
    fn from(e: crate::callbacks::Error) -> Self {
        use crate::callbacks::Error as E;
        match e {
            E::NotFound => ApiError::not_found(Code::CallbackNotFound, e.to_string()),
            E::AlreadyCompleted => ApiError::new(
                StatusCode::CONFLICT,
                Code::CallbackAlreadyCompleted,
                e.to_string(),
            ),
            E::TimedOut => {
                ApiError::new(StatusCode::CONFLICT, Code::CallbackTimedOut, e.to_string())
            }
            E::ExecutionEnded => {
                ApiError::new(StatusCode::CONFLICT, Code::ExecutionEnded, e.to_string())
            }
            E::PayloadTooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::PayloadTooLarge,
                e.to_string(),
            ),
            E::TaskMismatch(_) => {
                ApiError::new(StatusCode::CONFLICT, Code::TaskMismatch, e.to_string())
            }
            E::TaskNotBound => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::TaskNotBound,
                e.to_string(),
            ),
            E::Store(e) => ApiError::store(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;
    use tower::ServiceExt;

    /// The section of `api.md` that links the feature modules' codes to their pages.
    const FEATURE_SECTION: &str = "## Feature modules' codes\n";

    /// The page `docs/errors/<name>`.
    fn errors_page(name: &str) -> String {
        let path = format!("{}/../docs/errors/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// `api.md` up to the feature modules' codes: the generic host's own.
    fn page() -> String {
        let page = errors_page("api.md");
        page.split(FEATURE_SECTION)
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// The codes `text` documents: its `### `code`` headings, which are also their anchors.
    fn headings(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("### `")?.strip_suffix('`'))
            .map(str::to_string)
            .collect()
    }

    /// The codes `api.md` documents.
    fn documented() -> BTreeSet<String> {
        headings(&page())
    }

    /// The feature modules' codes `api.md` links, each with the line under its heading.
    fn feature_links() -> Vec<(String, String)> {
        let page = errors_page("api.md");
        let section = page
            .split(FEATURE_SECTION)
            .nth(1)
            .expect("the feature section");
        section
            .split("\n### `")
            .skip(1)
            .map(|entry| {
                let (code, rest) = entry.split_once("`\n").expect("a heading");
                (
                    code.to_string(),
                    rest.lines().next().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// A heading there links the code's entry on another page of `docs/errors/`, and no code
    /// of the generic host is one of them: a feature module's `doc` link lands on a heading
    /// that leads to its entry.
    #[test]
    fn each_feature_code_heading_links_its_entry() {
        let links = feature_links();
        assert!(!links.is_empty(), "no feature codes in api.md");
        let generic = documented();
        for (code, line) in links {
            assert!(
                !generic.contains(&code),
                "{code} is also a code of the host"
            );
            let (_, target) = line
                .split_once("](")
                .unwrap_or_else(|| panic!("{code}: no link in {line:?}"));
            let target = target.split(')').next().unwrap_or_default();
            assert_eq!(
                target.split_once('#').map(|(_, anchor)| anchor),
                Some(code.as_str()),
                "{code}: the link should point at its entry: {line:?}"
            );
            let file = target.split('#').next().unwrap_or_default();
            assert!(
                headings(&errors_page(file)).contains(&code),
                "{code}: no entry in docs/errors/{file}"
            );
        }
    }

    #[test]
    fn every_code_is_documented_and_every_documented_code_exists() {
        let codes: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_string()).collect();
        assert_eq!(codes.len(), Code::ALL.len(), "two codes share a string");
        let documented = documented();
        let undocumented: Vec<_> = codes.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "not in docs/errors/api.md: {undocumented:?}"
        );
        let unknown: Vec<_> = documented.difference(&codes).collect();
        assert!(unknown.is_empty(), "documented but not a Code: {unknown:?}");
    }

    #[test]
    fn each_entry_gives_its_code_a_status_and_an_explanation() {
        let page = page();
        for code in Code::ALL {
            let heading = format!("### `{code}`\n");
            let entry = page.split(&heading).nth(1).unwrap_or_default();
            let first = entry.lines().next().unwrap_or_default();
            assert!(
                first.starts_with("**") && first.len() > 12,
                "{code}: the entry should open with its status and say what happened: {first:?}"
            );
            assert_eq!(code.doc(), format!("docs/errors/api.md#{code}"));
        }
    }

    #[tokio::test]
    async fn an_error_body_names_its_code_and_links_its_documentation() {
        let response =
            ApiError::not_found(Code::ExecutionNotFound, "no such execution").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            json!({"error": {
                "code": "execution_not_found",
                "message": "no such execution",
                "doc": "docs/errors/api.md#execution_not_found",
            }})
        );
    }

    #[test]
    fn store_failures_are_503_only_when_trying_again_may_help() {
        use crate::store::Error as E;
        let busy = ApiError::from(E::Retriable("database is locked".into()));
        assert_eq!(
            (busy.status, busy.code),
            (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable)
        );
        for fatal in [
            E::Fatal("corrupt record".into()),
            E::NotFound("execution ex_1".into()),
        ] {
            let answer = ApiError::from(fatal);
            assert_eq!(
                (answer.status, answer.code),
                (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal)
            );
        }
    }

    async fn answer(router: axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
        let request = axum::extract::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_panic_in_request_handling_is_a_500_internal() {
        let router = super::super::error_layers(
            axum::Router::new()
                .route(
                    "/handler",
                    axum::routing::get(|| async {
                        if true {
                            panic!("bug in a handler");
                        }
                        "unreachable"
                    }),
                )
                .route(
                    "/blocking",
                    axum::routing::get(|| async {
                        let value: Result<u32, ApiError> =
                            tokio::task::spawn_blocking(|| panic!("bug in a blocking task"))
                                .await
                                .unwrap_or_else(crate::task::rethrow);
                        value.map(|v| v.to_string())
                    }),
                ),
        );
        for path in ["/handler", "/blocking"] {
            let (status, body) = answer(router.clone(), path).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {body}");
            assert_eq!(body["error"]["code"], "internal", "{path}: {body}");
            assert_eq!(body["error"]["doc"], "docs/errors/api.md#internal");
        }
    }
}

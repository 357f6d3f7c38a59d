//! The AWS Lambda durable-functions API, served beside `/v1` so that AWS clients (boto3's
//! `lambda` client or the AWS CLI with an endpoint URL, the JavaScript SDK) drive the host
//! unchanged: Invoke, GetDurableExecution, GetDurableExecutionHistory,
//! ListDurableExecutionsByFunction, StopDurableExecution and the three callback operations.
//!
//! A function is a workflow (a component by name) and its qualifier a version; an execution is
//! named by an ARN ending with its execution id (`arn.rs`). Requests are SigV4-signed with a
//! tenant's key (`auth.rs`); answers and errors have the service model's shapes (`error.rs`,
//! `wire.rs`): epoch-second timestamps, absent values left out rather than null, the exception
//! in `x-amzn-ErrorType`. The service model (botocore's `lambda` 2015-03-31) is the document
//! of these routes; `/v1/openapi.json` describes `/v1` only. `docs/lambda.md` is the guide.

mod arn;
mod auth;
mod callbacks;
mod error;
mod executions;
mod invoke;
mod wire;

pub use error::{Exception, LambdaError};

use super::AppState;
use crate::config::LambdaConfig;
use crate::ids::TenantId;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;

/// The state of the Lambda routes: the API's, and the `[lambda]` section.
#[derive(Clone)]
pub(super) struct Lambda {
    app: AppState,
    config: Arc<LambdaConfig>,
}

/// The Lambda routes. Each authenticates its own request (a signature covers the body, so the
/// body is read first), so they sit outside the `/v1` key check.
pub(super) fn routes(app: AppState, config: &LambdaConfig) -> Router {
    let state = Lambda {
        app,
        config: Arc::new(config.clone()),
    };
    Router::new()
        .route(
            "/2015-03-31/functions/{function}/invocations",
            post(invoke::invoke),
        )
        .route(
            "/2025-12-01/functions/{function}/durable-executions",
            get(executions::list),
        )
        .route("/2025-12-01/durable-executions/{arn}", get(executions::get))
        .route(
            "/2025-12-01/durable-executions/{arn}/history",
            get(executions::history),
        )
        .route(
            "/2025-12-01/durable-executions/{arn}/stop",
            post(executions::stop),
        )
        .route(
            "/2025-12-01/durable-execution-callbacks/{id}/succeed",
            post(callbacks::succeed),
        )
        .route(
            "/2025-12-01/durable-execution-callbacks/{id}/fail",
            post(callbacks::fail),
        )
        .route(
            "/2025-12-01/durable-execution-callbacks/{id}/heartbeat",
            post(callbacks::heartbeat),
        )
        .layer(middleware::map_response(with_request_id))
        .with_state(state)
}

/// Whether a path is the Lambda surface's, so that an unknown one is answered in its shape.
pub(super) fn is_lambda_path(path: &str) -> bool {
    path.starts_with("/2015-03-31/") || path.starts_with("/2025-12-01/")
}

/// An unknown path under the Lambda surface's prefixes.
pub(super) fn unknown_operation() -> LambdaError {
    LambdaError::new(
        Exception::ResourceNotFound,
        "no such operation: the host serves Invoke, GetDurableExecution, \
         GetDurableExecutionHistory, ListDurableExecutionsByFunction, StopDurableExecution and \
         SendDurableExecutionCallbackSuccess/Failure/Heartbeat",
    )
}

/// Every answer carries a request id, as AWS's do (clients log it with errors).
async fn with_request_id(mut response: Response) -> Response {
    let id = HeaderValue::from_str(&error::request_id()).expect("hex and dashes");
    response.headers_mut().insert("x-amzn-requestid", id);
    response
}

/// Reads the request's body and finds the tenant it acts for (see `auth.rs`), charging the
/// tenant's request rate.
///
/// # Errors
/// A body over the host's limit, or a request the tenant's key did not sign.
async fn signed(s: &Lambda, request: Request) -> Result<(TenantId, Bytes), LambdaError> {
    let (parts, body) = request.into_parts();
    let body = super::body::read(
        axum::body::Body::new(body),
        auth::max_body(&s.app),
        "the request body",
    )
    .await?;
    let tenant = auth::caller(&s.app, &parts, &body).await?;
    Ok((tenant, body))
}

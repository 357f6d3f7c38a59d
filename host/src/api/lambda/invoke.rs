//! Invoke (`POST /2015-03-31/functions/{name}/invocations`), durable part: starts an execution
//! of the workflow the function names. `Event` answers at once (202); `RequestResponse` waits
//! for the execution to end and answers its result, as Lambda does for a durable function.

use super::arn::{self, execution_arn};
use super::error::{Exception, LambdaError};
use super::wire::Params;
use super::{Lambda, signed};
use crate::api::ApiError;
use crate::executions::StartRequest;
use crate::ids::{TenantId, valid_name};
use crate::store::{ExecutionRecord, ExecutionStatus};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// How often a waiting Invoke reads the execution even without a notice that it ended: the
/// notice comes from this host, and another host sharing the store may be the one that ends it.
const RECHECK: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InvocationType {
    Event,
    RequestResponse,
    DryRun,
}

fn invocation_type(headers: &HeaderMap) -> Result<InvocationType, LambdaError> {
    match headers
        .get("x-amz-invocation-type")
        .map(|v| v.to_str().unwrap_or(""))
    {
        None | Some("RequestResponse") => Ok(InvocationType::RequestResponse),
        Some("Event") => Ok(InvocationType::Event),
        Some("DryRun") => Ok(InvocationType::DryRun),
        Some(other) => Err(LambdaError::invalid(format!(
            "X-Amz-Invocation-Type must be Event, RequestResponse or DryRun, got {other:?}"
        ))),
    }
}

/// `X-Amz-Durable-Execution-Name`, checked against the model's pattern.
fn execution_name(headers: &HeaderMap) -> Result<Option<String>, LambdaError> {
    let Some(raw) = headers.get("x-amz-durable-execution-name") else {
        return Ok(None);
    };
    match raw.to_str() {
        Ok(name) if valid_name(name) => Ok(Some(name.to_string())),
        _ => Err(LambdaError::invalid(
            "X-Amz-Durable-Execution-Name must be 1-64 letters, digits, '-' or '_'",
        )),
    }
}

/// The payload as the execution's input: JSON (normalized, so that starting again by name with
/// the same payload is recognized as the same start); an empty payload is `{}`, as Lambda hands
/// a handler invoked without one.
fn input(body: &[u8]) -> Result<String, LambdaError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok("{}".into());
    }
    serde_json::from_slice::<Value>(body)
        .map(|v| v.to_string())
        .map_err(|e| {
            LambdaError::new(
                Exception::InvalidRequestContent,
                format!("Could not parse request body into json: {e}"),
            )
        })
}

pub async fn invoke(
    State(s): State<Lambda>,
    Path(function): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, LambdaError> {
    let headers = request.headers().clone();
    let (tenant, body) = signed(&s, request).await?;
    let params = Params::parse(query.as_deref(), &["Qualifier"])?;
    let function = arn::parse_function(&s.config, &function).map_err(LambdaError::invalid)?;
    let version =
        arn::qualifier(&function, params.one("Qualifier")).map_err(LambdaError::invalid)?;
    let kind = invocation_type(&headers)?;
    let name = execution_name(&headers)?;
    let input = input(&body)?;
    let limit = s.app.rt.tenancy().quotas(&tenant).await.max_payload_bytes();
    if input.len() > limit {
        return Err(LambdaError::new(
            Exception::RequestTooLarge,
            format!(
                "the payload is {} bytes; the tenant's limit is {limit} (max_payload_kb)",
                input.len()
            ),
        ));
    }
    if kind == InvocationType::DryRun {
        return dry_run(&s, &tenant, &function.name, version).await;
    }
    // Subscribed before the start, so an execution that ends at once is not missed.
    let mut finished = s.app.rt.subscribe();
    let start = StartRequest {
        workflow: function.name,
        version,
        input,
        name,
        timeout_seconds: None,
    };
    let (record, _) = s
        .app
        .rt
        .start(&tenant, start)
        .await
        .map_err(ApiError::from)?;
    let mut answer_headers = HeaderMap::new();
    answer_headers.insert(
        "x-amz-durable-execution-arn",
        header_value(&execution_arn(&s.config, &record)),
    );
    answer_headers.insert(
        "x-amz-executed-version",
        header_value(&record.version.to_string()),
    );
    if kind == InvocationType::Event {
        return Ok((StatusCode::ACCEPTED, answer_headers).into_response());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(s.config.invoke_wait_seconds);
    let mut record = record;
    while !record.status.is_terminal() {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        let wake = deadline.min(now + RECHECK);
        match tokio::time::timeout_at(wake, finished.recv()).await {
            Ok(Ok(done)) if done != record.id => continue,
            _ => {}
        }
        record = s
            .app
            .rt
            .execution(&tenant, &record.id)
            .await?
            .unwrap_or(record);
    }
    Ok(outcome(&s, record, answer_headers))
}

/// A function error's body, as Lambda answers an invocation whose handler failed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionError {
    error_type: String,
    error_message: String,
}

/// The answer of a synchronous Invoke: the result of a succeeded execution; otherwise a
/// function error (`X-Amz-Function-Error: Unhandled`) with its error, or, when it still runs
/// after `invoke_wait_seconds`, one saying so (it goes on; its ARN is in the headers).
fn outcome(s: &Lambda, record: ExecutionRecord, mut headers: HeaderMap) -> Response {
    if record.status == ExecutionStatus::Succeeded {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let result = record.result.unwrap_or_else(|| "null".into());
        return (StatusCode::OK, headers, result).into_response();
    }
    headers.insert(
        "x-amz-function-error",
        HeaderValue::from_static("Unhandled"),
    );
    let error = match (&record.error, record.status) {
        (_, ExecutionStatus::Running) => FunctionError {
            error_type: "Aegis.InvokeWaitExceeded".into(),
            error_message: format!(
                "the durable execution {} still runs after {} s (lambda.invoke_wait_seconds); it \
                 goes on: follow it with GetDurableExecution",
                execution_arn(&s.config, &record),
                s.config.invoke_wait_seconds
            ),
        },
        (Some(e), _) => FunctionError {
            error_type: e.error_type.clone(),
            error_message: e.error_message.clone(),
        },
        (None, status) => FunctionError {
            error_type: format!("Execution.{}", status.as_str()),
            error_message: format!("the durable execution ended {}", status.as_str()),
        },
    };
    (StatusCode::OK, headers, axum::Json(error)).into_response()
}

/// A `DryRun`: the function and version exist, and the caller may invoke them (204).
async fn dry_run(
    s: &Lambda,
    tenant: &TenantId,
    workflow: &str,
    version: Option<u32>,
) -> Result<Response, LambdaError> {
    match crate::components::find(&*s.app.rt, tenant, workflow, version).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(LambdaError::not_found(format!(
            "Function not found: {workflow}{}",
            version.map(|v| format!(":{v}")).unwrap_or_default()
        ))),
    }
}

/// Our own ARNs and numbers are plain ASCII.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("ARNs and versions are visible ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invocation_type_and_name_headers_are_checked() {
        let mut h = HeaderMap::new();
        assert_eq!(
            invocation_type(&h).unwrap(),
            InvocationType::RequestResponse
        );
        h.insert("x-amz-invocation-type", HeaderValue::from_static("Event"));
        assert_eq!(invocation_type(&h).unwrap(), InvocationType::Event);
        h.insert("x-amz-invocation-type", HeaderValue::from_static("Later"));
        assert!(invocation_type(&h).is_err());
        assert_eq!(execution_name(&h).unwrap(), None);
        h.insert(
            "x-amz-durable-execution-name",
            HeaderValue::from_static("order-7"),
        );
        assert_eq!(execution_name(&h).unwrap().as_deref(), Some("order-7"));
        h.insert(
            "x-amz-durable-execution-name",
            HeaderValue::from_static("order 7"),
        );
        assert!(execution_name(&h).is_err());
    }

    #[test]
    fn the_payload_is_json_and_empty_is_an_empty_object() {
        assert_eq!(input(b"").unwrap(), "{}");
        assert_eq!(input(b" \n").unwrap(), "{}");
        assert_eq!(
            input(br#"{ "b": 1,  "a": [1, 2] }"#).unwrap(),
            r#"{"a":[1,2],"b":1}"#
        );
        let e = input(b"{not json").unwrap_err();
        assert_eq!(e.exception, Exception::InvalidRequestContent);
    }
}

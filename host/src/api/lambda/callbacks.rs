//! SendDurableExecutionCallbackSuccess, Failure and Heartbeat. Unlike `/v1/callbacks`, where
//! the callback id is the credential, these are signed requests as in AWS: the callback must
//! belong to the signer's tenant, or it is not found.

use super::error::{Exception, LambdaError};
use super::wire::{ErrorObject, MAX_ERROR_BYTES};
use super::{Lambda, signed};
use crate::callbacks::{self, Completion, Error};
use crate::ids::TenantId;
use axum::Json;
use axum::extract::{Path, Request, State};
use serde_json::{Map, Value};

/// The callback operations answer an empty object.
type Empty = Json<Map<String, Value>>;

fn empty() -> Empty {
    Json(Map::new())
}

/// The service model's errors for a callback that cannot take a completion: not found (also
/// when it is closed: it no longer takes any), or timed out.
fn refused(id: &str, e: Error) -> LambdaError {
    match e {
        Error::NotFound | Error::AlreadyCompleted | Error::ExecutionEnded => {
            LambdaError::not_found(format!("callback {id:?} not found or already closed"))
        }
        Error::TimedOut => LambdaError::new(
            Exception::CallbackTimeout,
            format!("callback {id:?} timed out"),
        ),
        Error::PayloadTooLarge { .. } => {
            LambdaError::new(Exception::RequestTooLarge, e.to_string())
        }
        Error::Store(e) => e.into(),
        // Agent pushes only; no completion here names a task.
        Error::TaskMismatch(_) | Error::TaskNotBound => LambdaError::invalid(e.to_string()),
    }
}

/// The signer's waiting callback `id`.
async fn waiting(s: &Lambda, tenant: &TenantId, id: &str) -> Result<(), LambdaError> {
    let record = callbacks::waiting(&s.app.rt, id)
        .await
        .map_err(|e| refused(id, e))?;
    if &record.tenant != tenant {
        return Err(refused(id, Error::NotFound));
    }
    Ok(())
}

async fn complete(
    s: &Lambda,
    tenant: &TenantId,
    id: &str,
    completion: Completion,
) -> Result<Empty, LambdaError> {
    waiting(s, tenant, id).await?;
    callbacks::complete(&s.app.rt, id, completion)
        .await
        .map_err(|e| refused(id, e))?;
    Ok(empty())
}

/// `POST /2025-12-01/durable-execution-callbacks/{id}/succeed`: the body, kept as it came
/// (UTF-8), is the callback's result; an empty body is no result (`null`).
pub async fn succeed(
    State(s): State<Lambda>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Empty, LambdaError> {
    let (tenant, body) = signed(&s, request).await?;
    let result = if body.is_empty() {
        "null".to_string()
    } else {
        String::from_utf8(body.to_vec())
            .map_err(|_| LambdaError::invalid("the callback result must be UTF-8 text"))?
    };
    complete(&s, &tenant, &id, Completion::Succeed(result)).await
}

/// `POST /2025-12-01/durable-execution-callbacks/{id}/fail`: the body is the `ErrorObject`
/// the workflow's callback fails with (empty: `Callback.Failed`).
pub async fn fail(
    State(s): State<Lambda>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Empty, LambdaError> {
    let (tenant, body) = signed(&s, request).await?;
    if body.len() > MAX_ERROR_BYTES {
        return Err(LambdaError::invalid(format!(
            "the error is {} bytes; the most is {MAX_ERROR_BYTES}",
            body.len()
        )));
    }
    let error = ErrorObject::parse(&body)?
        .unwrap_or_default()
        .into_record("Callback.Failed", "the callback was failed by its caller");
    complete(&s, &tenant, &id, Completion::Fail(error)).await
}

/// `POST /2025-12-01/durable-execution-callbacks/{id}/heartbeat`: restarts the callback's
/// heartbeat timeout. Limited per callback like `/v1`'s, since each is a durable write.
pub async fn heartbeat(
    State(s): State<Lambda>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Empty, LambdaError> {
    let (tenant, _) = signed(&s, request).await?;
    waiting(&s, &tenant, &id).await?;
    s.app
        .guards
        .check_callback(&id)
        .map_err(LambdaError::from)?;
    complete(&s, &tenant, &id, Completion::Heartbeat).await
}

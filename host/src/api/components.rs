//! `/v1/components`: upload, list, read and delete workflow components.

use super::{ApiError, AppState, Code, Tenant};
use crate::components::Error;
use crate::components::spool::spool;
use crate::journal::format_ts;
use crate::store::{ComponentRecord, Deleted};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn view(c: &ComponentRecord) -> Value {
    json!({
        "name": c.name,
        "version": c.version,
        "digest": c.digest,
        "size": c.size,
        "created_at": format_ts(c.created_at),
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::Error> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(crate::task::rethrow)?)
}

/// `POST /v1/components/{name}`: the body is spooled to disk as it arrives (never held whole in
/// memory), refused with 413 as soon as it is over the tenant's `max_component_mb`, and compiled
/// only when these bytes are not installed already; a full compile queue is a 429 with
/// `Retry-After`.
pub async fn upload(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let limit = s.rt.tenancy.quotas(&tenant).max_component_bytes() as u64;
    if !crate::components::valid_name(&name) {
        // The body is read and dropped (up to the size limit) before answering: a server that
        // answers and closes while the client still sends makes the client's kernel see a
        // reset, which can destroy the answer before the client reads it.
        drain(request, limit).await;
        return Err(Error::BadName(name.chars().take(100).collect()).into());
    }
    // A declared length over the limit is refused before a byte is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::TooLarge { limit }.into());
    }
    let outcome = match spool(s.uploads.spool_dir(), request.into_data_stream(), limit).await {
        Ok(spooled) => s.uploads.upload(&s.rt, &tenant, &name, spooled).await,
        Err(e) => Err(e.into()),
    };
    match outcome {
        Ok((record, created)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(view(&record))).into_response())
        }
        Err(e @ Error::Busy { retry_after_secs }) => {
            let mut response = ApiError::from(e).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads and drops a body, up to `limit` bytes.
async fn drain(body: Body, limit: u64) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len() as u64;
        if seen > limit {
            break;
        }
    }
}

pub async fn list(State(s): State<AppState>, tenant: Tenant) -> Result<Json<Value>, ApiError> {
    let store = s.rt.store.clone();
    let records = blocking(move || store.components(&tenant, None)).await?;
    Ok(Json(
        json!({"components": records.iter().map(view).collect::<Vec<_>>()}),
    ))
}

pub async fn versions(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = s.rt.store.clone();
    let key = name.clone();
    let records = blocking(move || store.components(&tenant, Some(&key))).await?;
    if records.is_empty() {
        return Err(not_found(&name));
    }
    Ok(Json(
        json!({"name": name, "versions": records.iter().map(view).collect::<Vec<_>>()}),
    ))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(
        Code::ComponentNotFound,
        format!("component {name:?} not found"),
    )
}

pub async fn version(
    State(s): State<AppState>,
    tenant: Tenant,
    Path((name, version)): Path<(String, u32)>,
) -> Result<Json<Value>, ApiError> {
    let store = s.rt.store.clone();
    let key = name.clone();
    let record = blocking(move || store.find_component(&tenant, &key, Some(version))).await?;
    record
        .map(|r| Json(view(&r)))
        .ok_or_else(|| not_found(&format!("{name} v{version}")))
}

pub async fn remove(
    State(s): State<AppState>,
    tenant: Tenant,
    Path((name, version)): Path<(String, u32)>,
) -> Result<StatusCode, ApiError> {
    let store = s.rt.store.clone();
    let key = name.clone();
    match blocking(move || store.delete_component(&tenant, &key, version)).await? {
        Deleted::Deleted => Ok(StatusCode::NO_CONTENT),
        Deleted::NotFound => Err(not_found(&format!("{name} v{version}"))),
        Deleted::InUse => Err(ApiError::new(
            StatusCode::CONFLICT,
            Code::ComponentInUse,
            format!("component {name:?} v{version} is used by a running execution"),
        )),
    }
}

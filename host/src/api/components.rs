//! `/v1/components`: upload, list, read and delete workflow components.

use super::{ApiError, AppState, Tenant, body};
use crate::journal::format_ts;
use crate::store::{ComponentRecord, Deleted};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
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
        .map_err(ApiError::internal)??)
}

pub async fn upload(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
    request: Body,
) -> Result<Response, ApiError> {
    let limit = s.rt.tenancy.quotas(&tenant).max_component_bytes();
    let bytes = body::read(request, limit, "the component (max_component_mb)").await?;
    let (record, created) =
        crate::components::upload(&s.rt, &tenant, &name, bytes.to_vec(), limit).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&record))).into_response())
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
        "component_not_found",
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
            "component_in_use",
            format!("component {name:?} v{version} is used by a running execution"),
        )),
    }
}

//! `/v1/admin`: tenants, their quotas and keys (admin key only), and `/v1/tenant` (who am I).

use super::{ApiError, AppState, Tenant, body, schema};
use crate::ids::TenantId;
use crate::journal::format_ts;
use crate::store::{KeyRecord, TenantRecord};
use crate::tenancy::{self, Overrides};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

const MAX_ADMIN_BODY: usize = 64 * 1024;

fn tenant_view(s: &AppState, t: &TenantRecord) -> Value {
    json!({
        "tenant_id": t.id,
        "name": t.name,
        "created_at": format_ts(t.created_at),
        "overrides": t.overrides,
        "quotas": s.rt.tenancy.defaults().with(&t.overrides),
    })
}

fn key_view(k: &KeyRecord) -> Value {
    json!({
        "key_id": k.id,
        "created_at": format_ts(k.created_at),
        "revoked_at": k.revoked_at.map(format_ts),
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, tenancy::Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(crate::task::rethrow)
        .map_err(ApiError::from)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    name: String,
    #[serde(default)]
    quotas: Overrides,
}

pub async fn create_tenant(State(s): State<AppState>, request: Body) -> Result<Response, ApiError> {
    let bytes = body::read(request, MAX_ADMIN_BODY, "the request body").await?;
    let req: CreateTenant = schema::parse(&bytes, "CreateTenant")?;
    let tenancy = s.rt.tenancy.clone();
    let (tenant, key) = blocking(move || tenancy.create_tenant(&req.name, req.quotas)).await?;
    let mut view = tenant_view(&s, &tenant);
    view["api_key"] = json!(key.secret);
    view["key_id"] = json!(key.record.id);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub async fn list_tenants(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = s.rt.store.clone();
    let tenants = blocking(move || Ok(store.tenants()?)).await?;
    Ok(Json(
        json!({"tenants": tenants.iter().map(|t| tenant_view(&s, t)).collect::<Vec<_>>()}),
    ))
}

async fn load(s: &AppState, id: String) -> Result<TenantRecord, ApiError> {
    let store = s.rt.store.clone();
    blocking(move || {
        store
            .tenant(&TenantId::from_raw(id))?
            .ok_or(tenancy::Error::TenantNotFound)
    })
    .await
}

pub async fn get_tenant(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = load(&s, id).await?;
    Ok(Json(tenant_view(&s, &tenant)))
}

pub async fn set_quotas(
    State(s): State<AppState>,
    Path(id): Path<String>,
    request: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read(request, MAX_ADMIN_BODY, "the request body").await?;
    let overrides: Overrides = schema::parse(&bytes, "QuotaOverrides")?;
    let tenancy = s.rt.tenancy.clone();
    let tenant = blocking(move || tenancy.set_quotas(&TenantId::from_raw(id), overrides)).await?;
    Ok(Json(tenant_view(&s, &tenant)))
}

pub async fn add_key(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let tenancy = s.rt.tenancy.clone();
    let key = blocking(move || tenancy.add_key(&TenantId::from_raw(id))).await?;
    let mut view = key_view(&key.record);
    view["api_key"] = json!(key.secret);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub async fn list_keys(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = load(&s, id).await?;
    let store = s.rt.store.clone();
    let keys = blocking(move || Ok(store.api_keys(&tenant.id)?)).await?;
    Ok(Json(
        json!({"keys": keys.iter().map(key_view).collect::<Vec<_>>()}),
    ))
}

pub async fn revoke_key(
    State(s): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let tenancy = s.rt.tenancy.clone();
    let key = blocking(move || tenancy.revoke_key(&TenantId::from_raw(id), &key_id)).await?;
    Ok(Json(key_view(&key)))
}

/// `GET /v1/tenant`: the caller's tenant and the quotas it runs under.
pub async fn whoami(State(s): State<AppState>, tenant: Tenant) -> Result<Json<Value>, ApiError> {
    let store = s.rt.store.clone();
    let id = tenant.0.clone();
    let record = blocking(move || Ok(store.tenant(&id)?)).await?;
    let artifacts = s.rt.artifacts.clone();
    let id = tenant.0.clone();
    // What the tenant uses, beside the quota that limits it.
    let artifact_bytes = tokio::task::spawn_blocking(move || artifacts.usage(&id))
        .await
        .unwrap_or_else(crate::task::rethrow)
        .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "tenant_id": tenant.0,
        "name": record.map(|r| r.name),
        "quotas": s.rt.tenancy.quotas(&tenant),
        "usage": {"artifact_bytes": artifact_bytes},
    })))
}

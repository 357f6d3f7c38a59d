//! `/v1/admin`: tenants, their quotas and keys (admin key only), and `/v1/tenant` (who am I).
//!
//! Answer fields are declared in alphabetical order, the order the JSON maps they replace wrote,
//! so the answers' bytes did not change.

use super::openapi::{
    AdminBodyTooLarge, AdminUnauthorized, ErrorBody, QuotaOverridesSchema, QuotasSchema,
    TenantNotFound, Timestamp, Unavailable,
};
use super::{ApiError, AppState, Tenant, body, schema};
use crate::ids::TenantId;
use crate::journal::format_ts;
use crate::store::{KeyRecord, TenantRecord};
use crate::tenancy::{self, Overrides, Quotas};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const MAX_ADMIN_BODY: usize = 64 * 1024;

/// A tenant with its overrides and the effective quotas they make.
#[derive(Serialize, ToSchema)]
#[schema(as = Tenant)]
#[serde(deny_unknown_fields)]
pub struct TenantView {
    #[schema(value_type = Timestamp)]
    created_at: String,
    /// Unique name: 1-64 characters of `[A-Za-z0-9_-]`.
    name: String,
    #[schema(value_type = QuotaOverridesSchema)]
    overrides: Overrides,
    #[schema(value_type = QuotasSchema)]
    quotas: Quotas,
    /// The tenant's id (`tn_...`).
    #[schema(value_type = String)]
    tenant_id: TenantId,
}

/// A tenant just created, with its first API key.
// The fields of `TenantView` are repeated rather than `#[serde(flatten)]`ed: utoipa renders a
// flattened field as an `allOf`, and the JSON's fields would no longer be in one sorted run, so
// the served schema and answer stay flat for clients. (A `//` comment: a `///` line here would
// be the schema's description.)
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// The key itself (`aeg_<key id>_<secret>`), shown only once.
    api_key: String,
    #[schema(value_type = Timestamp)]
    created_at: String,
    /// The key's id (`key_...`), to revoke it.
    key_id: String,
    /// Unique name: 1-64 characters of `[A-Za-z0-9_-]`.
    name: String,
    #[schema(value_type = QuotaOverridesSchema)]
    overrides: Overrides,
    #[schema(value_type = QuotasSchema)]
    quotas: Quotas,
    /// The tenant's id (`tn_...`).
    #[schema(value_type = String)]
    tenant_id: TenantId,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantList {
    tenants: Vec<TenantView>,
}

/// An API key's record; the secret is never shown again.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKey)]
#[serde(deny_unknown_fields)]
pub struct KeyView {
    #[schema(value_type = Timestamp)]
    created_at: String,
    /// The key's id (`key_...`).
    key_id: String,
    /// When it was revoked; null while valid.
    #[schema(value_type = Option<Timestamp>, required = true)]
    revoked_at: Option<String>,
}

/// A key just made, with its secret.
// The fields of `KeyView` are repeated rather than flattened, as in `NewTenant`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// The key itself (`aeg_<key id>_<secret>`), shown only once.
    api_key: String,
    #[schema(value_type = Timestamp)]
    created_at: String,
    key_id: String,
    /// Always null: a new key is valid.
    #[schema(value_type = Option<Timestamp>, required = true)]
    revoked_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyList {
    keys: Vec<KeyView>,
}

/// The caller's tenant (`GET /v1/tenant`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    /// Null for the default tenant of a host without an admin key.
    #[schema(required = true)]
    name: Option<String>,
    #[schema(value_type = QuotasSchema)]
    quotas: Quotas,
    #[schema(value_type = String)]
    tenant_id: TenantId,
    usage: Usage,
}

/// What the tenant uses of its quotas.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Bytes of artifacts stored, counted against `max_artifact_mb` (MiB).
    artifact_bytes: u64,
}

fn tenant_view(s: &AppState, t: &TenantRecord) -> TenantView {
    TenantView {
        created_at: format_ts(t.created_at),
        name: t.name.clone(),
        overrides: t.overrides.clone(),
        quotas: s.rt.tenancy().defaults().with(&t.overrides),
        tenant_id: t.id.clone(),
    }
}

fn key_view(k: &KeyRecord) -> KeyView {
    KeyView {
        created_at: format_ts(k.created_at),
        key_id: k.id.clone(),
        revoked_at: k.revoked_at.map(format_ts),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Unique name: 1-64 characters of `[A-Za-z0-9_-]`, or 400 `invalid_name`.
    name: String,
    #[serde(default)]
    #[schema(value_type = QuotaOverridesSchema)]
    quotas: Overrides,
}

const TENANT_ID: &str = "The tenant id (`tn_...`).";

#[utoipa::path(post, path = "/v1/admin/tenants", tag = "admin", operation_id = "createTenant",
    summary = "Create a tenant with its first API key (admin key)",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created; `api_key` is shown only here.", body = NewTenant),
        (status = 400, description = "`invalid_json`: the body is not JSON; `invalid_request`: the body does not match `CreateTenant`; `invalid_name`: the name is not 1-64 characters of `[A-Za-z0-9_-]`; `invalid_quota`: a quota is out of its range (see `Quotas`).", body = ErrorBody),
        (status = 401, response = AdminUnauthorized),
        (status = 409, description = "`tenant_name_taken`: a tenant has this name.", body = ErrorBody),
        (status = 413, response = AdminBodyTooLarge),
        (status = 503, response = Unavailable),
    ))]
pub async fn create_tenant(State(s): State<AppState>, request: Body) -> Result<Response, ApiError> {
    let bytes = body::read(request, MAX_ADMIN_BODY, "the request body").await?;
    let req: CreateTenant = schema::parse(&bytes, "CreateTenant")?;
    let (tenant, key) = s.rt.tenancy().create_tenant(&req.name, req.quotas).await?;
    let view = tenant_view(&s, &tenant);
    let created = NewTenant {
        api_key: key.secret,
        created_at: view.created_at,
        key_id: key.record.id,
        name: view.name,
        overrides: view.overrides,
        quotas: view.quotas,
        tenant_id: view.tenant_id,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/v1/admin/tenants", tag = "admin", operation_id = "listTenants",
    summary = "Every tenant with its effective quotas (admin key)",
    responses(
        (status = 200, description = "The tenants.", body = TenantList),
        (status = 401, response = AdminUnauthorized),
        (status = 503, response = Unavailable),
    ))]
pub async fn list_tenants(State(s): State<AppState>) -> Result<Json<TenantList>, ApiError> {
    let tenants = s.rt.tenancy().tenants().await?;
    let tenants = tenants.iter().map(|t| tenant_view(&s, t)).collect();
    Ok(Json(TenantList { tenants }))
}

async fn load(s: &AppState, id: String) -> Result<TenantRecord, ApiError> {
    Ok(s.rt
        .tenancy()
        .tenant(&TenantId::from_raw(id))
        .await?
        .ok_or(tenancy::Error::TenantNotFound)?)
}

#[utoipa::path(get, path = "/v1/admin/tenants/{id}", tag = "admin", operation_id = "getTenant",
    summary = "One tenant with its effective quotas (admin key)",
    params(("id" = String, Path, description = TENANT_ID)),
    responses(
        (status = 200, description = "The tenant.", body = TenantView),
        (status = 401, response = AdminUnauthorized),
        (status = 404, response = TenantNotFound),
        (status = 503, response = Unavailable),
    ))]
pub async fn get_tenant(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = load(&s, id).await?;
    Ok(Json(tenant_view(&s, &tenant)))
}

#[utoipa::path(put, path = "/v1/admin/tenants/{id}/quotas", tag = "admin",
    operation_id = "setTenantQuotas", summary = "Replace a tenant's quota overrides (admin key)",
    description = "The body replaces every override: a field left out goes back to the host's default.",
    params(("id" = String, Path, description = TENANT_ID)),
    request_body = QuotaOverridesSchema,
    responses(
        (status = 200, description = "The tenant with its new quotas.", body = TenantView),
        (status = 400, description = "`invalid_json`: the body is not JSON; `invalid_request`: the body does not match `QuotaOverrides`; `invalid_quota`: a quota is out of its range (see `Quotas`).", body = ErrorBody),
        (status = 401, response = AdminUnauthorized),
        (status = 404, response = TenantNotFound),
        (status = 413, response = AdminBodyTooLarge),
        (status = 503, response = Unavailable),
    ))]
pub async fn set_quotas(
    State(s): State<AppState>,
    Path(id): Path<String>,
    request: Body,
) -> Result<Json<TenantView>, ApiError> {
    let bytes = body::read(request, MAX_ADMIN_BODY, "the request body").await?;
    let overrides: Overrides = schema::parse(&bytes, "QuotaOverrides")?;
    let tenant =
        s.rt.tenancy()
            .set_quotas(&TenantId::from_raw(id), overrides)
            .await?;
    Ok(Json(tenant_view(&s, &tenant)))
}

#[utoipa::path(post, path = "/v1/admin/tenants/{id}/keys", tag = "admin",
    operation_id = "addApiKey", summary = "Add an API key to a tenant (admin key)",
    params(("id" = String, Path, description = TENANT_ID)),
    responses(
        (status = 201, description = "Created; `api_key` is shown only here.", body = NewApiKey),
        (status = 401, response = AdminUnauthorized),
        (status = 404, response = TenantNotFound),
        (status = 503, response = Unavailable),
    ))]
pub async fn add_key(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = s.rt.tenancy().add_key(&TenantId::from_raw(id)).await?;
    let view = key_view(&key.record);
    let created = NewApiKey {
        api_key: key.secret,
        created_at: view.created_at,
        key_id: view.key_id,
        revoked_at: view.revoked_at,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/v1/admin/tenants/{id}/keys", tag = "admin",
    operation_id = "listApiKeys", summary = "A tenant's API keys, revoked ones included (admin key)",
    params(("id" = String, Path, description = TENANT_ID)),
    responses(
        (status = 200, description = "The keys (never their secrets).", body = ApiKeyList),
        (status = 401, response = AdminUnauthorized),
        (status = 404, response = TenantNotFound),
        (status = 503, response = Unavailable),
    ))]
pub async fn list_keys(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let tenant = load(&s, id).await?;
    let keys = s.rt.tenancy().keys(&tenant.id).await?;
    Ok(Json(ApiKeyList {
        keys: keys.iter().map(key_view).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/admin/tenants/{id}/keys/{key_id}", tag = "admin",
    operation_id = "revokeApiKey", summary = "Revoke an API key (admin key)",
    description = "Later requests with the key get 401. Revoking a revoked key changes nothing.",
    params(
        ("id" = String, Path, description = TENANT_ID),
        ("key_id" = String, Path, description = "The key's id (`key_...`), as listed; not the key itself."),
    ),
    responses(
        (status = 200, description = "The revoked key.", body = KeyView),
        (status = 401, response = AdminUnauthorized),
        (status = 404, description = "`key_not_found`: the tenant has no key with this id (or there is no such tenant).", body = ErrorBody),
        (status = 503, response = Unavailable),
    ))]
pub async fn revoke_key(
    State(s): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<Json<KeyView>, ApiError> {
    let key =
        s.rt.tenancy()
            .revoke_key(&TenantId::from_raw(id), &key_id)
            .await?;
    Ok(Json(key_view(&key)))
}

/// `GET /v1/tenant`: the caller's tenant and the quotas it runs under.
#[utoipa::path(get, path = "/v1/tenant", tag = "tenant", operation_id = "whoami",
    summary = "The caller's tenant, the quotas it runs under and its usage",
    responses(
        (status = 200, description = "The caller's tenant.", body = Caller),
    ))]
pub async fn whoami(State(s): State<AppState>, tenant: Tenant) -> Result<Json<Caller>, ApiError> {
    let record = s.rt.tenancy().tenant(&tenant.0).await?;
    // What the tenant uses, beside the quota that limits it.
    let artifact_bytes =
        s.rt.artifacts()
            .usage(&tenant.0)
            .await
            .map_err(ApiError::unavailable)?;
    Ok(Json(Caller {
        name: record.map(|r| r.name),
        quotas: s.rt.tenancy().quotas(&tenant).await,
        tenant_id: tenant.0,
        usage: Usage { artifact_bytes },
    }))
}

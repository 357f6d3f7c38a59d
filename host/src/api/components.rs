//! `/v1/components`: upload, list, read and delete workflow components.

use super::openapi::{BadParameter, ComponentNotFound, Digest, ErrorBody, Timestamp, Wasm};
use super::{ApiError, AppState, Code, Tenant};
use crate::components::spool::spool;
use crate::components::{self, Error};
use crate::journal::format_ts;
use crate::store::{ComponentRecord, Deleted};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One version of a workflow component. Fields in alphabetical order, as the JSON map this
/// replaced wrote them.
#[derive(Serialize, ToSchema)]
#[schema(as = Component)]
#[serde(deny_unknown_fields)]
pub struct View {
    #[schema(value_type = Timestamp)]
    created_at: String,
    /// SHA-256 of the component's bytes.
    #[schema(value_type = Digest)]
    digest: crate::ids::ComponentDigest,
    /// The workflow name.
    name: String,
    /// Size in bytes.
    size: u64,
    /// Version number, from 1, per name.
    #[schema(minimum = 1)]
    version: u32,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentList {
    components: Vec<View>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentVersions {
    name: String,
    #[schema(min_items = 1)]
    versions: Vec<View>,
}

const NAME: &str = "The workflow (component) name: 1-64 characters of `[A-Za-z0-9_-]`.";
const VERSION: &str = "A version number, from 1.";

fn view(c: &ComponentRecord) -> View {
    View {
        created_at: format_ts(c.created_at),
        digest: c.digest.clone(),
        name: c.name.clone(),
        size: c.size,
        version: c.version,
    }
}

/// `POST /v1/components/{name}`: the body is spooled to disk as it arrives (never held whole in
/// memory), refused with 413 as soon as it is over the tenant's `max_component_mb`, and compiled
/// only when these bytes are not installed already; a full compile queue is a 429 with
/// `Retry-After`.
#[utoipa::path(post, path = "/v1/components/{name}", tag = "components",
    operation_id = "uploadComponent",
    summary = "Upload a component as the next version of a workflow",
    description = "The host checks the bytes are a WebAssembly component implementing `aegis:workflow/workflow-component`, stores them by digest and gives them the next version number. Uploading bytes identical to an existing version answers that version (200). The body may be at most the tenant's `max_component_mb`; any Content-Type is accepted. The body is streamed to disk and refused (413) as soon as it is over the limit. Bytes already installed on the host are not compiled again, and uploads of the same bytes at once share one compile. Compiles run a few at a time with a bounded queue (429 `compile_queue_full` past it) and a time limit (422 `compile_timeout`).",
    params(("name" = String, Path, description = NAME)),
    request_body(
        description = "The `.wasm` component. The Content-Type is not read: `application/wasm` and `application/octet-stream` are the usual ones.",
        content((Wasm = "application/wasm"), (Wasm = "application/octet-stream")),
    ),
    responses(
        (status = 201, description = "A new version was stored.", body = View),
        (status = 200, description = "The same bytes were uploaded before: that version.", body = View),
        (status = 400, description = "`invalid_name`: the name is not 1-64 characters of `[A-Za-z0-9_-]`; `not_a_component`: the bytes are not a WebAssembly component; `incompatible_component`: the component does not implement `aegis:workflow/workflow-component`, or imports an interface the host does not give workflows (such as `wasi:sockets`); `component_over_limits`: the component has more core instances, memories or tables than one component may (16, 4 and 16).", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the upload is over the tenant's `max_component_mb` (declared in `Content-Length`, or found while streaming).", body = ErrorBody),
        (status = 422, description = "`compile_timeout`: compiling the component took longer than the host's `uploads.compile_timeout_ms`.", body = ErrorBody),
        (status = 429, description = "`compile_queue_full`: the host is compiling and queueing as many components as it accepts (`uploads.compile_concurrency`, `uploads.compile_queue`); or `rate_limited`: the request rate is over the tenant's `requests_per_second` and `request_burst`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ))]
pub async fn upload(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let limit = s.rt.tenancy().quotas(&tenant).await.max_component_bytes() as u64;
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

#[utoipa::path(get, path = "/v1/components", tag = "components", operation_id = "listComponents",
    summary = "Every version of every component of the tenant",
    responses(
        (status = 200, description = "The components.", body = ComponentList),
    ))]
pub async fn list(
    State(s): State<AppState>,
    tenant: Tenant,
) -> Result<Json<ComponentList>, ApiError> {
    let records = components::list(&*s.rt, &tenant, None).await?;
    Ok(Json(ComponentList {
        components: records.iter().map(view).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/components/{name}", tag = "components",
    operation_id = "listComponentVersions", summary = "The versions of one component",
    params(("name" = String, Path, description = NAME)),
    responses(
        (status = 200, description = "The versions, oldest first.", body = ComponentVersions),
        (status = 404, response = ComponentNotFound),
    ))]
pub async fn versions(
    State(s): State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
) -> Result<Json<ComponentVersions>, ApiError> {
    let records = components::list(&*s.rt, &tenant, Some(&name)).await?;
    if records.is_empty() {
        return Err(not_found(&name));
    }
    Ok(Json(ComponentVersions {
        name,
        versions: records.iter().map(view).collect(),
    }))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(
        Code::ComponentNotFound,
        format!("component {name:?} not found"),
    )
}

#[utoipa::path(get, path = "/v1/components/{name}/versions/{version}", tag = "components",
    operation_id = "getComponentVersion", summary = "One version of a component",
    params(
        ("name" = String, Path, description = NAME),
        ("version" = u32, Path, description = VERSION, maximum = 4294967295u32),
    ),
    responses(
        (status = 200, description = "The version.", body = View),
        (status = 400, response = BadParameter),
        (status = 404, response = ComponentNotFound),
    ))]
pub async fn version(
    State(s): State<AppState>,
    tenant: Tenant,
    Path((name, version)): Path<(String, u32)>,
) -> Result<Json<View>, ApiError> {
    let record = components::find(&*s.rt, &tenant, &name, Some(version)).await?;
    record
        .map(|r| Json(view(&r)))
        .ok_or_else(|| not_found(&format!("{name} v{version}")))
}

#[utoipa::path(delete, path = "/v1/components/{name}/versions/{version}", tag = "components",
    operation_id = "deleteComponentVersion", summary = "Delete one version of a component",
    params(
        ("name" = String, Path, description = NAME),
        ("version" = u32, Path, description = VERSION, maximum = 4294967295u32),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = BadParameter),
        (status = 404, response = ComponentNotFound),
        (status = 409, description = "`component_in_use`: a running execution is pinned to this version.", body = ErrorBody),
    ))]
pub async fn remove(
    State(s): State<AppState>,
    tenant: Tenant,
    Path((name, version)): Path<(String, u32)>,
) -> Result<StatusCode, ApiError> {
    match components::delete(&*s.rt, &tenant, &name, version).await? {
        Deleted::Deleted => Ok(StatusCode::NO_CONTENT),
        Deleted::NotFound => Err(not_found(&format!("{name} v{version}"))),
        Deleted::InUse => Err(ApiError::new(
            StatusCode::CONFLICT,
            Code::ComponentInUse,
            format!("component {name:?} v{version} is used by a running execution"),
        )),
    }
}

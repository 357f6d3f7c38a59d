//! The HTTP API. Only this module knows JSON wire shapes; it turns requests into calls on the
//! runtime and domain errors into [`ApiError`]s.
//!
//! Every resource belongs to a tenant. The tenant of a request comes from its API key (see
//! `tenancy`); another tenant's resource answers exactly like a missing one (404). Callbacks and
//! presigned artifact links carry their own capability and need no key.
//!
//! Routes: see `router` below. Each handler carries its `#[utoipa::path]` description and
//! answers typed bodies; `openapi.rs` assembles them into the OpenAPI document (served at
//! `GET /v1/openapi.json`), which `openapi_tests.rs` keeps true to this router. Feature modules
//! add their own routes and documents as [`Extension`]s (`extension.rs`). The web console at
//! `/ui` (`console/`) is files only: a browser client of these routes, outside the document.

mod admin;
mod agents;
mod artifacts;
mod body;
mod callbacks;
mod components;
mod console;
mod error;
mod events;
mod executions;
pub mod extension;
mod guard;
mod history;
mod lambda;
mod logs;
mod openapi;
#[cfg(test)]
mod openapi_tests;
mod schema;
mod scrape;
pub mod sigv4;

pub use body::Deadline;
pub use error::{ApiError, Code, FeatureCode};
pub use extension::Extension;

use crate::config::Config;
use crate::executions::Runtime;
use crate::ids::TenantId;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    rt: Arc<Runtime>,
    /// The OpenAPI document served: the generic one with the extensions' merged in.
    document: axum::body::Bytes,
    /// Component uploads: the spool folder, the compile gate, compiles in flight.
    uploads: Arc<crate::components::Uploads>,
    /// Rate limits of the routes that take no key.
    guards: Arc<guard::Guards>,
}

/// The HTTP router of the host, with the default configuration and no extension.
pub fn router(rt: Arc<Runtime>) -> Router {
    router_with_config(rt, &Config::default(), &[])
}

/// The HTTP router of the host; `config` gives the API's own settings (uploads, the server's
/// rates), and `extensions` the routes of the feature modules the host runs with.
pub fn router_with_config(
    rt: Arc<Runtime>,
    config: &Config,
    extensions: &[Box<dyn Extension>],
) -> Router {
    // Compile the document's schemas now: a broken document stops the host at start.
    schema::schemas();
    let document = if extensions.is_empty() {
        axum::body::Bytes::from_static(openapi::document().as_bytes())
    } else {
        let documents: Vec<_> = extensions
            .iter()
            .map(|e| (e.document(), e.tags_after()))
            .collect();
        axum::body::Bytes::from(openapi::document_with(&documents))
    };
    let uploads = Arc::new(crate::components::Uploads::new(
        &config.uploads,
        &rt.components_dir().join("uploads"),
    ));
    let state = AppState {
        rt: rt.clone(),
        document,
        uploads,
        guards: Arc::new(guard::Guards::new(&config.server)),
    };
    let tenant_routes = Router::new()
        .route("/v1/tenant", get(admin::whoami))
        .route("/v1/components", get(components::list))
        .route(
            "/v1/components/{name}",
            post(components::upload).get(components::versions),
        )
        .route(
            "/v1/components/{name}/versions/{version}",
            get(components::version).delete(components::remove),
        )
        .route(
            "/v1/executions",
            post(executions::start).get(executions::list),
        )
        .route("/v1/executions/{id}", get(executions::get))
        .route("/v1/executions/{id}/history", get(executions::history))
        .route("/v1/executions/{id}/logs", get(logs::list))
        .route("/v1/executions/{id}/stop", post(executions::stop))
        .route("/v1/events", get(events::list))
        .route("/v1/events/stream", get(events::stream))
        .route("/v1/events/dead-letters", get(events::dead_letters))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let admin_routes = Router::new()
        .route(
            "/v1/admin/tenants",
            post(admin::create_tenant).get(admin::list_tenants),
        )
        .route("/v1/admin/tenants/{id}", get(admin::get_tenant))
        .route("/v1/admin/tenants/{id}/quotas", put(admin::set_quotas))
        .route(
            "/v1/admin/tenants/{id}/keys",
            post(admin::add_key).get(admin::list_keys),
        )
        .route(
            "/v1/admin/tenants/{id}/keys/{key_id}",
            delete(admin::revoke_key),
        )
        .route("/v1/admin/dead-letters", get(events::all_dead_letters))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    // The callback id (or agent token) is the credential: no key, so a rate per source address.
    let capability_routes = Router::new()
        .route("/v1/callbacks/{id}/succeed", post(callbacks::succeed))
        .route("/v1/callbacks/{id}/fail", post(callbacks::fail))
        .route("/v1/callbacks/{id}/heartbeat", post(callbacks::heartbeat))
        .route("/v1/agents/callbacks", post(agents::without_token))
        .route("/v1/agents/callbacks/{token}", post(agents::with_token))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::limit_address,
        ));
    let mut router = Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(scrape::metrics))
        .route("/v1/openapi.json", get(openapi))
        .merge(tenant_routes)
        .merge(admin_routes)
        .merge(capability_routes)
        .route(
            "/v1/artifacts/{tenant}/{execution}/{*key}",
            get(callbacks::artifact),
        )
        .with_state(state.clone());
    router = router.merge(lambda::routes(state.clone(), &config.lambda));
    for extension in extensions {
        let routes = extension
            .routes(rt.clone())
            .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
        router = router.merge(routes);
    }
    let scripts: Vec<_> = extensions
        .iter()
        .filter_map(|e| e.console_script())
        .collect();
    router = router.merge(console::routes(&scripts));
    // The fallback and the error layers come last, so that they cover the extensions' routes.
    let router = router.fallback(|uri: axum::http::Uri| async move {
        if lambda::is_lambda_path(uri.path()) {
            lambda::unknown_operation().into_response()
        } else {
            ApiError::not_found(Code::RouteNotFound, "no such route").into_response()
        }
    });
    error_layers(router)
}

/// The layers that give every error answer the JSON shape: axum's own rejections are turned
/// into it, and a panic anywhere in a request's handling (a handler, a middleware, a blocking
/// task re-raised by [`crate::task::rethrow`]) answers 500 `internal`.
fn error_layers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(middleware::map_response(json_errors)).layer(
        tower_http::catch_panic::CatchPanicLayer::custom(panic_response),
    )
}

/// The liveness answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Health {
    status: HealthStatus,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum HealthStatus {
    Ok,
}

#[utoipa::path(get, path = "/healthz", tag = "health", operation_id = "health",
    summary = "Liveness", security(()),
    responses((status = 200, description = "The host is up.", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

/// The document as a schema: any OpenAPI object (its own schema would be the OpenAPI spec's).
struct OpenApiDocument;

openapi::schema!(
    OpenApiDocument,
    "OpenApiDocument",
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .into()
);

#[utoipa::path(get, path = "/v1/openapi.json", tag = "health", operation_id = "openapi",
    summary = "This OpenAPI document", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.",
        body = OpenApiDocument)))]
async fn openapi(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.document.clone(),
    )
        .into_response()
}

/// Finds the request's tenant from its key and charges its request rate.
async fn authenticate(State(s): State<AppState>, mut request: Request, next: Next) -> Response {
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let tenant = match s.rt.tenancy().authenticate(auth).await {
        Ok(tenant) => tenant,
        Err(e @ (crate::tenancy::Error::MissingKey | crate::tenancy::Error::BadKey)) => {
            return ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, e.to_string())
                .into_response();
        }
        Err(e) => return ApiError::unavailable(e).into_response(),
    };
    if let Err(wait) = s.rt.tenancy().check_rate(&tenant).await {
        let quotas = s.rt.tenancy().quotas(&tenant).await;
        let message = format!(
            "request rate over the limit of {} per second (burst {}): retry after {} ms",
            quotas.requests_per_second,
            quotas.request_burst,
            wait.as_millis()
        );
        return ApiError::rate_limited(wait, message).into_response();
    }
    request.extensions_mut().insert(tenant);
    next.run(request).await
}

async fn require_admin(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !s.rt.tenancy().keyed() {
        let msg = "tenant administration needs an admin key: set admin_key (or AEGIS_ADMIN_KEY)";
        return ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, msg).into_response();
    }
    if !s.rt.tenancy().is_admin(auth) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
            "invalid admin key",
        )
        .into_response();
    }
    next.run(request).await
}

/// Turns error responses that did not come from our handlers (axum's own rejections: a bad path
/// parameter, a wrong method, an oversized body) into the JSON error shape.
async fn json_errors(mut response: Response) -> Response {
    // An answer given before the body was read (a body over its limit) ends the connection;
    // saying so lets pooled clients open a new one instead of losing their next request.
    if matches!(
        response.status(),
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
    ) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => Code::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => Code::PayloadTooLarge,
        StatusCode::NOT_FOUND => Code::RouteNotFound,
        s if s.is_client_error() => Code::BadRequest,
        _ => Code::Unavailable,
    };
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_string();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_lowercase();
    }
    let mut fixed = ApiError::new(status, code, message).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::CONNECTION] {
        if let Some(v) = parts.headers.get(&name) {
            fixed.headers_mut().insert(name, v.clone());
        }
    }
    fixed
}

fn panic_response(_: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
        "the host failed on this request",
    )
    .into_response()
}

/// The tenant the authentication middleware found.
type Tenant = axum::Extension<TenantId>;

//! `GET /metrics`: the host's metrics in Prometheus's text format ([`crate::telemetry`]), with
//! each tenant's use of its quotas read at the scrape.

use super::AppState;
use super::error::{ApiError, Code};
use crate::ids::TenantId;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The content type of Prometheus's text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`. On a host with an admin key it takes that key (the per-tenant gauges name
/// every tenant); without one it is open, as every route is.
#[utoipa::path(get, path = "/metrics", tag = "health", operation_id = "metrics",
    summary = "Metrics in Prometheus's text format (admin key, when the host has one)",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The metrics: activations, replays, steps, callbacks, timers, store commits, agent dispatches, and each tenant's use of its quotas (`aegis_tenant_usage` beside `aegis_tenant_quota`).", content_type = "text/plain", body = String),
        (status = 401, response = super::openapi::AdminUnauthorized),
        (status = 503, response = super::openapi::Unavailable),
    ))]
pub async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let tenancy = s.rt.tenancy();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if tenancy.keyed() && !tenancy.is_admin(auth) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
            "the metrics need the admin key",
        ));
    }
    let handle = crate::telemetry::recorder();
    let tenants: Vec<TenantId> = if tenancy.keyed() {
        tenancy.tenants().await?.into_iter().map(|t| t.id).collect()
    } else {
        vec![TenantId::default_tenant()]
    };
    for tenant in tenants {
        let quotas = tenancy.quotas(&tenant).await;
        let artifact_bytes =
            s.rt.artifacts()
                .usage(&tenant)
                .await
                .map_err(ApiError::unavailable)?;
        let id = tenant.to_string();
        let usage = [
            (
                "activation_slots",
                s.rt.slots_held(&tenant) as f64,
                f64::from(quotas.max_activation_slots),
            ),
            (
                "artifact_bytes",
                artifact_bytes as f64,
                quotas.max_artifact_bytes() as f64,
            ),
        ];
        for (quota, used, limit) in usage {
            metrics::gauge!("aegis_tenant_usage", "tenant" => id.clone(), "quota" => quota)
                .set(used);
            metrics::gauge!("aegis_tenant_quota", "tenant" => id.clone(), "quota" => quota)
                .set(limit);
        }
    }
    metrics::gauge!("aegis_activations_waiting").set(s.rt.activations_waiting() as f64);
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], handle.render()).into_response())
}

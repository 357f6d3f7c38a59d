//! The research pipeline, a feature module (Cargo feature `pipeline`, on by default): what the
//! host offers the `research-pipeline` component's users beyond the generic API.
//!
//! - `routes`: its own REST routes (`POST /workflows`, `GET /workflows/{id}`,
//!   `POST /workflows/{id}/approval`, `GET /workflows/{id}/review`), with their wire shapes in
//!   `shapes`;
//! - `review`: the analysis rendered as HTML for the reviewer;
//! - the console's approval pages (`console/approvals.js`), its [`Extension::console_script`];
//! - `config`: its `[pipeline]` section (alias `APPROVAL_TIMEOUT_HOURS`);
//! - [`demo`]: `aegis demo`, a run end to end on one machine.
//!
//! It is the top layer of the host: it builds on the API and the server, and nothing in the
//! generic host names it. [`PipelineApi`] is its [`Extension`], which the binary hands to the
//! server; its section is read from what the configuration set aside for it
//! ([`crate::config::FEATURE_SECTIONS`]). A host built without the feature has none of this, and
//! refuses the section's settings.

mod config;
pub mod demo;
mod review;
mod routes;
mod shapes;

pub use config::PipelineConfig;
pub use routes::PIPELINE_WORKFLOW;

use crate::api::Extension;
use crate::api::extension::ConsoleScript;
use crate::executions::Runtime;
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

/// The tag the pipeline's tag follows in the served document: its runs are told from the
/// workflow events.
const TAGS_AFTER: &str = "events";

#[derive(OpenApi)]
#[openapi(
    tags(
        (name = "pipeline", description = "The research pipeline's own REST shapes: runs of the `research-pipeline` component."),
    ),
    paths(routes::start, routes::view, routes::approve, routes::review),
    components(responses(routes::PipelineNotFound)),
)]
struct ApiDoc;

/// The pipeline's OpenAPI document, merged into the served one.
fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The pipeline's part of the API, with its configured defaults.
pub struct PipelineApi {
    config: Arc<PipelineConfig>,
}

impl PipelineApi {
    /// The pipeline's routes with the `[pipeline]` section of `config`.
    ///
    /// # Errors
    /// When the section has a value of the wrong type or out of range.
    pub fn new(config: &crate::config::Config) -> anyhow::Result<Self> {
        Ok(Self {
            config: Arc::new(PipelineConfig::from_config(config)?),
        })
    }
}

impl Extension for PipelineApi {
    fn routes(&self, rt: Arc<Runtime>) -> Router {
        routes::router(rt, self.config.clone())
    }

    fn document(&self) -> utoipa::openapi::OpenApi {
        document()
    }

    fn tags_after(&self) -> &'static str {
        TAGS_AFTER
    }

    fn console_script(&self) -> Option<ConsoleScript> {
        Some(ConsoleScript {
            name: "approvals.js",
            source: include_str!("console/approvals.js"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{TAGS_AFTER, document};
    use crate::api::extension::document_with;
    use serde_json::Value;

    /// The served document is the one the host served when the pipeline was part of the generic
    /// API: its tag in the same place of the list, its paths, answers and schemas merged in.
    #[test]
    fn the_pipeline_is_merged_into_the_served_document_in_place() {
        let served: Value =
            serde_json::from_str(&document_with(&[(document(), TAGS_AFTER)])).expect("JSON");
        let tags: Vec<&str> = served["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(
            tags,
            [
                "health",
                "tenant",
                "components",
                "executions",
                "callbacks",
                "events",
                "pipeline",
                "agents",
                "artifacts",
                "admin"
            ]
        );
        for path in [
            "/workflows",
            "/workflows/{id}",
            "/workflows/{id}/approval",
            "/workflows/{id}/review",
        ] {
            assert!(served["paths"][path].is_object(), "{path}");
        }
        assert!(served["components"]["responses"]["PipelineNotFound"].is_object());
        for schema in [
            "StartPipeline",
            "Pipeline",
            "PipelineApproval",
            "PipelineDecision",
            "PipelineReview",
        ] {
            assert!(
                served["components"]["schemas"][schema].is_object(),
                "{schema}"
            );
        }
    }
}

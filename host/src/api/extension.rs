//! The seam through which a feature module (the research pipeline) adds routes to the API
//! without the generic host naming it: the module implements [`Extension`], the server is given
//! the extensions it runs with, and the router merges their routes and documents in.
//!
//! Besides the trait, this is what an extension's handlers build on, so that they answer like
//! the host's own: the shared OpenAPI answers and schemas, body reading and checking, the
//! execution lookup and name check.

use crate::executions::Runtime;
use axum::Router;
use std::sync::Arc;

pub use super::body::{ENVELOPE, read as read_body};
pub use super::error::FeatureCode;
pub use super::executions::{check_name, find as find_execution};
pub use super::openapi::{AnyJson, ErrorBody, Timestamp, document_with, error_response};
pub use super::schema::Schemas;

/// The tenant the API's key check found for a request to an extension's routes.
pub type Tenant = axum::Extension<crate::ids::TenantId>;

/// Routes a feature module adds to the API, with their OpenAPI document.
pub trait Extension: Send + Sync {
    /// The module's routes, with their state, given the host's runtime. They act for a tenant:
    /// the API lays its key check and the tenant's request rate on them, as on its own tenant
    /// routes, and gives their errors the API's JSON shape.
    fn routes(&self, rt: Arc<Runtime>) -> Router;

    /// The OpenAPI document of those routes: their operations, schemas, answers and tags. It is
    /// merged into the document `GET /v1/openapi.json` serves, which adds the answers every
    /// tenant operation shares (401, 429 and 503) to its operations.
    fn document(&self) -> utoipa::openapi::OpenApi;

    /// The tag of the served document after which this document's tags are listed.
    fn tags_after(&self) -> &'static str;

    /// Pages the module adds to the web console at `/ui`, as a script the console loads after
    /// its own (it registers its pages with `Aegis.page`). None by default.
    fn console_script(&self) -> Option<ConsoleScript> {
        None
    }
}

/// A feature module's part of the web console: a plain script, embedded in the binary.
#[derive(Clone, Copy, Debug)]
pub struct ConsoleScript {
    /// Its file name under the console's assets, e.g. `approvals.js`.
    pub name: &'static str,
    /// The script itself (`include_str!`).
    pub source: &'static str,
}

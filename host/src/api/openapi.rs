//! The OpenAPI document of the API, derived from the handlers' `#[utoipa::path]` annotations
//! and the `ToSchema` types they take and answer.
//!
//! Tour: [`ApiDoc`] lists every operation of the generic host; [`document`] is its JSON, the one
//! `schema` validates request bodies against; [`document_with`] merges the documents of the
//! feature modules' extensions into it, and is what `GET /v1/openapi.json` serves. The answers
//! many operations share (401, 429, 503, ...) are the `ToResponse` types below, each referenced
//! from `components/responses`; those of every tenant operation are added by [`TenantAnswers`]
//! rather than repeated in each `#[utoipa::path]`. The few schemas no derive can say (the quota
//! table, the AWS history event, the agent's two answer forms, raw bytes) are built here by hand.

use super::{admin, agents, callbacks, components, events, executions, logs};
use serde_json::{Value, json};
use std::sync::LazyLock;
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder, response::Response};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aegis",
        version = "0.1.0",
        description = "Every resource belongs to a tenant. When the host has an admin key, `/v1` requests carry `Authorization: Bearer <tenant key>` and `/v1/admin` requests carry the admin key; without one, every request acts for the default tenant and tenant keys are not asked for. Another tenant's resource answers exactly like a missing one (404). Callbacks and presigned artifact links carry their own capability and need no key.\n\nEvery error answer, whatever its status (including 405 for a wrong method, 404 `route_not_found` for an unknown path and 500 `internal` for a host bug), has the body `{\"error\": {\"code\", \"message\", \"doc\"}}`, where `doc` links the code's entry in `docs/errors/api.md`. JSON request bodies are checked against the schemas of this document: a body that does not match answers 400 `invalid_request` naming the JSON pointer of each problem; a body that is not JSON answers 400 `invalid_json`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "health", description = "Liveness and this document."),
        (name = "tenant", description = "The caller's own tenant."),
        (name = "components", description = "Workflow components (WebAssembly), versioned per name."),
        (name = "executions", description = "Workflow executions: start, read, history, logs, stop."),
        (name = "callbacks", description = "Completing callbacks a workflow waits on; the callback id is the credential."),
        (name = "events", description = "Workflow events the workflows publish, as pages or a live stream."),
        (name = "agents", description = "Where agents post their answers; the callback token is the credential."),
        (name = "artifacts", description = "Presigned artifact links; the signature is the credential."),
        (name = "admin", description = "Tenants, their quotas and keys; needs the admin key."),
    ),
    paths(
        super::health, super::openapi, super::scrape::metrics,
        admin::whoami,
        components::list, components::upload, components::versions, components::version,
        components::remove,
        executions::start, executions::list, executions::get, executions::history,
        logs::list, executions::stop,
        admin::create_tenant, admin::list_tenants, admin::get_tenant, admin::set_quotas,
        admin::add_key, admin::list_keys, admin::revoke_key, events::all_dead_letters,
        callbacks::succeed, callbacks::fail, callbacks::heartbeat, callbacks::artifact,
        events::list, events::dead_letters, events::stream,
        agents::without_token, agents::with_token,
    ),
    components(
        schemas(ErrorBody, ExecutionStatus, agents::Accepted),
        responses(
            Unauthorized, AdminUnauthorized, RateLimited, Unavailable, BadParameter,
            ComponentNotFound, ExecutionNotFound, TenantNotFound, AdminBodyTooLarge,
            CallbackNotFound, CallbackClosed, CapabilityRateLimited,
            CallbackTooLarge, agents::AgentAnswerAccepted, agents::AgentAnswerInvalid,
            agents::AgentAnswerConflict, agents::AgentAnswerTooLarge, agents::AgentAnswerNotYet,
        ),
    ),
    modifiers(&BearerAuth, &OptionalBodies),
    security(("bearerAuth" = [])),
)]
pub struct ApiDoc;

/// The generic host's document as served: OpenAPI 3.1, with its JSON Schema dialect named.
pub fn document() -> &'static str {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| finish(ApiDoc::openapi()));
    &DOCUMENT
}

/// The generic document with each extension's merged in (`OpenApi::merge`: its paths, its
/// schemas and responses by name, its tags), each extension's tags listed right after the tag
/// it names ([`super::Extension::tags_after`]), so that the list reads in the API's order.
pub fn document_with(extensions: &[(utoipa::openapi::OpenApi, &str)]) -> String {
    let mut document = ApiDoc::openapi();
    for (extension, after) in extensions {
        let own: Vec<String> = extension
            .tags
            .iter()
            .flatten()
            .map(|t| t.name.clone())
            .collect();
        document.merge(extension.clone());
        let tags = document.tags.get_or_insert_with(Vec::new);
        let (moved, kept): (Vec<_>, Vec<_>) = tags.drain(..).partition(|t| own.contains(&t.name));
        *tags = kept;
        let at = tags
            .iter()
            .position(|t| t.name == *after)
            .map_or(tags.len(), |i| i + 1);
        tags.splice(at..at, moved);
    }
    finish(document)
}

/// `document` as JSON, with the answers every tenant operation shares added (after the merge,
/// so that they reach the extensions' operations too) and what utoipa's model cannot say
/// written in.
fn finish(mut document: utoipa::openapi::OpenApi) -> String {
    TenantAnswers.modify(&mut document);
    let mut document = serde_json::to_value(document).expect("the document serializes");
    for (name, schema) in RAW_SCHEMAS {
        document["components"]["schemas"][*name] = schema();
    }
    document["jsonSchemaDialect"] = json!("https://json-schema.org/draft/2020-12/schema");
    document["info"]["summary"] = json!(
        "Durable workflow host for long-running AI-agent workflows, running WebAssembly components."
    );
    serde_json::to_string(&document).expect("the document serializes")
}

/// The one security scheme: a bearer key, tenant or admin. Operations that need none (callbacks,
/// artifact links, health, this document) say `security(())`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A tenant API key (`aeg_<key id>_<secret>`) for `/v1` routes, or the host's admin key for `/v1/admin` routes. Needed only when the host has an admin key configured; callbacks, artifact links, `/healthz` and this document need none.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearerAuth", SecurityScheme::Http(scheme));
    }
}

/// The answers of every operation that acts for a tenant, which its `#[utoipa::path]` leaves
/// out: 401 [`Unauthorized`], 429 [`RateLimited`] and 503 [`Unavailable`]. A tenant operation is
/// one that takes the document's bearer key (it names no `security` of its own, as the
/// capability routes, health and this document do) outside `/v1/admin` (whose operations say
/// their own 401, [`AdminUnauthorized`]). An operation that documents one of these statuses
/// itself (a 429 with codes of its own) keeps its answer.
struct TenantAnswers;

impl Modify for TenantAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let shared = [
            ("401", Unauthorized::response().0),
            ("429", RateLimited::response().0),
            ("503", Unavailable::response().0),
        ];
        for (path, item) in &mut openapi.paths.paths {
            if path.starts_with("/v1/admin/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                if operation.security.is_some() {
                    continue;
                }
                for (status, name) in shared {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| utoipa::openapi::Ref::from_response_name(name).into());
                }
            }
        }
    }
}

/// The operations whose body may be left out: an empty callback completion is `null`, an empty
/// failure `{}`. (`request_body` makes a body optional only for an `Option`, whose schema would
/// then also allow a JSON `null`.)
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::Required;
        for path in ["/v1/callbacks/{id}/succeed", "/v1/callbacks/{id}/fail"] {
            let body = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.post.as_mut())
                .and_then(|operation| operation.request_body.as_mut())
                .unwrap_or_else(|| panic!("POST {path} has a body"));
            body.required = Some(Required::False);
        }
    }
}

/// Every error answer: `{"error": {"code", "doc", "message"}}`.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Error, description = "Every error answer.")]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `execution_not_found`.
    pub code: &'static str,
    /// The code's entry in the API's error page, e.g. `docs/errors/api.md#execution_not_found`:
    /// its status, cause and what to do.
    pub doc: String,
    /// What went wrong, for people; names the limit or field at fault.
    pub message: String,
}

/// An error answer with `description` (which names its codes), and `Retry-After` when it has one.
pub fn error_response(description: &str, retry_after: bool) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(utoipa::openapi::Ref::from_schema_name("Error")))
            .build(),
    );
    if retry_after {
        response = response.header("Retry-After", retry_after_header());
    }
    response.build()
}

/// `Retry-After` in whole seconds.
fn retry_after_header() -> utoipa::openapi::header::Header {
    utoipa::openapi::header::HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
        .description(Some(
            "Seconds to wait before retrying (on `rate_limited`, `compile_queue_full` and `task_not_bound`).",
        ))
        .build()
}

/// Error answers many operations share, each a `components/responses` entry.
macro_rules! shared_errors {
    ($($name:ident $(+ $retry:ident)?: $description:literal;)*) => {$(
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let retry = false $(|| stringify!($retry) == "retry")?;
                (stringify!($name), error_response($description, retry).into())
            }
        }
    )*};
}

shared_errors! {
    Unauthorized: "`unauthorized`: the tenant key is missing, wrong or revoked (only when the host has an admin key).";
    AdminUnauthorized: "`unauthorized`: not the admin key, or the host has no admin key configured.";
    RateLimited + retry: "`rate_limited`: the request rate is over the tenant's `requests_per_second` and `request_burst`.";
    Unavailable: "`unavailable`: the host could not complete the request (details are in its log); retry.";
    BadParameter: "`bad_request`: a path or query parameter of the wrong type, or an unknown query parameter.";
    ComponentNotFound: "`component_not_found`: no such component or version.";
    ExecutionNotFound: "`execution_not_found`: no such execution.";
    TenantNotFound: "`tenant_not_found`: no such tenant.";
    AdminBodyTooLarge: "`payload_too_large`: the body is over 64 KiB.";
    CallbackNotFound: "`callback_not_found`: no such callback. Nothing changed.";
    CallbackClosed: "`callback_already_completed`, `callback_timed_out` or `execution_ended`: the callback can no longer be completed. Nothing changed.";
    CapabilityRateLimited + retry: "`rate_limited`: heartbeats (or an agent's progress updates) on this callback are over `server.callback_requests_per_second` (and its burst), or requests from this source address to the routes that take no key are over `server.address_requests_per_second`. The message names the limit.";
    CallbackTooLarge: "`payload_too_large`: the body or the result is over the tenant's `max_payload_kb`.";
}

/// Schemas written as JSON, for keywords utoipa's model has no field for (`patternProperties`,
/// `contentMediaType`): each type's `ToSchema` gives a stand-in that [`document`] replaces with
/// this JSON.
const RAW_SCHEMAS: &[(&str, RawSchema)] = &[
    ("Wasm", wasm),
    ("Bytes", bytes),
    ("HistoryEvent", history_event),
    ("AgentAnswer", agent_answer),
];

/// Writes one schema of [`RAW_SCHEMAS`].
type RawSchema = fn() -> Value;

/// The stand-in of a schema in [`RAW_SCHEMAS`].
fn stand_in() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .into()
}

/// Implements `ToSchema` for `$ty` with the schema `$schema` builds.
macro_rules! schema {
    ($ty:ty, $name:literal, $schema:expr) => {
        impl ::utoipa::PartialSchema for $ty {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                $schema
            }
        }

        impl ::utoipa::ToSchema for $ty {
            fn name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed($name)
            }
        }
    };
}
pub(crate) use schema;

/// A time as the API writes it (`journal::format_ts`).
pub struct Timestamp;

schema!(
    Timestamp,
    "Timestamp",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some(
            "RFC 3339 time in UTC with milliseconds, e.g. `2025-11-26T05:00:00.123Z`."
        ))
        .into()
);

/// A component digest (`sha256:` and 64 hex digits).
pub struct Digest;

schema!(
    Digest,
    "Digest",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^sha256:[0-9a-f]{64}$"))
        .into()
);

/// An execution's status, as `store::ExecutionStatus` writes it (`openapi_tests` checks that
/// the code knows each).
pub struct ExecutionStatus;

schema!(
    ExecutionStatus,
    "ExecutionStatus",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([
            "RUNNING",
            "SUCCEEDED",
            "FAILED",
            "TIMED_OUT",
            "STOPPED"
        ]))
        .into()
);

/// A WebAssembly component's bytes (an upload's body).
pub struct Wasm;

schema!(Wasm, "Wasm", stand_in());

fn wasm() -> Value {
    json!({"type": "string", "contentMediaType": "application/wasm"})
}

/// An artifact's bytes, of whatever media type it was stored with.
pub struct Bytes;

schema!(Bytes, "Bytes", stand_in());

fn bytes() -> Value {
    json!({"type": "string", "contentMediaType": "application/octet-stream"})
}

/// A Server-Sent Events stream.
pub struct EventStream;

schema!(
    EventStream,
    "EventStream",
    ObjectBuilder::new().schema_type(Type::String).into()
);

/// The schema of `tenancy::Quotas`: the quotas in effect, each with the range
/// `Quotas::validate` accepts, from the quota table. (The type itself is the core's, which
/// knows nothing of OpenAPI.)
pub struct QuotasSchema;

schema!(QuotasSchema, "Quotas", {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "The limits a tenant runs under (the host's defaults with the tenant's overrides applied), each within the range shown.",
        ))
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
    for range in crate::quotas::RANGES {
        let doc = range
            .doc
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ");
        object = object.required(range.name).property(
            range.name,
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(range.min))
                .maximum(Some(range.max))
                .description(Some(doc)),
        );
    }
    object.into()
});

/// The schema of `tenancy::Overrides`: any value of the quota's type here;
/// `Quotas::validate` judges the result (400 `invalid_quota`).
pub struct QuotaOverridesSchema;

schema!(QuotaOverridesSchema, "QuotaOverrides", {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Per-tenant changes to the host's default quotas; a missing (or null) field keeps the default. The quotas they make must be within the ranges of `Quotas`, or the request answers 400 `invalid_quota`.",
        ))
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
    for range in crate::quotas::RANGES {
        let max = (range.type_max < u64::MAX).then_some(range.type_max);
        object = object.property(
            range.name,
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
                .minimum(Some(0))
                .maximum(max),
        );
    }
    object.into()
});

/// One history event (`journal::Event::to_history`): AWS Lambda durable functions' shape.
pub struct HistoryEvent;

schema!(HistoryEvent, "HistoryEvent", stand_in());

/// `openapi_tests` checks that the code knows each of these names.
fn history_event() -> Value {
    let types = [
        "ExecutionStarted",
        "ExecutionSucceeded",
        "ExecutionFailed",
        "ExecutionTimedOut",
        "ExecutionStopped",
        "StepStarted",
        "StepSucceeded",
        "StepFailed",
        "WaitStarted",
        "WaitSucceeded",
        "WaitCancelled",
        "CallbackStarted",
        "CallbackSucceeded",
        "CallbackFailed",
        "CallbackTimedOut",
        "ContextStarted",
        "ContextSucceeded",
        "ContextFailed",
        "InvocationCompleted",
    ];
    let sub_types = [
        "Step",
        "WaitForCondition",
        "Wait",
        "Callback",
        "RunInChildContext",
        "Parallel",
        "ParallelBranch",
        "Map",
        "MapIteration",
        "WaitForCallback",
        "ChainedInvoke",
    ];
    json!({
        "description": "One event of an execution's history, in the shape of AWS Lambda durable functions. Besides the fields below it has one `<EventType>Details` object (e.g. `StepSucceededDetails`), `{}` when empty; payloads in it are `{Payload, Truncated}` records, cut at 32 KiB.",
        "type": "object",
        "required": ["EventType", "EventId", "EventTimestamp"],
        "properties": {
            "EventType": {"type": "string", "enum": types},
            "EventId": {"type": "integer", "minimum": 1, "description": "Consecutive from 1."},
            "EventTimestamp": {"$ref": "#/components/schemas/Timestamp"},
            "Id": {"type": "string", "description": "The operation's id (operation events only)."},
            "Name": {"type": "string", "description": "The operation's name (operation events only)."},
            "ParentId": {"type": "string", "description": "The enclosing operation's id, for operations in a child context."},
            "SubType": {"type": "string", "enum": sub_types}
        },
        "patternProperties": {"^[A-Za-z]+Details$": {"type": "object"}},
        "additionalProperties": false
    })
}

/// What an agent posts (`agents::read_answer` reads both forms).
pub struct AgentAnswer;

schema!(AgentAnswer, "AgentAnswer", stand_in());

fn agent_answer() -> Value {
    json!({
        "description": "Either the simple form, or an A2A push (`{\"task\": T}`, or a bare task with `status` or `\"kind\": \"task\"`). A completed task's output is the callback's result; a failed one fails it with `Agent.Failed`; a working one counts as a heartbeat.",
        "anyOf": [
            {
                "title": "simple form",
                "type": "object",
                "required": ["status"],
                "properties": {
                    "token": {"type": "string", "description": "The callback token; needed when the URL has none, and equal to it when both do."},
                    "status": {"type": "string", "description": "`SUCCESS` or `FAILURE` (any case)."},
                    "result": {"description": "The result on `SUCCESS`; the failure message on `FAILURE`."}
                }
            },
            {
                "title": "A2A push",
                "type": "object",
                "description": "An A2A task (v0.3 or v1.0), alone or under `task`."
            }
        ]
    })
}

/// Any JSON value.
pub struct AnyJson;

schema!(
    AnyJson,
    "AnyJson",
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .into()
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_raw_schema_replaces_a_stand_in_the_derive_registered() {
        let derived = ApiDoc::openapi();
        let schemas = &derived.components.as_ref().expect("components").schemas;
        for (name, _) in RAW_SCHEMAS {
            assert!(
                schemas.get(*name) == Some(&stand_in()),
                "{name}: no stand-in to replace, so its JSON would be a schema nothing uses"
            );
        }
        let served: Value = serde_json::from_str(document()).expect("the document parses");
        for (name, schema) in RAW_SCHEMAS {
            assert_eq!(served["components"]["schemas"][*name], schema(), "{name}");
        }
    }

    #[test]
    fn tenant_operations_and_only_they_answer_the_tenant_errors() {
        let served: Value = serde_json::from_str(document()).expect("the document parses");
        let reference = |name: &str| json!(format!("#/components/responses/{name}"));
        let mut tenant_operations = 0;
        for (path, item) in served["paths"].as_object().expect("paths") {
            let operations = item.as_object().expect("a path item");
            for (method, operation) in operations
                .iter()
                .filter(|(_, o)| o.get("responses").is_some())
            {
                let responses = &operation["responses"];
                let tenant = !path.starts_with("/v1/admin/") && operation.get("security").is_none();
                assert_eq!(
                    responses["401"]["$ref"] == reference("Unauthorized"),
                    tenant,
                    "{method} {path}"
                );
                if tenant {
                    tenant_operations += 1;
                    assert!(responses["429"].is_object(), "{method} {path}");
                    assert_eq!(
                        responses["503"]["$ref"],
                        reference("Unavailable"),
                        "{method} {path}"
                    );
                }
            }
        }
        assert!(tenant_operations >= 14, "{tenant_operations}");
    }

    #[test]
    fn optional_bodies_are_optional_and_keep_their_schema() {
        let served: Value = serde_json::from_str(document()).expect("the document parses");
        for (path, schema) in [
            ("/v1/callbacks/{id}/succeed", "AnyJson"),
            ("/v1/callbacks/{id}/fail", "CallbackFailure"),
        ] {
            let body = &served["paths"][path]["post"]["requestBody"];
            assert_eq!(body["required"], json!(false), "{path}");
            assert_eq!(
                body["content"]["application/json"]["schema"]["$ref"],
                json!(format!("#/components/schemas/{schema}")),
                "{path}"
            );
        }
    }
}

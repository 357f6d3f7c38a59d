//! Keeps the derived OpenAPI document (`openapi.rs`) true: it lists exactly the routes the router serves, its schemas compile,
//! the request schemas accept and refuse what the handlers do, the limits it states are the
//! code's, and a real host's answers match the schema documented for their status.

use super::Extension;
use super::schema::{self, Schemas};
use crate::config::Config;
use crate::server::Server;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::LazyLock;
use std::time::Duration;

/// The methods a route may have (lower case, as OpenAPI writes them).
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];
const ADMIN_KEY: &str = "openapi-test-admin-key";

/// The feature modules' extensions this build has: the document, the router and the host
/// under test are those served with them.
fn extensions() -> Vec<Box<dyn Extension>> {
    #[cfg(feature = "pipeline")]
    let extensions: Vec<Box<dyn Extension>> = vec![Box::new(
        crate::pipeline::PipelineApi::new(&Config::default()).expect("the default section"),
    )];
    #[cfg(not(feature = "pipeline"))]
    let extensions = Vec::new();
    extensions
}

/// The document as served, as text.
fn served() -> &'static str {
    static SERVED: LazyLock<String> = LazyLock::new(|| {
        let documents: Vec<_> = extensions()
            .iter()
            .map(|e| (e.document(), e.tags_after()))
            .collect();
        super::openapi::document_with(&documents)
    });
    &SERVED
}

/// The document, parsed.
fn doc() -> &'static Value {
    static DOC: LazyLock<Value> =
        LazyLock::new(|| serde_json::from_str(served()).expect("it parses"));
    &DOC
}

/// The served document's schemas, compiled.
fn schemas() -> &'static Schemas {
    static SCHEMAS: LazyLock<Schemas> =
        LazyLock::new(|| Schemas::load(served()).expect("the schemas compile"));
    &SCHEMAS
}

#[test]
fn the_generic_document_is_the_served_one_without_extensions() {
    assert_eq!(
        super::openapi::document_with(&[]),
        super::openapi::document()
    );
    if extensions().is_empty() {
        assert_eq!(served(), super::openapi::document());
    }
}

/// (METHOD, path) of every operation in the document.
fn documented_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc()["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// The sources of the routers served: `mod.rs`, and the routes of each extension compiled in.
fn router_sources() -> Vec<&'static str> {
    #[cfg_attr(not(feature = "pipeline"), expect(unused_mut))]
    let mut sources = vec![include_str!("mod.rs")];
    #[cfg(feature = "pipeline")]
    sources.push(include_str!("../pipeline/routes.rs"));
    sources
}

/// (METHOD, path) of every route call in the routers' sources: an axum router cannot list its
/// routes, and reading them is what makes a route added without documentation fail. Paths are
/// written the OpenAPI way (`{*key}` is `{key}`).
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let route_calls = router_sources()
        .into_iter()
        .flat_map(|source| source.split(".route(").skip(1));
    for call in route_calls {
        let path = call
            .split('"')
            .nth(1)
            .expect("a route starts with its path");
        // The method router is the rest of the call, up to its closing parenthesis.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find_map(|(i, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(i)
            })
            .expect("a route call ends");
        for method in METHODS {
            if calls(&call[..end], method) {
                routes.insert((method.to_uppercase(), path.replace("{*", "{")));
            }
        }
    }
    routes
}

/// Whether `code` calls `function(` (as a whole word: `get(` but not `forget(`).
fn calls(code: &str, function: &str) -> bool {
    code.match_indices(&format!("{function}(")).any(|(i, _)| {
        code[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

/// `template` with each `{param}` replaced by the next of `args`.
fn fill(template: &str, args: &[&str]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("a closed parameter") + open;
        let arg = args
            .next()
            .unwrap_or_else(|| panic!("too few arguments for {template}"));
        out.push_str(&rest[..open]);
        out.push_str(arg);
        rest = &rest[close + 1..];
    }
    assert!(args.next().is_none(), "too many arguments for {template}");
    out.push_str(rest);
    out
}

/// Follows a `$ref` within the document.
fn resolve(value: &Value) -> &Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => doc()
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{reference} does not resolve")),
        None => value,
    }
}

#[test]
fn the_document_lists_exactly_the_routes_of_the_router() {
    let served = routes_in_source();
    assert!(
        served.len() >= 20,
        "found too few routes in mod.rs, has the router's style changed? {served:?}"
    );
    let documented = documented_routes();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served but not documented: {undocumented:?}; documented but not served: \
         {not_served:?}"
    );
}

#[test]
fn the_document_is_well_formed() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let id = operation["operationId"].as_str().expect("an operationId");
            assert!(operation_ids.insert(id), "operationId {id} is used twice");
            let declared: BTreeSet<&str> = [&item["parameters"], &operation["parameters"]]
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .map(resolve)
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().expect("a parameter name"))
                .collect();
            assert_eq!(in_template, declared, "path parameters of {method} {path}");
            let responses = operation["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            for (status, response) in responses {
                assert!(
                    status.len() == 3 && status.parse::<u16>().is_ok(),
                    "{method} {path}: status {status}"
                );
                assert!(
                    resolve(response)["description"].is_string(),
                    "{method} {path} {status}: a description"
                );
            }
        }
    }
}

/// Every `$ref` in `value`.
fn references<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference);
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Every schema written inline (under a `schema` key) in `value`.
fn inline_schemas<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "schema" {
                    out.push(v);
                }
                inline_schemas(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| inline_schemas(v, out)),
        _ => {}
    }
}

#[test]
fn every_schema_compiles_and_every_reference_resolves() {
    let doc = doc();
    assert_eq!(
        schemas().validators.len(),
        doc["components"]["schemas"]
            .as_object()
            .map_or(0, |s| s.len()),
        "a validator for each of components/schemas"
    );
    let mut refs = Vec::new();
    references(doc, &mut refs);
    assert!(refs.len() > 50);
    for reference in refs {
        resolve(&json!({ "$ref": reference }));
    }
    let mut inline = Vec::new();
    inline_schemas(&doc["paths"], &mut inline);
    inline_schemas(&doc["components"], &mut inline);
    for schema in inline {
        schema::compile(doc, schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
    }
}

/// Checks `body` against schema `name`, expecting it to be accepted.
fn accepts(name: &str, body: Value) {
    if let Err(e) = schemas().check(&body, name) {
        panic!("{name} refused {body}: {}", e.message);
    }
}

/// Checks `body` against schema `name`, expecting 400 `invalid_request` whose message has `words`.
fn refuses(name: &str, body: Value, words: &str) {
    let error = schemas()
        .check(&body, name)
        .expect_err(&format!("{name} accepted {body}"));
    assert_eq!(
        (error.status.as_u16(), error.code.as_str()),
        (400, "invalid_request")
    );
    assert!(
        error.message.contains(words),
        "{name} refusing {body}: {:?} should contain {words:?}",
        error.message
    );
}

#[test]
fn request_schemas_accept_good_bodies_and_name_what_is_wrong_with_bad_ones() {
    let start = "StartExecution";
    accepts(start, json!({"workflow": "w"}));
    accepts(
        start,
        json!({"workflow": "w", "version": 2, "input": {"any": [1, "json"]}, "name": "n",
               "timeout_seconds": 60}),
    );
    accepts(
        start,
        json!({"workflow": "w", "version": null, "input": null, "name": null,
               "timeout_seconds": null}),
    );
    refuses(
        start,
        json!({}),
        r#"(root): "workflow" is a required property"#,
    );
    refuses(
        start,
        json!({"workflow": 7}),
        r#"/workflow: 7 is not of type "string""#,
    );
    refuses(
        start,
        json!({"workflow": "w", "inputs": 1}),
        "'inputs' was unexpected",
    );
    refuses(
        start,
        json!({"workflow": "w", "version": -1}),
        "/version: -1 is less",
    );
    refuses(
        start,
        json!({"workflow": "w", "timeout_seconds": 0}),
        "/timeout_seconds",
    );
    refuses(start, json!(["w"]), "(root)");

    let fail = "CallbackFailure";
    accepts(fail, json!({}));
    accepts(
        fail,
        json!({"error_type": "Denied", "error_message": "no", "error_data": {"why": [1]}}),
    );
    accepts(
        fail,
        json!({"error_type": null, "error_message": null, "error_data": null}),
    );
    refuses(
        fail,
        json!({"error_type": 1}),
        "/error_type: 1 is not of type",
    );
    refuses(fail, json!({"reason": "x"}), "'reason' was unexpected");

    let create = "CreateTenant";
    accepts(create, json!({"name": "acme"}));
    accepts(
        create,
        json!({"name": "acme", "quotas": {"memory_limit_mb": 32}}),
    );
    refuses(
        create,
        json!({"quotas": {}}),
        r#""name" is a required property"#,
    );
    refuses(
        create,
        json!({"name": "a", "quotas": {"memory": 1}}),
        "/quotas: Additional properties",
    );
    refuses(
        create,
        json!({"name": "a", "quotas": {"max_payload_kb": -1}}),
        "/quotas/max_payload_kb",
    );

    let quotas = "QuotaOverrides";
    accepts(quotas, json!({}));
    accepts(
        quotas,
        json!({"max_running_executions": 5, "max_component_mb": 10, "memory_limit_mb": 32,
               "cpu_deadline_ms": 1000, "max_payload_kb": 64, "requests_per_second": 10,
               "request_burst": null}),
    );
    refuses(quotas, json!({"max_payload_kb": "64"}), "/max_payload_kb");
    refuses(quotas, json!({"max_payload_kb": 1.5}), "/max_payload_kb");
    refuses(
        quotas,
        json!(null),
        "(root): null is not of type \"object\"",
    );
}

#[test]
fn validation_errors_stay_short() {
    // A long value is not echoed back.
    let long = "x".repeat(10_000);
    let error = schema::schemas()
        .check(&json!({"workflow": [long]}), "StartExecution")
        .unwrap_err();
    assert!(error.message.len() < 300, "{}", error.message);
    assert!(error.message.contains("/workflow"), "{}", error.message);
    // Only the first few problems are named.
    let body = json!({"workflow": 1, "version": "a", "name": 2, "timeout_seconds": "b"});
    let error = schema::schemas()
        .check(&body, "StartExecution")
        .unwrap_err();
    assert!(error.message.ends_with("(and 1 more)"), "{}", error.message);
}

#[test]
fn limits_in_the_document_are_the_codes() {
    use crate::tenancy::Quotas;
    let doc = doc();
    let defaults = serde_json::to_value(Quotas::default()).expect("quotas serialize");
    let ranges = doc["components"]["schemas"]["Quotas"]["properties"]
        .as_object()
        .expect("Quotas properties");
    let fields = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    assert_eq!(fields(&defaults), fields(&json!(ranges)), "Quotas fields");
    assert_eq!(
        fields(&defaults),
        fields(&doc["components"]["schemas"]["QuotaOverrides"]["properties"]),
        "QuotaOverrides fields"
    );
    for (field, range) in ranges {
        let valid = |value: u64| {
            let mut quotas = defaults.clone();
            quotas[field] = json!(value);
            serde_json::from_value::<Quotas>(quotas)
                .expect("quotas deserialize")
                .validate()
                .is_ok()
        };
        let min = range["minimum"].as_u64().expect("a minimum");
        let max = range["maximum"].as_u64().expect("a maximum");
        assert!(
            valid(min) && valid(max) && (min == 0 || !valid(min - 1)) && !valid(max + 1),
            "{field}: the document's range {min}..={max} is not what Quotas::validate accepts"
        );
    }
    let timeout = &doc["components"]["schemas"]["StartExecution"]["properties"]["timeout_seconds"];
    assert_eq!(
        timeout["maximum"],
        json!(crate::executions::MAX_EXECUTION_TIMEOUT_SECS)
    );
}

#[test]
fn enums_in_the_document_are_the_codes() {
    use crate::journal::{EventType, SubType};
    use crate::store::ExecutionStatus;
    let schemas = &doc()["components"]["schemas"];
    let values = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("an enum")
            .iter()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect()
    };
    for status in values(&schemas["ExecutionStatus"]["enum"]) {
        let parsed = ExecutionStatus::parse(&status).expect("a status the code knows");
        assert_eq!(parsed.as_str(), status);
    }
    for event in values(&schemas["HistoryEvent"]["properties"]["EventType"]["enum"]) {
        serde_json::from_value::<EventType>(json!(event)).expect("an event type the code knows");
    }
    for sub in values(&schemas["HistoryEvent"]["properties"]["SubType"]["enum"]) {
        serde_json::from_value::<SubType>(json!(sub)).expect("a sub type the code knows");
    }
}

/// A host on a loopback port, with an admin key, in its own temporary data folder.
struct Host {
    base: String,
    client: reqwest::Client,
    /// The host's data folder, removed when the test ends.
    _dir: tempfile::TempDir,
}

/// An answer, with its body parsed when it is JSON.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    raw: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.body)
    }
}

impl Reply {
    fn code(&self) -> &str {
        self.body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn text(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field} in {}", self.body))
            .to_string()
    }
}

impl Host {
    async fn start() -> Host {
        let dir = tempfile::tempdir().expect("a scratch folder");
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("an address"),
            data_dir: dir.path().to_path_buf(),
            admin_key: Some(ADMIN_KEY.into()),
            max_instances: 16,
            ..Config::default()
        };
        let server = Server::start(config, extensions())
            .await
            .expect("the host starts");
        let base = format!("http://{}", server.addr);
        tokio::spawn(server.serve());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        Host {
            base,
            client,
            _dir: dir,
        }
    }

    /// A request to the route `template` (as the document writes it).
    fn call(&self, method: Method, template: &'static str) -> Call<'_> {
        Call {
            host: self,
            method,
            template,
            args: Vec::new(),
            query: String::new(),
            key: None,
            body: Vec::new(),
        }
    }

    async fn raw(&self, method: Method, uri: &str, key: Option<&str>, body: Vec<u8>) -> Reply {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{uri}", self.base))
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let is_json = headers
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !is_json && uri.starts_with("/v1/events/stream") {
            // A live stream never ends: only its status matters here.
            return Reply {
                status,
                headers,
                body: Value::Null,
                raw: Vec::new(),
            };
        }
        let raw = response.bytes().await.expect("a body").to_vec();
        let body = if is_json {
            serde_json::from_slice(&raw).expect("a JSON answer parses")
        } else {
            Value::Null
        };
        Reply {
            status,
            headers,
            body,
            raw,
        }
    }

    /// Creates a tenant with `quotas` and answers its API key.
    async fn tenant(&self, name: &str, quotas: Value) -> String {
        self.call(Method::POST, "/v1/admin/tenants")
            .key(ADMIN_KEY)
            .json(json!({"name": name, "quotas": quotas}))
            .expect(201)
            .await
            .text("api_key")
    }

    /// Uploads the guest fixture `name` as a new component.
    async fn upload(&self, key: &str, name: &str) {
        self.call(Method::POST, "/v1/components/{name}")
            .args(&[name])
            .key(key)
            .bytes(fixture(name))
            .expect(201)
            .await;
    }
}

/// A request being built; `send` checks the answer against the document.
struct Call<'a> {
    host: &'a Host,
    method: Method,
    template: &'static str,
    args: Vec<String>,
    query: String,
    key: Option<String>,
    body: Vec<u8>,
}

impl Call<'_> {
    fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    fn query(mut self, query: &str) -> Self {
        self.query = format!("?{query}");
        self
    }

    fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }

    fn json(self, body: Value) -> Self {
        self.bytes(body.to_string().into_bytes())
    }

    fn bytes(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// Sends, and checks the answer is one the document gives for its status.
    async fn send(self) -> Reply {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let uri = format!("{}{}", fill(self.template, &args), self.query);
        let reply = self
            .host
            .raw(self.method.clone(), &uri, self.key.as_deref(), self.body)
            .await;
        check_documented(&self.method, self.template, &reply);
        reply
    }

    /// Sends, checks the answer against the document, and that its status is `status`.
    async fn expect(self, status: u16) -> Reply {
        let what = format!("{} {}", self.method, self.template);
        let reply = self.send().await;
        assert_eq!(reply.status, status, "{what}: {reply:?}");
        reply
    }

    /// As `expect`, for an error answer with `code`.
    async fn error(self, status: u16, code: &str) -> Reply {
        let reply = self.expect(status).await;
        assert_eq!(reply.code(), code, "{reply:?}");
        reply
    }
}

/// Checks `reply` is documented for `method template`: its status is listed, its body matches
/// the schema given for that status, and an error's code is named in that answer's description.
fn check_documented(method: &Method, template: &str, reply: &Reply) {
    let operation = &doc()["paths"][template][method.as_str().to_lowercase()];
    assert!(
        operation.is_object(),
        "{method} {template} is not documented"
    );
    let status = reply.status.to_string();
    let documented = &operation["responses"][&status];
    assert!(
        documented.is_object(),
        "{method} {template} answered {status}, which the document does not list: {reply:?}"
    );
    let response = resolve(documented);
    let content = &response["content"];
    if let Some(media) = content.get("application/json") {
        let validator = schema::compile(doc(), &media["schema"]).expect("the schema compiles");
        let problems: Vec<String> = validator
            .iter_errors(&reply.body)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(
            problems.is_empty(),
            "{method} {template} answered {status} not as documented: {problems:?}\n{}",
            reply.body
        );
    } else if content.is_null() {
        assert!(
            reply.raw.is_empty(),
            "{method} {template}: {status} has no body"
        );
    }
    if !reply.code().is_empty() {
        let description = response["description"].as_str().unwrap_or("");
        assert!(
            description.contains(&format!("`{}`", reply.code())),
            "{method} {template} answered {status} {}, not named in its description",
            reply.code()
        );
    }
}

/// The bytes of guest fixture `name`, which `make test` builds before the tests run.
fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../guest-workflows/target/wasm32-wasip2/release/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("guest fixture {path}: {e}; build the guests first (`make guests`, or `make test`)")
    })
}

/// An answer outside any documented route is still the `Error` shape.
fn check_error_shape(reply: &Reply) {
    let validator = &schemas().validators["Error"];
    assert!(validator.is_valid(&reply.body), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_served_with_only_its_documented_methods() {
    let host = Host::start().await;
    let key = host.tenant("probe", json!({})).await;
    for (path, item) in doc()["paths"].as_object().expect("paths") {
        let args: Vec<&str> = path
            .split('/')
            .filter(|s| s.starts_with('{'))
            .map(|s| match s {
                "{version}" => "1",
                "{key}" => "some/key",
                _ => "probe",
            })
            .collect();
        let uri = fill(path, &args);
        let auth = if path.starts_with("/v1/admin") {
            ADMIN_KEY
        } else {
            &key
        };
        for method in METHODS {
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let reply = host.raw(verb, &uri, Some(auth), Vec::new()).await;
            if item.get(method).is_some() {
                assert!(
                    reply.status != 405 && reply.code() != "route_not_found",
                    "{method} {path} is documented but not served: {reply:?}"
                );
            } else {
                assert_eq!(
                    (reply.status, reply.code()),
                    (405, "method_not_allowed"),
                    "{method} {path} is not documented but served"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_the_document() {
    use Method as M;
    let host = Host::start().await;

    // Liveness and the document itself.
    host.call(M::GET, "/healthz").expect(200).await;
    let served = host.call(M::GET, "/v1/openapi.json").expect(200).await;
    assert_eq!(&served.body, doc());

    let (key, tenant_id, revoked) = admin_answers(&host).await;
    tenant_answers(&host, &key, &revoked).await;
    component_answers(&host, &key).await;
    execution_answers(&host, &key).await;
    let exec = callback_answers(&host, &key).await;
    stop_and_delete_answers(&host, &key).await;
    quota_answers(&host).await;
    dead_letter_answers(&host, &key, &tenant_id).await;
    artifact_link_answers(&host, &tenant_id, &exec).await;
    unrouted_answers(&host, &key).await;
}

/// The body that starts an execution of the `callback` fixture waiting a minute.
fn waiting() -> Value {
    json!({"workflow": "callback", "input": {"timeout_seconds": 60}})
}

/// Administration: the admin key only. Answers the key and id of a tenant created here, and a
/// key of it that was revoked.
async fn admin_answers(host: &Host) -> (String, String, String) {
    use Method as M;
    let tenants = "/v1/admin/tenants";
    let acme = json!({"name": "acme"});
    host.call(M::POST, tenants)
        .json(acme.clone())
        .error(401, "unauthorized")
        .await;
    host.call(M::POST, tenants)
        .key("not-the-admin-key")
        .json(acme.clone())
        .error(401, "unauthorized")
        .await;
    let created = host
        .call(M::POST, tenants)
        .key(ADMIN_KEY)
        .json(acme.clone())
        .expect(201)
        .await;
    let (key, tenant_id) = (created.text("api_key"), created.text("tenant_id"));
    host.call(M::POST, tenants)
        .key(ADMIN_KEY)
        .json(acme)
        .error(409, "tenant_name_taken")
        .await;
    let refused = host
        .call(M::POST, tenants)
        .key(ADMIN_KEY)
        .json(json!({"name": "x", "plan": "gold"}))
        .error(400, "invalid_request")
        .await;
    let message = refused.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("'plan' was unexpected"), "{message}");
    host.call(M::POST, tenants)
        .key(ADMIN_KEY)
        .json(json!({"name": "no spaces"}))
        .error(400, "invalid_name")
        .await;
    host.call(M::POST, tenants)
        .key(ADMIN_KEY)
        .json(json!({"name": "big", "quotas": {"max_payload_kb": 100_000}}))
        .error(400, "invalid_quota")
        .await;
    host.call(M::POST, tenants)
        .key(ADMIN_KEY)
        .bytes(b"{".to_vec())
        .error(400, "invalid_json")
        .await;
    host.call(M::GET, tenants).key(ADMIN_KEY).expect(200).await;
    let tenant = "/v1/admin/tenants/{id}";
    host.call(M::GET, tenant)
        .args(&[&tenant_id])
        .key(ADMIN_KEY)
        .expect(200)
        .await;
    host.call(M::GET, tenant)
        .args(&["tn_missing"])
        .key(ADMIN_KEY)
        .error(404, "tenant_not_found")
        .await;
    let quotas = "/v1/admin/tenants/{id}/quotas";
    host.call(M::PUT, quotas)
        .args(&[&tenant_id])
        .key(ADMIN_KEY)
        .json(json!({"memory_limit_mb": 32}))
        .expect(200)
        .await;
    host.call(M::PUT, quotas)
        .args(&[&tenant_id])
        .key(ADMIN_KEY)
        .json(json!({"memory_limit_mb": "32"}))
        .error(400, "invalid_request")
        .await;
    host.call(M::PUT, quotas)
        .args(&["tn_missing"])
        .key(ADMIN_KEY)
        .json(json!({}))
        .error(404, "tenant_not_found")
        .await;
    let keys = "/v1/admin/tenants/{id}/keys";
    let second = host
        .call(M::POST, keys)
        .args(&[&tenant_id])
        .key(ADMIN_KEY)
        .expect(201)
        .await;
    host.call(M::GET, keys)
        .args(&[&tenant_id])
        .key(ADMIN_KEY)
        .expect(200)
        .await;
    let one_key = "/v1/admin/tenants/{id}/keys/{key_id}";
    host.call(M::DELETE, one_key)
        .args(&[&tenant_id, &second.text("key_id")])
        .key(ADMIN_KEY)
        .expect(200)
        .await;
    host.call(M::DELETE, one_key)
        .args(&[&tenant_id, "key_missing"])
        .key(ADMIN_KEY)
        .error(404, "key_not_found")
        .await;
    (key, tenant_id, second.text("api_key"))
}

/// The caller's tenant: its key only.
async fn tenant_answers(host: &Host, key: &str, revoked: &str) {
    use Method as M;
    let whoami = "/v1/tenant";
    host.call(M::GET, whoami).error(401, "unauthorized").await;
    host.call(M::GET, whoami)
        .key(revoked)
        .error(401, "unauthorized")
        .await;
    host.call(M::GET, whoami).key(key).expect(200).await;
}

/// Components.
async fn component_answers(host: &Host, key: &str) {
    use Method as M;
    let component = "/v1/components/{name}";
    host.call(M::POST, component)
        .args(&["steps3"])
        .key(key)
        .bytes(b"not wasm".to_vec())
        .error(400, "not_a_component")
        .await;
    host.call(M::POST, component)
        .args(&["bad.name"])
        .key(key)
        .bytes(b"not wasm".to_vec())
        .error(400, "invalid_name")
        .await;
    host.upload(key, "steps3").await;
    host.call(M::POST, component)
        .args(&["steps3"])
        .key(key)
        .bytes(fixture("steps3"))
        .expect(200)
        .await;
    host.call(M::GET, "/v1/components")
        .key(key)
        .expect(200)
        .await;
    host.call(M::GET, component)
        .args(&["steps3"])
        .key(key)
        .expect(200)
        .await;
    host.call(M::GET, component)
        .args(&["missing"])
        .key(key)
        .error(404, "component_not_found")
        .await;
    let version = "/v1/components/{name}/versions/{version}";
    host.call(M::GET, version)
        .args(&["steps3", "1"])
        .key(key)
        .expect(200)
        .await;
    host.call(M::GET, version)
        .args(&["steps3", "one"])
        .key(key)
        .error(400, "bad_request")
        .await;
    host.call(M::GET, version)
        .args(&["steps3", "9"])
        .key(key)
        .error(404, "component_not_found")
        .await;
}

/// Executions: starts (idempotent by name), reads, history and log pages, and lists.
async fn execution_answers(host: &Host, key: &str) {
    use Method as M;
    let executions = "/v1/executions";
    let start = |body: Value| host.call(M::POST, executions).key(key).json(body);
    start(json!({"workflow": "missing"}))
        .error(404, "workflow_not_found")
        .await;
    start(json!({"workflow": 1}))
        .error(400, "invalid_request")
        .await;
    start(json!({"workflow": "steps3", "name": ""}))
        .error(400, "invalid_name")
        .await;
    start(json!({"workflow": "steps3", "timeout_seconds": 0}))
        .error(400, "invalid_request")
        .await;
    let body = json!({"workflow": "steps3", "name": "order-1", "input": "s"});
    let started = start(body.clone()).expect(201).await;
    start(body).expect(200).await;
    start(json!({"workflow": "steps3", "name": "order-1", "input": "t"}))
        .error(409, "execution_name_conflict")
        .await;
    let id = started.text("execution_id");
    let execution = "/v1/executions/{id}";
    let done = host
        .call(M::GET, execution)
        .args(&[&id])
        .query("wait_ms=30000")
        .key(key)
        .expect(200)
        .await;
    assert_eq!(done.body["result"], "s-a-b-c", "{}", done.body);
    host.call(M::GET, execution)
        .args(&["ex_missing"])
        .key(key)
        .error(404, "execution_not_found")
        .await;
    host.call(M::GET, execution)
        .args(&[&id])
        .query("wait_ms=soon")
        .key(key)
        .error(400, "bad_request")
        .await;
    let history = "/v1/executions/{id}/history";
    let page = host
        .call(M::GET, history)
        .args(&[&id])
        .query("limit=2")
        .key(key)
        .expect(200)
        .await;
    assert_eq!(page.body["next_after"], 2);
    host.call(M::GET, history)
        .args(&[&id])
        .query("after=2")
        .key(key)
        .expect(200)
        .await;
    let logs = "/v1/executions/{id}/logs";
    let page = host
        .call(M::GET, logs)
        .args(&[&id])
        .query("after=0&limit=5")
        .key(key)
        .expect(200)
        .await;
    assert_eq!(page.body, json!({"records": [], "next_after": null}));
    host.call(M::GET, logs)
        .args(&["ex_missing"])
        .key(key)
        .error(404, "execution_not_found")
        .await;
    host.call(M::GET, logs)
        .args(&[&id])
        .query("after=first")
        .key(key)
        .error(400, "bad_request")
        .await;
    host.call(M::GET, executions).key(key).expect(200).await;
    host.call(M::GET, executions)
        .query("status=SUCCEEDED&workflow=steps3&limit=1&created_after=0")
        .key(key)
        .expect(200)
        .await;
    host.call(M::GET, executions)
        .query("status=DONE")
        .key(key)
        .error(400, "invalid_request")
        .await;
    host.call(M::GET, executions)
        .query("cursor=nonsense")
        .key(key)
        .error(400, "invalid_cursor")
        .await;
    host.call(M::GET, executions)
        .query("colour=red")
        .key(key)
        .error(400, "bad_request")
        .await;
}

/// Callbacks: the callback id is the only credential. Answers the execution whose callback
/// failed.
async fn callback_answers(host: &Host, key: &str) -> String {
    use Method as M;
    let start = |body: Value| host.call(M::POST, "/v1/executions").key(key).json(body);
    let execution = "/v1/executions/{id}";
    host.upload(key, "callback").await;
    let exec = start(waiting()).expect(201).await.text("execution_id");
    let callback_id = pending_callback(host, key, &exec).await;
    let succeed = "/v1/callbacks/{id}/succeed";
    let fail = "/v1/callbacks/{id}/fail";
    let heartbeat = "/v1/callbacks/{id}/heartbeat";
    host.call(M::POST, heartbeat)
        .args(&[&callback_id])
        .expect(200)
        .await;
    host.call(M::POST, fail)
        .args(&[&callback_id])
        .json(json!({"reason": "no"}))
        .error(400, "invalid_request")
        .await;
    host.call(M::POST, succeed)
        .args(&[&callback_id])
        .bytes(b"{".to_vec())
        .error(400, "invalid_json")
        .await;
    host.call(M::POST, fail)
        .args(&[&callback_id])
        .json(json!({"error_type": "Denied", "error_data": {"by": "ops"}}))
        .expect(200)
        .await;
    host.call(M::POST, fail)
        .args(&[&callback_id])
        .error(409, "callback_already_completed")
        .await;
    host.call(M::POST, succeed)
        .args(&[&callback_id])
        .json(json!("late"))
        .error(409, "callback_already_completed")
        .await;
    host.call(M::POST, heartbeat)
        .args(&["cb_missing"])
        .error(404, "callback_not_found")
        .await;
    let failed = host
        .call(M::GET, execution)
        .args(&[&exec])
        .query("wait_ms=30000")
        .key(key)
        .expect(200)
        .await;
    assert_eq!(
        failed.body["error"]["error_type"], "Denied",
        "{}",
        failed.body
    );
    exec
}

/// Stopping, and deleting components.
async fn stop_and_delete_answers(host: &Host, key: &str) {
    use Method as M;
    let version = "/v1/components/{name}/versions/{version}";
    let running = host
        .call(M::POST, "/v1/executions")
        .key(key)
        .json(waiting())
        .expect(201)
        .await
        .text("execution_id");
    host.call(M::DELETE, version)
        .args(&["callback", "1"])
        .key(key)
        .error(409, "component_in_use")
        .await;
    let stop = "/v1/executions/{id}/stop";
    host.call(M::POST, stop)
        .args(&[&running])
        .key(key)
        .expect(200)
        .await;
    host.call(M::POST, stop)
        .args(&[&running])
        .key(key)
        .error(409, "execution_not_running")
        .await;
    host.call(M::POST, stop)
        .args(&["ex_missing"])
        .key(key)
        .error(404, "execution_not_found")
        .await;
    host.call(M::DELETE, version)
        .args(&["steps3", "1"])
        .key(key)
        .expect(204)
        .await;
    host.call(M::DELETE, version)
        .args(&["steps3", "1"])
        .key(key)
        .error(404, "component_not_found")
        .await;
}

/// Quotas: payload size, running executions and request rate.
async fn quota_answers(host: &Host) {
    use Method as M;
    let (executions, stop) = ("/v1/executions", "/v1/executions/{id}/stop");
    let (whoami, waiting) = ("/v1/tenant", waiting());
    let tiny = host
        .tenant(
            "tiny",
            json!({"max_payload_kb": 1, "max_running_executions": 1}),
        )
        .await;
    let big = json!({"workflow": "callback", "input": "x".repeat(20_000)});
    host.call(M::POST, executions)
        .key(&tiny)
        .json(big)
        .error(413, "payload_too_large")
        .await;
    host.upload(&tiny, "callback").await;
    let first = host
        .call(M::POST, executions)
        .key(&tiny)
        .json(waiting.clone())
        .expect(201)
        .await;
    host.call(M::POST, executions)
        .key(&tiny)
        .json(waiting)
        .error(429, "quota_exceeded")
        .await;
    host.call(M::POST, stop)
        .args(&[&first.text("execution_id")])
        .key(&tiny)
        .expect(200)
        .await;
    let slow = host
        .tenant(
            "slow",
            json!({"requests_per_second": 1, "request_burst": 1}),
        )
        .await;
    host.call(M::GET, whoami).key(&slow).expect(200).await;
    let limited = host
        .call(M::GET, whoami)
        .key(&slow)
        .error(429, "rate_limited")
        .await;
    assert!(limited.headers.contains_key("retry-after"), "{limited:?}");
}

/// Dead letters: a page (empty here), for the tenant and for the operator.
async fn dead_letter_answers(host: &Host, key: &str, tenant_id: &str) {
    use Method as M;
    let letters = "/v1/events/dead-letters";
    let page = host.call(M::GET, letters).key(key).expect(200).await;
    assert_eq!(page.body["dead_letters"], json!([]), "{page:?}");
    host.call(M::GET, letters)
        .key(key)
        .query("after=soon")
        .error(400, "bad_request")
        .await;
    let all = "/v1/admin/dead-letters";
    host.call(M::GET, all)
        .key(ADMIN_KEY)
        .query(&format!("tenant_id={tenant_id}&after=0&limit=5"))
        .expect(200)
        .await;
    host.call(M::GET, all)
        .key(key)
        .error(401, "unauthorized")
        .await;
}

/// Presigned artifact links.
async fn artifact_link_answers(host: &Host, tenant_id: &str, exec: &str) {
    use Method as M;
    let artifact = "/v1/artifacts/{tenant}/{execution}/{key}";
    host.call(M::GET, artifact)
        .args(&[tenant_id, exec, "report.txt"])
        .error(403, "link_invalid")
        .await;
    host.call(M::GET, artifact)
        .args(&[tenant_id, exec, "a/report.txt"])
        .query("expires=99999999999&sig=forged")
        .error(403, "link_invalid")
        .await;
    host.call(M::GET, artifact)
        .args(&[tenant_id, exec, "report.txt"])
        .query("expires=tomorrow&sig=forged")
        .error(400, "bad_request")
        .await;
}

/// Outside the documented routes: still the error shape.
async fn unrouted_answers(host: &Host, key: &str) {
    use Method as M;
    let unknown = host.raw(M::GET, "/v1/nothing", Some(key), Vec::new()).await;
    assert_eq!((unknown.status, unknown.code()), (404, "route_not_found"));
    check_error_shape(&unknown);
    let wrong = host
        .raw(M::DELETE, "/v1/executions", Some(key), Vec::new())
        .await;
    assert_eq!((wrong.status, wrong.code()), (405, "method_not_allowed"));
    check_error_shape(&wrong);
}

/// Waits for execution `id` to wait on a callback, and answers the callback's id.
async fn pending_callback(host: &Host, key: &str, id: &str) -> String {
    for _ in 0..300 {
        let reply = host
            .call(Method::GET, "/v1/executions/{id}")
            .args(&[id])
            .key(key)
            .expect(200)
            .await;
        if let Some(callback) = reply.body["pending_callbacks"][0]["callback_id"].as_str() {
            return callback.to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {id} never waited on a callback");
}

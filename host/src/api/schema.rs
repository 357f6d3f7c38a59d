//! Validators built from the schemas of the API's OpenAPI document (`openapi.rs`).
//!
//! JSON request bodies are checked against the document before they are deserialized, so the
//! contract clients read is the one the host enforces, and a bad body gets an answer that names
//! each problem by JSON pointer rather than serde's first complaint. `openapi_tests.rs` keeps the
//! document true to the router and to what the handlers answer.

use super::{ApiError, Code, body};
use jsonschema::Validator;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// At most this many problems are named in one answer.
const MAX_ERRORS: usize = 3;
/// Longest description of one problem (a property name or value can be anything a client sent).
const MAX_ERROR_CHARS: usize = 200;

/// A validator for each of the document's `components/schemas`, by name.
pub struct Schemas {
    pub validators: BTreeMap<String, Validator>,
}

static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| {
    Schemas::load(super::openapi::document())
        .unwrap_or_else(|e| panic!("the OpenAPI document: {e}"))
});

/// The compiled schemas of the generic host's document. Compiling happens once; `router` forces
/// it so that a broken document stops the host at start rather than failing requests.
pub fn schemas() -> &'static Schemas {
    &SCHEMAS
}

impl Schemas {
    /// Compiles every schema of `document` (an OpenAPI document as JSON). An extension compiles
    /// the document it is served in ([`super::openapi::document_with`]) to check its own bodies.
    ///
    /// # Errors
    /// When the document does not parse, or a schema does not compile.
    pub fn load(document: &str) -> Result<Self, String> {
        let document: Value = serde_json::from_str(document).map_err(|e| e.to_string())?;
        let names = document
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .ok_or("no components/schemas")?
            .keys();
        let mut validators = BTreeMap::new();
        for name in names {
            let reference = json!({"$ref": format!("#/components/schemas/{name}")});
            let validator =
                compile(&document, &reference).map_err(|e| format!("schema {name}: {e}"))?;
            validators.insert(name.clone(), validator);
        }
        Ok(Self { validators })
    }
}

/// Compiles `schema` (JSON Schema 2020-12, the dialect of OpenAPI 3.1) so that its
/// `#/components/...` references resolve against `document`'s components.
///
/// # Errors
/// A message when the schema is not valid or a reference does not resolve.
pub fn compile(document: &Value, schema: &Value) -> Result<Validator, String> {
    let mut root = schema.clone();
    if let Some(root) = root.as_object_mut() {
        root.insert("components".into(), document["components"].clone());
    }
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| e.to_string())
}

/// Parses a JSON body, checks it against the document's schema `name`, then deserializes it.
///
/// # Errors
/// 400 `invalid_json` when the body is not JSON (or, past the schema, does not fit `T`), and
/// 400 `invalid_request` naming the first few places where it does not match the schema.
pub fn parse<T: DeserializeOwned>(bytes: &[u8], name: &str) -> Result<T, ApiError> {
    schemas().parse(bytes, name)
}

impl Schemas {
    /// Parses a JSON body, checks it against the schema `name`, then deserializes it.
    ///
    /// # Errors
    /// 400 `invalid_json` when the body is not JSON (or, past the schema, does not fit `T`), and
    /// 400 `invalid_request` naming the first few places where it does not match the schema.
    pub fn parse<T: DeserializeOwned>(&self, bytes: &[u8], name: &str) -> Result<T, ApiError> {
        let value: Value = body::json(bytes)?;
        self.check(&value, name)?;
        serde_json::from_value(value).map_err(|e| {
            ApiError::bad_request(Code::InvalidJson, format!("invalid request body: {e}"))
        })
    }

    /// Checks `value` against the schema `name`.
    ///
    /// # Errors
    /// 400 `invalid_request` naming the first few problems, each by its JSON pointer.
    pub fn check(&self, value: &Value, name: &str) -> Result<(), ApiError> {
        let Some(validator) = self.validators.get(name) else {
            return Err(ApiError::bug(format!(
                "no schema {name} in the OpenAPI document"
            )));
        };
        let mut problems = Vec::new();
        let mut more = 0;
        for error in validator.iter_errors(value) {
            if problems.len() == MAX_ERRORS {
                more += 1;
                continue;
            }
            let pointer = error.instance_path().to_string();
            let pointer = if pointer.is_empty() {
                "(root)".to_string()
            } else {
                pointer
            };
            // Show the offending value only when it is short: it may be a whole payload.
            let short = error.instance().to_string().len() <= 40;
            let message = if short {
                error.to_string()
            } else {
                error.masked().to_string()
            };
            problems.push(clip(format!("{pointer}: {message}")));
        }
        if problems.is_empty() {
            return Ok(());
        }
        let mut message = format!("invalid request body: {}", problems.join("; "));
        if more > 0 {
            message.push_str(&format!(" (and {more} more)"));
        }
        Err(ApiError::bad_request(Code::InvalidRequest, message))
    }
}

fn clip(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_ERROR_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

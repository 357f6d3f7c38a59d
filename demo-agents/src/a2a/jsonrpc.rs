//! The JSON-RPC 2.0 envelope: request validation, response and error objects, error codes.
//!
//! Parsing is done by hand on a `serde_json::Value` (not with a derived struct) so that each
//! kind of malformation gets its own standard code: unparsable JSON is -32700, a well-formed
//! value that is not a request is -32600, and a request whose `params` is not an object is
//! -32602. Batches are refused: A2A never uses them.

use serde_json::{Map, Value, json};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
// A2A-specific codes (identical in v0.3 and v1.0).
pub const TASK_NOT_FOUND: i64 = -32001;
pub const TASK_NOT_CANCELABLE: i64 = -32002;
pub const UNSUPPORTED_OPERATION: i64 = -32004;
pub const CONTENT_TYPE_NOT_SUPPORTED: i64 = -32005;
pub const VERSION_NOT_SUPPORTED: i64 = -32009;

#[derive(Debug, Clone, PartialEq)]
pub struct RpcRequest {
    /// String, number or null; echoed in the response.
    pub id: Value,
    pub method: String,
    /// Always an object (an absent `params` becomes `{}`).
    pub params: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

/// Parses and validates one request. On failure returns the id to answer with (null when the
/// request's own id could not be read) and the error.
///
/// # Errors
/// -32700, -32600 or -32602 as described in the module docs.
pub fn parse(body: &[u8]) -> Result<RpcRequest, (Value, RpcError)> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        (
            Value::Null,
            RpcError::new(PARSE_ERROR, format!("parse error: {e}")),
        )
    })?;
    let obj = match value {
        Value::Object(obj) => obj,
        Value::Array(_) => {
            return Err((
                Value::Null,
                RpcError::new(INVALID_REQUEST, "batch requests are not supported"),
            ));
        }
        _ => {
            return Err((
                Value::Null,
                RpcError::new(INVALID_REQUEST, "a request must be a JSON object"),
            ));
        }
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => Value::Null,
        Some(v @ (Value::String(_) | Value::Number(_))) => v.clone(),
        Some(_) => {
            return Err((
                Value::Null,
                RpcError::new(INVALID_REQUEST, "\"id\" must be a string, a number or null"),
            ));
        }
    };
    let invalid = |msg: &str| (id.clone(), RpcError::new(INVALID_REQUEST, msg));
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("\"jsonrpc\" must be exactly \"2.0\""));
    }
    let method = match obj.get("method").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => return Err(invalid("\"method\" must be a non-empty string")),
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => {
            return Err((id, RpcError::invalid_params("\"params\" must be an object")));
        }
    };
    Ok(RpcRequest { id, method, params })
}

pub fn success(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

pub fn failure(id: &Value, error: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": error.to_json()})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> (Value, i64) {
        let (id, e) = parse(body.as_bytes()).unwrap_err();
        (id, e.code)
    }

    #[test]
    fn accepts_well_formed_requests() {
        let r =
            parse(br#"{"jsonrpc":"2.0","id":7,"method":"tasks/get","params":{"id":"t"}}"#).unwrap();
        assert_eq!(r.id, json!(7));
        assert_eq!(r.method, "tasks/get");
        assert_eq!(r.params, json!({"id": "t"}));
        let r = parse(br#"{"jsonrpc":"2.0","id":"a","method":"GetTask"}"#).unwrap();
        assert_eq!(r.params, json!({}));
    }

    #[test]
    fn maps_each_malformation_to_its_code() {
        assert_eq!(code("{nope"), (Value::Null, PARSE_ERROR));
        assert_eq!(code("[]"), (Value::Null, INVALID_REQUEST));
        assert_eq!(code("3"), (Value::Null, INVALID_REQUEST));
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#),
            (json!(1), INVALID_REQUEST)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1}"#),
            (json!(1), INVALID_REQUEST)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":{"x":1},"method":"m"}"#),
            (Value::Null, INVALID_REQUEST)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":"q","method":"m","params":[1]}"#),
            (json!("q"), INVALID_PARAMS)
        );
    }

    #[test]
    fn renders_responses() {
        assert_eq!(
            success(&json!(1), json!({"ok": true})),
            json!({"jsonrpc": "2.0", "id": 1, "result": {"ok": true}})
        );
        let e = RpcError::new(TASK_NOT_FOUND, "Task not found").with_data(json!({"id": "t"}));
        assert_eq!(
            failure(&json!("x"), &e),
            json!({"jsonrpc": "2.0", "id": "x", "error": {"code": -32001, "message": "Task not found", "data": {"id": "t"}}})
        );
    }
}

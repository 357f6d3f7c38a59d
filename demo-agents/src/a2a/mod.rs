//! A2A over JSON-RPC 2.0, in both method generations.
//!
//! The generation is chosen by the `A2A-Version` request header: absent, empty or `0.3[.x]`
//! means v0.3 (`message/send`, lowercase states, `kind` discriminators); `1.0[.x]` means v1.0
//! (`SendMessage`, `TASK_STATE_*`, member-discriminated parts), and the response carries
//! `A2A-Version: 1.0`. A method of the other generation is answered with -32009
//! (VersionNotSupported) naming the header to send, which is what the reference SDK does and
//! catches clients that forget the header.
//!
//! Parsing of messages and parts is shared and lenient (either generation's spelling is read);
//! rendering is strict per generation.

pub mod card;
pub mod jsonrpc;
pub mod server;
pub mod v03;
pub mod v10;

use crate::service::ServiceError;
use crate::tasks::{Message, Part, Sender, Task, TaskState};
use jsonrpc::RpcError;
use serde_json::{Map, Value};

pub const VERSION_HEADER: &str = "A2A-Version";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    V03,
    V10,
}

/// Reads the `A2A-Version` header value.
///
/// # Errors
/// The unsupported value.
pub fn generation(header: Option<&str>) -> Result<Generation, String> {
    let v = header.map(str::trim).unwrap_or("");
    if v.is_empty() || v == "0.3" || v.starts_with("0.3.") {
        Ok(Generation::V03)
    } else if v == "1" || v == "1.0" || v.starts_with("1.0.") {
        Ok(Generation::V10)
    } else {
        Err(v.to_string())
    }
}

impl From<ServiceError> for RpcError {
    fn from(e: ServiceError) -> Self {
        let code = match &e {
            ServiceError::TaskNotFound(_) => jsonrpc::TASK_NOT_FOUND,
            ServiceError::NotCancelable { .. } => jsonrpc::TASK_NOT_CANCELABLE,
            ServiceError::InvalidParams(_) => jsonrpc::INVALID_PARAMS,
            ServiceError::Unsupported(_) => jsonrpc::UNSUPPORTED_OPERATION,
            ServiceError::Storage(_) => jsonrpc::INTERNAL_ERROR,
        };
        RpcError::new(code, e.to_string())
    }
}

pub(crate) fn object<'a>(
    v: Option<&'a Value>,
    what: &str,
) -> Result<&'a Map<String, Value>, RpcError> {
    v.and_then(Value::as_object)
        .ok_or_else(|| RpcError::invalid_params(format!("\"{what}\" must be an object")))
}

pub(crate) fn opt_str(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, RpcError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RpcError::invalid_params(format!(
            "\"{field}\" must be a string"
        ))),
    }
}

pub(crate) fn required_str(obj: &Map<String, Value>, field: &str) -> Result<String, RpcError> {
    opt_str(obj, field)?.ok_or_else(|| RpcError::invalid_params(format!("\"{field}\" is required")))
}

pub(crate) fn opt_bool(obj: &Map<String, Value>, field: &str) -> Result<Option<bool>, RpcError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(RpcError::invalid_params(format!(
            "\"{field}\" must be a boolean"
        ))),
    }
}

/// `historyLength`: absent means no limit.
pub(crate) fn history_length(obj: &Map<String, Value>) -> Result<Option<usize>, RpcError> {
    match obj.get("historyLength") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(usize::try_from(n).unwrap_or(usize::MAX)))
            .ok_or_else(|| {
                RpcError::invalid_params("\"historyLength\" must be a non-negative integer")
            }),
    }
}

/// Reads a message in either generation's spelling.
pub(crate) fn parse_message(v: Option<&Value>) -> Result<Message, RpcError> {
    let obj = object(v, "message")?;
    let message_id = required_str(obj, "messageId")?;
    let sender = match obj.get("role").and_then(Value::as_str) {
        Some("user" | "ROLE_USER") => Sender::User,
        Some("agent" | "ROLE_AGENT") => Sender::Agent,
        Some(other) => {
            return Err(RpcError::invalid_params(format!(
                "unknown message role {other:?}"
            )));
        }
        None => return Err(RpcError::invalid_params("\"message.role\" is required")),
    };
    let parts = obj
        .get("parts")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| RpcError::invalid_params("\"message.parts\" must be a non-empty array"))?
        .iter()
        .map(parse_part)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Message {
        message_id,
        sender,
        parts,
        context_id: opt_str(obj, "contextId")?,
        task_id: opt_str(obj, "taskId")?,
    })
}

/// A part: v0.3 `{"kind": "text", "text"}` / `{"kind": "data", "data"}` or v1.0 `{"text"}` /
/// `{"data"}`. File parts (`kind: file`, `url`, `raw`) are refused with -32005.
fn parse_part(v: &Value) -> Result<Part, RpcError> {
    let obj = v
        .as_object()
        .ok_or_else(|| RpcError::invalid_params("each part must be an object"))?;
    let kind = obj.get("kind").and_then(Value::as_str);
    let is_file = matches!(kind, Some("file"))
        || obj.contains_key("file")
        || obj.contains_key("url")
        || obj.contains_key("raw");
    if is_file {
        return Err(RpcError::new(
            jsonrpc::CONTENT_TYPE_NOT_SUPPORTED,
            "file parts are not supported; send the input as a data part or JSON text",
        ));
    }
    match (kind, obj.get("text"), obj.get("data")) {
        (Some("text") | None, Some(Value::String(t)), _) => Ok(Part::Text(t.clone())),
        (Some("data") | None, _, Some(d)) => Ok(Part::Data(d.clone())),
        _ => Err(RpcError::invalid_params(
            "a part must hold a string \"text\" or a \"data\" value",
        )),
    }
}

/// The text of a task's status message: a summary when completed, the error when it failed
/// or was canceled, nothing while it runs.
pub(crate) fn status_text(task: &Task) -> Option<String> {
    match task.state {
        TaskState::Completed => Some(task.result.as_ref().map_or_else(
            || format!("{} finished", task.role),
            |r| task.role.summarise(r),
        )),
        TaskState::Failed | TaskState::Canceled => task.error.clone(),
        TaskState::Submitted | TaskState::Working => None,
    }
}

/// The messages of a task's history, limited to the last `limit`.
pub(crate) fn history(task: &Task, limit: Option<usize>) -> Vec<&Message> {
    let all: Vec<&Message> = task.request.iter().collect();
    let keep = limit.unwrap_or(all.len()).min(all.len());
    all[all.len() - keep..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_selects_the_generation() {
        assert_eq!(generation(None), Ok(Generation::V03));
        assert_eq!(generation(Some("")), Ok(Generation::V03));
        assert_eq!(generation(Some("0.3")), Ok(Generation::V03));
        assert_eq!(generation(Some("0.3.0")), Ok(Generation::V03));
        assert_eq!(generation(Some("1.0")), Ok(Generation::V10));
        assert_eq!(generation(Some(" 1.0.2 ")), Ok(Generation::V10));
        assert_eq!(generation(Some("2.0")), Err("2.0".into()));
    }

    #[test]
    fn messages_parse_in_both_spellings() {
        let v03 = json!({"kind": "message", "role": "user", "messageId": "m1", "contextId": "c",
            "parts": [{"kind": "text", "text": "hi"}, {"kind": "data", "data": {"topic": "x"}}]});
        let m = parse_message(Some(&v03)).unwrap();
        assert_eq!(m.message_id, "m1");
        assert_eq!(m.sender, Sender::User);
        assert_eq!(m.context_id.as_deref(), Some("c"));
        assert_eq!(
            m.parts,
            vec![Part::Text("hi".into()), Part::Data(json!({"topic": "x"}))]
        );
        let v10 = json!({"role": "ROLE_USER", "messageId": "m2", "taskId": "",
            "parts": [{"text": "hi", "mediaType": "text/plain"}, {"data": {"topic": "x"}, "mediaType": "application/json"}]});
        let m = parse_message(Some(&v10)).unwrap();
        assert_eq!(m.task_id, None);
        assert_eq!(m.parts.len(), 2);
    }

    #[test]
    fn bad_messages_are_invalid_params_and_files_unsupported() {
        for bad in [
            json!(null),
            json!({"role": "user", "parts": [{"text": "x"}]}),
            json!({"role": "user", "messageId": "m", "parts": []}),
            json!({"role": "boss", "messageId": "m", "parts": [{"text": "x"}]}),
            json!({"messageId": "m", "parts": [{"text": "x"}]}),
            json!({"role": "user", "messageId": "m", "parts": [{"kind": "text", "text": 3}]}),
            json!({"role": "user", "messageId": 5, "parts": [{"text": "x"}]}),
        ] {
            let e = parse_message(Some(&bad)).unwrap_err();
            assert_eq!(e.code, jsonrpc::INVALID_PARAMS, "{bad}");
        }
        let file = json!({"role": "user", "messageId": "m", "parts": [{"url": "https://x/y.pdf"}]});
        assert_eq!(
            parse_message(Some(&file)).unwrap_err().code,
            jsonrpc::CONTENT_TYPE_NOT_SUPPORTED
        );
    }
}

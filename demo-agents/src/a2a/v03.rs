//! A2A v0.3 wire shapes and methods: `message/send`, `tasks/get`, `tasks/cancel`,
//! `tasks/pushNotificationConfig/set`.
//!
//! Objects carry `kind` discriminators (`"task"`, `"message"`, `"text"`, `"data"`), states are
//! lowercase (`submitted`, `working`, `completed`, `failed`, `canceled`), roles are `user` /
//! `agent`, and `message/send` returns the Task itself. Push notifications POST the bare Task.

use super::jsonrpc::{METHOD_NOT_FOUND, RpcError, UNSUPPORTED_OPERATION};
use super::{
    history, history_length, object, opt_bool, opt_str, parse_message, required_str, status_text,
};
use crate::clock::iso8601;
use crate::service::{AgentService, SendRequest, Wait, state_name};
use crate::tasks::{Message, Part, PushAuth, PushFormat, PushTarget, Sender, Task};
use serde_json::{Map, Value, json};

/// Whether `method` is a v0.3 method name (offered or not).
pub fn knows(method: &str) -> bool {
    METHODS.contains(&method) || UNSUPPORTED.contains(&method)
}

pub const METHODS: &[&str] = &[
    "message/send",
    "tasks/get",
    "tasks/cancel",
    "tasks/pushNotificationConfig/set",
];
/// v0.3 methods these agents know of but do not offer.
const UNSUPPORTED: &[&str] = &[
    "message/stream",
    "tasks/resubscribe",
    "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard",
];

/// Runs one v0.3 method.
///
/// # Errors
/// The JSON-RPC error to answer with.
pub async fn dispatch(
    service: &AgentService,
    method: &str,
    params: &Value,
    idempotency_key: Option<String>,
) -> Result<Value, RpcError> {
    let params = object(Some(params), "params")?;
    match method {
        "message/send" => {
            let (request, history_len) = parse_send(params, idempotency_key)?;
            let task = service.send(request).await?;
            Ok(task_json(&task, history_len))
        }
        "tasks/get" => {
            let id = required_str(params, "id")?;
            let task = service.get(&id)?;
            Ok(task_json(&task, history_length(params)?))
        }
        "tasks/cancel" => {
            let id = required_str(params, "id")?;
            Ok(task_json(&service.cancel(&id)?, None))
        }
        "tasks/pushNotificationConfig/set" => {
            let task_id = required_str(params, "taskId")?;
            let target = parse_push_config(params.get("pushNotificationConfig"))?;
            let effective = service.add_push(&task_id, target)?;
            Ok(push_config_json(&task_id, &effective))
        }
        m if UNSUPPORTED.contains(&m) => Err(RpcError::new(
            UNSUPPORTED_OPERATION,
            format!("{m} is not supported by this agent; use push notifications and tasks/get"),
        )),
        m => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method {m:?} not found"),
        )),
    }
}

/// `{message, configuration?: {blocking?, pushNotificationConfig?, historyLength?}}`.
///
/// Without `blocking`, a request with a push config returns at once (the push brings the
/// result) and one without waits for the result.
fn parse_send(
    params: &Map<String, Value>,
    idempotency_key: Option<String>,
) -> Result<(SendRequest, Option<usize>), RpcError> {
    let message = parse_message(params.get("message"))?;
    let empty = Map::new();
    let config = match params.get("configuration") {
        None | Some(Value::Null) => &empty,
        v => object(v, "configuration")?,
    };
    let push = match config.get("pushNotificationConfig") {
        None | Some(Value::Null) => None,
        v => Some(parse_push_config(v)?),
    };
    let wait = match opt_bool(config, "blocking")? {
        Some(true) => Wait::UntilDone,
        Some(false) => Wait::ReturnImmediately,
        None if push.is_some() => Wait::ReturnImmediately,
        None => Wait::UntilDone,
    };
    Ok((
        SendRequest {
            message,
            push,
            wait,
            idempotency_key,
        },
        history_length(config)?,
    ))
}

/// `{url, token?, id?, authentication?: {schemes: [..], credentials?}}`.
pub fn parse_push_config(v: Option<&Value>) -> Result<PushTarget, RpcError> {
    let obj = object(v, "pushNotificationConfig")?;
    let url = required_str(obj, "url")?;
    check_url(&url)?;
    let auth = match obj.get("authentication") {
        None | Some(Value::Null) => None,
        v => {
            let a = object(v, "authentication")?;
            let scheme = a
                .get("schemes")
                .and_then(Value::as_array)
                .and_then(|s| s.first())
                .and_then(Value::as_str)
                .map(str::to_string);
            match (scheme, opt_str(a, "credentials")?) {
                (Some(scheme), Some(credentials)) => Some(PushAuth {
                    scheme,
                    credentials,
                }),
                _ => None,
            }
        }
    };
    Ok(PushTarget {
        id: opt_str(obj, "id")?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        url,
        token: opt_str(obj, "token")?,
        auth,
        format: PushFormat::V03,
    })
}

pub(crate) fn check_url(url: &str) -> Result<(), RpcError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(RpcError::invalid_params(format!(
            "push url {url:?} must be an http(s) URL"
        )))
    }
}

fn part_json(part: &Part) -> Value {
    match part {
        Part::Text(t) => json!({"kind": "text", "text": t}),
        Part::Data(d) => json!({"kind": "data", "data": d}),
    }
}

fn message_json(m: &Message, task: &Task) -> Value {
    json!({
        "kind": "message",
        "messageId": m.message_id,
        "role": match m.sender { Sender::User => "user", Sender::Agent => "agent" },
        "parts": m.parts.iter().map(part_json).collect::<Vec<_>>(),
        "taskId": task.id,
        "contextId": task.context_id,
    })
}

/// The v0.3 Task object. The result, when there is one, is the `data` part of the first
/// artifact (`artifacts[0].parts[0].data`); the writer's artifact also has a text part with
/// the markdown.
pub fn task_json(task: &Task, history_limit: Option<usize>) -> Value {
    let mut status = json!({
        "state": state_name(task.state),
        "timestamp": iso8601(task.updated_at),
    });
    if let Some(text) = status_text(task) {
        status["message"] = message_json(
            &Message {
                message_id: format!("{}-status", task.id),
                sender: Sender::Agent,
                parts: vec![Part::Text(text)],
                context_id: None,
                task_id: None,
            },
            task,
        );
    }
    let mut out = json!({
        "kind": "task",
        "id": task.id,
        "contextId": task.context_id,
        "status": status,
        "metadata": {"agentRole": task.role.name()},
    });
    if let Some(result) = &task.result {
        out["artifacts"] = json!([{
            "artifactId": format!("{}-result", task.id),
            "name": format!("{}-result", task.role),
            "parts": result_parts(result).iter().map(part_json).collect::<Vec<_>>(),
        }]);
    }
    let history = history(task, history_limit);
    if !history.is_empty() {
        out["history"] = history.iter().map(|m| message_json(m, task)).collect();
    }
    out
}

/// The artifact parts of a result: the JSON itself, plus the report text for the writer.
pub(crate) fn result_parts(result: &Value) -> Vec<Part> {
    let mut parts = vec![Part::Data(result.clone())];
    if let Some(md) = result.get("report_markdown").and_then(Value::as_str) {
        parts.push(Part::Text(md.to_string()));
    }
    parts
}

/// The `TaskPushNotificationConfig` answer of `tasks/pushNotificationConfig/set`.
pub fn push_config_json(task_id: &str, target: &PushTarget) -> Value {
    let mut config = json!({"id": target.id, "url": target.url});
    if let Some(token) = &target.token {
        config["token"] = json!(token);
    }
    if let Some(auth) = &target.auth {
        config["authentication"] =
            json!({"schemes": [auth.scheme], "credentials": auth.credentials});
    }
    json!({"taskId": task_id, "pushNotificationConfig": config})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Role;
    use crate::tasks::TaskState;

    #[test]
    fn send_params_parse_with_push_and_blocking_rules() {
        let params = json!({
            "message": {"kind": "message", "role": "user", "messageId": "m1",
                        "parts": [{"kind": "data", "data": {"topic": "fsync"}}]},
            "configuration": {"pushNotificationConfig": {"url": "http://127.0.0.1:9/hook", "token": "tok",
                              "authentication": {"schemes": ["Bearer"], "credentials": "c"}}}
        });
        let (req, _) = parse_send(params.as_object().unwrap(), Some("k".into())).unwrap();
        assert_eq!(req.wait, Wait::ReturnImmediately);
        let push = req.push.unwrap();
        assert_eq!(push.token.as_deref(), Some("tok"));
        assert_eq!(push.format, PushFormat::V03);
        assert_eq!(push.auth.unwrap().scheme, "Bearer");
        assert_eq!(req.idempotency_key.as_deref(), Some("k"));

        let blocking = json!({"message": {"role": "user", "messageId": "m", "parts": [{"kind": "text", "text": "x"}]},
                              "configuration": {"blocking": true, "pushNotificationConfig": {"url": "https://h/x"}}});
        let (req, _) = parse_send(blocking.as_object().unwrap(), None).unwrap();
        assert_eq!(req.wait, Wait::UntilDone);
        let plain = json!({"message": {"role": "user", "messageId": "m", "parts": [{"kind": "text", "text": "x"}]}});
        let (req, _) = parse_send(plain.as_object().unwrap(), None).unwrap();
        assert_eq!(req.wait, Wait::UntilDone);
        assert!(req.push.is_none());

        let bad_url = json!({"message": {"role": "user", "messageId": "m", "parts": [{"kind": "text", "text": "x"}]},
                             "configuration": {"pushNotificationConfig": {"url": "ftp://x"}}});
        assert_eq!(
            parse_send(bad_url.as_object().unwrap(), None)
                .unwrap_err()
                .code,
            super::super::jsonrpc::INVALID_PARAMS
        );
    }

    #[test]
    fn task_renders_in_v03_shape() {
        let msg = Message {
            message_id: "m1".into(),
            sender: Sender::User,
            parts: vec![Part::Text("fsync".into())],
            context_id: None,
            task_id: None,
        };
        let mut task = Task::new("t1".into(), "c1".into(), Role::Writer, Some(msg), json!({}));
        let v = task_json(&task, None);
        assert_eq!(v["kind"], "task");
        assert_eq!(v["status"]["state"], "submitted");
        assert!(v.get("artifacts").is_none());
        assert_eq!(v["history"][0]["role"], "user");
        assert_eq!(
            v["history"][0]["parts"][0],
            json!({"kind": "text", "text": "fsync"})
        );

        task.state = TaskState::Completed;
        task.result = Some(json!({"report_markdown": "# R", "word_count": 2, "citations": []}));
        let v = task_json(&task, Some(0));
        assert_eq!(v["status"]["state"], "completed");
        assert_eq!(v["status"]["message"]["role"], "agent");
        assert_eq!(v["status"]["message"]["kind"], "message");
        assert_eq!(v["artifacts"][0]["parts"][0]["kind"], "data");
        assert_eq!(v["artifacts"][0]["parts"][0]["data"]["word_count"], 2);
        assert_eq!(
            v["artifacts"][0]["parts"][1],
            json!({"kind": "text", "text": "# R"})
        );
        assert!(v.get("history").is_none());
        assert!(v["status"]["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}

//! A2A v1.0 wire shapes and methods: `SendMessage`, `GetTask`, `CancelTask`,
//! `CreateTaskPushNotificationConfig`.
//!
//! No `kind` fields: parts are told apart by which member they hold (`text`, `data`), states
//! are `TASK_STATE_*`, roles `ROLE_USER` / `ROLE_AGENT`. `SendMessage` answers a
//! `SendMessageResponse` (`{"task": Task}`); `GetTask` and `CancelTask` answer the Task itself.
//! Push notifications POST a `StreamResponse` (`{"task": Task}`), as the reference SDK does.
//!
//! The released proto names the push config in `SendMessageConfiguration`
//! `taskPushNotificationConfig` and the wait switch `returnImmediately`; drafts used
//! `pushNotificationConfig` and `blocking`. Both spellings are read.

use super::jsonrpc::{METHOD_NOT_FOUND, RpcError, UNSUPPORTED_OPERATION};
use super::v03::{check_url, result_parts};
use super::{
    history, history_length, object, opt_bool, opt_str, parse_message, required_str, status_text,
};
use crate::clock::iso8601;
use crate::service::{AgentService, SendRequest, Wait};
use crate::tasks::{Message, Part, PushAuth, PushFormat, PushTarget, Sender, Task, TaskState};
use serde_json::{Map, Value, json};

/// Whether `method` is a v1.0 method name (offered or not).
pub fn knows(method: &str) -> bool {
    METHODS.contains(&method) || UNSUPPORTED.contains(&method)
}

pub const METHODS: &[&str] = &[
    "SendMessage",
    "GetTask",
    "CancelTask",
    "CreateTaskPushNotificationConfig",
];
/// v1.0 methods these agents know of but do not offer.
const UNSUPPORTED: &[&str] = &[
    "SendStreamingMessage",
    "SubscribeToTask",
    "ListTasks",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
    "GetExtendedAgentCard",
];

/// Runs one v1.0 method.
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
        "SendMessage" => {
            let (request, history_len) = parse_send(params, idempotency_key)?;
            let task = service.send(request).await?;
            Ok(json!({"task": task_json(&task, history_len)}))
        }
        "GetTask" => {
            let id = required_str(params, "id")?;
            let task = service.get(&id)?;
            Ok(task_json(&task, history_length(params)?))
        }
        "CancelTask" => {
            let id = required_str(params, "id")?;
            Ok(task_json(&service.cancel(&id)?, None))
        }
        "CreateTaskPushNotificationConfig" => {
            let task_id = required_str(params, "taskId")?;
            let config = if params.contains_key("url") {
                Some(Value::Object(params.clone()))
            } else {
                params
                    .get("pushNotificationConfig")
                    .or_else(|| params.get("config"))
                    .cloned()
            };
            let target = parse_push_config(config.as_ref())?;
            let effective = service.add_push(&task_id, target)?;
            Ok(push_config_json(&task_id, &effective))
        }
        m if UNSUPPORTED.contains(&m) => Err(RpcError::new(
            UNSUPPORTED_OPERATION,
            format!("{m} is not supported by this agent; use push notifications and GetTask"),
        )),
        m => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method {m:?} not found"),
        )),
    }
}

/// `{message, configuration?: {taskPushNotificationConfig?, returnImmediately?, historyLength?}}`.
///
/// Without `returnImmediately`, a request with a push config returns at once (the push brings
/// the result) and one without waits for the result.
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
    let push = match config
        .get("taskPushNotificationConfig")
        .or_else(|| config.get("pushNotificationConfig"))
    {
        None | Some(Value::Null) => None,
        v => Some(parse_push_config(v)?),
    };
    let return_immediately = match opt_bool(config, "returnImmediately")? {
        Some(r) => Some(r),
        None => opt_bool(config, "blocking")?.map(|b| !b),
    };
    let wait = match return_immediately {
        Some(true) => Wait::ReturnImmediately,
        Some(false) => Wait::UntilDone,
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

/// `TaskPushNotificationConfig`: `{url, token?, id?, authentication?: {scheme, credentials?}}`
/// (`tenant` and `taskId` are ignored here).
pub fn parse_push_config(v: Option<&Value>) -> Result<PushTarget, RpcError> {
    let obj = object(v, "taskPushNotificationConfig")?;
    let url = required_str(obj, "url")?;
    check_url(&url)?;
    let auth = match obj.get("authentication") {
        None | Some(Value::Null) => None,
        v => {
            let a = object(v, "authentication")?;
            match (opt_str(a, "scheme")?, opt_str(a, "credentials")?) {
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
        format: PushFormat::V10,
    })
}

pub fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Submitted => "TASK_STATE_SUBMITTED",
        TaskState::Working => "TASK_STATE_WORKING",
        TaskState::Completed => "TASK_STATE_COMPLETED",
        TaskState::Failed => "TASK_STATE_FAILED",
        TaskState::Canceled => "TASK_STATE_CANCELED",
    }
}

fn part_json(part: &Part, text_media_type: &str) -> Value {
    match part {
        Part::Text(t) => json!({"text": t, "mediaType": text_media_type}),
        Part::Data(d) => json!({"data": d, "mediaType": "application/json"}),
    }
}

fn message_json(m: &Message, task: &Task) -> Value {
    json!({
        "messageId": m.message_id,
        "role": match m.sender { Sender::User => "ROLE_USER", Sender::Agent => "ROLE_AGENT" },
        "parts": m.parts.iter().map(|p| part_json(p, "text/plain")).collect::<Vec<_>>(),
        "taskId": task.id,
        "contextId": task.context_id,
    })
}

/// The v1.0 Task object. The result, when there is one, is the `data` part of the first
/// artifact (`artifacts[0].parts[0].data`); the writer's artifact also has a `text/markdown`
/// part with the report.
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
        "id": task.id,
        "contextId": task.context_id,
        "status": status,
        "metadata": {"agentRole": task.role.name()},
    });
    if let Some(result) = &task.result {
        out["artifacts"] = json!([{
            "artifactId": format!("{}-result", task.id),
            "name": format!("{}-result", task.role),
            "parts": result_parts(result).iter().map(|p| part_json(p, "text/markdown")).collect::<Vec<_>>(),
        }]);
    }
    let history = history(task, history_limit);
    if !history.is_empty() {
        out["history"] = history.iter().map(|m| message_json(m, task)).collect();
    }
    out
}

/// The push payload: a `StreamResponse` holding the task (without history, see `push`).
pub fn stream_response(task: &Task) -> Value {
    json!({"task": task_json(task, Some(0))})
}

/// The `TaskPushNotificationConfig` answer of `CreateTaskPushNotificationConfig`.
pub fn push_config_json(task_id: &str, target: &PushTarget) -> Value {
    let mut config = json!({"taskId": task_id, "id": target.id, "url": target.url});
    if let Some(token) = &target.token {
        config["token"] = json!(token);
    }
    if let Some(auth) = &target.auth {
        config["authentication"] = json!({"scheme": auth.scheme, "credentials": auth.credentials});
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Role;

    fn msg() -> Value {
        json!({"role": "ROLE_USER", "messageId": "m1", "parts": [{"data": {"topic": "fsync"}, "mediaType": "application/json"}]})
    }

    #[test]
    fn send_params_read_released_and_draft_spellings() {
        let released = json!({"message": msg(), "configuration": {
            "taskPushNotificationConfig": {"url": "http://127.0.0.1:1/h", "token": "t",
                "authentication": {"scheme": "Bearer", "credentials": "c"}}}});
        let (req, _) = parse_send(released.as_object().unwrap(), None).unwrap();
        assert_eq!(req.wait, Wait::ReturnImmediately);
        let push = req.push.unwrap();
        assert_eq!(push.format, PushFormat::V10);
        assert_eq!(push.auth.unwrap().credentials, "c");

        let draft = json!({"message": msg(), "configuration": {
            "pushNotificationConfig": {"url": "http://127.0.0.1:1/h"}, "blocking": true}});
        let (req, _) = parse_send(draft.as_object().unwrap(), None).unwrap();
        assert_eq!(req.wait, Wait::UntilDone);
        assert!(req.push.is_some());

        let explicit = json!({"message": msg(), "configuration": {"returnImmediately": true}});
        let (req, _) = parse_send(explicit.as_object().unwrap(), None).unwrap();
        assert_eq!(req.wait, Wait::ReturnImmediately);
        let plain = json!({"message": msg()});
        let (req, _) = parse_send(plain.as_object().unwrap(), None).unwrap();
        assert_eq!(req.wait, Wait::UntilDone);
    }

    #[test]
    fn task_renders_in_v10_shape() {
        let message = parse_message(Some(&msg())).unwrap();
        let mut task = Task::new(
            "t1".into(),
            "c1".into(),
            Role::Researcher,
            Some(message),
            json!({}),
        );
        task.state = TaskState::Completed;
        task.result = Some(json!({"topic": "fsync", "passages": [], "sources": []}));
        let v = task_json(&task, None);
        assert!(v.get("kind").is_none());
        assert_eq!(v["status"]["state"], "TASK_STATE_COMPLETED");
        assert_eq!(v["status"]["message"]["role"], "ROLE_AGENT");
        assert!(v["status"]["message"]["parts"][0]["text"].is_string());
        assert!(v["status"]["message"]["parts"][0].get("kind").is_none());
        assert_eq!(v["artifacts"][0]["parts"][0]["data"]["topic"], "fsync");
        assert_eq!(
            v["artifacts"][0]["parts"][0]["mediaType"],
            "application/json"
        );
        assert_eq!(v["history"][0]["role"], "ROLE_USER");
        assert_eq!(stream_response(&task)["task"]["id"], "t1");

        task.state = TaskState::Failed;
        task.result = None;
        task.error = Some("no document matches".into());
        let v = task_json(&task, None);
        assert_eq!(v["status"]["state"], "TASK_STATE_FAILED");
        assert_eq!(
            v["status"]["message"]["parts"][0]["text"],
            "no document matches"
        );
        assert!(v.get("artifacts").is_none());
    }

    #[test]
    fn push_config_round_trips() {
        let target = parse_push_config(Some(
            &json!({"url": "https://h/x", "token": "tk", "id": "cfg1"}),
        ))
        .unwrap();
        assert_eq!(
            push_config_json("t1", &target),
            json!({"taskId": "t1", "id": "cfg1", "url": "https://h/x", "token": "tk"})
        );
        assert!(parse_push_config(Some(&json!({"token": "x"}))).is_err());
    }
}

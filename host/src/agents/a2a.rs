//! A2A (JSON-RPC 2.0) as a client: sending a task with a push-notification config, and reading
//! the tasks agents send back, in both method generations.
//!
//! - v0.3 (no `A2A-Version` header): `message/send`, then `tasks/pushNotificationConfig/set`;
//!   parts carry `kind`, states are lowercase (`completed`).
//! - v1.0 (`A2A-Version: 1.0`): `SendMessage`, then `CreateTaskPushNotificationConfig`; parts
//!   are told apart by their member (`data`, `text`), states are `TASK_STATE_COMPLETED`, and
//!   answers and pushes wrap the task as `{"task": {...}}`.
//!
//! The push config carries the host's callback URL and, as its token, the callback id; agents
//! send it back in `X-A2A-Notification-Token`.
//!
//! # What a workflow receives
//!
//! A completed task becomes one JSON value, the agent call's result (see [`outcome`]): the parts
//! of all its artifacts (else of its status message) read by `parts_value`: the first data
//! part as it is; else the text, as a string (a markdown report stays markdown), or parsed when it
//! is a JSON object or array or says it is JSON; else `null`. This is the one place an A2A answer
//! is shaped, so every workflow sees the same value whichever generation or SDK the agent speaks,
//! and judges for itself whether it can use it.

use serde_json::{Value, json};

/// The two method generations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum Version {
    #[serde(rename = "0.3")]
    V03,
    #[serde(rename = "1.0")]
    V10,
}

/// What an A2A task says about the work.
#[derive(Debug, PartialEq)]
pub enum TaskOutcome {
    /// Still running: the answer comes by push.
    Working,
    Completed(Value),
    /// Completed, but the result is not in this message (a status update whose artifacts were
    /// sent separately): read the task with `GetTask` / `tasks/get`.
    CompletedElsewhere,
    /// Failed, rejected or cancelled, with the agent's words.
    Failed(String),
}

/// The JSON-RPC request that sends `input` to an agent. `id` doubles as the message id, so a
/// retried request is the same message and the agent does the work once.
pub fn send_request(
    version: Version,
    id: &str,
    input: &Value,
    push_url: &str,
    token: &str,
) -> Value {
    let push = json!({"url": push_url, "token": token, "id": id});
    match version {
        Version::V03 => json!({
            "jsonrpc": "2.0", "id": id, "method": "message/send",
            "params": {
                "message": {"kind": "message", "role": "user", "messageId": id, "parts": [{"kind": "data", "data": input}]},
                "configuration": {"blocking": false, "pushNotificationConfig": push},
            },
        }),
        Version::V10 => json!({
            "jsonrpc": "2.0", "id": id, "method": "SendMessage",
            "params": {
                "message": {"role": "ROLE_USER", "messageId": id, "parts": [{"data": input}]},
                "configuration": {"returnImmediately": true, "taskPushNotificationConfig": push},
            },
        }),
    }
}

/// The JSON-RPC request that registers the push config for a task (for agents that do not take
/// it inside the send).
pub fn push_config_request(
    version: Version,
    id: &str,
    task_id: &str,
    push_url: &str,
    token: &str,
) -> Value {
    let push = json!({"url": push_url, "token": token, "id": id});
    match version {
        Version::V03 => json!({
            "jsonrpc": "2.0", "id": format!("{id}-push"), "method": "tasks/pushNotificationConfig/set",
            "params": {"taskId": task_id, "pushNotificationConfig": push},
        }),
        Version::V10 => json!({
            "jsonrpc": "2.0", "id": format!("{id}-push"), "method": "CreateTaskPushNotificationConfig",
            "params": {"taskId": task_id, "url": push_url, "token": token, "id": id},
        }),
    }
}

/// The task inside a JSON-RPC result or a push body: `{"task": T}`, a bare task, or a message.
pub fn find_task(body: &Value) -> Option<&Value> {
    if let Some(task) = body.get("task") {
        return Some(task);
    }
    if body.get("status").is_some() || body.get("kind").and_then(Value::as_str) == Some("task") {
        return Some(body);
    }
    None
}

/// A push that carries one event of a task rather than the whole task: v1.0
/// `{"statusUpdate": {...}}` / `{"artifactUpdate": {...}}`, or v0.3 `{"kind": "status-update"}` /
/// `{"kind": "artifact-update"}`. Returns the task id and, for a status update, the status as a
/// task-shaped value that [`outcome`] reads; `None` for an artifact update (progress only).
pub fn find_update(body: &Value) -> Option<(Option<&str>, Option<Value>)> {
    let kind = body.get("kind").and_then(Value::as_str);
    let (update, is_status) = if let Some(u) = body.get("statusUpdate") {
        (u, true)
    } else if let Some(u) = body.get("artifactUpdate") {
        (u, false)
    } else if kind == Some("status-update") {
        (body, true)
    } else if kind == Some("artifact-update") {
        (body, false)
    } else {
        return None;
    };
    let task_id = update.get("taskId").and_then(Value::as_str);
    let status =
        is_status.then(|| json!({"status": update.get("status").cloned().unwrap_or(Value::Null)}));
    Some((task_id, status))
}

/// The JSON-RPC request that reads a task.
pub fn get_task_request(version: Version, id: &str, task_id: &str) -> Value {
    let method = match version {
        Version::V03 => "tasks/get",
        Version::V10 => "GetTask",
    };
    json!({"jsonrpc": "2.0", "id": format!("{id}-get"), "method": method, "params": {"id": task_id}})
}

/// A task's id.
pub fn task_id(task: &Value) -> Option<&str> {
    task.get("id").and_then(Value::as_str)
}

fn normalise_state(raw: &str) -> String {
    raw.trim_start_matches("TASK_STATE_")
        .to_ascii_lowercase()
        .replace('_', "-")
}

/// Reads what a task (or a message answer) says.
pub fn outcome(task: &Value) -> TaskOutcome {
    // A bare message answer (no task) is a completed reply.
    if task.get("status").is_none() && task.get("parts").is_some() {
        return TaskOutcome::Completed(parts_value(&message_parts(Some(task))));
    }
    let state = task
        .pointer("/status/state")
        .and_then(Value::as_str)
        .map(normalise_state)
        .unwrap_or_default();
    match state.as_str() {
        "completed" => {
            let from_artifacts = artifact_parts(task);
            if !from_artifacts.is_empty() {
                return TaskOutcome::Completed(parts_value(&from_artifacts));
            }
            if task.get("id").is_none() {
                // A status update alone says "done" but not what came out of it.
                return TaskOutcome::CompletedElsewhere;
            }
            TaskOutcome::Completed(parts_value(&message_parts(task.pointer("/status/message"))))
        }
        "failed" | "rejected" | "canceled" | "cancelled" => {
            let words = task
                .pointer("/status/message")
                .map(|m| match parts_value(&message_parts(Some(m))) {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            TaskOutcome::Failed(
                format!("the agent's task ended {state}: {words}")
                    .trim_end_matches(": ")
                    .to_string(),
            )
        }
        _ => TaskOutcome::Working,
    }
}

/// The parts of every artifact of a task, in order. Agents built on the A2A SDKs often split an
/// answer over several artifacts (a report and its sources), or stream one artifact in chunks;
/// reading only the first would drop the rest.
fn artifact_parts(task: &Value) -> Vec<&Value> {
    task.get("artifacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|artifact| artifact.get("parts").and_then(Value::as_array))
        .flatten()
        .collect()
}

/// The parts of a message (a bare message answer, or a task's status message).
fn message_parts(message: Option<&Value>) -> Vec<&Value> {
    message
        .and_then(|m| m.get("parts"))
        .and_then(Value::as_array)
        .map(|parts| parts.iter().collect())
        .unwrap_or_default()
}

/// Whether a part declares itself JSON (`mediaType` in v1.0, `metadata.mimeType` or
/// `mimeType` as some v0.3 agents send it).
fn declares_json(part: &Value) -> bool {
    [
        "/mediaType",
        "/mimeType",
        "/metadata/mimeType",
        "/metadata/mediaType",
    ]
    .iter()
    .filter_map(|p| part.pointer(p).and_then(Value::as_str))
    .any(|m| m.eq_ignore_ascii_case("application/json") || m.ends_with("+json"))
}

/// The value a workflow receives for an agent's answer, from its parts:
///
/// 1. the first data part, as it is: the structured result (and the richer JSON our own agents
///    give beside a text rendering of it);
/// 2. else the text parts joined with newlines: parsed as JSON when the text is a JSON object or
///    array, or a part says it is JSON (`application/json`); otherwise the text itself, as a
///    string (a text or markdown artifact, such as a report). Text is not parsed as a bare JSON
///    scalar: a report reading `42` or `true` stays the text it is;
/// 3. `null` when there is neither (no parts, or only file parts), so the workflow can say the
///    answer was empty rather than be handed an empty string.
fn parts_value(parts: &[&Value]) -> Value {
    if let Some(data) = parts.iter().find_map(|p| p.get("data")) {
        return data.clone();
    }
    let texts: Vec<&Value> = parts
        .iter()
        .copied()
        .filter(|p| p.get("text").is_some_and(Value::is_string))
        .collect();
    if texts.is_empty() {
        return Value::Null;
    }
    let text = texts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    let trimmed = text.trim_start();
    let looks_structured = trimmed.starts_with('{') || trimmed.starts_with('[');
    if (looks_structured || texts.iter().any(|p| declares_json(p)))
        && let Ok(value) = serde_json::from_str::<Value>(&text)
    {
        return value;
    }
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v03_request_carries_push_config_and_message_id() {
        let r = send_request(
            Version::V03,
            "cb_1",
            &json!({"topic": "x"}),
            "http://h/cb",
            "cb_1",
        );
        assert_eq!(r["method"], "message/send");
        assert_eq!(r["params"]["message"]["messageId"], "cb_1");
        assert_eq!(r["params"]["message"]["parts"][0]["kind"], "data");
        assert_eq!(
            r["params"]["configuration"]["pushNotificationConfig"]["token"],
            "cb_1"
        );
    }

    #[test]
    fn v10_request_uses_new_names() {
        let r = send_request(Version::V10, "cb_1", &json!(1), "http://h/cb", "cb_1");
        assert_eq!(r["method"], "SendMessage");
        assert_eq!(r["params"]["message"]["role"], "ROLE_USER");
        assert_eq!(
            r["params"]["configuration"]["taskPushNotificationConfig"]["url"],
            "http://h/cb"
        );
        let p = push_config_request(Version::V10, "cb_1", "t1", "http://h/cb", "cb_1");
        assert_eq!(p["method"], "CreateTaskPushNotificationConfig");
        assert_eq!(p["params"]["taskId"], "t1");
    }

    #[test]
    fn completed_tasks_of_both_generations_yield_their_data() {
        let v03 = json!({"kind": "task", "id": "t", "status": {"state": "completed"},
            "artifacts": [{"parts": [{"kind": "data", "data": {"a": 1}}]}]});
        assert_eq!(
            outcome(find_task(&v03).unwrap()),
            TaskOutcome::Completed(json!({"a": 1}))
        );
        let v10 = json!({"task": {"id": "t", "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [{"parts": [{"text": "{\"b\": 2}"}]}]}});
        assert_eq!(
            outcome(find_task(&v10).unwrap()),
            TaskOutcome::Completed(json!({"b": 2}))
        );
    }

    #[test]
    fn streaming_updates_are_read_as_progress_or_a_completion_to_fetch() {
        let working =
            json!({"statusUpdate": {"taskId": "t1", "status": {"state": "TASK_STATE_WORKING"}}});
        let (task_id, status) = find_update(&working).unwrap();
        assert_eq!(task_id, Some("t1"));
        assert_eq!(outcome(&status.unwrap()), TaskOutcome::Working);
        let done =
            json!({"statusUpdate": {"taskId": "t1", "status": {"state": "TASK_STATE_COMPLETED"}}});
        assert_eq!(
            outcome(&find_update(&done).unwrap().1.unwrap()),
            TaskOutcome::CompletedElsewhere
        );
        let artifact =
            json!({"artifactUpdate": {"taskId": "t1", "artifact": {"parts": [{"data": 1}]}}});
        assert_eq!(find_update(&artifact), Some((Some("t1"), None)));
        let v03 = json!({"kind": "status-update", "taskId": "t2", "status": {"state": "failed"}, "final": true});
        assert!(matches!(
            outcome(&find_update(&v03).unwrap().1.unwrap()),
            TaskOutcome::Failed(_)
        ));
        assert!(find_update(&json!({"task": {}})).is_none());
        assert_eq!(
            get_task_request(Version::V10, "cb", "t1")["method"],
            "GetTask"
        );
        assert_eq!(
            get_task_request(Version::V03, "cb", "t1")["params"]["id"],
            "t1"
        );
    }

    #[test]
    fn a_text_artifact_is_received_as_its_text() {
        // As the Python SDK sends a markdown report: one artifact, one text part.
        let report = "# Durable execution\n\nA report.";
        let task = json!({"id": "t", "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [{"artifactId": "a", "name": "report",
                "parts": [{"text": report, "mediaType": "text/markdown"}]}]});
        assert_eq!(outcome(&task), TaskOutcome::Completed(json!(report)));
        // Text that happens to be a JSON scalar stays text.
        for text in ["42", "true", "\"quoted\"", "null"] {
            let task = json!({"id": "t", "status": {"state": "completed"},
                "artifacts": [{"parts": [{"kind": "text", "text": text}]}]});
            assert_eq!(
                outcome(&task),
                TaskOutcome::Completed(json!(text)),
                "{text}"
            );
        }
        // ... unless a part says it is JSON.
        let declared = json!({"id": "t", "status": {"state": "completed"},
            "artifacts": [{"parts": [{"text": "42", "mediaType": "application/json"}]}]});
        assert_eq!(outcome(&declared), TaskOutcome::Completed(json!(42)));
        // Text that is a JSON array is read as one.
        let list = json!({"id": "t", "status": {"state": "completed"},
            "artifacts": [{"parts": [{"text": " [1, 2]"}]}]});
        assert_eq!(outcome(&list), TaskOutcome::Completed(json!([1, 2])));
    }

    #[test]
    fn every_artifact_is_read_and_a_data_part_wins_over_text() {
        // A report split over two artifacts (or streamed in chunks) arrives whole.
        let split = json!({"id": "t", "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [{"parts": [{"text": "# Title"}]}, {"parts": [{"text": "body"}]}]});
        assert_eq!(
            outcome(&split),
            TaskOutcome::Completed(json!("# Title\nbody"))
        );
        // A data part anywhere is the structured result, even after a text artifact.
        let both = json!({"id": "t", "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [{"parts": [{"text": "summary"}]}, {"parts": [{"data": {"n": 1}}]}]});
        assert_eq!(outcome(&both), TaskOutcome::Completed(json!({"n": 1})));
        // No artifacts: the status message carries the answer.
        let in_message = json!({"id": "t", "status": {"state": "completed",
            "message": {"parts": [{"kind": "text", "text": "done it"}]}}});
        assert_eq!(
            outcome(&in_message),
            TaskOutcome::Completed(json!("done it"))
        );
        // Nothing usable (no parts, or only files) is null, not an empty string.
        let files = json!({"id": "t", "status": {"state": "completed"},
            "artifacts": [{"parts": [{"url": "https://x/report.pdf"}]}]});
        assert_eq!(outcome(&files), TaskOutcome::Completed(Value::Null));
        let bare = json!({"id": "t", "status": {"state": "completed"}});
        assert_eq!(outcome(&bare), TaskOutcome::Completed(Value::Null));
    }

    #[test]
    fn failed_and_running_tasks_are_told_apart() {
        let failed = json!({"status": {"state": "TASK_STATE_FAILED", "message": {"parts": [{"text": "no corpus"}]}}});
        assert_eq!(
            outcome(&failed),
            TaskOutcome::Failed("the agent's task ended failed: no corpus".into())
        );
        assert_eq!(
            outcome(&json!({"status": {"state": "working"}})),
            TaskOutcome::Working
        );
        assert_eq!(
            outcome(&json!({"status": {"state": "TASK_STATE_SUBMITTED"}})),
            TaskOutcome::Working
        );
    }
}

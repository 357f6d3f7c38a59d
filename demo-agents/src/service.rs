//! The operations every protocol surface offers, for one role: send work, read a task, cancel
//! it, register a push target, and the simple form's submit.
//!
//! Keeping them protocol-neutral means v0.3, v1.0 and the simple form cannot drift apart in
//! behaviour (idempotency, push timing, cancellation); the protocol modules only translate
//! wire shapes and error codes.

use crate::agent::{Agents, Role};
use crate::runner::Runner;
use crate::tasks::{
    CancelError, Created, Message, Part, PushTarget, StoreError, Task, TaskState, TaskStore,
};
use serde_json::{Value, json};
use std::sync::Arc;

/// Whether `send` answers at once or after the task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    UntilDone,
    ReturnImmediately,
}

#[derive(Debug, Clone)]
pub struct SendRequest {
    pub message: Message,
    pub push: Option<PushTarget>,
    pub wait: Wait,
    /// The `Idempotency-Key` HTTP header, if any.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("task {0} not found")]
    TaskNotFound(String),
    #[error("task {id} is already {state} and cannot be canceled")]
    NotCancelable { id: String, state: &'static str },
    #[error("{0}")]
    InvalidParams(String),
    #[error("{0}")]
    Unsupported(String),
    /// The task could not be kept on disk, so it was not accepted (the sender may retry).
    #[error("{0}")]
    Storage(String),
}

pub struct AgentService {
    role: Role,
    store: Arc<TaskStore>,
    runner: Arc<Runner>,
}

impl AgentService {
    pub fn new(role: Role, store: Arc<TaskStore>, runner: Arc<Runner>) -> Self {
        Self {
            role,
            store,
            runner,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Accepts a message: creates a task (or returns the one already created for the same
    /// `messageId` / `Idempotency-Key`), starts it, and answers per `wait`.
    ///
    /// A message naming an existing unfinished task (`taskId`) returns that task, adding the
    /// push target if one is given; one naming a finished task is refused, as A2A specifies.
    ///
    /// # Errors
    /// `InvalidParams` for unusable input, `TaskNotFound`/`Unsupported` for a bad `taskId`.
    pub async fn send(&self, req: SendRequest) -> Result<Task, ServiceError> {
        if let Some(task_id) = &req.message.task_id {
            let existing = self
                .store
                .get(task_id)
                .ok_or_else(|| ServiceError::TaskNotFound(task_id.clone()))?;
            if existing.state.is_terminal() {
                return Err(ServiceError::Unsupported(format!(
                    "task {task_id} is {} and accepts no further messages",
                    state_name(existing.state)
                )));
            }
            if let Some(target) = req.push {
                self.add_push(task_id, target)?;
            }
            return self.answer(task_id, req.wait).await;
        }

        let input = input_from_parts(&req.message.parts)?;
        Agents::validate(self.role, &input)
            .map_err(|e| ServiceError::InvalidParams(e.to_string()))?;
        let mut keys = vec![format!("msg:{}", req.message.message_id)];
        if let Some(key) = &req.idempotency_key {
            keys.push(format!("idem:{key}"));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let context_id = req
            .message
            .context_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut task = Task::new(id, context_id, self.role, Some(req.message), input);
        if let Some(target) = &req.push {
            task.push.push(target.clone());
        }
        match self.store.create_or_get(&keys, task).map_err(storage)? {
            Created::New(task) => {
                self.runner.spawn(task.id.clone());
                match req.wait {
                    Wait::ReturnImmediately => Ok(task),
                    Wait::UntilDone => self.answer(&task.id, Wait::UntilDone).await,
                }
            }
            Created::Existing(task) => {
                // A retried send: do not work twice. Its push target is registered like a
                // `set` would be, so a target the task already has is not pushed to again.
                if let Some(target) = req.push {
                    self.add_push(&task.id, target)?;
                }
                self.answer(&task.id, req.wait).await
            }
        }
    }

    async fn answer(&self, id: &str, wait: Wait) -> Result<Task, ServiceError> {
        if wait == Wait::UntilDone {
            let mut state = self
                .store
                .subscribe(id)
                .ok_or_else(|| ServiceError::TaskNotFound(id.to_string()))?;
            // The sender is dropped only if the store drops the task, which it never does.
            let _ = state.wait_for(|s| s.is_terminal()).await;
        }
        self.get(id)
    }

    /// # Errors
    /// `TaskNotFound`.
    pub fn get(&self, id: &str) -> Result<Task, ServiceError> {
        self.store
            .get(id)
            .ok_or_else(|| ServiceError::TaskNotFound(id.to_string()))
    }

    /// Cancels an unfinished task and pushes the canceled task to its targets.
    ///
    /// # Errors
    /// `TaskNotFound`, or `NotCancelable` when the task already ended.
    pub fn cancel(&self, id: &str) -> Result<Task, ServiceError> {
        match self.store.cancel(id) {
            Ok(task) => {
                self.runner.notify_all(&task);
                Ok(task)
            }
            Err(CancelError::NotFound) => Err(ServiceError::TaskNotFound(id.to_string())),
            Err(CancelError::NotCancelable(task)) => Err(ServiceError::NotCancelable {
                id: id.to_string(),
                state: state_name(task.state),
            }),
        }
    }

    /// Registers a push target. When the task has already ended and the target is new, the
    /// final state is pushed to it right away, so a client that registers late still hears the
    /// outcome. Re-registering a known target (same URL and token) changes nothing: that
    /// target already received, or is receiving, the final push.
    ///
    /// # Errors
    /// `TaskNotFound`.
    pub fn add_push(&self, task_id: &str, target: PushTarget) -> Result<PushTarget, ServiceError> {
        let (effective, task, added) = self
            .store
            .add_push(task_id, target)
            .ok_or_else(|| ServiceError::TaskNotFound(task_id.to_string()))?;
        if added && task.state.is_terminal() {
            self.runner.notify(&task, &effective);
        }
        Ok(effective)
    }

    /// The simple form: the caller names the task. A repeat of a known `task_id` (or
    /// `Idempotency-Key`) does no new work; if that task has already ended its final state is
    /// delivered again to the given callback, since the caller evidently did not record it.
    ///
    /// Returns the task and whether it already existed.
    ///
    /// # Errors
    /// `InvalidParams` for input the role cannot use.
    pub fn submit_simple(
        &self,
        task_id: &str,
        input: Value,
        target: PushTarget,
        idempotency_key: Option<&str>,
    ) -> Result<(Task, bool), ServiceError> {
        Agents::validate(self.role, &input)
            .map_err(|e| ServiceError::InvalidParams(e.to_string()))?;
        let mut keys = vec![format!("simple:{task_id}")];
        if let Some(key) = idempotency_key {
            keys.push(format!("idem:{key}"));
        }
        let mut task = Task::new(
            task_id.to_string(),
            task_id.to_string(),
            self.role,
            None,
            input,
        );
        task.push.push(target.clone());
        match self.store.create_or_get(&keys, task).map_err(storage)? {
            Created::New(task) => {
                self.runner.spawn(task.id.clone());
                Ok((task, false))
            }
            Created::Existing(task) => {
                let (effective, task, _) = self
                    .store
                    .add_push(&task.id, target)
                    .ok_or_else(|| ServiceError::TaskNotFound(task_id.to_string()))?;
                if task.state.is_terminal() {
                    self.runner.notify(&task, &effective);
                }
                Ok((task, true))
            }
        }
    }
}

/// The task input carried by a message: the first data part; else the text parts joined,
/// parsed as JSON when they hold a JSON object, otherwise taken as the topic.
///
/// # Errors
/// `InvalidParams` when the message has no usable part.
pub fn input_from_parts(parts: &[Part]) -> Result<Value, ServiceError> {
    if let Some(data) = parts.iter().find_map(|p| match p {
        Part::Data(v) => Some(v),
        Part::Text(_) => None,
    }) {
        return Ok(data.clone());
    }
    let text: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            Part::Data(_) => None,
        })
        .collect();
    let text = text.join("\n");
    let text = text.trim();
    if text.is_empty() {
        return Err(ServiceError::InvalidParams(
            "the message has no data part and no text".into(),
        ));
    }
    if text.starts_with('{')
        && let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(text)
    {
        return Ok(v);
    }
    Ok(json!({ "topic": text }))
}

fn storage(e: StoreError) -> ServiceError {
    ServiceError::Storage(e.to_string())
}

/// The v0.3 spelling of a state, also used in messages and the simple form.
pub fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Submitted => "submitted",
        TaskState::Working => "working",
        TaskState::Completed => "completed",
        TaskState::Failed => "failed",
        TaskState::Canceled => "canceled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_comes_from_data_then_json_text_then_plain_text() {
        let data = json!({"topic": "d"});
        assert_eq!(
            input_from_parts(&[Part::Text("ignored".into()), Part::Data(data.clone())]).unwrap(),
            data
        );
        assert_eq!(
            input_from_parts(&[Part::Text(" {\"topic\": \"j\"} ".into())]).unwrap(),
            json!({"topic": "j"})
        );
        assert_eq!(
            input_from_parts(&[Part::Text("durable".into()), Part::Text("execution".into())])
                .unwrap(),
            json!({"topic": "durable\nexecution"})
        );
        assert_eq!(
            input_from_parts(&[Part::Text("{not json".into())]).unwrap(),
            json!({"topic": "{not json"})
        );
        assert!(input_from_parts(&[Part::Text("  ".into())]).is_err());
        assert!(input_from_parts(&[]).is_err());
    }
}

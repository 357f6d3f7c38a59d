//! The in-memory record of every task a role has accepted, independent of protocol generation.
//!
//! Both A2A generations and the simple dispatch form create, read and finish the same records;
//! only their rendering differs (see `a2a::v03`, `a2a::v10`, `simple`). Idempotency lives here
//! too: a task is created under one or more keys (the A2A `messageId`, an `Idempotency-Key`
//! header, the simple form's `task_id`) and any later request under a known key gets the
//! existing task, atomically, so concurrent duplicates cannot both start work.
//!
//! Each record carries a `watch` channel of its state so that blocking senders can wait for the
//! end and the runner can notice a cancel without polling.

use crate::agent::Role;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Submitted,
    Working,
    Completed,
    Failed,
    Canceled,
}

impl TaskState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Canceled
        )
    }
}

/// One piece of message content. Files are not accepted by these agents.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Data(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    User,
    Agent,
}

/// A message as the protocol layers parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub message_id: String,
    pub sender: Sender,
    pub parts: Vec<Part>,
    pub context_id: Option<String>,
    pub task_id: Option<String>,
}

/// Which wire shape a push is delivered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushFormat {
    /// A2A v0.3: the bare Task object.
    V03,
    /// A2A v1.0: a StreamResponse `{"task": Task}`.
    V10,
    /// Aegis simple form: `{"token", "status", "result"}`.
    Simple,
}

/// Credentials sent in the `Authorization` header of each push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushAuth {
    pub scheme: String,
    pub credentials: String,
}

/// Where and how to report a task's final state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub id: String,
    pub url: String,
    pub token: Option<String>,
    pub auth: Option<PushAuth>,
    pub format: PushFormat,
}

impl PushTarget {
    fn same_destination(&self, other: &PushTarget) -> bool {
        self.url == other.url && self.token == other.token && self.format == other.format
    }
}

/// A snapshot of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub context_id: String,
    pub role: Role,
    pub state: TaskState,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    /// The request message (absent for simple-form tasks).
    pub request: Option<Message>,
    pub input: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub push: Vec<PushTarget>,
}

impl Task {
    pub fn new(
        id: String,
        context_id: String,
        role: Role,
        request: Option<Message>,
        input: Value,
    ) -> Self {
        let now = SystemTime::now();
        Self {
            id,
            context_id,
            role,
            state: TaskState::Submitted,
            created_at: now,
            updated_at: now,
            request,
            input,
            result: None,
            error: None,
            push: Vec::new(),
        }
    }
}

/// Result of [`TaskStore::create_or_get`].
#[derive(Debug)]
pub enum Created {
    New(Task),
    /// A task was already known under one of the keys.
    Existing(Task),
}

#[derive(Debug, PartialEq)]
pub enum CancelError {
    NotFound,
    /// The task had already ended; its snapshot is returned.
    NotCancelable(Box<Task>),
}

struct Entry {
    task: Task,
    state: watch::Sender<TaskState>,
}

#[derive(Default)]
struct Inner {
    tasks: HashMap<String, Entry>,
    /// Idempotency key -> task id.
    keys: HashMap<String, String>,
}

#[derive(Default)]
pub struct TaskStore {
    inner: Mutex<Inner>,
}

impl TaskStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns the task known under any of `keys`, or stores `task` under all of them (and
    /// under its own id). Check and insert happen under one lock.
    pub fn create_or_get(&self, keys: &[String], task: Task) -> Created {
        let mut inner = self.lock();
        let known = keys
            .iter()
            .find_map(|k| inner.keys.get(k).cloned())
            .or_else(|| inner.tasks.contains_key(&task.id).then(|| task.id.clone()));
        if let Some(id) = known
            && let Some(entry) = inner.tasks.get(&id)
        {
            let existing = entry.task.clone();
            for k in keys {
                inner.keys.entry(k.clone()).or_insert_with(|| id.clone());
            }
            return Created::Existing(existing);
        }
        for k in keys {
            inner.keys.insert(k.clone(), task.id.clone());
        }
        let (tx, _) = watch::channel(task.state);
        inner.tasks.insert(
            task.id.clone(),
            Entry {
                task: task.clone(),
                state: tx,
            },
        );
        Created::New(task)
    }

    pub fn get(&self, id: &str) -> Option<Task> {
        self.lock().tasks.get(id).map(|e| e.task.clone())
    }

    pub fn subscribe(&self, id: &str) -> Option<watch::Receiver<TaskState>> {
        self.lock().tasks.get(id).map(|e| e.state.subscribe())
    }

    fn transition(entry: &mut Entry, state: TaskState) {
        entry.task.state = state;
        entry.task.updated_at = SystemTime::now();
        entry.state.send_replace(state);
    }

    /// Submitted -> Working. Returns false when the task is gone or no longer submitted
    /// (e.g. canceled before it started).
    pub fn start(&self, id: &str) -> bool {
        let mut inner = self.lock();
        match inner.tasks.get_mut(id) {
            Some(e) if e.task.state == TaskState::Submitted => {
                Self::transition(e, TaskState::Working);
                true
            }
            _ => false,
        }
    }

    /// Records the outcome unless the task already ended (a cancel wins over a late result).
    /// Returns the final snapshot when this call ended the task.
    pub fn finish(&self, id: &str, outcome: Result<Value, String>) -> Option<Task> {
        let mut inner = self.lock();
        let entry = inner.tasks.get_mut(id)?;
        if entry.task.state.is_terminal() {
            return None;
        }
        match outcome {
            Ok(result) => {
                entry.task.result = Some(result);
                Self::transition(entry, TaskState::Completed);
            }
            Err(error) => {
                entry.task.error = Some(error);
                Self::transition(entry, TaskState::Failed);
            }
        }
        Some(entry.task.clone())
    }

    /// Cancels a task that has not ended.
    ///
    /// # Errors
    /// `NotFound`, or `NotCancelable` with the task when it already ended.
    pub fn cancel(&self, id: &str) -> Result<Task, CancelError> {
        let mut inner = self.lock();
        let entry = inner.tasks.get_mut(id).ok_or(CancelError::NotFound)?;
        if entry.task.state.is_terminal() {
            return Err(CancelError::NotCancelable(Box::new(entry.task.clone())));
        }
        entry.task.error = Some("canceled by request".into());
        Self::transition(entry, TaskState::Canceled);
        Ok(entry.task.clone())
    }

    /// Adds a push target unless one with the same destination exists. Returns the target in
    /// effect (the existing one on a duplicate), the task snapshot, and whether the target is
    /// new.
    pub fn add_push(&self, id: &str, target: PushTarget) -> Option<(PushTarget, Task, bool)> {
        let mut inner = self.lock();
        let entry = inner.tasks.get_mut(id)?;
        let (effective, added) = match entry.task.push.iter().find(|p| p.same_destination(&target))
        {
            Some(existing) => (existing.clone(), false),
            None => {
                entry.task.push.push(target.clone());
                (target, true)
            }
        };
        Some((effective, entry.task.clone(), added))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(id: &str) -> Task {
        Task::new(
            id.into(),
            "ctx".into(),
            Role::Researcher,
            None,
            json!({"topic": "t"}),
        )
    }

    fn target(url: &str) -> PushTarget {
        PushTarget {
            id: "p".into(),
            url: url.into(),
            token: Some("tok".into()),
            auth: None,
            format: PushFormat::V03,
        }
    }

    #[test]
    fn keys_deduplicate_creation() {
        let store = TaskStore::new();
        assert!(matches!(
            store.create_or_get(&["msg:1".into()], task("a")),
            Created::New(_)
        ));
        match store.create_or_get(&["idem:x".into(), "msg:1".into()], task("b")) {
            Created::Existing(t) => assert_eq!(t.id, "a"),
            Created::New(_) => panic!("duplicate created"),
        }
        // The new key now points at the same task too.
        match store.create_or_get(&["idem:x".into()], task("c")) {
            Created::Existing(t) => assert_eq!(t.id, "a"),
            Created::New(_) => panic!("duplicate created"),
        }
        // Reusing a task id is a duplicate as well.
        assert!(matches!(
            store.create_or_get(&[], task("a")),
            Created::Existing(_)
        ));
        assert!(store.get("b").is_none());
    }

    #[test]
    fn lifecycle_and_cancel_rules() {
        let store = TaskStore::new();
        store.create_or_get(&[], task("a"));
        let mut rx = store.subscribe("a").unwrap();
        assert!(store.start("a"));
        assert!(!store.start("a"));
        assert_eq!(*rx.borrow_and_update(), TaskState::Working);
        let done = store.finish("a", Ok(json!({"ok": true}))).unwrap();
        assert_eq!(done.state, TaskState::Completed);
        assert!(store.finish("a", Err("late".into())).is_none());
        assert!(matches!(
            store.cancel("a"),
            Err(CancelError::NotCancelable(_))
        ));
        assert_eq!(store.cancel("zz"), Err(CancelError::NotFound));

        store.create_or_get(&[], task("b"));
        let canceled = store.cancel("b").unwrap();
        assert_eq!(canceled.state, TaskState::Canceled);
        assert!(!store.start("b"));
        assert!(store.finish("b", Ok(json!(1))).is_none(), "cancel wins");
        assert_eq!(store.get("b").unwrap().state, TaskState::Canceled);
    }

    #[test]
    fn push_targets_are_deduplicated_by_destination() {
        let store = TaskStore::new();
        store.create_or_get(&[], task("a"));
        let (first, _, added) = store.add_push("a", target("http://x/1")).unwrap();
        assert!(added);
        let mut again = target("http://x/1");
        again.id = "other".into();
        let (effective, snapshot, added) = store.add_push("a", again).unwrap();
        assert_eq!(effective, first);
        assert!(!added);
        assert_eq!(snapshot.push.len(), 1);
        let (_, snapshot, added) = store.add_push("a", target("http://x/2")).unwrap();
        assert!(added);
        assert_eq!(snapshot.push.len(), 2);
        assert!(store.add_push("missing", target("http://x")).is_none());
    }
}

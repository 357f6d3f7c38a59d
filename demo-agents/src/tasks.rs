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
//!
//! # On disk
//!
//! A store opened on a folder ([`TaskStore::open`]) keeps every task there, one JSON file per
//! task (`task-<id>.json`: the task, the keys it is known under, and the push targets its final
//! state has not yet reached), rewritten on every change before the change is seen by anyone
//! (written to a temporary file, fsynced, renamed over the old one, the folder fsynced). A host
//! waits for an agent's task for hours; if the agent restarts meanwhile, an in-memory task would
//! be gone, the push would never come and `GetTask` would answer "not found". Reopened, the store
//! hands back the tasks that had not ended ([`TaskStore::unfinished`], to run again: the roles'
//! work is a pure function of the input) and the final pushes not yet delivered
//! ([`TaskStore::undelivered`], to send again), so the host hears the outcome under the same
//! task id. A `LOCK` file held for the process's life keeps two agents off one folder.

use crate::agent::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Part {
    Text(String),
    Data(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sender {
    User,
    Agent,
}

/// A message as the protocol layers parsed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub message_id: String,
    pub sender: Sender,
    pub parts: Vec<Part>,
    pub context_id: Option<String>,
    pub task_id: Option<String>,
}

/// Which wire shape a push is delivered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushFormat {
    /// A2A v0.3: the bare Task object.
    V03,
    /// A2A v1.0: a StreamResponse `{"task": Task}`.
    V10,
    /// Aegis simple form: `{"token", "status", "result"}`.
    Simple,
}

/// Credentials sent in the `Authorization` header of each push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAuth {
    pub scheme: String,
    pub credentials: String,
}

/// Where and how to report a task's final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The keys the task is known under (kept with it on disk, to rebuild `Inner::keys`).
    keys: Vec<String>,
    /// Push targets the task's final state has not reached yet.
    undelivered: Vec<PushTarget>,
}

#[derive(Default)]
struct Inner {
    tasks: HashMap<String, Entry>,
    /// Idempotency key -> task id.
    keys: HashMap<String, String>,
}

/// A task as it is kept on disk.
#[derive(Serialize, Deserialize)]
struct Record {
    task: Task,
    keys: Vec<String>,
    undelivered: Vec<PushTarget>,
}

/// Why a task could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot keep task {id} on disk: {source}")]
    Write {
        id: String,
        #[source]
        source: std::io::Error,
    },
}

/// The folder a store keeps its tasks in, and the lock that makes it this process's.
struct Disk {
    dir: PathBuf,
    _lock: Arc<File>,
}

#[derive(Default)]
pub struct TaskStore {
    inner: Mutex<Inner>,
    disk: Option<Disk>,
}

/// The longest task file name: ids are encoded into it, and file systems take 255 bytes.
const MAX_FILE_NAME: usize = 240;

/// The file of task `id`: `task-<id>.json`, with every byte other than ASCII letters, digits,
/// `-` and `_` written `%XX`, so a caller-chosen id (the simple form's `task_id`) cannot name a
/// path outside the folder.
fn file_name(id: &str) -> Option<String> {
    let mut name = String::from("task-");
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name.push_str(".json");
    (name.len() <= MAX_FILE_NAME).then_some(name)
}

/// Writes `bytes` as `dir/name` so that a crash leaves the old file or the new one, never a
/// part: a temporary file, fsynced, renamed over the old one, and the folder fsynced.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Takes `dir/LOCK` for this process, or says who has it.
///
/// # Errors
/// When the folder cannot be made or the lock is held by another process.
pub fn lock_dir(dir: &Path) -> Result<Arc<File>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.try_lock().map_err(|e| {
        format!(
            "{} is in use by another aegis-agents ({e}); give each process its own --state-dir",
            dir.display()
        )
    })?;
    Ok(Arc::new(file))
}

impl TaskStore {
    /// A store that keeps its tasks in memory only: they are gone when the process ends.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that keeps its tasks in `dir` (made if missing), with the tasks already there.
    /// `lock` is the lock of the state folder `dir` lies in ([`lock_dir`]).
    ///
    /// A task that had not ended is handed back as submitted, to be run again
    /// ([`TaskStore::unfinished`]).
    ///
    /// # Errors
    /// A message naming the file that cannot be read.
    pub fn open(dir: &Path, lock: Arc<File>) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut inner = Inner::default();
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                .path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".json.tmp") {
                // A write the last process did not finish: the task file before it stands.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !(name.starts_with("task-") && name.ends_with(".json")) {
                continue;
            }
            let bytes =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut record: Record = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not a task record: {e}", path.display()))?;
            if !record.task.state.is_terminal() {
                record.task.state = TaskState::Submitted;
            }
            let id = record.task.id.clone();
            for key in &record.keys {
                inner.keys.insert(key.clone(), id.clone());
            }
            let (tx, _) = watch::channel(record.task.state);
            inner.tasks.insert(
                id,
                Entry {
                    task: record.task,
                    state: tx,
                    keys: record.keys,
                    undelivered: record.undelivered,
                },
            );
        }
        Ok(Self {
            inner: Mutex::new(inner),
            disk: Some(Disk {
                dir: dir.to_path_buf(),
                _lock: lock,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `entry` to disk (a store in memory writes nothing). Called under the lock, so
    /// the files change in the order the tasks do.
    fn persist(&self, entry: &Entry) -> Result<(), StoreError> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        let id = &entry.task.id;
        let failed = |source| StoreError::Write {
            id: id.clone(),
            source,
        };
        let name = file_name(id).ok_or_else(|| {
            failed(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the task id is too long for a file name",
            ))
        })?;
        let record = Record {
            task: entry.task.clone(),
            keys: entry.keys.clone(),
            undelivered: entry.undelivered.clone(),
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| failed(e.into()))?;
        write_atomically(&disk.dir, &name, &bytes).map_err(failed)
    }

    /// Persists a change already made in memory. The change stands either way: a task that ran
    /// must not be reported as not run; a write that fails is logged, and costs at most running
    /// the task again (or pushing again) after a restart.
    fn persist_or_log(&self, entry: &Entry) {
        if let Err(e) = self.persist(entry) {
            tracing::warn!(error = %e, "task state not kept on disk");
        }
    }

    /// Returns the task known under any of `keys`, or stores `task` under all of them (and
    /// under its own id). Check and insert happen under one lock; a new task is on disk before
    /// it is returned, so it is never accepted and then lost.
    ///
    /// # Errors
    /// When a new task cannot be written (nothing is kept then).
    pub fn create_or_get(&self, keys: &[String], task: Task) -> Result<Created, StoreError> {
        let mut inner = self.lock();
        let known = keys
            .iter()
            .find_map(|k| inner.keys.get(k).cloned())
            .or_else(|| inner.tasks.contains_key(&task.id).then(|| task.id.clone()));
        if let Some(id) = known
            && inner.tasks.contains_key(&id)
        {
            let added: Vec<String> = keys
                .iter()
                .filter(|k| !inner.keys.contains_key(*k))
                .cloned()
                .collect();
            for k in &added {
                inner.keys.insert(k.clone(), id.clone());
            }
            let entry = inner.tasks.get_mut(&id).expect("checked above");
            if !added.is_empty() {
                entry.keys.extend(added);
                self.persist_or_log(entry);
            }
            return Ok(Created::Existing(entry.task.clone()));
        }
        let (tx, _) = watch::channel(task.state);
        let entry = Entry {
            task: task.clone(),
            state: tx,
            keys: keys.to_vec(),
            undelivered: Vec::new(),
        };
        self.persist(&entry)?;
        for k in keys {
            inner.keys.insert(k.clone(), task.id.clone());
        }
        inner.tasks.insert(task.id.clone(), entry);
        Ok(Created::New(task))
    }

    /// The ids of the tasks that have not ended (after [`TaskStore::open`]: those the last
    /// process did not finish), to be run.
    pub fn unfinished(&self) -> Vec<String> {
        let mut ids: Vec<(SystemTime, String)> = self
            .lock()
            .tasks
            .values()
            .filter(|e| !e.task.state.is_terminal())
            .map(|e| (e.task.created_at, e.task.id.clone()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// The ended tasks with the push targets their final state has not reached yet.
    pub fn undelivered(&self) -> Vec<(Task, Vec<PushTarget>)> {
        self.lock()
            .tasks
            .values()
            .filter(|e| e.task.state.is_terminal() && !e.undelivered.is_empty())
            .map(|e| (e.task.clone(), e.undelivered.clone()))
            .collect()
    }

    /// Records that task `id`'s final state reached `target` (or was refused there for good):
    /// it is not pushed there again after a restart.
    pub fn delivered(&self, id: &str, target: &PushTarget) {
        let mut inner = self.lock();
        if let Some(entry) = inner.tasks.get_mut(id) {
            let before = entry.undelivered.len();
            entry.undelivered.retain(|t| !t.same_destination(target));
            if entry.undelivered.len() != before {
                self.persist_or_log(entry);
            }
        }
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
                self.persist_or_log(e);
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
        entry.undelivered.clone_from(&entry.task.push);
        self.persist_or_log(entry);
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
        entry.undelivered.clone_from(&entry.task.push);
        self.persist_or_log(entry);
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
                if entry.task.state.is_terminal() {
                    entry.undelivered.push(target.clone());
                }
                self.persist_or_log(entry);
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
            store.create_or_get(&["msg:1".into()], task("a")).unwrap(),
            Created::New(_)
        ));
        match store
            .create_or_get(&["idem:x".into(), "msg:1".into()], task("b"))
            .unwrap()
        {
            Created::Existing(t) => assert_eq!(t.id, "a"),
            Created::New(_) => panic!("duplicate created"),
        }
        // The new key now points at the same task too.
        match store.create_or_get(&["idem:x".into()], task("c")).unwrap() {
            Created::Existing(t) => assert_eq!(t.id, "a"),
            Created::New(_) => panic!("duplicate created"),
        }
        // Reusing a task id is a duplicate as well.
        assert!(matches!(
            store.create_or_get(&[], task("a")).unwrap(),
            Created::Existing(_)
        ));
        assert!(store.get("b").is_none());
    }

    #[test]
    fn lifecycle_and_cancel_rules() {
        let store = TaskStore::new();
        store.create_or_get(&[], task("a")).unwrap();
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

        store.create_or_get(&[], task("b")).unwrap();
        let canceled = store.cancel("b").unwrap();
        assert_eq!(canceled.state, TaskState::Canceled);
        assert!(!store.start("b"));
        assert!(store.finish("b", Ok(json!(1))).is_none(), "cancel wins");
        assert_eq!(store.get("b").unwrap().state, TaskState::Canceled);
    }

    #[test]
    fn push_targets_are_deduplicated_by_destination() {
        let store = TaskStore::new();
        store.create_or_get(&[], task("a")).unwrap();
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

    fn on_disk(dir: &Path) -> TaskStore {
        let lock = lock_dir(dir).unwrap();
        TaskStore::open(&dir.join("researcher"), lock).unwrap()
    }

    #[test]
    fn a_reopened_store_has_its_tasks_and_runs_the_unfinished_again() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = on_disk(dir.path());
            store.create_or_get(&["msg:1".into()], task("a")).unwrap();
            assert!(store.start("a"));
            store.create_or_get(&["msg:2".into()], task("b")).unwrap();
            assert!(store.start("b"));
            store.finish("b", Ok(json!({"done": 1}))).unwrap();
        }
        let store = on_disk(dir.path());
        // The working task is handed back as submitted, to run again; the ended one as it was.
        assert_eq!(store.unfinished(), ["a"]);
        assert_eq!(store.get("a").unwrap().state, TaskState::Submitted);
        let b = store.get("b").unwrap();
        assert_eq!(
            (b.state, b.result),
            (TaskState::Completed, Some(json!({"done": 1})))
        );
        // The keys came back too: a retried send gets the same task, not a new one.
        match store.create_or_get(&["msg:1".into()], task("c")).unwrap() {
            Created::Existing(t) => assert_eq!(t.id, "a"),
            Created::New(_) => panic!("a known message made a new task after the reopen"),
        }
        assert!(store.start("a"));
    }

    #[test]
    fn final_pushes_not_delivered_are_handed_back_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = on_disk(dir.path());
            let mut t = task("a");
            t.push.push(target("http://x/1"));
            store.create_or_get(&[], t).unwrap();
            store.create_or_get(&[], task("b")).unwrap();
            store.add_push("b", target("http://x/2")).unwrap();
            store.finish("a", Ok(json!(1))).unwrap();
            store.finish("b", Ok(json!(2))).unwrap();
            store.delivered("b", &target("http://x/2"));
        }
        let store = on_disk(dir.path());
        let undelivered = store.undelivered();
        assert_eq!(undelivered.len(), 1);
        assert_eq!(undelivered[0].0.id, "a");
        assert_eq!(undelivered[0].1, [target("http://x/1")]);
        store.delivered("a", &target("http://x/1"));
        drop(store);
        assert!(on_disk(dir.path()).undelivered().is_empty());
    }

    #[test]
    fn a_state_folder_serves_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path()).unwrap();
        let error = lock_dir(dir.path()).unwrap_err();
        assert!(error.contains("in use by another aegis-agents"), "{error}");
        drop(held);
        lock_dir(dir.path()).unwrap();
    }

    #[test]
    fn task_ids_cannot_leave_the_folder() {
        assert_eq!(file_name("a-b_C9").unwrap(), "task-a-b_C9.json");
        assert_eq!(file_name("../x").unwrap(), "task-%2E%2E%2Fx.json");
        assert!(file_name(&"é".repeat(200)).is_none());
        let dir = tempfile::tempdir().unwrap();
        let store = on_disk(dir.path());
        store.create_or_get(&[], task("../escape")).unwrap();
        assert!(!dir.path().join("escape").exists());
        assert!(
            dir.path()
                .join("researcher/task-%2E%2E%2Fescape.json")
                .is_file()
        );
        let long = task(&"x".repeat(300));
        assert!(matches!(
            store.create_or_get(&[], long),
            Err(StoreError::Write { .. })
        ));
        assert!(
            store.get(&"x".repeat(300)).is_none(),
            "a task not kept is not accepted"
        );
    }
}

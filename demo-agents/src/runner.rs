//! Runs accepted tasks in the background and reports their final state to push targets.
//!
//! The artificial delay (`--delay-ms`) sits between "working" and the real work so tests and
//! demos can exercise long-running agents, cancellation and timeouts; a cancel during the delay
//! ends the task at once. A panic inside a role becomes a failed task rather than a task stuck
//! in "working" forever.

use crate::agent::Agents;
use crate::push::{Pusher, delivery_for};
use crate::tasks::{PushTarget, Task, TaskStore};
use std::sync::Arc;
use std::time::Duration;

pub struct Runner {
    agents: Arc<Agents>,
    store: Arc<TaskStore>,
    pusher: Pusher,
    delay: Duration,
}

impl Runner {
    pub fn new(
        agents: Arc<Agents>,
        store: Arc<TaskStore>,
        pusher: Pusher,
        delay: Duration,
    ) -> Self {
        Self {
            agents,
            store,
            pusher,
            delay,
        }
    }

    /// Starts task `id` in the background.
    pub fn spawn(self: &Arc<Self>, id: String) {
        let me = Arc::clone(self);
        tokio::spawn(async move { me.execute(&id).await });
    }

    async fn execute(&self, id: &str) {
        if !self.store.start(id) {
            return;
        }
        if !self.delay.is_zero() {
            let Some(mut state) = self.store.subscribe(id) else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep(self.delay) => {}
                _ = state.wait_for(|s| s.is_terminal()) => return,
            }
        }
        let Some(task) = self.store.get(id) else {
            return;
        };
        let agents = Arc::clone(&self.agents);
        let role = task.role;
        let input = task.input;
        let outcome = tokio::spawn(async move { agents.run(role, &input).await })
            .await
            .unwrap_or_else(|panic| {
                Err(crate::agent::AgentError::failed(format!(
                    "the {role} crashed: {panic}"
                )))
            })
            .map_err(|e| e.to_string());
        if let Err(error) = &outcome {
            tracing::info!(task = id, %role, %error, "task failed");
        }
        if let Some(done) = self.store.finish(id, outcome) {
            self.notify_all(&done);
        }
    }

    /// Pushes `task` (in a final state) to every target it has.
    pub fn notify_all(&self, task: &Task) {
        for target in &task.push {
            self.notify(task, target);
        }
    }

    /// Pushes `task` to one target in the background, with retries.
    pub fn notify(&self, task: &Task, target: &PushTarget) {
        let delivery = delivery_for(task, target);
        let pusher = self.pusher.clone();
        let task_id = task.id.clone();
        tokio::spawn(async move {
            match pusher.deliver(&delivery).await {
                Ok(status) => {
                    tracing::info!(task = %task_id, url = %delivery.url, status, "push delivered");
                }
                Err(e) => {
                    tracing::warn!(task = %task_id, url = %delivery.url, error = %e, "push not delivered");
                }
            }
        });
    }
}

//! Runs accepted tasks in the background and reports their final state to push targets.
//!
//! The artificial delay (`--delay-ms`) sits between "working" and the real work so tests and
//! demos can exercise long-running agents, cancellation and timeouts; a cancel during the delay
//! ends the task at once. A panic inside a role becomes a failed task rather than a task stuck
//! in "working" forever. After a restart, [`Runner::resume`] runs again the tasks the last
//! process had not finished and sends the pushes it had not delivered.

use crate::agent::Agents;
use crate::push::{PushError, Pusher, delivery_for};
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

    /// Pushes `task` to one target in the background, with retries. Once the target took the
    /// push, or refused it for good, the store records it delivered; a push that ran out of
    /// attempts stays undelivered, to be sent again when the agent restarts.
    pub fn notify(&self, task: &Task, target: &PushTarget) {
        let delivery = delivery_for(task, target);
        let pusher = self.pusher.clone();
        let store = Arc::clone(&self.store);
        let (task_id, target) = (task.id.clone(), target.clone());
        tokio::spawn(async move {
            match pusher.deliver(&delivery).await {
                Ok(status) => {
                    tracing::info!(task = %task_id, url = %delivery.url, status, "push delivered");
                    store.delivered(&task_id, &target);
                }
                Err(e @ PushError::Refused(_)) => {
                    tracing::warn!(task = %task_id, url = %delivery.url, error = %e, "push refused");
                    store.delivered(&task_id, &target);
                }
                Err(e) => {
                    tracing::warn!(task = %task_id, url = %delivery.url, error = %e, "push not delivered");
                }
            }
        });
    }

    /// Picks up where the last process left off, for a store reopened from disk: runs the tasks
    /// it had not finished, and sends the final pushes it had not delivered.
    pub fn resume(self: &Arc<Self>) {
        for id in self.store.unfinished() {
            tracing::info!(task = %id, "running a task the last process did not finish");
            self.spawn(id);
        }
        for (task, targets) in self.store.undelivered() {
            for target in &targets {
                tracing::info!(task = %task.id, url = %target.url, "pushing a final state not yet delivered");
                self.notify(&task, target);
            }
        }
    }
}

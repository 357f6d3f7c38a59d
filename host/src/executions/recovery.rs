//! Recovery at start-up: every execution that was running or due when the host stopped is
//! carried on, every timer re-armed, and every agent task that may not have been sent is sent
//! again.

use super::Runtime;
use crate::journal::{Millis, Task, now_ms};
use crate::store;
use std::sync::Arc;

impl Runtime {
    /// Carries on every execution that was running or due when the host stopped, and re-arms
    /// every timer.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, store::Error> {
        for timer in self.timers.timers(Millis::MAX).await? {
            self.scheduler.add(timer);
        }
        // Executions another live host is running stay with it; the sweep takes them if its
        // lease runs out.
        let now = now_ms();
        let mut count = 0;
        for runnable in self.journal.runnable().await? {
            if runnable.lease.available_to(&self.leasing.host_id, now) {
                count += 1;
                self.wake(runnable.id);
            }
        }
        // A crash may have come between recording an agent invocation and sending it; send every
        // waiting one again. Agents deduplicate by the callback id (the A2A message id). So
        // for chained invokes: starting a child again finds it, and closes its invoke if it
        // ended before the crash let it do so.
        for callback in self.callbacks.pending_agent_callbacks().await? {
            let Some(task) = Task::of(&callback) else {
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move { this.send(task).await });
        }
        Ok(count)
    }
}

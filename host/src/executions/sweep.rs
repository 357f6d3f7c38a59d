//! The takeover sweep: work that no event on this host would start.
//!
//! With several hosts on one store, an execution whose host died mid-activation is runnable
//! under a lease nobody renews, and a timer armed by a dead host sits in the store with no
//! scheduler holding it. Every `sweep_interval` this looks for both: runnable executions whose
//! lease is free or expired (woken here, so the lease is taken over) and timers due before the
//! next sweep (handed to the scheduler, whose conditional transition lets exactly one host fire
//! each). With the embedded store one host owns everything, recovery at start-up covers it, and
//! the sweep is off.

use super::Runtime;
use crate::journal::{Millis, now_ms};
use std::sync::Weak;
use std::time::Duration;

/// Sweeps every `every` until the runtime is gone.
pub async fn run(runtime: Weak<Runtime>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(rt) = runtime.upgrade() else { return };
        let horizon = every.as_millis() as Millis;
        let found = async {
            let now = now_ms();
            Ok::<_, crate::store::Error>((
                rt.journal.runnable().await?,
                rt.timers.timers(now + horizon).await?,
            ))
        };
        let (runnable, timers) = match found.await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "sweep: cannot read the store");
                continue;
            }
        };
        let now = now_ms();
        for execution in runnable {
            if execution.lease.available_to(&rt.leasing.host_id, now) {
                rt.wake_if_idle(execution.id);
            }
        }
        for timer in timers {
            rt.scheduler.add(timer);
        }
    }
}

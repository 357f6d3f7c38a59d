//! The scheduler: durable timers for waits, step retries, callback and heartbeat timeouts, and
//! execution timeouts.
//!
//! Timers live in the store; this module keeps an in-memory heap of them (filled from the store
//! at start-up, so every timer survives a restart) and applies each due timer's transition as a
//! conditional write. The condition ([`Condition::TimerDue`]) makes a timer fire once, and lets a
//! heartbeat move a deadline without hunting down the old heap entry.

use crate::executions::Runtime;
use crate::journal::{ErrorRecord, Event, EventType, Status, error_details, now_ms};
use crate::store::{self, Batch, Condition, ExecutionStatus, Finish, Timer, TimerKind};
use serde_json::json;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a timer whose transition failed waits before it is tried again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Hands timers to the scheduler loop.
#[derive(Clone)]
pub struct Scheduler {
    tx: mpsc::UnboundedSender<Timer>,
}

/// The receiving end, given to [`run`] once the runtime exists.
pub struct Inbox(mpsc::UnboundedReceiver<Timer>);

impl Scheduler {
    pub fn new() -> (Self, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, Inbox(rx))
    }

    pub fn add(&self, timer: Timer) {
        let _ = self.tx.send(timer);
    }
}

/// The scheduler loop: sleeps until the earliest timer, fires what is due.
pub async fn run(runtime: Weak<Runtime>, Inbox(mut rx): Inbox) {
    let mut heap: BinaryHeap<Reverse<Timer>> = BinaryHeap::new();
    // What the heap holds: the takeover sweep hands over the same timers again and again.
    let mut queued: HashSet<Timer> = HashSet::new();
    loop {
        let now = now_ms();
        while heap.peek().is_some_and(|Reverse(t)| t.fire_at <= now) {
            let Reverse(timer) = heap.pop().expect("peeked");
            queued.remove(&timer);
            let Some(rt) = runtime.upgrade() else { return };
            tokio::spawn(async move { fire(rt, timer).await });
        }
        let sleep = heap
            .peek()
            .map(|Reverse(t)| Duration::from_millis((t.fire_at - now).max(0) as u64))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            received = rx.recv() => match received {
                Some(timer) => {
                    if queued.insert(timer.clone()) {
                        heap.push(Reverse(timer));
                    }
                }
                None => return,
            },
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

async fn fire(rt: Arc<Runtime>, timer: Timer) {
    let this = rt.clone();
    let execution = timer.execution_id.clone();
    let due = timer.clone();
    let result = tokio::task::spawn_blocking(move || transition(&this, &due)).await;
    let failure = match result {
        Ok(Ok(Fired::Woke)) => return rt.wake(execution),
        Ok(Ok(Fired::Finished)) => {
            rt.notifier.kick();
            return rt.notify_finished(&execution);
        }
        Ok(Ok(Fired::Nothing)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    // The timer is still in the store; try again shortly rather than wait for a restart.
    tracing::error!(%execution, error = %failure, "timer transition failed, retrying");
    tokio::time::sleep(RETRY_DELAY).await;
    rt.scheduler.add(timer);
}

enum Fired {
    Woke,
    Finished,
    Nothing,
}

/// Applies a due timer's transition. A timer whose operation moved on meanwhile does nothing.
fn transition(rt: &Runtime, timer: &Timer) -> Result<Fired, store::Error> {
    let now = now_ms();
    let mut batch = Batch {
        conditions: vec![
            Condition::ExecutionRunning,
            Condition::TimerDue {
                op_id: timer.op_id.clone(),
                kind: timer.kind,
                now,
            },
        ],
        clear_timers: vec![(timer.op_id.clone(), timer.kind)],
        ..Batch::default()
    };
    let fired = if timer.kind == TimerKind::ExecutionTimeout {
        let error = ErrorRecord::new("Execution.Timeout", "Execution timed out");
        batch.events.push(Event::execution(
            EventType::ExecutionTimedOut,
            now,
            json!({"Error": error_details(&error)}),
        ));
        let workflow = rt
            .store
            .execution(&timer.execution_id)?
            .map(|e| e.workflow)
            .unwrap_or_default();
        batch.publish.push(crate::executions::ended_event(
            ExecutionStatus::TimedOut,
            &workflow,
            Some(&error),
        ));
        batch.finish = Some(Finish {
            status: ExecutionStatus::TimedOut,
            result: None,
            error: Some(error),
        });
        batch.clear_all_timers = true;
        Fired::Finished
    } else {
        let Some(mut op) = rt.store.operation(&timer.execution_id, &timer.op_id)? else {
            return Ok(Fired::Nothing);
        };
        match timer.kind {
            TimerKind::WaitEnd => {
                batch.conditions.push(Condition::OperationStatus {
                    op_id: op.id.clone(),
                    status: Status::Started,
                });
                op.status = Status::Succeeded;
                op.end_ts = Some(now);
                op.result = Some("null".into());
                let seconds = (op.scheduled_end_ts.unwrap_or(now) - op.start_ts) / 1000;
                batch.events.push(Event::operation(
                    EventType::WaitSucceeded,
                    &op,
                    now,
                    json!({"Duration": seconds}),
                ));
                batch.operations.push(op);
                batch.wake = true;
            }
            TimerKind::StepRetry => {
                batch.conditions.push(Condition::OperationStatus {
                    op_id: op.id.clone(),
                    status: Status::Pending,
                });
                op.status = Status::Ready;
                batch.operations.push(op);
                batch.wake = true;
            }
            TimerKind::CallbackTimeout | TimerKind::CallbackHeartbeat => {
                batch.conditions.push(Condition::OperationStatus {
                    op_id: op.id.clone(),
                    status: Status::Started,
                });
                let Some(record) = op
                    .callback_id
                    .as_deref()
                    .map(|id| rt.store.callback(&crate::ids::CallbackId::from_raw(id)))
                    .transpose()?
                    .flatten()
                else {
                    return Ok(Fired::Nothing);
                };
                let error = if timer.kind == TimerKind::CallbackTimeout {
                    ErrorRecord::new("Callback.Timeout", "Callback timed out")
                } else {
                    ErrorRecord::new("Callback.Heartbeat", "Callback timed out on heartbeat")
                };
                crate::callbacks::close(&mut batch, &record, op, Err((Status::TimedOut, error)));
            }
            TimerKind::ExecutionTimeout => unreachable!("handled above"),
        }
        Fired::Woke
    };
    match rt.store.commit(&timer.execution_id, batch) {
        Ok(()) => Ok(fired),
        Err(store::Error::ConditionFailed(_)) => Ok(Fired::Nothing),
        Err(e) => Err(e),
    }
}

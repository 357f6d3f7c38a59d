//! The scheduler: durable timers for waits, step retries, callback and heartbeat timeouts, and
//! execution timeouts.
//!
//! Timers live in the store; this module keeps an in-memory queue of them (filled from the store
//! at start-up, so every timer survives a restart) and applies each due timer's transition as a
//! conditional write. The condition ([`Condition::TimerDue`]) makes a timer fire once.
//!
//! The queue holds at most one entry per timer, that is per (execution, operation, kind), as the
//! store does ([`Timers`]): a flood of heartbeats on one callback moves one deadline instead of
//! adding an entry each. An entry is armed at the earliest deadline it was handed and remembers
//! the latest; when it fires and a later deadline is known, it is re-armed at that one. Firing
//! at a deadline a heartbeat has since moved is harmless (the store's `TimerDue` condition
//! refuses it), and the re-armed entry makes sure a missed heartbeat still times the callback
//! out.

use crate::ids::ExecutionId;
use crate::journal::{Millis, now_ms};
use crate::store::{self, Callbacks, Journal, Timer, TimerKind};
use crate::transitions::{callback, execution, step, wait};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// What firing a timer needs from the host: the journal its transition reads and commits to,
/// the callbacks a callback timeout reads, this queue (a timer whose transition failed goes
/// back to it), and telling the executions what a fired timer did. Declared here, and
/// implemented by `executions::Runtime`, so that the scheduler depends on those two roles of the
/// store and on waking, not on the runtime as a whole.
pub trait Host: Send + Sync + 'static {
    fn journal(&self) -> &Arc<dyn Journal>;
    fn callbacks(&self) -> &Arc<dyn Callbacks>;
    fn scheduler(&self) -> &Scheduler;
    /// A timer made the execution runnable: a wait ended, a retry is due, a callback timed out.
    fn wake(self: &Arc<Self>, id: ExecutionId);
    /// A timer ended the execution (its timeout): its ending is committed, with its workflow
    /// event in the outbox.
    fn ended(self: &Arc<Self>, id: &ExecutionId);
}

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

/// What identifies a timer: the store keeps one per (execution, operation, kind).
type Key = (ExecutionId, String, TimerKind);

/// One queued timer: armed at `armed`; `latest` is the latest deadline it was handed since.
struct Entry {
    armed: Millis,
    latest: Millis,
}

/// The scheduler's queue: one entry per timer key, ordered by the time it is armed for.
#[derive(Default)]
pub(crate) struct Timers {
    entries: HashMap<Key, Entry>,
    order: BTreeSet<(Millis, Key)>,
}

impl Timers {
    /// Queues `timer`. A timer already queued under its key is not queued again: a later
    /// deadline is remembered (heartbeats, and the takeover sweep handing over the same timer
    /// again and again), an earlier one moves the entry forward.
    pub(crate) fn add(&mut self, timer: Timer) {
        let Timer {
            fire_at,
            execution_id,
            op_id,
            kind,
        } = timer;
        let key = (execution_id, op_id, kind);
        match self.entries.get_mut(&key) {
            None => {
                self.order.insert((fire_at, key.clone()));
                self.entries.insert(
                    key,
                    Entry {
                        armed: fire_at,
                        latest: fire_at,
                    },
                );
            }
            Some(entry) => {
                entry.latest = entry.latest.max(fire_at);
                if fire_at < entry.armed {
                    let at = std::mem::replace(&mut entry.armed, fire_at);
                    self.order.remove(&(at, key.clone()));
                    self.order.insert((fire_at, key));
                }
            }
        }
    }

    /// Takes the timers due at `now`, each once. An entry handed a later deadline since it was
    /// armed stays queued, re-armed at that deadline.
    pub(crate) fn take_due(&mut self, now: Millis) -> Vec<Timer> {
        let mut due = Vec::new();
        while self.order.first().is_some_and(|(at, _)| *at <= now) {
            let (at, key) = self.order.pop_first().expect("checked above");
            let entry = self
                .entries
                .get_mut(&key)
                .expect("every queued key has an entry");
            if entry.latest > at {
                entry.armed = entry.latest;
                self.order.insert((entry.latest, key.clone()));
            } else {
                self.entries.remove(&key);
            }
            let (execution_id, op_id, kind) = key;
            due.push(Timer {
                fire_at: at,
                execution_id,
                op_id,
                kind,
            });
        }
        due
    }

    /// When the earliest queued timer is due.
    pub(crate) fn next_at(&self) -> Option<Millis> {
        self.order.first().map(|(at, _)| *at)
    }

    /// How many timers are queued.
    pub(crate) fn len(&self) -> usize {
        debug_assert_eq!(self.entries.len(), self.order.len());
        self.entries.len()
    }
}

/// The scheduler loop: sleeps until the earliest timer, fires what is due.
pub async fn run(runtime: Weak<impl Host>, Inbox(mut rx): Inbox) {
    let mut timers = Timers::default();
    loop {
        let now = now_ms();
        let due = timers.take_due(now);
        metrics::gauge!("aegis_timers_queued").set(timers.len() as f64);
        for timer in due {
            let Some(rt) = runtime.upgrade() else { return };
            tokio::spawn(async move { fire(rt, timer).await });
        }
        let sleep = timers
            .next_at()
            .map(|at| Duration::from_millis((at - now).max(0) as u64))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            received = rx.recv() => match received {
                Some(timer) => timers.add(timer),
                None => return,
            },
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

async fn fire(rt: Arc<impl Host>, timer: Timer) {
    let execution = timer.execution_id.clone();
    let fired = transition(&**rt.journal(), &**rt.callbacks(), &timer).await;
    if matches!(fired, Ok(Fired::Woke | Fired::Finished)) {
        let kind = format!("{:?}", timer.kind);
        metrics::counter!("aegis_timers_fired_total", "kind" => kind).increment(1);
    }
    let failure = match fired {
        Ok(Fired::Woke) => return rt.wake(execution),
        Ok(Fired::Finished) => return rt.ended(&execution),
        Ok(Fired::Nothing) => return,
        // Firing it again would fail the same way; it stays in the store, and is loaded again
        // at the next start.
        Err(e) if !e.is_retriable() => {
            tracing::error!(%execution, error = %e, "timer transition failed for good; not retrying");
            return;
        }
        Err(e) => e.to_string(),
    };
    // The timer is still in the store; try again shortly rather than wait for a restart.
    tracing::error!(%execution, error = %failure, "timer transition failed, retrying");
    tokio::time::sleep(RETRY_DELAY).await;
    rt.scheduler().add(timer);
}

enum Fired {
    Woke,
    Finished,
    Nothing,
}

/// Applies a due timer's transition (see [`crate::transitions`]) after reading what it needs.
/// A timer whose operation moved on meanwhile does nothing. It takes only the two roles it
/// reads and writes, so it runs (and is tested) on a store alone, with no host around it.
async fn transition(
    journal: &dyn Journal,
    callbacks: &dyn Callbacks,
    timer: &Timer,
) -> Result<Fired, store::Error> {
    let now = now_ms();
    let (batch, fired) = if timer.kind == TimerKind::ExecutionTimeout {
        let workflow = journal
            .execution(&timer.execution_id)
            .await?
            .map(|e| e.workflow)
            .unwrap_or_default();
        (execution::time_out(timer, &workflow, now), Fired::Finished)
    } else {
        let Some(op) = journal.operation(&timer.execution_id, &timer.op_id).await? else {
            return Ok(Fired::Nothing);
        };
        let batch = match timer.kind {
            TimerKind::WaitEnd => wait::end(timer, op, now),
            TimerKind::StepRetry => step::ready(timer, op, now),
            TimerKind::CallbackTimeout | TimerKind::CallbackHeartbeat => {
                let record = match op.callback_id.as_deref() {
                    Some(id) => {
                        callbacks
                            .callback(&crate::ids::CallbackId::from_raw(id))
                            .await?
                    }
                    None => None,
                };
                let Some(record) = record else {
                    return Ok(Fired::Nothing);
                };
                callback::time_out(timer, &record, op, now)
            }
            TimerKind::ExecutionTimeout => unreachable!("handled above"),
        };
        (batch, Fired::Woke)
    };
    match journal.commit(&timer.execution_id, batch).await {
        Ok(()) => Ok(fired),
        Err(store::Error::ConditionFailed(_) | store::Error::NotFound(_)) => Ok(Fired::Nothing),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(execution: &str, op: &str, kind: TimerKind, fire_at: Millis) -> Timer {
        Timer {
            fire_at,
            execution_id: ExecutionId::from_raw(execution),
            op_id: op.into(),
            kind,
        }
    }

    #[test]
    fn a_heartbeat_flood_keeps_one_entry_and_the_last_deadline_still_fires() {
        let mut timers = Timers::default();
        // The callback's own timeout, and 2,000 heartbeats each moving the heartbeat deadline.
        timers.add(timer("ex_1", "op_1", TimerKind::CallbackTimeout, 1_000_000));
        for i in 0..2_000 {
            timers.add(timer(
                "ex_1",
                "op_1",
                TimerKind::CallbackHeartbeat,
                30_000 + i,
            ));
        }
        assert_eq!(timers.len(), 2, "one entry per (execution, op, kind)");
        assert_eq!(timers.next_at(), Some(30_000));

        // The first deadline fires (the store refuses it: the deadline moved) and the entry is
        // re-armed at the last one, not dropped.
        let due = timers.take_due(30_000);
        assert_eq!(
            due,
            vec![timer("ex_1", "op_1", TimerKind::CallbackHeartbeat, 30_000)]
        );
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.next_at(), Some(31_999));
        assert!(timers.take_due(31_998).is_empty());

        // No heartbeat after that: the last deadline fires, and the entry is gone.
        let due = timers.take_due(31_999);
        assert_eq!(
            due,
            vec![timer("ex_1", "op_1", TimerKind::CallbackHeartbeat, 31_999)]
        );
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next_at(), Some(1_000_000));
    }

    #[test]
    fn the_same_timer_handed_over_again_is_queued_once() {
        let mut timers = Timers::default();
        for _ in 0..100 {
            timers.add(timer("ex_1", "op_1", TimerKind::WaitEnd, 500));
        }
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.take_due(500).len(), 1);
        assert_eq!(timers.len(), 0);
        assert!(timers.take_due(i64::MAX).is_empty());
    }

    #[test]
    fn an_earlier_deadline_moves_the_entry_forward_and_the_later_one_still_fires() {
        let mut timers = Timers::default();
        timers.add(timer("ex_1", "op_1", TimerKind::StepRetry, 900));
        timers.add(timer("ex_1", "op_1", TimerKind::StepRetry, 100));
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next_at(), Some(100));
        assert_eq!(timers.take_due(100)[0].fire_at, 100);
        assert_eq!(timers.take_due(900)[0].fire_at, 900);
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn distinct_timers_fire_in_deadline_order() {
        let mut timers = Timers::default();
        timers.add(timer("ex_2", "op_1", TimerKind::WaitEnd, 300));
        timers.add(timer("ex_1", "op_1", TimerKind::WaitEnd, 200));
        timers.add(timer("ex_1", "", TimerKind::ExecutionTimeout, 100));
        let due: Vec<_> = timers
            .take_due(1_000)
            .into_iter()
            .map(|t| t.fire_at)
            .collect();
        assert_eq!(due, vec![100, 200, 300]);
    }

    /// The transition needs only the journal and the callbacks: a store alone fires a timer.
    #[tokio::test]
    async fn an_execution_timeout_ends_the_execution_once() {
        use crate::ids::{ComponentDigest, TenantId};
        use crate::journal::{Details, Event, EventType};
        use crate::store::{ExecutionStatus, NewExecution, Timers as _, sqlite::SqliteStore};

        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("aegis.db")).unwrap();
        let now = now_ms();
        let id = ExecutionId::generate();
        store
            .create_execution(NewExecution {
                id: id.clone(),
                tenant: TenantId::from_raw("acme"),
                name: None,
                workflow: "wf".into(),
                version: 1,
                digest: ComponentDigest::of(b"x"),
                input: "{}".into(),
                now,
                timeout_at: Some(now),
                max_running: None,
                started_event: Event::execution(EventType::ExecutionStarted, now, Details::Empty),
            })
            .await
            .unwrap();
        let [due] = &store.timers(Millis::MAX).await.unwrap()[..] else {
            panic!("the execution's timeout is its one timer");
        };
        assert_eq!(due.kind, TimerKind::ExecutionTimeout);

        let fired = transition(&store, &store, due).await.unwrap();
        assert!(matches!(fired, Fired::Finished));
        let record = store.execution(&id).await.unwrap().unwrap();
        assert_eq!(record.status, ExecutionStatus::TimedOut);
        // Handed over again (the sweep, another host): the timer is gone, nothing happens.
        let again = transition(&store, &store, due).await.unwrap();
        assert!(matches!(again, Fired::Nothing));
    }
}

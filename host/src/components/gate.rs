//! The compile gate: how many compiles run at once, how many may wait, and how long one may
//! take.
//!
//! Compiling an untrusted component is the most expensive thing an upload does (Cranelift,
//! seconds of CPU and hundreds of MB for a large one), so an unbounded number of them at once
//! would starve every tenant's activations. The gate admits at most `concurrency + queue`
//! compiles; a compile arriving past that is refused at once ([`GateError::Busy`], a 429),
//! rather than piling up memory and threads.
//!
//! wasmtime cannot stop a compile from outside once it has started. So each compile runs on a
//! thread of its own, and the caller waits for it at most `timeout`: past that the upload is
//! refused ([`GateError::TimedOut`]), but the thread keeps its slot until the compile really
//! ends, and its result is thrown away. The concurrency bound thus holds for the CPU actually
//! used, not only for the requests still waiting; a component that compiles too slowly costs
//! at most one slot for as long as Cranelift takes, and never a second time under one upload.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// Every slot is taken and the queue is full (or the wait for a slot was longer than the
    /// time limit).
    #[error("the compile queue is full; retry after {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// The work ran past the time limit; it goes on in the background, and its result is
    /// dropped.
    #[error("the compile took longer than {limit_ms} ms")]
    TimedOut { limit_ms: u64 },
    /// The compile thread could not start or died without a result.
    #[error("compile thread: {0}")]
    Failed(String),
}

pub struct Gate {
    slots: Arc<Semaphore>,
    /// Compiles waiting or running, including those whose caller stopped waiting.
    admitted: Arc<AtomicUsize>,
    capacity: usize,
    concurrency: usize,
    timeout: Duration,
    /// Compiles started since the host started.
    started: AtomicU64,
    /// A moving average of how long compiles take, in ms, for `Retry-After`.
    mean_ms: Arc<AtomicU64>,
}

/// Gives back an admission when the compile ends (or its wait for a slot is abandoned).
struct Ticket(Arc<AtomicUsize>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    /// `concurrency` compiles at once (at least 1), `queue` more waiting, each given `timeout`.
    pub fn new(concurrency: usize, queue: usize, timeout: Duration) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: concurrency + queue,
            concurrency,
            timeout,
            started: AtomicU64::new(0),
            mean_ms: Arc::new(AtomicU64::new(1_000)),
        }
    }

    /// How many compiles have started since the host started.
    pub fn compiles_started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    /// Compiles waiting or running right now.
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::SeqCst)
    }

    /// A fair guess at when a slot frees: the queue ahead, served at the average compile time.
    fn retry_after_secs(&self) -> u64 {
        let mean = self.mean_ms.load(Ordering::Relaxed);
        let ahead = (self.capacity / self.concurrency) as u64;
        (mean * ahead).div_ceil(1000).clamp(1, 60)
    }

    /// Runs `work` on a thread of its own once a slot is free.
    ///
    /// # Errors
    /// [`GateError::Busy`] when the queue is full or no slot frees within the time limit,
    /// [`GateError::TimedOut`] when `work` runs past it, [`GateError::Failed`] when the thread
    /// cannot start or panics.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GateError> {
        if self.admitted.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.admitted.fetch_sub(1, Ordering::SeqCst);
            return Err(GateError::Busy {
                retry_after_secs: self.retry_after_secs(),
            });
        }
        let ticket = Ticket(self.admitted.clone());
        // Waiting in the queue is bounded too: slots held by compiles that outlived their
        // callers could otherwise keep an upload waiting for as long as Cranelift runs.
        let permit =
            match tokio::time::timeout(self.timeout, self.slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(closed)) => return Err(GateError::Failed(closed.to_string())),
                Err(_) => {
                    return Err(GateError::Busy {
                        retry_after_secs: self.retry_after_secs(),
                    });
                }
            };
        self.started.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mean_ms = self.mean_ms.clone();
        std::thread::Builder::new()
            .name("aegis-compile".into())
            .spawn(move || {
                // Both are released only when the work really ends, whoever still waits, and
                // before its result is handed over: a caller that has the result may at once
                // compile again, and must find the slot free.
                let began = Instant::now();
                let out = work();
                let ms = began.elapsed().as_millis() as u64;
                let old = mean_ms.load(Ordering::Relaxed);
                mean_ms.store((old * 3 + ms) / 4, Ordering::Relaxed);
                drop(permit);
                drop(ticket);
                let _ = tx.send(out);
            })
            .map_err(|e| GateError::Failed(format!("cannot start a compile thread: {e}")))?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(_)) => Err(GateError::Failed("the compile thread panicked".into())),
            Err(_) => Err(GateError::TimedOut {
                limit_ms: self.timeout.as_millis() as u64,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Work that runs until `release` is sent to, and says it started through `started`.
    fn held(
        started: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
    ) -> impl FnOnce() -> u32 + Send + 'static {
        move || {
            started.send(()).unwrap();
            release.recv().unwrap();
            7
        }
    }

    /// Starts work that holds the gate's slot until the returned sender is sent to; returns
    /// once it runs.
    async fn hold_the_slot(
        gate: &Arc<Gate>,
    ) -> (
        tokio::task::JoinHandle<Result<u32, GateError>>,
        mpsc::Sender<()>,
    ) {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let first = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(held(started_tx, release_rx)).await }
        });
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        (first, release_tx)
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let gate = Arc::new(Gate::new(1, 0, Duration::from_secs(600)));
        let (first, release_tx) = hold_the_slot(&gate).await;
        let refused = gate.run(|| 1).await;
        assert!(
            matches!(refused, Err(GateError::Busy { retry_after_secs }) if retry_after_secs >= 1),
            "{refused:?}"
        );
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(7));
        assert_eq!(gate.run(|| 2).await, Ok(2));
        assert_eq!(gate.compiles_started(), 2);
    }

    #[tokio::test]
    async fn a_queued_compile_waits_for_the_slot() {
        let gate = Arc::new(Gate::new(1, 1, Duration::from_secs(600)));
        let (first, release_tx) = hold_the_slot(&gate).await;
        let second = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(|| 3).await }
        });
        // The second is admitted (the queue has room) but cannot run: a third is refused.
        while gate.admitted() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(matches!(gate.run(|| 4).await, Err(GateError::Busy { .. })));
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(7));
        assert_eq!(second.await.unwrap(), Ok(3));
    }

    #[tokio::test]
    async fn a_slow_compile_is_refused_but_keeps_its_slot_until_it_ends() {
        let gate = Gate::new(1, 0, Duration::from_millis(50));
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let out = gate.run(held(started_tx, release_rx)).await;
        assert_eq!(out, Err(GateError::TimedOut { limit_ms: 50 }));
        started_rx.recv().unwrap();
        // Still running: its slot is not free, so nothing else is admitted.
        assert_eq!(gate.admitted(), 1);
        assert!(matches!(gate.run(|| 5).await, Err(GateError::Busy { .. })));
        release_tx.send(()).unwrap();
        while gate.admitted() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(gate.run(|| 6).await, Ok(6));
    }
}

//! The writer thread, which owns the write connection: it takes every job that is waiting,
//! applies each inside its own savepoint (a failed condition rolls back only that job) and
//! commits them together, so concurrent executions share one fsync (group commit).

use crate::failure::{self, classify};
use aegis_core::store::{Error, Result};
use rusqlite::{Connection, Transaction};
use std::sync::mpsc;

/// Most requests folded into one commit.
const MAX_GROUP: usize = 512;

/// What the writer calls once a job's group is committed (or failed to).
pub(super) type Deliver = Box<dyn FnOnce(Option<Error>) + Send>;
/// A write, run inside the group's transaction (or told why there is none); it returns how to
/// deliver its outcome.
pub(super) type Job =
    Box<dyn FnOnce(std::result::Result<&Transaction<'_>, Error>) -> Deliver + Send>;

/// Wraps `work` into a job that runs inside its own savepoint and sends its outcome (or the
/// group's commit failure) to `reply`. When the group could not begin a transaction, the job
/// does not run and its caller gets that failure: the write did not happen.
pub(super) fn job<T: Send + 'static>(
    work: impl FnOnce(&Transaction<'_>) -> failure::Result<T> + Send + 'static,
    reply: tokio::sync::oneshot::Sender<Result<T>>,
) -> Job {
    Box::new(move |tx| {
        let outcome = match tx {
            Ok(tx) => (|| {
                tx.execute_batch("SAVEPOINT job")?;
                let outcome = work(tx);
                if outcome.is_err() {
                    tx.execute_batch("ROLLBACK TO job")?;
                }
                tx.execute_batch("RELEASE job")?;
                outcome
            })()
            .map_err(Error::from),
            Err(not_begun) => Err(not_begun),
        };
        Box::new(move |commit_error| {
            let _ = reply.send(match commit_error {
                Some(e) => Err(e),
                None => outcome,
            });
        })
    })
}

pub(super) fn writer_loop(conn: &mut Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                // Each caller learns why its write did not happen (busy or I/O: retriable).
                let e = classify(e);
                tracing::error!(error = %e, jobs = jobs.len(), "store: cannot begin transaction");
                for job in jobs {
                    job(Err(e.clone()))(None);
                }
                continue;
            }
        };
        let delivers: Vec<Deliver> = jobs.into_iter().map(|job| job(Ok(&tx))).collect();
        let commit_error = tx.commit().err().map(classify);
        if let Some(e) = &commit_error {
            tracing::error!(error = %e, "store: group commit failed");
        }
        for deliver in delivers {
            deliver(commit_error.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_whose_group_did_not_begin_is_answered_with_why_and_does_not_run() {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let job = job(
            move |_tx| {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            },
            reply,
        );
        job(Err(Error::Retriable("database is locked".into())))(None);
        let outcome = answer.try_recv().expect("the job was answered");
        assert!(
            matches!(&outcome, Err(Error::Retriable(m)) if m == "database is locked"),
            "{outcome:?}"
        );
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }
}

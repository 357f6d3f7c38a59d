//! Committing an activation's writes: the one place both of an activation's kinds of commit go
//! through (the engine's, before the guest learns an outcome, and the host's, of how the
//! activation ended), so that `aegis_store_commit_seconds` and `aegis_store_commit_records`
//! count every one of them.

use aegis_core::ids::ExecutionId;
use aegis_core::store::{self, Batch, Journal};

/// Commits `batch` to execution `id`, waiting on the calling (blocking) thread, and records how
/// long it took and how many records it held.
///
/// # Errors
/// The store's, as [`Journal::commit`] returns them.
pub fn commit(journal: &dyn Journal, id: &ExecutionId, batch: Batch) -> store::Result<()> {
    let records = batch.operations.len()
        + batch.events.len()
        + batch.set_timers.len()
        + batch.callbacks.len();
    let clock = std::time::Instant::now();
    let committed = store::wait(journal.commit(id, batch));
    metrics::histogram!("aegis_store_commit_seconds").record(clock.elapsed().as_secs_f64());
    metrics::histogram!("aegis_store_commit_records").record(records as f64);
    committed
}

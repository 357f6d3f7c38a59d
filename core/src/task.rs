//! Blocking work awaited from async code, and what a failed task means.
//!
//! A task on tokio's blocking pool fails to join when it panicked (a bug) or when the runtime
//! shuts down before it ran. Neither is a domain error to answer with: [`rethrow`] raises the
//! panic again in the task that awaits it, so a panic in a request's blocking work ends the way
//! a panic in the handler itself does, as a 500 `internal` from the API's catch-panic layer,
//! and is never dressed up as a bad request or a retriable outage.

use tokio::task::JoinError;

/// The one mapping of a [`JoinError`]: it never returns, it raises the task's panic (its
/// original payload) in the caller, or a panic saying the runtime is shutting down.
///
/// Use it where a panic may propagate: request handling and the services it calls. Loops that
/// must outlive one failure (the scheduler, the activation driver, the outbox) log the error
/// and carry on instead.
///
/// ```ignore
/// let compiled = tokio::task::spawn_blocking(move || engine.compile(&bytes))
///     .await
///     .unwrap_or_else(task::rethrow)?;
/// ```
pub fn rethrow<T>(error: JoinError) -> T {
    match error.try_into_panic() {
        Ok(payload) => std::panic::resume_unwind(payload),
        Err(error) => panic!("a blocking task did not run to its end: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_a_blocking_task_is_raised_again_in_its_caller() {
        let caller = tokio::spawn(async {
            tokio::task::spawn_blocking(|| -> u32 { panic!("bug in the task") })
                .await
                .unwrap_or_else(rethrow)
        });
        let error = caller.await.expect_err("the caller panics too");
        let payload = error.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"bug in the task"));
    }

    #[tokio::test]
    async fn a_finished_task_gives_its_value() {
        let value = tokio::task::spawn_blocking(|| 7)
            .await
            .unwrap_or_else(rethrow);
        assert_eq!(value, 7);
    }
}

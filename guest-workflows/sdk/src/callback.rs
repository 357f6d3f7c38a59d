//! Callbacks: let the outside world (a person, a service, an agent) complete a durable wait.
//!
//! A callback is created with a timeout (and optionally a heartbeat timeout). Its id is handed
//! out, and whoever holds it completes the callback through the API; until then the execution is
//! suspended and holds no memory. [`Ctx::wait_for_callback`] packages the usual pattern: create,
//! hand out the id from a step, await the answer, all inside one checkpointed context.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::context::run_in_context;
use crate::executor::ask_once;
use crate::host::{self, ContextKind, Recorded};
use crate::retry::millis;
use crate::{Ctx, Error, StepOptions, payload};

/// Timeouts for a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackOptions {
    /// How long the callback may take in total; then it fails with `Callback.Timeout`.
    pub timeout: Duration,
    /// If set, how long may pass between heartbeats; then it fails with `Callback.Heartbeat`.
    pub heartbeat_timeout: Option<Duration>,
}

impl CallbackOptions {
    /// A callback that times out after `timeout`, with no heartbeat timeout.
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            heartbeat_timeout: None,
        }
    }

    /// The same options with a heartbeat timeout.
    #[must_use]
    pub fn heartbeat_timeout(mut self, heartbeat_timeout: Duration) -> Self {
        self.heartbeat_timeout = Some(heartbeat_timeout);
        self
    }
}

/// A created callback. Hand [`id`](Self::id) to whoever will complete it, then await
/// [`result`](Self::result).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callback {
    /// The unguessable id that completes the callback through the API.
    pub id: String,
    operation_id: String,
}

impl Callback {
    /// The callback's operation id in the journal.
    pub fn operation_id(&self) -> &str {
        &self.operation_id
    }

    /// Resolves to the value the callback was completed with.
    ///
    /// # Errors
    ///
    /// Resolves to the failure the callback was completed with, `Callback.Timeout` or
    /// `Callback.Heartbeat` if it timed out, or [`Error::PAYLOAD_DECODE`] if its value does not
    /// decode into `T`.
    pub fn result<T: DeserializeOwned>(&self) -> impl Future<Output = Result<T, Error>> + use<T> {
        let answer = self.raw_result();
        async move { payload::decode(&answer.await?) }
    }

    /// The recorded outcome, undecoded.
    fn raw_result(&self) -> impl Future<Output = Recorded> + use<> {
        let operation_id = self.operation_id.clone();
        ask_once(move || host::callback_poll(&operation_id))
    }
}

impl Ctx {
    /// Creates (or, on replay, finds again) the callback named `name`.
    pub fn create_callback(&self, name: &str, options: CallbackOptions) -> Callback {
        let (operation_id, id) = host::callback_create(
            self.id(),
            name,
            millis(options.timeout),
            options.heartbeat_timeout.map(millis),
        );
        Callback { id, operation_id }
    }

    /// Creates a callback, hands its id out with `submitter`, and resolves to the callback's value.
    ///
    /// This runs in a context of kind wait-for-callback named `name`, holding the callback (also
    /// named `name`) and a step named `"submitter"` that calls `submitter` with the callback id.
    /// The submitter therefore runs once, however often the workflow is replayed; it is the place
    /// to send the id to a person or a service.
    ///
    /// # Errors
    ///
    /// Resolves to the submitter's error, the callback's failure (including `Callback.Timeout` and
    /// `Callback.Heartbeat`), or [`Error::PAYLOAD_DECODE`] if the value does not decode into `T`.
    pub fn wait_for_callback<T, F>(
        &self,
        name: &str,
        options: CallbackOptions,
        submitter: F,
    ) -> impl Future<Output = Result<T, Error>> + use<T, F>
    where
        T: DeserializeOwned,
        F: FnOnce(&str) -> Result<(), Error>,
    {
        self.wait_for_callback_with(name, options, StepOptions::default(), submitter)
    }

    /// [`wait_for_callback`](Self::wait_for_callback) with options for the submitter's step:
    /// a [`RetryPolicy`](crate::RetryPolicy) retries a submitter that fails (the execution
    /// suspends between attempts, and the callback stays open), and its semantics say what
    /// happens to a submitter interrupted by a crash.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use aegis_sdk::{CallbackOptions, Ctx, Error, RetryPolicy, StepOptions};
    /// # async fn example(ctx: Ctx) -> Result<(), Error> {
    /// let retry = StepOptions::retry(RetryPolicy::fixed(3, Duration::from_secs(1)));
    /// let answer: String = ctx
    ///     .wait_for_callback_with("approval", CallbackOptions::timeout(Duration::from_secs(600)), retry, |id| {
    ///         // Send `id` to the approver; an error here is retried.
    ///         Ok(())
    ///     })
    ///     .await?;
    /// # let _ = answer;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`wait_for_callback`](Self::wait_for_callback); a submitter that fails for good
    /// (its retries exhausted) fails the operation with its last error.
    pub fn wait_for_callback_with<T, F>(
        &self,
        name: &str,
        options: CallbackOptions,
        submitter_options: StepOptions,
        submitter: F,
    ) -> impl Future<Output = Result<T, Error>> + use<T, F>
    where
        T: DeserializeOwned,
        F: FnOnce(&str) -> Result<(), Error>,
    {
        let (parent, name) = (self.clone(), name.to_owned());
        async move {
            let recorded = run_in_context(&parent, &name, ContextKind::WaitForCallback, |ctx| {
                let callback = ctx.create_callback(&name, options);
                async move {
                    let id = callback.id.clone();
                    ctx.step_with("submitter", submitter_options, move |_attempt| {
                        submitter(&id)
                    })
                    .await?;
                    callback.raw_result().await
                }
            })
            .await?;
            payload::decode(&recorded)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_builder() {
        let options = CallbackOptions::timeout(Duration::from_secs(60))
            .heartbeat_timeout(Duration::from_secs(5));
        assert_eq!(options.timeout, Duration::from_secs(60));
        assert_eq!(options.heartbeat_timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            CallbackOptions::timeout(Duration::from_secs(1)).heartbeat_timeout,
            None
        );
    }
}

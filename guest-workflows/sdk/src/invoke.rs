//! Chained invokes: run another workflow as a child execution and wait, durably, for its
//! result.
//!
//! The host starts the child once the invoke is recorded, and closes the invoke when the child
//! ends; the execution suspends meanwhile, so the child may run for days. A child that fails
//! or is stopped fails the invoke with its error (`ChainedInvoke.Timeout` if the invoke's own
//! timeout passes first); an unknown function fails it with `ResourceNotFoundException`.

use std::future::Future;
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use crate::executor::ask_once;
use crate::retry::millis;
use crate::{Ctx, Error, host, payload};

/// How a chained invoke runs: a tenant id to pass on, and how long to wait at most.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvokeOptions {
    /// An AWS tenant id, recorded in the history with the invoke.
    pub tenant_id: Option<String>,
    /// How long to wait for the child at most (whole seconds, at least 1 s); none waits as
    /// long as the child runs. The child is not stopped when it passes.
    pub timeout: Option<Duration>,
}

impl InvokeOptions {
    /// With this tenant id passed on.
    #[must_use]
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// Waiting at most `timeout` for the child.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl Ctx {
    /// Runs `function` (a workflow of this tenant: `name`, `name:version`, or a function ARN)
    /// on `input` as a child execution, and resolves to its result.
    ///
    /// # Errors
    ///
    /// As [`Ctx::invoke_with`].
    pub fn invoke<T, I>(
        &self,
        name: &str,
        function: &str,
        input: &I,
    ) -> impl Future<Output = Result<T, Error>> + use<T, I>
    where
        T: DeserializeOwned,
        I: Serialize + ?Sized,
    {
        self.invoke_with(name, function, input, InvokeOptions::default())
    }

    /// [`Ctx::invoke`] with options.
    ///
    /// The input is encoded when this method is called; the invoke is recorded when the future
    /// is first polled.
    ///
    /// # Errors
    ///
    /// Fails if `input` cannot be encoded ([`Error::PAYLOAD_ENCODE`], before anything is
    /// recorded), with the child's error if it fails or is stopped, with
    /// `ChainedInvoke.Timeout` if `options.timeout` passes first, with
    /// `ResourceNotFoundException` for an unknown function, or if the child's result does not
    /// decode into `T` ([`Error::PAYLOAD_DECODE`]).
    pub fn invoke_with<T, I>(
        &self,
        name: &str,
        function: &str,
        input: &I,
        options: InvokeOptions,
    ) -> impl Future<Output = Result<T, Error>> + use<T, I>
    where
        T: DeserializeOwned,
        I: Serialize + ?Sized,
    {
        let (ctx, name, function) = (self.clone(), name.to_owned(), function.to_owned());
        let input = payload::encode(input);
        let timeout_ms = options.timeout.map(millis);
        let tenant_id = options.tenant_id;
        async move {
            let input = input?;
            let result = ask_once(|| {
                host::invoke(
                    ctx.id(),
                    &name,
                    &function,
                    &input,
                    tenant_id.as_deref(),
                    timeout_ms,
                )
            })
            .await?;
            payload::decode(&result)
        }
    }
}

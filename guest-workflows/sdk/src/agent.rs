//! Agent invocations: hand work to an agent and wait, durably, for its answer.
//!
//! The host dispatches the input once and records the answer; the execution suspends meanwhile,
//! so an agent may take hours without a guest instance waiting for it.

use std::future::Future;
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use crate::executor::ask_once;
use crate::retry::millis;
use crate::{Ctx, Error, host, payload};

impl Ctx {
    /// Sends `input` to the agent named `agent` and resolves to its answer, giving it at most
    /// `timeout`.
    ///
    /// The input is encoded when this method is called; the dispatch happens when the future is
    /// first polled.
    ///
    /// # Errors
    ///
    /// Fails if `input` cannot be encoded ([`Error::PAYLOAD_ENCODE`], before anything is sent),
    /// if the agent fails or times out (the host's error), or if its answer does not decode into
    /// `T` ([`Error::PAYLOAD_DECODE`]).
    pub fn invoke_agent<T, I>(
        &self,
        name: &str,
        agent: &str,
        input: &I,
        timeout: Duration,
    ) -> impl Future<Output = Result<T, Error>> + use<T, I>
    where
        T: DeserializeOwned,
        I: Serialize + ?Sized,
    {
        let (ctx, name, agent) = (self.clone(), name.to_owned(), agent.to_owned());
        let input = payload::encode(input);
        let timeout_ms = millis(timeout);
        async move {
            let input = input?;
            let answer =
                ask_once(|| host::agent_invoke(ctx.id(), &name, &agent, &input, timeout_ms))
                    .await?;
            payload::decode(&answer)
        }
    }
}

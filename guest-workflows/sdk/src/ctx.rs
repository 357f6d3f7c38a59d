//! [`Ctx`]: the handle a workflow makes every durable call through.
//!
//! Why a handle at all: the host names each operation by its context and its position among the
//! calls made in that context. A `Ctx` carries that context id, so code inside a child context,
//! a parallel branch or a map item automatically gets its own, independent sequence of operation
//! ids, and branches can interleave freely without disturbing each other's ids.
//!
//! This module holds the handle and the small operations (waits, time, randomness, logs). Steps,
//! callbacks, child contexts, batches, agents and artifacts add their methods in their own modules.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use crate::executor::ask_once;
use crate::retry::millis;
use crate::{Error, host};

/// The context a piece of workflow code runs in. Cheap to clone.
///
/// The workflow function receives the root context; [`Ctx::child`], [`Ctx::parallel`],
/// [`Ctx::map`] and [`Ctx::wait_for_callback`] hand out child contexts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ctx {
    id: Rc<str>,
}

/// How important a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the workflow copes with.
    Warn,
    /// A failure.
    Error,
}

impl Ctx {
    /// The root context (id `""`), which the workflow function receives.
    pub(crate) fn root() -> Self {
        Self { id: Rc::from("") }
    }

    /// The child context the host named `id`.
    pub(crate) fn with_id(id: String) -> Self {
        Self { id: Rc::from(id) }
    }

    /// This context's id: `""` for the root, otherwise the operation id of the context.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sleeps durably for `duration`.
    ///
    /// The execution suspends and holds no memory while it sleeps; a later activation continues
    /// after the wait. Durations below a millisecond round down.
    ///
    /// # Errors
    ///
    /// Fails if the host ends the wait with an error (for example when it is cancelled).
    pub fn wait(
        &self,
        name: &str,
        duration: Duration,
    ) -> impl Future<Output = Result<(), Error>> + use<> {
        let (ctx, name) = (self.id.clone(), name.to_owned());
        let ms = millis(duration);
        // A wait has nothing to return, so its success payload is ignored whatever the host puts
        // there.
        async move { ask_once(|| host::wait(&ctx, &name, ms)).await.map(drop) }
    }

    /// The current time in milliseconds since the Unix epoch, recorded on first use and replayed
    /// afterwards (use this instead of the system clock, which the sandbox does not provide).
    pub fn now(&self) -> impl Future<Output = u64> + use<> {
        let ctx = self.id.clone();
        ask_once(move || Some(host::now(&ctx)))
    }

    /// 64 random bits, recorded on first use and replayed afterwards.
    pub fn random(&self) -> impl Future<Output = u64> + use<> {
        let ctx = self.id.clone();
        ask_once(move || Some(host::random(&ctx)))
    }

    /// Publishes a workflow event (a status change, an approval that waits, a finished report)
    /// to the host's event stream and webhook. Recorded: a replay does not publish it again.
    ///
    /// # Errors
    ///
    /// [`Error::PAYLOAD_ENCODE`] when `data` cannot be serialised.
    pub fn publish<T: serde::Serialize + ?Sized>(&self, kind: &str, data: &T) -> Result<(), Error> {
        let data = serde_json::to_string(data)
            .map_err(|e| Error::new(Error::PAYLOAD_ENCODE, format!("event {kind:?}: {e}")))?;
        host::publish(&self.id, kind, &data);
        Ok(())
    }

    /// Writes to the host's log. The host skips lines logged while this context is replaying, so
    /// each line appears once however often the workflow is replayed.
    pub fn log(&self, level: LogLevel, message: &str) {
        host::log(&self.id, level, message);
    }

    /// [`log`](Self::log) at [`LogLevel::Debug`].
    pub fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message);
    }

    /// [`log`](Self::log) at [`LogLevel::Info`].
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    /// [`log`](Self::log) at [`LogLevel::Warn`].
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// [`log`](Self::log) at [`LogLevel::Error`].
    pub fn error(&self, message: &str) {
        self.log(LogLevel::Error, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_the_empty_id() {
        assert_eq!(Ctx::root().id(), "");
    }

    #[test]
    fn clones_share_the_id() {
        let ctx = Ctx::with_id("op-1".to_owned());
        assert_eq!(ctx.clone(), ctx);
        assert_eq!(ctx.clone().id(), "op-1");
    }
}

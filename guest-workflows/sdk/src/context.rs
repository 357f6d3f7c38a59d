//! Child contexts: a named group of operations whose combined outcome is checkpointed.
//!
//! Why: a context gives its body a fresh sequence of operation ids (so its calls cannot collide
//! with siblings'), and once it finishes its outcome is recorded with `context-exit`. A replay of
//! a finished context returns that outcome from `context-enter` without running the body at all.
//! Parallel branches, map items and wait-for-callback are all built on [`run_in_context`].

use std::future::Future;
use std::rc::Rc;

use serde::{Serialize, de::DeserializeOwned};

use crate::host::{self, ContextBegin, ContextKind, Recorded};
use crate::{Ctx, Error, Serdes, payload};

impl Ctx {
    /// Runs `body` in a child context named `name` and checkpoints its result.
    ///
    /// A result over 256 KiB is not checkpointed: the context is marked to replay its children,
    /// and a later replay runs `body` again over their recorded outcomes to rebuild it (AWS's
    /// ReplayChildren). `body` must then take the same path: a call it did not make the first
    /// time fails the execution with `Aegis.NonDeterminism`.
    ///
    /// ```no_run
    /// # use aegis_sdk::{Ctx, Error};
    /// # async fn example(ctx: Ctx) -> Result<(), Error> {
    /// let total: u32 = ctx
    ///     .child("inner", |c| async move {
    ///         let x: u32 = c.step("x", |_| Ok(1)).await?;
    ///         c.step("y", move |_| Ok(x + 1)).await
    ///     })
    ///     .await?;
    /// # let _ = total;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Resolves to the body's error (recorded as the context's failure), to
    /// [`Error::PAYLOAD_ENCODE`] if its value cannot be encoded, or to [`Error::PAYLOAD_DECODE`] if
    /// the recorded value does not decode into `T`.
    pub fn child<T, F, Fut>(
        &self,
        name: &str,
        body: F,
    ) -> impl Future<Output = Result<T, Error>> + use<T, F, Fut>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        typed_context(
            self.clone(),
            name.to_owned(),
            ContextKind::RunInChildContext,
            body,
            None,
        )
    }

    /// [`child`](Self::child), with its result recorded as `serdes` renders it (AWS's serdes
    /// of a child context) instead of as JSON, and read back through it on replay.
    ///
    /// # Errors
    ///
    /// As [`child`](Self::child), and `serdes`'s own errors.
    pub fn child_with<T, F, Fut>(
        &self,
        name: &str,
        serdes: Rc<dyn Serdes>,
        body: F,
    ) -> impl Future<Output = Result<T, Error>> + use<T, F, Fut>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        typed_context(
            self.clone(),
            name.to_owned(),
            ContextKind::RunInChildContext,
            body,
            Some(serdes),
        )
    }
}

/// Runs `body` in a child context of `kind`, encoding its value as the context's outcome (as
/// `serdes` renders it, or JSON).
pub(crate) async fn typed_context<T, F, Fut>(
    parent: Ctx,
    name: String,
    kind: ContextKind,
    body: F,
    serdes: Option<Rc<dyn Serdes>>,
) -> Result<T, Error>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let writer = serdes.clone();
    let recorded = run_in_context(&parent, &name, kind, |ctx| async move {
        body(ctx)
            .await
            .and_then(|value| payload::encode_with(&value, writer.as_deref()))
    })
    .await?;
    payload::decode_with(&recorded, serdes.as_deref())
}

/// Enters (or replays) a child context of `parent` and runs `body` in it if it has not finished.
///
/// The body's outcome is recorded with `context-exit` before it is returned, so the first run and
/// every replay return the same thing.
pub(crate) async fn run_in_context<F, Fut>(
    parent: &Ctx,
    name: &str,
    kind: ContextKind,
    body: F,
) -> Recorded
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Recorded>,
{
    match host::context_enter(parent.id(), name, kind) {
        ContextBegin::Done(recorded) => recorded,
        ContextBegin::Run(id) => {
            let outcome = body(Ctx::with_id(id.clone())).await;
            host::context_exit(&id, outcome.clone());
            outcome
        }
    }
}

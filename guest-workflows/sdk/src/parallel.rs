//! Concurrency inside a workflow: [`Ctx::parallel`] and [`Ctx::map`].
//!
//! Why contexts all the way down: a batch is a context (kind parallel or map), and each branch or
//! item runs in its own child context (kind parallel-branch / map-iteration, named `branch-0`,
//! `branch-1`, … / `item-0`, `item-1`, …). Each branch therefore has its own sequence of
//! operation ids, so the order in which branches happen to progress never changes any id. The
//! batch's [`BatchResult`] is recorded as the batch context's outcome, so replaying a finished
//! batch returns it without entering a single branch.
//!
//! How branches share the guest's single thread, how many run at a time, and when a batch ends,
//! is described in the [`Completion`](crate::Completion) and [`BatchConfig`] docs and the `batch`
//! module.

use std::future::Future;
use std::pin::Pin;

use serde::{Serialize, de::DeserializeOwned};

use crate::batch::join;
use crate::context::{run_in_context, typed_context};
use crate::host::{self, ContextKind};
use crate::{BatchConfig, BatchResult, Ctx, Error, payload};

/// One branch of [`Ctx::parallel`]; make it with [`branch`].
pub struct Branch<'a, T> {
    start: BranchStart<'a, T>,
}

type BranchStart<'a, T> =
    Box<dyn FnOnce(Ctx) -> Pin<Box<dyn Future<Output = Result<T, Error>> + 'a>> + 'a>;

/// A branch for [`Ctx::parallel`]: `body` receives the branch's own context.
///
/// Boxing lets branches with different bodies share one `Vec`.
pub fn branch<'a, T, F, Fut>(body: F) -> Branch<'a, T>
where
    F: FnOnce(Ctx) -> Fut + 'a,
    Fut: Future<Output = Result<T, Error>> + 'a,
{
    Branch {
        start: Box::new(move |ctx| Box::pin(body(ctx))),
    }
}

/// The context kinds and names of one sort of batch.
#[derive(Clone, Copy)]
struct BatchKind {
    batch: ContextKind,
    item: ContextKind,
    item_prefix: &'static str,
}

const PARALLEL: BatchKind = BatchKind {
    batch: ContextKind::Parallel,
    item: ContextKind::ParallelBranch,
    item_prefix: "branch",
};

const MAP: BatchKind = BatchKind {
    batch: ContextKind::Map,
    item: ContextKind::MapIteration,
    item_prefix: "item",
};

impl Ctx {
    /// Runs `branches` concurrently in a parallel context named `name`, until the completion
    /// rule says the batch is over. `config` is a [`Completion`](crate::Completion) or a
    /// [`BatchConfig`] (which adds max concurrency and branch names).
    ///
    /// ```no_run
    /// # use aegis_sdk::{Completion, Ctx, Error, branch};
    /// # async fn example(ctx: Ctx) -> Result<(), Error> {
    /// let both = ctx
    ///     .parallel(
    ///         "both",
    ///         vec![
    ///             branch(|c| async move { c.step("left", |_| Ok(1)).await }),
    ///             branch(|c| async move { c.step("right", |_| Ok(2)).await }),
    ///         ],
    ///         Completion::all(),
    ///     )
    ///     .await?
    ///     .into_values()?;
    /// assert_eq!(both, vec![1, 2]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Failed branches do not fail the batch; they are reported in the [`BatchResult`]. The
    /// future itself only fails with [`Error::PAYLOAD_ENCODE`] / [`Error::PAYLOAD_DECODE`] if the
    /// batch result cannot be recorded or read back, and with [`Error::INVALID_BATCH_CONFIG`]
    /// (before anything is recorded) if `config` holds a value it cannot run with.
    pub fn parallel<'a, T, C>(
        &self,
        name: &str,
        branches: Vec<Branch<'a, T>>,
        config: C,
    ) -> impl Future<Output = Result<BatchResult<T>, Error>> + use<'a, T, C>
    where
        T: Serialize + DeserializeOwned + 'a,
        C: Into<BatchConfig>,
    {
        let starts = branches.into_iter().map(|branch| branch.start).collect();
        run_batch(
            self.clone(),
            name.to_owned(),
            PARALLEL,
            starts,
            config.into(),
        )
    }

    /// Runs `body` once per item, concurrently, in a map context named `name`, until the
    /// completion rule of `config` (a [`Completion`](crate::Completion) or a [`BatchConfig`])
    /// says the batch is over.
    ///
    /// ```no_run
    /// # use aegis_sdk::{Completion, Ctx, Error};
    /// # async fn example(ctx: Ctx) -> Result<(), Error> {
    /// let doubled: Vec<i64> = ctx
    ///     .map("double", vec![1, 2, 3], |c, n: i64| async move {
    ///         c.step("double", move |_| Ok(n * 2)).await
    ///     }, Completion::all())
    ///     .await?
    ///     .into_values()?;
    /// # let _ = doubled;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`parallel`](Self::parallel).
    pub fn map<T, I, Items, F, Fut, C>(
        &self,
        name: &str,
        items: Items,
        body: F,
        config: C,
    ) -> impl Future<Output = Result<BatchResult<T>, Error>> + use<T, I, Items, F, Fut, C>
    where
        C: Into<BatchConfig>,
        T: Serialize + DeserializeOwned,
        Items: IntoIterator<Item = I>,
        F: Fn(Ctx, I) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let (parent, name, config) = (self.clone(), name.to_owned(), config.into());
        let items: Vec<I> = items.into_iter().collect();
        async move {
            let body = &body;
            let starts = items
                .into_iter()
                .map(|item| move |ctx| body(ctx, item))
                .collect();
            run_batch(parent, name, MAP, starts, config).await
        }
    }
}

/// Runs a batch context whose items start with `starts`, and records its [`BatchResult`]. A
/// config that cannot run fails here, before the batch's context is entered.
async fn run_batch<T, S, Fut>(
    parent: Ctx,
    name: String,
    kind: BatchKind,
    starts: Vec<S>,
    config: BatchConfig,
) -> Result<BatchResult<T>, Error>
where
    T: Serialize + DeserializeOwned,
    S: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let (completion, max_concurrency) = config.rules()?;
    let serdes = config.serdes_of();
    let writer = serdes.clone();
    let recorded = run_in_context(&parent, &name, kind.batch, |batch| async move {
        let items = starts
            .into_iter()
            .enumerate()
            .map(|(index, start)| {
                let batch = batch.clone();
                let item_name = config.item_name(kind.item_prefix, index);
                let flat = config.is_flat();
                let item_serdes = config.item_serdes_of();
                async move {
                    if flat {
                        start(Ctx::with_id(host::virtual_context_enter(batch.id()))).await
                    } else {
                        typed_context(batch, item_name, kind.item, start, item_serdes).await
                    }
                }
            })
            .collect();
        let result = join(items, completion, max_concurrency).await;
        payload::encode_with(&result, writer.as_deref())
    })
    .await?;
    payload::decode_with(&recorded, serdes.as_deref())
}

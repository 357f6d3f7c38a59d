//! Write Aegis durable workflows as ordinary sequential async Rust.
//!
//! A workflow is a WebAssembly component. The Aegis host calls its `run` export once per
//! *activation* (at the start, after each wait, callback or retry delay, and after a crash), and
//! every activation replays the workflow from the top. Durable calls whose outcome is already in
//! the journal return it at once; the first one without a recorded outcome does the real work.
//! So a workflow must make the same durable calls in the same order every time: keep clocks,
//! randomness and I/O inside steps, or use [`Ctx::now`] and [`Ctx::random`].
//!
//! # A tour
//!
//! - [`workflow!`] exports an `async fn(Ctx, Input) -> Result<Output, Error>`; input and output
//!   are JSON (serde).
//! - [`Ctx`] is the handle for durable calls: [`step`](Ctx::step) /
//!   [`step_with`](Ctx::step_with) (with a [`RetryPolicy`] and its [`Jitter`]),
//!   [`wait_for_condition`](Ctx::wait_for_condition) (with a [`WaitStrategy`] such as
//!   [`Polling`]), [`wait`](Ctx::wait),
//!   [`create_callback`](Ctx::create_callback) and [`wait_for_callback`](Ctx::wait_for_callback)
//!   (or [`wait_for_callback_with`](Ctx::wait_for_callback_with), its submitter retried),
//!   [`child`](Ctx::child), [`parallel`](Ctx::parallel) and [`map`](Ctx::map) (with a
//!   [`Completion`] rule, giving a [`BatchResult`]), [`invoke_agent`](Ctx::invoke_agent),
//!   [`invoke`](Ctx::invoke) (another workflow, as a child execution),
//!   [`now`](Ctx::now), [`random`](Ctx::random), [`log`](Ctx::log), and artifacts
//!   ([`put_artifact`](Ctx::put_artifact), [`get_artifact`](Ctx::get_artifact),
//!   [`presign`](Ctx::presign)).
//! - [`function_name`] and [`function_version`] say which workflow (and version) the execution
//!   runs as; [`execution_arn`] names the execution, and [`is_first_activation`] says whether this
//!   activation is its first.
//! - [`Plugin`]s watch the run through lifecycle hooks (invocation, operation and attempt start
//!   and end), registered with `workflow!(run, plugins = ...)`; see [`plugin`].
//! - [`Error`] is the single failure type: a dotted `error_type`, a `message`, optional `data`.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use aegis_sdk::{CallbackOptions, Completion, Ctx, Error, branch, workflow};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct In {
//!     topic: String,
//!     items: Vec<i64>,
//! }
//!
//! #[derive(Serialize)]
//! struct Out {
//!     fetched: String,
//!     doubled: Vec<i64>,
//!     approval: serde_json::Value,
//!     inner: i64,
//!     both: Vec<i64>,
//! }
//!
//! async fn run(ctx: Ctx, input: In) -> Result<Out, Error> {
//!     let topic = input.topic;
//!     let fetched: String = ctx.step("fetch", move |_attempt| Ok(format!("about {topic}"))).await?;
//!     ctx.info(&format!("fetched {fetched}"));
//!
//!     ctx.wait("nap", Duration::from_secs(5)).await?;
//!
//!     let log = ctx.clone();
//!     let approval: serde_json::Value = ctx
//!         .wait_for_callback(
//!             "approval",
//!             CallbackOptions::timeout(Duration::from_secs(3600)),
//!             move |callback_id| {
//!                 // Runs once, as a step: hand the id to whoever approves.
//!                 log.info(&format!("approve with callback {callback_id}"));
//!                 Ok(())
//!             },
//!         )
//!         .await?;
//!
//!     let inner = ctx.child("inner", |c| async move { c.step("x", |_| Ok(1)).await }).await?;
//!
//!     let both = ctx
//!         .parallel(
//!             "both",
//!             vec![
//!                 branch(|c| async move { c.step("left", |_| Ok(1)).await }),
//!                 branch(|c| async move { c.step("right", |_| Ok(2)).await }),
//!             ],
//!             Completion::all(),
//!         )
//!         .await?
//!         .into_values()?;
//!
//!     let doubled = ctx
//!         .map("double", input.items, |c, item: i64| async move {
//!             c.step("double", move |_| Ok(item * 2)).await
//!         }, Completion::all())
//!         .await?
//!         .into_values()?;
//!
//!     Ok(Out { fetched, doubled, approval, inner, both })
//! }
//!
//! workflow!(run);
//! # fn main() {}
//! ```
//!
//! # How it runs
//!
//! Nothing blocks. Durable calls are futures, and a tiny single-threaded executor inside the
//! guest polls the workflow until it either finishes or cannot progress (everything it waits for
//! is pending); then `run` returns *suspended* and the host drops the instance until something
//! happens. Parallel branches and map items are polled side by side, so one pending branch never
//! blocks the others. There are no guest threads.
//!
//! # Panics and traps
//!
//! A panic inside a workflow (or a step body) aborts the guest: the component traps, and the host
//! fails the activation with a trap error. Return an [`Error`] for failures the workflow means.
//!
//! # Low-level access
//!
//! [`raw`] holds the generated bindings of the WIT contract. Workflows should not need them; they
//! exist for test fixtures that must misbehave on purpose.

#![warn(missing_docs)]

mod agent;
mod artifacts;
mod batch;
mod callback;
mod condition;
mod context;
mod ctx;
mod error;
mod executor;
mod export;
mod host;
mod invoke;
mod parallel;
mod payload;
pub mod plugin;
mod retry;
mod serdes;
mod step;

pub use batch::{BatchConfig, BatchResult, Completion, CompletionReason, Nesting};
pub use callback::{Callback, CallbackOptions};
pub use condition::{Polling, WaitDecision, WaitStrategy};
pub use ctx::{Ctx, LogLevel};
pub use error::Error;
pub use invoke::InvokeOptions;
pub use parallel::{Branch, branch};
pub use plugin::{HookResult, Plugin};
pub use retry::{Jitter, RetryPolicy};
pub use serdes::{Serdes, serdes};
pub use step::{StepOptions, StepSemantics, step_resumed};

/// The name of the workflow this execution runs (its function name, in Lambda terms), or `None`
/// outside an Aegis host.
///
/// The host sets `AWS_LAMBDA_FUNCTION_NAME` in the guest's environment to the execution's
/// workflow name (and `AWS_LAMBDA_FUNCTION_VERSION` to its version number), as Lambda does for a
/// handler. The value is fixed for the execution, so reading it is replay-safe. One component
/// uploaded under several names can use it to decide what to do.
pub fn function_name() -> Option<String> {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok()
}

/// The version number of the workflow this execution runs, or `None` outside an Aegis host.
/// Read from `AWS_LAMBDA_FUNCTION_VERSION`; fixed for the execution, like [`function_name`].
pub fn function_version() -> Option<u32> {
    std::env::var("AWS_LAMBDA_FUNCTION_VERSION")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// The ARN of the execution this activation runs, or `None` outside an Aegis host.
///
/// The host sets `AEGIS_EXECUTION_ARN` to the ARN its Lambda surface shows for the execution
/// (`arn:aws:lambda:<region>:<account>:function:<workflow>:<version>/durable-execution/<name>/<id>`,
/// the region and account from its `[lambda]` section), as AWS hands one to each invocation of a
/// handler. Fixed for the execution, so reading it is replay-safe; plugins stamp it on what they
/// log so that a log search can find an execution's lines.
pub fn execution_arn() -> Option<String> {
    std::env::var("AEGIS_EXECUTION_ARN").ok()
}

/// Whether this activation is the execution's first (read from `AEGIS_FIRST_ACTIVATION`); false
/// outside an Aegis host.
///
/// The host says `true` when the execution's journal is still empty: every later activation
/// replays at least the operation the first one suspended on. Unlike the other variables this
/// one changes between activations, so a workflow must not choose its durable calls by it (a
/// replay would take another path); it is for instrumentation, such as
/// [`Plugin::on_invocation_start`].
pub fn is_first_activation() -> bool {
    std::env::var("AEGIS_FIRST_ACTIVATION").is_ok_and(|v| v == "true")
}

/// The bindings `wit-bindgen` generates for the `aegis:workflow` contract.
///
/// Calls made through these bypass the SDK's bookkeeping (the executor does not see them), so
/// workflows should use [`Ctx`]. [`workflow!`] exports through
/// `raw::__export_workflow_component!`.
#[allow(missing_docs, reason = "generated code")]
pub mod raw {
    wit_bindgen::generate!({
        path: "../../wit/aegis-workflow@0.1.0",
        world: "workflow-component",
        pub_export_macro: true,
        export_macro_name: "__export_workflow_component",
    });
}

/// Items the [`workflow!`] macro expands to. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::run_workflow;
}

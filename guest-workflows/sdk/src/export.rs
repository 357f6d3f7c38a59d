//! Exporting a workflow: the [`workflow!`](crate::workflow!) macro and the activation driver
//! behind it.
//!
//! Why a macro: the component must export `workflow.run` through the bindings that
//! `wit-bindgen` generated inside this crate. The macro hides that plumbing, so a workflow crate
//! only writes an async function and `workflow!(run);`. The driver does the rest of an
//! activation: decode the input, run the workflow on the executor, and turn the result into a
//! `run-outcome`.

use std::future::Future;

use serde::{Serialize, de::DeserializeOwned};

use crate::raw::exports::aegis::workflow::workflow::RunOutcome;
use crate::{Ctx, Error, executor, payload};

/// How one activation ended, before it is turned into the WIT `run-outcome`.
#[derive(Debug, PartialEq)]
enum Activation {
    Completed(String),
    Failed(Error),
    Suspended,
}

/// Runs one activation of `workflow` on the JSON `input`.
fn activate<I, O, F, Fut>(input: &str, workflow: F) -> Activation
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(Ctx, I) -> Fut,
    Fut: Future<Output = Result<O, Error>>,
{
    let input = match payload::decode(input) {
        Ok(input) => input,
        Err(error) => return Activation::Failed(error),
    };
    match executor::block_on(workflow(Ctx::root(), input)) {
        None => Activation::Suspended,
        Some(Ok(output)) => match payload::encode(&output) {
            Ok(output) => Activation::Completed(output),
            Err(error) => Activation::Failed(error),
        },
        Some(Err(error)) => Activation::Failed(error),
    }
}

/// The body of the exported `run`; called by [`workflow!`](crate::workflow!).
#[doc(hidden)]
pub fn run_workflow<I, O, F, Fut>(input: &str, workflow: F) -> RunOutcome
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(Ctx, I) -> Fut,
    Fut: Future<Output = Result<O, Error>>,
{
    match activate(input, workflow) {
        Activation::Completed(output) => RunOutcome::Completed(output),
        Activation::Failed(error) => RunOutcome::Failed(error.into()),
        Activation::Suspended => RunOutcome::Suspended,
    }
}

/// Exports an async workflow function as this component's `workflow.run`.
///
/// The function takes the root [`Ctx`](crate::Ctx) and the decoded input, and returns
/// `Result<Output, Error>`; input and output are (de)serialised as JSON with serde:
///
/// ```no_run
/// use aegis_sdk::{Ctx, Error, workflow};
///
/// async fn run(ctx: Ctx, name: String) -> Result<String, Error> {
///     ctx.step("greet", move |_| Ok(format!("hello {name}"))).await
/// }
///
/// workflow!(run);
/// # fn main() {}
/// ```
///
/// Input that does not decode fails the execution with `Aegis.PayloadDecode`; `Err(error)` fails
/// it with `error`; a workflow that cannot progress suspends until its next activation.
#[macro_export]
macro_rules! workflow {
    ($run:path) => {
        #[doc(hidden)]
        struct __AegisWorkflow;

        impl $crate::raw::exports::aegis::workflow::workflow::Guest for __AegisWorkflow {
            fn run(
                input: ::std::string::String,
            ) -> $crate::raw::exports::aegis::workflow::workflow::RunOutcome {
                $crate::__private::run_workflow(&input, $run)
            }
        }

        $crate::raw::__export_workflow_component!(__AegisWorkflow with_types_in $crate::raw);
    };
}

#[cfg(test)]
mod tests {
    use std::future::pending;

    use super::*;

    #[test]
    fn completes_with_the_encoded_output() {
        let outcome = activate(
            "\"s\"",
            |_ctx, s: String| async move { Ok(format!("{s}-a")) },
        );
        assert_eq!(outcome, Activation::Completed("\"s-a\"".to_owned()));
    }

    #[test]
    fn bad_input_fails_with_payload_decode() {
        let outcome = activate("{", |_ctx, n: u32| async move { Ok(n) });
        let Activation::Failed(error) = outcome else {
            panic!("expected a failure, got {outcome:?}");
        };
        assert!(error.is(Error::PAYLOAD_DECODE));
    }

    #[test]
    fn workflow_error_fails_the_activation() {
        let outcome = activate("1", |_ctx, _n: u32| async move {
            Err::<u32, _>(Error::new("Mine.Broken", "no"))
        });
        assert_eq!(outcome, Activation::Failed(Error::new("Mine.Broken", "no")));
    }

    #[test]
    fn a_workflow_that_cannot_progress_suspends() {
        let outcome = activate("null", |_ctx, ()| async move {
            pending::<()>().await;
            Ok(())
        });
        assert_eq!(outcome, Activation::Suspended);
    }
}

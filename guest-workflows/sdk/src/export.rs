//! Exporting a workflow: the [`workflow!`](crate::workflow!) macro and the activation driver
//! behind it.
//!
//! Why a macro: the component must export `workflow.run` through the bindings that
//! `wit-bindgen` generated inside this crate. The macro hides that plumbing, so a workflow crate
//! only writes an async function and `workflow!(run);`. The driver does the rest of an
//! activation: register the plugins and call their invocation hooks around the run, decode the
//! input, run the workflow on the executor, and turn the result into a `run-outcome`.

use std::future::Future;

use serde::{Serialize, de::DeserializeOwned};

use crate::plugin::{self, InvocationStatus, Plugin};
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

/// Runs one activation with `plugins` registered: their invocation hooks around it, and their
/// operation and attempt hooks inside it; a failed hook is handed to `report`.
fn activate_with<I, O, F, Fut>(
    input: &str,
    workflow: F,
    plugins: Vec<Box<dyn Plugin>>,
    report: impl Fn(&str, &dyn std::error::Error) + 'static,
) -> Activation
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(Ctx, I) -> Fut,
    Fut: Future<Output = Result<O, Error>>,
{
    let _registered = plugin::install(plugins, report);
    plugin::invocation_started();
    let activation = activate(input, workflow);
    match &activation {
        Activation::Completed(_) => plugin::invocation_ended(InvocationStatus::Succeeded, None),
        Activation::Failed(error) => {
            plugin::invocation_ended(InvocationStatus::Failed, Some(error));
        }
        Activation::Suspended => plugin::invocation_ended(InvocationStatus::Pending, None),
    }
    activation
}

/// The body of the exported `run`; called by [`workflow!`](crate::workflow!) with the plugins
/// it registers (none, unless it names some).
#[doc(hidden)]
pub fn run_workflow<I, O, F, Fut, P>(input: &str, workflow: F, plugins: P) -> RunOutcome
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(Ctx, I) -> Fut,
    Fut: Future<Output = Result<O, Error>>,
    P: IntoIterator<Item = Box<dyn Plugin>>,
{
    let plugins = plugins.into_iter().collect();
    match activate_with(input, workflow, plugins, plugin::log_failure) {
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
///
/// `workflow!(run, plugins = <expr>)` registers [`Plugin`](crate::Plugin)s: `<expr>` is evaluated
/// at the start of every activation and gives the plugins (any `IntoIterator` of
/// `Box<dyn Plugin>`), whose hooks are then called in that order (see [`plugin`](crate::plugin)):
///
/// ```no_run
/// use aegis_sdk::plugin::InvocationEndInfo;
/// use aegis_sdk::{Ctx, Error, HookResult, Plugin, workflow};
///
/// struct Timing;
///
/// impl Plugin for Timing {
///     fn on_invocation_end(&self, info: &InvocationEndInfo) -> HookResult {
///         println!("activation ended: {}", info.status);
///         Ok(())
///     }
/// }
///
/// fn plugins() -> Vec<Box<dyn Plugin>> {
///     vec![Box::new(Timing)]
/// }
///
/// async fn run(ctx: Ctx, name: String) -> Result<String, Error> {
///     ctx.step("greet", move |_| Ok(format!("hello {name}"))).await
/// }
///
/// workflow!(run, plugins = plugins());
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! workflow {
    ($run:path) => {
        $crate::workflow!(
            $run,
            plugins = ::std::vec::Vec::<::std::boxed::Box<dyn $crate::Plugin>>::new()
        );
    };
    ($run:path, plugins = $plugins:expr $(,)?) => {
        #[doc(hidden)]
        struct __AegisWorkflow;

        impl $crate::raw::exports::aegis::workflow::workflow::Guest for __AegisWorkflow {
            fn run(
                input: ::std::string::String,
            ) -> $crate::raw::exports::aegis::workflow::workflow::RunOutcome {
                $crate::__private::run_workflow(&input, $run, $plugins)
            }
        }

        $crate::raw::__export_workflow_component!(__AegisWorkflow with_types_in $crate::raw);
    };
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::future::pending;
    use std::rc::Rc;

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

    /// A plugin that notes the invocation hooks it gets.
    struct Invocations(Rc<RefCell<Vec<String>>>);

    impl Plugin for Invocations {
        fn on_invocation_start(&self, info: &plugin::InvocationInfo) -> crate::HookResult {
            let first = info.is_first_invocation;
            let arn = info.execution_arn.as_deref().unwrap_or("none");
            self.0
                .borrow_mut()
                .push(format!("start first={first} arn={arn}"));
            Ok(())
        }

        fn on_invocation_end(&self, info: &plugin::InvocationEndInfo) -> crate::HookResult {
            let error = info.error.as_ref().map_or("", |e| e.error_type.as_str());
            let line = format!("end {} {error}", info.status);
            self.0.borrow_mut().push(line.trim_end().to_owned());
            Err("hooks may fail".into())
        }
    }

    /// Runs `workflow` on `input` with an [`Invocations`] plugin; answers how the activation
    /// ended, the hooks noted and the failures reported.
    fn with_plugin<I, O, F, Fut>(input: &str, workflow: F) -> (Activation, Vec<String>, usize)
    where
        I: DeserializeOwned,
        O: Serialize,
        F: FnOnce(Ctx, I) -> Fut,
        Fut: Future<Output = Result<O, Error>>,
    {
        let noted = Rc::new(RefCell::new(Vec::new()));
        let failures = Rc::new(RefCell::new(0));
        let counted = failures.clone();
        let plugins: Vec<Box<dyn Plugin>> = vec![Box::new(Invocations(noted.clone()))];
        let activation = activate_with(input, workflow, plugins, move |_, _| {
            *counted.borrow_mut() += 1;
        });
        let noted = noted.borrow().clone();
        let failures = *failures.borrow();
        (activation, noted, failures)
    }

    #[test]
    fn invocation_hooks_see_each_ending_and_cannot_change_it() {
        let (outcome, noted, failures) = with_plugin("1", |_ctx, n: u32| async move { Ok(n) });
        assert_eq!(outcome, Activation::Completed("1".to_owned()));
        // Outside a host there is no ARN and no first activation to speak of.
        assert_eq!(noted, ["start first=false arn=none", "end SUCCEEDED"]);
        assert_eq!(
            failures, 1,
            "the end hook's error is reported, and only reported"
        );

        let (outcome, noted, _) = with_plugin("1", |_ctx, _n: u32| async move {
            Err::<u32, _>(Error::new("Mine.Broken", "no"))
        });
        assert_eq!(outcome, Activation::Failed(Error::new("Mine.Broken", "no")));
        assert_eq!(noted[1], "end FAILED Mine.Broken");

        let (outcome, noted, _) = with_plugin("{", |_ctx, n: u32| async move { Ok(n) });
        assert!(matches!(outcome, Activation::Failed(_)));
        assert_eq!(noted[1], format!("end FAILED {}", Error::PAYLOAD_DECODE));

        let (outcome, noted, _) = with_plugin("null", |_ctx, ()| async move {
            pending::<()>().await;
            Ok(())
        });
        assert_eq!(outcome, Activation::Suspended);
        assert_eq!(noted[1], "end PENDING");
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

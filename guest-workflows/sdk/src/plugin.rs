//! Plugins: lifecycle hooks that let instrumentation (tracing, metrics, log correlation) watch a
//! workflow run without touching its code, modelled on the AWS durable-execution SDKs' plugin
//! API.
//!
//! A [`Plugin`] is registered where the workflow is exported
//! (`workflow!(run, plugins = ...)`), and the SDK calls its hooks at fixed points:
//!
//! - [`on_invocation_start`](Plugin::on_invocation_start) before the workflow's code runs in an
//!   activation (an *invocation*, in Lambda terms), with the execution's ARN and whether this is
//!   the execution's first activation; [`on_invocation_end`](Plugin::on_invocation_end) once the
//!   activation's outcome is known: [`InvocationStatus::Succeeded`] or
//!   [`Failed`](InvocationStatus::Failed) when the execution ends with it,
//!   [`Pending`](InvocationStatus::Pending) when it suspends. An activation the host stops (a
//!   trap: a deadline, non-determinism, the guest exiting) never gets that far, so it ends without
//!   the hook.
//! - [`on_operation_start`](Plugin::on_operation_start) when an operation is started for real,
//!   and [`on_operation_end`](Plugin::on_operation_end) when it reaches its final status in this
//!   activation. An operation replayed from the journal calls neither: each fires once per
//!   operation over the whole execution, however often the workflow is replayed.
//! - [`on_attempt_start`](Plugin::on_attempt_start) and [`on_attempt_end`](Plugin::on_attempt_end)
//!   around each run of an operation's body (a step's closure, a wait-for-condition's check),
//!   with the attempt number and its outcome; a retried step has one pair per attempt.
//!
//! Operation and attempt hooks cover the operations whose body the SDK runs: steps (including
//! [`wait_for_callback`](crate::Ctx::wait_for_callback)'s submitter) and wait-for-condition
//! checks. Waits, callbacks, agent calls and child contexts are started by the host, and the
//! contract does not tell the guest whether one was started in this activation or replayed, so
//! they call no operation hooks.
//!
//! Hooks run synchronously, on the workflow's only thread, in the order the plugins were
//! registered. A hook that returns an error is ignored (the error is written to the execution's
//! log at WARN, as [`Ctx::log`](crate::Ctx::log) writes: not while the workflow replays): a
//! plugin observes, and nothing it does changes the execution's outcome or its history. A hook that panics aborts the guest like any other panic (see the crate's "Panics and
//! traps"), so hooks must not panic. Hooks must not make durable calls either: they would
//! shift the operation ids of the workflow's own calls.
//!
//! Each activation is a fresh instance of the component, so the plugins are built anew for each
//! one: state a plugin keeps (the ARN from `on_invocation_start`, say) lives for one activation.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::{Error, LogLevel};

/// What a hook returns: an error is reported and ignored.
pub type HookResult = Result<(), Box<dyn std::error::Error>>;

/// Where a failed hook is reported: its hook's name and its error.
type Report = dyn Fn(&str, &dyn std::error::Error);

/// Lifecycle hooks. Every method has a default that does nothing, so a plugin implements only
/// the hooks it needs. See the [module documentation](self) for when each is called.
pub trait Plugin {
    /// Before the workflow's code runs in this activation.
    ///
    /// # Errors
    ///
    /// Any; it is reported and ignored.
    fn on_invocation_start(&self, _info: &InvocationInfo) -> HookResult {
        Ok(())
    }

    /// After the activation's outcome is known, just before it is handed to the host.
    ///
    /// # Errors
    ///
    /// Any; it is reported and ignored.
    fn on_invocation_end(&self, _info: &InvocationEndInfo) -> HookResult {
        Ok(())
    }

    /// When an operation starts (not when it is replayed).
    ///
    /// # Errors
    ///
    /// Any; it is reported and ignored.
    fn on_operation_start(&self, _info: &OperationInfo) -> HookResult {
        Ok(())
    }

    /// When an operation reaches its final status in this activation.
    ///
    /// # Errors
    ///
    /// Any; it is reported and ignored.
    fn on_operation_end(&self, _info: &OperationInfo) -> HookResult {
        Ok(())
    }

    /// Before an operation's body runs.
    ///
    /// # Errors
    ///
    /// Any; it is reported and ignored.
    fn on_attempt_start(&self, _info: &AttemptInfo) -> HookResult {
        Ok(())
    }

    /// After an operation's body ran, before its outcome is reported to the host.
    ///
    /// # Errors
    ///
    /// Any; it is reported and ignored.
    fn on_attempt_end(&self, _info: &AttemptEndInfo) -> HookResult {
        Ok(())
    }
}

/// What [`Plugin::on_invocation_start`] is told.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvocationInfo {
    /// The execution's ARN ([`crate::execution_arn`]); `None` outside an Aegis host.
    pub execution_arn: Option<String>,
    /// Whether this is the execution's first activation ([`crate::is_first_activation`]).
    pub is_first_invocation: bool,
}

/// What [`Plugin::on_invocation_end`] is told.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct InvocationEndInfo {
    /// The execution's ARN, as in [`InvocationInfo`].
    pub execution_arn: Option<String>,
    /// How the activation ended.
    pub status: InvocationStatus,
    /// The error the execution fails with, when it does.
    pub error: Option<Error>,
}

/// How an activation ended, as [`Plugin::on_invocation_end`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvocationStatus {
    /// The workflow returned its result: the execution succeeds.
    Succeeded,
    /// The workflow failed: the execution fails.
    Failed,
    /// The workflow is waiting for something: the execution suspends until its next activation.
    Pending,
}

impl InvocationStatus {
    /// The AWS SDKs' token for the status: `SUCCEEDED`, `FAILED` or `PENDING`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Pending => "PENDING",
        }
    }
}

impl fmt::Display for InvocationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of operation a hook is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OperationKind {
    /// A step ([`Ctx::step`](crate::Ctx::step)).
    Step,
    /// A wait-for-condition ([`Ctx::wait_for_condition`](crate::Ctx::wait_for_condition)).
    WaitForCondition,
}

impl OperationKind {
    /// The operation's sub-type as the execution's history shows it: `Step` or
    /// `WaitForCondition`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Step => "Step",
            Self::WaitForCondition => "WaitForCondition",
        }
    }
}

/// An operation's status, as the operation hooks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationStatus {
    /// Started: what [`Plugin::on_operation_start`] is told.
    Started,
    /// Succeeded for good.
    Succeeded,
    /// Failed for good (retries, if any, exhausted).
    Failed,
}

impl OperationStatus {
    /// The AWS token for the status: `STARTED`, `SUCCEEDED` or `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "STARTED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }
}

impl fmt::Display for OperationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`Plugin::on_operation_start`] and [`Plugin::on_operation_end`] are told.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OperationInfo {
    /// The operation's id, as the execution's history shows it.
    pub id: String,
    /// The name the workflow gave the operation.
    pub name: String,
    /// Its kind.
    pub kind: OperationKind,
    /// The id of the context it runs in; `None` for the workflow's root context.
    pub parent_id: Option<String>,
    /// [`OperationStatus::Started`] at the start, its final status at the end.
    pub status: OperationStatus,
    /// At the end of an operation that failed, its error.
    pub error: Option<Error>,
}

/// What [`Plugin::on_attempt_start`] is told.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptInfo {
    /// The operation's id.
    pub id: String,
    /// The operation's name.
    pub name: String,
    /// The operation's kind.
    pub kind: OperationKind,
    /// The attempt number, 1 for the first.
    pub attempt: u32,
}

/// What [`Plugin::on_attempt_end`] is told.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AttemptEndInfo {
    /// The operation's id.
    pub id: String,
    /// The operation's name.
    pub name: String,
    /// The operation's kind.
    pub kind: OperationKind,
    /// The attempt number, 1 for the first.
    pub attempt: u32,
    /// Whether the body returned a value (encoded) or an error.
    pub outcome: AttemptOutcome,
    /// The body's error, when it failed.
    pub error: Option<Error>,
}

/// How one attempt of an operation's body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The body returned a value.
    Succeeded,
    /// The body returned an error (whether or not it is retried).
    Failed,
}

impl AttemptOutcome {
    /// The AWS token: `SUCCEEDED` or `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation a step or check runs for, as the SDK knows it when its body is about to run.
pub(crate) struct Running<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) kind: OperationKind,
    /// The context id (`""` for the root).
    pub(crate) ctx: &'a str,
    pub(crate) attempt: u32,
}

impl Running<'_> {
    fn operation(&self, status: OperationStatus, error: Option<Error>) -> OperationInfo {
        OperationInfo {
            id: self.id.to_owned(),
            name: self.name.to_owned(),
            kind: self.kind,
            parent_id: (!self.ctx.is_empty()).then(|| self.ctx.to_owned()),
            status,
            error,
        }
    }

    fn attempt_info(&self) -> AttemptInfo {
        AttemptInfo {
            id: self.id.to_owned(),
            name: self.name.to_owned(),
            kind: self.kind,
            attempt: self.attempt,
        }
    }
}

/// The plugins of the running activation, in registration order, and where a failed hook is
/// reported. A thread-local (the guest has one thread) so that steps deep inside the workflow
/// reach them without every `Ctx` carrying them.
#[derive(Clone)]
struct Registry {
    plugins: Rc<[Box<dyn Plugin>]>,
    report: Rc<Report>,
}

thread_local! {
    static REGISTRY: RefCell<Option<Registry>> = const { RefCell::new(None) };
}

/// Keeps plugins registered until dropped (the end of the activation).
pub(crate) struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        REGISTRY.with(|registry| *registry.borrow_mut() = None);
    }
}

/// Registers `plugins` for the activation, reporting a failed hook with `report` (its hook's
/// name and its error).
pub(crate) fn install(
    plugins: Vec<Box<dyn Plugin>>,
    report: impl Fn(&str, &dyn std::error::Error) + 'static,
) -> Installed {
    let registry = (!plugins.is_empty()).then(|| Registry {
        plugins: plugins.into(),
        report: Rc::new(report),
    });
    REGISTRY.with(|slot| *slot.borrow_mut() = registry);
    Installed(())
}

/// Reports a failed hook in the execution's log: the guest's one channel the host keeps.
pub(crate) fn log_failure(hook: &str, error: &dyn std::error::Error) {
    crate::host::log(
        "",
        LogLevel::Warn,
        &format!("plugin hook {hook} failed (ignored): {error}"),
    );
}

/// Whether any plugin is registered: callers skip building hook information otherwise.
pub(crate) fn registered() -> bool {
    REGISTRY.with(|registry| registry.borrow().is_some())
}

/// Calls `hook` on every plugin in order with the information `info` builds (once, and only if
/// there are plugins), reporting and ignoring errors.
fn dispatch<T>(name: &str, info: impl FnOnce() -> T, hook: impl Fn(&dyn Plugin, &T) -> HookResult) {
    // The registry is cloned out of the cell so that a hook reaching the SDK again finds it
    // free.
    let Some(registry) = REGISTRY.with(|registry| registry.borrow().clone()) else {
        return;
    };
    let info = info();
    for plugin in registry.plugins.iter() {
        if let Err(error) = hook(plugin.as_ref(), &info) {
            (registry.report)(name, error.as_ref());
        }
    }
}

pub(crate) fn invocation_started() {
    dispatch(
        "on_invocation_start",
        || InvocationInfo {
            execution_arn: crate::execution_arn(),
            is_first_invocation: crate::is_first_activation(),
        },
        |plugin, info| plugin.on_invocation_start(info),
    );
}

pub(crate) fn invocation_ended(status: InvocationStatus, error: Option<&Error>) {
    dispatch(
        "on_invocation_end",
        || InvocationEndInfo {
            execution_arn: crate::execution_arn(),
            status,
            error: error.cloned(),
        },
        |plugin, info| plugin.on_invocation_end(info),
    );
}

pub(crate) fn operation_started(running: &Running<'_>) {
    dispatch(
        "on_operation_start",
        || running.operation(OperationStatus::Started, None),
        |plugin, info| plugin.on_operation_start(info),
    );
}

/// The operation ended with `outcome` (its final, recorded one).
pub(crate) fn operation_ended(running: &Running<'_>, outcome: &Result<String, Error>) {
    dispatch(
        "on_operation_end",
        || match outcome {
            Ok(_) => running.operation(OperationStatus::Succeeded, None),
            Err(error) => running.operation(OperationStatus::Failed, Some(error.clone())),
        },
        |plugin, info| plugin.on_operation_end(info),
    );
}

pub(crate) fn attempt_started(running: &Running<'_>) {
    dispatch(
        "on_attempt_start",
        || running.attempt_info(),
        |plugin, info| plugin.on_attempt_start(info),
    );
}

/// The body of `running`'s attempt ended with `outcome`.
pub(crate) fn attempt_ended<T>(running: &Running<'_>, outcome: &Result<T, Error>) {
    dispatch(
        "on_attempt_end",
        || {
            let AttemptInfo {
                id,
                name,
                kind,
                attempt,
            } = running.attempt_info();
            AttemptEndInfo {
                id,
                name,
                kind,
                attempt,
                outcome: if outcome.is_ok() {
                    AttemptOutcome::Succeeded
                } else {
                    AttemptOutcome::Failed
                },
                error: outcome.as_ref().err().cloned(),
            }
        },
        |plugin, info| plugin.on_attempt_end(info),
    );
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// A plugin that writes `<tag>:<hook>` lines to a shared list, and fails every hook when
    /// `faulty`.
    struct Recorder {
        tag: &'static str,
        lines: Lines,
        faulty: bool,
    }

    impl Recorder {
        fn note(&self, line: String) -> HookResult {
            self.lines.borrow_mut().push(format!("{}:{line}", self.tag));
            if self.faulty {
                Err(format!("{} broke", self.tag).into())
            } else {
                Ok(())
            }
        }
    }

    impl Plugin for Recorder {
        fn on_invocation_end(&self, info: &InvocationEndInfo) -> HookResult {
            self.note(format!("end {}", info.status))
        }

        fn on_operation_start(&self, info: &OperationInfo) -> HookResult {
            let parent = info.parent_id.as_deref().unwrap_or("root");
            self.note(format!(
                "op-start {} {} {} in {parent}",
                info.id,
                info.kind.as_str(),
                info.status
            ))
        }

        fn on_operation_end(&self, info: &OperationInfo) -> HookResult {
            let error = info.error.as_ref().map_or("", |e| e.error_type.as_str());
            self.note(format!("op-end {} {} {error}", info.id, info.status))
        }

        fn on_attempt_end(&self, info: &AttemptEndInfo) -> HookResult {
            self.note(format!("attempt-end {} {}", info.attempt, info.outcome))
        }
    }

    fn running(ctx: &str) -> Running<'_> {
        Running {
            id: "op-1",
            name: "greet",
            kind: OperationKind::Step,
            ctx,
            attempt: 2,
        }
    }

    /// Lines shared between the test and what it registers.
    type Lines = Rc<RefCell<Vec<String>>>;

    /// Registers recorders tagged `tags` (faulty where asked), returning the lines they write
    /// and the failures reported.
    fn install_recorders(tags: &[(&'static str, bool)]) -> (Installed, Lines, Lines) {
        let lines = Lines::default();
        let failures = Lines::default();
        let plugins = tags
            .iter()
            .map(|&(tag, faulty)| {
                Box::new(Recorder {
                    tag,
                    lines: lines.clone(),
                    faulty,
                }) as Box<dyn Plugin>
            })
            .collect();
        let reported = failures.clone();
        let installed = install(plugins, move |hook, error| {
            reported.borrow_mut().push(format!("{hook}: {error}"));
        });
        (installed, lines, failures)
    }

    #[test]
    fn hooks_run_in_registration_order_with_what_happened() {
        let (_installed, lines, failures) = install_recorders(&[("a", false), ("b", false)]);
        let step = running("ctx-1");
        operation_started(&step);
        attempt_ended(&step, &Err::<(), _>(Error::new("Mine.Broken", "no")));
        operation_ended(&step, &Err(Error::new("Mine.Broken", "no")));
        invocation_ended(InvocationStatus::Failed, None);
        assert_eq!(
            *lines.borrow(),
            [
                "a:op-start op-1 Step STARTED in ctx-1",
                "b:op-start op-1 Step STARTED in ctx-1",
                "a:attempt-end 2 FAILED",
                "b:attempt-end 2 FAILED",
                "a:op-end op-1 FAILED Mine.Broken",
                "b:op-end op-1 FAILED Mine.Broken",
                "a:end FAILED",
                "b:end FAILED",
            ]
        );
        assert!(failures.borrow().is_empty());
    }

    #[test]
    fn a_failing_hook_is_reported_and_the_next_plugin_still_runs() {
        let (_installed, lines, failures) = install_recorders(&[("bad", true), ("good", false)]);
        let step = running("");
        operation_started(&step);
        operation_ended(&step, &Ok("\"hi\"".to_owned()));
        assert_eq!(
            *lines.borrow(),
            [
                "bad:op-start op-1 Step STARTED in root",
                "good:op-start op-1 Step STARTED in root",
                "bad:op-end op-1 SUCCEEDED ",
                "good:op-end op-1 SUCCEEDED ",
            ]
        );
        assert_eq!(
            *failures.borrow(),
            [
                "on_operation_start: bad broke",
                "on_operation_end: bad broke"
            ]
        );
    }

    #[test]
    fn without_plugins_nothing_is_built_and_dropping_the_guard_unregisters() {
        {
            let (_installed, lines, _) = install_recorders(&[("a", false)]);
            assert!(registered());
            invocation_ended(InvocationStatus::Pending, None);
            assert_eq!(*lines.borrow(), ["a:end PENDING"]);
        }
        assert!(!registered());
        dispatch(
            "on_attempt_start",
            || -> AttemptInfo { panic!("no plugin: no information is built") },
            |plugin, info| plugin.on_attempt_start(info),
        );
        let _none = install(Vec::new(), |_, _| panic!("nothing to report"));
        assert!(!registered());
    }

    #[test]
    fn tokens_are_the_aws_ones() {
        let statuses = [
            InvocationStatus::Succeeded,
            InvocationStatus::Failed,
            InvocationStatus::Pending,
        ];
        assert_eq!(
            statuses.map(InvocationStatus::as_str),
            ["SUCCEEDED", "FAILED", "PENDING"]
        );
        assert_eq!(OperationStatus::Started.to_string(), "STARTED");
        assert_eq!(AttemptOutcome::Failed.to_string(), "FAILED");
        assert_eq!(OperationKind::WaitForCondition.as_str(), "WaitForCondition");
    }
}

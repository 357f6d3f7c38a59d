//! Steps: run a piece of ordinary code once and checkpoint its result.
//!
//! A step body is a synchronous closure. On the first activation that reaches the step, the host
//! answers `step-begin` with "run", the body runs inside the guest, and the SDK reports its outcome
//! with `step-end`. Every later activation gets the recorded outcome back from `step-begin`
//! without running the body. The step's value is always decoded from what was recorded, so the
//! workflow sees the same value on the first run and on every replay.
//!
//! A failed body is retried according to the step's [`RetryPolicy`]: the host schedules the next
//! attempt, the step stays pending, and the execution suspends until the attempt is due.
//!
//! Plugins ([`crate::plugin`]) see the step start (with its first attempt), each attempt's body
//! start and end, and the step's end once the host records its final outcome; a step answered
//! from the journal calls no hook.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use serde::{Serialize, de::DeserializeOwned};

use crate::executor::ask_once;
use crate::host::{self, Recorded, StepBegin};
use crate::plugin::{self, OperationKind};
use crate::{Ctx, Error, RetryPolicy, Serdes, payload};

/// What a step promises about running its body when the host crashes mid-step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StepSemantics {
    /// An attempt interrupted by a crash runs again. The default.
    #[default]
    AtLeastOnce,
    /// An attempt interrupted by a crash is not run again: it fails (or is retried, if the policy
    /// allows) with `Step.Interrupted`. For bodies with effects that must not repeat.
    AtMostOnce,
}

/// Options for [`Ctx::step_with`].
#[derive(Clone, Default)]
pub struct StepOptions {
    /// How failures are retried; `None` means no retry: the first failure is final.
    pub retry: Option<RetryPolicy>,
    /// What happens to an attempt interrupted by a crash.
    pub semantics: StepSemantics,
    /// The text the step's result is recorded as; `None` records it as JSON.
    pub serdes: Option<Rc<dyn Serdes>>,
}

impl std::fmt::Debug for StepOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepOptions")
            .field("retry", &self.retry)
            .field("semantics", &self.semantics)
            .field("serdes", &self.serdes.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// Equal when their retries and semantics are, and they use the same serdes (or none).
impl PartialEq for StepOptions {
    fn eq(&self, other: &Self) -> bool {
        let same_serdes = match (&self.serdes, &other.serdes) {
            (None, None) => true,
            (Some(a), Some(b)) => Rc::ptr_eq(a, b),
            _ => false,
        };
        self.retry == other.retry && self.semantics == other.semantics && same_serdes
    }
}

impl StepOptions {
    /// Options with this retry policy and at-least-once semantics.
    pub fn retry(policy: RetryPolicy) -> Self {
        Self {
            retry: Some(policy),
            ..Self::default()
        }
    }

    /// The same options with the step's result recorded as `serdes` renders it (AWS's step
    /// serdes) instead of as JSON, and read back through it on replay.
    #[must_use]
    pub fn serdes(mut self, serdes: Rc<dyn Serdes>) -> Self {
        self.serdes = Some(serdes);
        self
    }

    /// The same options with at-most-once semantics.
    #[must_use]
    pub fn at_most_once(mut self) -> Self {
        self.semantics = StepSemantics::AtMostOnce;
        self
    }
}

impl Ctx {
    /// Runs `body` as a durable step named `name`, with the default options.
    ///
    /// The body receives the attempt number (1 for the first) and runs at most once per
    /// activation; once its result is recorded it never runs again.
    ///
    /// # Errors
    ///
    /// Resolves to the body's error when the step fails for good (with retries, the last
    /// attempt's error), to [`Error::PAYLOAD_ENCODE`] if the body's value cannot be encoded, and
    /// to [`Error::PAYLOAD_DECODE`] if the recorded value does not decode into `T`.
    pub fn step<T, F>(
        &self,
        name: &str,
        body: F,
    ) -> impl Future<Output = Result<T, Error>> + use<T, F>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(u32) -> Result<T, Error>,
    {
        self.step_with(name, StepOptions::default(), body)
    }

    /// Runs `body` as a durable step named `name`, with a retry policy and semantics.
    ///
    /// # Errors
    ///
    /// As for [`step`](Self::step).
    pub fn step_with<T, F>(
        &self,
        name: &str,
        options: StepOptions,
        body: F,
    ) -> impl Future<Output = Result<T, Error>> + use<T, F>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(u32) -> Result<T, Error>,
    {
        let (ctx, name) = (self.clone(), name.to_owned());
        async move {
            let recorded = ask_once(|| run_step(ctx.id(), &name, &options, body)).await?;
            payload::decode_with(&recorded, options.serdes.as_deref())
        }
    }
}

/// One activation's worth of a step: begin, maybe run the body, report. `None` means pending
/// (a retry is scheduled, or is not due yet).
/// The error an interrupted at-most-once step's attempt fails with (recorded by the host).
const INTERRUPTED: &str = "Step.Interrupted";

fn run_step<T, F>(ctx: &str, name: &str, options: &StepOptions, body: F) -> Option<Recorded>
where
    T: Serialize,
    F: FnOnce(u32) -> Result<T, Error>,
{
    // An at-most-once step found interrupted fails that attempt with `Step.Interrupted`, which
    // the policy retries unless its predicate refuses that error.
    let interrupted = Error::new(
        INTERRUPTED,
        format!("step {name:?} was interrupted and is at-most-once"),
    );
    let interrupted_retry = options
        .retry
        .as_ref()
        .filter(|policy| policy.admits(&interrupted));
    match host::step_begin(ctx, name, options.semantics, interrupted_retry) {
        StepBegin::Done(recorded) => Some(recorded),
        StepBegin::Pending => None,
        StepBegin::Run {
            operation_id,
            attempt,
        } => {
            let running = plugin::Running {
                id: &operation_id,
                name,
                kind: OperationKind::Step,
                ctx,
                attempt,
            };
            if starts_now(&running) {
                plugin::operation_started(&running);
            }
            plugin::attempt_started(&running);
            let result = {
                let _running = RunningStep::enter(&operation_id);
                body(attempt)
            };
            let outcome =
                result.and_then(|value| payload::encode_with(&value, options.serdes.as_deref()));
            plugin::attempt_ended(&running, &outcome);
            // A failure the policy's predicate refuses is final: the host gets no policy.
            let policy = options
                .retry
                .as_ref()
                .filter(|policy| outcome.as_ref().err().is_none_or(|e| policy.admits(e)));
            let verdict = host::step_end(&operation_id, outcome, policy);
            if let Some(recorded) = &verdict {
                plugin::operation_ended(&running, recorded);
            }
            verdict
        }
    }
}

/// Whether the operation of `running`, about to run its body, starts in this activation: its
/// first attempt, unless an activation that crashed began that attempt (and told the plugins).
/// Asks the host only when plugins are registered.
pub(crate) fn starts_now(running: &plugin::Running<'_>) -> bool {
    running.attempt == 1 && plugin::registered() && !host::step_resumed(running.id)
}

thread_local! {
    /// The operation id of the step whose body is running, for [`step_resumed`].
    static RUNNING_STEP: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Marks a step's body (or a wait-for-condition's check) as running until dropped.
pub(crate) struct RunningStep;

impl RunningStep {
    pub(crate) fn enter(operation_id: &str) -> Self {
        RUNNING_STEP.with(|running| *running.borrow_mut() = Some(operation_id.to_owned()));
        Self
    }
}

impl Drop for RunningStep {
    fn drop(&mut self) {
        RUNNING_STEP.with(|running| *running.borrow_mut() = None);
    }
}

/// Inside a step's body: whether this attempt is running again because the activation that
/// began it ended before the step did (the guest exited, which the host records as
/// `Runtime.ExitError`, or its host was lost). An at-least-once step then runs again as the same
/// attempt, and its body may find what its first run already did. The same holds inside a
/// wait-for-condition's check. False outside a step's body or a check.
pub fn step_resumed() -> bool {
    RUNNING_STEP.with(|running| running.borrow().as_deref().is_some_and(host::step_resumed))
}

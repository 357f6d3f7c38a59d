//! One activation: instantiate the guest, call `run`, and say how it ended.
//!
//! The guest gets a WASI context with almost nothing in it: no preopened folders, no sockets, a
//! stdout kept as the execution's log lines (`host/stdout.rs`), a clock frozen at the epoch, a
//! random source seeded from the execution id, and an environment of a few variables:
//! `AWS_LAMBDA_FUNCTION_NAME` (the execution's workflow) and `AWS_LAMBDA_FUNCTION_VERSION` (its
//! version number), as Lambda sets them for a handler, both fixed per execution;
//! `AEGIS_EXECUTION_ARN` (the execution's ARN, when the host names one: what an AWS SDK
//! handler receives with each invocation), fixed too; and `AEGIS_FIRST_ACTIVATION` (`true` or
//! `false`), which differs between activations and is for instrumentation (the SDK's plugin
//! hooks), never for choosing durable calls.
//! Real time and randomness reach it only through the recorded `now` and `random` imports, so a
//! replay sees exactly what the first run saw.

use super::host::{Activation, Failure, HostState, MAX_PAYLOAD, Stdout, check_json, checked_error};
use super::limits::{Exceeded, Limits, Meter};
use super::trap::{Fault, Trap, TrapKind};
use super::{WorkflowComponentPre, exports::aegis::workflow::workflow::RunOutcome};
use aegis_core::journal::ErrorRecord;
use rand::SeedableRng;
use std::time::Duration;
use wasmtime::UpdateDeadline;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxBuilder};

/// How an activation ended.
#[derive(Debug, PartialEq)]
pub enum Ending {
    Completed(String),
    /// The execution fails; the [`Fault`] says whether the host stopped the guest or the guest
    /// failed by itself.
    Failed(Fault),
    Suspended,
    /// The guest's process exited in the middle of the activation (WASI `exit`, which is what
    /// `std::process::exit` is): a Lambda runtime crash, recorded as AWS records one
    /// ([`TrapKind::RuntimeExit`], `Runtime.ExitError`). The execution does not end: what the
    /// guest did before the exit is kept, and the host runs the activation again, a bounded
    /// number of times in a row.
    Crashed(Trap),
    /// Nothing may be written: the execution ended elsewhere, or storage failed and the
    /// activation will be tried again.
    Abandoned {
        retry: bool,
        reason: String,
    },
}

/// A wall clock that never moves: guests must use the recorded `now` import. (The monotonic
/// clock is frozen too, in `engine::wasi`, which also refuses to let a guest wait on it.)
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// Most random bytes one WASI call may ask for (wasmtime's default is 64 MiB).
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// Bytes of guest stderr kept to explain a trap.
const STDERR_CAPTURE: usize = 8 * 1024;

/// The variable holding the workflow (function) name a guest runs as.
pub const FUNCTION_NAME_VAR: &str = "AWS_LAMBDA_FUNCTION_NAME";
/// The variable holding the workflow version a guest runs as.
pub const FUNCTION_VERSION_VAR: &str = "AWS_LAMBDA_FUNCTION_VERSION";
/// The variable holding the execution's ARN (set when the host gave the activation one).
pub const EXECUTION_ARN_VAR: &str = "AEGIS_EXECUTION_ARN";
/// The variable saying whether this is the execution's first activation: `true` or `false`.
pub const FIRST_ACTIVATION_VAR: &str = "AEGIS_FIRST_ACTIVATION";

/// What the guest's environment says about its execution and this activation.
struct GuestEnv<'a> {
    workflow: &'a str,
    version: u32,
    execution_arn: Option<&'a str>,
    first: bool,
}

impl<'a> GuestEnv<'a> {
    /// The environment of `activation`. It is the execution's first activation when its journal
    /// holds no operation yet: every activation after the first replays at least the operation
    /// the first one suspended on (a wait, a retry, a callback) or crashed in. (A guest that
    /// exits before its first durable call leaves nothing behind, so its rerun is first again.)
    fn of(activation: &'a Activation) -> Self {
        Self {
            workflow: &activation.execution.workflow,
            version: activation.execution.version,
            execution_arn: activation.execution_arn.as_deref(),
            first: activation.cursor.is_empty(),
        }
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (FUNCTION_NAME_VAR, self.workflow.to_owned()),
            (FUNCTION_VERSION_VAR, self.version.to_string()),
        ];
        if let Some(arn) = self.execution_arn {
            vars.push((EXECUTION_ARN_VAR, arn.to_owned()));
        }
        vars.push((FIRST_ACTIVATION_VAR, self.first.to_string()));
        vars
    }
}

fn sandbox(seed: u64, env: &GuestEnv<'_>, stdout: Stdout, stderr: MemoryOutputPipe) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .envs(&env.vars())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenClock)
        .secure_random(rand::rngs::StdRng::seed_from_u64(seed))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(seed.rotate_left(17)))
        .insecure_random_seed(u128::from(seed))
        // The host builds the bytes before copying them into the guest: bound that buffer.
        .max_random_size(MAX_RANDOM_BYTES)
        .stdout(stdout)
        .stderr(stderr);
    builder.build()
}

fn seed_of(execution: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(execution.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Runs the guest once. Returns how it ended and the activation state (its pending writes,
/// committed timers and agent dispatches).
pub fn run(
    pre: &WorkflowComponentPre<HostState>,
    activation: Activation,
    limits: &Limits,
) -> (Ending, Activation) {
    let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
    let seed = seed_of(activation.execution.id.as_str());
    let input = activation.execution.input.clone();
    let wasi = sandbox(
        seed,
        &GuestEnv::of(&activation),
        activation.stdout(),
        stderr.clone(),
    );
    let state = HostState::new(activation, Meter::new(limits), wasi);
    let mut store = wasmtime::Store::new(pre.engine(), state);
    store.limiter(|s| &mut s.meter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let state = ctx.data_mut();
        let in_host = state.activation.io_time;
        Ok(if state.meter.over_deadline(in_host) {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Continue(1)
        })
    });

    let bindings = match pre.instantiate(&mut store) {
        Ok(bindings) => bindings,
        // Every slot of the instance pool is taken: the host is busy, not the guest wrong.
        Err(e)
            if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                .is_some() =>
        {
            let HostState { activation, .. } = store.into_data();
            let reason = format!("the instance pool is full: {e}");
            return (
                Ending::Abandoned {
                    retry: true,
                    reason,
                },
                activation,
            );
        }
        Err(e) => {
            let HostState {
                mut activation,
                meter,
                ..
            } = store.into_data();
            activation.end_stdout();
            let ending = classify(Err(e), activation.failure.as_ref(), &meter, &stderr);
            return (ending, activation);
        }
    };
    let result = bindings
        .aegis_workflow_workflow()
        .call_run(&mut store, &input);
    let HostState {
        mut activation,
        meter,
        ..
    } = store.into_data();
    activation.end_stdout();
    let ending = classify(result, activation.failure.as_ref(), &meter, &stderr);
    (ending, activation)
}

/// How the guest's run ended, given the failure the host recorded on the way (if any), the
/// meter (a deadline or the memory cap it stopped the guest at) and the guest's stderr.
fn classify(
    result: wasmtime::Result<RunOutcome>,
    failure: Option<&Failure>,
    meter: &Meter,
    stderr: &MemoryOutputPipe,
) -> Ending {
    let trap =
        |kind: TrapKind, message: String| Ending::Failed(Fault::Host(Trap::new(kind, message)));
    match (failure, result) {
        (Some(Failure::Superseded(reason)), _) => Ending::Abandoned {
            retry: false,
            reason: reason.clone(),
        },
        (Some(Failure::Store(reason)), _) => Ending::Abandoned {
            retry: true,
            reason: reason.clone(),
        },
        (Some(Failure::NonDeterminism(m)), _) => trap(TrapKind::NonDeterminism, m.clone()),
        (Some(Failure::InvalidCall(m)), _) => trap(TrapKind::InvalidCall, m.clone()),
        (Some(Failure::Blocking(m)), _) => trap(TrapKind::BlockingCall, m.clone()),
        (Some(Failure::LimitExceeded(m)), _) => trap(TrapKind::ActivationLimitExceeded, m.clone()),
        (Some(Failure::InvalidPayload(m)), _) => trap(TrapKind::InvalidPayload, m.clone()),
        (None, Ok(RunOutcome::Completed(payload))) if payload.len() > MAX_PAYLOAD => {
            Ending::Failed(Fault::Guest(ErrorRecord::new(
                "Execution.ResultTooLarge",
                format!(
                    "the workflow returned {} bytes; the limit is {MAX_PAYLOAD}: return an artifact reference",
                    payload.len()
                ),
            )))
        }
        (None, Ok(RunOutcome::Completed(payload))) => {
            match check_json("the workflow's result", &payload) {
                Ok(()) => Ending::Completed(payload),
                Err(failure) => trap(TrapKind::InvalidPayload, failure.message().to_string()),
            }
        }
        (None, Ok(RunOutcome::Failed(info))) => match checked_error(info) {
            Ok(error) => Ending::Failed(Fault::Guest(error)),
            Err(Failure::InvalidPayload(m)) => trap(TrapKind::InvalidPayload, m),
            Err(failure) => trap(TrapKind::InvalidCall, failure.message().to_string()),
        },
        (None, Ok(RunOutcome::Suspended)) => Ending::Suspended,
        (None, Err(error)) => match meter.exceeded {
            Some(Exceeded::Cpu) => trap(
                TrapKind::CpuDeadlineExceeded,
                format!(
                    "the guest used more than {} ms of CPU in one activation and was stopped",
                    meter.cpu_deadline.as_millis()
                ),
            ),
            Some(Exceeded::Wall) => trap(
                TrapKind::WallDeadlineExceeded,
                format!(
                    "the activation took more than {} ms of wall-clock time (not counting the host's own work) and was stopped",
                    meter.wall_deadline.as_millis()
                ),
            ),
            Some(Exceeded::Memory) => trap(
                TrapKind::MemoryLimitExceeded,
                format!(
                    "the guest tried to grow its memory past the cap of {} MiB and was stopped",
                    meter.memory_bytes >> 20
                ),
            ),
            None if error.downcast_ref::<wasmtime_wasi::I32Exit>().is_some() => {
                let status = error
                    .downcast_ref::<wasmtime_wasi::I32Exit>()
                    .map_or(0, |exit| exit.0);
                Ending::Crashed(Trap::new(
                    TrapKind::RuntimeExit,
                    format!("Runtime exited with error: exit status {status}"),
                ))
            }
            None => {
                let output = String::from_utf8_lossy(&stderr.contents())
                    .trim()
                    .to_string();
                let mut message = format!("the guest trapped: {error:?}");
                if !output.is_empty() {
                    message.push_str("\nguest stderr:\n");
                    message.push_str(&output);
                }
                trap(TrapKind::GuestTrap, message)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aegis::workflow::types::ErrorInfo;

    fn meter() -> Meter {
        Meter::new(&Limits::default())
    }

    fn failed(error_type: &str) -> wasmtime::Result<RunOutcome> {
        Ok(RunOutcome::Failed(ErrorInfo {
            error_type: error_type.into(),
            error_message: "it failed".into(),
            error_data: None,
        }))
    }

    #[test]
    fn a_failure_the_guest_returns_is_the_guests_even_under_an_aegis_type() {
        let stderr = MemoryOutputPipe::new(64);
        for error_type in ["Aegis.PayloadDecode", "Order.Rejected"] {
            let ending = classify(failed(error_type), None, &meter(), &stderr);
            let Ending::Failed(fault) = ending else {
                panic!("{error_type}: {ending:?}");
            };
            assert!(!fault.is_trap(), "{error_type}: {fault:?}");
            assert_eq!(fault.into_record().error_type, error_type);
        }
    }

    #[test]
    fn what_the_host_recorded_or_caught_is_a_trap() {
        let stderr = MemoryOutputPipe::new(64);
        let diverged = Failure::NonDeterminism("step 2 is a wait in the journal".into());
        let ending = classify(failed("Order.Rejected"), Some(&diverged), &meter(), &stderr);
        assert_eq!(
            ending,
            Ending::Failed(Fault::Host(Trap::new(
                TrapKind::NonDeterminism,
                "step 2 is a wait in the journal"
            )))
        );
        let not_json = Ok(RunOutcome::Completed("{".into()));
        let Ending::Failed(Fault::Host(trap)) = classify(not_json, None, &meter(), &stderr) else {
            panic!("a result that is not JSON is the host's refusal");
        };
        assert_eq!(trap.kind, TrapKind::InvalidPayload);
        let Ending::Failed(Fault::Host(trap)) = classify(
            Err(wasmtime::Error::msg("unreachable")),
            None,
            &meter(),
            &stderr,
        ) else {
            panic!("a wasm trap is a trap");
        };
        assert_eq!(trap.kind, TrapKind::GuestTrap);
        let lost = Failure::Store("disk full".into());
        assert!(matches!(
            classify(failed("Order.Rejected"), Some(&lost), &meter(), &stderr),
            Ending::Abandoned { retry: true, .. }
        ));
    }

    /// An activation of a fresh execution record over `journal`.
    fn activation_over(journal: Vec<aegis_core::journal::Operation>) -> Activation {
        use crate::host::fake::{NoArtifacts, RecordingJournal, running_execution};
        let record = running_execution("greet", 3);
        let store = std::sync::Arc::new(RecordingJournal::default());
        Activation::new(record, journal, store, std::sync::Arc::new(NoArtifacts))
    }

    #[test]
    fn the_guest_learns_its_arn_and_whether_the_activation_is_the_first() {
        let first = activation_over(vec![]).with_execution_arn("arn:x/ex_1".into());
        assert_eq!(
            GuestEnv::of(&first).vars(),
            [
                (FUNCTION_NAME_VAR, "greet".to_owned()),
                (FUNCTION_VERSION_VAR, "3".to_owned()),
                (EXECUTION_ARN_VAR, "arn:x/ex_1".to_owned()),
                (FIRST_ACTIVATION_VAR, "true".to_owned()),
            ]
        );
        // A later activation replays what an earlier one recorded (here the wait it suspended
        // on); without an ARN from the host, the variable is not set at all.
        let wait = aegis_core::journal::Operation::new(
            "op_1".into(),
            None,
            "nap".into(),
            aegis_core::journal::OperationType::Wait,
            aegis_core::journal::SubType::Wait,
            0,
        );
        let later = activation_over(vec![wait]);
        assert_eq!(
            GuestEnv::of(&later).vars(),
            [
                (FUNCTION_NAME_VAR, "greet".to_owned()),
                (FUNCTION_VERSION_VAR, "3".to_owned()),
                (FIRST_ACTIVATION_VAR, "false".to_owned()),
            ]
        );
    }

    #[test]
    fn an_exit_is_a_crash_recorded_as_lambda_records_one() {
        let stderr = MemoryOutputPipe::new(64);
        let exited = Err(wasmtime::Error::new(wasmtime_wasi::I32Exit(3)));
        assert_eq!(
            classify(exited, None, &meter(), &stderr),
            Ending::Crashed(Trap::new(
                TrapKind::RuntimeExit,
                "Runtime exited with error: exit status 3"
            ))
        );
        // What the host caught on the way wins over the exit that followed it.
        let diverged = Failure::NonDeterminism("step 2 is a wait in the journal".into());
        let exited = Err(wasmtime::Error::new(wasmtime_wasi::I32Exit(1)));
        assert!(matches!(
            classify(exited, Some(&diverged), &meter(), &stderr),
            Ending::Failed(Fault::Host(_))
        ));
    }
}

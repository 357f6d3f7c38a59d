//! One activation: instantiate the guest, call `run`, and say how it ended.
//!
//! The guest gets a WASI context with nothing in it: no preopened folders, no sockets, no
//! environment, a clock frozen at the epoch and a random source seeded from the execution id.
//! Real time and randomness reach it only through the recorded `now` and `random` imports, so a
//! replay sees exactly what the first run saw.

use super::host::{Activation, Failure, HostState, MAX_PAYLOAD, check_json, checked_error};
use super::limits::{Exceeded, Limits, Meter};
use super::{WorkflowComponentPre, exports::aegis::workflow::workflow::RunOutcome};
use crate::journal::ErrorRecord;
use rand::SeedableRng;
use std::time::Duration;
use wasmtime::UpdateDeadline;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxBuilder};

/// How an activation ended.
#[derive(Debug, PartialEq)]
pub enum Ending {
    Completed(String),
    Failed(ErrorRecord),
    Suspended,
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

fn sandbox(seed: u64, stderr: MemoryOutputPipe) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenClock)
        .secure_random(rand::rngs::StdRng::seed_from_u64(seed))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(seed.rotate_left(17)))
        .insecure_random_seed(u128::from(seed))
        // The host builds the bytes before copying them into the guest: bound that buffer.
        .max_random_size(MAX_RANDOM_BYTES)
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
    let state = HostState::new(
        activation,
        Meter::new(limits),
        sandbox(seed, stderr.clone()),
    );
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
                activation, meter, ..
            } = store.into_data();
            return (classify(Err(e), &activation, &meter, &stderr), activation);
        }
    };
    let result = bindings
        .aegis_workflow_workflow()
        .call_run(&mut store, &input);
    let HostState {
        activation, meter, ..
    } = store.into_data();
    let ending = classify(result, &activation, &meter, &stderr);
    (ending, activation)
}

fn classify(
    result: wasmtime::Result<RunOutcome>,
    activation: &Activation,
    meter: &Meter,
    stderr: &MemoryOutputPipe,
) -> Ending {
    match (&activation.failure, result) {
        (Some(Failure::Superseded(reason)), _) => Ending::Abandoned {
            retry: false,
            reason: reason.clone(),
        },
        (Some(Failure::Store(reason)), _) => Ending::Abandoned {
            retry: true,
            reason: reason.clone(),
        },
        (Some(Failure::NonDeterminism(m)), _) => {
            Ending::Failed(ErrorRecord::new("Aegis.NonDeterminism", m.clone()))
        }
        (Some(Failure::InvalidCall(m)), _) => {
            Ending::Failed(ErrorRecord::new("Aegis.InvalidCall", m.clone()))
        }
        (Some(Failure::Blocking(m)), _) => {
            Ending::Failed(ErrorRecord::new("Aegis.BlockingCall", m.clone()))
        }
        (Some(Failure::LimitExceeded(m)), _) => {
            Ending::Failed(ErrorRecord::new("Aegis.ActivationLimitExceeded", m.clone()))
        }
        (Some(Failure::InvalidPayload(m)), _) => {
            Ending::Failed(ErrorRecord::new("Aegis.InvalidPayload", m.clone()))
        }
        (None, Ok(RunOutcome::Completed(payload))) if payload.len() > MAX_PAYLOAD => {
            Ending::Failed(ErrorRecord::new(
                "Execution.ResultTooLarge",
                format!(
                    "the workflow returned {} bytes; the limit is {MAX_PAYLOAD}: return an artifact reference",
                    payload.len()
                ),
            ))
        }
        (None, Ok(RunOutcome::Completed(payload))) => {
            match check_json("the workflow's result", &payload) {
                Ok(()) => Ending::Completed(payload),
                Err(failure) => {
                    Ending::Failed(ErrorRecord::new("Aegis.InvalidPayload", failure.message()))
                }
            }
        }
        (None, Ok(RunOutcome::Failed(info))) => match checked_error(info) {
            Ok(error) => Ending::Failed(error),
            Err(Failure::InvalidPayload(m)) => {
                Ending::Failed(ErrorRecord::new("Aegis.InvalidPayload", m))
            }
            Err(failure) => {
                Ending::Failed(ErrorRecord::new("Aegis.InvalidCall", failure.message()))
            }
        },
        (None, Ok(RunOutcome::Suspended)) => Ending::Suspended,
        (None, Err(trap)) => Ending::Failed(match meter.exceeded {
            Some(Exceeded::Cpu) => ErrorRecord::new(
                "Aegis.CpuDeadlineExceeded",
                format!(
                    "the guest used more than {} ms of CPU in one activation and was stopped",
                    meter.cpu_deadline.as_millis()
                ),
            ),
            Some(Exceeded::Wall) => ErrorRecord::new(
                "Aegis.WallDeadlineExceeded",
                format!(
                    "the activation took more than {} ms of wall-clock time (not counting the host's own work) and was stopped",
                    meter.wall_deadline.as_millis()
                ),
            ),
            Some(Exceeded::Memory) => ErrorRecord::new(
                "Aegis.MemoryLimitExceeded",
                format!(
                    "the guest tried to grow its memory past the cap of {} MiB and was stopped",
                    meter.memory_bytes >> 20
                ),
            ),
            None => {
                let output = String::from_utf8_lossy(&stderr.contents())
                    .trim()
                    .to_string();
                let mut message = format!("the guest trapped: {trap:?}");
                if !output.is_empty() {
                    message.push_str("\nguest stderr:\n");
                    message.push_str(&output);
                }
                ErrorRecord::new("Aegis.Trap", message)
            }
        }),
    }
}

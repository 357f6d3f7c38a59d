//! The imports a guest calls: durable steps, waits, callbacks, contexts, agents, artifacts, time,
//! randomness and logging.
//!
//! Each call consults the replay [`Cursor`](aegis_core::journal::replay::Cursor): a recorded outcome
//! is returned as it is; a new call is recorded in the activation's pending
//! [`Batch`](aegis_core::store::Batch). The batch is committed (fsynced) before
//! the guest is told any outcome it could act on: a step's result, a callback id it could hand
//! out, or an agent dispatch. Starts of waits and contexts ride along with the next commit or the
//! activation's last one.
//!
//! Errors take one of two roads, chosen explicitly: a guest-visible [`ErrorInfo`] inside an
//! outcome, or a trap that ends the activation with a [`Failure`] recorded beside it.
//!
//! The files, one concern each:
//! - `state`: the [`Activation`], its budget, its pending batch and how it is committed;
//! - `operations`: steps, wait-for-conditions, waits, callbacks, agent invocations and child
//!   contexts;
//! - `events`, `artifacts`, `logs`: publishing workflow events, artifacts, guest log lines;
//! - `fake` (tests only): a journal that records commits and an empty artifact store;
//! - this module: the [`HostState`] a guest instance holds, the bindings of the `durable`
//!   interface, and the checks of what a guest hands over.

mod artifacts;
mod events;
#[cfg(test)]
pub(crate) mod fake;
mod logs;
mod operations;
mod state;
mod stdout;

pub use state::Activation;
pub use stdout::Stdout;

use super::aegis::workflow::durable::{
    self, Callback, ConditionAction, ConditionDelay, ContextBegin, InvokeOptions, Poll, StepAction,
    StepVerdict,
};
use super::aegis::workflow::types::{
    self, ContextKind, ErrorInfo, LogLevel, Outcome, RetryPolicy, StepSemantics,
};
use super::limits::Meter;
use aegis_core::journal::Dispatch;
use aegis_core::journal::{ErrorRecord, now_ms};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

/// Largest result a durable operation may record; bigger payloads belong in artifacts.
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// Longest error type a guest may record.
pub const MAX_ERROR_TYPE: usize = 256;

/// Why the host stopped a guest. Recorded before trapping, read by the activation.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// The replay diverged from the journal.
    NonDeterminism(String),
    /// The guest broke the calling protocol (unknown operation, bad context).
    InvalidCall(String),
    /// The execution stopped or ended elsewhere; this activation's writes are void.
    Superseded(String),
    /// Storage failed; the activation is abandoned and tried again later.
    Store(String),
    /// The guest tried to block (sleep, or poll a clock); see `engine::wasi`.
    Blocking(String),
    /// The activation went over one of its budgets (see `engine::budget`).
    LimitExceeded(String),
    /// The guest handed the host a payload that is not JSON.
    InvalidPayload(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::NonDeterminism(m)
            | Failure::InvalidCall(m)
            | Failure::Superseded(m)
            | Failure::Store(m)
            | Failure::Blocking(m)
            | Failure::LimitExceeded(m)
            | Failure::InvalidPayload(m) => m,
        }
    }
}

pub fn to_info(e: ErrorRecord) -> ErrorInfo {
    ErrorInfo {
        error_type: e.error_type,
        error_message: e.error_message,
        error_data: e.error_data,
    }
}

/// A payload the guest hands the host must be a JSON document: a result that is not would be
/// stored and then served as `null`.
pub fn check_json(what: &str, payload: &str) -> Result<(), Failure> {
    serde_json::from_str::<serde::de::IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|e| Failure::InvalidPayload(format!("{what} is not JSON: {e}")))
}

/// A failure reported by the guest, as the host stores it: the type at most
/// [`MAX_ERROR_TYPE`] printable characters, the data JSON within the payload limit, and the
/// message cut at [`aegis_core::journal::MAX_ERROR_MESSAGE`] bytes by [`ErrorRecord::new`] (a long
/// message is kept, marked as cut, since it is what a reader needs first).
///
/// # Errors
/// The failure that ends the activation, for a type or data the host will not store.
pub fn checked_error(info: ErrorInfo) -> Result<ErrorRecord, Failure> {
    let ErrorInfo {
        error_type,
        error_message,
        error_data,
    } = info;
    if error_type.is_empty()
        || error_type.chars().count() > MAX_ERROR_TYPE
        || error_type.chars().any(char::is_control)
    {
        let shown: String = error_type.chars().take(64).collect();
        return Err(Failure::InvalidCall(format!(
            "error type {shown:?}… ({} bytes) must be 1 to {MAX_ERROR_TYPE} printable characters",
            error_type.len()
        )));
    }
    if let Some(data) = &error_data {
        if data.len() > MAX_PAYLOAD {
            return Err(Failure::InvalidPayload(format!(
                "the error data of {error_type:?} is {} bytes; the limit is {MAX_PAYLOAD}",
                data.len()
            )));
        }
        check_json(&format!("the error data of {error_type:?}"), data)?;
    }
    let mut record = ErrorRecord::new(error_type, error_message);
    record.error_data = error_data;
    Ok(record)
}

/// The store data of one guest instance.
pub struct HostState {
    pub activation: Activation,
    pub meter: Meter,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl HostState {
    pub fn new(activation: Activation, meter: Meter, wasi: WasiCtx) -> Self {
        Self {
            activation,
            meter,
            wasi,
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl durable::Host for HostState {
    fn step_begin(
        &mut self,
        ctx: String,
        name: String,
        semantics: StepSemantics,
    ) -> wasmtime::Result<StepAction> {
        self.activation.step_begin(&ctx, &name, semantics, None)
    }

    fn step_begin_at_most_once(
        &mut self,
        ctx: String,
        name: String,
        policy: Option<RetryPolicy>,
    ) -> wasmtime::Result<StepAction> {
        self.activation
            .step_begin(&ctx, &name, StepSemantics::AtMostOnce, policy)
    }

    fn step_end(
        &mut self,
        operation_id: String,
        result: Outcome,
        policy: Option<RetryPolicy>,
    ) -> wasmtime::Result<StepVerdict> {
        self.activation.step_end(&operation_id, result, policy)
    }

    fn step_resumed(&mut self, operation_id: String) -> wasmtime::Result<bool> {
        Ok(self.activation.resumed_steps.contains(&operation_id))
    }

    fn condition_begin(&mut self, ctx: String, name: String) -> wasmtime::Result<ConditionAction> {
        self.activation.condition_begin(&ctx, &name)
    }

    fn condition_end(
        &mut self,
        operation_id: String,
        checked: Outcome,
        next: Option<ConditionDelay>,
    ) -> wasmtime::Result<StepVerdict> {
        self.activation.condition_end(&operation_id, checked, next)
    }

    fn wait(&mut self, ctx: String, name: String, duration_ms: u64) -> wasmtime::Result<Poll> {
        self.activation.wait(&ctx, &name, duration_ms)
    }

    fn callback_create(
        &mut self,
        ctx: String,
        name: String,
        timeout_ms: u64,
        heartbeat_timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Callback> {
        self.activation
            .callback_create(&ctx, &name, timeout_ms, heartbeat_timeout_ms)
    }

    fn callback_poll(&mut self, operation_id: String) -> wasmtime::Result<Poll> {
        self.activation.callback_poll(&operation_id)
    }

    fn agent_invoke(
        &mut self,
        ctx: String,
        name: String,
        agent: String,
        input: String,
        timeout_ms: u64,
    ) -> wasmtime::Result<Poll> {
        self.activation
            .agent_invoke(&ctx, &name, &agent, input, timeout_ms)
    }

    fn invoke(
        &mut self,
        ctx: String,
        name: String,
        function: String,
        input: String,
        options: InvokeOptions,
    ) -> wasmtime::Result<Poll> {
        self.activation.chained_invoke(
            &ctx,
            &name,
            &function,
            input,
            options.tenant_id,
            options.timeout_ms,
        )
    }

    fn context_enter(
        &mut self,
        ctx: String,
        name: String,
        kind: ContextKind,
    ) -> wasmtime::Result<ContextBegin> {
        self.activation.context_enter(&ctx, &name, kind)
    }

    fn context_exit(&mut self, operation_id: String, result: Outcome) -> wasmtime::Result<()> {
        self.activation.context_exit(&operation_id, result)
    }

    fn virtual_context_enter(&mut self, ctx: String) -> wasmtime::Result<String> {
        self.activation.virtual_context_enter(&ctx)
    }

    fn now(&mut self, ctx: String) -> wasmtime::Result<u64> {
        let a = &mut self.activation;
        let v = a.recorded_value(&ctx, "$now", |_| Ok(Ok(now_ms().to_string())))?;
        Ok(v.ok().and_then(|v| v.parse().ok()).unwrap_or_default())
    }

    fn random(&mut self, ctx: String) -> wasmtime::Result<u64> {
        let a = &mut self.activation;
        let v = a.recorded_value(&ctx, "$random", |_| {
            Ok(Ok(rand::random::<u64>().to_string()))
        })?;
        Ok(v.ok().and_then(|v| v.parse().ok()).unwrap_or_default())
    }

    fn log(&mut self, ctx: String, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.activation.log(&ctx, level, &message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_errors_are_bounded() {
        let info = |t: &str, m: String, d: Option<&str>| ErrorInfo {
            error_type: t.into(),
            error_message: m,
            error_data: d.map(str::to_string),
        };
        let e = checked_error(info("Step.Failed", "m".into(), Some(r#"{"a":1}"#))).unwrap();
        assert_eq!(e.error_type, "Step.Failed");
        let long_type = "T".repeat(MAX_ERROR_TYPE + 1);
        assert!(matches!(
            checked_error(info(&long_type, "m".into(), None)),
            Err(Failure::InvalidCall(_))
        ));
        assert!(matches!(
            checked_error(info("A\nB", "m".into(), None)),
            Err(Failure::InvalidCall(_))
        ));
        assert!(matches!(
            checked_error(info("E", "m".into(), Some("not json"))),
            Err(Failure::InvalidPayload(_))
        ));
        let big = format!("\"{}\"", "x".repeat(MAX_PAYLOAD));
        assert!(matches!(
            checked_error(info("E", "m".into(), Some(&big))),
            Err(Failure::InvalidPayload(_))
        ));
        let max = aegis_core::journal::MAX_ERROR_MESSAGE;
        let e = checked_error(info("E", "é".repeat(max), None)).unwrap();
        assert!(e.error_message.len() <= max, "{}", e.error_message.len());
        assert!(
            e.error_message
                .ends_with(&format!("[cut: {} bytes in all]", 2 * max))
        );
    }

    #[test]
    fn payloads_must_be_json() {
        assert!(check_json("r", r#"{"a": [1, 2]}"#).is_ok());
        assert!(check_json("r", "null").is_ok());
        assert!(matches!(
            check_json("r", "hello"),
            Err(Failure::InvalidPayload(_))
        ));
        assert!(matches!(
            check_json("r", ""),
            Err(Failure::InvalidPayload(_))
        ));
    }
}

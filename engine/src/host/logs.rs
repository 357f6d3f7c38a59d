//! The guest's log lines: kept in the execution's log (the store's, read through the API) and
//! written to the host's log (target `aegis::guest`) with the tenant and execution, once (not
//! again on replay), escaped there so a guest cannot forge the host's own lines.
//!
//! Lines wait in the activation (with the lines the guest printed to stdout, `stdout.rs`) and
//! are appended to the store before each commit and when the
//! activation ends, however it ends ([`Activation::flush_logs`]): one store write per commit,
//! not one per line, and a line logged just before the guest crashes is still kept. A line is
//! appended before the journal records that follow it, so a line is never lost to a host
//! crash once what came after it is committed; the code after the last commit runs again after
//! a crash, and logs again, as a Lambda handler does.

use super::Failure;
use super::state::Activation;
use crate::aegis::workflow::types::LogLevel;
use crate::budget::Charge;
use aegis_core::journal::now_ms;
use aegis_core::store::logs::MAX_LINE_BYTES;
use aegis_core::store::{self, LogLine};

impl Activation {
    /// Writes the guest's `message` at `level`, charged to the budget; nothing on replay, where
    /// the line was written by the activation that first ran this code.
    pub(super) fn log(
        &mut self,
        ctx: &str,
        level: LogLevel,
        message: &str,
    ) -> wasmtime::Result<()> {
        if self.cursor.is_replaying(ctx) {
            return Ok(());
        }
        self.charge(Charge::LogLine(message.len()))?;
        // What the guest printed before this line goes before it.
        self.take_stdout();
        let line = LogLine::new(now_ms(), kept_level(level), message);
        self.trace(level, &line.message);
        self.logs.push(line);
        Ok(())
    }

    /// Appends the lines waiting in the activation to the execution's log, within the
    /// execution's limits.
    ///
    /// # Errors
    /// The store's: the lines stay waiting, for the next try.
    pub fn flush_logs(&mut self) -> Result<(), store::Error> {
        self.take_stdout();
        if self.logs.is_empty() {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.logs);
        let id = self.execution.id.clone();
        let limits = self.log_limits;
        let journal = self.store.clone();
        let kept = lines.clone();
        self.io(|_| store::wait(journal.append_logs(&id, lines, limits)))
            .inspect_err(|_| self.logs = kept)
    }

    /// [`Activation::flush_logs`] inside a host call: a store failure ends the activation, to
    /// be tried again, as a failed commit does.
    pub(super) fn flush_logs_or_trap(&mut self) -> wasmtime::Result<()> {
        match self.flush_logs() {
            Ok(()) => Ok(()),
            Err(e) => Err(self.trap(Failure::Store(e.to_string()))),
        }
    }

    fn trace(&self, level: LogLevel, message: &str) {
        let execution = self.execution.id.as_str();
        let tenant = self.execution.tenant.as_str();
        // The line is the guest's: its newlines and other control characters are escaped, so
        // it stays one line and cannot forge the host's own.
        let message = escape_log_line(message);
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "aegis::guest", tenant, execution, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "aegis::guest", tenant, execution, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "aegis::guest", tenant, execution, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "aegis::guest", tenant, execution, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "aegis::guest", tenant, execution, "{message}")
            }
        }
    }
}

/// The WIT's level as the store keeps it.
fn kept_level(level: LogLevel) -> store::LogLevel {
    match level {
        LogLevel::Trace => store::LogLevel::Trace,
        LogLevel::Debug => store::LogLevel::Debug,
        LogLevel::Info => store::LogLevel::Info,
        LogLevel::Warn => store::LogLevel::Warn,
        LogLevel::Error => store::LogLevel::Error,
    }
}

/// A guest's log line as one line of the host's log: cut at [`MAX_LINE_BYTES`] bytes, with
/// newlines and other control characters escaped (`\n`, `\u{1b}`).
fn escape_log_line(message: &str) -> String {
    let cut = aegis_core::journal::cut(message.to_string(), MAX_LINE_BYTES);
    let mut line = String::with_capacity(cut.len());
    for c in cut.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_stay_one_line() {
        assert_eq!(
            escape_log_line("ok\nERROR aegis: forged\r\u{1b}[2J"),
            "ok\\nERROR aegis: forged\\r\\u{1b}[2J"
        );
        assert_eq!(escape_log_line("naïve – fine"), "naïve – fine");
        assert!(escape_log_line(&"x".repeat(10_000)).len() <= MAX_LINE_BYTES);
    }
}

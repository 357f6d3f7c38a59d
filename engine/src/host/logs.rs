//! The guest's log lines: written to the host's log (target `aegis::guest`) with the tenant
//! and execution, once (not again on replay), and escaped so a guest cannot forge the host's
//! own lines.

use super::state::Activation;
use crate::aegis::workflow::types::LogLevel;
use crate::budget::Charge;

/// Longest log line kept; a longer one is cut, marked as cut.
const MAX_LOG_LINE: usize = 4096;

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
        Ok(())
    }
}

/// A guest's log line as one line of the host's log: cut at [`MAX_LOG_LINE`] bytes, with
/// newlines and other control characters escaped (`\n`, `\u{1b}`).
fn escape_log_line(message: &str) -> String {
    let cut = aegis_core::journal::cut(message.to_string(), MAX_LOG_LINE);
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
        assert!(escape_log_line(&"x".repeat(10_000)).len() <= MAX_LOG_LINE);
    }
}

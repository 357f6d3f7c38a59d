//! The guest's stdout, kept as log lines: what a Lambda handler prints goes to its CloudWatch
//! log, so what a workflow prints goes to its execution's log, a line per `\n`, at level INFO.
//!
//! Unlike `log`, stdout knows nothing of replay: a line printed by code that runs again on
//! replay is printed again, as a Lambda handler's is. Printing never fails the guest: past
//! [`MAX_STDOUT_BYTES`] in one activation, the rest of its stdout is dropped. The lines join the
//! activation's other log lines in the order they were written ([`Activation::take_stdout`]
//! before each `log` and each append), and the execution's log limits apply to them as to any.

use super::state::Activation;
use aegis_core::journal::now_ms;
use aegis_core::store::logs::MAX_LINE_BYTES;
use aegis_core::store::{LogLevel, LogLine};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Most bytes of stdout one activation keeps (the default `max_log_kb_per_activation`).
pub const MAX_STDOUT_BYTES: usize = 256 * 1024;

/// Most bytes one write may hand over.
const WRITE_PERMIT: usize = 64 * 1024;

/// The guest's stdout: a handle shared by the WASI context and the activation.
#[derive(Clone, Default)]
pub struct Stdout(Arc<Mutex<Lines>>);

#[derive(Default)]
struct Lines {
    /// The line being written (no `\n` yet).
    partial: Vec<u8>,
    /// Whole lines not yet taken by the activation.
    done: Vec<LogLine>,
    /// Bytes kept so far in this activation.
    kept: usize,
}

impl Lines {
    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let text = String::from_utf8_lossy(&line);
        self.done
            .push(LogLine::new(now_ms(), LogLevel::Info, &text));
    }

    fn write(&mut self, bytes: &[u8]) {
        let room = MAX_STDOUT_BYTES.saturating_sub(self.kept);
        let bytes = &bytes[..bytes.len().min(room)];
        self.kept += bytes.len();
        for &b in bytes {
            if b == b'\n' {
                self.end_line();
            } else {
                self.partial.push(b);
                // A line longer than any kept is ended here (and cut by `LogLine::new`).
                if self.partial.len() > MAX_LINE_BYTES {
                    self.end_line();
                }
            }
        }
    }
}

impl Stdout {
    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The whole lines written since the last call.
    pub fn take(&self) -> Vec<LogLine> {
        std::mem::take(&mut self.lock().done)
    }

    /// Ends the line being written, if any: the guest is done.
    pub fn close(&self) {
        let mut lines = self.lock();
        if !lines.partial.is_empty() {
            lines.end_line();
        }
    }
}

impl IsTerminal for Stdout {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Stdout {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Stdout {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.lock().write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Stdout {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Stdout {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.lock().write(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl Activation {
    /// Moves the whole lines the guest printed so far behind the activation's other log lines.
    pub(super) fn take_stdout(&mut self) {
        let printed = self.stdout.take();
        self.logs.extend(printed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.message.as_str()).collect()
    }

    #[test]
    fn output_becomes_lines_as_they_end() {
        let out = Stdout::default();
        out.lock().write(b"one\ntw");
        assert_eq!(texts(&out.take()), ["one"]);
        out.lock().write(b"o\r\n{\"a\":1}\nrest");
        let lines = out.take();
        assert_eq!(texts(&lines), ["two", "{\"a\":1}"]);
        assert!(lines.iter().all(|l| l.level == LogLevel::Info));
        out.close();
        assert_eq!(texts(&out.take()), ["rest"]);
        out.close();
        assert!(out.take().is_empty());
    }

    #[test]
    fn output_is_bounded_and_never_refused() {
        let mut out = Stdout::default();
        let line = [b'x'; 1023]
            .iter()
            .chain(b"\n")
            .copied()
            .collect::<Vec<u8>>();
        for _ in 0..1000 {
            assert!(out.write(Bytes::from(line.clone())).is_ok());
        }
        assert_eq!(out.take().len(), MAX_STDOUT_BYTES / 1024);
        let mut long = Stdout::default();
        long.write(Bytes::from(vec![b'y'; 3 * MAX_LINE_BYTES]))
            .unwrap();
        long.close();
        assert!(
            long.take()
                .iter()
                .all(|l| l.message.len() <= MAX_LINE_BYTES)
        );
    }
}

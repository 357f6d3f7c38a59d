//! An execution's log: the lines its guest wrote (`log` in the WIT), kept per execution and
//! read back by page.
//!
//! Key items:
//! - [`LogLine`]: a line as the engine hands it over (cut at [`MAX_LINE_BYTES`]);
//!   [`LogRecord`]: a line as stored, numbered by the store (`seq`, from 1, in the order the
//!   lines were appended).
//! - [`LogLimits`] and [`admit`]: the bound on what one execution keeps. A guest can log without
//!   end over many activations; the store keeps its first lines up to the limits, then one
//!   marker line ([`LogRecord::is_marker`]) saying the rest was dropped, then nothing. Backends
//!   apply [`admit`] inside their write to the [`LogUsage`] they hold, so the rule is one.

use crate::journal::Millis;
use serde::{Deserialize, Serialize};

/// Longest line kept, in bytes; a longer one is cut and marked as cut.
pub const MAX_LINE_BYTES: usize = 4096;

/// The text of the line that closes a full log.
pub const DROPPED: &str = "Aegis: the execution's log is full; its later lines were dropped";

/// How much a line says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "TRACE" => LogLevel::Trace,
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARN" => LogLevel::Warn,
            "ERROR" => LogLevel::Error,
            _ => return None,
        })
    }
}

/// A line to append: when it was written, its level and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub at: Millis,
    pub level: LogLevel,
    pub message: String,
}

impl LogLine {
    /// A line of `message`, cut at [`MAX_LINE_BYTES`] (see [`crate::journal::cut`]). The text
    /// is kept as the guest wrote it, newlines included: readers get it as one JSON string.
    pub fn new(at: Millis, level: LogLevel, message: &str) -> Self {
        Self {
            at,
            level,
            message: crate::journal::cut(message.to_string(), MAX_LINE_BYTES),
        }
    }
}

/// A stored line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// From 1, in append order; the store's, never reused.
    pub seq: u64,
    pub at: Millis,
    pub level: LogLevel,
    pub message: String,
}

impl LogRecord {
    /// Whether this is the line that closed a full log.
    pub fn is_marker(&self) -> bool {
        self.level == LogLevel::Warn && self.message.starts_with(DROPPED)
    }
}

/// What one execution may keep: its first `max_lines` lines, as long as they stay within
/// `max_bytes` of text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    pub max_lines: u64,
    pub max_bytes: u64,
}

impl LogLimits {
    /// From the tenant's quotas (`max_log_lines_per_execution`, `max_log_kb_per_execution`).
    pub fn of(quotas: &crate::quotas::Quotas) -> Self {
        Self {
            max_lines: quotas.max_log_lines_per_execution.into(),
            max_bytes: u64::from(quotas.max_log_kb_per_execution) * 1024,
        }
    }
}

/// What an execution's log holds, as a backend keeps it beside the lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogUsage {
    /// The last `seq` given (0 before the first line).
    pub last_seq: u64,
    /// Lines kept (the marker not counted).
    pub lines: u64,
    /// Bytes of their text.
    pub bytes: u64,
    /// The log is full: the marker was written, and nothing more will be.
    pub full: bool,
}

/// The records to store for `lines` appended to a log that holds `usage`, and what it holds
/// then: the lines that fit `limits`, numbered on from `usage.last_seq`, and, at the first line
/// that does not fit, the marker line (dated as that line), after which every line is dropped.
pub fn admit(usage: LogUsage, lines: &[LogLine], limits: LogLimits) -> (Vec<LogRecord>, LogUsage) {
    let mut usage = usage;
    let mut records = Vec::new();
    for line in lines {
        if usage.full {
            break;
        }
        let bytes = line.message.len() as u64;
        usage.last_seq += 1;
        if usage.lines < limits.max_lines && usage.bytes + bytes <= limits.max_bytes {
            usage.lines += 1;
            usage.bytes += bytes;
            records.push(LogRecord {
                seq: usage.last_seq,
                at: line.at,
                level: line.level,
                message: line.message.clone(),
            });
        } else {
            usage.full = true;
            records.push(LogRecord {
                seq: usage.last_seq,
                at: line.at,
                level: LogLevel::Warn,
                message: format!(
                    "{DROPPED} (it keeps {} lines or {} KiB at most: max_log_lines_per_execution, max_log_kb_per_execution)",
                    limits.max_lines,
                    limits.max_bytes / 1024
                ),
            });
        }
    }
    (records, usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine::new(7, LogLevel::Info, text)
    }

    #[test]
    fn lines_are_numbered_on_from_the_last() {
        let limits = LogLimits {
            max_lines: 10,
            max_bytes: 1000,
        };
        let (records, usage) = admit(LogUsage::default(), &[line("a"), line("bc")], limits);
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(
            usage,
            LogUsage {
                last_seq: 2,
                lines: 2,
                bytes: 3,
                full: false
            }
        );
        let (records, usage) = admit(usage, &[line("d")], limits);
        assert_eq!(records[0].seq, 3);
        assert_eq!(records[0].message, "d");
        assert_eq!(usage.lines, 3);
    }

    #[test]
    fn a_full_log_ends_with_one_marker_then_drops_everything() {
        let limits = LogLimits {
            max_lines: 2,
            max_bytes: 1000,
        };
        let lines: Vec<LogLine> = (0..5).map(|i| line(&format!("line {i}"))).collect();
        let (records, usage) = admit(LogUsage::default(), &lines, limits);
        assert_eq!(records.len(), 3);
        assert!(!records[1].is_marker());
        assert!(records[2].is_marker(), "{:?}", records[2]);
        assert!(usage.full);
        let (more, after) = admit(usage, &lines, limits);
        assert!(more.is_empty());
        assert_eq!(after, usage);
    }

    #[test]
    fn bytes_bound_the_log_too() {
        let limits = LogLimits {
            max_lines: 100,
            max_bytes: 10,
        };
        let (records, usage) = admit(
            LogUsage::default(),
            &[line("12345"), line("123456"), line("1")],
            limits,
        );
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].message, "12345");
        assert!(records[1].is_marker());
        assert_eq!((usage.lines, usage.bytes, usage.full), (1, 5, true));
    }

    #[test]
    fn long_lines_are_cut_and_text_is_kept_as_written() {
        let long = LogLine::new(0, LogLevel::Error, &"x".repeat(10_000));
        assert!(long.message.len() <= MAX_LINE_BYTES);
        assert!(long.message.contains("[cut: 10000 bytes in all]"));
        assert_eq!(line("a\nb").message, "a\nb");
        assert_eq!(
            LogLevel::parse(LogLevel::Warn.as_str()),
            Some(LogLevel::Warn)
        );
    }
}

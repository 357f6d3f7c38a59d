//! What the commands print: the API's JSON for `--json`, and for people, aligned tables and
//! short lines made from the same answers. Pure functions of their input, so the text is
//! tested without a host.

use super::exit::{Failure, Outcome};
use serde_json::Value;
use std::io::Write;

/// Writes `text` to stdout. A closed pipe (`aegis list | head`) is not an error worth a
/// message; anything else is a local failure.
///
/// # Errors
/// When stdout cannot be written.
pub fn print(text: &str) -> Outcome {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::local(format!("cannot write the output: {e}")))
        }
        _ => Ok(()),
    }
}

/// Prints `value` as indented JSON: one document, the API's answer.
///
/// # Errors
/// As [`print`].
pub fn json(value: &Value) -> Outcome {
    let text = serde_json::to_string_pretty(value).expect("a Value always serializes");
    print(&format!("{text}\n"))
}

/// Prints `value` as one line of JSON: one record of a stream (`logs`, `watch`).
///
/// # Errors
/// As [`print`].
pub fn json_line(value: &Value) -> Outcome {
    print(&format!("{value}\n"))
}

/// A field shown as text: a string as it is, null or absent as `-`, anything else as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `rows` under `headers`, each column as wide as its widest cell, two spaces apart; the last
/// column is not padded, so no line ends in spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i + 1 == headers.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// `ms` milliseconds since the epoch as the API writes its other timestamps (RFC 3339, UTC,
/// milliseconds): a log line's time then reads like an execution's.
pub fn timestamp(ms: i64) -> String {
    crate::journal::format_ts(ms)
}

/// A size in bytes for people: `812 B`, `14.2 KiB`, `3.0 MiB`.
pub fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / (KIB * KIB))
    }
}

/// JSON for people: compact when it is short, indented (under `indent`) when it is not.
pub fn pretty(value: &Value, indent: &str) -> String {
    let compact = value.to_string();
    if compact.len() <= 80 {
        return compact;
    }
    let text = serde_json::to_string_pretty(value).expect("a Value always serializes");
    text.replace('\n', &format!("\n{indent}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_and_leave_no_trailing_spaces() {
        let rows = vec![
            vec!["ex_1".to_string(), "steps3".into(), "RUNNING".into()],
            vec!["ex_22".to_string(), "a".into(), "-".into()],
        ];
        assert_eq!(
            table(&["ID", "WORKFLOW", "STATUS"], &rows),
            "ID     WORKFLOW  STATUS\n\
             ex_1   steps3    RUNNING\n\
             ex_22  a         -\n"
        );
        assert_eq!(table(&["ID", "NAME"], &[]), "ID  NAME\n");
    }

    #[test]
    fn fields_show_as_text() {
        assert_eq!(text(&json!("x")), "x");
        assert_eq!(text(&Value::Null), "-");
        assert_eq!(text(&json!(3)), "3");
        assert_eq!(text(&json!({"a": 1})), r#"{"a":1}"#);
    }

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds() {
        assert_eq!(timestamp(1_764_133_200_123), "2025-11-26T05:00:00.123Z");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn sizes_read_as_people_count() {
        assert_eq!(size(812), "812 B");
        assert_eq!(size(14_540), "14.2 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn long_json_is_indented_under_its_label() {
        assert_eq!(pretty(&json!({"a": 1}), "  "), r#"{"a":1}"#);
        let long = json!({"text": "x".repeat(100)});
        let shown = pretty(&long, "  ");
        assert!(shown.starts_with("{\n    \"text\""), "{shown}");
        assert!(shown.ends_with("\n  }"), "{shown}");
    }
}

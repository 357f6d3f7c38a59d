//! JSON given on the command line: inline (`'{"a": 1}'`), from a file (`@input.json`) or from
//! standard input (`-`), as curl takes a body. A workflow's input is often too large or too
//! awkward to quote in a shell, hence the file forms.

use super::exit::{Failure, Outcome};
use serde_json::Value;
use std::io::Read as _;

/// The JSON `raw` stands for; `what` names the argument in errors (`--input`).
///
/// # Errors
/// A usage failure when the file cannot be read or the text is not JSON.
pub fn json(raw: &str, what: &str) -> Outcome<Value> {
    let (text, source) = if raw == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::usage(format!("{what}: cannot read standard input: {e}")))?;
        (text, "standard input".to_string())
    } else if let Some(path) = raw.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("{what}: cannot read {path}: {e}")))?;
        (text, path.to_string())
    } else {
        (raw.to_string(), "the argument".to_string())
    };
    parse(&text, what, &source)
}

fn parse(text: &str, what: &str, source: &str) -> Outcome<Value> {
    serde_json::from_str(text).map_err(|e| {
        Failure::usage(format!(
            "{what}: {source} is not JSON ({e}); a string needs its quotes, as in '\"text\"'"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::exit::Class;
    use serde_json::json;

    #[test]
    fn inline_json_is_parsed() {
        assert_eq!(
            json(r#"{"a": [1, 2]}"#, "--input").unwrap(),
            json!({"a": [1, 2]})
        );
        assert_eq!(json(r#""text""#, "--input").unwrap(), json!("text"));
        assert_eq!(json("null", "--input").unwrap(), Value::Null);
    }

    #[test]
    fn a_file_is_read_after_an_at_sign() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.json");
        std::fs::write(&path, "{\"seconds\": 3}\n").unwrap();
        let arg = format!("@{}", path.display());
        assert_eq!(json(&arg, "--input").unwrap(), json!({"seconds": 3}));
        let missing = format!("@{}", dir.path().join("nope.json").display());
        let err = json(&missing, "--input").unwrap_err();
        assert_eq!(err.class, Class::Usage);
        assert!(
            err.message.starts_with("--input: cannot read"),
            "{}",
            err.message
        );
    }

    #[test]
    fn text_that_is_not_json_says_so() {
        let err = json("hello", "RESULT").unwrap_err();
        assert_eq!(err.class, Class::Usage);
        assert!(
            err.message.starts_with("RESULT: the argument is not JSON"),
            "{}",
            err.message
        );
    }
}

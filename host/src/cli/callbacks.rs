//! `aegis callbacks succeed|fail|heartbeat`: completing a callback an execution waits on
//! (`/v1/callbacks/{id}/...`). The callback id is the credential; `status` and `watch` show
//! the ids of the callbacks an execution waits on.

use super::client::{Body, Client, Connection};
use super::exit::Outcome;
use super::{input, output};
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct CallbacksArgs {
    #[command(subcommand)]
    pub command: CallbackCommand,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(clap::Subcommand, Debug)]
pub enum CallbackCommand {
    /// Complete a callback with a result: the workflow carries on with it.
    Succeed {
        /// The callback id.
        id: String,
        /// The result: JSON, @FILE, or - for standard input (default: null).
        #[arg(value_name = "JSON|@FILE|-")]
        result: Option<String>,
    },
    /// Fail a callback: the workflow gets the error.
    Fail {
        /// The callback id.
        id: String,
        /// The error type (default: Callback.Failed).
        #[arg(long = "type", value_name = "TYPE")]
        error_type: Option<String>,
        /// The error message.
        #[arg(long)]
        message: Option<String>,
        /// Data for the error: JSON, @FILE, or - for standard input.
        #[arg(long, value_name = "JSON|@FILE|-")]
        data: Option<String>,
    },
    /// Reset a callback's heartbeat timeout.
    Heartbeat {
        /// The callback id.
        id: String,
    },
}

/// The action's path segment and body.
///
/// # Errors
/// A usage failure when a JSON argument is not JSON.
pub fn request(command: &CallbackCommand) -> Outcome<(&str, &'static str, Body)> {
    Ok(match command {
        CallbackCommand::Succeed { id, result } => {
            let result = match result {
                Some(raw) => input::json(raw, "RESULT")?,
                None => Value::Null,
            };
            (id, "succeed", Body::Json(result))
        }
        CallbackCommand::Fail {
            id,
            error_type,
            message,
            data,
        } => {
            let mut body = json!({});
            if let Some(t) = error_type {
                body["error_type"] = json!(t);
            }
            if let Some(m) = message {
                body["error_message"] = json!(m);
            }
            if let Some(raw) = data {
                body["error_data"] = input::json(raw, "--data")?;
            }
            (id, "fail", Body::Json(body))
        }
        CallbackCommand::Heartbeat { id } => (id, "heartbeat", Body::None),
    })
}

/// `aegis callbacks ...`.
///
/// # Errors
/// The request's failure.
pub async fn run(args: CallbacksArgs) -> Outcome {
    let (id, action, body) = request(&args.command)?;
    let client = Client::of(&args.conn)?;
    let answer = client.post(&["v1", "callbacks", id, action], body).await?;
    if args.conn.json {
        return output::json(&answer.body);
    }
    let done = match action {
        "succeed" => "succeeded",
        "fail" => "failed",
        _ => "heartbeat sent",
    };
    output::print(&format!(
        "callback {id} {done} (execution {})\n",
        output::text(&answer.body["execution_id"])
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: crate::cli::Command,
    }

    fn command(args: &[&str]) -> CallbackCommand {
        let mut argv = vec!["aegis", "callbacks"];
        argv.extend(args);
        match Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Callbacks(c) => c.command,
            _ => panic!("not callbacks"),
        }
    }

    fn body(b: Body) -> Option<Value> {
        match b {
            Body::Json(v) => Some(v),
            Body::None => None,
            Body::Wasm(_) => panic!("no wasm here"),
        }
    }

    #[test]
    fn succeed_sends_the_result_or_null() {
        let succeed = command(&["succeed", "cb_1", r#"{"ok":true}"#]);
        let (id, action, b) = request(&succeed).unwrap();
        assert_eq!((id, action), ("cb_1", "succeed"));
        assert_eq!(body(b), Some(json!({"ok": true})));
        let (_, _, b) = request(&command(&["succeed", "cb_1"])).unwrap();
        assert_eq!(body(b), Some(Value::Null));
        assert!(request(&command(&["succeed", "cb_1", "not json"])).is_err());
    }

    #[test]
    fn fail_sends_only_the_fields_given() {
        let (_, action, b) = request(&command(&[
            "fail",
            "cb_1",
            "--type",
            "Denied",
            "--message",
            "no",
            "--data",
            "[1]",
        ]))
        .unwrap();
        assert_eq!(action, "fail");
        assert_eq!(
            body(b),
            Some(json!({"error_type": "Denied", "error_message": "no", "error_data": [1]}))
        );
        let (_, _, b) = request(&command(&["fail", "cb_1"])).unwrap();
        assert_eq!(body(b), Some(json!({})));
    }

    #[test]
    fn heartbeat_has_no_body_and_flags_go_after_the_action() {
        let mut argv = vec!["aegis", "callbacks", "heartbeat", "cb_1", "--json"];
        argv.extend(["--url", "http://h:1"]);
        let crate::cli::Command::Callbacks(args) = Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("not callbacks")
        };
        assert!(args.conn.json);
        assert_eq!(args.conn.url, "http://h:1");
        let (_, action, b) = request(&args.command).unwrap();
        assert_eq!(action, "heartbeat");
        assert_eq!(body(b), None);
    }
}

//! `start`, `list`, `status`, `history`, `logs` and `stop`: the commands on executions
//! (`/v1/executions`). `watch` has a module of its own (`watch.rs`).

use super::client::{Body, Client, Connection};
use super::exit::Outcome;
use super::{events, input, output};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// How long `logs --follow` waits for the execution to end before it reads the log again.
const FOLLOW_POLL: Duration = Duration::from_secs(1);
/// The API's largest page of executions.
const MAX_EXECUTION_PAGE: usize = 1000;
/// The page size for history and logs (the API allows up to 10,000).
const PAGE: usize = 1000;

/// The statuses `list --status` takes, as the API spells them.
const STATUSES: [&str; 5] = ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"];

#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// The workflow: the name of an uploaded component.
    pub workflow: String,
    /// The workflow's input: JSON, @FILE, or - for standard input (default: null).
    #[arg(long, value_name = "JSON|@FILE|-")]
    pub input: Option<String>,
    /// An idempotency name: starting again with the same name and input answers the same
    /// execution.
    #[arg(long)]
    pub name: Option<String>,
    /// The component version (default: the latest).
    #[arg(long)]
    pub version: Option<u32>,
    /// The execution times out after this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only executions of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only executions in this status.
    #[arg(long, ignore_case = true, value_parser = clap::builder::PossibleValuesParser::new(STATUSES))]
    pub status: Option<String>,
    /// Show at most this many executions, newest first (pages are followed up to it).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
    /// Executions asked for per request (the API answers at most 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub page_size: u64,
    #[command(flatten)]
    pub conn: Connection,
}

/// The flags of commands that take one execution id.
#[derive(clap::Args, Debug)]
pub struct IdArgs {
    /// The execution id (`ex_...`).
    pub id: String,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// The execution id (`ex_...`).
    pub id: String,
    /// Keep printing new lines until the execution ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// The body of `POST /v1/executions` for `args`.
///
/// # Errors
/// A usage failure when `--input` is not JSON or its file cannot be read.
pub fn start_body(args: &StartArgs) -> Outcome<Value> {
    let mut body = json!({"workflow": args.workflow});
    if let Some(raw) = &args.input {
        body["input"] = input::json(raw, "--input")?;
    }
    if let Some(name) = &args.name {
        body["name"] = json!(name);
    }
    if let Some(version) = args.version {
        body["version"] = json!(version);
    }
    if let Some(seconds) = args.timeout {
        body["timeout_seconds"] = json!(seconds);
    }
    Ok(body)
}

/// `aegis start`.
///
/// # Errors
/// The request's failure.
pub async fn start(args: StartArgs) -> Outcome {
    let body = start_body(&args)?;
    let client = Client::of(&args.conn)?;
    let answer = client.post(&["v1", "executions"], Body::Json(body)).await?;
    if args.conn.json {
        return output::json(&answer.body);
    }
    let verb = if answer.status == StatusCode::OK {
        "already started (same name and input)"
    } else {
        "started"
    };
    output::print(&format!(
        "{} {verb}: {}\n",
        output::text(&answer.body["execution_id"]),
        summary(&answer.body)
    ))
}

/// `steps3 version 1, RUNNING`: an execution summary's workflow and status.
pub fn summary(execution: &Value) -> String {
    format!(
        "{} version {}, {}",
        output::text(&execution["workflow"]),
        output::text(&execution["version"]),
        output::text(&execution["status"]),
    )
}

/// The query of one page of `list`.
fn list_query(args: &ListArgs, page: usize, cursor: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = vec![("limit", page.to_string())];
    if let Some(workflow) = &args.workflow {
        query.push(("workflow", workflow.clone()));
    }
    if let Some(status) = &args.status {
        query.push(("status", status.to_uppercase()));
    }
    if let Some(cursor) = cursor {
        query.push(("cursor", cursor.to_string()));
    }
    query
}

/// `aegis list`: pages are followed until `--limit` executions are shown or none are left.
///
/// # Errors
/// A request's failure.
pub async fn list(args: ListArgs) -> Outcome {
    let client = Client::of(&args.conn)?;
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let page_size = usize::try_from(args.page_size).unwrap_or(MAX_EXECUTION_PAGE);
    let mut executions: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = (limit - executions.len()).min(page_size);
        let query = list_query(&args, page, cursor.as_deref());
        let answer = client.get(&["v1", "executions"], &query).await?;
        if let Some(items) = answer["executions"].as_array() {
            executions.extend(items.iter().take(page).cloned());
        }
        cursor = answer["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() || executions.len() >= limit {
            break;
        }
    }
    if args.conn.json {
        // The API's page shape, holding every page read; `next_cursor` continues after them.
        return output::json(&json!({"executions": executions, "next_cursor": cursor}));
    }
    output::print(&execution_table(&executions))
}

/// The table `list` prints.
pub fn execution_table(executions: &[Value]) -> String {
    let rows: Vec<Vec<String>> = executions
        .iter()
        .map(|e| {
            vec![
                output::text(&e["execution_id"]),
                output::text(&e["workflow"]),
                output::text(&e["version"]),
                output::text(&e["status"]),
                output::text(&e["created_at"]),
                output::text(&e["name"]),
            ]
        })
        .collect();
    output::table(
        &[
            "EXECUTION",
            "WORKFLOW",
            "VERSION",
            "STATUS",
            "CREATED",
            "NAME",
        ],
        &rows,
    )
}

/// `aegis status`.
///
/// # Errors
/// The request's failure.
pub async fn status(args: IdArgs) -> Outcome {
    let client = Client::of(&args.conn)?;
    let execution = client.get(&["v1", "executions", &args.id], &[]).await?;
    if args.conn.json {
        return output::json(&execution);
    }
    output::print(&describe(&execution))
}

/// An execution as `status` shows it: a field a line, the callbacks it waits on with the ids
/// to complete them with.
pub fn describe(execution: &Value) -> String {
    let field = |label: &str, value: String| format!("{label:<10} {value}\n");
    let mut out = String::new();
    out += &field("execution", output::text(&execution["execution_id"]));
    if execution["name"] != execution["execution_id"] {
        out += &field("name", output::text(&execution["name"]));
    }
    out += &field(
        "workflow",
        format!(
            "{} version {} ({})",
            output::text(&execution["workflow"]),
            output::text(&execution["version"]),
            output::text(&execution["component_digest"]),
        ),
    );
    out += &field("status", output::text(&execution["status"]));
    out += &field("created", output::text(&execution["created_at"]));
    out += &field("updated", output::text(&execution["updated_at"]));
    out += &field("input", output::pretty(&execution["input"], "           "));
    if execution["status"] == "SUCCEEDED" {
        out += &field(
            "result",
            output::pretty(&execution["result"], "           "),
        );
    }
    let error = &execution["error"];
    if !error.is_null() {
        out += &field(
            "error",
            format!(
                "{}: {}",
                output::text(&error["error_type"]),
                output::text(&error["error_message"])
            ),
        );
    }
    for callback in execution["pending_callbacks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out += &field(
            "waits on",
            format!(
                "callback {} (operation {}): {}",
                output::text(&callback["name"]),
                output::text(&callback["operation_id"]),
                output::text(&callback["callback_id"]),
            ),
        );
    }
    out
}

/// Every event of the execution's history, page after page.
///
/// # Errors
/// A request's failure.
pub async fn all_events(client: &Client, id: &str, after: u64) -> Outcome<Vec<Value>> {
    let mut events = Vec::new();
    let mut after = after;
    loop {
        let query = [("after", after.to_string()), ("limit", PAGE.to_string())];
        let page = client
            .get(&["v1", "executions", id, "history"], &query)
            .await?;
        events.extend(page["events"].as_array().cloned().unwrap_or_default());
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => return Ok(events),
        }
    }
}

/// `aegis history`.
///
/// # Errors
/// A request's failure.
pub async fn history(args: IdArgs) -> Outcome {
    let client = Client::of(&args.conn)?;
    let events = all_events(&client, &args.id, 0).await?;
    if args.conn.json {
        return output::json(&json!({"events": events, "next_after": null}));
    }
    let text: String = events.iter().map(|e| events::line(e) + "\n").collect();
    output::print(&text)
}

/// `aegis stop`.
///
/// # Errors
/// The request's failure.
pub async fn stop(args: IdArgs) -> Outcome {
    let client = Client::of(&args.conn)?;
    let answer = client
        .post(&["v1", "executions", &args.id, "stop"], Body::None)
        .await?;
    if args.conn.json {
        return output::json(&answer.body);
    }
    output::print(&format!(
        "{} stopped: {}\n",
        output::text(&answer.body["execution_id"]),
        summary(&answer.body)
    ))
}

/// A log line as `logs` prints it: time, level, message.
pub fn log_line(record: &Value) -> String {
    let time = record["timestamp"]
        .as_i64()
        .map_or_else(|| "-".to_string(), output::timestamp);
    format!(
        "{time} {:<5} {}",
        output::text(&record["level"]),
        output::text(&record["message"])
    )
}

/// `aegis logs`: every line, page after page; with `--follow`, then the lines written after,
/// until the execution has ended and its last lines are read.
///
/// # Errors
/// A request's failure.
pub async fn logs(args: LogsArgs) -> Outcome {
    let client = Client::of(&args.conn)?;
    let mut after = 0u64;
    let mut ended = false;
    loop {
        // Read everything there is now.
        loop {
            let query = [("after", after.to_string()), ("limit", PAGE.to_string())];
            let page = client
                .get(&["v1", "executions", &args.id, "logs"], &query)
                .await?;
            let records = page["records"].as_array().cloned().unwrap_or_default();
            let mut text = String::new();
            for record in &records {
                if args.conn.json {
                    text += &format!("{record}\n");
                } else {
                    text += &(log_line(record) + "\n");
                }
                after = after.max(record["sequence"].as_u64().unwrap_or(after));
            }
            output::print(&text)?;
            if page["next_after"].is_null() {
                break;
            }
        }
        if !args.follow || ended {
            return Ok(());
        }
        // Wait until the execution ends, or a while; then read again. Lines written before it
        // ended are read by the pass after it is seen ended.
        let wait = [("wait_ms", FOLLOW_POLL.as_millis().to_string())];
        let execution = client.get(&["v1", "executions", &args.id], &wait).await?;
        ended = is_terminal(&execution["status"]);
    }
}

/// Whether an execution in `status` has ended.
pub fn is_terminal(status: &Value) -> bool {
    status.as_str().is_some_and(|s| s != "RUNNING")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    /// Parses a client command line as `aegis` would.
    fn parse(args: &[&str]) -> crate::cli::Command {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            command: crate::cli::Command,
        }
        let mut argv = vec!["aegis"];
        argv.extend(args);
        Cli::try_parse_from(argv).unwrap().command
    }

    #[test]
    fn start_sends_only_what_was_given() {
        let crate::cli::Command::Start(args) = parse(&["start", "steps3"]) else {
            panic!("not start")
        };
        assert_eq!(start_body(&args).unwrap(), json!({"workflow": "steps3"}));
        let crate::cli::Command::Start(args) = parse(&[
            "start",
            "sleep",
            "--input",
            r#"{"seconds": 2}"#,
            "--name",
            "nightly",
            "--version",
            "3",
            "--timeout",
            "60",
        ]) else {
            panic!("not start")
        };
        assert_eq!(
            start_body(&args).unwrap(),
            json!({"workflow": "sleep", "input": {"seconds": 2}, "name": "nightly",
                   "version": 3, "timeout_seconds": 60})
        );
    }

    #[test]
    fn list_asks_for_the_status_in_capitals_and_pages_up_to_the_limit() {
        let crate::cli::Command::List(args) = parse(&[
            "list",
            "--status",
            "running",
            "--workflow",
            "w",
            "--limit",
            "5",
        ]) else {
            panic!("not list")
        };
        assert_eq!(
            list_query(&args, 5, Some("c1")),
            vec![
                ("limit", "5".to_string()),
                ("workflow", "w".to_string()),
                ("status", "RUNNING".to_string()),
                ("cursor", "c1".to_string()),
            ]
        );
        let crate::cli::Command::List(args) = parse(&["list"]) else {
            panic!("not list")
        };
        assert_eq!(args.limit, 100);
        assert_eq!(list_query(&args, 100, None), vec![("limit", "100".into())]);
    }

    #[test]
    fn the_table_shows_one_execution_a_line() {
        let e = json!({"execution_id": "ex_1", "workflow": "steps3", "version": 1,
                       "status": "SUCCEEDED", "created_at": "2025-11-26T05:00:00.123Z",
                       "name": "ex_1"});
        let table = execution_table(&[e]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("EXECUTION  WORKFLOW  VERSION  STATUS"));
        assert!(lines[1].starts_with("ex_1       steps3    1        SUCCEEDED"));
    }

    #[test]
    fn status_shows_the_callbacks_to_complete() {
        let e = json!({
            "execution_id": "ex_1", "name": "ex_1", "workflow": "callback", "version": 2,
            "component_digest": "sha256:ab", "status": "RUNNING",
            "created_at": "t0", "updated_at": "t1", "input": {"timeout_seconds": 60},
            "result": null, "error": null,
            "pending_callbacks": [{"callback_id": "cb_x", "name": "approval", "operation_id": "2"}]
        });
        let text = describe(&e);
        assert!(
            text.contains("workflow   callback version 2 (sha256:ab)\n"),
            "{text}"
        );
        assert!(text.contains("status     RUNNING\n"), "{text}");
        assert!(
            text.contains("waits on   callback approval (operation 2): cb_x\n"),
            "{text}"
        );
        assert!(
            !text.contains("name "),
            "the name is the id: not shown twice\n{text}"
        );
        assert!(!text.contains("result"), "{text}");
        let failed = json!({"execution_id": "ex_2", "name": "nightly", "status": "FAILED",
            "error": {"error_type": "Boom", "error_message": "it broke"}});
        let text = describe(&failed);
        assert!(text.contains("name       nightly\n"), "{text}");
        assert!(text.contains("error      Boom: it broke\n"), "{text}");
    }

    #[test]
    fn log_lines_show_time_level_and_message() {
        let r = json!({"sequence": 1, "timestamp": 1_764_133_200_123i64, "level": "WARN",
                       "message": "careful"});
        assert_eq!(log_line(&r), "2025-11-26T05:00:00.123Z WARN  careful");
    }

    #[test]
    fn only_running_is_not_terminal() {
        assert!(!is_terminal(&json!("RUNNING")));
        for s in ["SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"] {
            assert!(is_terminal(&json!(s)));
        }
        assert!(!is_terminal(&Value::Null));
    }
}

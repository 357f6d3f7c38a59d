//! `aegis watch ID`: an execution's progress, live, until it ends.
//!
//! The history is read again from the last EventId seen, and between reads the client
//! long-polls the execution (`?wait_ms`), which answers at once when it ends: new events show
//! within about a second and the end shows at once, at one request or two a second.
//!
//! On a terminal, a spinner per running operation and a line per ended one (indicatif);
//! otherwise (a pipe, a file, CI) one plain line per new history event, so a log of it reads
//! like `aegis history`. With `--json`, one event a line, then the execution itself.

use super::client::{Client, Connection};
use super::events::{self, Operations, State};
use super::executions::{self, all_events};
use super::exit::{Class, Failure, Outcome};
use super::output;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::time::Duration;

/// How long one long-poll waits for the end before the history is read again.
const POLL: Duration = Duration::from_millis(1000);
/// Running operations drawn with a spinner of their own; more are counted in the header.
const MAX_LIVE: usize = 10;

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// The execution id (`ex_...`).
    pub id: String,
    #[command(flatten)]
    pub conn: Connection,
}

/// How the progress is shown.
enum View {
    Json,
    Lines,
    Live(Live),
}

impl View {
    fn event(&mut self, event: &Value, ops: &mut Operations) -> Outcome {
        let changed = ops.apply(event);
        match self {
            View::Json => output::json_line(event),
            View::Lines => output::print(&(events::line(event) + "\n")),
            View::Live(live) => {
                if let Some(index) = changed {
                    live.operation(ops, index);
                    live.top.set_message(header(&live.execution, ops));
                }
                Ok(())
            }
        }
    }
}

/// `aegis watch`.
///
/// # Errors
/// A request's failure; [`Class::NotSucceeded`] when the execution ended otherwise than
/// SUCCEEDED.
pub async fn watch(args: WatchArgs) -> Outcome {
    let client = Client::of(&args.conn)?;
    // Fails early (and plainly) when the execution does not exist.
    let mut execution = client.get(&["v1", "executions", &args.id], &[]).await?;
    let mut view = if args.conn.json {
        View::Json
    } else if std::io::stdout().is_terminal() {
        View::Live(Live::new(&execution))
    } else {
        View::Lines
    };
    let mut ops = Operations::default();
    let mut after = 0u64;
    loop {
        let ended = executions::is_terminal(&execution["status"]);
        for event in all_events(&client, &args.id, after).await? {
            after = after.max(event["EventId"].as_u64().unwrap_or(after));
            view.event(&event, &mut ops)?;
        }
        if let View::Live(live) = &mut view {
            live.header(&execution, &ops);
        }
        // The history read after the end was seen holds every event: done.
        if ended {
            break;
        }
        let wait = [("wait_ms", POLL.as_millis().to_string())];
        execution = client.get(&["v1", "executions", &args.id], &wait).await?;
    }
    match view {
        View::Json => output::json_line(&execution)?,
        View::Lines => {}
        View::Live(live) => {
            live.finish();
            output::print(&(ending(&execution) + "\n"))?;
        }
    }
    if execution["status"] == "SUCCEEDED" {
        Ok(())
    } else {
        Err(Failure::new(Class::NotSucceeded, ending(&execution)))
    }
}

/// How an ended execution ended, in a line.
pub fn ending(execution: &Value) -> String {
    let id = output::text(&execution["execution_id"]);
    let status = output::text(&execution["status"]);
    match status.as_str() {
        "SUCCEEDED" => format!(
            "{id} SUCCEEDED: {}",
            output::pretty(&execution["result"], "  ")
        ),
        _ if !execution["error"].is_null() => format!(
            "{id} {status}: {}: {}",
            output::text(&execution["error"]["error_type"]),
            output::text(&execution["error"]["error_message"])
        ),
        _ => format!("{id} {status}"),
    }
}

/// The header line of the live view: the execution and how far its operations are.
pub fn header(execution: &Value, ops: &Operations) -> String {
    let running = ops.len() - ops.done();
    format!(
        "{} {} · {} · {}/{} operations ended, {running} running",
        output::text(&execution["execution_id"]),
        output::text(&execution["workflow"]),
        output::text(&execution["status"]),
        ops.done(),
        ops.len(),
    )
}

/// The terminal view: a header spinner, a spinner per running operation (up to
/// [`MAX_LIVE`]), and a line printed above them as each operation ends.
struct Live {
    multi: MultiProgress,
    top: ProgressBar,
    /// The execution as last read, for the header.
    execution: Value,
    /// The spinners of running operations, by their index in [`Operations`].
    bars: BTreeMap<usize, ProgressBar>,
}

impl Live {
    fn new(execution: &Value) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let top = multi.add(ProgressBar::new_spinner());
        top.set_style(spinner_style("{spinner} {msg}"));
        top.enable_steady_tick(Duration::from_millis(120));
        top.set_message(header(execution, &Operations::default()));
        Live {
            multi,
            top,
            execution: execution.clone(),
            bars: BTreeMap::new(),
        }
    }

    fn header(&mut self, execution: &Value, ops: &Operations) {
        self.execution = execution.clone();
        self.top.set_message(header(execution, ops));
    }

    /// Shows the operation at `index` as it now stands.
    fn operation(&mut self, ops: &Operations, index: usize) {
        let op = ops.get(index);
        if op.state.is_done() {
            if let Some(bar) = self.bars.remove(&index) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
            let mark = if op.state == State::Succeeded {
                "✓"
            } else {
                "✗"
            };
            // An error printing above the bars is not worth stopping the watch for.
            let _ = self.multi.println(format!("{mark} {}", op.label()));
            // A running operation that had no room gets the freed spinner.
            if let Some(waiting) =
                (0..ops.len()).find(|i| !ops.get(*i).state.is_done() && !self.bars.contains_key(i))
            {
                self.spinner(ops, waiting);
            }
            return;
        }
        if let Some(bar) = self.bars.get(&index) {
            bar.set_message(op.label());
        } else {
            self.spinner(ops, index);
        }
    }

    /// Gives the running operation at `index` a spinner, if there is room for one.
    fn spinner(&mut self, ops: &Operations, index: usize) {
        if self.bars.len() >= MAX_LIVE {
            return;
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(spinner_style("  {spinner} {msg} {elapsed:.dim}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message(ops.get(index).label());
        self.bars.insert(index, bar);
    }

    fn finish(self) {
        for bar in self.bars.values() {
            bar.finish_and_clear();
        }
        self.top.finish_and_clear();
        let _ = self.multi.clear();
    }
}

fn spinner_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid progress template")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_ending_says_the_result_or_the_error() {
        let ok = json!({"execution_id": "ex_1", "status": "SUCCEEDED", "result": "s-a-b-c"});
        assert_eq!(ending(&ok), "ex_1 SUCCEEDED: \"s-a-b-c\"");
        let failed = json!({"execution_id": "ex_2", "status": "FAILED",
            "error": {"error_type": "Boom", "error_message": "it broke"}});
        assert_eq!(ending(&failed), "ex_2 FAILED: Boom: it broke");
        let stopped = json!({"execution_id": "ex_3", "status": "STOPPED", "error": null});
        assert_eq!(ending(&stopped), "ex_3 STOPPED");
    }

    #[test]
    fn the_header_counts_operations() {
        let mut ops = Operations::default();
        ops.apply(&json!({"EventType": "StepStarted", "Id": "1", "Name": "a"}));
        ops.apply(&json!({"EventType": "StepSucceeded", "Id": "1", "Name": "a"}));
        ops.apply(&json!({"EventType": "WaitStarted", "Id": "2", "Name": "nap"}));
        let e = json!({"execution_id": "ex_1", "workflow": "sleep", "status": "RUNNING"});
        assert_eq!(
            header(&e, &ops),
            "ex_1 sleep · RUNNING · 1/2 operations ended, 1 running"
        );
    }

    #[test]
    fn the_live_view_keeps_a_spinner_only_for_running_operations() {
        let e = json!({"execution_id": "ex_1", "workflow": "w", "status": "RUNNING"});
        let mut live = Live::new(&e);
        live.multi.set_draw_target(ProgressDrawTarget::hidden());
        let mut ops = Operations::default();
        for i in 0..(MAX_LIVE + 3) {
            let id = i.to_string();
            let index = ops
                .apply(&json!({"EventType": "StepStarted", "Id": id, "Name": "s"}))
                .unwrap();
            live.operation(&ops, index);
        }
        assert_eq!(live.bars.len(), MAX_LIVE, "at most MAX_LIVE spinners");
        let index = ops
            .apply(&json!({"EventType": "StepSucceeded", "Id": "0", "Name": "s"}))
            .unwrap();
        live.operation(&ops, index);
        assert!(
            !live.bars.contains_key(&0),
            "an ended operation has no spinner"
        );
        assert!(
            live.bars.contains_key(&MAX_LIVE),
            "the first operation that had no room gets the freed spinner"
        );
        assert_eq!(live.bars.len(), MAX_LIVE);
        live.finish();
    }
}

//! `aegis demo`: the example workflow end to end, driven over HTTP exactly as a client would,
//! against a host started in this process.

use crate::config::Config;
use crate::server::Server;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs the demo. With `approve`, the approval is given without a prompt.
///
/// # Errors
/// When the component is missing or any step of the run fails.
pub async fn run(opts: Config, component: &Path, topic: &str, approve: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(component).with_context(|| {
        format!(
            "read the demo component {} (build it with `make guests`)",
            component.display()
        )
    })?;
    let server = Server::start(opts).await?;
    let base = format!("http://{}", server.addr);
    tokio::spawn(server.serve());
    let http = reqwest::Client::new();
    let started = Instant::now();
    let step = |msg: &str| eprintln!("[{:>6.2}s] {msg}", started.elapsed().as_secs_f64());

    step(&format!("host listening on {base}"));
    let uploaded: Value = http
        .post(format!("{base}/v1/components/demo"))
        .body(bytes)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    step(&format!(
        "uploaded component demo v{} ({})",
        uploaded["version"], uploaded["digest"]
    ));

    let execution: Value = http
        .post(format!("{base}/v1/executions"))
        .json(&json!({"workflow": "demo", "input": {"topic": topic}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = execution["execution_id"]
        .as_str()
        .context("execution id")?
        .to_string();
    step(&format!("started execution {id}"));

    let mut seen = 0usize;
    let callback_id = loop {
        seen = show_new_events(&http, &base, &id, seen, &step).await?;
        let status: Value = http
            .get(format!("{base}/v1/executions/{id}"))
            .send()
            .await?
            .json()
            .await?;
        if let Some(cb) = status["pending_callbacks"]
            .as_array()
            .and_then(|c| c.first())
        {
            break cb["callback_id"]
                .as_str()
                .context("callback id")?
                .to_string();
        }
        if status["status"] != "RUNNING" {
            bail!("the workflow ended before asking for approval: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    step("the workflow is suspended, waiting for approval (it holds no memory meanwhile)");
    step(&format!(
        "approve with: curl -X POST {base}/v1/callbacks/{callback_id}/succeed -d '{{\"approved\":true}}'"
    ));

    let approved = approve || ask("Approve the report? [y/N] ")?;
    let action = if approved { "succeed" } else { "fail" };
    let body = if approved {
        json!({"approved": true, "by": "demo"})
    } else {
        json!({"error_type": "Approval.Rejected", "error_message": "rejected at the demo prompt"})
    };
    http.post(format!("{base}/v1/callbacks/{callback_id}/{action}"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    step(if approved { "approved" } else { "rejected" });

    let done: Value = http
        .get(format!("{base}/v1/executions/{id}?wait_ms=30000"))
        .send()
        .await?
        .json()
        .await?;
    show_new_events(&http, &base, &id, seen, &step).await?;
    step(&format!("execution {id} ended {}", done["status"]));
    println!(
        "{}",
        serde_json::to_string_pretty(
            &json!({"status": done["status"], "result": done["result"], "error": done["error"]})
        )?
    );
    if done["status"] != "SUCCEEDED" && approved {
        bail!("the demo workflow did not succeed");
    }
    Ok(())
}

/// Prints the history events after the first `seen`, as progress. Returns how many there are now.
async fn show_new_events(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    seen: usize,
    step: &impl Fn(&str),
) -> anyhow::Result<usize> {
    let history: Value = http
        .get(format!("{base}/v1/executions/{id}/history"))
        .send()
        .await?
        .json()
        .await?;
    let events = history["events"].as_array().cloned().unwrap_or_default();
    for event in events.iter().skip(seen) {
        let name = event.get("Name").and_then(Value::as_str).unwrap_or("");
        let kind = event["EventType"].as_str().unwrap_or("");
        step(&format!("  #{:<3} {kind} {name}", event["EventId"]));
    }
    Ok(events.len().max(seen))
}

fn ask(prompt: &str) -> anyhow::Result<bool> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        eprintln!("(no input: not approved; run with APPROVE=1 to approve without a prompt)");
        return Ok(false);
    }
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

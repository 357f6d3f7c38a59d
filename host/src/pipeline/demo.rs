//! `aegis demo`: the research pipeline end to end on one machine, with no cloud.
//!
//! It starts the demo agents (`aegis-agents`, the researcher, analyst and writer over A2A), a host
//! on the embedded store in this process, uploads the `research-pipeline` component and drives a
//! run over HTTP exactly as a client would: start, follow the steps, show the review URL, approve
//! (at a prompt, or at once with `--approve` / `APPROVE=1`), and print the report's path and URL.

use crate::agents::{AgentConfig, Endpoint, Protocol, a2a};
use crate::config::Config;
use crate::server::Server;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// What the demo needs besides the configuration.
pub struct Demo {
    pub component: PathBuf,
    pub agents_binary: PathBuf,
    pub topic: String,
    pub approve: bool,
}

/// Starts the demo agents and returns their base URL; the child ends with the returned handle.
/// Their tasks are kept in `state_dir` (beside the host's data), so an agent restarted during
/// the demo still answers the tasks the host waits for.
async fn start_agents(
    binary: &Path,
    state_dir: &Path,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut child = tokio::process::Command::new(binary)
        .args(["--role", "all", "--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(state_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "start the demo agents {} (build them with `cargo build -p aegis-demo-agents`)",
                binary.display()
            )
        })?;
    let stdout = child.stdout.take().context("agents stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the demo agents did not start within 30 s")??
        .context("the demo agents exited before listening")?;
    let url = line.rsplit(' ').next().unwrap_or_default().to_string();
    if !url.starts_with("http://") {
        bail!("unexpected line from the demo agents: {line:?}");
    }
    Ok((child, url))
}

/// Runs the demo.
///
/// # Errors
/// When a binary or the component is missing, or any step of the run fails.
pub async fn run(mut config: Config, demo: Demo) -> anyhow::Result<()> {
    let progress = Progress {
        started: Instant::now(),
    };
    let bytes = read_component(&demo.component)?;
    let agents_state = config.data_dir.join("agents");
    let (_agents, agents_url) = start_agents(&demo.agents_binary, &agents_state).await?;
    progress.say(&format!(
        "demo agents (researcher, analyst, writer) listening on {agents_url}"
    ));
    configure_agents(&mut config, &agents_url);
    let data_dir = config.data_dir.clone();
    let base = start_host(config).await?;
    progress.say(&format!(
        "host listening on {base}, data in {}",
        data_dir.display()
    ));
    let http = reqwest::Client::new();
    upload_component(&http, &base, bytes, &progress).await?;
    let id = start_workflow(&http, &base, &demo.topic, &progress).await?;
    let view = follow_workflow(&http, &base, &id, demo.approve, &progress).await?;
    show_outcome(&view, &id, &data_dir, &progress)
}

/// Progress lines on stderr, stamped with the time since the demo started.
struct Progress {
    started: Instant,
}

impl Progress {
    fn say(&self, msg: &str) {
        eprintln!("[{:>6.2}s] {msg}", self.started.elapsed().as_secs_f64());
    }
}

/// The `research-pipeline` component's bytes.
fn read_component(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "read the pipeline component {} (build it with `make guests`)",
            path.display()
        )
    })
}

/// Points the researcher, analyst and writer at the demo agents under `agents_url`. The
/// researcher and writer speak A2A v0.3, the analyst v1.0: both generations in one run.
fn configure_agents(config: &mut Config, agents_url: &str) {
    for (role, version) in [
        ("researcher", a2a::Version::V03),
        ("analyst", a2a::Version::V10),
        ("writer", a2a::Version::V03),
    ] {
        let endpoint = Endpoint {
            url: format!("{agents_url}/{role}"),
            protocol: Protocol::A2a,
            version: Some(version),
            ..Endpoint::default()
        };
        config
            .agents
            .insert(role.to_string(), AgentConfig::Endpoint(endpoint));
    }
}

/// Starts a host with the pipeline's routes in this process, serving in the background, and
/// returns its base URL.
async fn start_host(config: Config) -> anyhow::Result<String> {
    let pipeline = super::PipelineApi::new(&config)?;
    let server = Server::start(config, vec![Box::new(pipeline)]).await?;
    let base = format!("http://{}", server.addr);
    tokio::spawn(server.serve());
    Ok(base)
}

/// Uploads the component as `research-pipeline`.
async fn upload_component(
    http: &reqwest::Client,
    base: &str,
    bytes: Vec<u8>,
    progress: &Progress,
) -> anyhow::Result<()> {
    let uploaded: Value = http
        .post(format!("{base}/v1/components/research-pipeline"))
        .body(bytes)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    progress.say(&format!(
        "uploaded research-pipeline v{} ({})",
        uploaded["version"], uploaded["digest"]
    ));
    Ok(())
}

/// Starts a run on `topic` through the pipeline's `POST /workflows`; returns its id.
async fn start_workflow(
    http: &reqwest::Client,
    base: &str,
    topic: &str,
    progress: &Progress,
) -> anyhow::Result<String> {
    let body = json!({"topic": topic, "parameters": {"depth": 2, "sources": 4, "word_limit": 400}});
    let reply: Value = http
        .post(format!("{base}/workflows"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = reply["workflow_id"]
        .as_str()
        .context("workflow id")?
        .to_string();
    progress.say(&format!("started workflow {id} on {topic:?}"));
    Ok(id)
}

/// Polls the run, showing each step as it completes and deciding the approval when it is
/// asked for (`approve`, else at a prompt); returns the run's view once it has ended.
async fn follow_workflow(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    approve: bool,
    progress: &Progress,
) -> anyhow::Result<Value> {
    let mut shown = 0usize;
    let mut approval_sent = false;
    loop {
        let view: Value = http
            .get(format!("{base}/workflows/{id}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let steps = view["steps_completed"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for step in steps.iter().skip(shown) {
            progress.say(&format!("  ✓ {}", step["step"].as_str().unwrap_or("?")));
        }
        shown = steps.len();
        match view["status"].as_str().unwrap_or("") {
            "AWAITING_APPROVAL" if !approval_sent => {
                progress
                    .say("waiting for approval (the execution is suspended and holds no memory)");
                progress.say(&format!(
                    "review the analysis (and approve there): {}",
                    view["approval_url"].as_str().unwrap_or("?")
                ));
                progress.say(&format!(
                    "the raw analysis: {}",
                    view["review_url"].as_str().unwrap_or("?")
                ));
                let approved = approve || ask("Approve the report? [y/N] ")?;
                let decision = if approved { "approve" } else { "reject" };
                let sent = http
                    .post(format!("{base}/workflows/{id}/approval"))
                    .json(&json!({"decision": decision, "comment": "decided in aegis demo"}))
                    .send()
                    .await?;
                // Decided meanwhile on the console's approval page: that decision stands.
                if sent.status() == reqwest::StatusCode::CONFLICT {
                    progress.say("the run was already decided (on the approval page)");
                } else {
                    sent.error_for_status()?;
                    progress.say(&format!("decision sent: {decision}"));
                }
                approval_sent = true;
            }
            "COMPLETED" | "REJECTED" | "FAILED" | "CANCELLED" => return Ok(view),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints how the run ended: the report's start, path and URL when it completed.
///
/// # Errors
/// When the run failed or was cancelled.
fn show_outcome(
    view: &Value,
    id: &str,
    data_dir: &Path,
    progress: &Progress,
) -> anyhow::Result<()> {
    let status = view["status"].as_str().unwrap_or("");
    progress.say(&format!("workflow {id} ended {status}"));
    match status {
        "COMPLETED" => {
            let path = data_dir
                .join("artifacts")
                .join("default")
                .join(id)
                .join("report.md");
            let report = std::fs::read_to_string(&path).unwrap_or_default();
            println!("{}", report.lines().take(12).collect::<Vec<_>>().join("\n"));
            println!("…\nreport: {}", path.display());
            println!(
                "report URL (valid 7 days while this host runs): {}",
                view["report_url"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        "REJECTED" => {
            println!("the report was rejected; nothing was written");
            Ok(())
        }
        _ => bail!("the pipeline did not finish: {}", view["error"]),
    }
}

fn ask(prompt: &str) -> anyhow::Result<bool> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        eprintln!("(no input: rejecting; run `make demo APPROVE=1` to approve without a prompt)");
        return Ok(false);
    }
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

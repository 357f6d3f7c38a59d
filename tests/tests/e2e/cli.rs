//! The `aegis` client commands, run as the real binary against a real host: what they print
//! (the API's JSON with `--json`, lines for people otherwise) and the exit code of each kind
//! of failure (README.md, "The CLI"). Every wait is on an outcome (a process's exit, a
//! callback appearing), never on a duration.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use crate::pipeline::{RUN, TOPIC, demo_config, parameters, pipeline_host};
use crate::{DONE, guard, host, keyed_host, upload};
use aegis_tests::agents::DemoAgents;
use aegis_tests::{HostOptions, TEST_ADMIN_KEY, host::aegis_bin, pipeline};

/// The exit codes the CLI documents.
const USAGE: i32 = 2;
const NOT_FOUND: i32 = 3;
const REFUSED: i32 = 4;
const AUTH: i32 = 5;
const CONNECTION: i32 = 7;
const NOT_SUCCEEDED: i32 = 8;

/// What one run of `aegis` gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Checks that the command succeeded; the run.
    fn ok(self) -> Result<Run> {
        ensure!(self.code == 0, "exit {}: {self:?}", self.code);
        Ok(self)
    }

    /// Checks that the command exited with `code`.
    fn exited(self, code: i32) -> Result<Run> {
        ensure!(self.code == code, "expected exit {code}: {self:?}");
        Ok(self)
    }

    /// Stdout as one JSON document.
    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| format!("stdout is not JSON: {self:?}"))
    }

    /// Stdout as JSON lines.
    fn json_lines(&self) -> Result<Vec<Value>> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
            .collect()
    }

    /// Stderr as the JSON error `--json` prints.
    fn error_code(&self) -> Result<String> {
        let body: Value = serde_json::from_str(self.stderr.trim())
            .with_context(|| format!("stderr is not JSON: {self:?}"))?;
        body["error"]["code"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no error code: {body}"))
    }
}

/// How `aegis` is called: the host's URL and the environment it sees.
#[derive(Clone)]
struct Cli {
    url: String,
    env: Vec<(String, String)>,
}

impl Cli {
    fn new(url: &str) -> Cli {
        Cli {
            url: url.to_string(),
            env: Vec::new(),
        }
    }

    fn env(mut self, name: &str, value: &str) -> Cli {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// The command `aegis <args> --url URL`, with none of the test's own `AEGIS_*` variables.
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(aegis_bin());
        cmd.args(args).arg("--url").arg(&self.url);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AEGIS_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `aegis <args>` to its end.
    async fn run(&self, args: &[&str]) -> Result<Run> {
        finish(self.command(args).spawn()?).await
    }
}

async fn finish(child: tokio::process::Child) -> Result<Run> {
    let out = child.wait_with_output().await?;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout)?,
        stderr: String::from_utf8(out.stderr)?,
    })
}

/// Starts `workflow` with `input` through the CLI; the execution id.
async fn start(cli: &Cli, workflow: &str, input: &Value) -> Result<String> {
    let run = cli
        .run(&["start", workflow, "--input", &input.to_string(), "--json"])
        .await?
        .ok()?;
    let id = run.json()?["execution_id"].as_str().map(str::to_string);
    id.with_context(|| format!("no execution id: {run:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_watch_status_history_list_and_logs() {
    let host = host().await;
    guard(180, async {
        let client = host.client();
        upload(&client, &["steps3", "logs"]).await?;
        let cli = Cli::new(host.base_url());

        // start (people's text) and watch to the end: stdout is a pipe, so plain lines.
        let run = cli
            .run(&["start", "steps3", "--input", r#""s""#])
            .await?
            .ok()?;
        ensure!(
            run.stdout.contains(" started: steps3 version 1, "),
            "{run:?}"
        );
        let id = run
            .stdout
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        ensure!(id.starts_with("ex_"), "{run:?}");
        let watched = cli.run(&["watch", &id]).await?.ok()?;
        let events = client.history(&id).await?;
        let lines: Vec<&str> = watched.stdout.lines().collect();
        ensure!(
            lines.len() == events.len(),
            "a line per event: {watched:?}\n{events:?}"
        );
        for (i, line) in lines.iter().enumerate() {
            ensure!(
                line.starts_with(&format!("#{} ", i + 1)),
                "line {i}: {line}"
            );
        }
        ensure!(
            lines
                .last()
                .is_some_and(|l| l.contains("ExecutionSucceeded: result \"s-a-b-c\"")),
            "{watched:?}"
        );
        ensure!(
            lines.iter().any(|l| l.contains("StepSucceeded b [")),
            "{watched:?}"
        );

        // status, both ways.
        let status = cli.run(&["status", &id, "--json"]).await?.ok()?.json()?;
        ensure!(
            status["status"] == "SUCCEEDED" && status["result"] == "s-a-b-c",
            "{status}"
        );
        let shown = cli.run(&["status", &id]).await?.ok()?;
        ensure!(shown.stdout.contains("status     SUCCEEDED\n"), "{shown:?}");
        ensure!(
            shown.stdout.contains("result     \"s-a-b-c\"\n"),
            "{shown:?}"
        );

        // history: the API's events; for people, the lines watch printed.
        let history = cli.run(&["history", &id, "--json"]).await?.ok()?.json()?;
        ensure!(history["events"] == json!(events), "{history}");
        let text = cli.run(&["history", &id]).await?.ok()?;
        ensure!(text.stdout == watched.stdout, "{text:?}\n{watched:?}");

        // list follows the cursor page after page, up to --limit.
        let mut ids = vec![id.clone()];
        for input in ["t", "u", "v"] {
            ids.push(start(&cli, "steps3", &json!(input)).await?);
        }
        let all = cli
            .run(&["list", "--workflow", "steps3", "--page-size", "1", "--json"])
            .await?
            .ok()?
            .json()?;
        let listed = all["executions"].as_array().context("executions")?;
        let mut listed_ids: Vec<&str> = listed
            .iter()
            .filter_map(|e| e["execution_id"].as_str())
            .collect();
        listed_ids.sort_unstable();
        let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
        expected.sort_unstable();
        ensure!(
            listed_ids == expected,
            "every page, each execution once: {all}"
        );
        let created: Vec<&str> = listed
            .iter()
            .filter_map(|e| e["created_at"].as_str())
            .collect();
        ensure!(
            created.windows(2).all(|w| w[0] >= w[1]),
            "newest first: {all}"
        );
        let two = cli
            .run(&[
                "list",
                "--workflow",
                "steps3",
                "--limit",
                "2",
                "--page-size",
                "1",
                "--json",
            ])
            .await?
            .ok()?
            .json()?;
        ensure!(
            two["executions"].as_array().map(Vec::len) == Some(2) && two["next_cursor"].is_string(),
            "{two}"
        );
        let table = cli.run(&["list", "--status", "succeeded"]).await?.ok()?;
        ensure!(table.stdout.starts_with("EXECUTION "), "{table:?}");
        ensure!(table.stdout.contains(&id), "{table:?}");

        // logs of an execution that has ended, both ways; then --follow of a running one,
        // which returns once it has ended, with the line written after its wait.
        let logged = start(&cli, "logs", &json!({"seconds": 1})).await?;
        client.wait_done(&logged, DONE).await?;
        let lines = cli
            .run(&["logs", &logged, "--json"])
            .await?
            .ok()?
            .json_lines()?;
        let sequences: Vec<u64> = lines
            .iter()
            .filter_map(|l| l["sequence"].as_u64())
            .collect();
        ensure!(
            sequences.len() == lines.len() && sequences.windows(2).all(|w| w[0] < w[1]),
            "{lines:?}"
        );
        let text = cli.run(&["logs", &logged]).await?.ok()?;
        ensure!(text.stdout.contains(" INFO  before the wait\n"), "{text:?}");
        ensure!(text.stdout.contains(" ERROR after the wait\n"), "{text:?}");
        let running = start(&cli, "logs", &json!({"seconds": 2})).await?;
        let followed = cli.run(&["logs", &running, "--follow"]).await?.ok()?;
        ensure!(
            followed.stdout.contains(" ERROR after the wait\n"),
            "{followed:?}"
        );
        let exec = client.get(&running).await?;
        ensure!(
            exec["status"] == "SUCCEEDED",
            "--follow ends with the execution: {exec}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_a_waiting_execution_and_callbacks_complete_or_fail_it() {
    let host = host().await;
    guard(180, async {
        let client = host.client();
        upload(&client, &["callback"]).await?;
        let cli = Cli::new(host.base_url());

        // A watch started while the execution waits, ended by a callback sent with the CLI.
        let id = start(&cli, "callback", &json!({"timeout_seconds": 300})).await?;
        let watch = cli.command(&["watch", &id]).spawn()?;
        let callback_id = client.pending_callback(&id, "approval", DONE).await?;
        let shown = cli.run(&["status", &id]).await?.ok()?;
        ensure!(
            shown.stdout.contains("callback approval (operation "),
            "{shown:?}"
        );
        ensure!(
            shown.stdout.contains(&callback_id),
            "status shows the id: {shown:?}"
        );
        cli.run(&["callbacks", "heartbeat", &callback_id])
            .await?
            .ok()?;
        let done = cli
            .run(&[
                "callbacks",
                "succeed",
                &callback_id,
                r#"{"ok": true}"#,
                "--json",
            ])
            .await?
            .ok()?
            .json()?;
        ensure!(
            done["accepted"] == "succeed" && done["execution_id"] == id.as_str(),
            "{done}"
        );
        let watched = finish(watch).await?.ok()?;
        ensure!(
            watched.stdout.contains("CallbackStarted approval ["),
            "{watched:?}"
        );
        ensure!(
            watched
                .stdout
                .contains(&format!("callback id {callback_id}")),
            "the line shows the id to complete it with: {watched:?}"
        );
        ensure!(
            watched
                .stdout
                .lines()
                .last()
                .is_some_and(|l| l.contains("ExecutionSucceeded")),
            "{watched:?}"
        );
        // A second answer is refused: the callback completed.
        let again = cli
            .run(&["callbacks", "succeed", &callback_id, "--json"])
            .await?
            .exited(REFUSED)?;
        ensure!(
            again.error_code()? == "callback_already_completed",
            "{again:?}"
        );

        // Failed with the CLI: the workflow fails with that error, and watch says so (8).
        let id = start(&cli, "callback", &json!({"timeout_seconds": 300})).await?;
        let callback_id = client.pending_callback(&id, "approval", DONE).await?;
        let failed = cli
            .run(&[
                "callbacks",
                "fail",
                &callback_id,
                "--type",
                "Denied",
                "--message",
                "no",
            ])
            .await?
            .ok()?;
        ensure!(failed.stdout.contains(" failed (execution "), "{failed:?}");
        let watched = cli
            .run(&["watch", &id, "--json"])
            .await?
            .exited(NOT_SUCCEEDED)?;
        let lines = watched.json_lines()?;
        let last = lines.last().context("watch printed nothing")?;
        ensure!(
            last["status"] == "FAILED" && last["error"]["error_type"] == "Denied",
            "the last line is the execution: {last}"
        );
        ensure!(
            lines[..lines.len() - 1]
                .iter()
                .all(|e| e["EventId"].is_u64()),
            "the others are events: {lines:?}"
        );
        ensure!(watched.error_code()? == "not_succeeded", "{watched:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_a_running_execution_once() {
    let host = host().await;
    guard(120, async {
        upload(&host.client(), &["sleep"]).await?;
        let cli = Cli::new(host.base_url());
        let id = start(&cli, "sleep", &json!({"seconds": 3600})).await?;
        let stopped = cli.run(&["stop", &id]).await?.ok()?;
        ensure!(
            stopped.stdout == format!("{id} stopped: sleep version 1, STOPPED\n"),
            "{stopped:?}"
        );
        let again = cli.run(&["stop", &id, "--json"]).await?.exited(REFUSED)?;
        ensure!(again.error_code()? == "execution_not_running", "{again:?}");
        let watched = cli.run(&["watch", &id]).await?.exited(NOT_SUCCEEDED)?;
        ensure!(watched.stdout.contains("ExecutionStopped"), "{watched:?}");
        ensure!(
            watched.stderr.contains(&format!("{id} STOPPED")),
            "{watched:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_with_their_class() {
    let host = host().await;
    guard(120, async {
        upload(&host.client(), &["steps3"]).await?;
        let cli = Cli::new(host.base_url());

        let missing = cli
            .run(&["status", "ex_missing"])
            .await?
            .exited(NOT_FOUND)?;
        ensure!(
            missing.stderr.starts_with("error: execution_not_found: "),
            "the API's code and message: {missing:?}"
        );
        let missing = cli
            .run(&["history", "ex_missing", "--json"])
            .await?
            .exited(NOT_FOUND)?;
        ensure!(
            missing.error_code()? == "execution_not_found",
            "{missing:?}"
        );
        let run = cli
            .run(&["start", "no-such-workflow"])
            .await?
            .exited(NOT_FOUND)?;
        ensure!(run.stderr.contains("workflow_not_found"), "{run:?}");
        let run = cli
            .run(&["callbacks", "succeed", "cb_missing"])
            .await?
            .exited(NOT_FOUND)?;
        ensure!(run.stderr.contains("callback_not_found"), "{run:?}");

        // Usage: bad arguments (clap's and the CLI's own checks) and requests the API refuses
        // as malformed.
        let run = cli
            .run(&["start", "steps3", "--input", "not json"])
            .await?
            .exited(USAGE)?;
        ensure!(
            run.stderr.contains("--input: the argument is not JSON"),
            "{run:?}"
        );
        cli.run(&["list", "--status", "asleep"])
            .await?
            .exited(USAGE)?;
        let run = cli
            .run(&["start", "steps3", "--name", &"n".repeat(300), "--json"])
            .await?
            .exited(USAGE)?;
        ensure!(run.error_code()? == "invalid_name", "{run:?}");

        // Nothing listening: a port that was free a moment ago.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let run = Cli::new(&url).run(&["list"]).await?.exited(CONNECTION)?;
        ensure!(
            run.stderr.contains(&format!("{url}/")),
            "names the URL: {run:?}"
        );
        let run = Cli::new(&url)
            .run(&["status", "ex_1", "--json"])
            .await?
            .exited(CONNECTION)?;
        ensure!(run.error_code()? == "connection_failed", "{run:?}");
        let run = Cli::new("localhost:8080")
            .run(&["list"])
            .await?
            .exited(USAGE)?;
        ensure!(run.stderr.contains("--url"), "{run:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_keys_and_components_on_a_keyed_host() {
    let host = keyed_host(HostOptions::default()).await;
    guard(120, async {
        let cli = Cli::new(host.base_url());
        let admin = cli.clone().env("AEGIS_ADMIN_KEY", TEST_ADMIN_KEY);

        let run = cli
            .run(&["tenants", "list", "--json"])
            .await?
            .exited(AUTH)?;
        ensure!(run.error_code()? == "unauthorized", "{run:?}");
        cli.run(&["tenants", "list", "--admin-key", "wrong"])
            .await?
            .exited(AUTH)?;

        let created = admin
            .run(&[
                "tenants",
                "create",
                "cli-acme",
                "--quotas",
                r#"{"max_payload_kb": 64}"#,
                "--json",
            ])
            .await?
            .ok()?
            .json()?;
        let tenant = created["tenant_id"]
            .as_str()
            .context("tenant_id")?
            .to_string();
        let key = created["api_key"].as_str().context("api_key")?.to_string();
        let again = admin
            .run(&["tenants", "create", "cli-acme", "--json"])
            .await?
            .exited(REFUSED)?;
        ensure!(again.error_code()? == "tenant_name_taken", "{again:?}");
        let listed = admin.run(&["tenants", "list"]).await?.ok()?;
        ensure!(
            listed.stdout.contains(&tenant) && listed.stdout.contains("max_payload_kb=64"),
            "{listed:?}"
        );
        // By name or by id.
        let shown = admin.run(&["tenants", "show", "cli-acme"]).await?.ok()?;
        ensure!(
            shown.stdout.starts_with(&format!("tenant   {tenant}\n")),
            "{shown:?}"
        );
        ensure!(shown.stdout.contains("(override)"), "{shown:?}");
        let shown = admin
            .run(&["tenants", "show", &tenant, "--json"])
            .await?
            .ok()?
            .json()?;
        ensure!(shown["quotas"]["max_payload_kb"] == 64, "{shown}");
        admin
            .run(&["tenants", "show", "nobody"])
            .await?
            .exited(NOT_FOUND)?;
        let set = admin
            .run(&[
                "tenants",
                "quotas",
                "cli-acme",
                r#"{"max_payload_kb": 128}"#,
                "--json",
            ])
            .await?
            .ok()?
            .json()?;
        ensure!(set["quotas"]["max_payload_kb"] == 128, "{set}");

        // The tenant's key, from the environment, reaches its components; another key does
        // not, and a revoked one is refused.
        let tenant_cli = cli.clone().env("AEGIS_API_KEY", &key);
        host.client()
            .with_key(&key)
            .upload_fixture("steps3")
            .await?;
        let components = tenant_cli
            .run(&["components", "--json"])
            .await?
            .ok()?
            .json()?;
        ensure!(
            components["components"][0]["name"] == "steps3",
            "{components}"
        );
        let versions = tenant_cli
            .run(&["components", "steps3", "--json"])
            .await?
            .ok()?
            .json()?;
        ensure!(versions["versions"][0]["version"] == 1, "{versions}");
        let one = tenant_cli
            .run(&["components", "steps3", "--version", "1"])
            .await?
            .ok()?;
        ensure!(one.stdout.starts_with("NAME    VERSION  DIGEST"), "{one:?}");
        tenant_cli
            .run(&["components", "steps3", "--version", "9"])
            .await?
            .exited(NOT_FOUND)?;
        cli.run(&["components", "--api-key", "aeg_wrong"])
            .await?
            .exited(AUTH)?;

        let added = admin
            .run(&["tenants", "add-key", "cli-acme", "--json"])
            .await?
            .ok()?
            .json()?;
        let second = added["api_key"].as_str().context("api_key")?.to_string();
        let keys = admin
            .run(&["tenants", "keys", &tenant, "--json"])
            .await?
            .ok()?
            .json()?;
        ensure!(keys["keys"].as_array().map(Vec::len) == Some(2), "{keys}");
        let first_id = created["key_id"].as_str().context("key_id")?;
        admin
            .run(&["tenants", "revoke-key", "cli-acme", first_id])
            .await?
            .ok()?;
        tenant_cli.run(&["components"]).await?.exited(AUTH)?;
        cli.run(&["components", "--api-key", &second]).await?.ok()?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_and_approve_decide_a_pipeline_run_waiting_for_review() {
    let agents = DemoAgents::start(None).await.expect("demo agents");
    let host = pipeline_host(&demo_config(&agents), HostOptions::default()).await;
    guard(120, async {
        let client = host.client();
        pipeline::upload(&client).await?;
        let cli = Cli::new(host.base_url());
        let id = pipeline::start(&client, TOPIC, parameters()).await?;
        let mut seen = Vec::new();
        pipeline::poll_until(&client, &id, RUN, &mut seen, |v| {
            v["status"] == "AWAITING_APPROVAL"
        })
        .await?;
        let run = cli
            .run(&["reject", &id, "--comment", "not convincing"])
            .await?
            .ok()?;
        ensure!(
            run.stdout == format!("{id} rejected; the run is RUNNING\n"),
            "{run:?}"
        );
        let view = pipeline::wait_ended(&client, &id, RUN, &mut seen).await?;
        ensure!(
            view["result"]
                == json!({"status": "REJECTED", "topic": TOPIC, "comment": "not convincing"}),
            "the decision and its comment reached the run: {view}"
        );
        // Too late for another decision; and a run that does not exist.
        let late = cli
            .run(&["approve", &id, "--json"])
            .await?
            .exited(REFUSED)?;
        ensure!(late.error_code()? == "not_awaiting_approval", "{late:?}");
        let missing = cli
            .run(&["approve", "ex_missing", "--comment", "ok", "--json"])
            .await?
            .exited(NOT_FOUND)?;
        ensure!(missing.error_code()? == "workflow_not_found", "{missing:?}");
        Ok(())
    })
    .await;
    drop(agents);
}

/// The guest workspace of this repository.
fn guest_workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .join("guest-workflows")
}

/// Variables of this test's own build that must not reach the cargo that `deploy` runs (as in
/// `tests/build.rs`): they would redirect its output or change its flags.
const LEAKY_VARS: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
];

/// A guest crate outside the guest workspace, as an author's would be: the `steps3` fixture's
/// code under another name, depending on the SDK by path, with the guest workspace's lock file
/// and release profile (so its dependencies are the ones already built).
fn author_crate(dir: &Path) -> Result<()> {
    let guests = guest_workspace();
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::copy(
        guests.join("fixtures/steps3/src/lib.rs"),
        dir.join("src/lib.rs"),
    )?;
    std::fs::copy(guests.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    let manifest = format!(
        r#"[package]
name = "cli-deploy-probe"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
aegis-sdk = {{ path = {sdk:?} }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

[workspace]
"#,
        sdk = guests.join("sdk").display().to_string()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_builds_a_guest_crate_and_uploads_it() {
    let host = host().await;
    guard(600, async {
        let dir = tempfile::tempdir()?;
        let krate = dir.path().join("probe");
        author_crate(&krate)?;
        let cli = Cli::new(host.base_url());
        // Built into the guest workspace's target folder, where its dependencies are already
        // compiled; the build's messages say where the .wasm is, wherever that folder is.
        let target = guest_workspace().join("target");
        let deploy = |args: &[&str]| {
            let mut cmd = cli.command(args);
            for var in LEAKY_VARS {
                cmd.env_remove(var);
            }
            cmd.env("CARGO_TARGET_DIR", &target);
            cmd
        };
        let path = krate.display().to_string();
        let run = finish(deploy(&["deploy", &path, "--json"]).spawn()?)
            .await?
            .ok()?;
        let component = run.json()?;
        ensure!(
            component["name"] == "cli-deploy-probe" && component["version"] == 1,
            "{component}"
        );
        let wasm = std::fs::read(target.join("wasm32-wasip2/release/cli_deploy_probe.wasm"))?;
        ensure!(
            component["size"] == wasm.len(),
            "the bytes built: {component}"
        );

        // It runs: the fixture's code, under the crate's name.
        let id = start(&cli, "cli-deploy-probe", &json!("x")).await?;
        cli.run(&["watch", &id]).await?.ok()?;
        let exec = host.client().get(&id).await?;
        ensure!(exec["result"] == "x-a-b-c", "{exec}");

        // Deploying it again uploads the same bytes: no new version.
        let run = finish(deploy(&["deploy", &path]).spawn()?).await?.ok()?;
        ensure!(
            run.stdout
                .starts_with("unchanged: cli-deploy-probe version 1 (sha256:"),
            "{run:?}"
        );
        // The crate's Cargo.toml names it too, and --name names the component.
        let manifest = krate.join("Cargo.toml").display().to_string();
        let run = finish(deploy(&["deploy", &manifest, "--name", "probe-renamed"]).spawn()?)
            .await?
            .ok()?;
        ensure!(
            run.stdout
                .starts_with("deployed probe-renamed version 1 (sha256:"),
            "{run:?}"
        );
        let listed = cli.run(&["components"]).await?.ok()?;
        ensure!(
            listed.stdout.contains("cli-deploy-probe") && listed.stdout.contains("probe-renamed"),
            "{listed:?}"
        );

        // What is not a guest crate is refused before anything builds.
        let workspace = guest_workspace().display().to_string();
        let run = cli.run(&["deploy", &workspace]).await?.exited(USAGE)?;
        ensure!(
            run.stderr.contains("is a workspace, not a crate"),
            "{run:?}"
        );
        let sdk = guest_workspace().join("sdk").display().to_string();
        let run = cli.run(&["deploy", &sdk]).await?.exited(USAGE)?;
        ensure!(run.stderr.contains("is not a cdylib"), "{run:?}");
        let run = cli
            .run(&["deploy", &dir.path().join("nothing").display().to_string()])
            .await?
            .exited(USAGE)?;
        ensure!(run.stderr.contains("does not exist"), "{run:?}");
        Ok(())
    })
    .await;
}

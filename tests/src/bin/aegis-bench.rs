//! `aegis-bench`: drives a real `aegis serve` over REST, exactly as a client would, and prints
//! one JSON line per workload on stdout (progress goes to stderr).
//!
//! Workloads:
//! - `W1`: `steps3` ×300 at concurrency 1, then ×300 with 32 closed-loop clients; latency is
//!   submit → result;
//! - `W2`: `callback` ×100 one after the other; latency is callback delivery → result;
//! - `W3`: `many_steps` with 1,000 steps once; total and per-step time;
//! - `suspended`: 10,000 `callback` executions suspended at once; the host's RSS before and after.
//!
//! Usage: `aegis-bench [--only W1,W2,W3,suspended] [--quick]` (`--quick` divides the counts by
//! 10). Run it with `cargo run --release -p aegis-tests --bin aegis-bench`; it uses the `aegis`
//! binary of the same profile (or `$AEGIS_BIN`). Under `cargo run` it first brings that binary
//! up to date with `cargo build -p aegis` in the same profile, so it never measures a stale host.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aegis_tests::client::TERMINAL;
use aegis_tests::{Client, Host, HostOptions};
use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use tokio::task::JoinSet;

const WORKLOADS: &[&str] = &["W1", "W2", "W3", "suspended"];

struct Args {
    only: Vec<String>,
    quick: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        only: WORKLOADS.iter().map(|w| w.to_string()).collect(),
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let only = match arg.as_str() {
            "--quick" => {
                args.quick = true;
                continue;
            }
            "--only" => it.next().context("--only needs a list, e.g. W1,W3")?,
            s if s.starts_with("--only=") => s["--only=".len()..].to_string(),
            "-h" | "--help" => {
                eprintln!("usage: aegis-bench [--only W1,W2,W3,suspended] [--quick]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        };
        args.only = Vec::new();
        for name in only.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let name = if name.eq_ignore_ascii_case("memory") {
                "suspended"
            } else {
                name
            };
            match WORKLOADS.iter().find(|w| w.eq_ignore_ascii_case(name)) {
                Some(w) => args.only.push(w.to_string()),
                None => bail!("unknown workload {name:?}; known: {WORKLOADS:?}"),
            }
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let scale = if args.quick { 10 } else { 1 };
    let wants = |w: &str| args.only.iter().any(|o| o == w);

    build_host()?;
    eprintln!(
        "aegis-bench: starting aegis ({})",
        aegis_tests::host::aegis_bin().display()
    );
    let host = Host::start(HostOptions::default()).await?;
    let c = host.client();
    eprintln!(
        "aegis-bench: host at {}, log {}",
        host.base_url(),
        host.log_path().display()
    );
    for fixture in ["steps3", "callback", "many_steps"] {
        c.upload_fixture(fixture).await?;
    }

    if wants("W1") {
        for concurrency in [1, 32] {
            let line = w1(&c, 300 / scale, concurrency).await.context("W1")?;
            println!("{line}");
        }
    }
    if wants("W2") {
        println!("{}", w2(&c, 100 / scale).await.context("W2")?);
    }
    if wants("W3") {
        println!("{}", w3(&c, 1000 / scale as u64).await.context("W3")?);
    }
    eprintln!(
        "aegis-bench: replay of a 1,000-step history is measured inside the host: \
         `cargo bench -p aegis --bench replay` (also run by `make bench`)"
    );
    if wants("suspended") {
        let pid = host.pid().context("host pid")?;
        println!(
            "{}",
            suspended(&c, pid, 10_000 / scale, 32)
                .await
                .context("suspended")?
        );
    }
    Ok(())
}

/// Under `cargo run` (`$CARGO` set) and without `$AEGIS_BIN`: builds `aegis` in this
/// executable's profile, so that the bench runs against the current host code.
fn build_host() -> Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    if std::env::var_os("AEGIS_BIN").is_some_and(|b| !b.is_empty()) {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(|dir| dir.file_name())
        .is_some_and(|name| name == "release");
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-p", "aegis"]);
    if release {
        cmd.arg("--release");
    }
    eprintln!(
        "aegis-bench: cargo build -p aegis{}",
        if release { " --release" } else { "" }
    );
    let status = cmd.status().context("running cargo build -p aegis")?;
    if !status.success() {
        bail!("cargo build -p aegis failed ({status})");
    }
    Ok(())
}

/// Long-polls until the execution is terminal; fails unless it SUCCEEDED.
async fn finish(c: &Client, id: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let exec = c
            .get_raw(id, Some(30_000))
            .await?
            .ok(&format!("waiting for {id}"))?;
        let status = exec["status"].as_str().unwrap_or("");
        if status == "SUCCEEDED" {
            return Ok(exec);
        }
        if TERMINAL.contains(&status) {
            bail!("execution {id} ended {status}: {exec}");
        }
        if Instant::now() > deadline {
            bail!("execution {id} still {status} after 300 s");
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The nearest-rank percentile `p` (0..=100) of sorted samples, in ms.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `steps3` × `n` with `concurrency` closed-loop clients.
async fn w1(c: &Client, n: usize, concurrency: usize) -> Result<Value> {
    eprintln!("W1: {n} × steps3 at concurrency {concurrency}");
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..concurrency {
        let (c, next) = (c.clone(), next.clone());
        clients.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let input = format!("w{i}");
                let t0 = Instant::now();
                let id = c.start("steps3", json!(input)).await?;
                let exec = finish(&c, &id).await?;
                latencies.push(t0.elapsed());
                if exec["result"] != json!(format!("{input}-a-b-c")) {
                    bail!("wrong result: {exec}");
                }
            }
        });
    }
    let mut latencies = Vec::with_capacity(n);
    while let Some(joined) = clients.join_next().await {
        latencies.extend(joined??);
    }
    let elapsed = began.elapsed();
    latencies.sort();
    Ok(json!({
        "workload": "W1",
        "concurrency": concurrency,
        "workflows": n,
        "throughput_per_s": round2(n as f64 / elapsed.as_secs_f64()),
        "p50_ms": percentile(&latencies, 50.0),
        "p99_ms": percentile(&latencies, 99.0),
    }))
}

/// `callback` × `n` in sequence; latency from callback delivery to result.
async fn w2(c: &Client, n: usize) -> Result<Value> {
    eprintln!("W2: {n} × callback, one after the other");
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let id = c
            .start(
                "callback",
                json!({"timeout_seconds": 3600, "heartbeat_seconds": null}),
            )
            .await?;
        let cb = c
            .pending_callback(&id, "approval", Duration::from_secs(60))
            .await?;
        let t0 = Instant::now();
        c.callback_succeed(&cb, &json!(i))
            .await?
            .ok("delivering the callback")?;
        let exec = finish(c, &id).await?;
        latencies.push(t0.elapsed());
        if exec["result"] != json!({"callback": i}) {
            bail!("wrong result: {exec}");
        }
    }
    latencies.sort();
    Ok(json!({
        "workload": "W2",
        "callbacks": n,
        "p50_ms": percentile(&latencies, 50.0),
        "p99_ms": percentile(&latencies, 99.0),
    }))
}

/// One `many_steps` execution with `steps` steps.
async fn w3(c: &Client, steps: u64) -> Result<Value> {
    eprintln!("W3: many_steps with {steps} steps");
    let t0 = Instant::now();
    let id = c.start("many_steps", json!({"steps": steps})).await?;
    let exec = finish(c, &id).await?;
    let total = t0.elapsed();
    let expected = json!({"steps": steps, "sum": steps * steps.saturating_sub(1) / 2});
    if exec["result"] != expected {
        bail!("wrong result: {exec}");
    }
    Ok(json!({
        "workload": "W3",
        "steps": steps,
        "total_ms": ms(total),
        "per_step_ms": (ms(total) / steps.max(1) as f64 * 1000.0).round() / 1000.0,
    }))
}

/// The resident set of `pid`, in MiB, from `/proc/<pid>/status`.
fn rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kb: f64 = line
        .split_whitespace()
        .nth(1)
        .context("VmRSS without a value")?
        .parse()
        .context("VmRSS value")?;
    Ok(round2(kb / 1024.0))
}

/// `n` `callback` executions, all suspended on their callback at once; the host's RSS.
async fn suspended(c: &Client, pid: u32, n: usize, concurrency: usize) -> Result<Value> {
    let idle = rss_mb(pid)?;
    eprintln!(
        "suspended: starting {n} callback executions at concurrency {concurrency} (RSS {idle} MiB)"
    );
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..concurrency {
        let (c, next) = (c.clone(), next.clone());
        clients.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                if i > 0 && i % 1000 == 0 {
                    eprintln!("suspended: {i} started");
                }
                let id = c
                    .start(
                        "callback",
                        json!({"timeout_seconds": 3600, "heartbeat_seconds": null}),
                    )
                    .await?;
                c.pending_callback(&id, "approval", Duration::from_secs(300))
                    .await?;
            }
        });
    }
    while let Some(joined) = clients.join_next().await {
        joined??;
    }
    let elapsed = began.elapsed();
    let rss = rss_mb(pid)?;
    eprintln!(
        "suspended: {n} executions suspended in {:.1} s, RSS {rss} MiB",
        elapsed.as_secs_f64()
    );
    Ok(json!({
        "workload": "suspended",
        "executions": n,
        "rss_mb": rss,
        "rss_idle_mb": idle,
        "rss_per_execution_kb": round2((rss - idle).max(0.0) * 1024.0 / n.max(1) as f64),
    }))
}

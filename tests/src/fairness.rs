//! The fairness measurement: one tenant floods the host with CPU-heavy executions while another
//! runs a short workflow; how long does the second wait?
//!
//! Tenant A starts `flood` executions of `infinite_loop` under a CPU deadline of `burn_ms`, so
//! each one computes for that long and then fails (`Aegis.CpuDeadlineExceeded`). Once A has
//! started a tenth of them, and while it starts the rest, tenant B runs `probes` executions of
//! `steps3`, one after the other, and each one's time from start to result is recorded. With per-tenant queues served in turn, B waits for at most one
//! of A's activations per turn, not for A's whole backlog. Used by `aegis-bench --only fairness`;
//! the numbers are printed, never asserted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::{Client, Host, HostOptions};

/// How the measurement is sized.
#[derive(Clone, Copy, Debug)]
pub struct Fairness {
    /// Executions tenant A starts.
    pub flood: usize,
    /// CPU each of A's executions burns, in ms (its CPU deadline).
    pub burn_ms: u64,
    /// Executions tenant B runs one after the other.
    pub probes: usize,
}

impl Default for Fairness {
    fn default() -> Self {
        Self {
            flood: 2_000,
            burn_ms: 100,
            probes: 30,
        }
    }
}

/// Runs the measurement on a fresh keyed host and returns one JSON line of results.
pub async fn run(sizes: Fairness) -> Result<Value> {
    let host = Host::start(HostOptions::default().keyed())
        .await
        .context("starting the fairness host")?;
    eprintln!(
        "fairness: host at {}, log {}",
        host.base_url(),
        host.log_path().display()
    );
    let tenant = |name: &str, quotas: Value| {
        let admin = host.admin();
        let host_client = host.client();
        let name = name.to_string();
        async move {
            let body = admin.create_tenant(&name, quotas).await?;
            let key = body["api_key"].as_str().context("an api_key")?.to_string();
            anyhow::Ok(host_client.with_key(&key))
        }
    };
    let unlimited = json!({"requests_per_second": 1_000_000, "request_burst": 10_000_000});
    let mut a_quotas = unlimited.clone();
    a_quotas["cpu_deadline_ms"] = json!(sizes.burn_ms);
    let a = tenant("flooder", a_quotas).await?;
    let b = tenant("prober", unlimited).await?;
    a.upload_fixture("infinite_loop").await?;
    b.upload_fixture("steps3").await?;

    eprintln!(
        "fairness: tenant A starts {} × infinite_loop ({} ms of CPU each); tenant B runs {} × \
         steps3 once A has started a tenth of them",
        sizes.flood, sizes.burn_ms, sizes.probes
    );
    let began = Instant::now();
    let started = Arc::new(AtomicUsize::new(0));
    let mut starts = JoinSet::new();
    for chunk in 0..8 {
        let (a, started) = (a.clone(), started.clone());
        let n = sizes.flood / 8 + usize::from(chunk < sizes.flood % 8);
        starts.spawn(async move {
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                ids.push(a.start("infinite_loop", json!(null)).await?);
                started.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(ids)
        });
    }
    // B's probes run while A is still starting (and its backlog still growing).
    while started.load(Ordering::Relaxed) < sizes.flood / 10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut latencies = Vec::with_capacity(sizes.probes);
    for i in 0..sizes.probes {
        let t0 = Instant::now();
        let id = b.start("steps3", json!(format!("p{i}"))).await?;
        let result = b.result(&id, Duration::from_secs(600)).await?;
        ensure!(
            result == json!(format!("p{i}-a-b-c")),
            "probe {i}: {result}"
        );
        latencies.push(t0.elapsed());
    }
    let a_started_during_probes = started.load(Ordering::Relaxed);
    let mut flood_ids = Vec::with_capacity(sizes.flood);
    while let Some(ids) = starts.join_next().await {
        flood_ids.extend(ids??);
    }
    let started_in = began.elapsed();
    let a_done_during_probes = count_done(&a, &flood_ids).await?;
    latencies.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let pct = |p: f64| {
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        ms(latencies[rank.clamp(1, latencies.len()) - 1])
    };
    Ok(json!({
        "workload": "fairness",
        "flood": sizes.flood,
        "burn_ms": sizes.burn_ms,
        "probes": sizes.probes,
        "b_p50_ms": pct(50.0),
        "b_p99_ms": pct(99.0),
        "b_max_ms": ms(*latencies.last().expect("at least one probe")),
        "a_started_in_s": (started_in.as_secs_f64() * 10.0).round() / 10.0,
        "a_started_when_b_finished": a_started_during_probes,
        "a_ended_when_all_started": a_done_during_probes,
    }))
}

/// How many of `ids` have ended.
async fn count_done(client: &Client, ids: &[String]) -> Result<usize> {
    let mut done = 0;
    for id in ids {
        let exec = client.get(id).await?;
        if exec["status"] != "RUNNING" {
            done += 1;
        }
    }
    Ok(done)
}

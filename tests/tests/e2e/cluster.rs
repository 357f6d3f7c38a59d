//! Several hosts, one DynamoDB table and one S3 bucket, on a moto server of each test's own
//! (their load would slow every test sharing the run's server). Each host has its own data dir,
//! so the components uploaded to one are fetched from S3 by the other.
//!
//! - `two_hosts_one_table_survive_a_kill9`: 100 executions started across two hosts, one
//!   host SIGKILLed mid-run; the other takes its executions over once their leases expire, and
//!   every execution completes with the right result, no step that had succeeded running again,
//!   and every execution's end event reaches the webhook both hosts post to.
//! - `a_paused_host_loses_its_lease_and_its_late_writes_are_refused`: a host frozen (SIGSTOP)
//!   in the middle of an activation loses the lease to the other host, which finishes the
//!   execution; when the frozen host resumes, its next checkpoint carries a stale fencing token
//!   and is refused, and the history shows every step exactly once.
//!
//! - `two_hosts_deliver_each_event_once`: both hosts read the same event outbox, but only the
//!   holder of its delivery role posts, so the webhook gets every event exactly once.
//!
//! Without a server the tests are skipped, saying so, unless `AEGIS_REQUIRE_DYNAMODB` is set.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aegis_tests::agents::WebhookReceiver;
use aegis_tests::{Host, HostOptions, aws};
use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::kinds::Kind;
use crate::{
    Expected, check_completed, check_history_shape, check_steps_once, guard, host_with, types,
    upload,
};

/// Lease lifetime in these tests: short, so a takeover happens within the test's patience.
const LEASE_TTL_MS: u64 = 5_000;
const SWEEP_MS: u64 = 3_000;
/// Steps of the longer step executions.
const MANY: u64 = 5;

/// A moto server, a fresh table and bucket on it, and the configuration that points hosts at
/// them.
struct Shared {
    config: tempfile::NamedTempFile,
    _moto: aws::OwnMoto,
}

impl Shared {
    async fn create() -> Result<Shared> {
        let moto = aws::OwnMoto::start().await?;
        let endpoint = moto.endpoint();
        let name = aws::unique("cluster");
        aws::Moto::new(endpoint).create_bucket(&name).await?;
        aws::create_tables(endpoint, &format!("{name}-"))?;
        let region = aws::REGION;
        let config = format!(
            "[store]\nbackend = \"dynamodb\"\ntable_prefix = \"{name}-\"\nendpoint_url = \"{endpoint}\"\nregion = \"{region}\"\n\
             [artifacts]\nbackend = \"s3\"\nbucket = \"{name}\"\nendpoint_url = \"{endpoint}\"\nregion = \"{region}\"\nforce_path_style = true\n\
             [cluster]\nlease_ttl_ms = {LEASE_TTL_MS}\nsweep_interval_ms = {SWEEP_MS}\n"
        );
        let file = tempfile::Builder::new()
            .prefix("aegis-cluster-")
            .suffix(".toml")
            .tempfile()?;
        std::fs::write(file.path(), config)?;
        Ok(Shared {
            config: file,
            _moto: moto,
        })
    }

    /// Starts one more host on the shared table and bucket.
    async fn host(&self) -> Host {
        self.host_env(&[]).await
    }

    /// As [`Shared::host`], with more environment.
    async fn host_env(&self, env: &[(&str, String)]) -> Host {
        let mut opts = HostOptions {
            extra_args: vec!["--config".into(), self.config.path().display().to_string()],
            ..HostOptions::default()
        };
        for (name, value) in aws::credentials_env() {
            opts = opts.env(&name, value);
        }
        for (name, value) in env {
            opts = opts.env(name, value);
        }
        host_with(opts).await
    }
}

/// The two-host test's mix, by index: steps (3 or [`MANY`]), durable sleeps and callbacks.
/// Three components, so the debug-built hosts compile little.
fn kind_for(i: usize) -> Kind {
    match i % 10 {
        0 | 1 => Kind::ManySteps(3),
        2 | 3 => Kind::Sleep(2 + (i as u64 % 2)),
        4 | 5 => Kind::Callback,
        _ => Kind::ManySteps(MANY),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_one_table_survive_a_kill9() {
    // Required, and present, wherever the run's server is.
    if aws::moto_endpoint("the multi-host tests").is_none() {
        return;
    }
    let shared = guard(60, Shared::create()).await;
    // Both post to one webhook; whichever holds the outbox role when A dies, every end event
    // still arrives.
    let webhook = WebhookReceiver::start().await.expect("webhook receiver");
    let env = [("AEGIS_WEBHOOK_URL", webhook.url())];
    let mut a = shared.host_env(&env).await;
    let b = shared.host_env(&env).await;
    // About 170 s on an idle 2-core machine; a machine three times as busy took 540 s and more,
    // most of it in moto, whose transactions copy the whole table.
    guard(900, async {
        let (ca, cb) = (a.client(), b.client());
        // Uploaded to A only: B fetches them from S3 when it first runs one.
        upload(&ca, &["sleep", "callback", "many_steps"]).await?;
        let began = Instant::now();

        // Started ten at a time, half through each host.
        let mut starts = JoinSet::new();
        let mut executions: Vec<Option<(String, Kind)>> = vec![None; 100];
        for i in 0..100 {
            let kind = kind_for(i);
            let c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
            starts.spawn(async move {
                let id = c.start(kind.workflow(), kind.input()).await;
                (i, kind, id)
            });
            if starts.len() >= 10
                && let Some(joined) = starts.join_next().await
            {
                let (i, kind, id) = joined?;
                executions[i] = Some((id?, kind));
            }
        }
        while let Some(joined) = starts.join_next().await {
            let (i, kind, id) = joined?;
            executions[i] = Some((id?, kind));
        }
        let executions: Vec<(String, Kind)> = executions.into_iter().flatten().collect();
        eprintln!(
            "100 executions started in {:.1} s",
            began.elapsed().as_secs_f64()
        );

        // Kill A at once: what it was running is orphaned mid-run.
        let mut on_a = Vec::new();
        let mut running: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, (id, kind)) in executions.iter().enumerate() {
            let exec = cb.get(id).await?;
            if exec["status"] != "RUNNING" {
                continue;
            }
            *running.entry(kind.workflow()).or_default() += 1;
            if i % 2 == 0 && kind.is_steps() {
                on_a.push((id.clone(), exec["updated_at"].clone()));
            }
        }
        eprintln!(
            "killing host A with {} of its step executions unfinished; running: {running:?}",
            on_a.len()
        );
        ensure!(
            !on_a.is_empty(),
            "host A had finished everything before the kill"
        );
        a.kill9()?;
        let killed = Instant::now();

        // Takeover: how long until each unfinished execution of A moves again, on B. Polled
        // every 250 ms: each poll is a read on the one-request-at-a-time moto, and twenty
        // pollers at 25 ms kept it busy enough to delay the takeover they were timing. The
        // lease bound is 5 s + a 3 s sweep + an activation; the patience allows for moto's
        // queue on a loaded machine.
        let mut moved = JoinSet::new();
        for (id, before) in on_a {
            let cb = cb.clone();
            moved.spawn(async move {
                loop {
                    let exec = cb.get(&id).await?;
                    if exec["updated_at"] != before {
                        return Ok::<_, anyhow::Error>(killed.elapsed());
                    }
                    if killed.elapsed() > Duration::from_secs(90) {
                        bail!("{id} did not move within 90 s of the kill");
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
        }

        // Callback ids, read through B: those of A's executions appear once B has taken them
        // over.
        let mut callbacks = Vec::new();
        for (i, (id, kind)) in executions.iter().enumerate() {
            if matches!(kind, Kind::Callback) {
                let cb_id = cb
                    .pending_callback(id, "approval", Duration::from_secs(120))
                    .await?;
                callbacks.push((i, cb_id));
            }
        }
        let mut delivered = vec![Value::Null; executions.len()];
        for (i, cb_id) in &callbacks {
            let value = json!({"approved": i});
            let reply = cb.callback_succeed(cb_id, &value).await?;
            ensure!(reply.status == 200, "callback {cb_id}: {reply:?}");
            delivered[*i] = value;
        }
        let mut takeovers = Vec::new();
        while let Some(joined) = moved.join_next().await {
            takeovers.push(joined??);
        }
        takeovers.sort();
        let expected: Vec<Expected> = executions
            .iter()
            .zip(&delivered)
            .map(|((id, kind), delivered)| Expected {
                id: id.clone(),
                label: format!("{kind:?}"),
                result: kind.expected(delivered),
                steps: kind.steps(),
            })
            .collect();
        let rerun = check_completed(&cb, &expected, Duration::from_secs(240), 1).await?;
        let all_done = killed.elapsed();
        if let (Some(first), Some(last)) = (takeovers.first(), takeovers.last()) {
            eprintln!(
                "takeover after the kill (lease {LEASE_TTL_MS} ms, sweep {SWEEP_MS} ms): \
                 {} executions, first moved after {:.2} s, median {:.2} s, last {:.2} s",
                takeovers.len(),
                first.as_secs_f64(),
                takeovers[takeovers.len() / 2].as_secs_f64(),
                last.as_secs_f64()
            );
        }
        eprintln!(
            "all 100 done {:.1} s after the kill; {rerun} interrupted step attempts ran again",
            all_done.as_secs_f64()
        );
        // The outbox went on after the kill: every end event reached the webhook.
        for (id, _) in &executions {
            webhook
                .wait_for("execution.succeeded", id, Duration::from_secs(60))
                .await?;
        }
        // B took over A's executions: its log says so.
        ensure!(
            std::fs::read_to_string(b.log_path())?.contains("took over an execution"),
            "host B's log shows no takeover"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_host_loses_its_lease_and_its_late_writes_are_refused() {
    // Required, and present, wherever the run's server is.
    if aws::moto_endpoint("the multi-host tests").is_none() {
        return;
    }
    let shared = guard(60, Shared::create()).await;
    let a = shared.host().await;
    let b = shared.host().await;
    guard(300, async {
        let (ca, cb) = (a.client(), b.client());
        upload(&ca, &["many_steps"]).await?;
        let steps: u64 = 60;
        let id = ca.start("many_steps", json!({"steps": steps})).await?;
        // Freeze A once it is well into the activation.
        let frozen_at = loop {
            let events = cb.history(&id).await?;
            let done = types(&events)
                .iter()
                .filter(|t| **t == "StepSucceeded")
                .count();
            if done >= 10 {
                a.pause()?;
                break done;
            }
            ensure!(
                !types(&events).contains(&"ExecutionSucceeded"),
                "the execution finished before A could be paused"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let paused = Instant::now();
        eprintln!("host A paused after {frozen_at} steps");
        let exec = cb.wait_done(&id, Duration::from_secs(180)).await?;
        eprintln!(
            "host B finished the execution {:.1} s after A was paused",
            paused.elapsed().as_secs_f64()
        );
        ensure!(exec["status"] == "SUCCEEDED", "{exec}");
        ensure!(
            exec["result"] == json!({"steps": steps, "sum": steps * (steps - 1) / 2}),
            "{exec}"
        );
        let before = cb.history(&id).await?;

        // A wakes up believing it still holds the lease; its next checkpoint is refused.
        a.resume()?;
        let refused = "was taken over (token";
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(a.log_path())?.contains(refused) {
            ensure!(
                Instant::now() < deadline,
                "host A never reported its write refused; its log:\n{}",
                a.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let after = cb.history(&id).await?;
        ensure!(
            before == after,
            "the history changed after A resumed: {} events before, {} after",
            before.len(),
            after.len()
        );
        check_history_shape(&after)?;
        let count = check_steps_once(&after, 1).with_context(|| format!("{:?}", types(&after)))?;
        ensure!(
            count.succeeded == steps as usize,
            "{} steps",
            count.succeeded
        );
        ensure!(
            std::fs::read_to_string(b.log_path())?.contains("took over an execution"),
            "host B's log shows no takeover"
        );
        Ok(())
    })
    .await;
}

/// Two hosts share one event outbox; one at a time holds its delivery role, so a webhook both
/// are configured with receives every event once, not once per host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_deliver_each_event_once() {
    if aws::moto_endpoint("the multi-host tests").is_none() {
        return;
    }
    let shared = guard(60, Shared::create()).await;
    let webhook = WebhookReceiver::start().await.expect("webhook receiver");
    let env = [("AEGIS_WEBHOOK_URL", webhook.url())];
    let a = shared.host_env(&env).await;
    let b = shared.host_env(&env).await;
    guard(240, async {
        let (ca, cb) = (a.client(), b.client());
        upload(&ca, &["many_steps"]).await?;
        let mut ids = Vec::new();
        for i in 0..20 {
            let client = if i % 2 == 0 { &ca } else { &cb };
            ids.push(client.start("many_steps", json!({"steps": 2})).await?);
        }
        for id in &ids {
            webhook
                .wait_for("execution.succeeded", id, Duration::from_secs(120))
                .await?;
        }
        // Long enough for the other host's delivery ticks (1 s) to post a duplicate, were
        // it going to.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let mut posts: BTreeMap<u64, usize> = BTreeMap::new();
        for post in webhook.posts() {
            let seq = post
                .header("x-aegis-delivery")
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("a post without X-Aegis-Delivery: {}", post.body))?;
            *posts.entry(seq).or_default() += 1;
        }
        let repeated: Vec<_> = posts.iter().filter(|(_, n)| **n > 1).collect();
        ensure!(
            repeated.is_empty(),
            "events posted more than once (seq, posts): {repeated:?} of {} events",
            posts.len()
        );
        // Each execution's execution.succeeded, at least.
        ensure!(
            posts.len() >= ids.len(),
            "{} events posted for {} executions",
            posts.len(),
            ids.len()
        );
        Ok(())
    })
    .await;
}

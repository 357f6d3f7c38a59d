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

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aegis_tests::agents::WebhookReceiver;
use aegis_tests::{Host, HostOptions, aws};
use anyhow::{Context as _, Result, ensure};
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
/// The two-host kill test's host ids, which the table's lease attributes name.
const HOST_A: &str = "host-a";
const HOST_B: &str = "host-b";
/// Steps of the longer step executions.
const MANY: u64 = 5;

/// A moto server, a fresh table and bucket on it, and the configuration that points hosts at
/// them.
struct Shared {
    config: tempfile::NamedTempFile,
    /// The table's name.
    table: String,
    moto: aws::Moto,
    _own: aws::OwnMoto,
}

impl Shared {
    async fn create() -> Result<Shared> {
        let own = aws::OwnMoto::start().await?;
        let endpoint = own.endpoint();
        let moto = aws::Moto::new(endpoint);
        let name = aws::unique("cluster");
        moto.create_bucket(&name).await?;
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
            table: format!("{name}-checkpoints"),
            moto,
            _own: own,
        })
    }

    /// The running executions whose lease `host` holds (or held, and never released), as the
    /// table itself says.
    async fn leased_to(&self, host: &str) -> Result<BTreeSet<String>> {
        let items = self
            .moto
            .scan_where(
                &self.table,
                json!({
                    "FilterExpression": "lease_owner = :host AND lease_exp > :zero AND #status = :running",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {
                        ":host": {"S": host}, ":zero": {"N": "0"}, ":running": {"S": "RUNNING"}
                    },
                }),
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| item["id"]["S"].as_str().map(str::to_string))
            .collect())
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
    let env = |host: &str| {
        [
            ("AEGIS_WEBHOOK_URL", webhook.url()),
            // The host refuses a webhook it could not sign for.
            ("AEGIS_WEBHOOK_SECRET", "cluster-webhook-secret".to_string()),
            ("AEGIS_HOST_ID", host.to_string()),
        ]
    };
    let mut a = shared.host_env(&env(HOST_A)).await;
    let b = shared.host_env(&env(HOST_B)).await;
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

        // Kill A while the table shows it holding the lease of running executions, so that
        // what it runs is orphaned mid-run. (Which host started an execution says little: a
        // busy host's queued executions may be run by the other one.)
        let deadline = Instant::now() + Duration::from_secs(120);
        while shared.leased_to(HOST_A).await?.is_empty() {
            ensure!(
                Instant::now() < deadline,
                "host A held no lease on a running execution for 120 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        a.kill9()?;
        let killed = Instant::now();
        // What A left behind: running executions whose lease it never released. moto serves one
        // request at a time, so this scan comes after whatever A sent before it died.
        let orphans = shared.leased_to(HOST_A).await?;
        eprintln!(
            "killed host A holding the lease of {} running executions",
            orphans.len()
        );
        ensure!(
            !orphans.is_empty(),
            "host A released every lease in the moment before it was killed"
        );

        // Takeover: how long until no orphan is leased to A any more. Polled with one scan
        // every 250 ms, so that polling does not load moto and delay the takeover it times.
        // The lease bound is 5 s + a 3 s sweep + an activation. The patience allows for a loaded
        // machine: there, B's own activation of an execution A had taken from it earlier was
        // seen to stall over 90 s before its refused write let B take the execution back.
        let moved_by = async {
            let mut left = orphans.clone();
            let mut moved = Vec::new();
            while !left.is_empty() {
                ensure!(
                    killed.elapsed() < Duration::from_secs(240),
                    "{left:?} still leased to host A 240 s after the kill"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
                let still = shared.leased_to(HOST_A).await?;
                let kept: BTreeSet<String> = left.intersection(&still).cloned().collect();
                moved.extend(std::iter::repeat_n(
                    killed.elapsed(),
                    left.len() - kept.len(),
                ));
                left = kept;
            }
            Ok::<_, anyhow::Error>(moved)
        };

        // Meanwhile, the callbacks are answered through B. Their ids, read through B: those
        // of A's executions appear once B has taken them over.
        let answer = async {
            let mut delivered = vec![Value::Null; executions.len()];
            for (i, (id, kind)) in executions.iter().enumerate() {
                if matches!(kind, Kind::Callback) {
                    let cb_id = cb
                        .pending_callback(id, "approval", Duration::from_secs(120))
                        .await?;
                    let value = json!({"approved": i});
                    let reply = cb.callback_succeed(&cb_id, &value).await?;
                    ensure!(reply.status == 200, "callback {cb_id}: {reply:?}");
                    delivered[i] = value;
                }
            }
            Ok(delivered)
        };
        let (takeovers, delivered) = tokio::join!(moved_by, answer);
        let (mut takeovers, delivered) = (takeovers?, delivered?);
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
        // B took over every execution A left leased: its log says so.
        let log = std::fs::read_to_string(b.log_path())?;
        for id in &orphans {
            ensure!(
                log.lines()
                    .any(|line| line.contains("took over an execution")
                        && line.contains(id.as_str())),
                "host B's log shows no takeover of {id}"
            );
        }
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
    let env = [
        ("AEGIS_WEBHOOK_URL", webhook.url()),
        ("AEGIS_WEBHOOK_SECRET", "cluster-webhook-secret".to_string()),
    ];
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

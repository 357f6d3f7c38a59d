//! The DynamoDB store when DynamoDB fails: the host's table is reached through a proxy
//! ([`FaultyProxy`]) that throttles some requests, answers others with server errors, and loses
//! the reply of others after moto applied them. The store must retry what it may retry, tell a
//! write that landed from one that did not, and never lose or repeat a checkpoint: every
//! execution completes with its result, and no step that had succeeded runs again.
//!
//! Without moto the test is skipped, saying so, unless `AEGIS_REQUIRE_DYNAMODB` is set.

use std::time::Duration;

use aegis_tests::faults::{Faults, FaultyProxy};
use aegis_tests::{HostOptions, aws};
use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::kinds::Kind;
use crate::{Expected, check_completed, guard, host_with, upload};

/// About one DynamoDB request in five fails.
const FAULTS: Faults = Faults {
    throttled: 0.08,
    server_error: 0.03,
    lost_reply: 0.08,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_failures_are_retried_and_no_checkpoint_is_lost_or_repeated() {
    if aws::moto_endpoint("the DynamoDB fault test").is_none() {
        return;
    }
    // A moto of its own: the failures it sees are this test's alone.
    let moto = guard(60, aws::OwnMoto::start()).await;
    let prefix = format!("{}-", aws::unique("faults"));
    aws::create_tables(moto.endpoint(), &prefix).expect("create-tables");
    let proxy = FaultyProxy::start(moto.endpoint(), FAULTS)
        .await
        .expect("the fault proxy");
    let mut opts = HostOptions::default()
        .env("AEGIS_STORE_BACKEND", "dynamodb")
        .env("WORKFLOW_TABLE", &prefix)
        .env("AEGIS_DYNAMODB_ENDPOINT", proxy.url());
    for (name, value) in aws::credentials_env() {
        opts = opts.env(&name, value);
    }
    let host = host_with(opts).await;
    guard(300, async {
        let c = host.client();
        upload(&c, &["many_steps", "sleep", "callback"]).await?;
        let mut started = Vec::new();
        for i in 0..24 {
            let kind = match i % 3 {
                0 => Kind::ManySteps(5),
                1 => Kind::Sleep(1),
                _ => Kind::Callback,
            };
            started.push((c.start(kind.workflow(), kind.input()).await?, kind));
        }
        // Each callback is answered once; the host's 200 means it is recorded.
        let mut expected = Vec::new();
        for (i, (id, kind)) in started.into_iter().enumerate() {
            let mut delivered = Value::Null;
            if matches!(kind, Kind::Callback) {
                let cb = c
                    .pending_callback(&id, "approval", Duration::from_secs(120))
                    .await?;
                delivered = json!({"approved": i});
                let reply = c.callback_succeed(&cb, &delivered).await?;
                ensure!(reply.status == 200, "callback {cb} of {id}: {reply:?}");
            }
            expected.push(Expected {
                label: kind.workflow().into(),
                result: kind.expected(&delivered),
                steps: kind.steps(),
                id,
            });
        }
        check_completed(&c, &expected, Duration::from_secs(240), 0)
            .await
            .context("with DynamoDB failing")?;
        let counts = proxy.counts();
        eprintln!("DynamoDB requests and injected failures: {counts:?}");
        ensure!(
            counts.throttled > 0 && counts.server_errors > 0 && counts.lost_write_replies > 0,
            "the run did not meet every kind of failure: {counts:?}"
        );
        Ok(())
    })
    .await;
}

//! The crash loop, short: the host SIGKILLed 40 times at random moments (20-400 ms after each
//! restart) while 20 executions of every durable kind run on it (steps, retries, waits,
//! callbacks, agent calls); every execution must end SUCCEEDED with its expected result, and no
//! succeeded step may run again. `make soak` runs the same loop with 1,000 kills across 100
//! executions (`aegis_tests::crashloop`).
//!
//! The seed is random and printed; `AEGIS_CRASHLOOP_SEED` replays one.

use std::time::Duration;

use aegis_tests::crashloop::{self, Config};
use anyhow::ensure;

use crate::guard;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_forty_kills_lose_nothing_and_run_no_step_twice() {
    let seed = std::env::var("AEGIS_CRASHLOOP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash loop seed {seed} (AEGIS_CRASHLOOP_SEED={seed} replays it)");
    let cfg = Config {
        kills: 40,
        executions: 20,
        seed,
        max_delay: Duration::from_millis(400),
        finish_timeout: Duration::from_secs(120),
        ..Config::default()
    };
    guard(330, async {
        let report = crashloop::run(cfg).await?;
        eprintln!("{report}");
        ensure!(report.kills == 40, "{} kills, not 40", report.kills);
        ensure!(
            report.is_clean(),
            "the crash loop lost executions or ran steps twice:\n{report}"
        );
        // The mix had real work to redo: steps, callbacks and agent answers all went through.
        ensure!(report.steps_succeeded > 0 && report.callbacks_delivered > 0);
        ensure!(report.agent_answers > 0);
        Ok(())
    })
    .await;
}

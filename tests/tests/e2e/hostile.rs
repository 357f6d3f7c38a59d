//! Hostile tenants: for each attack of the suite (`aegis_tests::hostile::attacks`), tenant A runs
//! it while tenant B runs `steps3` canaries on the same host. Each test checks that the attack
//! ended as it must (a clear error, or a refused upload), that every one of B's canaries
//! succeeded, that the host is healthy, and that its peak RSS stayed under the attack's bound.
//! Some attacks have more to check (the log, the stored error, the history).
//!
//! The numbers (time to contain, peak RSS, canary p99) are measured by `aegis-bench --hostile`,
//! not here: these tests time nothing but their guards.

use std::io::{BufRead as _, BufReader};

use aegis_tests::Host;
use aegis_tests::hostile::{self, Report, Settings, abridged};
use anyhow::{Context as _, ensure};

use crate::{details, guard, keyed_host, of_type};

/// The guard of one attack: the attack's patience, the canaries' and the set-up, with room.
const GUARD_SECS: u64 = 330;

/// Runs the attack `name` against a fresh keyed host and checks its report; returns the host
/// (for checks of its log) and the report.
async fn contained(name: &str) -> (Host, Report) {
    let attack = hostile::attack(name);
    let host = keyed_host(attack.host_options()).await;
    let settings = Settings::test();
    let report = guard(GUARD_SECS, async {
        let report = hostile::run_attack(&host, &attack, &settings).await?;
        eprintln!(
            "{name}: {} in {:.1} s; host RSS {:.0} MiB before, peak {:.0} MiB; {} canaries, p99 {} ms",
            report.ending(),
            report.contain.as_secs_f64(),
            report.rss_before.current_mb(),
            report.rss_after.peak_mb(),
            report.canaries.completed(),
            report.canaries.percentile(99.0).as_millis(),
        );
        report.check(&attack, &settings)?;
        Ok(report)
    })
    .await;
    (host, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_sleep_fails_at_once() {
    contained("blocking-sleep").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_poll_fails_at_once() {
    contained("blocking-poll").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_flood_hits_an_activation_limit() {
    contained("wait-flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_flood_hits_an_activation_limit() {
    contained("publish-flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_hits_an_activation_limit_and_forges_no_line() {
    let (host, _report) = contained("log-flood").await;
    guard(60, async {
        let log = host.log_path();
        let size = std::fs::metadata(log)?.len();
        ensure!(
            size < 64 << 20,
            "the host's log grew to {size} bytes ({})",
            log.display()
        );
        let file = std::fs::File::open(log).with_context(|| format!("{}", log.display()))?;
        let mut lines = 0u64;
        for line in BufReader::new(file).split(b'\n') {
            let line = line?;
            lines += 1;
            ensure!(
                !line.starts_with(b"2099-01-01T"),
                "line {lines} of the host's log was forged by the guest: {}",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            );
        }
        ensure!(
            lines > 0,
            "the host logged nothing at all ({})",
            log.display()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_flood_hits_an_activation_limit() {
    contained("callback-flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_flood_hits_an_activation_limit() {
    contained("step-flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_flood_hits_an_activation_limit() {
    contained("artifact-flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_result_is_refused() {
    contained("huge-result").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_step_output_fails_the_step() {
    let (_host, report) = contained("huge-step-output").await;
    guard(60, async {
        let id = report.executions[0]["execution_id"]
            .as_str()
            .context("an execution id")?;
        let history = report.attacker.history(id).await?;
        let failed = of_type(&history, "StepFailed");
        ensure!(
            failed.len() == 1
                && details(failed[0])["Error"]["Payload"]["ErrorType"] == "Step.ResultTooLarge",
            "the step failed with Step.ResultTooLarge: {failed:?}"
        );
        ensure!(
            of_type(&history, "StepSucceeded").is_empty(),
            "the step never succeeded"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_names_are_refused() {
    contained("huge-names").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_error_is_refused_or_bounded() {
    let (_host, report) = contained("huge-error").await;
    // Whatever the host kept of each failure is within the limits: the type 256 characters, the
    // message 16 KB, the data the payload limit.
    for exec in &report.executions {
        let error = &exec["error"];
        let len = |field: &str| error[field].as_str().map_or(0, str::len);
        assert!(len("error_type") <= 256, "{}", abridged(exec));
        assert!(len("error_message") <= 16 * 1024, "{}", abridged(exec));
        assert!(
            error["error_data"].to_string().len() <= 256 * 1024,
            "{}",
            abridged(exec)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_that_are_not_json_fail_the_execution() {
    contained("invalid-json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_overflow_traps() {
    contained("stack-overflow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_over_several_memories_hits_the_memory_limit() {
    contained("multi-memory-bomb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_with_many_instances_is_refused() {
    contained("many-instances").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_storm_fails_each_execution() {
    contained("trap-storm").await;
}

//! Replay: a workflow that diverges from its journal fails with a clear non-determinism error,
//! and only that execution fails.

use anyhow::ensure;
use serde_json::json;

use crate::{DONE, check_history_shape, expect_failed, guard, host, upload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn divergent_replay_fails_with_non_determinism() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["nondeterministic", "steps3"]).await?;
        let bad = c.start("nondeterministic", json!(null)).await?;
        let good = c.start("steps3", json!("g")).await?;

        let exec = expect_failed(&c, &bad, "Aegis.NonDeterminism").await?;
        let message = exec["error"]["error_message"].as_str().unwrap_or("");
        // The message names the operation where the replay diverged: its id or name.
        let history = c.history(&bad).await?;
        check_history_shape(&history)?;
        let named = history.iter().any(|e| {
            [&e["Id"], &e["Name"]]
                .iter()
                .filter_map(|v| v.as_str())
                .any(|s| !s.is_empty() && message.contains(s))
        });
        ensure!(
            named,
            "the non-determinism message names the operation: {message:?}; history: {history:?}"
        );
        ensure!(
            history
                .last()
                .is_some_and(|e| e["EventType"] == "ExecutionFailed"),
            "{history:?}"
        );

        ensure!(
            c.result(&good, DONE).await? == json!("g-a-b-c"),
            "an execution running beside it is not affected"
        );
        Ok(())
    })
    .await;
}

//! A child context whose result is too large to keep (over 256 KiB): the host records its success
//! without the result, marked to replay its children (AWS's ReplayChildren), and the next
//! activation rebuilds the result by running the child's body again over its recorded step,
//! which does not run again.

use anyhow::{Context as _, ensure};
use serde_json::json;

use crate::{DONE, check_history_shape, details, guard, host, of_type, upload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_result_too_large_to_keep_is_rebuilt_from_its_children() {
    let host = host().await;
    guard(120, async {
        let c = host.client();
        upload(&c, &["large-child"]).await?;
        let id = c.start("large-child", json!("seed-")).await?;
        let exec = c.wait_done(&id, DONE).await?;
        // 300 KiB / 5 + 1 repetitions of "seed-": rebuilt in full after the wait's replay.
        let expected_len = (300 * 1024 / 5 + 1) * 5;
        ensure!(
            exec["status"] == "SUCCEEDED"
                && exec["result"] == json!({"len": expected_len, "head": "seed-seed-seed-s"}),
            "{exec}"
        );
        let events = c.history(&id).await?;
        check_history_shape(&events)?;

        // Two activations: the first suspended on the wait, the second replayed the child.
        ensure!(
            of_type(&events, "InvocationCompleted").len() == 2,
            "{events:?}"
        );
        // The child's step ran once: the rebuild replayed its recorded result.
        ensure!(of_type(&events, "StepStarted").len() == 1, "{events:?}");
        ensure!(of_type(&events, "StepSucceeded").len() == 1, "{events:?}");
        // The context succeeded once, its event holding only a cut preview of the result.
        let succeeded = of_type(&events, "ContextSucceeded");
        ensure!(succeeded.len() == 1, "{events:?}");
        let result = &details(succeeded[0])["Result"];
        let preview = result["Payload"].as_str().context("a preview")?;
        ensure!(
            result["Truncated"] == true
                && preview.starts_with("\"seed-seed-")
                && preview.len() < 256 * 1024,
            "{result}"
        );
        Ok(())
    })
    .await;
}

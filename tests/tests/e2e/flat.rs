//! FLAT nesting: a map's items run in virtual contexts. No item context is recorded; each
//! item's operations are recorded under the map's context, with ids of their own; a replay of
//! the unfinished batch runs the items again over what they recorded, running no step twice.

use anyhow::{Context as _, ensure};
use serde_json::json;

use crate::{DONE, check_history_shape, guard, host, of_type, upload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_map_items_record_their_operations_under_the_map() {
    let host = host().await;
    guard(120, async {
        let c = host.client();
        upload(&c, &["flat-map"]).await?;
        let id = c.start("flat-map", json!([1, 2, 3])).await?;
        let exec = c.wait_done(&id, DONE).await?;
        ensure!(
            exec["status"] == "SUCCEEDED" && exec["result"] == json!([2, 4, 6]),
            "{exec}"
        );
        let events = c.history(&id).await?;
        check_history_shape(&events)?;

        // One context, the map's: no MapIteration.
        let contexts = of_type(&events, "ContextStarted");
        ensure!(
            contexts.len() == 1 && contexts[0]["SubType"] == "Map",
            "{events:?}"
        );
        let map_id = contexts[0]["Id"].as_str().context("the map's id")?;
        // Three steps, each started once although the batch was replayed after the wait, and
        // each (like the wait) a child of the map, with an id of its own.
        let started = of_type(&events, "StepStarted");
        ensure!(started.len() == 3, "{events:?}");
        let mut ids: Vec<&str> = started.iter().filter_map(|e| e["Id"].as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ensure!(ids.len() == 3, "{started:?}");
        let waits = of_type(&events, "WaitStarted");
        ensure!(
            started
                .iter()
                .chain(&waits)
                .all(|e| e["ParentId"] == map_id),
            "{events:?}"
        );
        ensure!(
            of_type(&events, "InvocationCompleted").len() == 2,
            "{events:?}"
        );
        Ok(())
    })
    .await;
}

//! Artifacts: a workflow stores content, presigns it, and the URL serves that content.

use anyhow::{Context as _, ensure};
use serde_json::json;

use crate::{DONE, guard, host, upload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_url_serves_the_content() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["artifacts"]).await?;
        let content = "# Report\n\nStored by a workflow, fetched over a presigned URL.\n";
        let id = c
            .start("artifacts", json!({"key": "report.md", "content": content}))
            .await?;
        let result = c.result(&id, DONE).await?;
        ensure!(
            result["roundtrip"] == true,
            "the guest read back what it wrote: {result}"
        );
        ensure!(result["size"] == content.len(), "{result}");
        ensure!(result["reference"].is_string(), "{result}");
        let url = result["url"].as_str().context("the result has a url")?;

        let (status, body) = c.fetch(url).await?;
        ensure!(status == 200, "GET {url}: HTTP {status}");
        ensure!(
            body == content.as_bytes(),
            "GET {url} returned {:?}",
            String::from_utf8_lossy(&body)
        );

        // The URL is signed: tampering with it is refused.
        let tampered = format!("{url}x");
        let (status, _) = c.fetch(&tampered).await?;
        ensure!(
            status >= 400,
            "a tampered URL is refused, got HTTP {status}"
        );
        Ok(())
    })
    .await;
}

//! Uploads and artifacts under a hostile caller: identical bytes compile once, compiles are
//! bounded (429 past the queue), bodies are spooled rather than buffered, artifacts are inert
//! attachments, and a tenant's artifact storage has a quota.

use std::time::Duration;

use aegis_tests::{Host, HostOptions};
use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};

use crate::api::with_custom_section;
use crate::{DONE, guard, host, host_with, upload};

/// How many times the host logged a finished compile of `digest` (one line per compile).
fn compiles_of(host: &Host, digest: &str) -> Result<usize> {
    let log = std::fs::read_to_string(host.log_path())?;
    Ok(log
        .lines()
        .filter(|l| l.contains("component compiled") && l.contains(digest))
        .count())
}

/// The `Name:` line of `/proc/<pid>/status`, in KiB.
fn proc_status_kb(pid: u32, name: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {name} in /proc/{pid}/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_uploads_of_the_same_bytes_compile_once() {
    let host = host().await;
    guard(300, async {
        let c = host.client();
        // Bytes this host has never seen, so the one compile is of this test's making.
        let bytes = with_custom_section(
            std::fs::read(aegis_tests::fixture("steps3"))?,
            "fifty",
            1024,
        );
        let began = std::time::Instant::now();
        let uploads: Vec<_> = (0..50)
            .map(|_| {
                let (c, bytes) = (c.unpooled(), bytes.clone());
                tokio::spawn(async move { c.upload_bytes("same", bytes).await })
            })
            .collect();
        let (mut created, mut found, mut busy) = (0, 0, 0);
        let mut digests = std::collections::BTreeSet::new();
        for upload in uploads {
            let reply = upload.await??;
            match reply.status {
                201 => created += 1,
                200 => found += 1,
                429 => {
                    reply.expect_error(429, "compile_queue_full")?;
                    ensure!(reply.header("retry-after").is_some(), "{reply:?}");
                    busy += 1;
                    continue;
                }
                _ => bail!("an upload failed otherwise: {reply:?}"),
            }
            digests.insert(reply.body["digest"].as_str().unwrap_or("").to_string());
        }
        eprintln!(
            "50 parallel uploads: {created} created, {found} found, {busy} busy, in {:?}",
            began.elapsed()
        );
        ensure!(created == 1, "one upload makes version 1: {created} did");
        ensure!(digests.len() == 1, "one digest: {digests:?}");
        let digest = digests.into_iter().next().unwrap_or_default();
        ensure!(
            compiles_of(&host, &digest)? == 1,
            "exactly one compile of {digest}; the log has {}",
            compiles_of(&host, &digest)?
        );
        // Once installed, the bytes are not compiled again, even uploaded under another name.
        c.upload_bytes("same-again", bytes)
            .await?
            .expect(201, "the same bytes as another workflow")?;
        ensure!(
            compiles_of(&host, &digest)? == 1,
            "installed bytes compiled again"
        );
        c.healthz().await?.expect(200, "healthz")?;
        let id = c.start("same", json!("p")).await?;
        ensure!(c.result(&id, DONE).await? == json!("p-a-b-c"));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_compile_queue_answers_429() {
    // One compile at a time and no room to wait: a second distinct upload that arrives while
    // one compiles is refused.
    let host = host_with(
        HostOptions::default()
            .env("AEGIS_COMPILE_CONCURRENCY", 1)
            .env("AEGIS_COMPILE_QUEUE", 0),
    )
    .await;
    guard(300, async {
        let c = host.client();
        let base = std::fs::read(aegis_tests::fixture("steps3"))?;
        let mut refused = None;
        // Twelve distinct components at once; whether one is refused depends on them meeting in
        // the host, so a round in which every compile happened to end before the next began
        // is tried again with new bytes.
        for round in 0..5 {
            let uploads: Vec<_> = (0..12)
                .map(|i| {
                    let c = c.unpooled();
                    let bytes = with_custom_section(base.clone(), &format!("r{round}-{i}"), 64);
                    tokio::spawn(
                        async move { c.upload_bytes(&format!("q{round}-{i}"), bytes).await },
                    )
                })
                .collect();
            let mut busy = 0;
            for upload in uploads {
                let reply = upload.await??;
                match reply.status {
                    201 => {}
                    429 => {
                        busy += 1;
                        refused = Some(reply);
                    }
                    _ => bail!("an upload failed otherwise: {reply:?}"),
                }
            }
            eprintln!("round {round}: {busy} of 12 distinct uploads refused with 429");
            if refused.is_some() {
                break;
            }
        }
        let reply = refused.context("no upload was refused in 5 rounds of 12")?;
        reply.expect_error(429, "compile_queue_full")?;
        let retry: u64 = reply
            .header("retry-after")
            .context("429 without Retry-After")?
            .parse()?;
        ensure!(retry >= 1, "Retry-After {retry}");
        // The queue drains: the refused upload goes through when sent again alone.
        let again = with_custom_section(base, "alone", 64);
        c.upload_bytes("alone", again)
            .await?
            .expect(201, "an upload with the queue empty")?;
        c.healthz().await?.expect(200, "healthz")?;
        Ok(())
    })
    .await;
}

/// Sends `total` bytes as a chunked upload (no `Content-Length`, so the host cannot refuse it
/// from the head) on a raw connection, reading while writing; returns the answer's head (lower
/// case) and body.
async fn chunked_upload(base_url: &str, path: &str, total: usize) -> Result<(String, Vec<u8>)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = base_url.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: aegis\r\nContent-Type: application/wasm\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![0xA5u8; 256 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            wr.write_all(&chunk[..n]).await?;
            wr.write_all(b"\r\n").await?;
            sent += n;
        }
        wr.write_all(b"0\r\n\r\n").await?;
        anyhow::Ok(sent)
    });
    let mut buf = Vec::new();
    let mut piece = [0u8; 8192];
    let answer = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                break (head, buf[end + 4..end + 4 + length].to_vec());
            }
        }
        match rd.read(&mut piece).await {
            Ok(0) => bail!("the connection ended without an answer"),
            Err(e) => bail!("reading the answer: {e}"),
            Ok(n) => buf.extend_from_slice(&piece[..n]),
        }
    };
    // The host stops reading once it refuses: the writer ends with an error then, or not at
    // all if the rest fit in the socket buffers.
    writer.abort();
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_upload_is_refused_while_streaming_without_buffering_it() {
    const LIMIT_MB: usize = 64;
    let host = host_with(HostOptions::default().env("AEGIS_MAX_COMPONENT_MB", LIMIT_MB)).await;
    guard(180, async {
        let pid = host.pid().context("the host's pid")?;
        let c = host.client();
        c.healthz().await?.expect(200, "healthz")?;
        let before = proc_status_kb(pid, "VmRSS:")?;
        // Watch the host's RSS while it reads the body, to catch a peak a final reading would
        // miss once a buffer is freed.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut peak = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    peak = peak.max(proc_status_kb(pid, "VmRSS:").unwrap_or(0));
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                peak
            }
        });
        let total = (LIMIT_MB + 16) << 20;
        let (head, body) = chunked_upload(host.base_url(), "/v1/components/huge", total).await?;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let peak = sampler.await?.max(proc_status_kb(pid, "VmRSS:")?);
        ensure!(head.starts_with("http/1.1 413"), "refused with 413: {head}");
        let error: Value = serde_json::from_slice(&body)?;
        ensure!(
            error["error"]["code"] == "payload_too_large"
                && error["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("max_component_mb"),
            "{error}"
        );
        let grew_mb = peak.saturating_sub(before) / 1024;
        eprintln!(
            "a {} MiB upload over a {LIMIT_MB} MiB limit: RSS {} MiB before, peak {} MiB",
            total >> 20,
            before / 1024,
            peak / 1024
        );
        ensure!(
            grew_mb < (LIMIT_MB as u64) / 2,
            "RSS grew by {grew_mb} MiB while refusing a {} MiB body",
            total >> 20
        );
        // Nothing is left in the spool folder, and the host serves on.
        let spool = host.data_dir().join("components").join("uploads");
        let left = std::fs::read_dir(&spool).map_or(0, Iterator::count);
        ensure!(left == 0, "{left} files left in {}", spool.display());
        c.component_versions("huge")
            .await?
            .expect_error(404, "component_not_found")?;
        c.healthz().await?.expect(200, "healthz")?;
        upload(&c, &["steps3"]).await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_served_as_inert_attachments() {
    let host = host().await;
    guard(90, async {
        let c = host.client();
        upload(&c, &["artifacts"]).await?;
        let id = c
            .start(
                "artifacts",
                json!({"key": "pages/report.md", "content": "<script>alert(1)</script>"}),
            )
            .await?;
        let result = c.result(&id, DONE).await?;
        let url = result["url"].as_str().context("the result has a url")?;
        let reply = c.fetch_reply(url).await?;
        ensure!(reply.status == 200, "{reply:?}");
        ensure!(reply.raw == b"<script>alert(1)</script>", "{reply:?}");
        ensure!(
            reply.header("content-disposition")
                == Some("attachment; filename=\"report.md\"; filename*=UTF-8''report.md"),
            "{:?}",
            reply.headers
        );
        ensure!(
            reply.header("x-content-type-options") == Some("nosniff"),
            "{:?}",
            reply.headers
        );
        ensure!(
            reply
                .header("content-security-policy")
                .is_some_and(|v| v.starts_with("sandbox")),
            "{:?}",
            reply.headers
        );
        ensure!(
            reply.header("content-type") == Some("text/markdown"),
            "{:?}",
            reply.headers
        );
        Ok(())
    })
    .await;
}

/// Starts the `artifacts` fixture storing `size` bytes under `key`; returns the execution.
async fn put_artifact(c: &aegis_tests::Client, key: &str, size: usize) -> Result<Value> {
    let id = c
        .start(
            "artifacts",
            json!({"key": key, "content": "x".repeat(size)}),
        )
        .await?;
    c.wait_done(&id, DONE).await
}

async fn artifact_usage(c: &aegis_tests::Client) -> Result<(u64, u64)> {
    let me = c.whoami().await?.expect(200, "GET /v1/tenant")?;
    let used = me["usage"]["artifact_bytes"]
        .as_u64()
        .with_context(|| format!("no usage.artifact_bytes: {me}"))?;
    let quota = me["quotas"]["max_artifact_mb"]
        .as_u64()
        .with_context(|| format!("no quotas.max_artifact_mb: {me}"))?;
    Ok((used, quota))
}

/// An execution without its (large) input, for messages.
fn summary(exec: &Value) -> Value {
    json!({"status": exec["status"], "error": exec["error"], "result": exec["result"]})
}

/// Checks that `exec` failed on the artifact quota.
fn failed_on_quota(exec: &Value) -> Result<()> {
    let error_type = exec["error"]["error_type"].as_str().unwrap_or("");
    ensure!(
        exec["status"] == "FAILED"
            && error_type == "Artifact.QuotaExceeded"
            && exec["error"]["error_message"]
                .as_str()
                .unwrap_or("")
                .contains("max_artifact_mb"),
        "expected a failure on the artifact quota: {}",
        summary(exec)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_artifact_quota_is_enforced_reported_and_survives_a_restart() {
    let mut host = host_with(HostOptions::default().env("AEGIS_MAX_ARTIFACT_MB", 1)).await;
    guard(240, async {
        let c = host.client();
        upload(&c, &["artifacts"]).await?;
        ensure!(artifact_usage(&c).await? == (0, 1));
        // Five of 200,000 bytes fit in 1 MiB (1,048,576 bytes); a sixth does not.
        for i in 0..5 {
            let exec = put_artifact(&c, &format!("part-{i}"), 200_000).await?;
            ensure!(exec["status"] == "SUCCEEDED", "put {i}: {}", summary(&exec));
        }
        ensure!(artifact_usage(&c).await? == (1_000_000, 1));
        failed_on_quota(&put_artifact(&c, "part-5", 200_000).await?)?;
        ensure!(
            artifact_usage(&c).await? == (1_000_000, 1),
            "a refused put stores nothing"
        );
        // What is left still fits.
        let exec = put_artifact(&c, "rest", 48_000).await?;
        ensure!(exec["status"] == "SUCCEEDED", "{}", summary(&exec));
        ensure!(artifact_usage(&c).await? == (1_048_000, 1));
        Ok(())
    })
    .await;
    guard(120, host.restart()).await;
    guard(120, async {
        let c = host.client();
        // Counted again from what is stored.
        ensure!(artifact_usage(&c).await? == (1_048_000, 1));
        failed_on_quota(&put_artifact(&c, "after-restart", 10_000).await?)?;
        Ok(())
    })
    .await;
}

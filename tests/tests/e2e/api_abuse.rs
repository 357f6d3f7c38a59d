//! API abuse, on the loopback only and with bounded counts: connections that never finish their
//! header, 64 MB bodies on the routes that take no key, a heartbeat flood, and a configuration
//! the host must refuse.
//!
//! No assertion here is about time: each test waits for what must happen under a generous
//! [`guard`], and prints what it measured (for the notes) instead of asserting it.

use std::time::{Duration, Instant};

use aegis_tests::{Host, HostOptions};
use anyhow::{Context as _, Result, bail, ensure};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::{DONE, guard, host, host_with, upload};

/// How long a callback may take to show up as pending.
const PENDING: Duration = Duration::from_secs(30);

/// 64 MiB: the body the unauthenticated routes used to read whole before checking the token.
const BIG: usize = 64 << 20;

/// A host-memory growth this large would mean a 64 MB body was read; reading only up to a
/// payload limit (a few hundred KiB) and the socket buffers stays far below it.
const RSS_GUARD_KB: u64 = 32 * 1024;

/// `VmRSS` and `VmHWM` (peak) of the process, in KiB.
fn memory_kb(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The status code of a raw HTTP/1.1 response head, if `buf` holds a whole one.
fn status_of(buf: &[u8]) -> Option<u16> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// One attack: the path, extra headers, and the status the host must answer.
type Attack<'a> = (String, Vec<(&'a str, &'a str)>, u16);

/// What [`post_big`] saw.
#[derive(Debug)]
struct BigPost {
    status: u16,
    /// Bytes of the body written before the host answered or closed the connection.
    sent: usize,
    head: String,
}

/// Posts a body of `len` bytes to `path` over a raw connection, reading the answer while it
/// writes: it stops writing as soon as the host has answered (or closed the connection), so a
/// host that refuses without reading is not made to read anyway.
async fn post_big(
    host: &Host,
    path: &str,
    headers: &[(&str, &str)],
    len: usize,
) -> Result<BigPost> {
    let addr = host.base_url().trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&addr).await.context("connect")?;
    let (mut rd, mut wr) = stream.into_split();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    wr.write_all(head.as_bytes()).await.context("write head")?;
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return buf,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if status_of(&buf).is_some() {
                        return buf;
                    }
                }
            }
        }
    });
    // JSON whitespace, so a host that did read it all would find a (long) valid document start.
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < len && !reader.is_finished() {
        let n = chunk.len().min(len - sent);
        match tokio::time::timeout(Duration::from_millis(200), wr.write(&chunk[..n])).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(written)) => sent += written,
            // The host is not reading: look again whether it answered.
            Err(_) => {}
        }
    }
    let buf = reader.await.context("the reader task")?;
    let status = status_of(&buf).with_context(|| {
        format!(
            "POST {path}: no answer after {sent} bytes: {:?}",
            String::from_utf8_lossy(&buf)
        )
    })?;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
    Ok(BigPost {
        status,
        sent,
        head: String::from_utf8_lossy(&buf[..end]).into_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_connections_are_closed_and_others_still_served() {
    // A short header timeout so the test does not wait 10 s per round, and fewer connections
    // than attackers, so that some of them wait for a free connection too.
    let host = host_with(
        HostOptions::default()
            .env("AEGIS_HEADER_READ_TIMEOUT_MS", 1000)
            .env("AEGIS_MAX_CONNECTIONS", 20),
    )
    .await;
    guard(120, async {
        let addr = host.base_url().trim_start_matches("http://").to_string();
        let started = Instant::now();
        let mut stalled = Vec::new();
        for i in 0..50 {
            let mut s = TcpStream::connect(&addr).await.context("connect")?;
            // A header that never ends.
            let partial = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow-{i}: a");
            s.write_all(partial.as_bytes()).await?;
            stalled.push(s);
        }

        // A normal client is served meanwhile (it may wait for a connection to free up).
        let c = host.client().unpooled();
        let health = c.healthz().await?;
        ensure!(
            health.status == 200,
            "healthz during the attack: {health:?}"
        );
        let served_after = started.elapsed();

        // Every stalled connection is closed by the host: reading ends (EOF or reset).
        for s in &mut stalled {
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    // Whatever the host says before closing (if anything), keep reading.
                    Ok(_) => {}
                }
            }
        }
        let all_closed_after = started.elapsed();
        let health = c.healthz().await?;
        ensure!(health.status == 200, "healthz after the attack: {health:?}");
        eprintln!(
            "slow headers: 50 stalled connections (limit 20, header timeout 1 s); a normal \
             request answered after {served_after:?}; all stalled ones closed after \
             {all_closed_after:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_finishes_is_answered_408() {
    let host = host_with(HostOptions::default().env("AEGIS_BODY_TIMEOUT_MS", 1000)).await;
    guard(120, async {
        let addr = host.base_url().trim_start_matches("http://").to_string();
        let mut s = TcpStream::connect(&addr).await.context("connect")?;
        // Announces 1,000 bytes, sends 10, and stalls.
        let head = format!(
            "POST /v1/executions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n{{\"workflow\""
        );
        s.write_all(head.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while status_of(&buf).is_none() {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let answer = String::from_utf8_lossy(&buf).into_owned();
        ensure!(status_of(&buf) == Some(408), "a stalled body: {answer:?}");
        ensure!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "the connection ends with the 408: {answer:?}"
        );
        ensure!(host.client().healthz().await?.status == 200, "healthz");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies_on_keyless_routes_are_refused_without_being_read() {
    let host = host().await;
    let pid = host.pid().expect("the host runs");
    guard(240, async {
        let c = host.client();
        upload(&c, &["callback"]).await?;
        let id = c
            .start(
                "callback",
                json!({"timeout_seconds": 600, "heartbeat_seconds": null}),
            )
            .await?;
        let real = c.pending_callback(&id, "approval", PENDING).await?;
        // Well-formed ids that name no callback, and one that is not even well formed.
        let unknown = format!("cb_{}", "0".repeat(64));
        let unknown2 = format!("cb_{}", "f".repeat(64));
        let (rss_before, hwm_before) = memory_kb(pid)?;

        let attacks: Vec<Attack<'_>> = vec![
            (format!("/v1/callbacks/{unknown}/succeed"), vec![], 404),
            (format!("/v1/callbacks/{unknown}/fail"), vec![], 404),
            (format!("/v1/callbacks/{unknown}/heartbeat"), vec![], 404),
            ("/v1/callbacks/not-an-id/succeed".into(), vec![], 404),
            (format!("/v1/agents/callbacks/{unknown}"), vec![], 404),
            (
                format!("/v1/agents/callbacks/{real}"),
                vec![("X-A2A-Notification-Token", unknown2.as_str())],
                404,
            ),
            (
                "/v1/agents/callbacks".into(),
                vec![("X-A2A-Notification-Token", unknown.as_str())],
                404,
            ),
            // No token before the body: read only up to the largest payload any tenant has.
            ("/v1/agents/callbacks".into(), vec![], 413),
            // The real callback: read only up to its tenant's payload limit.
            (format!("/v1/callbacks/{real}/succeed"), vec![], 413),
        ];
        let mut total_sent = 0;
        for (path, headers, want) in &attacks {
            let post = post_big(&host, path, headers, BIG).await?;
            ensure!(
                post.status == *want,
                "POST {path} with a 64 MB body: {} (wanted {want}): {}",
                post.status,
                post.head
            );
            total_sent += post.sent;
        }
        let (rss_after, hwm_after) = memory_kb(pid)?;
        eprintln!(
            "64 MB bodies: {} attacks, {} MiB written in all before the host answered; host \
             RSS {rss_before} -> {rss_after} KiB, peak {hwm_before} -> {hwm_after} KiB",
            attacks.len(),
            total_sent >> 20
        );
        ensure!(
            hwm_after.saturating_sub(hwm_before) < RSS_GUARD_KB
                && rss_after.saturating_sub(rss_before) < RSS_GUARD_KB,
            "the host's memory grew as if it read a 64 MB body: RSS {rss_before} -> \
             {rss_after} KiB, peak {hwm_before} -> {hwm_after} KiB"
        );

        // The host is fine, and the real callback still completes.
        ensure!(c.healthz().await?.status == 200, "healthz");
        let reply = c.callback_succeed(&real, &json!({"ok": true})).await?;
        ensure!(reply.status == 200, "succeed after the attack: {reply:?}");
        let result = c.result(&id, DONE).await?;
        ensure!(result == json!({"callback": {"ok": true}}), "{result}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_flood_is_rate_limited_and_the_callback_still_completes() {
    let host = host().await;
    guard(300, async {
        let c = host.client();
        upload(&c, &["callback"]).await?;
        let id = c
            .start(
                "callback",
                json!({"timeout_seconds": 600, "heartbeat_seconds": 300}),
            )
            .await?;
        let cb = c.pending_callback(&id, "approval", PENDING).await?;

        // 2,000 heartbeats from 8 workers at once.
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..8 {
            let (c, cb) = (c.clone(), cb.clone());
            workers.push(tokio::spawn(async move {
                let (mut ok, mut limited, mut named_callback) = (0usize, 0usize, false);
                for _ in 0..250 {
                    let reply = c.callback_heartbeat(&cb).await?;
                    match reply.status {
                        200 => ok += 1,
                        429 => {
                            reply.expect_error(429, "rate_limited")?;
                            let retry: u64 = reply
                                .header("retry-after")
                                .and_then(|v| v.parse().ok())
                                .with_context(|| format!("429 without Retry-After: {reply:?}"))?;
                            ensure!(retry >= 1, "Retry-After {retry}");
                            named_callback |= reply
                                .error_message()
                                .is_some_and(|m| m.contains("callback_requests_per_second"));
                            limited += 1;
                        }
                        _ => bail!("heartbeat: {reply:?}"),
                    }
                }
                Ok::<_, anyhow::Error>((ok, limited, named_callback))
            }));
        }
        let (mut ok, mut limited, mut named_callback) = (0, 0, false);
        for w in workers {
            let (o, l, n) = w.await.context("worker")??;
            ok += o;
            limited += l;
            named_callback |= n;
        }
        let took = started.elapsed();
        eprintln!(
            "heartbeat flood: 2000 heartbeats in {took:?}: {ok} accepted, {limited} answered 429"
        );
        ensure!(ok + limited == 2000, "{ok} + {limited}");
        ensure!(ok >= 1, "no heartbeat was accepted");
        ensure!(limited >= 1, "the flood was not rate limited");
        ensure!(named_callback, "no 429 named the per-callback limit");

        // The host is healthy, and the callback completes once its rate allows.
        ensure!(c.healthz().await?.status == 200, "healthz after the flood");
        let mut attempts = 0;
        loop {
            let reply = c.callback_succeed(&cb, &json!({"after": "flood"})).await?;
            if reply.status == 200 {
                break;
            }
            reply.expect_error(429, "rate_limited")?;
            attempts += 1;
            ensure!(attempts < 30, "still rate limited after {attempts} tries");
            let wait: u64 = reply
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
        let result = c.result(&id, DONE).await?;
        ensure!(
            result == json!({"callback": {"after": "flood"}}),
            "{result}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_without_a_secret_is_refused_at_start() {
    // Port 9 (discard): nothing is ever posted, the host must not get that far.
    let opts = HostOptions::default().env("AEGIS_WEBHOOK_URL", "http://127.0.0.1:9/hook");
    let err = match Host::start(opts).await {
        Ok(_) => panic!("the host started with a webhook and no secret"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("exited before it was ready"), "{err}");
    assert!(!err.contains("exit status: 0"), "exited 0: {err}");
    assert!(
        err.contains("webhook_secret"),
        "the message names the setting: {err}"
    );

    // An empty secret is no better.
    let opts = HostOptions::default()
        .env("AEGIS_WEBHOOK_URL", "http://127.0.0.1:9/hook")
        .env("AEGIS_WEBHOOK_SECRET", "");
    let err = match Host::start(opts).await {
        Ok(_) => panic!("the host started with a webhook and an empty secret"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("webhook_secret"), "{err}");

    // Nor an instance pool with no room for one activation.
    let opts = HostOptions::default().env("AEGIS_MAX_INSTANCES", 1);
    let err = match Host::start(opts).await {
        Ok(_) => panic!("the host started with max_instances = 1"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("max_instances"), "{err}");
}

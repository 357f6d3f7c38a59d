use super::delivery::Outbox;
use super::*;
use crate::ids::{ComponentDigest, ExecutionId, TenantId};
use crate::journal::{Details, Event, EventType, now_ms};
use crate::store::{
    Batch, Created, Leasing, NewExecution, Store, WorkflowEvent, sqlite::SqliteStore,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn the_outbox_claim_says_when_it_lapsed_and_another_host_may_have_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("aegis.db")).unwrap());
    let ttl_ms = 1_000;
    let leasing = Leasing {
        host_id: "a".into(),
        ttl_ms,
    };
    let notifier = Notifier::new(store.clone(), None, None, leasing);
    // Nothing held before: the first claim takes the role.
    assert_eq!(notifier.claim_outbox().await, Outbox::Taken);
    assert_eq!(notifier.claim_outbox().await, Outbox::Held);
    assert!(
        !store
            .claim_role(OUTBOX_ROLE, "b", now_ms(), ttl_ms)
            .await
            .unwrap()
    );

    // Lapsed, and host b took it: host a may not deliver.
    tokio::time::sleep(Duration::from_millis(ttl_ms + 100)).await;
    assert!(
        store
            .claim_role(OUTBOX_ROLE, "b", now_ms(), ttl_ms)
            .await
            .unwrap()
    );
    assert_eq!(notifier.claim_outbox().await, Outbox::NotHeld);

    // Lapsed again: host a takes it back, told that b may have delivered meanwhile.
    tokio::time::sleep(Duration::from_millis(ttl_ms + 100)).await;
    assert_eq!(notifier.claim_outbox().await, Outbox::Taken);
}

/// A webhook on the loopback that answers each post by its `X-Aegis-Event` kind: `bad` 400,
/// `flaky` 503, anything else 200; it records the kinds it took and the posts it saw.
async fn webhook() -> (String, Arc<std::sync::Mutex<(Vec<String>, usize)>>) {
    use axum::http::{HeaderMap, StatusCode};
    let seen = Arc::new(std::sync::Mutex::new((Vec::new(), 0usize)));
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let state = state.clone();
            async move {
                let kind = headers["x-aegis-event"].to_str().unwrap().to_string();
                let mut seen = state.lock().unwrap();
                seen.1 += 1;
                match kind.as_str() {
                    "bad" => StatusCode::BAD_REQUEST,
                    "flaky" => StatusCode::SERVICE_UNAVAILABLE,
                    _ => {
                        seen.0.push(kind);
                        StatusCode::OK
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn execution(store: &dyn Store, tenant: &str) -> ExecutionId {
    let id = ExecutionId::generate();
    let new = NewExecution {
        id: id.clone(),
        tenant: TenantId::from_raw(tenant),
        name: None,
        workflow: "wf".into(),
        version: 1,
        digest: ComponentDigest::of(b"x"),
        input: "{}".into(),
        now: now_ms(),
        timeout_at: None,
        max_running: None,
        started_event: Event::execution(EventType::ExecutionStarted, now_ms(), Details::Empty),
    };
    assert!(matches!(
        store.create_execution(new).await.unwrap(),
        Created::New(_)
    ));
    id
}

async fn publish(store: &dyn Store, id: &ExecutionId, kind: &str) {
    let batch = Batch {
        publish: vec![(kind.to_string(), "{}".to_string())],
        ..Batch::default()
    };
    store.commit(id, batch).await.unwrap();
}

#[tokio::test]
async fn refused_events_are_dead_lettered_and_never_hold_back_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("aegis.db")).unwrap());
    let (url, seen) = webhook().await;
    let notifier = webhook_notifier(&store, url, 3);
    let (a, a2, b) = (
        execution(&*store, "tn_a").await,
        execution(&*store, "tn_a").await,
        execution(&*store, "tn_b").await,
    );
    publish(&*store, &a, "bad").await;
    publish(&*store, &a, "a.after").await;
    publish(&*store, &a2, "flaky").await;
    publish(&*store, &a2, "a2.after").await;
    publish(&*store, &b, "b.one").await;

    // One pass: the 400 is dead-lettered at once and the events behind it go; the 503 is
    // set aside and its execution's next event waits behind it, in order.
    notifier.deliver().await;
    assert_eq!(seen.lock().unwrap().0, vec!["a.after", "b.one"]);
    let letters = store.dead_letters(None, 0, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].event.kind.as_str(), letters[0].sink.as_str()),
        ("bad", "webhook")
    );
    assert_eq!(letters[0].attempts, 1);
    assert_eq!(letters[0].last_error, "HTTP 400 Bad Request");
    assert_eq!(letters[0].event.tenant, TenantId::from_raw("tn_a"));

    // Retried until its attempts run out (the backoff is a millisecond here), then
    // dead-lettered; the event behind it goes right after.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        notifier.deliver().await;
        if store.undelivered_events(0, 10).await.unwrap().is_empty() {
            break;
        }
    }
    assert!(store.undelivered_events(0, 10).await.unwrap().is_empty());
    assert_eq!(seen.lock().unwrap().0, vec!["a.after", "b.one", "a2.after"]);
    let letters = store
        .dead_letters(Some(&TenantId::from_raw("tn_a")), 0, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[1].event.kind, "flaky");
    assert_eq!(letters[1].attempts, 3);
    assert_eq!(letters[1].last_error, "HTTP 503 Service Unavailable");
    // 1 + 1 + 3 + 1 + 1 posts: nothing was offered again once it was taken or dead.
    assert_eq!(seen.lock().unwrap().1, 7);
    assert!(notifier.lock_retries().is_empty());
}

#[tokio::test]
async fn an_unreachable_webhook_charges_no_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("aegis.db")).unwrap());
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let notifier = webhook_notifier(&store, url, 1);
    let a = execution(&*store, "tn_a").await;
    publish(&*store, &a, "one").await;
    publish(&*store, &a, "two").await;
    for _ in 0..3 {
        notifier.deliver().await;
    }
    // An outage is not a refusal: both wait, none is dead.
    assert_eq!(store.undelivered_events(0, 10).await.unwrap().len(), 2);
    assert!(store.dead_letters(None, 0, 10).await.unwrap().is_empty());
}

#[test]
fn oversized_events_are_cut_to_the_limit_with_a_marker() {
    let event = |data: Value| WorkflowEvent {
        seq: 7,
        tenant: TenantId::from_raw("tn_a"),
        execution_id: ExecutionId::from_raw("ex_1"),
        kind: "execution.failed".into(),
        data: data.to_string(),
        created_at: 1_764_000_000_000,
    };
    // Small events are untouched.
    let small = json!({"status": "FAILED", "error": {"error_message": "short"}});
    assert_eq!(to_json(&event(small.clone()))["data"], small);
    // The bytes subscribers receive (and webhooks sign): keys in alphabetical order.
    assert_eq!(
        to_json(&event(json!({"status": "FAILED"}))).to_string(),
        r#"{"created_at":"2025-11-24T16:00:00.000Z","data":{"status":"FAILED"},"execution_id":"ex_1","kind":"execution.failed","seq":7,"tenant_id":"tn_a"}"#
    );

    // A 2 MB error message (with characters JSON escapes, and multi-byte ones) is cut.
    let message = "é\n\"x".repeat(400_000);
    let big = json!({"status": "FAILED", "workflow": "wf",
        "error": {"error_type": "Boom", "error_message": message}});
    let out = to_json(&event(big));
    let size = serde_json::to_vec(&out).unwrap().len();
    assert!(size <= MAX_EVENT_BYTES, "{size}");
    assert!(
        size > MAX_EVENT_BYTES - 1024,
        "cut no more than needed: {size}"
    );
    let kept = out["data"]["error"]["error_message"].as_str().unwrap();
    assert!(kept.starts_with("é\n\"x"));
    assert!(kept.ends_with(" bytes]"), "{}", &kept[kept.len() - 40..]);
    assert!(kept.contains("…[truncated "));
    assert_eq!(out["data"]["error"]["error_type"], "Boom");
    assert_eq!(out["data"]["status"], "FAILED");

    // Nothing long enough to cut: the data is replaced, saying how large it was.
    let numbers: Vec<u32> = (0..40_000).collect();
    let out = to_json(&event(json!(numbers)));
    assert!(serde_json::to_vec(&out).unwrap().len() <= MAX_EVENT_BYTES);
    assert_eq!(out["data"]["truncated"], true);
    assert!(out["data"]["original_bytes"].as_u64().unwrap() > 200_000);
}

#[test]
fn sink_answers_are_classified() {
    use reqwest::StatusCode as S;
    assert_eq!(classify_status(S::OK), None);
    assert_eq!(classify_status(S::ACCEPTED), None);
    for retriable in [
        S::REQUEST_TIMEOUT,
        S::TOO_MANY_REQUESTS,
        S::INTERNAL_SERVER_ERROR,
        S::BAD_GATEWAY,
    ] {
        assert_eq!(classify_status(retriable), Some(Failure::Retriable));
    }
    for permanent in [
        S::BAD_REQUEST,
        S::UNAUTHORIZED,
        S::NOT_FOUND,
        S::PAYLOAD_TOO_LARGE,
        S::FOUND,
    ] {
        assert_eq!(classify_status(permanent), Some(Failure::Permanent));
    }
    let policy = RetryPolicy::default();
    assert_eq!(policy.backoff(1), Duration::from_secs(1));
    assert_eq!(policy.backoff(4), Duration::from_secs(64));
    assert!(aws::is_invalid_entry("InvalidArgument"));
    assert!(aws::is_invalid_entry("MalformedDetail"));
    assert!(aws::is_invalid_entry("InvalidParameterValue"));
    assert!(aws::is_invalid_entry("ValidationException"));
    assert!(!aws::is_invalid_entry("ThrottlingException"));
    assert!(!aws::is_invalid_entry("InternalFailure"));
    assert!(!aws::is_invalid_entry("AuthorizationError"));
}

#[test]
fn signature_is_hmac_sha256_hex() {
    // RFC 4231 test case 2.
    assert_eq!(
        super::signature("Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

/// A notifier posting to the webhook at `url`, giving up on an event after `max_attempts`.
fn webhook_notifier(store: &Arc<dyn Store>, url: String, max_attempts: u32) -> Arc<Notifier> {
    let policy = RetryPolicy {
        max_attempts,
        first_backoff: Duration::from_millis(1),
    };
    let leasing = Leasing {
        host_id: "a".into(),
        ttl_ms: 60_000,
    };
    let hook = Webhook {
        url,
        secret: "s".into(),
    };
    Notifier::with_retry(store.clone(), Some(hook), None, leasing, policy)
}

use super::*;
use std::sync::Arc;

#[test]
fn simple_form_and_pushes_are_read() {
    let read =
        read_answer(&json!({"token": "cb_x", "status": "SUCCESS", "result": {"r": 1}})).unwrap();
    assert_eq!(read.token.as_deref(), Some("cb_x"));
    assert_eq!(read.task_id, None);
    assert_eq!(read.answer, Answer::Done(json!({"r": 1})));
    let read = read_answer(&json!({"token": "t", "status": "FAILURE", "result": "boom"})).unwrap();
    assert_eq!(
        read.answer,
        Answer::Failed(ErrorRecord::new("Agent.Failed", "boom"))
    );
    assert!(read_answer(&json!({"token": "t", "status": "MAYBE"})).is_err());
    let push = json!({"task": {"id": "t", "status": {"state": "TASK_STATE_WORKING"}}});
    let read = read_answer(&push).unwrap();
    assert_eq!(
        (read.task_id.as_deref(), read.answer),
        (Some("t"), Answer::Working)
    );
    assert!(read_answer(&json!({"hello": 1})).is_err());
}

#[test]
fn pushes_name_their_task_whatever_their_shape() {
    let done =
        json!({"statusUpdate": {"taskId": "t1", "status": {"state": "TASK_STATE_COMPLETED"}}});
    let read = read_answer(&done).unwrap();
    assert_eq!(read.task_id.as_deref(), Some("t1"));
    assert_eq!(
        read.answer,
        Answer::Fetch {
            task_id: "t1".into()
        }
    );
    let artifact = json!({"artifactUpdate": {"taskId": "t2", "artifact": {"parts": []}}});
    assert_eq!(
        read_answer(&artifact).unwrap().task_id.as_deref(),
        Some("t2")
    );
    let v03 = json!({"kind": "task", "id": "t3", "status": {"state": "completed"}});
    assert_eq!(read_answer(&v03).unwrap().task_id.as_deref(), Some("t3"));
    // A v0.3 status update carries a `status` as a task does, but names its task `taskId`.
    let update = json!({"kind": "status-update", "taskId": "t4", "contextId": "c",
        "status": {"state": "completed"}, "final": true});
    let read = read_answer(&update).unwrap();
    assert_eq!(read.task_id.as_deref(), Some("t4"));
    assert_eq!(
        read.answer,
        Answer::Fetch {
            task_id: "t4".into()
        }
    );
}

/// An agent on the loopback: `/redirect` answers 307 to `/target`, `/huge` streams 5 MiB
/// without a length, `/task` answers an A2A working task `t-42`; counts the hits on
/// `/target`.
async fn agent_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::http::{StatusCode, header};
    use std::sync::atomic::Ordering;
    let target_hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hits = target_hits.clone();
    let app = axum::Router::new()
        .route(
            "/redirect",
            axum::routing::post(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/target")],
                )
            }),
        )
        .route(
            "/target",
            axum::routing::post(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                async { axum::Json(json!({"jsonrpc": "2.0", "id": "x", "result": {}})) }
            }),
        )
        .route(
            "/huge",
            axum::routing::post(|| async {
                let chunks = (0..80).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 << 10]));
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/task",
            axum::routing::post(|| async {
                axum::Json(json!({"jsonrpc": "2.0", "id": "x",
                    "result": {"kind": "task", "id": "t-42", "status": {"state": "working"}}}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, target_hits)
}

fn agents_at(base: &str) -> Agents {
    let agents = ["redirect", "huge", "task"]
        .into_iter()
        .map(|name| (name.to_string(), AgentConfig::Url(format!("{base}/{name}"))))
        .collect();
    Agents::new(&agents, "http://aegis.test".into())
}

fn dispatch_to(agent: &str) -> Dispatch {
    Dispatch {
        callback_id: crate::ids::CallbackId::generate(),
        agent: agent.into(),
        input: "{}".into(),
    }
}

#[tokio::test]
async fn redirects_are_not_followed_and_huge_answers_not_read() {
    let (base, target_hits) = agent_server().await;
    let agents = agents_at(&base);
    let err = agents.dispatch(&dispatch_to("redirect")).await.unwrap_err();
    assert_eq!(err.error_type, "Agent.Redirected");
    assert!(err.error_message.contains("307"), "{}", err.error_message);
    assert_eq!(target_hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    let err = agents.dispatch(&dispatch_to("huge")).await.unwrap_err();
    assert_eq!(err.error_type, "Agent.ResponseTooLarge");
    assert!(
        err.error_message.contains(&MAX_RESPONSE_BYTES.to_string()),
        "{}",
        err.error_message
    );
}

#[tokio::test]
async fn a_running_task_is_accepted_under_its_id() {
    let (base, _) = agent_server().await;
    let answer = agents_at(&base)
        .dispatch(&dispatch_to("task"))
        .await
        .unwrap();
    assert_eq!(
        answer,
        Answer::Accepted {
            task_id: "t-42".into()
        }
    );
}

#[test]
fn url_shorthand_is_a2a_v03() {
    let e = AgentConfig::Url("http://a".into()).endpoint();
    assert_eq!((e.protocol, e.version), (Protocol::A2a, None));
}

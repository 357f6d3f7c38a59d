//! Callbacks: found by id, listed while pending, and bound to the first agent task named.

use super::*;

pub(super) async fn callbacks_are_found_by_id_and_listed_while_pending(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    let cb = CallbackRecord {
        id: CallbackId::generate(),
        tenant: ex.tenant.clone(),
        execution_id: ex.id.clone(),
        op_id: "1".into(),
        name: "approval".into(),
        status: Status::Started,
        heartbeat_timeout_ms: Some(5_000),
        agent: None,
    };
    store
        .commit(
            &ex.id,
            Batch {
                callbacks: vec![cb.clone()],
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.callback(&cb.id).await.unwrap(), Some(cb.clone()));
    assert_eq!(
        store.pending_callbacks(&ex.id).await.unwrap(),
        vec![cb.clone()]
    );
    let done = CallbackRecord {
        status: Status::Succeeded,
        ..cb.clone()
    };
    store
        .commit(
            &ex.id,
            Batch {
                callbacks: vec![done],
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert!(store.pending_callbacks(&ex.id).await.unwrap().is_empty());
}

pub(super) async fn agent_invocations_bind_the_first_task_named(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    let cb = CallbackRecord {
        id: CallbackId::generate(),
        tenant: ex.tenant.clone(),
        execution_id: ex.id.clone(),
        op_id: "1".into(),
        name: "research".into(),
        status: Status::Started,
        heartbeat_timeout_ms: None,
        agent: Some(("researcher".into(), "{}".into())),
    };
    store
        .commit(
            &ex.id,
            Batch {
                callbacks: vec![cb.clone()],
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.agent_task(&cb.id).await.unwrap(), None);
    assert_eq!(
        store
            .bind_agent_task(&cb.id, "task-1")
            .await
            .unwrap()
            .as_deref(),
        Some("task-1")
    );
    // The first binding wins: a second dispatch's answer (or anyone) cannot move it.
    assert_eq!(
        store
            .bind_agent_task(&cb.id, "task-2")
            .await
            .unwrap()
            .as_deref(),
        Some("task-1")
    );
    assert_eq!(
        store.agent_task(&cb.id).await.unwrap().as_deref(),
        Some("task-1")
    );
    // The binding is not part of the record the rest of the host reads and writes.
    assert_eq!(store.callback(&cb.id).await.unwrap(), Some(cb.clone()));

    // Nothing binds to a callback that does not exist or no longer waits.
    let unknown = CallbackId::generate();
    assert_eq!(store.bind_agent_task(&unknown, "t").await.unwrap(), None);
    assert_eq!(store.agent_task(&unknown).await.unwrap(), None);
    let late = CallbackRecord {
        id: CallbackId::generate(),
        op_id: "2".into(),
        ..cb.clone()
    };
    store
        .commit(
            &ex.id,
            Batch {
                callbacks: vec![CallbackRecord {
                    status: Status::Succeeded,
                    ..late.clone()
                }],
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.bind_agent_task(&late.id, "t").await.unwrap(), None);
    assert_eq!(store.agent_task(&late.id).await.unwrap(), None);
}

//! Batches: applied whole or not at all, under their conditions, with consecutive event ids; what an ending execution cleans up.

use super::*;

pub(super) async fn event_ids_are_consecutive_across_batches(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    for i in 0..3 {
        store
            .commit(&ex.id, started_and_succeeded(&i.to_string()))
            .await
            .unwrap();
    }
    assert_eq!(
        event_ids(&*store, &ex.id, 0, 100).await,
        (1..=7).collect::<Vec<_>>()
    );
    assert_eq!(event_ids(&*store, &ex.id, 3, 2).await, vec![4, 5]);
}

pub(super) async fn a_failed_condition_writes_nothing(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    store
        .commit(
            &ex.id,
            Batch {
                operations: vec![step("1", Status::Started)],
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    let op = step("1", Status::Succeeded);
    let batch = Batch {
        conditions: vec![Condition::OperationStatus {
            op_id: "1".into(),
            status: Status::Pending,
        }],
        events: vec![Event::operation(
            EventType::StepSucceeded,
            &op,
            now_ms(),
            Details::Empty,
        )],
        operations: vec![op],
        ..Batch::default()
    };
    assert!(matches!(
        store.commit(&ex.id, batch).await,
        Err(Error::ConditionFailed(_))
    ));
    assert_eq!(
        store.operation(&ex.id, "1").await.unwrap().unwrap().status,
        Status::Started
    );
    assert_eq!(store.history(&ex.id, 0, 10).await.unwrap().len(), 1);
}

pub(super) async fn finished_executions_refuse_further_writes(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    let finish = Finish {
        status: ExecutionStatus::Succeeded,
        result: Some("1".into()),
        error: None,
    };
    store
        .commit(
            &ex.id,
            Batch {
                finish: Some(finish),
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    let late = Batch {
        conditions: vec![Condition::ExecutionRunning],
        operations: vec![step("1", Status::Started)],
        ..Batch::default()
    };
    assert!(matches!(
        store.commit(&ex.id, late).await,
        Err(Error::ConditionFailed(_))
    ));
    let record = store.execution(&ex.id).await.unwrap().unwrap();
    assert_eq!(record.status, ExecutionStatus::Succeeded);
    assert_eq!(record.result.as_deref(), Some("1"));
}

pub(super) async fn concurrent_commits_are_group_committed_and_all_applied(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            let id = ex.id.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let op = step(&format!("{t}-{i}"), Status::Succeeded);
                    let ev =
                        Event::operation(EventType::StepSucceeded, &op, now_ms(), Details::Empty);
                    store
                        .commit(
                            &id,
                            Batch {
                                operations: vec![op],
                                events: vec![ev],
                                ..Batch::default()
                            },
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.operations(&ex.id).await.unwrap().len(), 400);
    assert_eq!(
        event_ids(&*store, &ex.id, 0, 1000).await,
        (1..=401).collect::<Vec<_>>()
    );
}

/// Backends hold no rules: a batch that ends the execution cancels its callbacks only when it
/// says so (`cancel_open_callbacks`, which the ending transitions set), and then only those
/// still waiting; written in the same batch, a callback is cancelled too.
pub(super) async fn callbacks_are_cancelled_only_when_the_batch_says_so(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    let callback = |op_id: &str, status: Status| CallbackRecord {
        id: CallbackId::generate(),
        tenant: ex.tenant.clone(),
        execution_id: ex.id.clone(),
        op_id: op_id.into(),
        name: "cb".into(),
        status,
        heartbeat_timeout_ms: None,
        agent: None,
    };
    let waiting = callback("1", Status::Started);
    let done = callback("2", Status::Succeeded);
    store
        .commit(
            &ex.id,
            Batch {
                callbacks: vec![waiting.clone(), done.clone()],
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    // A finish alone leaves the callbacks as they are.
    let finish = Finish {
        status: ExecutionStatus::Succeeded,
        result: Some("1".into()),
        error: None,
    };
    store
        .commit(
            &ex.id,
            Batch {
                finish: Some(finish),
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.pending_callbacks(&ex.id).await.unwrap(),
        vec![waiting.clone()]
    );
    // Asked to, the backend cancels the waiting ones, those of the batch included, and leaves
    // the others alone; without a finish too (the batch alone decides).
    let written = callback("3", Status::Started);
    store
        .commit(
            &ex.id,
            Batch {
                callbacks: vec![written.clone()],
                cancel_open_callbacks: true,
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert!(store.pending_callbacks(&ex.id).await.unwrap().is_empty());
    let status = async |cb: &CallbackRecord| store.callback(&cb.id).await.unwrap().unwrap().status;
    assert_eq!(status(&waiting).await, Status::Cancelled);
    assert_eq!(status(&written).await, Status::Cancelled);
    assert_eq!(status(&done).await, Status::Succeeded);
}

pub(super) async fn ending_an_execution_cancels_callbacks_and_clears_timers(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    let callback = |op_id: &str, agent: Option<(String, String)>| CallbackRecord {
        id: CallbackId::generate(),
        tenant: ex.tenant.clone(),
        execution_id: ex.id.clone(),
        op_id: op_id.into(),
        name: "cb".into(),
        status: Status::Started,
        heartbeat_timeout_ms: None,
        agent,
    };
    let waiting = callback("1", None);
    let agent = callback("2", Some(("writer".into(), "{\"topic\":1}".into())));
    let timers: Vec<Timer> = (0..3)
        .map(|i| Timer {
            fire_at: 10_000 + i,
            execution_id: ex.id.clone(),
            op_id: i.to_string(),
            kind: TimerKind::WaitEnd,
        })
        .collect();
    store
        .commit(
            &ex.id,
            Batch {
                callbacks: vec![waiting.clone(), agent.clone()],
                set_timers: timers.clone(),
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.pending_agent_callbacks().await.unwrap(),
        vec![agent.clone()]
    );
    assert_eq!(store.pending_callbacks(&ex.id).await.unwrap().len(), 2);
    let mut listed = store.timers(Millis::MAX).await.unwrap();
    listed.sort();
    assert_eq!(listed, timers);
    let finish = Finish {
        status: ExecutionStatus::Failed,
        result: None,
        error: Some(aegis_core::journal::ErrorRecord::new("E", "failed")),
    };
    store
        .commit(
            &ex.id,
            Batch {
                conditions: vec![Condition::ExecutionRunning],
                finish: Some(finish),
                clear_all_timers: true,
                cancel_open_callbacks: true,
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert!(store.timers(Millis::MAX).await.unwrap().is_empty());
    assert!(store.pending_callbacks(&ex.id).await.unwrap().is_empty());
    assert!(store.pending_agent_callbacks().await.unwrap().is_empty());
    assert!(runnable_ids(&*store).await.is_empty());
    assert_eq!(
        store.callback(&waiting.id).await.unwrap().unwrap().status,
        Status::Cancelled
    );
    let record = store.execution(&ex.id).await.unwrap().unwrap();
    assert_eq!(record.status, ExecutionStatus::Failed);
    assert_eq!(record.error.unwrap().error_type, "E");
}

//! Executions: idempotent starts, the running quota, listing, missing records, large records and long histories.

use super::*;

/// A taken name answers the execution holding it, whatever the new start asks for, and
/// writes nothing; what that means is the caller's rule.
pub(super) async fn a_taken_name_answers_the_execution_holding_it(store: Arc<dyn Store>) {
    let first = created(&*store, new_execution(Some("n"), "1")).await;
    for input in ["1", "2"] {
        match store
            .create_execution(new_execution(Some("n"), input))
            .await
            .unwrap()
        {
            Created::NameTaken(r) => assert_eq!((r.id, r.input), (first.id.clone(), "1".into())),
            other => panic!("{other:?}"),
        }
    }
    let filter = ExecutionFilter {
        limit: 10,
        ..ExecutionFilter::default()
    };
    let listed = store
        .list_executions(&TenantId::default_tenant(), &filter)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "a taken name wrote an execution");
}

pub(super) async fn starts_beyond_the_running_quota_are_refused(store: Arc<dyn Store>) {
    let quota = |input: &str| NewExecution {
        max_running: Some(2),
        ..new_execution(None, input)
    };
    created(&*store, quota("1")).await;
    created(&*store, quota("2")).await;
    assert!(matches!(
        store.create_execution(quota("3")).await.unwrap(),
        Created::OverQuota(2)
    ));
}

pub(super) async fn executions_list_newest_first_with_filters_and_cursor(store: Arc<dyn Store>) {
    let t = TenantId::default_tenant();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut new = new_execution(None, "{}");
        new.now = 1_000 + i;
        if i % 2 == 0 {
            new.workflow = "other".into();
        }
        ids.push(created(&*store, new).await.id);
    }
    let page = async |after, limit| {
        store
            .list_executions(
                &t,
                &ExecutionFilter {
                    after,
                    limit,
                    ..ExecutionFilter::default()
                },
            )
            .await
            .unwrap()
    };
    let first = page(None, 2).await;
    assert_eq!(
        first.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![ids[4].clone(), ids[3].clone()]
    );
    let last = first.last().unwrap();
    let second = page(Some((last.created_at, last.id.clone())), 10).await;
    assert_eq!(second.len(), 3);
    assert_eq!(second[0].id, ids[2]);
    let filtered = store
        .list_executions(
            &t,
            &ExecutionFilter {
                workflow: Some("wf".into()),
                limit: 10,
                ..ExecutionFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(filtered.len(), 2);
    let ranged = store
        .list_executions(
            &t,
            &ExecutionFilter {
                created_after: Some(1_001),
                created_before: Some(1_003),
                limit: 10,
                ..ExecutionFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ranged.len(), 2);
    assert!(
        store
            .list_executions(
                &TenantId::from_raw("other"),
                &ExecutionFilter {
                    limit: 10,
                    ..ExecutionFilter::default()
                }
            )
            .await
            .unwrap()
            .is_empty()
    );
}

/// Writing to a record that does not exist is [`Error::NotFound`], whatever the batch holds
/// (its conditions included), and writes nothing; reading one is `None`, not an error.
pub(super) async fn missing_records_are_not_found(store: Arc<dyn Store>) {
    let ghost = ExecutionId::from_raw("ex_missing");
    assert!(store.execution(&ghost).await.unwrap().is_none());
    for conditions in [vec![], vec![Condition::ExecutionRunning]] {
        let error = store
            .commit(
                &ghost,
                Batch {
                    conditions,
                    ..started_and_succeeded("1")
                },
            )
            .await
            .expect_err("a commit to a missing execution");
        assert!(error.is_not_found() && !error.is_retriable(), "{error:?}");
    }
    assert!(store.execution(&ghost).await.unwrap().is_none());
    assert!(store.history(&ghost, 0, 10).await.unwrap().is_empty());
    assert!(store.operation(&ghost, "1").await.unwrap().is_none());
    let tenant = TenantRecord {
        id: TenantId::from_raw("tn_missing"),
        name: "nobody".into(),
        overrides: aegis_core::quotas::Overrides::default(),
        created_at: 1,
    };
    assert!(store.tenant(&tenant.id).await.unwrap().is_none());
    let error = store
        .update_tenant(&tenant)
        .await
        .expect_err("updating a missing tenant");
    assert!(error.is_not_found(), "{error:?}");
    assert!(store.tenant(&tenant.id).await.unwrap().is_none());
}

/// Returns the execution, for the checks a backend adds (where the values went).
pub(super) async fn large_records_round_trip(store: Arc<dyn Store>) -> ExecutionId {
    // Larger than a DynamoDB item may be: the backend must spill it and read it back whole.
    let big = format!("\"{}\"", "é".repeat(300 * 1024));
    let ex = created(&*store, new_execution(None, &big)).await;
    assert_eq!(store.execution(&ex.id).await.unwrap().unwrap().input, big);
    let mut op = step("1", Status::Succeeded);
    op.result = Some(big.clone());
    let event = Event::operation(
        EventType::StepSucceeded,
        &op,
        now_ms(),
        // Bigger than an event keeps of a payload, so bigger than any event the host writes.
        Details::Succeeded {
            result: Preview {
                text: big.clone(),
                truncated: false,
            },
            attempt: None,
        },
    );
    let batch = Batch {
        operations: vec![op.clone()],
        events: vec![event.clone()],
        publish: vec![("big".into(), big.clone())],
        ..Batch::default()
    };
    store.commit(&ex.id, batch).await.unwrap();
    assert_eq!(
        store.operation(&ex.id, "1").await.unwrap(),
        Some(op.clone())
    );
    assert_eq!(store.operations(&ex.id).await.unwrap(), vec![op]);
    assert_eq!(
        store.history(&ex.id, 1, 10).await.unwrap(),
        vec![(2, event)]
    );
    let published = store
        .workflow_events(None, Some(&ex.id), 0, 10)
        .await
        .unwrap();
    assert_eq!(published[0].data, big);
    assert_eq!(store.undelivered_events(0, 10).await.unwrap()[0].data, big);
    let finish = Finish {
        status: ExecutionStatus::Succeeded,
        result: Some(big.clone()),
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
        store.execution(&ex.id).await.unwrap().unwrap().result,
        Some(big)
    );
    ex.id
}

pub(super) async fn long_histories_read_in_pages(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    for batch in 0..5 {
        let op = step(&batch.to_string(), Status::Succeeded);
        let events = (0..50)
            .map(|_| Event::operation(EventType::StepStarted, &op, now_ms(), Details::Empty))
            .collect();
        store
            .commit(
                &ex.id,
                Batch {
                    events,
                    ..Batch::default()
                },
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    loop {
        let after = seen.last().copied().unwrap_or(0);
        let page = store.history(&ex.id, after, 100).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 100);
        seen.extend(page.into_iter().map(|(id, _)| id));
    }
    assert_eq!(seen, (1..=251).collect::<Vec<_>>());
}

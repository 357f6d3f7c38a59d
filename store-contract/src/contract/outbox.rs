//! The outbox: published events numbered, scoped and delivered once; dead letters.

use super::*;

pub(super) async fn published_events_are_numbered_scoped_and_delivered_once(store: Arc<dyn Store>) {
    let a = created(&*store, new_execution(None, "{}")).await;
    let mut other = new_execution(None, "{}");
    other.tenant = TenantId::from_raw("tn_b");
    let b = created(&*store, other).await;
    let publish = |kind: &str| Batch {
        publish: vec![(kind.to_string(), "{}".to_string())],
        ..Batch::default()
    };
    store.commit(&a.id, publish("one")).await.unwrap();
    store.commit(&b.id, publish("other")).await.unwrap();
    store.commit(&a.id, publish("two")).await.unwrap();
    let mine = store
        .workflow_events(Some(&a.tenant), None, 0, 10)
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["one", "two"]
    );
    assert!(mine[0].seq < mine[1].seq);
    let after = store
        .workflow_events(Some(&a.tenant), Some(&a.id), mine[0].seq, 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(
        store
            .workflow_events(None, None, 0, 10)
            .await
            .unwrap()
            .len(),
        3
    );
    let pending = store.undelivered_events(0, 10).await.unwrap();
    assert_eq!(pending.len(), 3);
    store
        .mark_delivered(&[pending[0].seq, pending[1].seq])
        .await
        .unwrap();
    assert_eq!(
        store.undelivered_events(0, 10).await.unwrap(),
        vec![pending[2].clone()]
    );
}

pub(super) async fn dead_letters_leave_the_outbox_and_are_listed_by_tenant(store: Arc<dyn Store>) {
    let a = created(&*store, new_execution(None, "{}")).await;
    let mut other = new_execution(None, "{}");
    other.tenant = TenantId::from_raw("tn_b");
    let b = created(&*store, other).await;
    let publish = |kind: &str| Batch {
        publish: vec![(kind.to_string(), r#"{"n":1}"#.to_string())],
        ..Batch::default()
    };
    for kind in ["a1", "a2", "a3"] {
        store.commit(&a.id, publish(kind)).await.unwrap();
    }
    store.commit(&b.id, publish("b1")).await.unwrap();
    let pending = store.undelivered_events(0, 10).await.unwrap();
    assert_eq!(pending.len(), 4);
    // Paging past an event that waits for a retry.
    assert_eq!(
        store.undelivered_events(pending[1].seq, 10).await.unwrap(),
        pending[2..].to_vec()
    );
    let letter = |event: &WorkflowEvent, sink: &str| DeadLetter {
        event: event.clone(),
        sink: sink.into(),
        attempts: 5,
        last_error: "HTTP 400 Bad Request".into(),
        dead_at: 1_764_000_000_000,
    };
    let (a1, a3, b1) = (&pending[0], &pending[2], &pending[3]);
    store
        .dead_letter(&[letter(a1, "webhook"), letter(b1, "eventbridge")])
        .await
        .unwrap();
    // Again (a crash after the letter was stored): nothing doubles.
    store.dead_letter(&[letter(a1, "webhook")]).await.unwrap();
    store.dead_letter(&[letter(a3, "webhook")]).await.unwrap();
    assert_eq!(
        store.undelivered_events(0, 10).await.unwrap(),
        vec![pending[1].clone()]
    );
    let mine = store.dead_letters(Some(&a.tenant), 0, 10).await.unwrap();
    assert_eq!(mine, vec![letter(a1, "webhook"), letter(a3, "webhook")]);
    // Pages by seq.
    assert_eq!(
        store.dead_letters(Some(&a.tenant), 0, 1).await.unwrap(),
        vec![letter(a1, "webhook")]
    );
    assert_eq!(
        store
            .dead_letters(Some(&a.tenant), a1.seq, 10)
            .await
            .unwrap(),
        vec![letter(a3, "webhook")]
    );
    assert_eq!(
        store.dead_letters(Some(&b.tenant), 0, 10).await.unwrap(),
        vec![letter(b1, "eventbridge")]
    );
    assert_eq!(store.dead_letters(None, 0, 10).await.unwrap().len(), 3);
    // The event itself stays readable where it was.
    assert_eq!(
        store
            .workflow_events(None, None, 0, 10)
            .await
            .unwrap()
            .len(),
        4
    );
}

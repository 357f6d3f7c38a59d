//! Timers: listed up to a time, fired once and only when due.

use super::*;

pub(super) async fn timers_are_listed_up_to_a_time(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    let timers: Vec<Timer> = [5_000, 1_000, 3_000]
        .iter()
        .enumerate()
        .map(|(i, at)| Timer {
            fire_at: *at,
            execution_id: ex.id.clone(),
            op_id: i.to_string(),
            kind: TimerKind::WaitEnd,
        })
        .collect();
    store
        .commit(
            &ex.id,
            Batch {
                set_timers: timers.clone(),
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    let fire_times = async |before| {
        let mut at: Vec<Millis> = store
            .timers(before)
            .await
            .unwrap()
            .iter()
            .map(|t| t.fire_at)
            .collect();
        at.sort();
        at
    };
    assert_eq!(fire_times(999).await, Vec::<Millis>::new());
    assert_eq!(fire_times(1_000).await, vec![1_000]);
    assert_eq!(fire_times(4_000).await, vec![1_000, 3_000]);
    assert_eq!(fire_times(Millis::MAX).await, vec![1_000, 3_000, 5_000]);
}

pub(super) async fn timers_fire_once_and_only_when_due(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    let timer = Timer {
        fire_at: 1_000,
        execution_id: ex.id.clone(),
        op_id: "1".into(),
        kind: TimerKind::WaitEnd,
    };
    store
        .commit(
            &ex.id,
            Batch {
                set_timers: vec![timer.clone()],
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.timers(Millis::MAX).await.unwrap(), vec![timer]);
    let fire = |now| Batch {
        conditions: vec![Condition::TimerDue {
            op_id: "1".into(),
            kind: TimerKind::WaitEnd,
            now,
        }],
        clear_timers: vec![("1".into(), TimerKind::WaitEnd)],
        ..Batch::default()
    };
    assert!(matches!(
        store.commit(&ex.id, fire(999)).await,
        Err(Error::ConditionFailed(_))
    ));
    store.commit(&ex.id, fire(1_000)).await.unwrap();
    assert!(matches!(
        store.commit(&ex.id, fire(2_000)).await,
        Err(Error::ConditionFailed(_))
    ));
    assert!(store.timers(Millis::MAX).await.unwrap().is_empty());
}

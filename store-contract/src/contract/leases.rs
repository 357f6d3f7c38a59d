//! Runnable executions, leases with fencing tokens, and fleet-wide roles.

use super::*;

pub(super) async fn wake_and_settle_track_runnable_executions(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    assert_eq!(runnable_ids(&*store).await, vec![ex.id.clone()]);
    // A wake-up after the activation loaded the execution keeps it runnable.
    store
        .commit(
            &ex.id,
            Batch {
                wake: true,
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    store
        .commit(
            &ex.id,
            Batch {
                settle: Some(ex.wake_seq),
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(runnable_ids(&*store).await, vec![ex.id.clone()]);
    let seq = store.execution(&ex.id).await.unwrap().unwrap().wake_seq;
    store
        .commit(
            &ex.id,
            Batch {
                settle: Some(seq),
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert!(runnable_ids(&*store).await.is_empty());
}

pub(super) async fn leases_are_exclusive_until_they_expire_and_fence_stale_writes(
    store: Arc<dyn Store>,
) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    let t0 = 1_000_000;
    let (a, taken_over) = acquired(claim(&*store, &ex.id, "host-a", t0).await);
    assert_eq!(
        (a.owner.as_str(), a.token, a.expires_at),
        ("host-a", 1, t0 + TTL as Millis)
    );
    assert!(!taken_over, "a fresh execution's lease was never held");
    // Host B waits while A's lease lasts, and sees who holds it until when.
    assert_eq!(
        claim(&*store, &ex.id, "host-b", t0 + 1).await,
        Claim::Busy {
            owner: "host-a".into(),
            until: t0 + TTL as Millis
        }
    );
    store
        .commit(&ex.id, leased_step(a.token, "1"))
        .await
        .unwrap();
    assert!(
        store
            .renew_lease(&ex.id, &a, t0 + 5_000, TTL)
            .await
            .unwrap()
    );
    assert!(matches!(
        claim(&*store, &ex.id, "host-b", t0 + TTL as Millis + 1).await,
        Claim::Busy { .. }
    ));
    // A stops renewing (it died or stalled); once the lease runs out, B takes it over with a
    // higher token.
    let expiry = t0 + 5_000 + TTL as Millis;
    let (b, taken_over) = acquired(claim(&*store, &ex.id, "host-b", expiry).await);
    assert_eq!((b.owner.as_str(), b.token), ("host-b", 2));
    assert!(taken_over, "A never released it");
    // Whatever A still tries to write is refused, and writes nothing.
    let history = store.history(&ex.id, 0, 100).await.unwrap().len();
    assert!(matches!(
        store.commit(&ex.id, leased_step(a.token, "2")).await,
        Err(Error::ConditionFailed(_))
    ));
    assert!(!store.renew_lease(&ex.id, &a, expiry, TTL).await.unwrap());
    assert!(store.operation(&ex.id, "2").await.unwrap().is_none());
    assert_eq!(store.history(&ex.id, 0, 100).await.unwrap().len(), history);
    // B's writes go through; A cannot take the lease back while B holds it.
    store
        .commit(&ex.id, leased_step(b.token, "2"))
        .await
        .unwrap();
    assert!(matches!(
        claim(&*store, &ex.id, "host-a", expiry + 1).await,
        Claim::Busy { .. }
    ));
    let listed = store.runnable().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].lease, b);
}

pub(super) async fn released_leases_pass_on_at_once_and_idle_executions_need_none(
    store: Arc<dyn Store>,
) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    let now = now_ms();
    let (a, _) = acquired(claim(&*store, &ex.id, "host-a", now).await);
    // The activation's last commit settles the execution and gives the lease back.
    store
        .commit(
            &ex.id,
            Batch {
                conditions: vec![Condition::Lease(a.token)],
                settle: Some(ex.wake_seq),
                release_lease: true,
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert!(!store.renew_lease(&ex.id, &a, now, TTL).await.unwrap());
    assert_eq!(claim(&*store, &ex.id, "host-b", now).await, Claim::Idle);
    // A callback completed on host B wakes it: B takes the released lease without waiting,
    // and it is not a takeover.
    store
        .commit(
            &ex.id,
            Batch {
                wake: true,
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    let (b, taken_over) = acquired(claim(&*store, &ex.id, "host-b", now).await);
    assert_eq!(b.token, a.token + 1);
    assert!(!taken_over);
    // The same host (restarted with the same id) takes its own lease back before it expires.
    let (again, _) = acquired(claim(&*store, &ex.id, "host-b", now + 1).await);
    assert_eq!(again.token, b.token + 1);
    // A finished execution has nothing to run.
    store
        .commit(
            &ex.id,
            Batch {
                conditions: vec![Condition::Lease(again.token)],
                finish: Some(Finish {
                    status: ExecutionStatus::Succeeded,
                    result: Some("1".into()),
                    error: None,
                }),
                release_lease: true,
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(claim(&*store, &ex.id, "host-c", now).await, Claim::Idle);
    assert_eq!(
        claim(&*store, &ExecutionId::from_raw("ex_missing"), "host-c", now).await,
        Claim::Idle
    );
}

pub(super) async fn racing_hosts_never_both_get_a_lease(store: Arc<dyn Store>) {
    let ex = created(&*store, new_execution(None, "{}")).await;
    let now = now_ms();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (store, id) = (store.clone(), ex.id.clone());
            tokio::spawn(async move {
                store
                    .acquire_lease(&id, &format!("host-{i}"), now, TTL)
                    .await
            })
        })
        .collect();
    let mut winners: Vec<Lease> = Vec::new();
    for h in handles {
        if let Claim::Acquired { lease, .. } = h.await.unwrap().unwrap() {
            winners.push(lease);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].token, 1);
}

pub(super) async fn roles_have_one_holder_until_its_claim_expires(store: Arc<dyn Store>) {
    assert!(store.claim_role("outbox", "a", 1_000, 100).await.unwrap());
    assert!(!store.claim_role("outbox", "b", 1_050, 100).await.unwrap());
    // Roles are independent of each other.
    assert!(store.claim_role("other", "b", 1_050, 100).await.unwrap());
    // The holder keeps it, and its claim now lasts until 1 150.
    assert!(store.claim_role("outbox", "a", 1_050, 100).await.unwrap());
    assert!(!store.claim_role("outbox", "b", 1_120, 100).await.unwrap());
    // Once the claim has expired, another host takes it.
    assert!(store.claim_role("outbox", "b", 1_150, 100).await.unwrap());
    assert!(!store.claim_role("outbox", "a", 1_200, 100).await.unwrap());
    // Hosts racing for a free role: exactly one wins.
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim_role("race", &format!("host-{i}"), 5_000, 1_000)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for r in racers {
        winners += usize::from(r.await.unwrap());
    }
    assert_eq!(winners, 1);
}

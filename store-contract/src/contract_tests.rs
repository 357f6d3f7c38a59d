//! The store contract: behaviour every backend must show. [`contract!`] runs every function
//! here against each backend, each test on a fresh store:
//! - `sqlite`: the embedded store in a temporary folder;
//! - `dynamodb`: a fresh table (its own prefix) on the server at `AEGIS_DYNAMODB_ENDPOINT`, or,
//!   when that is unset, on moto's server (`.ci/moto-server`) this process starts on a
//!   free loopback port (the tests are skipped, saying so, when neither is available, unless `AEGIS_REQUIRE_DYNAMODB`
//!   is set, as in CI). A real server speaking the DynamoDB protocol, never an in-process mock.

use crate::dynamodb_local;
use aegis_core::ids::{CallbackId, ComponentDigest, ExecutionId, TenantId};
use aegis_core::journal::{
    Details, Event, EventType, Millis, Operation, OperationType, Preview, Status, SubType, now_ms,
};
use aegis_core::store::*;
use aegis_store_dynamo as dynamo;
use aegis_store_sqlite as sqlite;
use std::sync::Arc;

fn sqlite_store(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(sqlite::SqliteStore::open(&dir.join("aegis.db")).unwrap())
}

/// A fresh table on the DynamoDB server, or `None` (with a note) when there is none.
async fn dynamo_store() -> Option<Arc<dyn Store>> {
    let endpoint = dynamodb_local::endpoint()?;
    let options = dynamo::DynamoOptions {
        table_prefix: format!("contract-{:016x}-", rand::random::<u64>()),
        endpoint_url: Some(endpoint),
        region: Some("us-east-1".into()),
        credentials: Some(("test".into(), "test".into())),
        spill_to: None,
    };
    let store = dynamo::DynamoStore::connect(&options).await.unwrap();
    store.create_tables().await.unwrap();
    Some(Arc::new(store))
}

fn new_execution(name: Option<&str>, input: &str) -> NewExecution {
    NewExecution {
        id: ExecutionId::generate(),
        tenant: TenantId::default_tenant(),
        name: name.map(str::to_owned),
        workflow: "wf".into(),
        version: 1,
        digest: ComponentDigest::of(b"x"),
        input: input.into(),
        now: now_ms(),
        timeout_at: None,
        max_running: None,
        started_event: Event::execution(EventType::ExecutionStarted, now_ms(), Details::Empty),
    }
}

async fn created(store: &dyn Store, new: NewExecution) -> ExecutionRecord {
    match store.create_execution(new).await.unwrap() {
        Created::New(r) => r,
        other => panic!("expected a new execution, got {other:?}"),
    }
}

fn step(id: &str, status: Status) -> Operation {
    let mut op = Operation::new(
        id.into(),
        None,
        "s".into(),
        OperationType::Step,
        SubType::Step,
        now_ms(),
    );
    op.status = status;
    op
}

async fn start_is_idempotent_by_name(store: Arc<dyn Store>) {
    let first = created(&*store, new_execution(Some("n"), "1")).await;
    match store
        .create_execution(new_execution(Some("n"), "1"))
        .await
        .unwrap()
    {
        Created::Existing(r) => assert_eq!(r.id, first.id),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store
            .create_execution(new_execution(Some("n"), "2"))
            .await
            .unwrap(),
        Created::Conflict(_)
    ));
}

async fn starts_beyond_the_running_quota_are_refused(store: Arc<dyn Store>) {
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

async fn executions_list_newest_first_with_filters_and_cursor(store: Arc<dyn Store>) {
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

async fn components_in_use_cannot_be_deleted(store: Arc<dyn Store>) {
    let t = TenantId::default_tenant();
    store
        .put_component(&t, "wf", &ComponentDigest::of(b"x"), 1, 0)
        .await
        .unwrap();
    store
        .put_component(&t, "wf", &ComponentDigest::of(b"y"), 1, 0)
        .await
        .unwrap();
    let running = created(&*store, new_execution(None, "{}")).await;
    assert_eq!(
        store.delete_component(&t, "wf", 1).await.unwrap(),
        Deleted::InUse
    );
    assert_eq!(
        store.delete_component(&t, "wf", 2).await.unwrap(),
        Deleted::Deleted
    );
    assert_eq!(
        store.delete_component(&t, "wf", 2).await.unwrap(),
        Deleted::NotFound
    );
    let finish = Finish {
        status: ExecutionStatus::Succeeded,
        result: None,
        error: None,
    };
    store
        .commit(
            &running.id,
            Batch {
                finish: Some(finish),
                ..Batch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.delete_component(&t, "wf", 1).await.unwrap(),
        Deleted::Deleted
    );
    assert!(store.components(&t, None).await.unwrap().is_empty());
    assert!(
        store
            .find_component(&t, "wf", Some(1))
            .await
            .unwrap()
            .is_none()
    );
    // Version numbers are never given out again, even for the bytes a deleted version had.
    let (again, created) = store
        .put_component(&t, "wf", &ComponentDigest::of(b"x"), 1, 0)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(again.version, 3);
}

async fn tenants_and_keys_round_trip(store: Arc<dyn Store>) {
    let tenant = TenantRecord {
        id: TenantId::from_raw("tn_1"),
        name: "acme".into(),
        overrides: aegis_core::quotas::Overrides {
            memory_limit_mb: Some(8),
            ..Default::default()
        },
        created_at: 1,
    };
    let key = KeyRecord {
        id: "key_1".into(),
        tenant: tenant.id.clone(),
        hash: "h".into(),
        created_at: 1,
        revoked_at: None,
    };
    assert!(store.create_tenant(&tenant, &key).await.unwrap());
    let again = TenantRecord {
        id: TenantId::from_raw("tn_2"),
        ..tenant.clone()
    };
    assert!(
        !store
            .create_tenant(
                &again,
                &KeyRecord {
                    id: "key_2".into(),
                    ..key.clone()
                }
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.tenant(&tenant.id).await.unwrap(),
        Some(tenant.clone())
    );
    assert_eq!(store.tenants().await.unwrap().len(), 1);
    assert_eq!(store.api_key("key_1").await.unwrap(), Some(key.clone()));
    assert!(store.api_key("key_2").await.unwrap().is_none());
    let revoked = KeyRecord {
        revoked_at: Some(5),
        ..key
    };
    store.put_api_key(&revoked).await.unwrap();
    assert_eq!(store.api_keys(&tenant.id).await.unwrap(), vec![revoked]);
}

/// Writing to a record that does not exist is [`Error::NotFound`], whatever the batch holds
/// (its conditions included), and writes nothing; reading one is `None`, not an error.
async fn missing_records_are_not_found(store: Arc<dyn Store>) {
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

/// A batch recording step `id` started and succeeded: one operation, two events.
fn started_and_succeeded(id: &str) -> Batch {
    let op = step(id, Status::Succeeded);
    Batch {
        events: vec![
            Event::operation(EventType::StepStarted, &op, now_ms(), Details::Empty),
            Event::operation(EventType::StepSucceeded, &op, now_ms(), Details::Empty),
        ],
        operations: vec![op],
        ..Batch::default()
    }
}

/// The EventIds of up to `limit` history events of `id` after `after`.
async fn event_ids(store: &dyn Store, id: &ExecutionId, after: u64, limit: usize) -> Vec<u64> {
    store
        .history(id, after, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

async fn event_ids_are_consecutive_across_batches(store: Arc<dyn Store>) {
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

async fn a_failed_condition_writes_nothing(store: Arc<dyn Store>) {
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

async fn finished_executions_refuse_further_writes(store: Arc<dyn Store>) {
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

async fn runnable_ids(store: &dyn Store) -> Vec<ExecutionId> {
    store
        .runnable()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

const TTL: u64 = 10_000;

async fn claim(store: &dyn Store, id: &ExecutionId, host: &str, now: Millis) -> Claim {
    store.acquire_lease(id, host, now, TTL).await.unwrap()
}

fn acquired(claim: Claim) -> (Lease, bool) {
    match claim {
        Claim::Acquired { lease, taken_over } => (lease, taken_over),
        other => panic!("expected the lease, got {other:?}"),
    }
}

/// A batch recording step `id` succeeded: one operation, one event.
fn succeeded_step(id: &str) -> Batch {
    let op = step(id, Status::Succeeded);
    Batch {
        events: vec![Event::operation(
            EventType::StepSucceeded,
            &op,
            now_ms(),
            Details::Empty,
        )],
        operations: vec![op],
        ..Batch::default()
    }
}

fn leased_step(token: u64, id: &str) -> Batch {
    Batch {
        conditions: vec![Condition::ExecutionRunning, Condition::Lease(token)],
        ..succeeded_step(id)
    }
}

async fn leases_are_exclusive_until_they_expire_and_fence_stale_writes(store: Arc<dyn Store>) {
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

async fn released_leases_pass_on_at_once_and_idle_executions_need_none(store: Arc<dyn Store>) {
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

async fn racing_hosts_never_both_get_a_lease(store: Arc<dyn Store>) {
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

async fn timers_are_listed_up_to_a_time(store: Arc<dyn Store>) {
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

async fn wake_and_settle_track_runnable_executions(store: Arc<dyn Store>) {
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

async fn timers_fire_once_and_only_when_due(store: Arc<dyn Store>) {
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

async fn callbacks_are_found_by_id_and_listed_while_pending(store: Arc<dyn Store>) {
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

async fn concurrent_commits_are_group_committed_and_all_applied(store: Arc<dyn Store>) {
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

async fn components_get_versions_by_digest(store: Arc<dyn Store>) {
    let t = TenantId::default_tenant();
    let (v1, new1) = store
        .put_component(&t, "wf", &ComponentDigest::of(b"1"), 1, 0)
        .await
        .unwrap();
    let (again, new_again) = store
        .put_component(&t, "wf", &ComponentDigest::of(b"1"), 1, 0)
        .await
        .unwrap();
    let (v2, _) = store
        .put_component(&t, "wf", &ComponentDigest::of(b"2"), 1, 0)
        .await
        .unwrap();
    assert!(new1 && !new_again);
    assert_eq!((v1.version, again.version, v2.version), (1, 1, 2));
    assert_eq!(
        store
            .find_component(&t, "wf", None)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        store
            .find_component(&t, "wf", Some(1))
            .await
            .unwrap()
            .unwrap()
            .digest,
        ComponentDigest::of(b"1")
    );
    assert!(
        store
            .find_component(&TenantId::from_raw("other"), "wf", None)
            .await
            .unwrap()
            .is_none()
    );
}

async fn published_events_are_numbered_scoped_and_delivered_once(store: Arc<dyn Store>) {
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

async fn dead_letters_leave_the_outbox_and_are_listed_by_tenant(store: Arc<dyn Store>) {
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

async fn agent_invocations_bind_the_first_task_named(store: Arc<dyn Store>) {
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

/// Returns the execution, for the checks a backend adds (where the values went).
async fn large_records_round_trip(store: Arc<dyn Store>) -> ExecutionId {
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

/// Backends hold no rules: a batch that ends the execution cancels its callbacks only when it
/// says so (`cancel_open_callbacks`, which the ending transitions set), and then only those
/// still waiting; written in the same batch, a callback is cancelled too.
async fn callbacks_are_cancelled_only_when_the_batch_says_so(store: Arc<dyn Store>) {
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

async fn ending_an_execution_cancels_callbacks_and_clears_timers(store: Arc<dyn Store>) {
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

async fn long_histories_read_in_pages(store: Arc<dyn Store>) {
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

async fn roles_have_one_holder_until_its_claim_expires(store: Arc<dyn Store>) {
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

/// Runs every contract test against every backend, each on a fresh store.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$test(super::sqlite_store(dir.path())).await;
                }
            )*
        }
        mod dynamodb_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    if let Some(store) = super::dynamo_store().await {
                        super::$test(store).await;
                    }
                }
            )*
        }
    };
}

contract!(
    start_is_idempotent_by_name,
    starts_beyond_the_running_quota_are_refused,
    executions_list_newest_first_with_filters_and_cursor,
    components_in_use_cannot_be_deleted,
    tenants_and_keys_round_trip,
    missing_records_are_not_found,
    event_ids_are_consecutive_across_batches,
    a_failed_condition_writes_nothing,
    finished_executions_refuse_further_writes,
    wake_and_settle_track_runnable_executions,
    timers_fire_once_and_only_when_due,
    callbacks_are_found_by_id_and_listed_while_pending,
    concurrent_commits_are_group_committed_and_all_applied,
    components_get_versions_by_digest,
    published_events_are_numbered_scoped_and_delivered_once,
    dead_letters_leave_the_outbox_and_are_listed_by_tenant,
    agent_invocations_bind_the_first_task_named,
    large_records_round_trip,
    ending_an_execution_cancels_callbacks_and_clears_timers,
    callbacks_are_cancelled_only_when_the_batch_says_so,
    long_histories_read_in_pages,
    leases_are_exclusive_until_they_expire_and_fence_stale_writes,
    released_leases_pass_on_at_once_and_idle_executions_need_none,
    racing_hosts_never_both_get_a_lease,
    timers_are_listed_up_to_a_time,
    roles_have_one_holder_until_its_claim_expires,
);

/// With a bucket, the DynamoDB store spills large values to S3 objects (encrypted, checked
/// against their hash on read) instead of chunk items; a host without the bucket cannot read
/// them and says why; the host that wrote them keeps them. On moto, like the suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_spills_large_values_to_s3() {
    use aegis_aws::AwsOptions;
    use aegis_aws::s3::{Bucket, S3Options};
    use sha2::Digest;
    let Some(endpoint) = dynamodb_local::endpoint() else {
        return;
    };
    let aws = AwsOptions {
        endpoint_url: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        credentials: Some(("test".into(), "test".into())),
        ..AwsOptions::default()
    };
    let s3 = S3Options {
        bucket: format!("aegis-spill-{:016x}", rand::random::<u64>()),
        prefix: "aegis".into(),
        force_path_style: true,
        aws: aws.clone(),
        ..S3Options::default()
    };
    let bucket = Bucket::connect(s3.clone()).await.unwrap();
    let options = dynamo::DynamoOptions {
        table_prefix: format!("spill-{:016x}-", rand::random::<u64>()),
        endpoint_url: Some(endpoint),
        region: aws.region.clone(),
        credentials: aws.credentials.clone(),
        spill_to: Some(std::sync::Arc::new(bucket.clone())),
    };
    bucket
        .client()
        .create_bucket()
        .bucket(&s3.bucket)
        .send()
        .await
        .unwrap();
    let store = dynamo::DynamoStore::connect(&options).await.unwrap();
    store.create_tables().await.unwrap();
    let table = store.table_name().to_string();
    let store: Arc<dyn Store> = Arc::new(store);

    let ex = large_records_round_trip(store.clone()).await;

    // The values are objects under `<prefix>/_spill/`, written with server-side encryption...
    let listed = bucket
        .client()
        .list_objects_v2()
        .bucket(&s3.bucket)
        .prefix("aegis/_spill/")
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert!(!keys.is_empty(), "nothing was spilled to S3");
    let head = bucket
        .client()
        .head_object()
        .bucket(&s3.bucket)
        .key(&keys[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("AES256")
    );
    // ...and the table holds no chunk item.
    let dynamo =
        async { aws_sdk_dynamodb::Client::new(&aegis_aws::sdk_config(&aws).await.unwrap()) }.await;
    let scanned = dynamo.scan().table_name(&table).send().await.unwrap();
    let blobs = scanned
        .items()
        .iter()
        .filter(|i| {
            i.get("pk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with("BLOB#"))
        })
        .count();
    assert_eq!(blobs, 0, "chunk items were written to the table");

    // A host configured without the bucket refuses to guess.
    let blind = dynamo::DynamoStore::connect(&dynamo::DynamoOptions {
        spill_to: None,
        ..options.clone()
    })
    .await
    .unwrap();
    let Err(err) = blind.execution(&ex).await else {
        panic!("read a spilled value without the bucket");
    };
    assert!(err.to_string().contains("no S3 bucket"), "{err}");

    // A spilled object that no longer matches its hash is refused, not returned.
    let input = store.execution(&ex).await.unwrap().unwrap().input;
    let key = format!(
        "aegis/_spill/{}",
        hex::encode(sha2::Sha256::digest(input.as_bytes()))
    );
    assert!(keys.contains(&key), "{key} is not among {keys:?}");
    bucket
        .client()
        .put_object()
        .bucket(&s3.bucket)
        .key(&key)
        .body(b"\"tampered\"".to_vec().into())
        .send()
        .await
        .unwrap();
    // Another host reads it from the bucket and refuses it.
    let other = dynamo::DynamoStore::connect(&options).await.unwrap();
    let Err(err) = other.execution(&ex).await else {
        panic!("a tampered spilled value was returned");
    };
    let err = err.to_string();
    assert!(err.contains("does not match its hash"), "{err}");
    // The host that wrote it keeps what it wrote and does not fetch it again.
    assert_eq!(store.execution(&ex).await.unwrap().unwrap().input, input);
}

/// Two DynamoDB stores on one table, as two hosts have: each keeps the execution item as it
/// last wrote it, and must notice when the other wrote since: event ids stay consecutive, and
/// a lease the other took over fences the first one's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_stores_sharing_a_table_see_each_others_writes() {
    let Some(endpoint) = dynamodb_local::endpoint() else {
        return;
    };
    let options = dynamo::DynamoOptions {
        table_prefix: format!("shared-{:016x}-", rand::random::<u64>()),
        endpoint_url: Some(endpoint),
        region: Some("us-east-1".into()),
        credentials: Some(("test".into(), "test".into())),
        spill_to: None,
    };
    let a = dynamo::DynamoStore::connect(&options).await.unwrap();
    a.create_tables().await.unwrap();
    let b = dynamo::DynamoStore::connect(&options).await.unwrap();
    let ex = created(&a, new_execution(None, "{}")).await;
    // Turns alternate, so each store's copy is one commit behind on its next turn.
    for i in 0..6 {
        let store: &dyn Store = if i % 2 == 0 { &a } else { &b };
        store
            .commit(&ex.id, started_and_succeeded(&i.to_string()))
            .await
            .unwrap();
    }
    assert_eq!(
        event_ids(&b, &ex.id, 0, 100).await,
        (1..=13).collect::<Vec<_>>()
    );
    assert_eq!(a.operations(&ex.id).await.unwrap().len(), 6);

    // A runs under its lease and keeps its copy; B records something meanwhile (as a callback
    // delivered to B would), so A's copy is stale and its next commit must still land.
    let t0 = now_ms();
    let (la, _) = acquired(claim(&a, &ex.id, "host-a", t0).await);
    a.commit(&ex.id, leased_step(la.token, "a0")).await.unwrap();
    b.commit(&ex.id, succeeded_step("b0")).await.unwrap();
    a.commit(&ex.id, leased_step(la.token, "a1")).await.unwrap();
    let ids = event_ids(&b, &ex.id, 0, 100).await;
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert!(b.operation(&ex.id, "a1").await.unwrap().is_some());
    let (lb, taken_over) = acquired(claim(&b, &ex.id, "host-b", t0 + TTL as Millis + 1).await);
    assert!(taken_over);
    let before = b.history(&ex.id, 0, 100).await.unwrap().len();
    match a.commit(&ex.id, leased_step(la.token, "a2")).await {
        Err(Error::ConditionFailed(m)) => assert!(m.contains("taken over"), "{m}"),
        other => panic!("a write under a lease taken over went through: {other:?}"),
    }
    assert!(b.operation(&ex.id, "a2").await.unwrap().is_none());
    assert_eq!(b.history(&ex.id, 0, 100).await.unwrap().len(), before);
    b.commit(&ex.id, leased_step(lb.token, "b1")).await.unwrap();
    assert!(a.operation(&ex.id, "b1").await.unwrap().is_some());
}

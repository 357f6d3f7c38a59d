//! The store contract: behaviour every backend must show, a file per role or concern
//! (executions, batches, leases, timers, callbacks, catalog, outbox). [`contract!`] runs every
//! contract function against each backend, each test on a fresh store:
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

mod batches;
mod callbacks;
mod catalog;
mod dynamodb_only;
mod executions;
mod leases;
mod logs;
mod outbox;
mod timers;

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

/// Runs every contract test against every backend, each on a fresh store.
macro_rules! contract {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$module::$test(super::sqlite_store(dir.path())).await;
                }
            )*
        }
        mod dynamodb_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    if let Some(store) = super::dynamo_store().await {
                        super::$module::$test(store).await;
                    }
                }
            )*
        }
    };
}

contract!(
    executions::a_taken_name_answers_the_execution_holding_it,
    executions::starts_beyond_the_running_quota_are_refused,
    executions::executions_list_newest_first_with_filters_and_cursor,
    catalog::components_in_use_cannot_be_deleted,
    catalog::tenants_and_keys_round_trip,
    executions::missing_records_are_not_found,
    batches::event_ids_are_consecutive_across_batches,
    batches::a_failed_condition_writes_nothing,
    batches::finished_executions_refuse_further_writes,
    leases::wake_and_settle_track_runnable_executions,
    timers::timers_fire_once_and_only_when_due,
    callbacks::callbacks_are_found_by_id_and_listed_while_pending,
    batches::concurrent_commits_are_group_committed_and_all_applied,
    catalog::components_get_versions_by_digest,
    outbox::published_events_are_numbered_scoped_and_delivered_once,
    outbox::dead_letters_leave_the_outbox_and_are_listed_by_tenant,
    callbacks::agent_invocations_bind_the_first_task_named,
    executions::large_records_round_trip,
    batches::ending_an_execution_cancels_callbacks_and_clears_timers,
    batches::callbacks_are_cancelled_only_when_the_batch_says_so,
    executions::long_histories_read_in_pages,
    leases::leases_are_exclusive_until_they_expire_and_fence_stale_writes,
    leases::released_leases_pass_on_at_once_and_idle_executions_need_none,
    leases::racing_hosts_never_both_get_a_lease,
    timers::timers_are_listed_up_to_a_time,
    leases::roles_have_one_holder_until_its_claim_expires,
    logs::logs_are_numbered_per_execution_and_read_in_pages,
    logs::a_full_log_keeps_one_marker_and_drops_the_rest,
    logs::concurrent_appends_never_share_a_number,
);
